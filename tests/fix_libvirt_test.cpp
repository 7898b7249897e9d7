// The libvirt fixes: libvirt.daemon, libvirt.network-default and
// storage.pool-default.
//
//  * FixLibvirtUnit: subnet arithmetic and the /proc and `ip -j` parsers.
//  * FixLibvirtPlan: plans from Facts (every partial state) over a recorded
//    host tree (routes, PID 1, pidfiles), no daemon.
//  * FixLibvirtOps: the ops in this process against a REAL private libvirtd
//    (tests/support/libvirt_daemon.hpp): apply, idempotence, undo, a run
//    killed after prepare or after apply, a foreign object under the same
//    name, a hung daemon. daemon.start and systemd.enable-now against fake
//    programs (this process must never start a daemon of this machine).
//  * FixLibvirtEndToEnd: the real binary inside the daemon's namespaces:
//    the bootstrap scenario (no network, no pool: fix --apply --yes, then
//    smoke --accel tcg passes; a second apply has nothing to do; --undo
//    removes them), a subnet collision, a stopped daemon, a hung daemon, and
//    a run killed at each step (KVMREADY_FIX_KILL_AT_STEP).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/probe.hpp"
#include "core/runner.hpp"
#include "fixes/fix.hpp"
#include "fixes/fixes.hpp"
#include "fixes/libvirt_fix.hpp"
#include "host/host.hpp"
#include "support/libvirt_daemon.hpp"

namespace {

using namespace kvmready;
using namespace kvmready::fix;
using kvmready::testsupport::LibvirtDaemon;
using json = nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::string& p, const std::string& text, unsigned mode = 0644) {
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p, std::ios::binary) << text;
    ::chmod(p.c_str(), mode);
}

struct TempDir {
    std::string path;
    explicit TempDir(const char* base = "/tmp") {
        std::string t = std::string(base) + "/kvmready-fixlv-XXXXXX";
        if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// ---- FixLibvirtUnit ----------------------------------------------------------

TEST(FixLibvirtUnit, Cidr) {
    auto n = lv::parse_cidr("192.168.122.7/24");
    ASSERT_TRUE(n);
    EXPECT_EQ(n->str(), "192.168.122.0/24");
    EXPECT_FALSE(lv::parse_cidr("192.168.122.0"));
    EXPECT_FALSE(lv::parse_cidr("192.168.122.0/31"));
    EXPECT_FALSE(lv::parse_cidr("192.168.122.0/7"));
    EXPECT_FALSE(lv::parse_cidr("192.168.1222.0/24"));
    EXPECT_FALSE(lv::parse_cidr("fd00::/64"));
    EXPECT_FALSE(lv::parse_cidr("192.168.122.0/24 "));
    EXPECT_TRUE(lv::parse_cidr("10.0.0.0/8")->overlaps(*lv::parse_cidr("10.200.3.0/24")));
    EXPECT_TRUE(lv::parse_cidr("10.200.3.0/24")->overlaps(*lv::parse_cidr("10.0.0.0/8")));
    EXPECT_FALSE(lv::parse_cidr("192.168.122.0/24")->overlaps(*lv::parse_cidr("192.168.123.0/24")));
    EXPECT_TRUE(lv::parse_cidr("192.168.122.0/23")->overlaps(*lv::parse_cidr("192.168.123.0/24")));
}

TEST(FixLibvirtUnit, ProcNetRoute) {
    const std::string text =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "wg0\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FEFFFF\t0\t0\t0\n";
    auto v = lv::parse_proc_net_route(text);
    ASSERT_EQ(v.size(), 2u) << "the default route overlaps everything and is skipped";
    EXPECT_EQ(v[0].net.str(), "192.0.2.0/24");
    EXPECT_EQ(v[0].what, "route 192.0.2.0/24 dev eth0");
    EXPECT_EQ(v[1].net.str(), "192.168.122.0/23");
}

TEST(FixLibvirtUnit, IpAddrJsonAndFibTrie) {
    const std::string j =
        R"([{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},)"
        R"({"ifname":"eth1","addr_info":[{"family":"inet","local":"192.168.122.9","prefixlen":24},)"
        R"({"family":"inet6","local":"fe80::1","prefixlen":64}]}])";
    auto v = lv::parse_ip_addr_json(j);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].net.str(), "192.168.122.0/24");
    EXPECT_EQ(v[0].what, "address 192.168.122.9/24 on eth1");
    EXPECT_TRUE(lv::parse_ip_addr_json("not json").empty());

    const std::string trie =
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
        "     +-- 127.0.0.0/8 2 0 2\n           |-- 127.0.0.1\n              /32 host LOCAL\n"
        "     +-- 10.9.0.0/24 2 0 2\n           |-- 10.9.0.4\n              /32 host LOCAL\n"
        "Local:\n           |-- 10.9.0.4\n              /32 host LOCAL\n";
    auto t = lv::parse_fib_trie_locals(trie);
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].net.str(), "10.9.0.4/32");
}

TEST(FixLibvirtUnit, PickSubnet) {
    const auto stock = *lv::parse_cidr("192.168.122.0/24");
    EXPECT_EQ(lv::pick_subnet({}, stock)->str(), "192.168.122.0/24");
    std::vector<lv::UsedNet> used = {{*lv::parse_cidr("192.168.122.0/24"), "route A"}, {*lv::parse_cidr("192.168.123.0/24"), "route B"}};
    EXPECT_EQ(lv::pick_subnet(used, stock)->str(), "192.168.124.0/24");
    used = {{*lv::parse_cidr("192.168.0.0/16"), "vpn"}};
    EXPECT_FALSE(lv::pick_subnet(used, stock));
    ASSERT_NE(lv::collision(used, stock), nullptr);
    EXPECT_EQ(lv::collision(used, stock)->what, "vpn");
}

