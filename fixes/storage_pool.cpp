// storage.pool-default: a directory storage pool, created, built, started
// and autostarted (libvirt's `default` on /var/lib/libvirt/images, or --pool
// NAME --pool-path DIR), from whatever state it is in. Undo stops and
// undefines only what the run did, and removes a directory only when the run
// created it and it is still empty (rmdir: never content).
#include <fmt/format.h>

#include "fixes/fixes.hpp"
#include "fixes/libvirt_fix.hpp"

namespace kvmready::fix {

namespace {

constexpr const char* kDefaultPath = "/var/lib/libvirt/images";

std::optional<Plan> plan_pool(const PlanInput& in) {
    const auto& l = in.facts.virt.libvirt;
    const auto& s = l.snapshot;
    const bool given = in.options.pool_given || !in.options.pool_path.empty();
    if (!lv::libvirt_plannable(in, given, s.pools_error, "storage")) return std::nullopt;
    const std::string& name = in.options.pool;
    const std::string uri = in.options.connect_uri;
    Plan p;
    p.fix_id = "storage.pool-default";
    p.repairs = {ids::storage_pool.text};
    p.reason = lv::reasons(in, p.fix_id);

    const VirtPool* pool = nullptr;
    if (s.connected)
        for (const auto& x : l.pools)
            if (x.name == name) pool = &x;
    const bool local = !host::libvirt_socket_for(uri, nullptr).empty();

    const auto start = [&] {
        p.steps.push_back(lv::object_step("libvirt.pool.start", name, fmt::format("start pool {}", name), lv::virsh(uri, {"pool-start", name})));
    };
    const auto autostart = [&] {
        p.steps.push_back(lv::object_step("libvirt.pool.autostart", name, fmt::format("start pool {} at boot", name),
                                    lv::virsh(uri, {"pool-autostart", name})));
    };
    const auto build = [&](const std::string& path) {
        // A directory that exists is left as it is (pool-build would only
        // reset its mode); a missing one is created by libvirt.
        if (local && in.config().type(path) == "dir") return;
        Step st = lv::object_step("libvirt.pool.build", name, fmt::format("create {} for pool {}", path, name), lv::virsh(uri, {"pool-build", name}));
        st.args["path"] = path;
        st.args["local"] = local;
        p.steps.push_back(st);
    };

    if (!pool) {
        if (s.connected && name != "default" && !given) return std::nullopt;
        std::string path = in.options.pool_path;
        if (path.empty()) {
            if (name != "default")
                throw std::runtime_error(fmt::format("pool {} is not defined: pass --pool-path DIR for its directory", name));
            path = kDefaultPath;
        }
        if (path.empty() || path[0] != '/') throw std::runtime_error(fmt::format("--pool-path {}: an absolute path is needed", path));
        while (path.size() > 1 && path.back() == '/') path.pop_back();
        for (const auto& x : l.pools)
            if (x.target == path)
                throw std::runtime_error(fmt::format("pool {} already uses {}: pass --pool {} to fix that pool, or --pool-path DIR for "
                                                     "another directory",
                                                     x.name, path, x.name));
        const std::string type = in.config().type(path);
        if (local && !type.empty() && type != "dir") throw std::runtime_error(fmt::format("{} exists and is not a directory", path));
        if (!s.connected)
            p.notes.push_back(fmt::format("libvirt does not answer yet (libvirt.daemon starts it first): each step looks at pool {} "
                                          "when it runs and does only what is missing",
                                          name));
        if (p.reason.empty()) p.reason = s.connected ? fmt::format("libvirt storage pool {} is not defined", name) : "libvirt is not running yet";
        const std::string xml = lv::pool_xml(name, path);
        const std::string file = name + "-pool.xml";
        Step def = lv::object_step("libvirt.pool.define", name, fmt::format("define directory pool {} on {}", name, path),
                             lv::virsh(uri, {"pool-define", file}));
        def.commands = {lv::virsh(uri, {"pool-define-as", name, "dir", "--target", path})};
        def.args["xml"] = xml;
        def.args["path"] = path;
        def.args["diff"] = unified_diff("/" + file, std::nullopt, xml);
        p.steps.push_back(def);
        build(path);
        if (local && !type.empty()) p.notes.push_back(fmt::format("{} exists: it is used as it is (owner, mode and content untouched)", path));
        start();
        autostart();
        return p;
    }
    if (!in.options.pool_path.empty() && pool->target != in.options.pool_path)
        p.notes.push_back(fmt::format("pool {} exists on {}: --pool-path {} is not applied to it", name, pool->target, in.options.pool_path));
    if (!pool->persistent) {
        if (p.reason.empty()) p.reason = fmt::format("libvirt storage pool {} is active but transient", name);
        Step st = lv::object_step("libvirt.pool.define", name, fmt::format("make pool {} persistent as it runs", name),
                            lv::virsh(uri, {"pool-define", "/dev/stdin"}));
        st.commands = {lv::virsh(uri, {"pool-dumpxml", name}), lv::virsh(uri, {"pool-define", "/dev/stdin"})};
        st.args["xml"] = "";
        p.steps.push_back(st);
        autostart();
        return p;
    }
    if (!pool->active) {
        if (p.reason.empty()) p.reason = fmt::format("libvirt storage pool {} is defined but not active", name);
        if (pool->type == "dir" && !pool->target.empty()) build(pool->target);
        start();
        if (!pool->autostart) autostart();
        return p;
    }
    if (!pool->autostart) {
        if (p.reason.empty()) p.reason = fmt::format("libvirt storage pool {} does not start at boot", name);
        autostart();
        return p;
    }
    return std::nullopt;
}

}  // namespace

FixSpec fix_storage_pool_default() {
    return {ids::fix::storage_pool_default.text, "libvirt's directory storage pool", {ids::storage_pool},
            "Defines, builds, starts and autostarts a directory storage pool: `default` on /var/lib/libvirt/images, or --pool NAME "
            "--pool-path DIR. A pool in a partial state (stopped, transient, without autostart) gets only the missing steps; an "
            "existing directory is used as it is. Undo stops and undefines only what the run did and removes a directory only if "
            "the run created it and it is still empty.",
            plan_pool};
}

}  // namespace kvmready::fix
