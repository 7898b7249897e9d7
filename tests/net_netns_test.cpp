// net.* end to end in real network namespaces: bridges, veth pairs, taps,
// addresses, STP, sysctls and firewall rules are created with ip/iptables/nft
// inside namespaces this test owns, and the real binary runs there under
// `ip netns exec` (which remounts /sys for the namespace, so /sys/class/net
// shows only its interfaces; /proc/sys/net is per namespace anyway). Where
// the check says traffic is dropped, real pings between namespaces prove it,
// and the command it suggests is run to prove that it fixes it.
//
// The recorded fixtures under tests/fixtures/net-*/ are made here too:
// KVMREADY_RECORD_NET_FIXTURES=1 re-records them (see tests/fixtures/README-net.md);
// NetFixtureReplay judges them offline.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/facts_net.hpp"
#include "host/process.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kBinary = KVMREADY_BINARY;
const std::string kFixtures = KVMREADY_FIXTURES_DIR;
// No libvirt: a dead socket, so the checks judge from the namespace alone
// (a libvirtd on this machine lives in another namespace anyway).
const std::string kNoLibvirt = "qemu:///system?socket=/nonexistent/kvmready-net-test.sock";

struct Cmd {
    int rc = -1;
    std::string out, err;
};

Cmd run(const std::vector<std::string>& argv, int timeout_ms = 15000) {
    auto r = kvmready::host::run_process(argv, timeout_ms);
    Cmd c;
    c.rc = r.started && !r.timed_out ? r.exit_code : -1;
    c.out = r.out;
    c.err = r.err + r.error + (r.timed_out ? " (timed out)" : "");
    return c;
}

bool have(const std::string& tool) {
    const char* path = std::getenv("PATH");
    std::istringstream in(path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    for (std::string dir; std::getline(in, dir, ':');)
        if (::access((dir + "/" + tool).c_str(), X_OK) == 0) return true;
    return false;
}

std::vector<std::string> words(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

// A network namespace that exists exactly as long as this object: deleting
// it destroys its interfaces and the far ends of its veth pairs.
class Netns {
public:
    explicit Netns(const std::string& tag) {
        static std::atomic<int> counter{0};
        name_ = fmt::format("kvrn-{}-{}-{}", tag, ::getpid(), counter++);
        const Cmd c = run({"ip", "netns", "add", name_});
        ok_ = c.rc == 0;
        error_ = c.err;
    }
    ~Netns() {
        if (ok_) run({"ip", "netns", "del", name_});
    }
    Netns(const Netns&) = delete;
    Netns& operator=(const Netns&) = delete;

    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] const std::string& error() const { return error_; }
    [[nodiscard]] const std::string& name() const { return name_; }

    Cmd exec(std::vector<std::string> argv, int timeout_ms = 15000) const {
        argv.insert(argv.begin(), {"ip", "netns", "exec", name_});
        return run(argv, timeout_ms);
    }
    // A setup step that must work.
    bool must(const std::vector<std::string>& argv) const {
        const Cmd c = exec(argv);
        if (c.rc != 0) ADD_FAILURE() << "in " << name_ << ": " << ::testing::PrintToString(argv) << " -> " << c.rc << ": " << c.err;
        return c.rc == 0;
    }
    bool must(const std::string& line) const { return must(words(line)); }

private:
    std::string name_;
    bool ok_ = false;
    std::string error_;
};

struct Report {
    int rc = -1;
    json j;
    std::map<std::string, json> by_id;
    std::string err;
    const json& operator[](const std::string& id) const {
        static const json none = json::object();
        auto it = by_id.find(id);
        return it == by_id.end() ? none : it->second;
    }
    [[nodiscard]] std::string status(const std::string& id) const { return (*this)[id].value("status", "<missing>"); }
};

// j[key] for a const object, or an empty object when it has no such key.
const json& sub(const json& j, const char* key) {
    static const json none = json::object();
    return j.is_object() && j.contains(key) ? j[key] : none;
}

Report parse_report(const Cmd& c) {
    Report r;
    r.rc = c.rc;
    r.err = c.err;
    try {
        r.j = json::parse(c.out);
        for (const auto& f : r.j.at("checks")) r.by_id[f.at("id").get<std::string>()] = f;
    } catch (const json::exception& e) {
        ADD_FAILURE() << "kvmready output is not the JSON report (" << e.what() << "): " << c.out << c.err;
    }
    return r;
}

Report check_in(const Netns& ns, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {kBinary, "check", "net", "--json", "--connect", kNoLibvirt};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return parse_report(ns.exec(argv));
}

Report check_root(const std::string& dir, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {kBinary, "check", "net", "--json", "--root", dir, "--connect", kNoLibvirt};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return parse_report(run(argv));
}

const json* bridge_ev(const Report& r, const std::string& name) {
    const json& f = r["net.bridges"];
    if (!f.contains("evidence") || !f["evidence"].contains("bridges")) return nullptr;
    for (const auto& b : f["evidence"]["bridges"])
        if (b.value("name", "") == name) return &b;
    return nullptr;
}

std::vector<std::string> commands(const Report& r, const std::string& id) {
    return sub(r[id], "remediation").value("commands", std::vector<std::string>{});
}

bool contains(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

// A neighbour entry that failed while traffic was dropped can hold back the
// first packets once it is let through: start each probe from a clean cache
// and allow a second echo.
bool ping(const Netns& from, const std::string& addr) {
    from.exec({"ip", "neigh", "flush", "all"});
    return from.exec({"busybox", "ping", "-c", "2", "-W", "2", addr}, 8000).rc == 0;
}

// One echo is enough to show that traffic is dropped.
bool unreachable(const Netns& from, const std::string& addr) {
    return from.exec({"busybox", "ping", "-c", "1", "-W", "1", addr}, 5000).rc != 0;
}

class NetNs : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
        if (!have("ip")) GTEST_SKIP() << "iproute2's ip is not installed";
        Netns probe("probe");
        if (!probe.ok()) GTEST_SKIP() << "cannot create a network namespace here: " << probe.error();
    }
};

