// net.*: what guests' networking needs from the host: the TUN/TAP and vhost
// devices, bridges, IPv4 forwarding for NAT networks, and whether the
// firewall would drop forwarded guest traffic.
#include <algorithm>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "core/derived.hpp"
#include "util/text.hpp"

namespace kvmready::checks {

namespace {

using Json = nlohmann::ordered_json;

using util::join;


// ---- libvirt networks --------------------------------------------------------

// A libvirt network that routes its guests through this host (forward mode
// nat or route), with the bridge it creates.
struct ForwardNet {
    std::string name;
    std::string bridge;
    std::string mode;
    bool active = false;
};

// What libvirt says about its networks, or nullopt when it was not asked or
// did not answer.
std::optional<std::vector<ForwardNet>> libvirt_forward_networks(const Facts& f) {
    const auto& lv = f.virt.libvirt;
    if (!lv.snapshot.connected) return std::nullopt;
    std::vector<ForwardNet> out;
    for (const auto& n : lv.networks)
        if (n.forward_mode == "nat" || n.forward_mode == "route") out.push_back({n.name, n.bridge, n.forward_mode, n.active});
    return out;
}

// Bridges libvirt owns (any forward mode, isolated ones included).
std::set<std::string> libvirt_bridges(const Facts& f) {
    std::set<std::string> out;
    if (f.virt.libvirt.snapshot.connected)
        for (const auto& n : f.virt.libvirt.networks)
            if (!n.bridge.empty()) out.insert(n.bridge);
    return out;
}

// ---- device nodes ------------------------------------------------------------

struct NodeSpec {
    const char* module;       // modprobe name
    unsigned minor;           // misc major 10
    const char* what;         // for messages
    const char* missing_effect;
};

void node_check(const NetNode& n, const NodeSpec& spec, const Facts& f, const Results& r, Finding& out) {
    auto& ev = out.evidence;
    if (!f.net.probed) {
        set(out, Status::Unknown, "the network was not probed in this recording");
        remedy(out, "Record the host again with this kvmready version.", {"kvmready check --record DIR"}, "", "manual", false);
        return;
    }
    ev["path"] = n.path;
    ev["exists"] = n.exists;
    if (n.exists) {
        ev["type"] = n.type;
        if (n.type == "char") ev["device"] = fmt::format("{}:{}", n.major, n.minor);
        ev["mode"] = mode_string(n.mode);
    }
    ev["driver_registered"] = n.registered;
    if (!n.registered && !n.exists) ev["module_installed"] = n.module_installed;
    const std::string mknod = fmt::format("mknod -m 0660 {} c 10 {}", n.path, spec.minor);
    if (n.exists && n.type == "char" && n.major == 10 && n.minor == spec.minor) {
        std::string msg = fmt::format("{} is the {} device (10:{}, mode {})", n.path, spec.what, spec.minor, mode_string(n.mode));
        // kmod's static nodes exist before the module loads; the first open loads it.
        if (!n.registered) msg += fmt::format("; {} loads on first open", spec.module);
        set(out, Status::Pass, msg);
        return;
    }
    if (n.exists) {
        set(out, Status::Fail,
            n.type == "char" ? fmt::format("{} is character device {}:{}, not the {} device 10:{}", n.path, n.major, n.minor, spec.what,
                                           spec.minor)
                             : fmt::format("{} is a {}, not the {} character device", n.path, n.type, spec.what));
        remedy(out, "Replace it with the real device node.", {fmt::format("rm {} && {}", n.path, mknod)}, "", "manual", true);
        return;
    }
    if (r.derived().container.detected()) {
        set(out, Status::Warn, fmt::format("{} does not exist in this container: {}", n.path, spec.missing_effect));
        remedy(out, "Pass the host's device into the container.", {fmt::format("docker run --device {} ...", n.path)}, "", "manual",
               false);
        return;
    }
    if (n.registered) {
        set(out, Status::Warn,
            fmt::format("{} does not exist although the {} driver is registered (/proc/misc lists minor {}): {}", n.path, spec.module,
                        spec.minor, spec.missing_effect));
        std::vector<std::string> cmds;
        if (n.path.rfind("/dev/net/", 0) == 0) cmds.push_back("mkdir -p /dev/net");
        cmds.push_back(mknod);
        remedy(out, "devtmpfs/udev did not create the node; create it.", cmds, "", "manual", true);
        return;
    }
    set(out, Status::Warn, fmt::format("{} does not exist and no {} driver is loaded: {}", n.path, spec.module, spec.missing_effect));
    if (f.modules.modules_disabled) {
        out.message += "; module loading is disabled until reboot";
        remedy(out, fmt::format("Load {} at boot.", spec.module), {fmt::format("echo {} > /etc/modules-load.d/{}.conf", spec.module, spec.module)},
               "", "manual", true);
        return;
    }
    if (!f.modules.module_support) {
        out.message += "; this kernel cannot load modules, so it must be built in";
        remedy(out, fmt::format("Boot a kernel with {} built in or loadable (Debian's linux-image-amd64 has it as a module).", spec.module), {},
               "", "manual", true);
        return;
    }
    if (!n.module_installed && f.modules.modules_dir_found) {
        out.message += fmt::format("; kernel {} ships no {} module", f.kernel.release, spec.module);
        remedy(out, fmt::format("Boot a kernel built with {} (Debian's linux-image-amd64 has it).", spec.module), {}, "", "manual", true);
        return;
    }
    remedy(out, "Load the module now and at every boot.",
           {fmt::format("modprobe {}", spec.module), fmt::format("echo {} > /etc/modules-load.d/{}.conf", spec.module, spec.module)},
           "", "manual", true);
}

void tun(const Facts& f, const Results& r, Finding& out) {
    node_check(f.net.tun, {"tun", 200, "TUN/TAP", "QEMU and libvirt cannot create tap devices, so guests get no bridged or NAT network"}, f,
               r, out);
}

void vhost_net(const Facts& f, const Results& r, Finding& out) {
    node_check(f.net.vhost_net,
               {"vhost_net", 238, "vhost-net",
                "virtio-net is then served by QEMU's own thread instead of the in-kernel vhost worker (slower, more CPU per packet)"},
               f, r, out);
}

void vhost_vsock(const Facts& f, const Results& r, Finding& out) {
    node_check(f.net.vhost_vsock,
               {"vhost_vsock", 241, "vhost-vsock", "guests cannot get a virtio-vsock device (host<->guest sockets for agents)",
},
               f, r, out);
}

// ---- bridges -----------------------------------------------------------------

bool port_down(const BridgePort& p) {
    return p.operstate == "down" || p.operstate == "lowerlayerdown" || p.operstate == "notpresent";
}

std::string addr_text(const BridgeAddress& a) { return fmt::format("{}/{}", a.local, a.prefixlen); }

bool has_ipv4(const BridgeInfo& b) {
    return std::any_of(b.addresses.begin(), b.addresses.end(), [](const BridgeAddress& a) { return a.family == "inet"; });
}

std::vector<const BridgePort*> uplinks(const BridgeInfo& b) {
    std::vector<const BridgePort*> out;
    for (const auto& p : b.ports)
        if (p.uplink) out.push_back(&p);
    return out;
}

Json bridge_json(const BridgeInfo& b, const NetFacts& n) {
    Json j;
    j["name"] = b.name;
    j["operstate"] = b.operstate;
    if (b.admin_up) j["admin_up"] = *b.admin_up;
    Json ports = Json::array();
    for (const auto& p : b.ports) {
        Json pj = {{"name", p.name}, {"kind", p.kind}, {"operstate", p.operstate}};
        if (p.uplink) pj["uplink_nic"] = p.uplink_nic;
        if (!p.driver.empty()) pj["driver"] = p.driver;
        if (!p.stp_port_state.empty()) pj["stp_port_state"] = p.stp_port_state;
        ports.push_back(pj);
    }
    j["ports"] = ports;
    std::vector<std::string> ups;
    for (const auto* p : uplinks(b)) ups.push_back(p->name);
    j["uplinks"] = ups;
    if (b.stp_state) j["stp"] = *b.stp_state == 0 ? "off" : *b.stp_state == 1 ? "kernel" : "user-space";
    if (b.forward_delay_cs) j["forward_delay_s"] = *b.forward_delay_cs / 100.0;
    if (b.nf_call_iptables) j["nf_call_iptables"] = *b.nf_call_iptables;
    if (n.addresses_known) {
        std::vector<std::string> a;
        for (const auto& x : b.addresses) a.push_back(addr_text(x));
        j["addresses"] = a;
    }
    return j;
}

// "br0: up, uplink eth0, STP off, 192.0.2.1/24"
std::string bridge_summary(const BridgeInfo& b, const NetFacts& n) {
    std::vector<std::string> parts;
    if (b.admin_up && !*b.admin_up) parts.push_back("administratively down");
    else if (b.operstate == "up") parts.push_back("up");
    else parts.push_back("up, no carrier (no port forwarding yet)");
    auto ups = uplinks(b);
    if (!ups.empty()) {
        std::vector<std::string> names;
        for (const auto* p : ups) names.push_back(p->uplink_nic == p->name ? p->name : p->name + " over " + p->uplink_nic);
        parts.push_back("uplink " + join(names, ", "));
    } else {
        std::vector<std::string> ports;
        for (const auto& p : b.ports) ports.push_back(fmt::format("{} ({})", p.name, p.kind));
        parts.push_back(b.ports.empty() ? "no ports" : "ports " + join(ports, " ") + ", no uplink");
    }
    if (b.stp_state) {
        if (*b.stp_state == 0) parts.push_back("STP off");
        else if (b.forward_delay_cs && *b.forward_delay_cs > 0)
            parts.push_back(fmt::format("STP on (new ports forward after {:g} s)", 2 * *b.forward_delay_cs / 100.0));
        else parts.push_back("STP on");
    }
    if (n.addresses_known) {
        std::vector<std::string> a;
        for (const auto& x : b.addresses)
            if (x.scope != "link") a.push_back(addr_text(x));
        parts.push_back(a.empty() ? "no address" : join(a, " "));
    }
    return b.name + ": " + join(parts, ", ");
}

std::string nic_placeholder(const NetFacts& n) {
    std::set<std::string> enslaved;
    for (const auto& b : n.bridges)
        for (const auto& p : b.ports) enslaved.insert(p.uplink_nic);
    std::vector<std::string> free;
    for (const auto& nic : n.physical_nics)
        if (!enslaved.count(nic)) free.push_back(nic);
    return free.size() == 1 ? free.front() : "<nic>";
}

void bridges(const Facts& f, const Results&, Finding& out) {
    const auto& n = f.net;
    auto& ev = out.evidence;
    Json list = Json::array();
    for (const auto& b : n.bridges) list.push_back(bridge_json(b, n));
    ev["bridges"] = list;
    if (!n.addresses_known && !n.bridges.empty()) ev["addresses_error"] = n.addresses_error;
    if (!n.physical_nics.empty()) ev["physical_nics"] = n.physical_nics;
    const std::string& want = f.request.bridge;
    if (!want.empty()) ev["requested"] = want;
    if (!n.probed) {
        set(out, Status::Unknown, "the network was not probed in this recording");
        remedy(out, "Record the host again with this kvmready version.", {"kvmready check --record DIR"}, "", "manual", false);
        return;
    }

    if (!want.empty()) {
        auto it = std::find_if(n.bridges.begin(), n.bridges.end(), [&](const BridgeInfo& b) { return b.name == want; });
        if (it == n.bridges.end()) {
            const std::string nic = nic_placeholder(n);
            set(out, Status::Fail, fmt::format("bridge {} does not exist, so guests cannot be attached to it", want));
            remedy(out,
                   fmt::format("Create it and enslave the uplink NIC; by hand from a console, not over SSH on {} (its addresses must move "
                               "to {}), then make it persistent; or let kvmready fix do both, moving the addresses and routes in one step "
                               "and rolling back automatically if the host loses its network.",
                               nic, want),
                   {fmt::format("ip link add {} type bridge", want), fmt::format("ip link set {} master {}", nic, want),
                    fmt::format("ip link set {} up", want), fmt::format("kvmready fix --apply --yes --bridge {} --uplink {}", want, nic)},
                   ids::fix::net_bridge, "confirm", true);
            return;
        }
        const BridgeInfo& b = *it;
        if (b.admin_up && !*b.admin_up) {
            set(out, Status::Fail, fmt::format("bridge {} is administratively down: guests attached to it have no network", want));
            remedy(out, "Bring it up.", {fmt::format("ip link set {} up", want)}, ids::fix::net_bridge, "automatic", true);
            return;
        }
        auto ups = uplinks(b);
        if (ups.empty()) {
            set(out, Status::Warn,
                fmt::format("bridge {} has no uplink (no physical NIC, nor a bond or VLAN over one, among its ports): guests on it reach "
                            "only each other and the host",
                            bridge_summary(b, n)));
            const std::string nic = nic_placeholder(n);
            remedy(out,
                   fmt::format("Enslave the NIC that leads to the guests' network: by hand from a console ({}'s addresses must move to {}), "
                               "or with kvmready fix, which moves them in one step and rolls back if the host loses its network.",
                               nic, want),
                   {fmt::format("ip link set {} master {}", nic, want), fmt::format("kvmready fix --apply --yes --bridge {} --uplink {}", want, nic)},
                   ids::fix::net_bridge, "confirm", true);
            return;
        }
        if (std::all_of(ups.begin(), ups.end(), [](const BridgePort* p) { return port_down(*p); })) {
            set(out, Status::Warn, fmt::format("{}: its uplink has no carrier, so guests on it are cut off from the network", bridge_summary(b, n)));
            remedy(out, "Check the cable/switch port of the uplink NIC, or bring it up.",
                   {fmt::format("ip link set {} up", ups.front()->name)}, "", "manual", true);
            return;
        }
        set(out, Status::Pass, bridge_summary(b, n));
        return;
    }

    if (n.bridges.empty()) {
        set(out, Status::Pass,
            "no Linux bridge exists, which is fine: libvirt's NAT network creates its own (virbr0) when it starts; name one with --bridge "
            "to require it");
        return;
    }
    // Without --bridge only what certainly cuts guests off is a warning: a
    // down bridge something is attached to, an uplink without carrier.
    std::vector<std::string> summaries, problems;
    const BridgeInfo* down = nullptr;
    for (const auto& b : n.bridges) {
        summaries.push_back(bridge_summary(b, n));
        if (b.admin_up && !*b.admin_up && !b.ports.empty()) {
            problems.push_back(fmt::format("{} is administratively down with {} port{} attached", b.name, b.ports.size(),
                                           b.ports.size() == 1 ? "" : "s"));
            if (!down) down = &b;
        }
        auto ups = uplinks(b);
        if (!ups.empty() && std::all_of(ups.begin(), ups.end(), [](const BridgePort* p) { return port_down(*p); }))
            problems.push_back(fmt::format("{}'s uplink {} has no carrier", b.name, ups.front()->name));
    }
    if (!problems.empty()) {
        set(out, Status::Warn, join(problems, "; ") + " (" + join(summaries, "; ") + ")");
        if (down) remedy(out, "Bring the bridge up.", {fmt::format("ip link set {} up", down->name)}, ids::fix::net_bridge, "automatic", true);
        else remedy(out, "Check the cable/switch port of the uplink NIC.", {}, "", "manual", false);
        return;
    }
    set(out, Status::Pass, join(summaries, "; "));
}

// ---- ip forwarding -----------------------------------------------------------

// Bridges whose guests this host routes: libvirt's NAT/route networks, and
// other bridges that carry an IPv4 address and no uplink (the shape of a NAT
// bridge such as docker0 or a hand-made one; also of a host-only bridge, so
// these only ever inform, never warn, about forwarding).
struct Routed {
    std::string bridge;
    std::string why;           // "libvirt NAT network 'default'", "br9 has 10.0.0.1/24 and no uplink"
    bool active = true;
    bool from_libvirt = false;
};

std::vector<Routed> routed_bridges(const Facts& f) {
    std::vector<Routed> out;
    if (auto nets = libvirt_forward_networks(f))
        for (const auto& n : *nets)
            out.push_back({n.bridge, fmt::format("libvirt {} network '{}' ({})", n.mode == "nat" ? "NAT" : "routed", n.name, n.bridge),
                           n.active, true});
    const auto owned = libvirt_bridges(f);
    for (const auto& b : f.net.bridges) {
        if (owned.count(b.name) || !has_ipv4(b) || !uplinks(b).empty()) continue;
        std::vector<std::string> a;
        for (const auto& x : b.addresses)
            if (x.family == "inet") a.push_back(addr_text(x));
        out.push_back({b.name, fmt::format("{} (has {} and no uplink)", b.name, join(a, " ")), true, false});
    }
    return out;
}

void ip_forward(const Facts& f, const Results&, Finding& out) {
    const auto& n = f.net;
    auto& ev = out.evidence;
    if (!n.ip_forward) {
        set(out, Status::Unknown, n.probed ? "/proc/sys/net/ipv4/ip_forward could not be read" : "the network was not probed in this recording");
        remedy(out, "Read it on the host.", {"sysctl net.ipv4.ip_forward"}, "", "manual", false);
        return;
    }
    ev["ip_forward"] = *n.ip_forward;
    if (n.ipv6_forwarding) ev["ipv6_forwarding"] = *n.ipv6_forwarding;
    const auto routed = routed_bridges(f);
    ev["libvirt_networks_known"] = libvirt_forward_networks(f).has_value();
    Json rj = Json::array();
    for (const auto& r : routed)
        rj.push_back({{"bridge", r.bridge}, {"why", r.why}, {"active", r.active}, {"source", r.from_libvirt ? "libvirt" : "bridge shape"}});
    ev["routed"] = rj;
    std::vector<std::string> nat_active, nat_inactive, shaped;
    for (const auto& r : routed) (r.from_libvirt ? (r.active ? nat_active : nat_inactive) : shaped).push_back(r.why);
    if (*n.ip_forward == 1) {
        std::vector<std::string> users = nat_active;
        users.insert(users.end(), shaped.begin(), shaped.end());
        set(out, Status::Pass,
            users.empty() ? "IPv4 forwarding is on" : fmt::format("IPv4 forwarding is on, as guests routed through {} need", join(users, " and ")));
        return;
    }
    if (!nat_active.empty()) {
        set(out, Status::Warn,
            fmt::format("IPv4 forwarding is off although {} is active: its guests reach the host but nothing beyond it", join(nat_active, " and ")));
        remedy(out,
               "libvirt turns forwarding on itself when it starts a NAT network, so something switched it off afterwards (a "
               "sysctl.d file applied later, a firewall script); turn it on and keep it on.",
               {"sysctl -w net.ipv4.ip_forward=1", "echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/60-ip-forward.conf"}, ids::fix::net_ip_forward,
               "confirm", true);
        return;
    }
    std::vector<std::string> notes;
    if (!nat_inactive.empty()) notes.push_back(fmt::format("libvirt turns it on itself when it starts {}", join(nat_inactive, " and ")));
    if (!shaped.empty())
        notes.push_back(fmt::format("{} can then only be host-only: guests behind it need forwarding on to reach further",
                                    join(shaped, " and ")));
    if (notes.empty())
        notes.push_back("nothing here routes guests (bridged guests do not need it: a bridge switches frames, it does not route "
                        "them; libvirt turns it on when it starts a NAT network)");
    set(out, Status::Pass, "IPv4 forwarding is off; " + join(notes, "; "));
}

// ---- firewall model ----------------------------------------------------------

enum class Tri { No, Maybe, Yes };

Tri combine(Tri a, Tri b) {
    if (a == Tri::No || b == Tri::No) return Tri::No;
    if (a == Tri::Maybe || b == Tri::Maybe) return Tri::Maybe;
    return Tri::Yes;
}

// A guest packet as a forward hook sees it. Interfaces are candidate sets:
// the packet comes in or goes out on one of them, or (other) on some
// interface we cannot name (the uplink of a routed packet, a future tap).
struct Pkt {
    std::string bridge;
    std::vector<std::string> in, out;
    bool in_other = false, out_other = false;
    bool bridged = false;       // switched by the bridge (not routed)
    bool established = false;   // reply traffic of a connection a guest opened
};

bool name_matches(const std::string& pattern, const std::string& name) {
    if (!pattern.empty() && (pattern.back() == '+' || pattern.back() == '*'))
        return name.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
    return pattern == name;
}

// other: the packet may use an interface outside cands, one that is never
// the bridge itself (a routed packet's other side is the uplink).
Tri match_if(const std::string& constraint, const std::vector<std::string>& cands, bool other, const std::string& bridge) {
    if (constraint.empty()) return Tri::Yes;
    const bool neg = constraint[0] == '!';
    std::string list = neg ? constraint.substr(1) : constraint;
    bool on_bridge = list.rfind("br:", 0) == 0;
    if (on_bridge) list = list.substr(3);
    std::vector<std::string> pats;
    std::istringstream in(list);
    for (std::string p; std::getline(in, p, ',');) pats.push_back(p);
    auto hit = [&](const std::string& name) {
        return std::any_of(pats.begin(), pats.end(), [&](const std::string& p) { return name_matches(p, name); });
    };
    if (on_bridge) {
        const bool h = hit(bridge);
        return (h != neg) ? Tri::Yes : Tri::No;
    }
    size_t hits = 0;
    for (const auto& c : cands) hits += hit(c) ? 1 : 0;
    const bool other_hits = other && std::any_of(pats.begin(), pats.end(), [&](const std::string& p) { return p != bridge; });
    const bool all = !cands.empty() && hits == cands.size() && !other;
    const bool none = hits == 0 && !other_hits;
    if (!neg) return all ? Tri::Yes : (hits > 0 || other_hits) ? Tri::Maybe : Tri::No;
    return all ? Tri::No : none ? Tri::Yes : Tri::Maybe;
}

Tri rule_matches(const FwRule& r, const Pkt& p) {
    Tri t = Tri::Yes;
    t = combine(t, match_if(r.iif, p.in, p.in_other, p.bridge));
    t = combine(t, match_if(r.oif, p.out, p.out_other, p.bridge));
    if (r.physdev_bridged) t = combine(t, p.bridged ? Tri::Yes : Tri::No);
    if (r.established_only) t = combine(t, p.established ? Tri::Yes : Tri::No);
    if (r.other_match) t = combine(t, Tri::Maybe);
    return t;
}

struct Outcome {
    enum Kind { Accept, Drop, Fallthrough } kind = Fallthrough;
    bool conditional = false;
    std::string by;             // the rule, or "policy drop"
};

const FwChain* find_chain(const std::vector<FwChain>& chains, const FwChain& from, const std::string& name) {
    for (const auto& c : chains)
        if (c.source == from.source && c.family == from.family && c.table == from.table && c.name == name) return &c;
    return nullptr;
}

// Conservative: an accept that may apply counts as accepting (libvirt's
// rules match on the guests' subnet, which we cannot know), a drop counts
// only when it certainly applies. So a warning means the packet meets a
// drop that nothing on its way accepts.
Outcome walk(const std::vector<FwChain>& chains, const FwChain& c, const Pkt& p, int depth) {
    if (depth > 16) return {};
    for (const auto& r : c.rules) {
        const Tri m = rule_matches(r, p);
        if (m == Tri::No) continue;
        const bool sure = m == Tri::Yes;
        if (r.verdict == "accept") return {Outcome::Accept, !sure, r.text};
        if (r.verdict == "drop" || r.verdict == "reject") {
            if (sure) return {Outcome::Drop, false, r.text};
            continue;
        }
        if (r.verdict == "return") {
            if (sure) return {};
            continue;
        }
        if (r.verdict == "jump" || r.verdict == "goto") {
            const FwChain* t = find_chain(chains, c, r.target);
            if (!t) continue;
            Outcome o = walk(chains, *t, p, depth + 1);
            if (o.kind == Outcome::Accept) {
                o.conditional |= !sure;
                return o;
            }
            if (o.kind == Outcome::Drop && sure) return o;
            if (r.verdict == "goto" && sure) return {};
        }
    }
    if (c.base) {
        if (c.policy == "drop") return {Outcome::Drop, false, "policy drop"};
        return {Outcome::Accept, false, "policy accept"};
    }
    return {};
}

std::string chain_name(const FwChain& c) {
    if (c.source == "iptables") return "iptables " + c.name;
    return fmt::format("nft {} {} {}", c.family, c.table, c.name);
}

struct PathResult {
    std::string bridge;
    std::string path;           // "bridged", "routed out", "routed reply"
    bool dropped = false;
    const FwChain* chain = nullptr;   // the base chain that drops, or that accepted by a rule
    std::string by;
};

bool routed_bridge(const Facts& f, const BridgeInfo& b) {
    for (const auto& r : routed_bridges(f))
        if (r.bridge == b.name) return true;
    return false;
}

std::vector<PathResult> evaluate(const Facts& f) {
    const auto& n = f.net;
    const auto& chains = n.firewall.chains;
    std::vector<PathResult> out;
    const bool nf_ip_all = n.bridge_nf.count("bridge-nf-call-iptables") && n.bridge_nf.at("bridge-nf-call-iptables") == 1;
    for (const auto& b : n.bridges) {
        const bool nf_ip = nf_ip_all || b.nf_call_iptables.value_or(0) == 1;
        std::vector<std::string> ports;
        for (const auto& p : b.ports) ports.push_back(p.name);
        struct Case {
            const char* path;
            Pkt pkt;
            bool ip_layer, bridge_layer;
        };
        std::vector<Case> cases;
        // Switched frames: at the IP layer only through br_netfilter, where
        // in and out are both the bridge; at the bridge layer always, where
        // they are its ports.
        Pkt sw{b.name, {b.name}, {b.name}, false, false, true, false};
        cases.push_back({"bridged", sw, nf_ip, false});
        // Ports by name: a rule for another bridge's port does not apply;
        // a bridge without ports yet may get any (a guest's future tap).
        Pkt swb{b.name, ports, ports, ports.empty(), ports.empty(), true, false};
        cases.push_back({"bridged", swb, false, true});
        if (routed_bridge(f, b) && n.ip_forward.value_or(0) == 1) {
            cases.push_back({"routed out", Pkt{b.name, {b.name}, {}, false, true, false, false}, true, false});
            cases.push_back({"routed reply", Pkt{b.name, {}, {b.name}, true, false, false, true}, true, false});
        }
        for (const auto& cs : cases) {
            PathResult pr{b.name, cs.path};
            bool any = false;
            for (const auto& c : chains) {
                if (!c.base) continue;
                const bool ipfam = c.family == "ip" || c.family == "inet";
                if (!((cs.ip_layer && ipfam) || (cs.bridge_layer && c.family == "bridge"))) continue;
                any = true;
                const Outcome o = walk(chains, c, cs.pkt, 0);
                if (o.kind == Outcome::Drop) {
                    pr.dropped = true;
                    pr.chain = &c;
                    pr.by = o.by;
                    break;
                }
                if (!pr.chain || pr.by == "policy accept") {
                    pr.chain = &c;
                    pr.by = o.by;
                }
            }
            if (any) out.push_back(pr);
        }
    }
    return out;
}

bool has_chain(const Facts& f, const std::string& source, const std::string& name) {
    return std::any_of(f.net.firewall.chains.begin(), f.net.firewall.chains.end(),
                       [&](const FwChain& c) { return c.source == source && c.name == name; });
}

// The rule that lets one dropped path through, for the chain that drops it.
std::string accept_command(const Facts& f, const PathResult& p) {
    const FwChain& c = *p.chain;
    const std::string& b = p.bridge;
    if (c.source == "iptables") {
        // Docker re-creates FORWARD's head on restart; its DOCKER-USER chain
        // is where it wants site rules.
        const std::string chain = has_chain(f, "iptables", "DOCKER-USER") ? "DOCKER-USER" : "FORWARD";
        if (p.path == "bridged") return fmt::format("iptables -I {} -i {} -o {} -j ACCEPT", chain, b, b);
        if (p.path == "routed out") return fmt::format("iptables -I {} -i {} -j ACCEPT", chain, b);
        return fmt::format("iptables -I {} -o {} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", chain, b);
    }
    if (c.table == "firewalld") return fmt::format("firewall-cmd --zone=trusted --add-interface={}", b);
    const std::string head = fmt::format("nft insert rule {} {} {}", c.family, c.table, c.name);
    if (c.family == "bridge") return fmt::format("{} meta ibrname {} accept", head, b);
    if (p.path == "bridged") return fmt::format("{} iifname {} oifname {} accept", head, b, b);
    if (p.path == "routed out") return fmt::format("{} iifname {} accept", head, b);
    return fmt::format("{} oifname {} ct state related,established accept", head, b);
}

Json paths_json(const std::vector<PathResult>& paths) {
    Json a = Json::array();
    for (const auto& p : paths)
        a.push_back({{"bridge", p.bridge},
                     {"path", p.path},
                     {"verdict", p.dropped ? "drop" : "accept"},
                     {"chain", p.chain ? chain_name(*p.chain) : ""},
                     {"by", p.by}});
    return a;
}

// ---- bridge netfilter --------------------------------------------------------

void bridge_netfilter(const Facts& f, const Results&, Finding& out) {
    const auto& n = f.net;
    auto& ev = out.evidence;
    if (!n.probed) {
        set(out, Status::Unknown, "the network was not probed in this recording");
        return;
    }
    ev["br_netfilter_loaded"] = n.br_netfilter_loaded;
    for (const auto& [k, v] : n.bridge_nf) ev[k] = v;
    if (!n.br_netfilter_loaded) {
        set(out, Status::Pass, "br_netfilter is not loaded: frames switched by a bridge bypass iptables and nftables' ip/inet rules");
        return;
    }
    const int ip = n.bridge_nf.count("bridge-nf-call-iptables") ? n.bridge_nf.at("bridge-nf-call-iptables") : 0;
    const int ip6 = n.bridge_nf.count("bridge-nf-call-ip6tables") ? n.bridge_nf.at("bridge-nf-call-ip6tables") : 0;
    std::vector<std::string> per_bridge;
    for (const auto& b : n.bridges)
        if (b.nf_call_iptables.value_or(0) == 1) per_bridge.push_back(b.name);
    if (!per_bridge.empty()) ev["bridges_with_nf_call_iptables"] = per_bridge;
    if (ip == 0 && ip6 == 0 && per_bridge.empty()) {
        set(out, Status::Pass, "br_netfilter is loaded but bridge-nf-call-iptables/ip6tables are 0: bridged frames bypass the IP firewall");
        return;
    }
    std::string what =
        ip == 1 || ip6 == 1
            ? fmt::format("br_netfilter passes frames switched by a bridge through the IP firewall's FORWARD hook "
                          "(bridge-nf-call-iptables={}, bridge-nf-call-ip6tables={})",
                          ip, ip6)
            : fmt::format("br_netfilter passes frames switched by {} through the IP firewall's FORWARD hook (the bridge's own "
                          "nf_call_iptables=1)",
                          join(per_bridge, ", "));
    if (n.bridges.empty()) {
        set(out, Status::Pass, what + "; no bridge exists yet");
        return;
    }
    std::vector<std::string> dropped;
    if (n.firewall.probed)
        for (const auto& p : evaluate(f))
            if (p.dropped && p.path == "bridged" && p.chain && p.chain->family != "bridge") dropped.push_back(p.bridge);
    if (dropped.empty()) {
        set(out, Status::Pass, what + "; nothing there drops them now (a FORWARD drop policy would cut bridged guests off)");
        return;
    }
    set(out, Status::Warn, fmt::format("{}, and the firewall drops them on {} (see net.firewall)", what, join(dropped, ", ")));
    std::vector<std::string> cmds;
    if (ip == 1 || ip6 == 1) cmds.push_back("sysctl -w net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0");
    for (const auto& b : per_bridge) cmds.push_back(fmt::format("ip link set {} type bridge nf_call_iptables 0", b));
    remedy(out,
           "Accept the bridged traffic (net.firewall gives the rule), or stop sending bridged frames through the IP firewall if "
           "nothing here needs it (Docker's inter-container isolation does).",
           cmds, "", "manual", true);
}

// ---- firewall ----------------------------------------------------------------

void firewall(const Facts& f, const Results&, Finding& out) {
    const auto& n = f.net;
    const auto& fw = n.firewall;
    auto& ev = out.evidence;
    if (!n.probed) {
        set(out, Status::Unknown, "the network was not probed in this recording");
        return;
    }
    if (!fw.probed) {
        set(out, Status::Skip, fw.not_probed_reason.empty() ? "the firewall was not examined" : fw.not_probed_reason);
        return;
    }
    ev["iptables"] = fw.iptables_ok ? "read" : fw.iptables_error;
    ev["nft"] = fw.nft_ok ? "read" : fw.nft_error;
    if (!fw.legacy_tables.empty()) ev["legacy_iptables_tables"] = fw.legacy_tables;
    Json bases = Json::array();
    for (const auto& c : fw.chains)
        if (c.base) bases.push_back(chain_name(c) + " policy " + (c.policy.empty() ? "accept" : c.policy));
    ev["forward_chains"] = bases;
    if (!fw.iptables_ok && !fw.nft_ok) {
        const bool unrecorded = fw.iptables_error.find("not recorded") != std::string::npos &&
                                fw.nft_error.find("not recorded") != std::string::npos;
        if (unrecorded) {
            set(out, Status::Unknown, "this recording holds no firewall rules (iptables -S and nft -j list ruleset were not recorded)");
            remedy(out, "Record the host again with this kvmready version, as root.", {"kvmready check --record DIR"}, "", "manual", true);
            return;
        }
        const bool perm = fw.iptables_error.find("ermission") != std::string::npos || fw.nft_error.find("ermitted") != std::string::npos;
        // iptables-nft's rules are nf_tables': one reading failed for both.
        const std::string why = fw.iptables_error == fw.nft_error ? fw.nft_error : fw.iptables_error + "; " + fw.nft_error;
        set(out, Status::Unknown, "could not read the firewall: " + why);
        if (perm) remedy(out, "Reading firewall rules needs root.", {"sudo kvmready check net.firewall"}, "", "manual", true);
        else remedy(out, "Install the tools that read the rules.", {package_install(f, {"iptables nftables", "iptables-nft nftables", "iptables nftables", "iptables-nft nftables"})}, "", "manual", true);
        return;
    }
    const auto paths = evaluate(f);
    ev["paths"] = paths_json(paths);
    std::vector<const PathResult*> drops;
    for (const auto& p : paths)
        if (p.dropped) drops.push_back(&p);
    std::set<std::string> bridge_names;
    for (const auto& b : n.bridges) bridge_names.insert(b.name);
    const std::string partial = !fw.iptables_ok ? " (iptables unreadable: " + fw.iptables_error + ")"
                                : !fw.nft_ok    ? " (nft unreadable: " + fw.nft_error + ")"
                                                : "";
    if (drops.empty()) {
        std::vector<std::string> drop_policies;
        for (const auto& c : fw.chains)
            if (c.base && c.policy == "drop") drop_policies.push_back(chain_name(c));
        std::string msg = fmt::format("nothing drops forwarded guest traffic on {}", join({bridge_names.begin(), bridge_names.end()}, ", "));
        if (!drop_policies.empty()) msg += fmt::format(" ({} drop by default, but rules accept these bridges)", join(drop_policies, ", "));
        if (paths.empty()) msg = "no forward-hook firewall rules apply to the bridges here";
        set(out, Status::Pass, msg + partial);
        return;
    }
    std::vector<std::string> what, cmds;
    bool libvirt_nat = false;
    for (const auto* p : drops) {
        what.push_back(fmt::format("{} {} traffic by {} ({})", p->bridge, p->path, chain_name(*p->chain), p->by));
        const std::string cmd = accept_command(f, *p);
        if (std::find(cmds.begin(), cmds.end(), cmd) == cmds.end()) cmds.push_back(cmd);
        for (const auto& r : routed_bridges(f))
            if (r.bridge == p->bridge && r.from_libvirt && p->path != "bridged") libvirt_nat = true;
    }
    set(out, Status::Warn, fmt::format("the firewall drops guest traffic: {}{}", join(what, "; "), partial));
    std::string text =
        "Accept the guests' traffic with a rule of its own (keep the firewall); these commands last until reboot, so add them to "
        "your firewall's saved configuration too.";
    if (libvirt_nat)
        text += " libvirt installs such rules itself for its NAT networks when it starts them: if they are gone (a firewall reload "
                "after libvirt started), restarting the network re-creates them.";
    remedy(out, text, cmds, "", "manual", true);
}

}  // namespace

void register_net(std::vector<CheckSpec>& r) {
    r.push_back({ids::net_tun, "TUN/TAP device", Level::Recommended, {},
                 "stat(/dev/net/tun): type and device numbers (10:200); /proc/misc for whether the tun driver is registered; "
                 "/lib/modules/RELEASE/kernel/drivers/net/tun.ko* when it is not.",
                 "QEMU's tap networking (libvirt bridged and NAT networks, -netdev tap, qemu-bridge-helper) creates each guest NIC's "
                 "tap through /dev/net/tun; without it guests have only QEMU's slow user-mode network.",
                 "modprobe tun; if the driver is loaded and the node is missing, mknod /dev/net/tun c 10 200.", tun});
    r.push_back({ids::net_vhost_net, "vhost-net device", Level::Recommended, {},
                 "stat(/dev/vhost-net) (10:238); /proc/misc; /lib/modules/RELEASE/kernel/drivers/vhost/vhost_net.ko*.",
                 "vhost-net moves virtio-net's packet processing into the kernel: without it every packet goes through QEMU's "
                 "user-space loop (more latency, more CPU). virt-host-validate warns about it too.",
                 "modprobe vhost_net (and list it in /etc/modules-load.d/).", vhost_net});
    r.push_back({ids::net_vhost_vsock, "vhost-vsock device", Level::Optional, {},
                 "stat(/dev/vhost-vsock) (10:241); /proc/misc; /lib/modules/RELEASE/kernel/drivers/vhost/vhost_vsock.ko*.",
                 "virtio-vsock gives guests host<->guest sockets without a network (guest agents, systemd's vsock notifications); "
                 "optional for most hosts.",
                 "modprobe vhost_vsock.", vhost_vsock});
    r.push_back({ids::net_bridges, "Linux bridges for guests", Level::Recommended, {},
                 "/sys/class/net/*/bridge (which interfaces are bridges), their operstate, flags (IFF_UP), carrier, bridge/stp_state, "
                 "bridge/forward_delay, brif/* (ports); per port: device (a physical NIC), tun_flags (a tap), uevent DEVTYPE, "
                 "lower_* links (a bond or VLAN over a NIC), iflink; the bridges' addresses over rtnetlink (what `ip -j addr show "
                 "type bridge` prints; read only if a bridge exists).",
                 "Bridged guests sit on the LAN through a Linux bridge whose uplink is a physical NIC (or a bond/VLAN over one). A "
                 "bridge that is down, or has no uplink, leaves guests with no network or only each other. STP on delays a new "
                 "port (a guest booting) by twice the forward delay before it forwards frames. Without --bridge, having no bridge "
                 "is fine: libvirt's NAT network is the default path.",
                 "ip link add BR type bridge; ip link set NIC master BR; ip link set BR up (from a console; persist in "
                 "/etc/network/interfaces or NetworkManager).",
                 bridges});
    r.push_back({ids::net_ip_forward, "IPv4 forwarding for NAT networks", Level::Recommended, {},
                 "/proc/sys/net/ipv4/ip_forward (per network namespace), /proc/sys/net/ipv6/conf/all/forwarding; libvirt's "
                 "networks (forward mode nat/route and their bridges) or, without them, bridges with an IPv4 address and no uplink.",
                 "Guests on a NAT or routed network reach the world through this host routing their packets, which needs "
                 "ip_forward=1. libvirt switches it on itself when it starts such a network, so off while one is active means "
                 "something reset it. Bridged guests do not need it.",
                 "sysctl -w net.ipv4.ip_forward=1, persisted in /etc/sysctl.d/.", ip_forward});
    r.push_back({ids::net_bridge_netfilter, "Bridged traffic and the IP firewall (br_netfilter)", Level::Optional, {},
                 "/proc/sys/net/bridge/bridge-nf-call-{iptables,ip6tables,arptables} (present only while br_netfilter is loaded, "
                 "per namespace); the firewall evaluation of net.firewall.",
                 "With br_netfilter loaded and bridge-nf-call-iptables=1 (Docker and Kubernetes load it), frames that a bridge "
                 "merely switches between a guest and the LAN also traverse iptables' FORWARD chain: a DROP policy there (Docker "
                 "sets one) silently cuts bridged guests off.",
                 "Accept bridged traffic in FORWARD (iptables -I FORWARD -i BR -o BR -j ACCEPT), or set "
                 "net.bridge.bridge-nf-call-iptables=0 if nothing needs bridged filtering.",
                 bridge_netfilter});
    r.push_back({ids::net_firewall, "Firewall lets guest traffic through", Level::Recommended, {},
                 "The nf_tables ruleset over netlink (what `nft -j list ruleset` lists: base chains at the forward hook of ip, "
                 "inet and bridge tables and the chains they jump to; iptables-nft's filter table, FORWARD and its chains, is "
                 "judged as iptables' with its conntrack and physdev matches decoded), /proc/net/ip_tables_names and `iptables -S` "
                 "only when legacy iptables holds a filter table; read only when a bridge exists. Each bridge's switched, "
                 "routed-out and reply IPv4 traffic is walked through those chains (ip6tables and ip6 tables are not judged).",
                 "A forward-hook chain whose policy or final rule drops (Docker's FORWARD DROP, a default-deny nftables config) "
                 "drops guests' traffic unless a rule accepts it first. The walk counts any accept that may apply (libvirt's "
                 "rules match the guests' subnet) and only drops that certainly apply, so a warning is a real drop. libvirt adds "
                 "its own accept rules for its NAT networks when it starts them.",
                 "Add an accept rule for the bridge (iptables -I FORWARD -i BR -o BR -j ACCEPT for bridged guests; -i BR -j "
                 "ACCEPT and -o BR -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT for routed ones); never disable the "
                 "firewall.",
                 firewall});
}

}  // namespace kvmready::checks
