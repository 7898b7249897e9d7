// net.bridge: which network stack owns this host's configuration (netplan,
// NetworkManager, systemd-networkd or ifupdown), from its files and daemons.
#include <fmt/format.h>

#include "core/facts_config.hpp"
#include "fixes/bridge.hpp"
#include "fixes/bridge_text.hpp"

namespace kvmready::fix::bridge {

using namespace text;

// ---- the stack ------------------------------------------------------------------

const char* to_string(Stack s) {
    switch (s) {
    case Stack::Ifupdown: return "ifupdown";
    case Stack::Networkd: return "systemd-networkd";
    case Stack::Netplan: return "netplan";
    case Stack::NetworkManager: return "NetworkManager";
    case Stack::None: break;
    }
    return "none";
}

namespace {

std::vector<std::string> yaml_files(const Target& t) {
    std::vector<std::string> out;
    for (const char* dir : kNetplanDirs)
        for (const auto& n : t.list(dir))
            if (ends_with(n, ".yaml")) out.push_back(std::string(dir) + "/" + n);
    return out;
}

bool nm_running(const Target& t, std::string& evidence) {
    if (!t.live) return false;
    auto pid = t.read("/run/NetworkManager/NetworkManager.pid");
    if (!pid) return false;
    const std::string p = trim(*pid);
    auto comm = t.read("/proc/" + p + "/comm");
    if (!comm || trim(*comm) != "NetworkManager") return false;
    evidence = fmt::format("NetworkManager runs (pid {} from /run/NetworkManager/NetworkManager.pid)", p);
    return true;
}

bool networkd_running(const Target& t) {
    return t.live && t.read("/run/systemd/netif/state").has_value();
}

bool has_network_files(const Target& t) {
    for (const auto& n : t.list("/etc/systemd/network"))
        if (ends_with(n, ".network") || ends_with(n, ".netdev")) return true;
    return false;
}

}  // namespace

StackInfo detect_stack(const Target& t, const std::string& uplink) {
    (void)uplink;
    StackInfo s;
    const auto yamls = yaml_files(t);
    std::string nm_evidence;
    const bool nm = nm_running(t, nm_evidence);
    const bool networkd = networkd_running(t);
    if (!yamls.empty()) {
        s.stack = Stack::Netplan;
        s.running = nm || networkd;
        s.evidence = fmt::format("netplan configures this host ({}{})", yamls.front(), yamls.size() > 1 ? ", ..." : "");
        if (nm) s.evidence += "; its backend NetworkManager runs";
        else if (networkd) s.evidence += "; its backend systemd-networkd runs";
        return s;
    }
    if (nm) {
        s.stack = Stack::NetworkManager;
        s.running = true;
        s.evidence = nm_evidence;
        return s;
    }
    if (networkd) {
        s.stack = Stack::Networkd;
        s.running = true;
        s.evidence = "systemd-networkd runs (/run/systemd/netif/state)";
        return s;
    }
    if (t.read("/etc/network/interfaces")) {
        s.stack = Stack::Ifupdown;
        s.running = t.live && t.read("/run/network/ifstate").has_value();
        for (const char* p : {"/usr/share/ifupdown2", "/usr/lib/python3/dist-packages/ifupdown2"})
            if (!t.list(p).empty()) s.ifupdown2 = true;
        const bool hook = t.read("/etc/network/if-pre-up.d/bridge").has_value();
        s.bridge_support = s.ifupdown2 || hook;
        s.evidence = fmt::format("{} configures this host (/etc/network/interfaces)", s.ifupdown2 ? "ifupdown2" : "ifupdown");
        return s;
    }
    if (has_network_files(t)) {
        s.stack = Stack::Networkd;
        s.evidence = "systemd-networkd files in /etc/systemd/network (the daemon does not run now)";
        return s;
    }
    if (t.read("/etc/NetworkManager/NetworkManager.conf")) {
        s.stack = Stack::NetworkManager;
        s.evidence = "NetworkManager is installed (/etc/NetworkManager/NetworkManager.conf) but does not run now";
        return s;
    }
    s.evidence = "no NetworkManager, systemd-networkd, netplan or ifupdown configuration found";
    return s;
}

}  // namespace kvmready::fix::bridge