// hub holds the bridge; each guest namespace is a "VM" whose eth0's peer is
// a port of the bridge in hub.
void add_guest(const Netns& hub, const Netns& guest, const std::string& bridge, const std::string& port, const std::string& cidr) {
    hub.must({"ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", guest.name()});
    hub.must({"ip", "link", "set", port, "master", bridge});
    hub.must({"ip", "link", "set", port, "up"});
    guest.must("ip link set lo up");
    guest.must("ip link set eth0 up");
    guest.must({"ip", "addr", "add", cidr, "dev", "eth0"});
}

// Records a fixture tree from ns when asked to (KVMREADY_RECORD_NET_FIXTURES=1).
void maybe_record(const Netns& ns, const std::string& name) {
    const char* env = std::getenv("KVMREADY_RECORD_NET_FIXTURES");
    if (!env || std::string(env) != "1") return;
    // Into the repository, complete; fixture_overlay.py split stores it as an overlay.
    const fs::path dir = fs::path(KVMREADY_SOURCE_DIR) / "tests/fixtures" / ("net-" + name);
    std::error_code ec;
    fs::remove_all(dir, ec);
    const Cmd c = ns.exec({kBinary, "check", "--json", "--connect", kNoLibvirt, "--record", dir.string()});
    ASSERT_TRUE(fs::exists(dir / ".kvmready/host.json")) << c.err;
    // git keeps no empty directory (the recorder marks only listed ones), so
    // drop them now: the tree tested here is the tree a clone gets.
    for (bool removed = true; removed;) {
        removed = false;
        std::vector<fs::path> empty;
        for (const auto& e : fs::recursive_directory_iterator(dir))
            if (e.is_directory() && fs::is_empty(e.path())) empty.push_back(e.path());
        for (const auto& p : empty) removed |= fs::remove(p);
    }
}

TEST_F(NetNs, NoBridgeMeansNoProgramsAndNoWarnings) {
    Netns ns("none");
    ASSERT_TRUE(ns.ok());
    const Report r = check_in(ns);
    EXPECT_EQ(r.status("net.bridges"), "pass");
    EXPECT_NE(r["net.bridges"].value("message", "").find("no Linux bridge"), std::string::npos);
    EXPECT_EQ(r.status("net.firewall"), "skip");
    EXPECT_EQ(r.status("net.tun"), "pass") << r["net.tun"].dump();
    // Without a bridge neither ip, iptables nor nft may run: the recording
    // lists every program the probe ran.
    const fs::path tmp = fs::temp_directory_path() / fmt::format("kvmready-net-rec-{}", ::getpid());
    fs::remove_all(tmp);
    ns.exec({kBinary, "check", "net", "--json", "--connect", kNoLibvirt, "--record", tmp.string()});
    std::ifstream in(tmp / ".kvmready/host.json");
    ASSERT_TRUE(in) << "no recording written";
    const json hj = json::parse(in);
    for (const auto& c : hj.value("commands", json::array())) {
        const std::string prog = c.at("argv").at(0).get<std::string>();
        EXPECT_TRUE(prog != "ip" && prog != "iptables" && prog != "nft") << "ran " << c.at("argv").dump() << " without any bridge";
    }
    fs::remove_all(tmp);
    maybe_record(ns, "no-bridge");
}

