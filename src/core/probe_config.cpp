// The config probe: collects ConfigFacts (core/facts_config.hpp), every file,
// listing, stat and program output the fixes' planners look at, through the
// Host (so `check --record` and `report` record them and --root/--from replay
// them). Run for `kvmready fix`, `report` and `check --record` only: a plain
// `check` needs none of it.
#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include <fmt/format.h>

#include "core/facts_config.hpp"
#include "core/probe.hpp"
#include "host/nofollow_fs.hpp"
#include "util/text.hpp"

namespace kvmready {

// ---- lookups ------------------------------------------------------------------

namespace {

[[noreturn]] void not_collected(const char* what, const std::string& key) {
    throw std::runtime_error(fmt::format("internal: the plan needs {} {}, which the probe did not collect", what, key));
}

}  // namespace

const ConfigFile& ConfigFacts::file(const std::string& path) const {
    auto it = files.find(path);
    if (it == files.end()) not_collected("file", path);
    return it->second;
}

const std::vector<std::string>& ConfigFacts::dir(const std::string& path) const {
    auto it = dirs.find(path);
    if (it == dirs.end()) not_collected("directory", path);
    return it->second;
}

const std::string& ConfigFacts::type(const std::string& path) const {
    auto it = types.find(path);
    if (it == types.end()) not_collected("the type of", path);
    return it->second;
}

std::string ConfigFacts::command_key(const std::vector<std::string>& argv) {
    std::string k;
    for (const auto& a : argv) k += (k.empty() ? "" : " ") + a;
    return k;
}

host::RunResult ConfigFacts::command(const std::vector<std::string>& argv) const {
    auto it = commands.find(command_key(argv));
    if (it == commands.end()) not_collected("the output of", command_key(argv));
    host::RunResult r;
    r.started = it->second.started;
    r.exit_code = it->second.exit_code;
    r.out = it->second.out;
    return r;
}

// ---- shared queries -------------------------------------------------------------

std::vector<std::vector<std::string>> link_queries(const std::string& name) {
    return {{"ip", "-j", "-d", "link", "show", "dev", name},
            {"ip", "-j", "addr", "show", "dev", name},
            {"ip", "-j", "-4", "route", "show", "table", "all", "dev", name},
            {"ip", "-j", "-6", "route", "show", "table", "all", "dev", name}};
}

std::vector<std::vector<std::string>> nm_queries(const std::string& bridge, const std::string& uplink) {
    std::vector<std::vector<std::string>> q = {{"nmcli", "-g", "connection.id", "connection", "show", bridge}};
    if (!uplink.empty()) {
        q.push_back({"nmcli", "-g", "connection.id", "connection", "show", bridge + "-port-" + uplink});
        q.push_back({"nmcli", "-g", "GENERAL.CONNECTION", "device", "show", uplink});
    }
    return q;
}

std::vector<std::string> nm_settings_query(const std::string& connection) {
    std::string fields;
    for (const char* k : kNmIpKeys) fields += (fields.empty() ? "" : ",") + std::string(k);
    return {"nmcli", "-g", fields, "connection", "show", connection};
}

std::optional<int> pidfile_pid(const std::string& text) {
    int pid = 0;
    try {
        pid = std::stoi(util::trim(text));
    } catch (...) {
        return std::nullopt;
    }
    if (pid <= 1) return std::nullopt;
    return pid;
}

namespace {

using util::basename_of;
using util::dirname_of;
using util::words;

void load_interfaces(const ReadText& read, const ListDir& list, const std::string& path,
                     std::vector<std::pair<std::string, std::string>>& files, int depth) {
    if (depth > 4 || std::any_of(files.begin(), files.end(), [&](const auto& f) { return f.first == path; })) return;
    auto text = read(path);
    if (!text) return;
    files.emplace_back(path, *text);
    std::istringstream in(*text);
    for (std::string l; std::getline(in, l);) {
        const auto w = words(l);
        if (w.size() < 2) continue;
        std::string arg = w[1];
        if (arg[0] != '/') arg = dirname_of(path) + "/" + arg;
        if (w[0] == "source") {
            const std::string dir = dirname_of(arg), pat = basename_of(arg);
            auto names = list(dir);
            std::sort(names.begin(), names.end());
            for (const auto& n : names)
                if (fnmatch(pat.c_str(), n.c_str(), FNM_PERIOD) == 0) load_interfaces(read, list, dir + "/" + n, files, depth + 1);
        } else if (w[0] == "source-directory" || w[0] == "source-dir") {
            auto names = list(arg);
            std::sort(names.begin(), names.end());
            for (const auto& n : names)
                if (!n.empty() && std::all_of(n.begin(), n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }))
                    load_interfaces(read, list, arg + "/" + n, files, depth + 1);
        }
    }
}

}  // namespace

