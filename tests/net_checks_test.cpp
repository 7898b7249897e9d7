// net.* checks as pure functions of Facts, and the firewall parsers on the
// text iptables/nft really print. Situations a namespace here cannot hold
// (Docker's and libvirt's rule sets, libvirt's NAT network, modules) are
// written as the facts a probe would produce.
#include <gtest/gtest.h>

#include "core/check.hpp"
#include "core/facts.hpp"

namespace kvmready {
namespace {

Finding run_check(const Facts& f, const std::string& id) {
    const CheckSpec* spec = find_check(id);
    EXPECT_NE(spec, nullptr) << id;
    Finding out;
    if (!spec) return out;
    out.id = id;
    Results results(f);
    spec->run(f, results, out);
    return out;
}

BridgeInfo bridge(const std::string& name, std::vector<BridgePort> ports, std::vector<std::string> v4 = {}) {
    BridgeInfo b;
    b.name = name;
    b.operstate = "up";
    b.admin_up = true;
    b.stp_state = 0;
    b.ports = std::move(ports);
    for (const auto& a : v4) {
        auto slash = a.find('/');
        b.addresses.push_back({"inet", a.substr(0, slash), std::stoi(a.substr(slash + 1)), "global"});
    }
    return b;
}

BridgePort port(const std::string& name, const std::string& kind) {
    BridgePort p;
    p.name = name;
    p.kind = kind;
    p.operstate = "up";
    p.uplink = kind == "physical";
    if (p.uplink) p.uplink_nic = name;
    return p;
}

Facts base_facts() {
    Facts f;
    f.net.probed = true;
    f.net.ip_forward = 1;
    f.net.br_netfilter_loaded = true;
    f.net.bridge_nf = {{"bridge-nf-call-iptables", 1}, {"bridge-nf-call-ip6tables", 1}, {"bridge-nf-call-arptables", 1}};
    f.net.addresses_known = true;
    f.net.firewall.probed = true;
    f.net.firewall.iptables_ok = true;
    f.net.firewall.nft_ok = true;
    return f;
}

// `iptables -S` on a Debian 12 host after `apt install docker.io` and `docker run`.
const char* kDockerRules = R"(-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-ISOLATION-STAGE-1
-N DOCKER-ISOLATION-STAGE-2
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
)";

// libvirt 9's iptables rules for its default NAT network, beside a FORWARD DROP policy.
const char* kLibvirtRules = R"(-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N LIBVIRT_FWI
-N LIBVIRT_FWO
-N LIBVIRT_FWX
-N LIBVIRT_INP
-N LIBVIRT_OUT
-A INPUT -j LIBVIRT_INP
-A FORWARD -j LIBVIRT_FWX
-A FORWARD -j LIBVIRT_FWI
-A FORWARD -j LIBVIRT_FWO
-A LIBVIRT_FWI -d 192.168.122.0/24 -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A LIBVIRT_FWI -o virbr0 -j REJECT --reject-with icmp-port-unreachable
-A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT
-A LIBVIRT_FWO -i virbr0 -j REJECT --reject-with icmp-port-unreachable
-A LIBVIRT_FWX -i virbr0 -o virbr0 -j ACCEPT
-A LIBVIRT_INP -i virbr0 -p udp -m udp --dport 53 -j ACCEPT
)";