TEST_F(NetNs, BridgesPortsStpAddressesAndDownBridge) {
    Netns hub("hub"), g1("g1");
    ASSERT_TRUE(hub.ok() && g1.ok());
    // br0: STP on, an address, a veth to a guest namespace and a tap.
    hub.must("ip link add br0 type bridge stp_state 1 forward_delay 400");
    hub.must("ip link set br0 up");
    hub.must("ip addr add 10.201.0.1/24 dev br0");
    add_guest(hub, g1, "br0", "vh1", "10.201.0.11/24");
    hub.must("ip tuntap add tap0 mode tap");
    hub.must("ip link set tap0 master br0");
    // br1: administratively down with a port; br2: up, empty, STP off.
    hub.must("ip link add br1 type bridge");
    hub.must("ip link add vx1 type veth peer name vy1");
    hub.must("ip link set vx1 master br1");
    hub.must("ip link add br2 type bridge stp_state 0");
    hub.must("ip link set br2 up");

    Report r = check_in(hub);
    const json* b0 = bridge_ev(r, "br0");
    const json* b1 = bridge_ev(r, "br1");
    const json* b2 = bridge_ev(r, "br2");
    ASSERT_TRUE(b0 && b1 && b2) << r["net.bridges"].dump(2);
    std::map<std::string, std::string> kinds;
    for (const auto& p : b0->at("ports")) kinds[p.at("name")] = p.at("kind");
    EXPECT_EQ(kinds, (std::map<std::string, std::string>{{"tap0", "tap"}, {"vh1", "veth"}}));
    EXPECT_TRUE(b0->at("uplinks").empty()) << "a veth or a tap is no uplink";
    for (const auto& p : b0->at("ports")) {
        if (p.at("name") == "tap0") {
            EXPECT_EQ(p.value("stp_port_state", ""), "disabled") << "tap0 is down";
        }
    }
    EXPECT_EQ(b0->value("stp", ""), "kernel");
    EXPECT_DOUBLE_EQ(b0->value("forward_delay_s", 0.0), 4.0);
    EXPECT_TRUE(contains(b0->value("addresses", std::vector<std::string>{}), "10.201.0.1/24")) << b0->dump();
    EXPECT_EQ(b1->value("admin_up", true), false);
    EXPECT_EQ(b1->at("ports").size(), 1u);
    EXPECT_EQ(b2->value("stp", ""), "off");
    EXPECT_TRUE(b2->at("ports").empty());
    // A down bridge with something attached is the one warning without --bridge.
    EXPECT_EQ(r.status("net.bridges"), "warn");
    EXPECT_NE(r["net.bridges"].value("message", "").find("br1 is administratively down"), std::string::npos);
    EXPECT_EQ(commands(r, "net.bridges"), std::vector<std::string>{"ip link set br1 up"});
    EXPECT_NE(r["net.bridges"].value("message", "").find("STP on (new ports forward after 8 s)"), std::string::npos)
        << r["net.bridges"].value("message", "");
    maybe_record(hub, "bridges");

    // Its own command fixes it.
    hub.must(commands(r, "net.bridges").front());
    r = check_in(hub);
    EXPECT_EQ(r.status("net.bridges"), "pass") << r["net.bridges"].dump(2);
    EXPECT_EQ(bridge_ev(r, "br1")->value("admin_up", false), true);
}

TEST_F(NetNs, RequestedBridge) {
    Netns hub("req");
    ASSERT_TRUE(hub.ok());
    hub.must("ip link add br0 type bridge");
    hub.must("ip link set br0 up");
    hub.must("ip link add br1 type bridge");

    Report r = check_in(hub, {"--bridge", "missing0"});
    EXPECT_EQ(r.status("net.bridges"), "fail");
    EXPECT_EQ(sub(r["net.bridges"], "remediation").value("fix_id", ""), "net.bridge");
    const auto cmds = commands(r, "net.bridges");
    ASSERT_FALSE(cmds.empty());
    EXPECT_EQ(cmds.front(), "ip link add missing0 type bridge");
    // No physical NIC in the namespace: the NIC is left for the admin to name.
    EXPECT_TRUE(contains(cmds, "ip link set <nic> master missing0")) << ::testing::PrintToString(cmds);
    EXPECT_TRUE(contains(cmds, "ip link set missing0 up"));

    r = check_in(hub, {"--bridge", "br1"});
    EXPECT_EQ(r.status("net.bridges"), "fail");
    EXPECT_EQ(commands(r, "net.bridges"), std::vector<std::string>{"ip link set br1 up"});

    r = check_in(hub, {"--bridge", "br0"});
    EXPECT_EQ(r.status("net.bridges"), "warn");
    EXPECT_NE(r["net.bridges"].value("message", "").find("no uplink"), std::string::npos);

    // Its commands, but for enslaving a NIC (there is none here), create a
    // bridge that is up and lacks only the uplink.
    r = check_in(hub, {"--bridge", "missing0"});
    for (const auto& c : commands(r, "net.bridges"))
        if (c.find("<nic>") == std::string::npos) hub.must(c);
    r = check_in(hub, {"--bridge", "missing0"});
    EXPECT_EQ(r.status("net.bridges"), "warn") << r["net.bridges"].dump(2);
    EXPECT_NE(r["net.bridges"].value("message", "").find("no uplink"), std::string::npos);
    ASSERT_NE(bridge_ev(r, "missing0"), nullptr);
    EXPECT_EQ(bridge_ev(r, "missing0")->value("admin_up", false), true);
}

TEST_F(NetNs, IpForwardIsPerNamespace) {
    Netns hub("fwd");
    ASSERT_TRUE(hub.ok());
    hub.must("ip link add br0 type bridge");
    hub.must("ip link set br0 up");
    hub.must("ip addr add 10.201.0.1/24 dev br0");

    hub.must("sysctl -qw net.ipv4.ip_forward=0");
    Report r = check_in(hub);
    EXPECT_EQ(sub(r["net.ip-forward"], "evidence").value("ip_forward", -1), 0);
    EXPECT_EQ(r.status("net.ip-forward"), "pass");
    const auto routed = sub(r["net.ip-forward"], "evidence").value("routed", json::array());
    ASSERT_EQ(routed.size(), 1u) << r["net.ip-forward"].dump(2);
    EXPECT_EQ(routed[0].value("bridge", ""), "br0");
    EXPECT_NE(r["net.ip-forward"].value("message", "").find("host-only"), std::string::npos);

    hub.must("sysctl -qw net.ipv4.ip_forward=1");
    r = check_in(hub);
    EXPECT_EQ(sub(r["net.ip-forward"], "evidence").value("ip_forward", -1), 1);
    EXPECT_EQ(r.status("net.ip-forward"), "pass");
    EXPECT_NE(r["net.ip-forward"].value("message", "").find("IPv4 forwarding is on"), std::string::npos);
}