TEST(FixLibvirtUnit, Xml) {
    const std::string x = lv::network_xml("default", *lv::parse_cidr("192.168.130.0/24"), "virbr0");
    EXPECT_NE(x.find("<name>default</name>"), std::string::npos);
    EXPECT_NE(x.find("<forward mode='nat'/>"), std::string::npos);
    EXPECT_NE(x.find("<bridge name='virbr0' stp='on' delay='0'/>"), std::string::npos);
    EXPECT_NE(x.find("<ip address='192.168.130.1' netmask='255.255.255.0'>"), std::string::npos);
    EXPECT_NE(x.find("<range start='192.168.130.2' end='192.168.130.254'/>"), std::string::npos);
    const std::string y = lv::network_xml("a<b", *lv::parse_cidr("10.1.0.0/16"), "");
    EXPECT_NE(y.find("<name>a&lt;b</name>"), std::string::npos);
    EXPECT_NE(y.find("<bridge stp='on' delay='0'/>"), std::string::npos);
    EXPECT_NE(y.find("netmask='255.255.0.0'"), std::string::npos);
    EXPECT_NE(y.find("end='10.1.255.254'"), std::string::npos);
    const std::string u = lv::random_uuid();
    EXPECT_TRUE(std::regex_match(u, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"))) << u;
    EXPECT_NE(lv::with_uuid(x, u).find("<name>default</name>\n  <uuid>" + u + "</uuid>"), std::string::npos);
    EXPECT_NE(lv::pool_xml("default", "/var/lib/libvirt/images").find("<path>/var/lib/libvirt/images</path>"), std::string::npos);
}

// ---- FixLibvirtPlan ----------------------------------------------------------

// A recorded host tree (routes, PID 1, pidfiles, bridges) plus Facts and the
// findings that name the fixes.
struct PlanWorld {
    TempDir tree;
    Facts facts;
    Report report;
    FixOptions options;
    std::unique_ptr<host::Host> host;

    PlanWorld() {
        file("/proc/1/comm", "process_api\n");
        file("/proc/net/route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n");
        file("/proc/net/fib_trie", "");
        file("/usr/sbin/libvirtd", "");
        file("/usr/sbin/virtlogd", "");
        auto& l = facts.virt.libvirt;
        facts.virt.probed = true;
        l.queried = l.installed = true;
        l.daemon_binaries = {"/usr/sbin/libvirtd", "/usr/sbin/virtlogd"};
        auto& s = l.snapshot;
        s.attempted = s.connected = s.read_write = true;
        s.daemon = "libvirtd";
        s.uri = "qemu:///system";
    }
    void file(const std::string& p, const std::string& text) { spit(tree.path + p, text); }
    void finding(const std::string& id, Status st, const std::string& fix_id, const std::string& msg = "it is broken") {
        Finding f;
        f.id = id;
        f.status = st;
        f.message = msg;
        f.remediation.fix_id = fix_id;
        report.findings.push_back(f);
    }
    void daemon_down() {
        auto& s = facts.virt.libvirt.snapshot;
        s.connected = s.read_write = false;
        s.daemon.clear();
        s.error = "Failed to connect socket to '/run/libvirt/libvirt-sock': Connection refused";
        s.socket_path = "/run/libvirt/libvirt-sock";
        finding("libvirt.daemon", Status::Fail, "libvirt.daemon", "no libvirt daemon answers");
    }
    std::optional<Plan> plan(const char* id) {
        if (!host) host = host::make_rooted_host(tree.path);
        // Planners read facts only: probe what they read from the tree now.
        ProbeOptions po;
        po.request.bridge = options.bridge;
        po.config_addresses = true;  // as `fix` on the host itself
        po.uplink = options.uplink;
        po.pool_path = options.pool_path;
        probe_config(*host, po, facts);
        PlanInput in{facts, report, options};
        const FixSpec* f = find_fix(id);
        if (!f) throw std::runtime_error(std::string("no fix ") + id);
        return f->plan(in);
    }
};

std::vector<std::string> ops(const Plan& p) {
    std::vector<std::string> out;
    for (const auto& s : p.steps) out.push_back(s.op);
    return out;
}

std::string notes(const Plan& p) {
    std::string out;
    for (const auto& n : p.notes) out += n + "\n";
    return out;
}

VirtNetwork network(const std::string& name, bool active, bool autostart, bool persistent, const std::string& addr = "192.168.122.1/24") {
    VirtNetwork n;
    n.name = name;
    n.active = active;
    n.autostart = autostart;
    n.persistent = persistent;
    n.bridge = "virbr0";
    n.forward_mode = "nat";
    n.addresses = {addr};
    return n;
}

VirtPool pool(const std::string& name, bool active, bool autostart, bool persistent, const std::string& target) {
    VirtPool p;
    p.name = name;
    p.active = active;
    p.autostart = autostart;
    p.persistent = persistent;
    p.type = "dir";
    p.target = target;
    return p;
}

TEST(FixLibvirtPlan, RegisteredInApplyOrder) {
    std::vector<std::string> ids;
    for (const auto& f : fix::registry()) ids.push_back(f.id);
    auto at = [&](const char* id) { return std::find(ids.begin(), ids.end(), id) - ids.begin(); };
    ASSERT_LT(at("libvirt.daemon"), static_cast<long>(ids.size()));
    EXPECT_LT(at("libvirt.daemon"), at("libvirt.network-default"));
    EXPECT_LT(at("libvirt.network-default"), at("storage.pool-default"));
    for (const char* op : {"libvirt.network.define", "libvirt.network.start", "libvirt.network.autostart", "libvirt.network.restart",
                           "libvirt.pool.define", "libvirt.pool.build", "libvirt.pool.start", "libvirt.pool.autostart", "daemon.start",
                           "systemd.enable-now"})
        EXPECT_NE(find_op(op), nullptr) << op;
}

TEST(FixLibvirtPlan, MissingNetworkIsDefinedStartedAutostarted) {
    PlanWorld w;
    w.finding("libvirt.network", Status::Fail, "libvirt.network-default", "libvirt network default is not defined");
    auto p = w.plan("libvirt.network-default");
    ASSERT_TRUE(p);
    EXPECT_EQ(ops(*p), (std::vector<std::string>{"libvirt.network.define", "libvirt.network.start", "libvirt.network.autostart"}));
    EXPECT_EQ(p->applicability, Applicability::Automatic);
    EXPECT_EQ(p->reason, "libvirt network default is not defined");
    const auto& def = p->steps[0];
    EXPECT_EQ(def.args.value("subnet", ""), "192.168.122.0/24");
    EXPECT_NE(def.args.value("xml", "").find("<bridge name='virbr0'"), std::string::npos);
    EXPECT_NE(def.args.value("diff", "").find("+  <forward mode='nat'/>"), std::string::npos);
    EXPECT_EQ(quote_argv(def.commands.at(0)), "virsh net-define default.xml");
    EXPECT_EQ(quote_argv(p->steps[1].commands.at(0)), "virsh net-start default");
    EXPECT_EQ(quote_argv(p->steps[2].commands.at(0)), "virsh net-autostart default");
    for (const auto& s : p->steps) EXPECT_TRUE(s.runtime);
}

TEST(FixLibvirtPlan, SubnetCollisionPicksTheNextFreeOne) {
    PlanWorld w;
    // A VPN route over 192.168.122.0/24 and an interface on 192.168.123.0/24.
    w.file("/proc/net/route",
           "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
           "wg0\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
    w.file("/proc/net/fib_trie", "Local:\n  |-- 192.168.123.7\n     /32 host LOCAL\n");
    w.facts.virt.libvirt.networks = {network("lab", false, false, true, "192.168.124.1/24")};
    w.finding("libvirt.network", Status::Fail, "libvirt.network-default");
    auto p = w.plan("libvirt.network-default");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->steps.at(0).args.value("subnet", ""), "192.168.125.0/24") << "122: route, 123: address, 124: network lab";
    EXPECT_NE(p->steps[0].args.value("xml", "").find("<ip address='192.168.125.1'"), std::string::npos);
    EXPECT_NE(notes(*p).find("192.168.122.0/24 (libvirt's usual subnet) is taken here by route 192.168.122.0/24 dev wg0"), std::string::npos)
        << notes(*p);
    EXPECT_NE(p->steps[0].summary.find("192.168.125.0/24"), std::string::npos);
}

TEST(FixLibvirtPlan, SubnetOption) {
    PlanWorld w;
    w.options.network = "lab";
    w.options.network_given = true;
    w.options.subnet = "10.44.0.9/16";
    auto p = w.plan("libvirt.network-default");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->steps.at(0).args.value("subnet", ""), "10.44.0.0/16");
    EXPECT_NE(p->steps[0].args.value("xml", "").find("<bridge stp='on' delay='0'/>"), std::string::npos) << "libvirt names lab's bridge";
    EXPECT_EQ(quote_argv(p->steps[1].commands.at(0)), "virsh net-start lab");

    w.file("/proc/net/route",
           "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
           "eth0\t00002C0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n");
    w.host.reset();
    try {
        w.plan("libvirt.network-default");
        FAIL() << "a --subnet that collides must not be planned";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("overlaps route 10.44.0.0/16 dev eth0"), std::string::npos) << e.what();
    }
    w.options.subnet = "10.44.0.0";
    EXPECT_THROW(w.plan("libvirt.network-default"), std::runtime_error);
}

