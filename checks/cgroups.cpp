// kernel.cgroups: the controllers libvirt puts each guest under (CPU, memory,
// I/O tuning and, on v1, device access lists).
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "checks/kernel_cmdline.hpp"
#include "util/text.hpp"

namespace kvmready::checks {

namespace {

using Json = nlohmann::ordered_json;

std::vector<std::string> v1_controllers_of(const MountEntry& m) {
    std::vector<std::string> out;
    std::string s = m.super_options;
    std::replace(s.begin(), s.end(), ',', ' ');
    for (const auto& o : util::words(s)) {
        if (o == "rw" || o == "ro" || o == "noprefix" || o == "xattr" || o == "clone_children" || o == "cpuset_v2_mode" ||
            o.find('=') != std::string::npos)
            continue;
        out.push_back(o);
    }
    return out;
}

// Which hierarchies are mounted: v1 hierarchies by controller, the unified
// hierarchy's controllers, and the mode they add up to.
struct Layout {
    std::map<std::string, std::string> v1;  // controller -> mount point
    std::vector<std::string> v2;            // cgroup.controllers of the unified hierarchy
    bool v2_mounted = false;
    std::string mode;                       // none, v1, v2, hybrid
};

Layout layout_of(const SystemFacts& s) {
    const auto& c = s.cgroups;
    Layout l;
    std::vector<std::string> v2_mounts;
    for (const auto& m : s.mounts) {
        if (m.fstype == "cgroup")
            for (const auto& ctl : v1_controllers_of(m)) l.v1.emplace(ctl, m.mountpoint);
        if (m.fstype == "cgroup2") v2_mounts.push_back(m.mountpoint);
    }
    l.v2 = c.v2_controllers ? util::words(*c.v2_controllers) : std::vector<std::string>{};
    l.v2_mounted = !v2_mounts.empty();
    if (!l.v1.empty() && l.v2_mounted) l.mode = "hybrid";
    else if (!l.v1.empty()) l.mode = "v1";
    else if (l.v2_mounted) l.mode = "v2";
    else l.mode = "none";
    return l;
}

void layout_evidence(const Layout& l, const CgroupFacts& c, const std::vector<KernelArg>& args, Json& ev) {
    ev["mode"] = l.mode;
    if (l.v2_mounted) {
        ev["v2_mount"] = c.v2_mountpoint;
        ev["v2_controllers"] = c.v2_controllers ? Json(*c.v2_controllers) : Json();
        ev["v2_subtree_control"] = c.v2_subtree_control ? Json(*c.v2_subtree_control) : Json();
    }
    if (!l.v1.empty()) {
        Json j = Json::object();
        for (const auto& [ctl, mp] : l.v1) j[ctl] = mp;
        ev["v1_mounts"] = j;
    }
    Json cmd = Json::object();
    for (const char* k : {"cgroup_disable", "cgroup_no_v1", "systemd.unified_cgroup_hierarchy", "systemd.legacy_systemd_cgroup_controller", "cgroup_enable"})
        if (auto v = arg_value(args, k)) cmd[k] = *v;
    if (!cmd.empty()) ev["cmdline"] = cmd;
}

const CgroupController* proc_controller(const CgroupFacts& c, const std::string& name) {
    for (const auto& cc : c.controllers)
        if (cc.name == name) return &cc;
    return nullptr;
}

// libvirt's controllers this host has, those it lacks, why each is missing
// and the commands that mount the missing v1 hierarchies.
struct Controllers {
    std::vector<std::string> have, missing, why, commands;
};

Controllers libvirt_controllers(const Layout& l, const CgroupFacts& c, const std::optional<std::string>& disabled_by) {
    // libvirt's default cgroup_controllers (qemu.conf): cpu, devices, memory,
    // blkio, cpuset, cpuacct. On v2, cpuacct is part of cpu, blkio is io and
    // device access goes through BPF programs, not a controller.
    struct Want {
        const char* v1;
        const char* v2;  // nullptr: nothing to look for on v2
    };
    constexpr Want kWants[] = {{"cpu", "cpu"}, {"cpuacct", nullptr}, {"cpuset", "cpuset"}, {"memory", "memory"},
                               {"devices", nullptr}, {"blkio", "io"}};
    Controllers r;
    const auto& mode = l.mode;
    for (const auto& w : kWants) {
        const bool in_v1 = l.v1.count(w.v1) > 0;
        const bool in_v2 = l.v2_mounted && (w.v2 ? std::find(l.v2.begin(), l.v2.end(), w.v2) != l.v2.end() : mode == "v2");
        if (in_v1 || in_v2) {
            // On v2, cpuacct's accounting is part of cpu and device control is BPF.
            if (in_v1 || w.v2) r.have.push_back(in_v1 ? w.v1 : w.v2);
            continue;
        }
        const std::string name = mode == "v2" && w.v2 ? w.v2 : w.v1;
        r.missing.push_back(name);
        const CgroupController* pc = proc_controller(c, w.v1);
        if (disabled_by && util::has_word(*disabled_by, w.v1, ',')) {
            r.why.push_back(fmt::format("{} is disabled by cgroup_disable={} on the kernel command line", w.v1, *disabled_by));
        } else if (c.proc_cgroups_read && !pc) {
            r.why.push_back(fmt::format("{} is not built into this kernel", w.v1));
        } else if (pc && !pc->enabled) {
            r.why.push_back(fmt::format("{} is disabled at boot (/proc/cgroups enabled=0)", w.v1));
        } else if (mode == "v2" || (mode == "hybrid" && pc && pc->hierarchy == 0)) {
            r.why.push_back(fmt::format("{} is not in {}/cgroup.controllers", name, c.v2_mountpoint));
        } else {
            r.why.push_back(fmt::format("no cgroup v1 hierarchy is mounted with {}", w.v1));
            r.commands.push_back(fmt::format("mkdir -p /sys/fs/cgroup/{0} && mount -t cgroup -o {0} cgroup /sys/fs/cgroup/{0}", w.v1));
        }
    }
    return r;
}

void cgroups(const Facts& f, const Results&, Finding& out) {
    const auto& s = f.system;
    const auto& c = s.cgroups;
    auto& ev = out.evidence;
    if (!s.mountinfo_read && !c.proc_cgroups_read) {
        set(out, Status::Unknown, "neither /proc/self/mountinfo nor /proc/cgroups could be read");
        remedy(out, "Run kvmready on the host itself.", {"cat /proc/cgroups", "findmnt -t cgroup,cgroup2"}, "", "manual", false);
        return;
    }
    const Layout l = layout_of(s);
    const std::string& mode = l.mode;
    const auto args = kernel_args(f.kernel.cmdline);
    layout_evidence(l, c, args, ev);

    if (mode == "none") {
        set(out, Status::Warn,
            "no cgroup filesystem is mounted: libvirt cannot put guests in cgroups, so it cannot apply CPU, memory or I/O "
            "limits or restrict their device access");
        remedy(out, "Mount the unified cgroup hierarchy (systemd does this at boot).",
               {"mount -t cgroup2 cgroup2 /sys/fs/cgroup"}, "", "manual", true);
        return;
    }
    if (mode == "v2" && !c.v2_controllers) {
        set(out, Status::Unknown,
            fmt::format("cgroup v2 is mounted at {} but its cgroup.controllers could not be read", c.v2_mountpoint));
        remedy(out, "Read the available controllers by hand.", {fmt::format("cat {}/cgroup.controllers", c.v2_mountpoint)}, "",
               "manual", false);
        return;
    }
    const auto disabled_by = arg_value(args, "cgroup_disable");
    auto [have, missing, why, commands] = libvirt_controllers(l, c, disabled_by);
    ev["controllers_available"] = have;
    ev["controllers_missing"] = missing;
    if (auto pids = proc_controller(c, "pids")) ev["pids_enabled"] = pids->enabled;
    const std::string layout = mode == "v2"     ? fmt::format("cgroup v2 (unified, {})", c.v2_mountpoint)
                               : mode == "v1"   ? std::string("cgroup v1 (legacy)")
                                                : fmt::format("hybrid cgroups (v1 controllers, cgroup2 at {})", c.v2_mountpoint);
    if (mode != "v2")
        ev["note"] = "cgroup v1 is deprecated: systemd 256 and later refuse to boot on it unless forced; libvirt supports both";
    if (missing.empty()) {
        set(out, Status::Pass,
            fmt::format("{} with every controller libvirt uses: {}{}", layout, fmt::join(have, ", "),
                        mode == "v2" ? "; device access is filtered with BPF" : ""));
        return;
    }
    std::string msg = fmt::format("{} lacks the {} controller{} libvirt uses for guests: ", layout, fmt::join(missing, ", "),
                                  missing.size() == 1 ? "" : "s");
    msg += fmt::format("{}", fmt::join(why, "; "));
    set(out, Status::Warn, msg);
    if (disabled_by) {
        CmdlinePlan p = remove_kernel_arg(f.system.boot, "cgroup_disable=" + *disabled_by);
        commands.insert(commands.end(), p.commands.begin(), p.commands.end());
        remedy(out, p.text + " Without these controllers libvirt cannot enforce guest CPU/memory/I/O tuning.", commands,
               "", "manual", true);
        return;
    }
    remedy(out,
           commands.empty() ? "Boot a kernel with these controllers (CONFIG_MEMCG, CONFIG_CPUSETS, CONFIG_BLK_CGROUP, "
                              "CONFIG_CGROUP_SCHED); on v2 also check that no v1 hierarchy holds them."
                            : "Mount the missing v1 hierarchies (systemd normally does this at boot).",
           commands.empty() ? std::vector<std::string>{"cat /proc/cgroups"} : commands, ids::fix::none,
           commands.empty() ? "manual" : "confirm", true);
}

}  // namespace

void register_cgroups(std::vector<CheckSpec>& r) {
    r.push_back({ids::kernel_cgroups, "Control groups for libvirt", Level::Recommended, {},
                 "cgroup and cgroup2 mounts in /proc/self/mountinfo, /proc/cgroups (enabled column), cgroup.controllers and "
                 "cgroup.subtree_control of the unified hierarchy, /proc/cmdline (cgroup_disable=, "
                 "systemd.unified_cgroup_hierarchy=).",
                 "libvirt puts every guest in its own cgroup to apply CPU shares and pinning (cpu, cpuset), memory limits "
                 "(memory), disk I/O tuning (blkio/io) and, on v1, device access lists (devices; v2 uses BPF). These are "
                 "qemu.conf's default cgroup_controllers; pids is not among them. Without them guests still run, but tuning "
                 "fails and guests are not contained.",
                 "Boot with the controllers enabled (no cgroup_disable=) and mounted: systemd mounts cgroup v2 at /sys/fs/cgroup.",
                 cgroups});
}

}  // namespace kvmready::checks