class NetTraffic : public NetNs {
protected:
    void SetUp() override {
        NetNs::SetUp();
        if (IsSkipped()) return;
        if (!have("busybox")) GTEST_SKIP() << "busybox (for ping) is not installed";
        if (!have("iptables")) GTEST_SKIP() << "iptables is not installed";
        if (!fs::exists("/proc/sys/net/bridge/bridge-nf-call-iptables"))
            GTEST_SKIP() << "br_netfilter is not loaded on this kernel (no /proc/sys/net/bridge)";
    }
};

// Two "guests" on one bridge: with br_netfilter sending bridged frames to
// iptables and FORWARD's policy DROP, they cannot reach each other.
TEST_F(NetTraffic, ForwardDropCutsBridgedGuestsAndTheSuggestedRuleFixesIt) {
    Netns hub("hub"), g1("g1"), g2("g2");
    ASSERT_TRUE(hub.ok() && g1.ok() && g2.ok());
    hub.must("ip link add br0 type bridge stp_state 0");
    hub.must("ip link set br0 up");
    add_guest(hub, g1, "br0", "vh1", "10.201.0.11/24");
    add_guest(hub, g2, "br0", "vh2", "10.201.0.12/24");
    hub.must("sysctl -qw net.bridge.bridge-nf-call-iptables=1");
    ASSERT_TRUE(ping(g1, "10.201.0.12")) << "the bridge does not even work without a firewall";

    hub.must("iptables -P FORWARD DROP");
    EXPECT_TRUE(unreachable(g1, "10.201.0.12")) << "FORWARD DROP did not drop bridged traffic: the check's premise is wrong";
    Report r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "warn") << r["net.firewall"].dump(2);
    EXPECT_EQ(r.status("net.bridge-netfilter"), "warn") << r["net.bridge-netfilter"].dump(2);
    // No fix writes firewall rules (they belong to the admin's firewall
    // manager): the hint is the exact rule, and names no fix id.
    EXPECT_TRUE(sub(r["net.firewall"], "remediation")["fix_id"].is_null()) << r["net.firewall"].dump(2);
    const auto cmds = commands(r, "net.firewall");
    ASSERT_EQ(cmds, std::vector<std::string>{"iptables -I FORWARD -i br0 -o br0 -j ACCEPT"});
    maybe_record(hub, "forward-drop");

    hub.must(cmds.front());
    EXPECT_TRUE(ping(g1, "10.201.0.12")) << "the suggested rule did not let the guests through";
    r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "pass") << r["net.firewall"].dump(2);
    EXPECT_EQ(r.status("net.bridge-netfilter"), "pass");

    // Without br_netfilter's hook the DROP policy no longer sees bridged frames.
    hub.must({"iptables", "-D", "FORWARD", "-i", "br0", "-o", "br0", "-j", "ACCEPT"});
    hub.must("sysctl -qw net.bridge.bridge-nf-call-iptables=0");
    EXPECT_TRUE(ping(g1, "10.201.0.12"));
    r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "pass") << r["net.firewall"].dump(2);
    EXPECT_EQ(r.status("net.bridge-netfilter"), "pass") << r["net.bridge-netfilter"].dump(2);

    // ...unless the bridge asks for it itself.
    hub.must("ip link set br0 type bridge nf_call_iptables 1");
    EXPECT_TRUE(unreachable(g1, "10.201.0.12"));
    r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "warn") << r["net.firewall"].dump(2);
    EXPECT_EQ(bridge_ev(r, "br0")->value("nf_call_iptables", -1), 1);
}

// A NAT-style bridge: guests route through hub (ip_forward) to an upstream
// namespace; FORWARD DROP cuts them off in both directions.
TEST_F(NetTraffic, RoutedGuestsNeedForwardingAndForwardRules) {
    Netns hub("hub"), g1("g1"), up("up");
    ASSERT_TRUE(hub.ok() && g1.ok() && up.ok());
    hub.must("ip link add br0 type bridge stp_state 0");
    hub.must("ip link set br0 up");
    hub.must("ip addr add 10.201.0.1/24 dev br0");
    add_guest(hub, g1, "br0", "vh1", "10.201.0.11/24");
    g1.must("ip route add default via 10.201.0.1");
    hub.must({"ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", up.name()});
    hub.must("ip addr add 10.202.0.1/24 dev up0");
    hub.must("ip link set up0 up");
    up.must("ip link set eth0 up");
    up.must("ip addr add 10.202.0.2/24 dev eth0");
    up.must("ip route add 10.201.0.0/24 via 10.202.0.1");
    hub.must("sysctl -qw net.bridge.bridge-nf-call-iptables=0");

    hub.must("sysctl -qw net.ipv4.ip_forward=0");
    EXPECT_TRUE(unreachable(g1, "10.202.0.2"));
    hub.must("sysctl -qw net.ipv4.ip_forward=1");
    ASSERT_TRUE(ping(g1, "10.202.0.2")) << "routing through the hub does not work at all";

    hub.must("iptables -P FORWARD DROP");
    EXPECT_TRUE(unreachable(g1, "10.202.0.2"));
    Report r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "warn") << r["net.firewall"].dump(2);
    const auto cmds = commands(r, "net.firewall");
    EXPECT_EQ(cmds, (std::vector<std::string>{"iptables -I FORWARD -i br0 -j ACCEPT",
                                              "iptables -I FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"}));
    maybe_record(hub, "routed-drop");
    for (const auto& c : cmds) hub.must(c);
    EXPECT_TRUE(ping(g1, "10.202.0.2")) << "the suggested rules did not let routed guest traffic through";
    r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "pass") << r["net.firewall"].dump(2);
}