TEST(FixLibvirtPlan, BridgeNameTakenLetsLibvirtPick) {
    PlanWorld w;
    w.file("/sys/class/net/virbr0/operstate", "up\n");
    w.finding("libvirt.network", Status::Fail, "libvirt.network-default");
    auto p = w.plan("libvirt.network-default");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->steps.at(0).args.value("xml", "").find("name='virbr0'"), std::string::npos);
    EXPECT_NE(notes(*p).find("virbr0 exists already"), std::string::npos);
}

TEST(FixLibvirtPlan, PartialNetworkStates) {
    {
        PlanWorld w;  // defined, inactive, no autostart
        w.facts.virt.libvirt.networks = {network("default", false, false, true)};
        auto p = w.plan("libvirt.network-default");
        ASSERT_TRUE(p);
        EXPECT_EQ(ops(*p), (std::vector<std::string>{"libvirt.network.start", "libvirt.network.autostart"}));
    }
    {
        PlanWorld w;  // defined, inactive, autostart already on
        w.facts.virt.libvirt.networks = {network("default", false, true, true)};
        auto p = w.plan("libvirt.network-default");
        ASSERT_TRUE(p);
        EXPECT_EQ(ops(*p), (std::vector<std::string>{"libvirt.network.start"}));
    }
    {
        PlanWorld w;  // active, no autostart
        w.facts.virt.libvirt.networks = {network("default", true, false, true)};
        auto p = w.plan("libvirt.network-default");
        ASSERT_TRUE(p);
        EXPECT_EQ(ops(*p), (std::vector<std::string>{"libvirt.network.autostart"}));
    }
    {
        PlanWorld w;  // active, transient
        w.facts.virt.libvirt.networks = {network("default", true, false, false)};
        auto p = w.plan("libvirt.network-default");
        ASSERT_TRUE(p);
        EXPECT_EQ(ops(*p), (std::vector<std::string>{"libvirt.network.define", "libvirt.network.autostart"}));
        EXPECT_EQ(quote_argv(p->steps[0].commands.at(0)), "virsh net-dumpxml default");
    }
    {
        PlanWorld w;  // active, its bridge deleted
        auto n = network("default", true, true, true);
        n.bridge_checked = true;
        n.bridge_exists = false;
        w.facts.virt.libvirt.networks = {n};
        auto p = w.plan("libvirt.network-default");
        ASSERT_TRUE(p);
        EXPECT_EQ(ops(*p), (std::vector<std::string>{"libvirt.network.restart"}));
        EXPECT_EQ(p->applicability, Applicability::Confirm);
    }
    {
        PlanWorld w;  // all fine: nothing to do (idempotence)
        w.facts.virt.libvirt.networks = {network("default", true, true, true)};
        EXPECT_FALSE(w.plan("libvirt.network-default"));
    }
    {
        PlanWorld w;  // inactive on a subnet a route took meanwhile: libvirt would refuse
        w.file("/proc/net/route",
               "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
               "eth0\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
        w.facts.virt.libvirt.networks = {network("default", false, true, true)};
        EXPECT_THROW(w.plan("libvirt.network-default"), std::runtime_error);
    }
}

TEST(FixLibvirtPlan, NetworkWhileTheDaemonIsDown) {
    PlanWorld w;
    w.daemon_down();
    auto p = w.plan("libvirt.network-default");
    ASSERT_TRUE(p) << "the daemon fix runs first in the same run";
    EXPECT_EQ(ops(*p).size(), 3u);
    EXPECT_NE(notes(*p).find("libvirt does not answer yet"), std::string::npos);
    // Not part of this run (--only): nothing can be known.
    w.options.only = {"libvirt.network-default"};
    EXPECT_FALSE(w.plan("libvirt.network-default"));
    w.options.network_given = true;
    EXPECT_THROW(w.plan("libvirt.network-default"), std::runtime_error);
    // Offline (--root): no runtime change to plan.
    PlanWorld o;
    o.options.root = o.tree.path;
    o.finding("libvirt.network", Status::Fail, "libvirt.network-default");
    EXPECT_FALSE(o.plan("libvirt.network-default"));
}

TEST(FixLibvirtPlan, Pool) {
    {
        PlanWorld w;  // missing, directory missing
        w.finding("storage.pool", Status::Fail, "storage.pool-default", "libvirt storage pool default is not defined");
        auto p = w.plan("storage.pool-default");
        ASSERT_TRUE(p);
        EXPECT_EQ(ops(*p), (std::vector<std::string>{"libvirt.pool.define", "libvirt.pool.build", "libvirt.pool.start",
                                                      "libvirt.pool.autostart"}));
        EXPECT_EQ(quote_argv(p->steps[0].commands.at(0)), "virsh pool-define-as default dir --target /var/lib/libvirt/images");
        EXPECT_EQ(quote_argv(p->steps[1].commands.at(0)), "virsh pool-build default");
        EXPECT_NE(p->steps[0].args.value("xml", "").find("<path>/var/lib/libvirt/images</path>"), std::string::npos);
    }
    {
        PlanWorld w;  // missing, directory exists: no build
        w.file("/var/lib/libvirt/images/disk.qcow2", "x");
        auto p = w.plan("storage.pool-default");
        ASSERT_TRUE(p);
        EXPECT_EQ(ops(*p), (std::vector<std::string>{"libvirt.pool.define", "libvirt.pool.start", "libvirt.pool.autostart"}));
        EXPECT_NE(notes(*p).find("used as it is"), std::string::npos);
    }
    {
        PlanWorld w;  // another pool has the directory
        w.facts.virt.libvirt.pools = {pool("images", true, true, true, "/var/lib/libvirt/images")};
        try {
            w.plan("storage.pool-default");
            FAIL();
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find("pool images already uses /var/lib/libvirt/images"), std::string::npos) << e.what();
        }
    }
    {
        PlanWorld w;  // --pool NAME needs --pool-path
        w.options.pool = "vms";
        w.options.pool_given = true;
        EXPECT_THROW(w.plan("storage.pool-default"), std::runtime_error);
        w.options.pool_path = "relative/dir";
        EXPECT_THROW(w.plan("storage.pool-default"), std::runtime_error);
        w.options.pool_path = "/srv/vms/";
        auto p = w.plan("storage.pool-default");
        ASSERT_TRUE(p);
        EXPECT_EQ(quote_argv(p->steps[0].commands.at(0)), "virsh pool-define-as vms dir --target /srv/vms");
        EXPECT_EQ(p->steps[1].args.value("path", ""), "/srv/vms");
    }
    {
        PlanWorld w;  // partial states
        w.facts.virt.libvirt.pools = {pool("default", false, false, true, "/var/lib/libvirt/images")};
        w.file("/var/lib/libvirt/images/.keep", "");
        auto p = w.plan("storage.pool-default");
        ASSERT_TRUE(p);
        EXPECT_EQ(ops(*p), (std::vector<std::string>{"libvirt.pool.start", "libvirt.pool.autostart"}));
        w.facts.virt.libvirt.pools = {pool("default", true, false, true, "/var/lib/libvirt/images")};
        EXPECT_EQ(ops(*w.plan("storage.pool-default")), (std::vector<std::string>{"libvirt.pool.autostart"}));
        w.facts.virt.libvirt.pools = {pool("default", true, false, false, "/var/lib/libvirt/images")};
        EXPECT_EQ(ops(*w.plan("storage.pool-default")), (std::vector<std::string>{"libvirt.pool.define", "libvirt.pool.autostart"}));
        w.facts.virt.libvirt.pools = {pool("default", true, true, true, "/var/lib/libvirt/images")};
        EXPECT_FALSE(w.plan("storage.pool-default"));
    }
    {
        PlanWorld w;  // defined but its directory is gone: build again before start
        w.facts.virt.libvirt.pools = {pool("default", false, true, true, "/var/lib/libvirt/images")};
        EXPECT_EQ(ops(*w.plan("storage.pool-default")), (std::vector<std::string>{"libvirt.pool.build", "libvirt.pool.start"}));
    }
}

