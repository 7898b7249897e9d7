// Kernel settings that need a runtime value and a sysctl.d file for boot.
#include <algorithm>

#include <fmt/format.h>

#include "fixes/fixes.hpp"
#include "util/text.hpp"

namespace kvmready::fix {

namespace {

// Does any sysctl configuration the boot applies already set key = value?
// (Later files win; a file setting another value is reported, not edited.)
std::optional<std::string> configured_value(const PlanInput& in, const std::string& key) {
    std::optional<std::string> value;
    auto scan = [&](const std::string& text) {
        size_t i = 0;
        while (i < text.size()) {
            size_t j = text.find('\n', i);
            if (j == std::string::npos) j = text.size();
            std::string l = text.substr(i, j - i);
            i = j + 1;
            const auto eq = l.find('=');
            if (eq == std::string::npos || l.find_first_not_of(" \t") == l.find('#')) continue;
            std::string k = util::trim(l.substr(0, eq));
            std::replace(k.begin(), k.end(), '/', '.');
            if (k == key) value = util::trim(l.substr(eq + 1));
        }
    };
    const ConfigFacts& c = in.config();
    for (const char* dir : kSysctlDirs)
        for (const auto& n : c.dir(dir))  // sorted
            if (n.size() > 5 && n.compare(n.size() - 5, 5, ".conf") == 0)
                if (const auto& t = c.file(std::string(dir) + "/" + n).content) scan(*t);
    // Probed through the host layer: Debian's 99-sysctl.conf is a symlink to
    // ../sysctl.conf, which a rooted host resolves inside the root.
    if (const auto& t = c.file("/etc/sysctl.conf").content) scan(*t);
    return value;
}

// One sysctl: runtime write (live only) and a file in /etc/sysctl.d.
void add_sysctl_steps(const PlanInput& in, Plan& p, const std::string& key, const std::string& value, const std::string& file,
                      std::optional<std::string> runtime_now, const char* fix_id) {
    std::string proc = "/proc/sys/" + key;
    std::replace(proc.begin(), proc.end(), '.', '/');
    if (!in.offline() && runtime_now != value) p.steps.push_back(proc_write(proc, value, fmt::format("set {} = {} now", key, value)));
    const auto configured = configured_value(in, key);
    if (configured == value) return;
    const auto cur = in.target_file(file);
    Step s = write_file(file, cur,
                        fmt::format("# Written by `kvmready fix` ({}); `kvmready fix --undo` removes it.\n{} = {}\n", fix_id, key, value));
    s.summary = fmt::format("set {} = {} at every boot ({})", key, value, file);
    if (configured) p.notes.push_back(fmt::format("another sysctl file sets {} = {}; {} is read later and wins", key, *configured, file));
    p.steps.push_back(std::move(s));
}

// A NAT network that starts at boot (or that this run defines) needs
// forwarding at boot too. libvirt switches it on when it starts such a
// network, but a sysctl.d file applied later at boot, or a firewall script,
// may switch it off again; the file keeps the host's intent on record.
std::string nat_network_reason(const PlanInput& in) {
    // Plans are pure, so asking the network fix what it would do is safe.
    if (const FixSpec* net = find_fix("libvirt.network-default"))
        if (auto p = net->plan(in); p && std::any_of(p->steps.begin(), p->steps.end(), [](const Step& st) { return st.op == "libvirt.network.define"; }))
            return fmt::format("this run defines NAT network {}", in.options.network);
    for (const auto& n : in.facts.virt.libvirt.networks)
        if (n.autostart && n.forward_mode == "nat")
            return fmt::format("NAT network {} starts at boot", n.name);
    return "";
}

std::optional<Plan> plan_ip_forward(const PlanInput& in) {
    auto want = in.wanting(ids::fix::net_ip_forward.text);
    const std::string nat = want.empty() ? nat_network_reason(in) : "";
    if (want.empty() && (nat.empty() || configured_value(in, "net.ipv4.ip_forward") == "1")) return std::nullopt;
    Plan p;
    p.applicability = Applicability::Confirm;
    for (const auto* f : want) {
        p.repairs.push_back(f->id);
        p.reason += (p.reason.empty() ? "" : "; ") + f->message;
    }
    if (!nat.empty()) p.reason = nat + ", and no sysctl file turns IPv4 forwarding on at boot";
    const auto& n = in.facts.net.ip_forward;
    add_sysctl_steps(in, p, "net.ipv4.ip_forward", "1", "/etc/sysctl.d/60-kvmready-ip-forward.conf",
                     n ? std::optional<std::string>(std::to_string(*n)) : std::nullopt, "net.ip-forward");
    if (p.steps.empty()) return std::nullopt;
    return p;
}

std::optional<Plan> plan_hugepages(const PlanInput& in) {
    if (!in.options.hugepages) return std::nullopt;
    const auto& m = in.facts.system.memory;
    const uint64_t dflt = m.hugepagesize_kb.value_or(2048);
    std::optional<std::string> now;
    for (const auto& pool : m.pools)
        if (pool.size_kb == dflt && pool.nr) now = std::to_string(*pool.nr);
    const std::string want = std::to_string(*in.options.hugepages);
    if (!in.offline() && !m.hugepages_dir) throw std::runtime_error("this kernel has no huge page support (/sys/kernel/mm/hugepages)");
    if (m.mem_total_kb && *in.options.hugepages * dflt > *m.mem_total_kb * 9 / 10)
        throw std::runtime_error(fmt::format("{} × {} kB huge pages is more than 90 % of this host's {} kB of memory", want, dflt, *m.mem_total_kb));
    Plan p;
    p.applicability = Applicability::Confirm;
    p.reason = fmt::format("--hugepages {} asks for {} MiB of {} kB pages", want, *in.options.hugepages * dflt / 1024, dflt);
    for (const auto& f : in.report.findings)
        if (f.id == ids::memory_hugepages.text) p.repairs.push_back(f.id);
    add_sysctl_steps(in, p, "vm.nr_hugepages", want, "/etc/sysctl.d/60-kvmready-hugepages.conf", now, "memory.hugepages");
    if (p.steps.empty()) return std::nullopt;
    p.notes.push_back("the kernel may grant fewer pages when memory is fragmented; the step then fails and says how many it got");
    return p;
}

}  // namespace

FixSpec fix_net_ip_forward() {
    return {ids::fix::net_ip_forward.text, "Turn on IPv4 forwarding for NAT networks", {ids::net_ip_forward},
            "sysctl net.ipv4.ip_forward=1 now and /etc/sysctl.d/60-kvmready-ip-forward.conf for boot.", plan_ip_forward};
}

FixSpec fix_memory_hugepages() {
    return {ids::fix::memory_hugepages.text, "Reserve huge pages (--hugepages N)", {ids::memory_hugepages},
            "vm.nr_hugepages=N now and in /etc/sysctl.d/60-kvmready-hugepages.conf.", plan_hugepages};
}

}  // namespace kvmready::fix