TEST_F(NetTraffic, NftForwardDropPolicy) {
    if (!have("nft")) GTEST_SKIP() << "nftables' nft is not installed";
    Netns hub("hub"), g1("g1"), g2("g2");
    ASSERT_TRUE(hub.ok() && g1.ok() && g2.ok());
    hub.must("ip link add br0 type bridge stp_state 0");
    hub.must("ip link set br0 up");
    add_guest(hub, g1, "br0", "vh1", "10.201.0.11/24");
    add_guest(hub, g2, "br0", "vh2", "10.201.0.12/24");
    hub.must("sysctl -qw net.bridge.bridge-nf-call-iptables=1");
    hub.must("nft add table inet kvt");
    hub.must({"nft", "add", "chain", "inet", "kvt", "fw", "{ type filter hook forward priority 0 ; policy drop ; }"});
    hub.must("nft add rule inet kvt fw ct state established,related accept");
    EXPECT_TRUE(unreachable(g1, "10.201.0.12"));
    Report r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "warn") << r["net.firewall"].dump(2);
    const auto cmds = commands(r, "net.firewall");
    ASSERT_EQ(cmds, std::vector<std::string>{"nft insert rule inet kvt fw iifname br0 oifname br0 accept"});
    hub.must(cmds.front());
    EXPECT_TRUE(ping(g1, "10.201.0.12"));
    r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "pass") << r["net.firewall"].dump(2);
}

// nft's bridge family filters switched frames with or without br_netfilter.
// hub gets br0 with two guests and a bridge-family forward chain that drops.
bool bridge_family_drop(const Netns& hub, const Netns& g1, const Netns& g2) {
    hub.must("ip link add br0 type bridge stp_state 0");
    hub.must("ip link set br0 up");
    add_guest(hub, g1, "br0", "vh1", "10.201.0.11/24");
    add_guest(hub, g2, "br0", "vh2", "10.201.0.12/24");
    hub.must("sysctl -qw net.bridge.bridge-nf-call-iptables=0");
    hub.must("nft add table bridge kvb");
    return hub.must({"nft", "add", "chain", "bridge", "kvb", "fw", "{ type filter hook forward priority 0 ; policy drop ; }"});
}

TEST_F(NetTraffic, NftBridgeFamilyDrop) {
    if (!have("nft")) GTEST_SKIP() << "nftables' nft is not installed";
    Netns hub("hub"), g1("g1"), g2("g2");
    ASSERT_TRUE(hub.ok() && g1.ok() && g2.ok());
    ASSERT_TRUE(bridge_family_drop(hub, g1, g2));
    EXPECT_TRUE(unreachable(g1, "10.201.0.12"));
    Report r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "warn") << r["net.firewall"].dump(2);
    EXPECT_EQ(r.status("net.bridge-netfilter"), "pass") << "br_netfilter's hook is off; the bridge family drops on its own";
    EXPECT_EQ(commands(r, "net.firewall"), std::vector<std::string>{"nft insert rule bridge kvb fw meta ibrname br0 accept"});
    // Accepting the bridge's ports by name also lets the guests through, and
    // the check sees that.
    hub.must({"nft", "insert", "rule", "bridge", "kvb", "fw", "iifname", "{ vh1, vh2 }", "accept"});
    EXPECT_TRUE(ping(g1, "10.201.0.12"));
    r = check_in(hub);
    EXPECT_EQ(r.status("net.firewall"), "pass") << r["net.firewall"].dump(2);
}

TEST_F(NetTraffic, NftBridgeFamilySuggestedRuleWorks) {
    if (!have("nft")) GTEST_SKIP() << "nftables' nft is not installed";
    Netns hub("hub"), g1("g1"), g2("g2");
    ASSERT_TRUE(hub.ok() && g1.ok() && g2.ok());
    ASSERT_TRUE(bridge_family_drop(hub, g1, g2));
    const Report r = check_in(hub);
    const auto cmds = commands(r, "net.firewall");
    ASSERT_EQ(cmds.size(), 1u) << r["net.firewall"].dump(2);
    const Cmd c = hub.exec(words(cmds.front()));
    if (c.rc != 0 && c.err.find("not supported") != std::string::npos)
        GTEST_SKIP() << "this kernel lacks nft_meta_bridge, so `" << cmds.front() << "` cannot load here: " << c.err;
    ASSERT_EQ(c.rc, 0) << c.err;
    EXPECT_TRUE(ping(g1, "10.201.0.12")) << "the suggested rule did not let the guests through";
    EXPECT_EQ(check_in(hub).status("net.firewall"), "pass");
}