TEST(FixLibvirtPlan, DaemonWithoutInitSystem) {
    PlanWorld w;
    w.daemon_down();
    auto p = w.plan("libvirt.daemon");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->applicability, Applicability::Confirm);
    ASSERT_EQ(ops(*p), (std::vector<std::string>{"daemon.start", "daemon.start"}));
    EXPECT_EQ(p->steps[0].args.value("name", ""), "virtlogd");
    EXPECT_EQ(p->steps[1].args.value("name", ""), "libvirtd");
    EXPECT_EQ(p->steps[1].args.value("binary", ""), "/usr/sbin/libvirtd");
    EXPECT_EQ(p->steps[1].args.value("pidfile", ""), "/run/libvirtd.pid");
    EXPECT_EQ(p->steps[1].args.value("socket", ""), "/run/libvirt/libvirt-sock");
    EXPECT_EQ(quote_argv(p->steps[0].commands.at(0)), "virtlogd -d");
    EXPECT_NE(notes(*p).find("nothing will start them at boot"), std::string::npos) << notes(*p);
    EXPECT_NE(notes(*p).find("PID 1 is process_api"), std::string::npos) << notes(*p);

    // virtlogd runs already (its pidfile names a live virtlogd).
    w.file("/run/virtlogd.pid", "4242\n");
    w.file("/proc/4242/comm", "virtlogd\n");
    w.file("/proc/4242/stat", "4242 (virtlogd) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0\n");
    w.host.reset();
    p = w.plan("libvirt.daemon");
    ASSERT_TRUE(p);
    ASSERT_EQ(ops(*p), (std::vector<std::string>{"daemon.start"}));
    EXPECT_EQ(p->steps[0].args.value("name", ""), "libvirtd");
    EXPECT_NE(notes(*p).find("virtlogd runs already (PID 4242)"), std::string::npos);

    // A --connect socket: libvirtd must come up where the URI looks.
    w.options.connect_uri = "qemu:///system?socket=/tmp/x/libvirt-sock";
    EXPECT_EQ(w.plan("libvirt.daemon")->steps.at(0).args.value("socket", ""), "/tmp/x/libvirt-sock");

    // A libvirtd that runs but does not answer is for a person.
    w.file("/run/libvirtd.pid", "4343");
    w.file("/proc/4343/comm", "libvirtd\n");
    w.file("/proc/4343/stat", "4343 (libvirtd) S 1 4343 4343 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 778 0 0\n");
    w.host.reset();
    EXPECT_THROW(w.plan("libvirt.daemon"), std::runtime_error);
}

TEST(FixLibvirtPlan, DaemonUnderSystemdAndSysvinit) {
    {
        PlanWorld w;
        w.daemon_down();
        w.file("/run/systemd/system/.keep", "");
        auto p = w.plan("libvirt.daemon");
        ASSERT_TRUE(p);
        ASSERT_EQ(ops(*p), (std::vector<std::string>{"systemd.enable-now"}));
        EXPECT_EQ(quote_argv(p->steps[0].commands.at(0)), "systemctl enable --now libvirtd.service");
        // Modular daemons: their sockets.
        w.facts.virt.libvirt.daemon_binaries = {"/usr/sbin/virtqemud", "/usr/sbin/virtlogd"};
        w.file("/usr/sbin/virtqemud", "");
        w.host.reset();
        p = w.plan("libvirt.daemon");
        ASSERT_TRUE(p);
        EXPECT_EQ(quote_argv(p->steps.at(0).commands.at(0)),
                  "systemctl enable --now virtqemud.socket virtnetworkd.socket virtstoraged.socket virtlogd.socket");
    }
    {
        PlanWorld w;
        w.daemon_down();
        w.file("/proc/1/comm", "init\n");
        w.file("/etc/init.d/libvirtd", "#!/bin/sh\n");
        w.file("/etc/init.d/virtlogd", "#!/bin/sh\n");
        w.file("/etc/rc2.d/S01virtlogd", "");
        auto p = w.plan("libvirt.daemon");
        ASSERT_TRUE(p);
        std::vector<std::string> cmds;
        for (const auto& s : p->steps) cmds.push_back(quote_argv(s.commands.at(0)));
        EXPECT_EQ(cmds, (std::vector<std::string>{"/etc/init.d/virtlogd start", "/etc/init.d/libvirtd start", "update-rc.d libvirtd defaults"}));
    }
    {
        PlanWorld w;  // the daemon answers: nothing to do
        EXPECT_FALSE(w.plan("libvirt.daemon"));
    }
}

// ---- FixLibvirtOps -----------------------------------------------------------

class FixLibvirtOps : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (!LibvirtDaemon::unavailable_reason().empty()) return;
        LibvirtDaemon::Options o;
        o.warm_up = false;  // no capabilities asked: networks and pools only
        daemon_ = std::make_unique<LibvirtDaemon>(o);
        try {
            daemon_->start();
        } catch (const std::exception& e) {
            start_error_ = e.what();
        }
    }
    static void TearDownTestSuite() { daemon_.reset(); }
    void SetUp() override {
        if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
        ASSERT_TRUE(start_error_.empty()) << start_error_;
        run_dir_ = std::make_unique<TempDir>();
    }

    OpContext ctx(int step = 0) {
        OpContext c;
        c.run_dir = run_dir_->path;
        c.connect_uri = daemon_->uri();
        c.step_index = step;
        c.log = [this](const std::string& m) { log_ += m + "\n"; };
        return c;
    }
    static Step step(const std::string& op, const std::string& name, json extra = json::object()) {
        Step s;
        s.op = op;
        s.summary = op + " " + name;
        s.runtime = true;
        s.args = {{"name", name}};
        for (auto& [k, v] : extra.items()) s.args[k] = v;
        return s;
    }
    // prepare + apply, as the engine does; returns the record undo gets.
    json run(const Step& s, int idx = 0) {
        const Op* op = find_op(s.op);
        if (!op) throw std::runtime_error("no op " + s.op);
        auto c = ctx(idx);
        json u = op->prepare(s, c);
        op->apply(s, c, u);
        return u;
    }
    json prepare_only(const Step& s, int idx = 0) {
        auto c = ctx(idx);
        return find_op(s.op)->prepare(s, c);
    }
    void undo(const std::string& op, const json& u, int idx = 0) {
        auto c = ctx(idx);
        find_op(op)->undo(u, c);
    }
    std::string virsh_out(const std::vector<std::string>& args) { return daemon_->virsh(args).out; }
    bool net_exists(const std::string& n) { return daemon_->virsh({"net-info", n}).exit_code == 0; }
    std::string net_info(const std::string& n) { return virsh_out({"net-info", n}); }
    bool pool_exists(const std::string& n) { return daemon_->virsh({"pool-info", n}).exit_code == 0; }
    static bool field(const std::string& info, const std::string& key, const std::string& want) {
        return std::regex_search(info, std::regex("(^|\\n)" + key + ":\\s+" + want + "\\s*(\\n|$)"));
    }

    static std::unique_ptr<LibvirtDaemon> daemon_;
    static std::string start_error_;
    std::unique_ptr<TempDir> run_dir_;
    std::string log_;
};