// `nft -j list ruleset` (nftables 1.0.6) of a ruleset loaded in a namespace.
const char* kNftRuleset = R"({"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "fw", "handle": 1}},
{"chain": {"family": "inet", "table": "fw", "name": "fw_fwd", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
{"chain": {"family": "inet", "table": "fw", "name": "sub", "handle": 2}},
{"chain": {"family": "inet", "table": "fw", "name": "sub2", "handle": 3}},
{"chain": {"family": "inet", "table": "fw", "name": "unused", "handle": 4}},
{"rule": {"family": "inet", "table": "fw", "chain": "fw_fwd", "handle": 4, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br0"}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "fw_fwd", "handle": 5, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br0"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "fw_fwd", "handle": 6, "expr": [{"jump": {"target": "sub"}}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "fw_fwd", "handle": 7, "expr": [{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "br3"}}, {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br3"}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "fw_fwd", "handle": 8, "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "sub", "handle": 10, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": {"set": ["br1", "br2"]}}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "sub", "handle": 11, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "sub", "handle": 16, "expr": [{"goto": {"target": "sub2"}}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "sub2", "handle": 17, "expr": [{"return": null}]}},
{"table": {"family": "bridge", "name": "bf", "handle": 2}},
{"chain": {"family": "bridge", "table": "bf", "name": "bfwd", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
{"rule": {"family": "bridge", "table": "bf", "chain": "bfwd", "handle": 2, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth1"}}, {"accept": null}]}}
]})";

const FwChain* chain(const std::vector<FwChain>& cs, const std::string& name) {
    for (const auto& c : cs)
        if (c.name == name) return &c;
    return nullptr;
}

TEST(NetParse, IptablesSave) {
    const auto cs = parse_iptables_save(kDockerRules);
    const FwChain* fwd = chain(cs, "FORWARD");
    ASSERT_NE(fwd, nullptr);
    EXPECT_TRUE(fwd->base);
    EXPECT_EQ(fwd->policy, "drop");
    ASSERT_EQ(fwd->rules.size(), 6u);
    EXPECT_EQ(fwd->rules[0].verdict, "jump");
    EXPECT_EQ(fwd->rules[0].target, "DOCKER-USER");
    EXPECT_EQ(fwd->rules[2].oif, "docker0");
    EXPECT_TRUE(fwd->rules[2].established_only);
    EXPECT_FALSE(fwd->rules[2].other_match);
    EXPECT_EQ(fwd->rules[4].iif, "docker0");
    EXPECT_EQ(fwd->rules[4].oif, "!docker0");
    EXPECT_EQ(fwd->rules[4].verdict, "accept");
    const auto lv = parse_iptables_save(kLibvirtRules);
    const FwChain* fwo = chain(lv, "LIBVIRT_FWO");
    ASSERT_NE(fwo, nullptr);
    EXPECT_TRUE(fwo->rules[0].other_match) << "-s is a condition";
    EXPECT_EQ(fwo->rules[1].verdict, "reject");
    EXPECT_FALSE(fwo->rules[1].other_match) << "--reject-with is no condition";
    // INPUT's chain is not on the forward path.
    const auto reach = forward_reachable(lv);
    EXPECT_EQ(chain(reach, "LIBVIRT_INP"), nullptr);
    EXPECT_NE(chain(reach, "LIBVIRT_FWX"), nullptr);
}

TEST(NetParse, NftJson) {
    const auto cs = forward_reachable(parse_nft_json(kNftRuleset));
    EXPECT_EQ(chain(cs, "unused"), nullptr);
    const FwChain* fwd = chain(cs, "fw_fwd");
    ASSERT_NE(fwd, nullptr);
    EXPECT_TRUE(fwd->base);
    EXPECT_EQ(fwd->policy, "drop");
    ASSERT_EQ(fwd->rules.size(), 5u);
    EXPECT_EQ(fwd->rules[0].iif, "br0");
    EXPECT_TRUE(fwd->rules[1].established_only);
    EXPECT_EQ(fwd->rules[3].iif, "!br3");
    EXPECT_EQ(fwd->rules[4].verdict, "reject");
    EXPECT_EQ(chain(cs, "sub")->rules[0].iif, "br1,br2");
    EXPECT_TRUE(chain(cs, "sub")->rules[1].other_match);
    EXPECT_NE(chain(cs, "sub2"), nullptr);
    EXPECT_EQ(chain(cs, "bfwd")->family, "bridge");
}

TEST(NetFirewall, DockerDropPolicyCutsBridgedGuestsButNotDocker) {
    Facts f = base_facts();
    f.net.bridges = {bridge("br0", {port("eno1", "physical"), port("vnet0", "tap")}),
                     bridge("docker0", {port("veth1", "veth")}, {"172.17.0.1/16"})};
    f.net.firewall.chains = forward_reachable(parse_iptables_save(kDockerRules));
    Finding r = run_check(f, "net.firewall");
    EXPECT_EQ(r.status, Status::Warn) << r.message;
    EXPECT_EQ(r.remediation.commands, std::vector<std::string>{"iptables -I DOCKER-USER -i br0 -o br0 -j ACCEPT"});
    EXPECT_EQ(r.message.find("docker0"), std::string::npos) << r.message;
    EXPECT_EQ(run_check(f, "net.bridge-netfilter").status, Status::Warn);

    // The rule it suggests, where Docker wants it: the warning goes away.
    std::string fixed = kDockerRules;
    fixed.replace(fixed.find("-A DOCKER-USER -j RETURN"), 0, "-A DOCKER-USER -i br0 -o br0 -j ACCEPT\n");
    f.net.firewall.chains = forward_reachable(parse_iptables_save(fixed));
    r = run_check(f, "net.firewall");
    EXPECT_EQ(r.status, Status::Pass) << r.message;

    // Without br_netfilter's hook bridged frames never meet FORWARD.
    f.net.firewall.chains = forward_reachable(parse_iptables_save(kDockerRules));
    f.net.bridge_nf["bridge-nf-call-iptables"] = 0;
    EXPECT_EQ(run_check(f, "net.firewall").status, Status::Pass);
}

Facts libvirt_nat(bool active) {
    Facts f = base_facts();
    f.virt.libvirt.snapshot.connected = true;
    VirtNetwork n;
    n.name = "default";
    n.active = active;
    n.bridge = "virbr0";
    n.forward_mode = "nat";
    f.virt.libvirt.networks.push_back(n);
    if (active) f.net.bridges = {bridge("virbr0", {port("vnet0", "tap")}, {"192.168.122.1/24"})};
    return f;
}

TEST(NetFirewall, LibvirtRulesAcceptItsNatNetworkDespiteDropPolicy) {
    Facts f = libvirt_nat(true);
    f.net.firewall.chains = forward_reachable(parse_iptables_save(kLibvirtRules));
    Finding r = run_check(f, "net.firewall");
    EXPECT_EQ(r.status, Status::Pass) << r.message;
    // Routed paths were judged, not only the bridged one.
    int routed = 0;
    for (const auto& p : r.evidence["paths"]) routed += p["path"].get<std::string>().rfind("routed", 0) == 0;
    EXPECT_EQ(routed, 2) << r.evidence.dump();

    // A routed packet leaves through the uplink, never through virbr0 itself:
    // LIBVIRT_FWX (-i virbr0 -o virbr0) cannot be what accepts it.
    for (const auto& p : r.evidence["paths"]) {
        if (p["path"] == "routed out") {
            EXPECT_EQ(p["by"], "-A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT") << p.dump();
        }
    }
    std::string no_fwo = kLibvirtRules;
    no_fwo.erase(no_fwo.find("-A LIBVIRT_FWO -s"), std::string("-A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT\n").size());
    f.net.firewall.chains = forward_reachable(parse_iptables_save(no_fwo));
    r = run_check(f, "net.firewall");
    EXPECT_EQ(r.status, Status::Warn) << r.message;
    EXPECT_NE(r.message.find("virbr0 routed out traffic by iptables FORWARD (-A LIBVIRT_FWO -i virbr0 -j REJECT"), std::string::npos)
        << r.message;

    // The same host after a firewall reload wiped libvirt's chains.
    f.net.firewall.chains = forward_reachable(parse_iptables_save("-P FORWARD DROP\n"));
    r = run_check(f, "net.firewall");
    EXPECT_EQ(r.status, Status::Warn) << r.message;
    EXPECT_NE(r.remediation.text.find("libvirt installs such rules itself"), std::string::npos) << r.remediation.text;
    EXPECT_EQ(r.remediation.commands,
              (std::vector<std::string>{"iptables -I FORWARD -i virbr0 -o virbr0 -j ACCEPT", "iptables -I FORWARD -i virbr0 -j ACCEPT",
                                        "iptables -I FORWARD -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"}));
}

TEST(NetFirewall, NftForwardChains) {
    Facts f = base_facts();
    f.net.bridges = {bridge("br0", {port("eno1", "physical")}), bridge("br1", {port("eno2", "physical")}),
                     bridge("br5", {port("eno3", "physical")})};
    f.net.firewall.iptables_ok = false;
    f.net.firewall.iptables_error = "iptables -S did not run: iptables: No such file or directory";
    auto all = forward_reachable(parse_nft_json(kNftRuleset));
    auto inet = all;
    inet.erase(std::remove_if(inet.begin(), inet.end(), [](const FwChain& c) { return c.family == "bridge"; }), inet.end());
    f.net.firewall.chains = inet;
    Finding r = run_check(f, "net.firewall");
    EXPECT_EQ(r.status, Status::Warn);
    // br0 and br1 are accepted (directly, and through the jump); br5 meets
    // the final reject.
    EXPECT_EQ(r.message.find("br0 "), std::string::npos) << r.message;
    EXPECT_EQ(r.message.find("br1 "), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("br5 bridged traffic by nft inet fw fw_fwd (reject)"), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("iptables unreadable"), std::string::npos);
    EXPECT_EQ(r.remediation.commands, std::vector<std::string>{"nft insert rule inet fw fw_fwd iifname br5 oifname br5 accept"});

    // The bridge family's drop policy sees every bridge's frames, whatever
    // br_netfilter does; its one accept is for a port none of them has.
    f.net.bridge_nf["bridge-nf-call-iptables"] = 0;
    f.net.firewall.chains = all;
    r = run_check(f, "net.firewall");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.remediation.commands,
              (std::vector<std::string>{"nft insert rule bridge bf bfwd meta ibrname br0 accept", "nft insert rule bridge bf bfwd meta ibrname br1 accept",
                                        "nft insert rule bridge bf bfwd meta ibrname br5 accept"}));
    f.net.bridges[0].ports.push_back(port("veth1", "veth"));
    r = run_check(f, "net.firewall");
    EXPECT_EQ(r.message.find("br0 "), std::string::npos) << "veth1's accept may apply to br0 now: " << r.message;
}

TEST(NetFirewall, UnreadableIsUnknownNeverPass) {
    Facts f = base_facts();
    f.net.bridges = {bridge("br0", {})};
    f.net.firewall.iptables_ok = f.net.firewall.nft_ok = false;
    f.net.firewall.iptables_error = "iptables -S exited with status 4: iptables v1.8.9 (nf_tables): Permission denied (you must be root)";
    f.net.firewall.nft_error = "nft -j list ruleset exited with status 1: Operation not permitted";
    const Finding r = run_check(f, "net.firewall");
    EXPECT_EQ(r.status, Status::Unknown);
    EXPECT_EQ(r.remediation.commands, std::vector<std::string>{"sudo kvmready check net.firewall"});
}

TEST(NetIpForward, LibvirtNatNetwork) {
    Facts f = libvirt_nat(true);
    f.net.ip_forward = 0;
    Finding r = run_check(f, "net.ip-forward");
    EXPECT_EQ(r.status, Status::Warn) << r.message;
    EXPECT_NE(r.message.find("libvirt NAT network 'default' (virbr0)"), std::string::npos) << r.message;
    EXPECT_EQ(r.remediation.fix_id, "net.ip-forward");
    EXPECT_EQ(r.remediation.commands.front(), "sysctl -w net.ipv4.ip_forward=1");

    f = libvirt_nat(false);
    f.net.ip_forward = 0;
    r = run_check(f, "net.ip-forward");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_NE(r.message.find("libvirt turns it on itself when it starts libvirt NAT network 'default'"), std::string::npos) << r.message;

    f = libvirt_nat(true);
    r = run_check(f, "net.ip-forward");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_NE(r.message.find("'default'"), std::string::npos);

    // An isolated libvirt network's bridge is no routed bridge.
    f = base_facts();
    f.net.ip_forward = 0;
    f.virt.libvirt.snapshot.connected = true;
    VirtNetwork iso;
    iso.name = "isolated";
    iso.active = true;
    iso.bridge = "virbr1";
    f.virt.libvirt.networks.push_back(iso);
    f.net.bridges = {bridge("virbr1", {}, {"192.168.100.1/24"})};
    r = run_check(f, "net.ip-forward");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_TRUE(r.evidence["routed"].empty()) << r.evidence.dump();
}

TEST(NetNodes, Outcomes) {
    Facts f = base_facts();
    f.modules.module_support = true;
    f.modules.modules_dir_found = true;
    f.kernel.release = "6.1.0-50-amd64";
    f.net.tun = {"/dev/net/tun", false, "", 0, 0, 0, 0, 0, true, false};
    Finding r = run_check(f, "net.tun");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.remediation.commands, (std::vector<std::string>{"mkdir -p /dev/net", "mknod -m 0660 /dev/net/tun c 10 200"}));

    f.net.vhost_net = {"/dev/vhost-net", false, "", 0, 0, 0, 0, 0, false, true};
    r = run_check(f, "net.vhost-net");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.remediation.commands.front(), "modprobe vhost_net");
    EXPECT_EQ(r.remediation.fix_id, "");  // no fix loads it: the commands are manual

    f.net.vhost_net.module_installed = false;
    r = run_check(f, "net.vhost-net");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_NE(r.message.find("ships no vhost_net module"), std::string::npos) << r.message;

    // kmod's static node before the module is loaded.
    f.net.vhost_net = {"/dev/vhost-net", true, "char", 10, 238, 0660, 0, 0, false, false};
    r = run_check(f, "net.vhost-net");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_NE(r.message.find("loads on first open"), std::string::npos);

    f.net.vhost_vsock = {"/dev/vhost-vsock", true, "char", 10, 99, 0600, 0, 0, true, false};
    EXPECT_EQ(run_check(f, "net.vhost-vsock").status, Status::Fail);
}

TEST(NetFacts, NotProbedIsUnknownNeverPass) {
    Facts f;  // a recording from before the net checks existed
    for (const char* id : {"net.tun", "net.vhost-net", "net.vhost-vsock", "net.bridges", "net.ip-forward", "net.bridge-netfilter",
                           "net.firewall"})
        EXPECT_EQ(run_check(f, id).status, Status::Unknown) << id;
}

TEST(NetFacts, JsonRoundTripKeepsFindings) {
    Facts f = libvirt_nat(true);
    f.net.bridges.push_back(bridge("br0", {port("bond0", "bond")}));
    f.net.bridges.back().ports[0].uplink = true;
    f.net.bridges.back().ports[0].uplink_nic = "eno1";
    f.net.bridges.back().stp_state = 1;
    f.net.bridges.back().forward_delay_cs = 1500;
    f.net.firewall.chains = forward_reachable(parse_iptables_save(kDockerRules));
    const Facts g = facts_from_json(facts_to_json(f));
    for (const auto& spec : registry()) {
        if (std::string(spec.id).rfind("net.", 0) != 0) continue;
        const Finding a = run_check(f, spec.id), b = run_check(g, spec.id);
        EXPECT_EQ(a.status, b.status) << spec.id;
        EXPECT_EQ(a.message, b.message) << spec.id;
        EXPECT_EQ(a.evidence, b.evidence) << spec.id;
    }
}

}  // namespace
}  // namespace kvmready