TEST_F(NetNs, RecordedTreeReplaysToTheSameFindings) {
    if (!have("iptables")) GTEST_SKIP() << "iptables is not installed";
    Netns hub("rec"), g1("g1");
    ASSERT_TRUE(hub.ok() && g1.ok());
    hub.must("ip link add br0 type bridge");
    hub.must("ip link set br0 up");
    hub.must("ip addr add 10.201.0.1/24 dev br0");
    add_guest(hub, g1, "br0", "vh1", "10.201.0.11/24");
    hub.must("ip link add br1 type bridge");
    hub.must("ip link add vx1 type veth peer name vy1");
    hub.must("ip link set vx1 master br1");
    hub.must("sysctl -qw net.ipv4.ip_forward=1");
    hub.must("iptables -P FORWARD DROP");
    const fs::path tmp = fs::temp_directory_path() / fmt::format("kvmready-net-replay-{}", ::getpid());
    fs::remove_all(tmp);
    const Report live = parse_report(
        hub.exec({kBinary, "check", "net", "--json", "--connect", kNoLibvirt, "--record", tmp.string()}));
    const Report replay = check_root(tmp.string());
    fs::remove_all(tmp);
    ASSERT_FALSE(live.by_id.empty());
    for (const auto& [id, f] : live.by_id) {
        EXPECT_EQ(replay.status(id), f.value("status", "")) << id;
        EXPECT_EQ(replay[id].value("message", ""), f.value("message", "")) << id;
        EXPECT_EQ(sub(replay[id], "evidence"), sub(f, "evidence")) << id;
    }
    EXPECT_EQ(live.status("net.firewall"), "warn");
}

// kvmready reads nf_tables over netlink instead of running `iptables -S` and
// `nft -j list ruleset`: for the same rules (iptables-nft's as libvirt and
// Docker write them, nft's own with sets, wildcards and negations) it must
// see the same conditions and verdicts, chain by chain and rule by rule.
// Rule texts differ (nft syntax instead of iptables'), nothing else may.
std::map<std::string, std::string> judged(const std::vector<kvmready::FwChain>& chains) {
    std::map<std::string, std::string> out;
    // iptables' wildcard is "+", nft's "*"; a set's order is nobody's business.
    auto ifs = [](std::string s) {
        std::replace(s.begin(), s.end(), '+', '*');
        const std::string neg = !s.empty() && s[0] == '!' ? "!" : "";
        std::vector<std::string> names;
        std::istringstream in(s.substr(neg.size()));
        for (std::string n; std::getline(in, n, ',');) names.push_back(n);
        std::sort(names.begin(), names.end());
        std::string out = neg;
        for (const auto& n : names) out += (out.size() > neg.size() ? "," : "") + n;
        return out;
    };
    for (const auto& c : chains) {
        std::string v = fmt::format("base={} policy={}", c.base, c.policy);
        for (const auto& r : c.rules)
            v += fmt::format("\n  iif={} oif={} physdev={} est={} other={} verdict={} target={}", ifs(r.iif), ifs(r.oif), r.physdev_bridged,
                             r.established_only, r.other_match, r.verdict, r.target);
        out[c.family + " " + c.table + " " + c.name] = v;
    }
    return out;
}