std::unique_ptr<LibvirtDaemon> FixLibvirtOps::daemon_;
std::string FixLibvirtOps::start_error_;

std::vector<Step> network_steps(const std::string& name, const std::string& cidr) {
    const std::string xml = lv::network_xml(name, *lv::parse_cidr(cidr), "");
    Step d;
    d.op = "libvirt.network.define";
    d.args = {{"name", name}, {"xml", xml}};
    Step s;
    s.op = "libvirt.network.start";
    s.args = {{"name", name}};
    Step a;
    a.op = "libvirt.network.autostart";
    a.args = {{"name", name}};
    return {d, s, a};
}

TEST_F(FixLibvirtOps, NetworkApplyIdempotentUndo) {
    const auto steps = network_steps("kvrnet1", "192.168.201.0/24");
    std::vector<json> undos;
    const auto t0 = Clock::now();
    for (size_t i = 0; i < steps.size(); ++i) undos.push_back(run(steps[i], static_cast<int>(i)));
    const double apply_ms = ms_since(t0);
    const std::string info = net_info("kvrnet1");
    EXPECT_TRUE(field(info, "Active", "yes")) << info;
    EXPECT_TRUE(field(info, "Persistent", "yes")) << info;
    EXPECT_TRUE(field(info, "Autostart", "yes")) << info;
    EXPECT_TRUE(field(info, "UUID", undos[0].value("uuid", "?"))) << "the UUID chosen in prepare is the network's: " << info;
    EXPECT_EQ(undos[0].value("action", ""), "defined");
    EXPECT_EQ(undos[1].value("action", ""), "started");
    EXPECT_EQ(undos[2].value("action", ""), "set");
    // The same steps again change nothing, and their undo records say so.
    std::vector<json> again;
    for (size_t i = 0; i < steps.size(); ++i) again.push_back(run(steps[i], static_cast<int>(i)));
    EXPECT_EQ(again[0].value("action", ""), "none");
    EXPECT_EQ(again[1].value("action", ""), "none");
    EXPECT_EQ(again[2].value("action", ""), "none");
    for (size_t i = again.size(); i-- > 0;) undo(steps[i].op, again[i]);
    EXPECT_TRUE(field(net_info("kvrnet1"), "Active", "yes")) << "undoing a no-op run must not touch the network";
    // Undo of the real run, in reverse.
    const auto t1 = Clock::now();
    for (size_t i = undos.size(); i-- > 0;) undo(steps[i].op, undos[i]);
    const double undo_ms = ms_since(t1);
    EXPECT_FALSE(net_exists("kvrnet1")) << net_info("kvrnet1");
    // Undo twice is harmless.
    for (size_t i = undos.size(); i-- > 0;) undo(steps[i].op, undos[i]);
    std::cout << "[ measure  ] network define+start+autostart " << apply_ms << " ms, undo " << undo_ms << " ms\n";
}

// A run killed at any point: after prepare (nothing changed) or after the
// change but before it was marked done. Undo gets the prepare record only.
TEST_F(FixLibvirtOps, NetworkKilledAtEachStep) {
    const auto steps = network_steps("kvrnet2", "192.168.202.0/24");
    for (size_t k = 0; k < steps.size(); ++k) {
        for (bool changed : {false, true}) {
            SCOPED_TRACE(::testing::Message() << "killed in step " << k << (changed ? " after its change" : " before its change"));
            std::vector<json> recs;
            for (size_t i = 0; i < k; ++i) recs.push_back(run(steps[i], static_cast<int>(i)));
            json prep = prepare_only(steps[k], static_cast<int>(k));
            if (changed) {
                json scratch = prep;
                auto c = ctx(static_cast<int>(k));
                find_op(steps[k].op)->apply(steps[k], c, scratch);  // its result never reaches the journal
            }
            recs.push_back(prep);
            for (size_t i = recs.size(); i-- > 0;) undo(steps[i].op, recs[i], static_cast<int>(i));
            EXPECT_FALSE(net_exists("kvrnet2")) << net_info("kvrnet2");
        }
    }
    // And the next apply after a half-done run (prepare + change, not done)
    // completes: the ops look at the live state.
    (void)run(steps[0]);
    for (const auto& s : steps) (void)run(s);
    const std::string info = net_info("kvrnet2");
    EXPECT_TRUE(field(info, "Active", "yes") && field(info, "Autostart", "yes")) << info;
    (void)daemon_->virsh({"net-destroy", "kvrnet2"});
    (void)daemon_->virsh({"net-undefine", "kvrnet2"});
}

TEST_F(FixLibvirtOps, TransientNetworkMadePersistentAndBack) {
    TempDir t;
    spit(t.path + "/n.xml", lv::network_xml("kvrnet3", *lv::parse_cidr("192.168.203.0/24"), ""));
    ASSERT_EQ(daemon_->virsh({"net-create", t.path + "/n.xml"}).exit_code, 0) << daemon_->log_tail();
    const auto steps = network_steps("kvrnet3", "192.168.203.0/24");
    json d = run(steps[0]);
    EXPECT_EQ(d.value("action", ""), "made-persistent");
    json a = run(steps[2]);
    std::string info = net_info("kvrnet3");
    EXPECT_TRUE(field(info, "Persistent", "yes") && field(info, "Autostart", "yes")) << info;
    undo(steps[2].op, a);
    undo(steps[0].op, d);
    info = net_info("kvrnet3");
    EXPECT_TRUE(field(info, "Active", "yes")) << info;
    EXPECT_TRUE(field(info, "Persistent", "no")) << "back to transient, still running: " << info;
    (void)daemon_->virsh({"net-destroy", "kvrnet3"});
}

TEST_F(FixLibvirtOps, ForeignNetworkUnderTheSameNameSurvivesUndo) {
    const auto steps = network_steps("kvrnet4", "192.168.204.0/24");
    json prep = prepare_only(steps[0]);  // killed before the define
    TempDir t;
    spit(t.path + "/n.xml", lv::network_xml("kvrnet4", *lv::parse_cidr("192.168.204.0/24"), ""));
    ASSERT_EQ(daemon_->virsh({"net-define", t.path + "/n.xml"}).exit_code, 0);  // someone else's
    undo(steps[0].op, prep);
    EXPECT_TRUE(net_exists("kvrnet4")) << "undo removed a network this run did not define";
    (void)daemon_->virsh({"net-undefine", "kvrnet4"});
}

TEST_F(FixLibvirtOps, NetworkStartFailureSaysWhy) {
    // Two networks on one subnet: libvirt refuses to start the second.
    const auto a = network_steps("kvrnet5a", "192.168.205.0/24");
    const auto b = network_steps("kvrnet5b", "192.168.205.0/24");
    for (const auto& s : a) (void)run(s);
    json db = run(b[0]);
    try {
        (void)run(b[1]);
        FAIL() << "starting an overlapping network must fail";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("starting network kvrnet5b:"), std::string::npos) << e.what();
    }
    undo(b[0].op, db);
    EXPECT_FALSE(net_exists("kvrnet5b"));
    for (const char* c : {"net-destroy", "net-undefine"}) (void)daemon_->virsh({c, "kvrnet5a"});
}

