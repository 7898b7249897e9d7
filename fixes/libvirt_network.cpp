// libvirt.network-default: define, start and autostart libvirt's default NAT
// network (or --network NAME, on --subnet A.B.C.D/N), from whatever state it
// is in: missing, defined but inactive, active but transient, active without
// autostart, active with its bridge deleted behind libvirt's back.
//
// Before defining, the subnet (192.168.122.0/24 unless --subnet) is compared
// with the host's routes, interface addresses and the other libvirt networks:
// libvirt refuses to start a network that overlaps one of them ("Network is
// already in use by interface ..."), so kvmready picks the next free
// 192.168.X.0/24 and says so. IP forwarding is net.ip-forward's business.
#include <fmt/format.h>

#include "fixes/fixes.hpp"
#include "fixes/libvirt_fix.hpp"

namespace kvmready::fix {

namespace {

const VirtNetwork* find_network(const Facts& f, const std::string& name) {
    for (const auto& n : f.virt.libvirt.networks)
        if (n.name == name) return &n;
    return nullptr;
}

// libvirt refuses to start a network that overlaps a route or address.
void require_startable(const PlanInput& in, const VirtNetwork& n) {
    const std::string& name = n.name;
    const auto used = lv::used_subnets(in, name);
    for (const auto& a : n.addresses) {
        const auto slash = a.find('/');
        auto ip = lv::parse_ipv4(a.substr(0, slash));
        if (!ip || slash == std::string::npos) continue;
        lv::Ipv4Net x;
        x.prefix = std::atoi(a.c_str() + slash + 1);
        x.addr = *ip & x.mask();
        if (const auto* c = lv::collision(used, x))
            throw std::runtime_error(fmt::format("network {} ({}) overlaps {}: libvirt would refuse to start it; move it to a free "
                                                 "subnet (virsh net-edit {}) or undefine it and let kvmready define one",
                                                 name, a, c->what, name));
    }
}

std::optional<Plan> plan_network(const PlanInput& in) {
    const auto& s = in.facts.virt.libvirt.snapshot;
    if (!lv::libvirt_plannable(in, in.options.network_given || !in.options.subnet.empty(), s.networks_error, "network")) return std::nullopt;
    const std::string& name = in.options.network;
    const std::string uri = in.options.connect_uri;
    Plan p;
    p.fix_id = "libvirt.network-default";
    p.repairs = {ids::libvirt_network.text};
    p.reason = lv::reasons(in, p.fix_id);

    std::optional<lv::Ipv4Net> asked;
    if (!in.options.subnet.empty()) {
        asked = lv::parse_cidr(in.options.subnet);
        if (!asked) throw std::runtime_error(fmt::format("--subnet {}: expected an IPv4 network A.B.C.D/N with N from 8 to 30", in.options.subnet));
    }

    const VirtNetwork* n = s.connected ? find_network(in.facts, name) : nullptr;
    const auto define = [&] {
        const auto used = lv::used_subnets(in, name);
        lv::Ipv4Net net;
        if (asked) {
            if (const auto* c = lv::collision(used, *asked))
                throw std::runtime_error(fmt::format("--subnet {} overlaps {}: libvirt would refuse to start the network; choose another",
                                                     asked->str(), c->what));
            net = *asked;
        } else {
            const lv::Ipv4Net stock = *lv::parse_cidr("192.168.122.0/24");
            auto pick = lv::pick_subnet(used, stock);
            if (!pick) throw std::runtime_error("every 192.168.X.0/24 overlaps a route or address of this host: pass --subnet A.B.C.D/N");
            if (pick->addr != stock.addr)
                p.notes.push_back(fmt::format("{} (libvirt's usual subnet) is taken here by {}: network {} gets {} instead", stock.str(),
                                              lv::collision(used, stock)->what, name, pick->str()));
            net = *pick;
        }
        // libvirt's stock network names its bridge virbr0; when that name is
        // taken (by anything), libvirt picks the next free virbrN itself.
        std::string bridge = name == "default" ? "virbr0" : "";
        if (!bridge.empty() && in.config().exists("/sys/class/net/" + bridge)) {
            p.notes.push_back(fmt::format("{} exists already, so libvirt names the bridge (virbrN)", bridge));
            bridge.clear();
        }
        const std::string xml = lv::network_xml(name, net, bridge);
        const std::string file = name + ".xml";
        Step st = lv::object_step("libvirt.network.define", name, fmt::format("define NAT network {} on {}", name, net.str()),
                          lv::virsh(uri, {"net-define", file}));
        st.args["xml"] = xml;
        st.args["subnet"] = net.str();
        // Shown as the new file virsh net-define would read.
        st.args["diff"] = unified_diff("/" + file, std::nullopt, xml);
        p.steps.push_back(st);
    };
    const auto start = [&] {
        p.steps.push_back(lv::object_step("libvirt.network.start", name, fmt::format("start network {}", name), lv::virsh(uri, {"net-start", name})));
    };
    const auto autostart = [&] {
        p.steps.push_back(lv::object_step("libvirt.network.autostart", name, fmt::format("start network {} at boot", name),
                                  lv::virsh(uri, {"net-autostart", name})));
    };

    if (!n) {
        if (s.connected && name != "default" && !in.options.network_given) return std::nullopt;
        if (!s.connected)
            p.notes.push_back(fmt::format("libvirt does not answer yet (libvirt.daemon starts it first): each step looks at network {} "
                                          "when it runs and does only what is missing",
                                          name));
        if (p.reason.empty()) p.reason = s.connected ? fmt::format("libvirt network {} is not defined", name) : "libvirt is not running yet";
        define();
        start();
        autostart();
        return p;
    }
    if (asked) {
        const bool same = std::any_of(n->addresses.begin(), n->addresses.end(), [&](const std::string& a) {
            auto c = lv::parse_cidr(a);
            return c && c->addr == asked->addr && c->prefix == asked->prefix;
        });
        if (!same)
            p.notes.push_back(fmt::format("network {} exists ({}): --subnet {} is not applied to it (kvmready does not redefine "
                                          "networks; virsh net-edit {})",
                                          name, n->addresses.empty() ? "no IPv4 address" : n->addresses.front(), asked->str(), name));
    }
    if (!n->active) {
        require_startable(in, *n);
        if (p.reason.empty()) p.reason = fmt::format("libvirt network {} is defined but not active", name);
        start();
        if (!n->autostart) autostart();
        return p;
    }
    if (!n->persistent) {
        if (p.reason.empty()) p.reason = fmt::format("libvirt network {} is active but transient", name);
        Step st = lv::object_step("libvirt.network.define", name, fmt::format("make network {} persistent as it runs", name),
                          lv::virsh(uri, {"net-define", "/dev/stdin"}));
        st.commands = {lv::virsh(uri, {"net-dumpxml", name}), lv::virsh(uri, {"net-define", "/dev/stdin"})};
        st.args["xml"] = "";
        p.steps.push_back(st);
        autostart();
        p.notes.push_back(fmt::format("the running definition is kept as it is: virsh net-dumpxml {} | virsh net-define /dev/stdin", name));
        return p;
    }
    if (n->bridge_checked && !n->bridge_exists) {
        if (p.reason.empty()) p.reason = fmt::format("network {} is active but its bridge {} is gone", name, n->bridge);
        p.applicability = Applicability::Confirm;
        Step st = lv::object_step("libvirt.network.restart", name, fmt::format("restart network {} so libvirt re-creates bridge {}", name, n->bridge),
                          lv::virsh(uri, {"net-destroy", name}));
        st.commands.push_back(lv::virsh(uri, {"net-start", name}));
        p.steps.push_back(st);
        p.notes.push_back("guests attached to it lose their network until they are re-attached (or restarted)");
        if (!n->autostart) autostart();
        return p;
    }
    if (!n->autostart) {
        if (p.reason.empty()) p.reason = fmt::format("libvirt network {} does not start at boot", name);
        autostart();
        return p;
    }
    return std::nullopt;
}

}  // namespace

FixSpec fix_libvirt_network_default() {
    return {ids::fix::libvirt_network_default.text, "libvirt's NAT network", {ids::libvirt_network},
            "Defines, starts and autostarts libvirt's default NAT network (virbr0, 192.168.122.0/24), or --network NAME on "
            "--subnet A.B.C.D/N. A subnet that overlaps a route, an address or another libvirt network of the host is replaced by "
            "the next free 192.168.X.0/24 (the plan says so). A network in a partial state (defined but stopped, transient, "
            "without autostart, bridge deleted) gets only the missing steps. Undo stops and undefines only what the run did.",
            plan_network};
}

}  // namespace kvmready::fix