TEST_F(NetNs, NetlinkRulesetJudgesLikeIptablesAndNft) {
    if (!have("iptables") || !have("nft")) GTEST_SKIP() << "iptables and nft are needed";
    Netns hub("nlr");
    ASSERT_TRUE(hub.ok());
    hub.must("ip link add virbr0 type bridge");
    hub.must("ip link add docker0 type bridge");
    for (const char* line : {
             "iptables -P FORWARD DROP", "iptables -N LIBVIRT_FWX", "iptables -N LIBVIRT_FWI", "iptables -N LIBVIRT_FWO",
             "iptables -N DOCKER-USER", "iptables -A FORWARD -j DOCKER-USER", "iptables -A FORWARD -j LIBVIRT_FWX",
             "iptables -A FORWARD -j LIBVIRT_FWI", "iptables -A FORWARD -j LIBVIRT_FWO",
             "iptables -A LIBVIRT_FWX -i virbr0 -o virbr0 -j ACCEPT",
             "iptables -A LIBVIRT_FWI -d 192.168.122.0/24 -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
             "iptables -A LIBVIRT_FWI -o virbr0 -j REJECT --reject-with icmp-port-unreachable",
             "iptables -A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT", "iptables -A LIBVIRT_FWO -i virbr0 -j REJECT",
             "iptables -A DOCKER-USER -j RETURN", "iptables -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
             "iptables -A FORWARD -o docker0 -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT",
             "iptables -A FORWARD -o docker0 -m conntrack ! --ctstate INVALID -j ACCEPT",
             "iptables -A FORWARD -i docker0 ! -o docker0 -j ACCEPT", "iptables -A FORWARD -i dock+ -m state --state ESTABLISHED -j DROP",
             "iptables -A FORWARD -m physdev --physdev-is-bridged -j ACCEPT", "iptables -A FORWARD -m physdev ! --physdev-is-bridged -j DROP",
             "iptables -A FORWARD -i virbr0 -m comment --comment guests -j LOG", "iptables -A FORWARD -i virbr0 -p tcp --dport 22 -j DROP",
             "iptables -A FORWARD -i virbr0 -g LIBVIRT_FWX", "iptables -t mangle -A FORWARD -o virbr0 -j DROP"})
        hub.must(line);
    for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
             {"nft", "add", "table", "inet", "kvt"},
             {"nft", "add", "chain", "inet", "kvt", "fw", "{ type filter hook forward priority 10 ; policy drop ; }"},
             {"nft", "add", "chain", "inet", "kvt", "sub"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "iifname", "{ virbr0, br* }", "oifname", "!=", "x", "ct", "state", "established,related", "accept"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "oifname", "{ virbr0, docker0 }", "drop"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "iifname", "!=", "{ lo, eth0 }", "jump", "sub"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "ct", "state", "established", "accept"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "ct", "state", "!=", "established", "accept"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "iifname", "virbr*", "oifname", "virbr0", "counter", "accept"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "iif", "lo", "accept"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "ip", "saddr", "10.0.0.0/8", "log", "drop"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "meta", "l4proto", "udp", "reject"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "iifname", "vmap", "{ virbr0 : accept, docker0 : drop }"},
             {"nft", "add", "rule", "inet", "kvt", "fw", "goto", "sub"},
             {"nft", "add", "rule", "inet", "kvt", "sub", "meta", "mark", "set", "3", "return"},
             {"nft", "add", "rule", "inet", "kvt", "sub", "limit", "rate", "3/second", "drop"},
             {"nft", "add", "table", "bridge", "kvb"},
             {"nft", "add", "chain", "bridge", "kvb", "fw", "{ type filter hook forward priority 0 ; policy accept ; }"},
             {"nft", "add", "rule", "bridge", "kvb", "fw", "iifname", "{ vh1, vh2 }", "accept"},
             {"nft", "add", "rule", "bridge", "kvb", "fw", "oifname", "vh3", "drop"}})
        hub.must(cmd);
    const fs::path tmp = fs::temp_directory_path() / fmt::format("kvmready-net-nl-{}", ::getpid());
    fs::remove_all(tmp);
    const Cmd rec = hub.exec({kBinary, "check", "net", "--json", "--connect", kNoLibvirt, "--record", tmp.string()});
    std::ifstream in(tmp / ".kvmready/host.json");
    ASSERT_TRUE(in) << "no recording written: " << rec.err;
    const json hj = json::parse(in);
    fs::remove_all(tmp);
    ASSERT_TRUE(hj.contains("nftables")) << "the ruleset was not read in process";
    ASSERT_EQ(hj["nftables"].value("error", ""), "");
    // Read in process: nothing ran.
    for (const auto& c : hj.value("commands", json::array())) ADD_FAILURE() << "ran " << c.at("argv").dump();

    const Cmd ipt = hub.exec({"iptables", "-S"});
    const Cmd nft = hub.exec({"nft", "-j", "list", "ruleset"});
    ASSERT_EQ(ipt.rc, 0) << ipt.err;
    ASSERT_EQ(nft.rc, 0) << nft.err;
    // The programs' view, as kvmready judged it before: iptables -S for the
    // filter table, nft for every other table.
    auto programs = kvmready::parse_iptables_save(ipt.out);
    for (auto& c : kvmready::parse_nft_json(nft.out))
        if (!(c.family == "ip" && c.table == "filter")) programs.push_back(c);
    const auto netlink = kvmready::parse_nft_ruleset(hj["nftables"]["ruleset"]);
    auto want = judged(programs), got = judged(netlink);
    // iptables -S shows INPUT and OUTPUT even when iptables-nft made no
    // such chain; nft's `iifname vmap {...}` and sets appear as nft prints
    // them. Compare what both list.
    for (const auto& [k, v] : want) {
        if (!got.count(k)) {
            EXPECT_TRUE(k == "ip filter INPUT" || k == "ip filter OUTPUT") << k << " missing from the netlink reading";
            continue;
        }
        EXPECT_EQ(got[k], v) << k;
    }
    for (const auto& [k, v] : got) EXPECT_TRUE(want.count(k)) << k << " only in the netlink reading";
    // And the verdict the check draws is the same as with the programs.
    const Report r = parse_report(rec);
    EXPECT_EQ(r.status("net.firewall"), "warn") << r["net.firewall"].dump(2);
}

// Committed recordings (tests/fixtures/README-net.md), judged offline.
struct FixtureCase {
    std::string tree;
    std::vector<std::string> args;
    std::map<std::string, std::string> statuses;
    std::vector<std::string> commands_of_firewall;
};

void PrintTo(const FixtureCase& c, std::ostream* os) {
    *os << c.tree;
    for (const auto& a : c.args) *os << " " << a;
}

class NetFixtureReplay : public ::testing::TestWithParam<FixtureCase> {};