TEST_F(FixLibvirtOps, PoolBuildsAndUndoRemovesOnlyEmptyDirsItCreated) {
    TempDir t;
    for (bool leave_content : {false, true}) {
        SCOPED_TRACE(leave_content ? "a file was added to the pool" : "pool left empty");
        const std::string path = t.path + "/a/b/pool";
        const std::string name = "kvrpool1";
        Step d = step("libvirt.pool.define", name, {{"xml", lv::pool_xml(name, path)}, {"path", path}});
        Step b = step("libvirt.pool.build", name, {{"path", path}, {"local", true}});
        Step s = step("libvirt.pool.start", name);
        Step a = step("libvirt.pool.autostart", name);
        std::vector<Step> steps = {d, b, s, a};
        std::vector<json> recs;
        for (const auto& x : steps) recs.push_back(run(x));
        EXPECT_TRUE(fs::is_directory(path));
        const std::string info = virsh_out({"pool-info", name});
        EXPECT_TRUE(field(info, "State", "running") && field(info, "Autostart", "yes")) << info;
        EXPECT_EQ(recs[1].value("created", json::array()).size(), 3u) << recs[1].dump();
        // Second apply: nothing to do.
        for (const auto& x : steps) EXPECT_EQ(run(x).value("action", ""), "none") << x.op;
        if (leave_content) spit(path + "/disk.img", "data");
        for (size_t i = recs.size(); i-- > 0;) undo(steps[i].op, recs[i]);
        EXPECT_FALSE(pool_exists(name));
        if (leave_content) {
            EXPECT_EQ(slurp(path + "/disk.img"), "data") << "content must never be removed";
            EXPECT_NE(log_.find("is left in place: it has content now"), std::string::npos) << log_;
            fs::remove_all(t.path + "/a");
        } else {
            EXPECT_FALSE(fs::exists(t.path + "/a")) << "the empty directories this run created are removed";
            EXPECT_TRUE(fs::is_directory(t.path));
        }
    }
}

TEST_F(FixLibvirtOps, PoolKilledAfterBuildAndExistingDirectory) {
    TempDir t;
    const std::string path = t.path + "/images";
    const std::string name = "kvrpool2";
    Step d = step("libvirt.pool.define", name, {{"xml", lv::pool_xml(name, path)}});
    Step b = step("libvirt.pool.build", name, {{"path", path}, {"local", true}});
    json rd = run(d);
    json pb = prepare_only(b);
    json scratch = pb;
    auto c = ctx();
    find_op(b.op)->apply(b, c, scratch);  // built, never marked done
    ASSERT_TRUE(fs::is_directory(path));
    undo(b.op, pb);
    undo(d.op, rd);
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(pool_exists(name));

    // An existing directory with content is used as it is and kept.
    spit(path + "/keep.qcow2", "k");
    ::chmod(path.c_str(), 0750);
    std::vector<Step> steps = {d, b, step("libvirt.pool.start", name), step("libvirt.pool.autostart", name)};
    std::vector<json> recs;
    for (const auto& x : steps) recs.push_back(run(x));
    EXPECT_EQ(recs[1].value("action", ""), "none");
    EXPECT_EQ(virsh_out({"vol-list", name}).find("keep.qcow2") != std::string::npos, true);
    for (size_t i = recs.size(); i-- > 0;) undo(steps[i].op, recs[i]);
    EXPECT_EQ(slurp(path + "/keep.qcow2"), "k");
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0750u) << "its mode is untouched";
    EXPECT_FALSE(pool_exists(name));
}

TEST_F(FixLibvirtOps, HungDaemonFailsWithinSecondsAndChangesNothingLater) {
    const auto steps = network_steps("kvrnet6", "192.168.206.0/24");
    json rd = run(steps[0]);
    daemon_->pause();
    const auto t0 = Clock::now();
    std::string err;
    try {
        (void)run(steps[1]);
    } catch (const std::runtime_error& e) {
        err = e.what();
    }
    const double ms = ms_since(t0);
    daemon_->resume();
    EXPECT_NE(err.find("did not answer within 5 s"), std::string::npos) << err;
    EXPECT_NE(err.find("not done: looking up network kvrnet6"), std::string::npos) << err;
    EXPECT_LT(ms, 7000);
    std::cout << "[ measure  ] hung daemon reported after " << ms << " ms\n";
    // Once it answers again (a round trip through the resumed daemon, which
    // has by then accepted the abandoned call's connection too), the
    // abandoned call must not go on to change anything.
    ASSERT_EQ(daemon_->virsh({"list", "--all"}).exit_code, 0);
    EXPECT_TRUE(field(net_info("kvrnet6"), "Active", "no")) << net_info("kvrnet6");
    undo(steps[0].op, rd);
    EXPECT_FALSE(net_exists("kvrnet6"));
}