std::vector<std::pair<std::string, std::string>> ifupdown_files(const ReadText& read, const ListDir& list) {
    std::vector<std::pair<std::string, std::string>> files;
    load_interfaces(read, list, "/etc/network/interfaces", files, 0);
    return files;
}

// ---- the probe ------------------------------------------------------------------

namespace {

// Collects through the host, once per key.
struct Collector {
    const host::Host& h;
    ConfigFacts& c;
    std::string root;  // the tree fixes would write under ("" live)

    std::optional<std::string> read(const std::string& path) {
        auto it = c.files.find(path);
        if (it != c.files.end()) return it->second.content;
        int err = 0;
        auto text = h.read_file(path, &err);
        c.files[path].content = text;
        return text;
    }
    // A file a fix writes: also whether it may be edited in place (no
    // symlink on the way, a regular file), as the write will insist. The
    // content is read once, through the Host (so it is recorded); the check
    // only opens the file.
    void target(const std::string& path) {
        read(path);
        try {
            host::check_nofollow(root, path);
        } catch (const std::exception& e) {
            c.files[path].error = e.what();
        }
    }
    std::vector<std::string> list(const std::string& dir) {
        auto it = c.dirs.find(dir);
        if (it != c.dirs.end()) return it->second;
        auto names = h.list_dir(dir);
        std::sort(names.begin(), names.end());
        c.dirs[dir] = names;
        return names;
    }
    std::string type(const std::string& path) {
        auto it = c.types.find(path);
        if (it != c.types.end()) return it->second;
        const auto st = h.stat(path);
        return c.types[path] = st.exists ? st.type : "";
    }
    CommandOutput run(const std::vector<std::string>& argv, int timeout_ms) {
        const std::string key = ConfigFacts::command_key(argv);
        auto it = c.commands.find(key);
        if (it != c.commands.end()) return it->second;
        const auto r = h.run(argv, timeout_ms);
        return c.commands[key] = CommandOutput{r.started, r.exit_code, r.out};
    }
};

void collect_kernel(Collector& c) {
    for (const char* p : {"/etc/group", "/etc/modules-load.d/kvm.conf", "/etc/modprobe.d/kvm-nested.conf", "/etc/udev/rules.d/65-kvm.rules"})
        c.target(p);
    for (const char* m : {"kvm_intel", "kvm_amd"}) c.read(fmt::format("/sys/module/{}/refcnt", m));
    for (const char* dir : kSysctlDirs)
        for (const auto& n : c.list(dir))
            if (n.size() > 5 && n.ends_with(".conf")) c.read(std::string(dir) + "/" + n);
    c.read("/etc/sysctl.conf");
    for (const char* p : {"/etc/sysctl.d/60-kvmready-ip-forward.conf", "/etc/sysctl.d/60-kvmready-hugepages.conf"}) c.target(p);
    for (const char* p : {"/etc/udev/rules.d/61-kvmready-vfio.rules", "/etc/modprobe.d/kvmready-vfio.conf"}) c.target(p);
}

void collect_libvirt(Collector& c, const ProbeOptions& opt, const Facts& f) {
    // Routes and addresses a new network must not overlap (fix on the host only).
    if (opt.config_addresses) {
        c.read("/proc/net/route");
        if (c.run({"ip", "-j", "-4", "addr", "show"}, 3000).exit_code != 0) c.read("/proc/net/fib_trie");
    }
    c.type("/sys/class/net/virbr0");
    // How this host starts services, and which daemons run.
    c.read("/proc/1/comm");
    c.type("/run/systemd/system");
    for (const char* d : kLibvirtDaemons) {
        c.type(std::string("/etc/init.d/") + d);
        for (const char* dir : kSbinDirs) c.type(dir + std::string(d));
        if (auto text = c.read(fmt::format("/run/{}.pid", d)))
            if (auto pid = pidfile_pid(*text)) {
                c.read(fmt::format("/proc/{}/comm", *pid));
                c.read(fmt::format("/proc/{}/stat", *pid));
            }
    }
    c.list("/etc/rc2.d");
    // Directories of storage pools.
    std::vector<std::string> paths = {"/var/lib/libvirt/images"};
    if (!opt.pool_path.empty()) {
        std::string p = opt.pool_path;
        paths.push_back(p);
        while (p.size() > 1 && p.back() == '/') p.pop_back();
        paths.push_back(p);
    }
    for (const auto& p : f.virt.libvirt.pools)
        if (!p.target.empty()) paths.push_back(p.target);
    for (const auto& p : paths) c.type(p);
}

// What net.bridge reads to choose and edit the network stack's configuration.
void collect_network_stack(Collector& c, const std::string& bridge, const std::string& uplink) {
    if (auto pid = c.read("/run/NetworkManager/NetworkManager.pid")) c.read("/proc/" + util::trim(*pid) + "/comm");
    c.read("/run/systemd/netif/state");
    c.read("/run/network/ifstate");
    c.read("/etc/network/if-pre-up.d/bridge");
    c.read("/etc/NetworkManager/NetworkManager.conf");
    for (const char* p : {"/usr/share/ifupdown2", "/usr/lib/python3/dist-packages/ifupdown2"}) c.list(p);
    (void)ifupdown_files([&](const std::string& p) { return c.read(p); }, [&](const std::string& d) { return c.list(d); });
    c.read("/etc/network/interfaces.d/" + bridge);
    for (const char* dir : kNetplanDirs) c.list(dir);
    for (const auto& n : c.list("/etc/netplan"))
        if (n.ends_with(".yaml")) c.read("/etc/netplan/" + n);
    c.read("/etc/netplan/60-kvmready-" + bridge + ".yaml");
    for (const char* dir : kNetworkdDirs)
        for (const auto& n : c.list(dir))
            if (n.ends_with(".network") || n.ends_with(".netdev")) c.read(std::string(dir) + "/" + n);
    for (const char* suffix : {".netdev", ".network"}) c.read("/etc/systemd/network/10-kvmready-" + bridge + suffix);
    if (uplink.empty()) return;
    for (const char* prefix : {"10-", "05-", "01-", "00-"}) c.read("/etc/systemd/network/" + std::string(prefix) + "kvmready-" + uplink + ".network");
    if (auto idx = c.read("/sys/class/net/" + uplink + "/ifindex")) {
        std::string i = *idx;
        i.erase(std::remove_if(i.begin(), i.end(), [](char ch) { return ch == '\n' || ch == ' '; }), i.end());
        // networkd's state names the .network that configured the uplink.
        if (auto st = c.read("/run/systemd/netif/links/" + i)) {
            std::istringstream in(*st);
            for (std::string line; std::getline(in, line);)
                if (line.rfind("NETWORK_FILE=", 0) == 0) c.read(line.substr(13));
        }
    }
}

// The runtime state of --bridge and --uplink, and NetworkManager's view of them.
void collect_links(Collector& c, const std::string& bridge, const std::string& uplink) {
    for (const auto& name : {bridge, uplink}) {
        if (name.empty()) continue;
        const auto q = link_queries(name);
        const auto link = c.run(q[0], 5000);
        if (!link.started || link.exit_code != 0 || link.out.empty()) continue;
        for (size_t i = 1; i < q.size(); ++i) c.run(q[i], 5000);
    }
    auto pid = c.read("/run/NetworkManager/NetworkManager.pid");
    if (!pid || util::trim(c.read("/proc/" + util::trim(*pid) + "/comm").value_or("")) != "NetworkManager") return;
    for (const auto& q : nm_queries(bridge, uplink)) {
        const auto r = c.run(q, 5000);
        if (q[3] == "device" && r.started && r.exit_code == 0 && !util::trim(r.out).empty()) c.run(nm_settings_query(util::trim(r.out)), 5000);
    }
}

}  // namespace

void probe_config(const host::Host& h, const ProbeOptions& opt, Facts& f) {
    f.config = ConfigFacts{};
    f.config.probed = true;
    const std::string src = h.source();
    Collector c{h, f.config, src.rfind("root:", 0) == 0 ? src.substr(5) : std::string()};
    collect_kernel(c);
    collect_libvirt(c, opt, f);
    f.config.packages = probe_packages(h, f.kernel.os_id);
    if (!opt.request.bridge.empty()) {
        collect_network_stack(c, opt.request.bridge, opt.uplink);
        collect_links(c, opt.request.bridge, opt.uplink);
    }
}

}  // namespace kvmready