TEST_P(NetFixtureReplay, Statuses) {
    const auto& c = GetParam();
    const fs::path dir = fs::path(kFixtures) / c.tree;
    ASSERT_TRUE(fs::exists(dir / ".kvmready/host.json")) << dir;
    // git keeps no empty directory: a tree that needs one replays differently from a clone.
    for (const auto& e : fs::recursive_directory_iterator(dir))
        EXPECT_FALSE(e.is_directory() && fs::is_empty(e.path())) << e.path() << " is empty";
    const Report r = check_root(dir.string(), c.args);
    for (const auto& [id, st] : c.statuses) EXPECT_EQ(r.status(id), st) << id << ": " << r[id].dump(2);
    if (!c.commands_of_firewall.empty()) {
        EXPECT_EQ(commands(r, "net.firewall"), c.commands_of_firewall);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Trees, NetFixtureReplay,
    ::testing::Values(
        FixtureCase{"net-no-bridge",
                    {},
                    {{"net.tun", "pass"}, {"net.bridges", "pass"}, {"net.ip-forward", "pass"}, {"net.firewall", "skip"}},
                    {}},
        FixtureCase{"net-no-bridge", {"--bridge", "br0"}, {{"net.bridges", "fail"}}, {}},
        FixtureCase{"net-bridges",
                    {},
                    {{"net.bridges", "warn"}, {"net.ip-forward", "pass"}, {"net.firewall", "pass"}, {"net.bridge-netfilter", "pass"}},
                    {}},
        FixtureCase{"net-bridges", {"--bridge", "br0"}, {{"net.bridges", "warn"}}, {}},
        FixtureCase{"net-bridges", {"--bridge", "br1"}, {{"net.bridges", "fail"}}, {}},
        FixtureCase{"net-forward-drop",
                    {},
                    {{"net.bridges", "pass"}, {"net.firewall", "warn"}, {"net.bridge-netfilter", "warn"}},
                    {"iptables -I FORWARD -i br0 -o br0 -j ACCEPT"}},
        FixtureCase{"net-routed-drop",
                    {},
                    {{"net.ip-forward", "pass"}, {"net.firewall", "warn"}, {"net.bridge-netfilter", "pass"}},
                    {"iptables -I FORWARD -i br0 -j ACCEPT",
                     "iptables -I FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"}}),
    [](const ::testing::TestParamInfo<FixtureCase>& i) {
        std::string n = i.param.tree + (i.param.args.empty() ? "" : "_" + i.param.args.back());
        std::replace(n.begin(), n.end(), '-', '_');
        return n;
    });

// A physical uplink cannot be made in a namespace here (no NIC may be moved
// in, and this kernel has no netdevsim/dummy/bond/vlan), so this tree is
// written by the test in the form a recording takes of a bond over a PCI NIC
// in a bridge, with a guest's tap beside it (sysfs links such as lower_eno1
// and brif/PORT become directories holding the files read through them).
TEST(NetRootedTree, BondOverPhysicalNicIsTheUplink) {
    const fs::path root = fs::temp_directory_path() / fmt::format("kvmready-net-tree-{}", ::getpid());
    fs::remove_all(root);
    auto put = [&](const std::string& path, const std::string& text) {
        fs::create_directories((root / path.substr(1)).parent_path());
        std::ofstream(root / path.substr(1)) << text;
    };
    put("/sys/class/net/br0/operstate", "up\n");
    put("/sys/class/net/br0/flags", "0x1003\n");
    put("/sys/class/net/br0/carrier", "1\n");
    put("/sys/class/net/br0/bridge/stp_state", "0\n");
    put("/sys/class/net/br0/bridge/forward_delay", "1500\n");
    put("/sys/class/net/br0/brif/bond0/state", "3\n");
    put("/sys/class/net/br0/brif/vnet0/state", "3\n");
    put("/sys/class/net/bond0/operstate", "up\n");
    put("/sys/class/net/bond0/uevent", "DEVTYPE=bond\nINTERFACE=bond0\nIFINDEX=5\n");
    put("/sys/class/net/bond0/bonding/mode", "active-backup 1\n");
    put("/sys/class/net/bond0/lower_eno1/ifindex", "2\n");
    put("/sys/class/net/eno1/operstate", "up\n");
    put("/sys/class/net/eno1/device/uevent", "DRIVER=igb\nPCI_CLASS=20000\n");
    put("/sys/class/net/vnet0/operstate", "unknown\n");
    put("/sys/class/net/vnet0/tun_flags", "0x1002\n");
    put("/sys/class/net/eno2/device/uevent", "DRIVER=igb\n");
    put("/sys/class/net/eno2/operstate", "down\n");
    const json addr = json::array({{{"ifname", "br0"},
                                    {"addr_info", json::array({{{"family", "inet"}, {"local", "192.0.2.10"}, {"prefixlen", 24},
                                                                {"scope", "global"}}})}}});
    const json host = {{"format", "kvmready-host-tree/1"},
                       {"nodes", json::object()},
                       {"commands", json::array({{{"argv", {"ip", "-j", "addr", "show", "type", "bridge"}},
                                                  {"result", {{"started", true}, {"exit_code", 0}, {"out", addr.dump()}}}}})}};
    put("/.kvmready/host.json", host.dump(2));

    Report r = check_root(root.string(), {"--bridge", "br0"});
    EXPECT_EQ(r.status("net.bridges"), "pass") << r["net.bridges"].dump(2);
    EXPECT_NE(r["net.bridges"].value("message", "").find("uplink bond0 over eno1"), std::string::npos)
        << r["net.bridges"].value("message", "");
    const json* b = bridge_ev(r, "br0");
    ASSERT_NE(b, nullptr);
    std::map<std::string, std::string> kinds;
    for (const auto& p : b->at("ports")) kinds[p.at("name")] = p.at("kind");
    EXPECT_EQ(kinds, (std::map<std::string, std::string>{{"bond0", "bond"}, {"vnet0", "tap"}}));
    EXPECT_EQ(b->value("addresses", std::vector<std::string>{}), std::vector<std::string>{"192.0.2.10/24"});
    // The one NIC not in a bridge is the one to enslave into a new bridge.
    r = check_root(root.string(), {"--bridge", "br9"});
    EXPECT_TRUE(contains(commands(r, "net.bridges"), "ip link set eno2 master br9")) << r["net.bridges"].dump(2);
    // The firewall was not recorded in this tree: unknown, never pass.
    EXPECT_EQ(r.status("net.firewall"), "unknown") << r["net.firewall"].dump(2);
    fs::remove_all(root);
}

}  // namespace