// daemon.start against a fake daemon (a script that backgrounds itself and
// writes its pidfile), never a daemon of this machine.
TEST(FixLibvirtDaemonOp, StartIdempotentUndoByPid) {
    TempDir t;
    const std::string pidfile = t.path + "/kvrfaked.pid";
    const std::string bin = t.path + "/kvrfaked";
    spit(bin,
         "#!/bin/sh\n"
         // Like a real daemon, -d returns once the daemon wrote its pidfile.
         "if [ \"$1\" = -d ]; then setsid \"$0\" run </dev/null >/dev/null 2>&1 &\n"
         "  i=0; while [ ! -s " + pidfile + " ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; exit 0; fi\n"
         "echo $$ > " + pidfile + "\n"
         "trap 'rm -f " + pidfile + "; exit 0' TERM\n"
         "while :; do sleep 0.05; done\n",
         0755);
    Step s;
    s.op = "daemon.start";
    s.args = {{"name", "kvrfaked"}, {"binary", bin}, {"pidfile", pidfile}, {"socket", ""}};
    const Op* op = find_op("daemon.start");
    ASSERT_NE(op, nullptr);
    std::string log;
    OpContext c;
    c.run_dir = t.path;
    c.step_index = 3;
    c.log = [&](const std::string& m) { log += m + "\n"; };
    json u = op->prepare(s, c);
    EXPECT_FALSE(u.value("was_running", true));
    op->apply(s, c, u);
    const int pid = u.value("pid", 0);
    ASSERT_GT(pid, 0) << log;
    EXPECT_EQ(::kill(pid, 0), 0);
    EXPECT_TRUE(fs::exists(t.path + "/step-3-daemon.json")) << "the PID is noted durably at once";
    // Again: it runs, nothing is started, and undoing that changes nothing.
    json u2 = op->prepare(s, c);
    EXPECT_TRUE(u2.value("was_running", false));
    op->apply(s, c, u2);
    EXPECT_EQ(u2.value("action", ""), "none");
    op->undo(u2, c);
    EXPECT_EQ(::kill(pid, 0), 0);
    // A run killed before the step was marked done: undo has only the
    // prepare record and finds the PID in the run directory.
    json prep = u;
    prep.erase("pid");
    prep.erase("start");
    op->undo(prep, c);
    for (int i = 0; i < 200 && fs::exists(pidfile); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_FALSE(fs::exists(pidfile)) << "the fake daemon got SIGTERM";
    // A PID that is now someone else's is left alone.
    json stale = u;
    stale["start"] = 1;
    op->undo(stale, c);
    EXPECT_NE(log.find("has stopped already"), std::string::npos) << log;
}

TEST(FixLibvirtDaemonOp, SystemdEnableNowUndoesOnlyWhatItChanged) {
    TempDir t;
    const std::string calls = t.path + "/calls";
    // A fake systemctl: libvirtd.socket enabled and active already, the service neither.
    spit(t.path + "/systemctl",
         "#!/bin/sh\n"
         "echo \"$*\" >> " + calls + "\n"
         "case \"$1 $2\" in\n"
         "  'is-enabled libvirtd.socket') echo enabled;;\n"
         "  'is-active libvirtd.socket') echo active;;\n"
         "  'is-enabled libvirtd.service') echo disabled; exit 1;;\n"
         "  'is-active libvirtd.service') echo inactive; exit 3;;\n"
         "esac\n"
         "exit 0\n",
         0755);
    Step s;
    s.op = "systemd.enable-now";
    s.args = {{"units", {"libvirtd.socket", "libvirtd.service"}}, {"systemctl", t.path + "/systemctl"}};
    const Op* op = find_op("systemd.enable-now");
    OpContext c;
    c.run_dir = t.path;
    json u = op->prepare(s, c);
    op->apply(s, c, u);
    op->undo(u, c);
    const std::string log = slurp(calls);
    EXPECT_NE(log.find("enable --now libvirtd.socket libvirtd.service\n"), std::string::npos) << log;
    EXPECT_NE(log.find("stop libvirtd.service\n"), std::string::npos) << log;
    EXPECT_NE(log.find("disable libvirtd.service\n"), std::string::npos) << log;
    EXPECT_EQ(log.find("disable libvirtd.socket"), std::string::npos) << log;
    EXPECT_EQ(log.find("stop libvirtd.socket"), std::string::npos) << log;
}

// ---- FixLibvirtEndToEnd --------------------------------------------------------

struct ToolRun {
    int exit_code = -1;
    bool timed_out = false;
    double wall_ms = 0;
    std::string out, err;
    json doc;
};

class FixLibvirtEndToEnd : public ::testing::Test {
protected:
    void SetUp() override {
        if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
        LibvirtDaemon::Options o;
        // Whatever else `fix --apply` writes (sysctl.d, modules-load.d,
        // modprobe.d) lands in private copies, never in this machine's /etc.
        for (const char* d : {"/etc/sysctl.d", "/etc/modules-load.d", "/etc/modprobe.d"})
            if (fs::is_directory(d)) o.private_dirs.push_back(d);
        daemon_ = std::make_unique<LibvirtDaemon>(o);
        daemon_->start();
        state_ = std::make_unique<TempDir>();
        tmp_ = std::make_unique<TempDir>("/var/tmp");  // smoke's run directory: QEMU's user must traverse it
        ::chmod(tmp_->path.c_str(), 0755);
    }

    ToolRun tool(std::vector<std::string> args, int timeout_ms = 60000, std::vector<std::string> env = {}) {
        std::vector<std::string> argv = {"env", "KVMREADY_STATE_DIR=" + state_->path, "TMPDIR=" + tmp_->path};
        argv.insert(argv.end(), env.begin(), env.end());
        argv.push_back(KVMREADY_BINARY);
        argv.insert(argv.end(), args.begin(), args.end());
        const auto t0 = Clock::now();
        auto r = daemon_->run_inside(argv, timeout_ms);
        ToolRun out;
        out.wall_ms = ms_since(t0);
        out.exit_code = r.exit_code;
        out.timed_out = r.timed_out;
        out.out = r.out;
        out.err = r.err + r.error;
        if (!r.out.empty() && r.out.front() == '{') out.doc = json::parse(r.out, nullptr, false);
        return out;
    }
    std::string uri() const { return daemon_->uri(); }
    // The ids of the plans `fix --json` proposes.
    std::set<std::string> planned(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args = {"fix", "--json", "--connect", uri()};
        args.insert(args.end(), extra.begin(), extra.end());
        auto r = tool(args);
        std::set<std::string> ids;
        EXPECT_TRUE(r.doc.is_object()) << r.out << r.err;
        if (!r.doc.is_object()) return ids;
        for (const auto& p : r.doc.value("plans", json::array())) ids.insert(p.value("fix_id", p.value("id", "")));
        return ids;
    }
    json plan_of(const json& doc, const std::string& id) {
        for (const auto& p : doc.value("plans", json::array()))
            if (p.value("fix_id", p.value("id", "")) == id) return p;
        return json();
    }
    std::string list(const char* what) { return daemon_->virsh({what, "--all", "--name"}).out; }
    bool has(const std::string& listing, const std::string& name) {
        std::istringstream in(listing);
        for (std::string l; std::getline(in, l);) {
            while (!l.empty() && std::isspace(static_cast<unsigned char>(l.back()))) l.pop_back();  // virsh pads names
            if (l == name) return true;
        }
        return false;
    }
    // Only these may be planned against the private daemon: anything else
    // would change this machine (kvm modules, /dev/kvm, users, hugepages).
    void expect_only_libvirt(const std::set<std::string>& ids) {
        for (const auto& id : ids)
            EXPECT_TRUE(id == "libvirt.daemon" || id == "libvirt.network-default" || id == "storage.pool-default" || id == "net.ip-forward")
                << "unexpected fix planned: " << id;
    }

    std::unique_ptr<LibvirtDaemon> daemon_;
    std::unique_ptr<TempDir> state_, tmp_;
};

TEST_F(FixLibvirtEndToEnd, BootstrapThenSmokeThenIdempotentThenUndo) {
    ASSERT_FALSE(has(list("net-list"), "default"));
    ASSERT_FALSE(has(list("pool-list"), "default"));
    const auto ids = planned();
    expect_only_libvirt(ids);
    ASSERT_TRUE(ids.count("libvirt.network-default") && ids.count("storage.pool-default"));
    const std::string only = "--only=libvirt.daemon,libvirt.network-default,storage.pool-default,net.ip-forward";

    auto a = tool({"fix", "--apply", "--yes", "--connect", uri(), only});
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
    std::cout << "[ measure  ] fix --apply (network + pool) " << a.wall_ms << " ms\n";
    EXPECT_TRUE(has(list("net-list"), "default"));
    EXPECT_TRUE(has(list("pool-list"), "default")) << list("pool-list") << "\n" << a.out << a.err;
    const std::string ni = daemon_->virsh({"net-info", "default"}).out;
    EXPECT_NE(ni.find("Autostart:      yes"), std::string::npos) << ni;

    auto smoke = tool({"smoke", "--accel", "tcg", "--connect", uri()}, 60000);
    EXPECT_EQ(smoke.exit_code, 0) << smoke.out << smoke.err;
    std::cout << "[ measure  ] smoke --accel tcg after the fix " << smoke.wall_ms << " ms\n";

    auto again = tool({"fix", "--apply", "--yes", "--connect", uri(), only});
    EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
    const auto left = planned();
    EXPECT_TRUE(left.empty()) << "a second apply must find nothing to do; planned: " << ::testing::PrintToString(left) << "\n"
                              << again.out;

    auto u = tool({"fix", "--undo", "--connect", uri()});
    EXPECT_EQ(u.exit_code, 0) << u.out << u.err;
    std::cout << "[ measure  ] fix --undo " << u.wall_ms << " ms\n";
    EXPECT_FALSE(has(list("net-list"), "default")) << list("net-list");
    EXPECT_FALSE(has(list("pool-list"), "default")) << list("pool-list");
}

TEST_F(FixLibvirtEndToEnd, SubnetCollisionInTheNamespace) {
    auto add = daemon_->run_inside({"ip", "link", "add", "kvrdummy0", "type", "bridge"}, 5000);
    ASSERT_EQ(add.exit_code, 0) << add.err;
    ASSERT_EQ(daemon_->run_inside({"ip", "addr", "add", "192.168.122.10/24", "dev", "kvrdummy0"}, 5000).exit_code, 0);
    ASSERT_EQ(daemon_->run_inside({"ip", "link", "set", "kvrdummy0", "up"}, 5000).exit_code, 0);
    auto dry = tool({"fix", "--connect", uri(), "--only=libvirt.network-default"});
    EXPECT_EQ(dry.exit_code, 2) << "a dry run with fixes planned exits 2: " << dry.out << dry.err;
    EXPECT_NE(dry.out.find("192.168.123.0/24"), std::string::npos) << dry.out;
    EXPECT_NE(dry.out.find("taken here by route 192.168.122.0/24 dev kvrdummy0"), std::string::npos) << dry.out;
    auto a = tool({"fix", "--apply", "--yes", "--connect", uri(), "--only=libvirt.network-default"});
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
    const std::string xml = daemon_->virsh({"net-dumpxml", "default"}).out;
    EXPECT_NE(xml.find("192.168.123.1"), std::string::npos) << xml;
    EXPECT_NE(daemon_->virsh({"net-info", "default"}).out.find("Active:         yes"), std::string::npos);
}

TEST_F(FixLibvirtEndToEnd, StoppedDaemonIsStartedAndUndoStopsIt) {
    daemon_->kill_libvirtd();
    auto dry = tool({"fix", "--json", "--connect", uri()});
    ASSERT_TRUE(dry.doc.is_object()) << dry.out << dry.err;
    json p = plan_of(dry.doc, "libvirt.daemon");
    ASSERT_FALSE(p.is_null()) << dry.out;
    EXPECT_NE(p.dump().find("nothing will start them at boot"), std::string::npos) << p.dump(2);
    auto a = tool({"fix", "--apply", "--yes", "--connect", uri(), "--only=libvirt.daemon"});
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
    std::cout << "[ measure  ] fix --apply libvirt.daemon " << a.wall_ms << " ms\n";
    EXPECT_EQ(daemon_->virsh({"version"}).exit_code, 0) << "the daemon answers again";
    auto again = tool({"fix", "--json", "--connect", uri(), "--only=libvirt.daemon"});
    EXPECT_TRUE(plan_of(again.doc, "libvirt.daemon").is_null()) << again.out;
    auto u = tool({"fix", "--undo", "--connect", uri()});
    EXPECT_EQ(u.exit_code, 0) << u.out << u.err;
    EXPECT_NE(daemon_->virsh({"version"}, 5000).exit_code, 0) << "undo stops the daemon this run started";
}

// The whole bootstrap from a daemon that does not run: started first, then
// the network and the pool in the same run; undo takes all three back.
TEST_F(FixLibvirtEndToEnd, BootstrapFromAStoppedDaemon) {
    daemon_->kill_libvirtd();
    const std::string only = "--only=libvirt.daemon,libvirt.network-default,storage.pool-default";
    auto a = tool({"fix", "--apply", "--yes", "--connect", uri(), only});
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
    std::cout << "[ measure  ] fix --apply daemon + network + pool " << a.wall_ms << " ms\n";
    EXPECT_TRUE(has(list("net-list"), "default")) << a.out;
    EXPECT_TRUE(has(list("pool-list"), "default")) << a.out;
    EXPECT_TRUE(planned({only}).empty());
    auto u = tool({"fix", "--undo", "--connect", uri()});
    EXPECT_EQ(u.exit_code, 0) << u.out << u.err;
    EXPECT_NE(daemon_->virsh({"version"}, 5000).exit_code, 0) << "the daemon this run started is stopped again";
    // Its definitions are gone too: a daemon started again finds neither.
    auto again = tool({"fix", "--apply", "--yes", "--connect", uri(), "--only=libvirt.daemon"});
    ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
    EXPECT_FALSE(has(list("net-list"), "default")) << list("net-list");
    EXPECT_FALSE(has(list("pool-list"), "default")) << list("pool-list");
}

TEST_F(FixLibvirtEndToEnd, HungDaemonFailsWithinSeconds) {
    daemon_->pause();
    auto a = tool({"fix", "--apply", "--yes", "--connect", uri(), "--only=libvirt.network-default,storage.pool-default",
                   "--network", "default"},
                  30000);
    daemon_->resume();
    EXPECT_FALSE(a.timed_out);
    EXPECT_NE(a.exit_code, 0) << a.out << a.err;
    EXPECT_LT(a.wall_ms, 15000);
    EXPECT_NE(a.out.find("nothing was changed"), std::string::npos) << a.out;
    std::cout << "[ measure  ] fix --apply against a SIGSTOPped daemon: exit " << a.exit_code << " after " << a.wall_ms << " ms\n"
              << a.out << a.err;
    EXPECT_FALSE(has(list("net-list"), "default"));
}

TEST_F(FixLibvirtEndToEnd, KilledAtEachStepThenApplyAndUndoComplete) {
    const std::string only = "--only=libvirt.network-default,storage.pool-default";
    // network: define, start, autostart; pool (directory exists): define, start, autostart.
    // "k": killed after the step is journaled, before it runs; "k+": after it
    // ran, before it is marked done.
    for (int k = 0; k < 6; ++k) for (const std::string when : {"", "+"}) {
        SCOPED_TRACE(::testing::Message() << "killed at step " << k << when);
        auto killed = tool({"fix", "--apply", "--yes", "--connect", uri(), only}, 60000,
                           {"KVMREADY_FIX_KILL_AT_STEP=" + std::to_string(k) + when});
        EXPECT_EQ(killed.exit_code, -1) << "not killed by a signal: " << killed.out << killed.err;
        auto h = tool({"fix", "--history", "--json"});
        ASSERT_TRUE(h.doc.is_object()) << h.out << h.err;
        EXPECT_EQ(h.doc["runs"].back()["status"], "interrupted") << h.out;
        auto a = tool({"fix", "--apply", "--yes", "--connect", uri(), only});
        EXPECT_EQ(a.exit_code, 0) << a.out << a.err;
        EXPECT_TRUE(planned({only}).empty());
        auto u = tool({"fix", "--undo", "--connect", uri()});
        EXPECT_EQ(u.exit_code, 0) << u.out << u.err;
        EXPECT_FALSE(has(list("net-list"), "default")) << list("net-list");
        EXPECT_FALSE(has(list("pool-list"), "default")) << list("pool-list");
    }
    // Killed, then undone directly.
    auto killed = tool({"fix", "--apply", "--yes", "--connect", uri(), only}, 60000, {"KVMREADY_FIX_KILL_AT_STEP=4"});
    EXPECT_NE(killed.exit_code, 0);
    auto u = tool({"fix", "--undo", "--connect", uri()});
    EXPECT_EQ(u.exit_code, 0) << u.out << u.err;
    EXPECT_FALSE(has(list("net-list"), "default"));
    EXPECT_FALSE(has(list("pool-list"), "default"));
}

}  // namespace
