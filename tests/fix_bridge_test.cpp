// net.bridge: the configuration generators on in-memory trees, and the
// uplink move for real inside network namespaces this test owns: a "host"
// namespace whose veth "uplink" holds an address and a default route to a
// "gateway" namespace. Nothing touches this machine's own interfaces, routes
// or /etc: the CLI runs under `ip netns exec`-like spawning with an overlay
// over /etc in a private mount namespace, so persistent files land in a
// temporary upper directory.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include "support/temp_dir.hpp"

#include "fixes/bridge.hpp"
#include "fixes/fixes.hpp"
#include "host/process.hpp"

namespace {

namespace fs = std::filesystem;
namespace br = kvmready::fix::bridge;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---- in-memory targets --------------------------------------------------------

struct Tree {
    std::map<std::string, std::string> files;
    br::Target target() const {
        br::Target t;
        t.live = false;
        t.read = [this](const std::string& p) -> std::optional<std::string> {
            auto it = files.find(p);
            if (it == files.end()) return std::nullopt;
            return it->second;
        };
        t.list = [this](const std::string& dir) {
            std::vector<std::string> out;
            const std::string pre = dir + "/";
            for (const auto& [p, c] : files)
                if (p.rfind(pre, 0) == 0 && p.find('/', pre.size()) == std::string::npos) out.push_back(p.substr(pre.size()));
            return out;
        };
        return t;
    }
    void apply(const br::Persist& p) {
        for (const auto& f : p.files) files[f.path] = f.content;
    }
};

const char* const kInterfaces =
    "# The loopback network interface\n"
    "auto lo\n"
    "iface lo inet loopback\n"
    "\n"
    "source /etc/network/interfaces.d/*\n"
    "\n"
    "# The primary network interface\n"
    "allow-hotplug eth0\n"
    "iface eth0 inet static\n"
    "    address 192.0.2.10/24\n"
    "    gateway 192.0.2.1\n"
    "    # dns-* options are implemented by the resolvconf package\n"
    "    dns-nameservers 192.0.2.53\n"
    "\n"
    "iface eth0 inet6 static\n"
    "    address 2001:db8::10/64\n";

TEST(FixBridgeConf, IfupdownMovesTheUplinkStanzaToTheBridge) {
    Tree t;
    t.files["/etc/network/interfaces"] = kInterfaces;
    t.files["/etc/network/interfaces.d/README"] = "# nothing\n";  // not a stanza file, sourced all the same
    auto p = br::ifupdown_config(t.target(), "br0", "eth0", "52:54:00:12:34:56");
    ASSERT_FALSE(p.done);
    ASSERT_EQ(p.files.size(), 2u);
    std::map<std::string, std::string> got;
    for (const auto& f : p.files) got[f.path] = f.content;
    EXPECT_EQ(got["/etc/network/interfaces"],
              "# The loopback network interface\n"
              "auto lo\n"
              "iface lo inet loopback\n"
              "\n"
              "source /etc/network/interfaces.d/*\n"
              "\n"
              "# The primary network interface\n"
              "allow-hotplug eth0\n"
              "iface eth0 inet manual\n"
              "# kvmready fix net.bridge: eth0 inet static moved to br0\n"
              "\n"
              "# kvmready fix net.bridge: eth0 inet6 static moved to br0\n");
    EXPECT_EQ(got["/etc/network/interfaces.d/br0"],
              "# Written by kvmready fix net.bridge: bridge br0 with uplink eth0.\n"
              "auto br0\n"
              "iface br0 inet static\n"
              "    address 192.0.2.10/24\n"
              "    gateway 192.0.2.1\n"
              "    dns-nameservers 192.0.2.53\n"
              "    bridge_ports eth0\n"
              "    bridge_stp off\n"
              "    bridge_fd 0\n"
              "    bridge_hw 52:54:00:12:34:56\n"
              "iface br0 inet6 static\n"
              "    address 2001:db8::10/64\n");
    // Idempotent: once written, nothing more to do.
    t.apply(p);
    auto again = br::ifupdown_config(t.target(), "br0", "eth0", "52:54:00:12:34:56");
    EXPECT_TRUE(again.done);
    EXPECT_TRUE(again.files.empty());
}

TEST(FixBridgeConf, IfupdownWithoutUplinkTouchesNoExistingFile) {
    Tree t;
    t.files["/etc/network/interfaces"] = kInterfaces;
    auto p = br::ifupdown_config(t.target(), "br0", "", "");
    ASSERT_EQ(p.files.size(), 1u);
    EXPECT_EQ(p.files[0].path, "/etc/network/interfaces.d/br0");
    EXPECT_FALSE(p.files[0].before.has_value());
    EXPECT_NE(p.files[0].content.find("iface br0 inet manual\n    bridge_ports none\n"), std::string::npos) << p.files[0].content;
    t.apply(p);
    EXPECT_TRUE(br::ifupdown_config(t.target(), "br0", "", "").done);
    // Then with the uplink: our own file is regenerated, eth0's stanza moves.
    auto up = br::ifupdown_config(t.target(), "br0", "eth0", "");
    EXPECT_EQ(up.files.size(), 2u);
    t.apply(up);
    EXPECT_TRUE(br::ifupdown_config(t.target(), "br0", "eth0", "").done);
}

TEST(FixBridgeConf, IfupdownAppendsWhenNothingIsSourced) {
    Tree t;
    t.files["/etc/network/interfaces"] = "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n";
    auto p = br::ifupdown_config(t.target(), "br0", "eth0", "");
    ASSERT_EQ(p.files.size(), 1u);
    EXPECT_EQ(p.files[0].content,
              "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet manual\n# kvmready fix net.bridge: eth0 inet dhcp moved to br0\n\n"
              "# Written by kvmready fix net.bridge: bridge br0 with uplink eth0.\nauto br0\niface br0 inet dhcp\n    bridge_ports eth0\n"
              "    bridge_stp off\n    bridge_fd 0\n");
    EXPECT_FALSE(p.notes.empty());  // the DHCP client note
    t.apply(p);
    EXPECT_TRUE(br::ifupdown_config(t.target(), "br0", "eth0", "").done);
}

TEST(FixBridgeConf, IfupdownRefusesAForeignBridgeWithoutTheUplink) {
    Tree t;
    t.files["/etc/network/interfaces"] = "auto br0\niface br0 inet manual\n    bridge_ports eth1\n";
    EXPECT_THROW(br::ifupdown_config(t.target(), "br0", "eth0", ""), std::runtime_error);
    EXPECT_TRUE(br::ifupdown_config(t.target(), "br0", "eth1", "").done);
    EXPECT_TRUE(br::ifupdown_config(t.target(), "br0", "", "").done);
}

TEST(FixBridgeConf, NetworkdWritesBridgeFilesAndOverridesTheUplinksNetwork) {
    Tree t;
    t.files["/etc/systemd/network/20-wired.network"] =
        "[Match]\nName=eth0\n\n[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n\n[Link]\nMTUBytes=1500\n";
    auto p = br::networkd_config(t.target(), "br0", "eth0", "52:54:00:12:34:56");
    ASSERT_EQ(p.files.size(), 3u);
    std::map<std::string, std::string> got;
    for (const auto& f : p.files) got[f.path] = f.content;
    const std::string hdr = "# Written by kvmready fix net.bridge: bridge br0 from /etc/systemd/network/20-wired.network.\n";
    EXPECT_EQ(got["/etc/systemd/network/10-kvmready-br0.netdev"],
              hdr + "[NetDev]\nName=br0\nKind=bridge\nMACAddress=52:54:00:12:34:56\n\n[Bridge]\nSTP=no\nForwardDelaySec=0\n");
    EXPECT_EQ(got["/etc/systemd/network/10-kvmready-br0.network"],
              hdr + "[Match]\nName=br0\n\n[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n\n[Link]\nMTUBytes=1500\n");
    EXPECT_EQ(got["/etc/systemd/network/10-kvmready-eth0.network"], hdr + "[Match]\nName=eth0\n\n[Link]\nMTUBytes=1500\n\n[Network]\nBridge=br0\n");
    t.apply(p);
    EXPECT_TRUE(br::networkd_config(t.target(), "br0", "eth0", "52:54:00:12:34:56").done);
}

TEST(FixBridgeConf, NetworkdSortsBeforeAnEarlyUplinkFile) {
    Tree t;
    t.files["/usr/lib/systemd/network/05-eth.network"] = "[Match]\nName=eth*\n[Network]\nDHCP=yes\n";
    auto p = br::networkd_config(t.target(), "br0", "eth0", "");
    bool found = false;
    for (const auto& f : p.files) found |= f.path == "/etc/systemd/network/01-kvmready-eth0.network";
    EXPECT_TRUE(found);
    EXPECT_TRUE(br::network_matches(br::parse_ini("[Match]\nName=en* eth*\n"), "eth0", ""));
    EXPECT_FALSE(br::network_matches(br::parse_ini("[Match]\nName=!eth*\n"), "eth0", ""));
    EXPECT_TRUE(br::network_matches(br::parse_ini("[Match]\nMACAddress=52:54:00:AA:BB:CC\n"), "x", "52:54:00:aa:bb:cc"));
}

TEST(FixBridgeConf, NetplanMovesIpKeysToTheBridge) {
    Tree t;
    t.files["/etc/netplan/50-cloud-init.yaml"] =
        "network:\n"
        "  version: 2\n"
        "  ethernets:\n"
        "    eth0:\n"
        "      match:\n"
        "        macaddress: \"52:54:00:12:34:56\"\n"
        "      set-name: eth0\n"
        "      addresses:\n"
        "        - 192.0.2.10/24\n"
        "      routes:\n"
        "        - to: default\n"
        "          via: 192.0.2.1\n"
        "      nameservers:\n"
        "        addresses: [192.0.2.53]\n";
    auto p = br::netplan_config(t.target(), "br0", "eth0", "52:54:00:12:34:56");
    ASSERT_EQ(p.files.size(), 2u);
    std::map<std::string, std::string> got;
    for (const auto& f : p.files) got[f.path] = f.content;
    EXPECT_EQ(got["/etc/netplan/50-cloud-init.yaml"],
              "network:\n  version: 2\n  ethernets:\n    eth0:  # kvmready fix net.bridge: IP settings moved to br0\n      match:\n"
              "        macaddress: \"52:54:00:12:34:56\"\n      set-name: eth0\n");
    EXPECT_EQ(got["/etc/netplan/60-kvmready-br0.yaml"],
              "# Written by kvmready fix net.bridge: bridge br0.\nnetwork:\n  version: 2\n  bridges:\n    br0:\n      interfaces: [eth0]\n"
              "      macaddress: \"52:54:00:12:34:56\"\n      parameters:\n        stp: false\n        forward-delay: 0\n      addresses:\n"
              "        - 192.0.2.10/24\n      routes:\n        - to: default\n          via: 192.0.2.1\n      nameservers:\n"
              "        addresses: [192.0.2.53]\n");
    t.apply(p);
    EXPECT_TRUE(br::netplan_config(t.target(), "br0", "eth0", "52:54:00:12:34:56").done);
}

TEST(FixBridgeConf, StackDetection) {
    Tree t;
    EXPECT_EQ(br::detect_stack(t.target(), "").stack, br::Stack::None);
    t.files["/etc/network/interfaces"] = "auto lo\n";
    auto s = br::detect_stack(t.target(), "");
    EXPECT_EQ(s.stack, br::Stack::Ifupdown);
    EXPECT_FALSE(s.bridge_support);
    t.files["/etc/network/if-pre-up.d/bridge"] = "#!/bin/sh\n";
    EXPECT_TRUE(br::detect_stack(t.target(), "").bridge_support);
    t.files["/etc/netplan/01.yaml"] = "network: {}\n";
    EXPECT_EQ(br::detect_stack(t.target(), "").stack, br::Stack::Netplan);
}

TEST(FixBridgeConf, NetworkManagerCommandsCopyTheUplinksIpSettings) {
    std::vector<std::vector<std::string>> seen;
    br::Runner fake = [&](const std::vector<std::string>& argv) {
        seen.push_back(argv);
        kvmready::host::RunResult r;
        r.started = true;
        r.exit_code = 0;
        if (argv[2] == "connection.id") r.exit_code = 10;  // no such connection yet
        else if (argv[2] == "GENERAL.CONNECTION") r.out = "Wired connection 1\n";
        else if (argv[1] == "-g") r.out = "manual\n192.0.2.10/24\n192.0.2.1\n192.0.2.53\n\n\nauto\n\n\n\n\n\n";
        return r;
    };
    auto p = br::nm_commands(fake, "br0", "eth0", "52:54:00:12:34:56");
    ASSERT_FALSE(p.done);
    ASSERT_EQ(p.apply.size(), 5u);
    EXPECT_EQ(p.old_connection, "Wired connection 1");
    const auto& add = p.apply[0];
    auto has = [&](const std::string& k, const std::string& v) {
        for (size_t i = 0; i + 1 < add.size(); ++i)
            if (add[i] == k && add[i + 1] == v) return true;
        return false;
    };
    EXPECT_TRUE(has("ipv4.method", "manual"));
    EXPECT_TRUE(has("ipv4.addresses", "192.0.2.10/24"));
    EXPECT_TRUE(has("ipv4.gateway", "192.0.2.1"));
    EXPECT_TRUE(has("bridge.mac-address", "52:54:00:12:34:56"));
    EXPECT_EQ(p.apply.back(), (std::vector<std::string>{"nmcli", "connection", "up", "br0"}));
    EXPECT_EQ(p.undo.front(), (std::vector<std::string>{"nmcli", "connection", "modify", "Wired connection 1", "connection.autoconnect", "yes"}));
}

TEST(FixBridgeConf, BatchesFromIpJson) {
    const std::string link =
        R"([{"ifindex":2,"ifname":"v0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"address":"d6:87:b8:e0:0f:ea","linkinfo":{"info_kind":"veth"}}])";
    const std::string addr =
        R"([{"ifname":"v0","addr_info":[{"family":"inet","local":"192.0.2.10","prefixlen":24,"broadcast":"192.0.2.255","scope":"global","valid_life_time":4294967295,"preferred_life_time":4294967295},)"
        R"({"family":"inet","local":"192.0.2.11","prefixlen":24,"scope":"global","secondary":true,"dynamic":true,"valid_life_time":3600,"preferred_life_time":1800},)"
        R"({"family":"inet6","local":"2001:db8::10","prefixlen":64,"scope":"global","valid_life_time":4294967295,"preferred_life_time":4294967295},)"
        R"({"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]}])";
    const std::string r4 =
        R"([{"dst":"default","gateway":"192.0.2.1","flags":[]},{"dst":"192.0.2.0/24","protocol":"kernel","scope":"link","prefsrc":"192.0.2.10","flags":[]},)"
        R"({"dst":"198.51.100.0/24","gateway":"192.0.2.254","protocol":"static","metric":50,"table":"100","flags":["onlink"]},)"
        R"({"type":"local","dst":"192.0.2.10","table":"local","protocol":"kernel","scope":"host","prefsrc":"192.0.2.10","flags":[]}])";
    const std::string r6 = R"([{"dst":"2001:db8::/64","protocol":"kernel","metric":256,"flags":[]},{"dst":"default","gateway":"fe80::1","protocol":"ra","metric":1024,"flags":[]}])";
    const auto st = br::parse_link_state(link, addr, r4, r6);
    ASSERT_TRUE(st.exists);
    EXPECT_EQ(st.kind, "veth");
    EXPECT_EQ(st.addrs.size(), 3u);
    ASSERT_EQ(st.routes.size(), 3u);
    br::Move m{"br0", "v0", true, st.mac, "", st.addrs, st.routes};
    EXPECT_EQ(br::forward_batch(m), (std::vector<std::string>{
                                        "link add name br0 type bridge stp_state 0 forward_delay 0",
                                        "link set dev br0 address d6:87:b8:e0:0f:ea",
                                        "link set dev br0 up",
                                        "link set dev v0 master br0",
                                        "addr del 2001:db8::10/64 dev v0",
                                        "addr del 192.0.2.11/24 dev v0",
                                        "addr del 192.0.2.10/24 dev v0",
                                        "addr add 192.0.2.10/24 brd 192.0.2.255 dev br0",
                                        "addr add 192.0.2.11/24 dev br0 valid_lft 3600 preferred_lft 1800",
                                        "addr add 2001:db8::10/64 dev br0 nodad",
                                        "route replace 0.0.0.0/0 via 192.0.2.1 dev br0",
                                        "route replace 198.51.100.0/24 table 100 proto static metric 50 via 192.0.2.254 dev br0 onlink",
                                        "route replace ::/0 proto ra metric 1024 via fe80::1 dev br0",
                                    }));
    EXPECT_EQ(br::reverse_batch(m).front(), "link set dev v0 nomaster");
    EXPECT_EQ(br::reverse_batch(m).back(), "link del dev br0");
    EXPECT_EQ(br::probe_target(m), "192.0.2.1");
}

// ---- network namespaces -----------------------------------------------------------

struct Cmd {
    int rc = -1;
    std::string out, err;
};

Cmd run(const std::vector<std::string>& argv, int timeout_ms = 15000) {
    auto r = kvmready::host::run_process(argv, timeout_ms);
    return {r.started && !r.timed_out ? r.exit_code : -1, r.out, r.err + r.error};
}

std::vector<std::string> words(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

class Ns {
public:
    explicit Ns(const std::string& tag) {
        static std::atomic<int> n{0};
        name_ = fmt::format("kvfb-{}-{}-{}", tag, ::getpid(), n++);
        ok_ = run({"ip", "netns", "add", name_}).rc == 0;
    }
    ~Ns() {
        if (ok_) run({"ip", "netns", "del", name_});
    }
    Ns(const Ns&) = delete;
    Ns& operator=(const Ns&) = delete;
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] const std::string& name() const { return name_; }
    Cmd exec(std::vector<std::string> argv) const {
        argv.insert(argv.begin(), {"ip", "netns", "exec", name_});
        return run(argv);
    }
    bool must(const std::string& line) const {
        const Cmd c = exec(words(line));
        if (c.rc != 0) ADD_FAILURE() << name_ << ": " << line << " -> " << c.rc << " " << c.err;
        return c.rc == 0;
    }
    json ip_json(const std::string& line) const {
        auto a = words(line);
        a.insert(a.begin(), {"ip", "-j"});
        const Cmd c = exec(a);
        try {
            return json::parse(c.out.empty() ? "[]" : c.out);
        } catch (const json::exception&) {
            return json::array();
        }
    }

private:
    std::string name_;
    bool ok_ = false;
};

// "host" holds v0 (192.0.2.10/24, 2001:db8::10/64, default routes) whose
// peer v1 sits in "gw" (192.0.2.1, 2001:db8::1).
struct Lab {
    Ns host{"h"}, gw{"g"};
    bool ok = false;
    Lab() {
        if (!host.ok() || !gw.ok()) return;
        ok = run({"ip", "link", "add", "v0", "netns", host.name(), "type", "veth", "peer", "name", "v1", "netns", gw.name()}).rc == 0 &&
             host.must("ip link set lo up") && gw.must("ip link set lo up") && gw.must("ip addr add 192.0.2.1/24 dev v1") &&
             gw.must("ip addr add 2001:db8::1/64 dev v1 nodad") && gw.must("ip link set v1 up") &&
             host.must("ip addr add 192.0.2.10/24 dev v0") && host.must("ip addr add 2001:db8::10/64 dev v0 nodad") &&
             host.must("ip link set v0 up") && host.must("ip route add default via 192.0.2.1 dev v0") &&
             host.must("ip -6 route add default via 2001:db8::1 dev v0 metric 1024");
    }
    // v0's addresses (global) and whether it is enslaved.
    [[nodiscard]] std::string master(const std::string& dev) const {
        auto j = host.ip_json("link show dev " + dev);
        return j.empty() ? "<gone>" : j[0].value("master", "");
    }
    [[nodiscard]] std::vector<std::string> addrs(const std::string& dev) const {
        std::vector<std::string> out;
        auto j = host.ip_json("addr show dev " + dev);
        if (!j.empty())
            for (const auto& a : j[0].value("addr_info", json::array()))
                if (a.value("scope", "") == "global") out.push_back(a.value("local", "") + "/" + std::to_string(a.value("prefixlen", 0)));
        return out;
    }
    [[nodiscard]] std::string default_dev() const {
        auto j = host.ip_json("route show default");
        return j.empty() ? "" : j[0].value("dev", "");
    }
    [[nodiscard]] bool exists(const std::string& dev) const { return !host.ip_json("link show dev " + dev).empty(); }
};

bool can_netns(std::string& why) {
    if (::geteuid() != 0) {
        why = "network namespaces need root";
        return false;
    }
    if (run({"ip", "-V"}).rc != 0) {
        why = "iproute2's ip is not installed";
        return false;
    }
    Ns probe("p");
    if (!probe.ok()) {
        why = "cannot create a network namespace here";
        return false;
    }
    return true;
}

#define REQUIRE_NETNS()                                   \
    do {                                                  \
        std::string why_;                                 \
        if (!can_netns(why_)) GTEST_SKIP() << why_;       \
    } while (0)

int netns_fd(const std::string& name) { return ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC); }

// Runs fn on a thread that lives in namespace `name` (setns is per thread).
template <class F>
void in_netns(const std::string& name, F fn) {
    std::thread t([&] {
        const int fd = netns_fd(name);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
            ADD_FAILURE() << "setns " << name << ": " << std::strerror(errno);
            return;
        }
        ::close(fd);
        fn();
    });
    t.join();
}

using TempDir = kvmready::testsupport::TempDir;

kvmready::fix::Step link_step(const std::string& bridge, const std::string& uplink, int probe_ms, int watchdog_ms) {
    kvmready::fix::Step s;
    s.op = "bridge.link";
    s.runtime = true;
    s.args = {{"bridge", bridge}, {"uplink", uplink}, {"probe_ms", probe_ms}, {"watchdog_ms", watchdog_ms}};
    return s;
}

const kvmready::fix::Op& link_op() {
    kvmready::fix::register_builtin_ops();
    const auto* op = kvmready::fix::find_op("bridge.link");
    if (!op) throw std::runtime_error("bridge.link is not registered");
    return *op;
}

// Pings 192.0.2.10 from the gateway's namespace every millisecond and
// records the longest silence between two replies.
class Pinger {
public:
    explicit Pinger(const std::string& ns) {
        t_ = std::thread([this, ns] {
            const int nfd = netns_fd(ns);
            if (nfd < 0 || ::setns(nfd, CLONE_NEWNET) != 0) return;
            ::close(nfd);
            const int fd = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
            if (fd < 0) return;
            sockaddr_in dst{};
            dst.sin_family = AF_INET;
            ::inet_pton(AF_INET, "192.0.2.10", &dst.sin_addr);
            uint16_t seq = 0;
            auto last = Clock::now();
            started_ = true;
            while (!stop_) {
                uint8_t pkt[8] = {ICMP_ECHO, 0, 0, 0, 0x4b, 0x52, 0, 0};
                ++seq;
                pkt[6] = static_cast<uint8_t>(seq >> 8);
                pkt[7] = static_cast<uint8_t>(seq);
                uint32_t sum = 0;
                for (int i = 0; i < 8; i += 2) sum += static_cast<uint32_t>(pkt[i] << 8 | pkt[i + 1]);
                while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
                const uint16_t c = htons(static_cast<uint16_t>(~sum));
                std::memcpy(pkt + 2, &c, 2);
                ::sendto(fd, pkt, sizeof pkt, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
                const auto until = Clock::now() + std::chrono::milliseconds(1);
                while (Clock::now() < until) {
                    pollfd pf{fd, POLLIN, 0};
                    if (::poll(&pf, 1, 1) <= 0) continue;
                    uint8_t buf[256];
                    sockaddr_in from{};
                    socklen_t fl = sizeof from;
                    const ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
                    const size_t ihl = n > 0 ? static_cast<size_t>(buf[0] & 0x0f) * 4 : 0;
                    if (n > 0 && static_cast<size_t>(n) >= ihl + 8 && buf[ihl] == ICMP_ECHOREPLY && buf[ihl + 4] == 0x4b && from.sin_addr.s_addr == dst.sin_addr.s_addr) {
                        const auto now = Clock::now();
                        const double gap = std::chrono::duration<double, std::milli>(now - last).count();
                        if (replies_ > 0 && gap > max_gap_) max_gap_ = gap;
                        last = now;
                        ++replies_;
                    }
                }
            }
            ::close(fd);
        });
    }
    ~Pinger() { stop(); }
    void stop() {
        stop_ = true;
        if (t_.joinable()) t_.join();
    }
    double max_gap_ms() const { return max_gap_; }
    int replies() const { return replies_; }
    // Waits until `n` replies in all have come back, or the deadline passes.
    bool wait_for_replies(int n, std::chrono::milliseconds deadline) const {
        const auto until = Clock::now() + deadline;
        while (replies_ < n && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return replies_ >= n;
    }

private:
    std::thread t_;
    std::atomic<bool> stop_{false}, started_{false};
    std::atomic<int> replies_{0};
    double max_gap_ = 0;
};

TEST(FixBridgeNetns, UplinkMoveKeepsConnectivityAndUndoRestores) {
    REQUIRE_NETNS();
    Lab lab;
    ASSERT_TRUE(lab.ok);
    TempDir dir;
    const auto& op = link_op();
    // The kernel adds v0's own link-local host route (fe80::...) only once
    // IPv6 DAD finishes, which may be before or after this snapshot; the fix
    // never moves link-local addresses, so that route is left out of both.
    auto routes_of_v0 = [&] {
        auto all = lab.host.ip_json("route show table all dev v0");
        auto kept = decltype(all)::array();
        for (const auto& r : all)
            if (!(r.value("type", "") == "local" && r.value("dst", "").rfind("fe80:", 0) == 0)) kept.push_back(r);
        return kept;
    };
    const auto before_routes = routes_of_v0();
    Pinger pinger(lab.gw.name());
    // The gateway reaches v0 before the move: the gaps measured are the move's.
    ASSERT_TRUE(pinger.wait_for_replies(25, std::chrono::seconds(10))) << "no echo replies before the move";
    json undo;
    std::vector<std::string> logs;
    std::string error;
    in_netns(lab.host.name(), [&] {
        kvmready::fix::OpContext ctx;
        ctx.run_dir = dir.path;
        ctx.log = [&](const std::string& s) { logs.push_back(s); };
        const auto step = link_step("br0", "v0", 3000, 8000);
        try {
            undo = op.prepare(step, ctx);
            op.apply(step, ctx, undo);
        } catch (const std::exception& e) {
            error = e.what();
        }
    });
    // And after it, through the bridge: keep pinging until as many replies again came back.
    pinger.wait_for_replies(pinger.replies() + 50, std::chrono::seconds(10));
    pinger.stop();
    ASSERT_EQ(error, "");
    for (const auto& l : logs) std::cout << "  log: " << l << "\n";
    EXPECT_EQ(lab.master("v0"), "br0");
    EXPECT_TRUE(lab.addrs("v0").empty());
    EXPECT_EQ(lab.addrs("br0"), (std::vector<std::string>{"192.0.2.10/24", "2001:db8::10/64"}));
    EXPECT_EQ(lab.default_dev(), "br0");
    // The bridge took the uplink's MAC (leases and ARP caches stay valid).
    EXPECT_EQ(lab.host.ip_json("link show dev br0")[0].value("address", "x"), lab.host.ip_json("link show dev v0")[0].value("address", "y"));
    EXPECT_GT(pinger.replies(), 50);
    std::cout << fmt::format("  measured: batch {:.1f} ms, probe answered {:.1f} ms after the batch, longest gap seen by the gateway's "
                             "1 ms ping {:.1f} ms ({} replies)\n",
                             undo.value("batch_ms", -1.0), undo.value("probe_ms", -1.0), pinger.max_gap_ms(), pinger.replies());
    RecordProperty("batch_ms", std::to_string(undo.value("batch_ms", -1.0)));
    RecordProperty("gap_ms", std::to_string(pinger.max_gap_ms()));
    // An outage bound, not a speed figure: the probe's first echo may be lost
    // to neighbour discovery on the new bridge and answered at the 1 s retry,
    // so the gateway may see one gap just over a second; the watchdog's 8 s
    // revert would show as far more.
    EXPECT_LT(pinger.max_gap_ms(), 2500.0);
    // The watchdog was told: nothing reverted after its deadline.
    std::ifstream wl(undo.value("watchdog_log", ""));
    std::string wlog((std::istreambuf_iterator<char>(wl)), std::istreambuf_iterator<char>());
    EXPECT_NE(wlog.find("confirmed"), std::string::npos) << wlog;

    // Undo: addresses and routes back on v0, bridge gone.
    in_netns(lab.host.name(), [&] {
        kvmready::fix::OpContext ctx;
        ctx.run_dir = dir.path;
        ctx.log = [](const std::string&) {};
        op.undo(undo, ctx);
    });
    EXPECT_FALSE(lab.exists("br0"));
    EXPECT_EQ(lab.master("v0"), "");
    EXPECT_EQ(lab.addrs("v0"), (std::vector<std::string>{"192.0.2.10/24", "2001:db8::10/64"}));
    EXPECT_EQ(lab.default_dev(), "v0");
    EXPECT_EQ(routes_of_v0(), before_routes);
    // Undo twice is harmless.
    in_netns(lab.host.name(), [&] {
        kvmready::fix::OpContext ctx;
        ctx.run_dir = dir.path;
        op.undo(undo, ctx);
    });
    EXPECT_EQ(lab.addrs("v0").size(), 2u);
}

TEST(FixBridgeNetns, ProbeFailureRollsBack) {
    REQUIRE_NETNS();
    Lab lab;
    ASSERT_TRUE(lab.ok);
    // The gateway stops answering (its addresses go; the link stays up).
    ASSERT_TRUE(lab.gw.must("ip addr flush dev v1"));
    TempDir dir;
    const auto& op = link_op();
    std::string error;
    const auto t0 = Clock::now();
    in_netns(lab.host.name(), [&] {
        kvmready::fix::OpContext ctx;
        ctx.run_dir = dir.path;
        const auto step = link_step("br0", "v0", 1500, 6000);
        json undo;
        try {
            undo = op.prepare(step, ctx);
            op.apply(step, ctx, undo);
        } catch (const std::exception& e) {
            error = e.what();
        }
    });
    const double total = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::cout << "  " << error << " (whole step " << total << " ms)\n";
    EXPECT_NE(error.find("connectivity lost"), std::string::npos) << error;
    EXPECT_NE(error.find("rolled back"), std::string::npos) << error;
    EXPECT_FALSE(lab.exists("br0"));
    EXPECT_EQ(lab.master("v0"), "");
    EXPECT_EQ(lab.addrs("v0"), (std::vector<std::string>{"192.0.2.10/24", "2001:db8::10/64"}));
    EXPECT_EQ(lab.default_dev(), "v0");
    EXPECT_LT(total, 5000.0) << "the rollback must not wait for the watchdog's deadline";
}

TEST(FixBridgeNetns, KilledMidMoveTheWatchdogStillRollsBack) {
    REQUIRE_NETNS();
    Lab lab;
    ASSERT_TRUE(lab.ok);
    ASSERT_TRUE(lab.gw.must("ip addr flush dev v1"));  // the probe would wait its whole 5 s
    TempDir dir;
    (void)link_op();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const int fd = netns_fd(lab.host.name());
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) ::_exit(2);
        kvmready::fix::OpContext ctx;
        ctx.run_dir = dir.path;
        const auto step = link_step("br0", "v0", 5000, 20000);
        try {
            auto undo = link_op().prepare(step, ctx);
            link_op().apply(step, ctx, undo);
        } catch (...) {
            ::_exit(3);
        }
        ::_exit(0);
    }
    // Wait for the move, then kill the "kvmready" process outright.
    const auto t0 = Clock::now();
    while (lab.master("v0") != "br0" && Clock::now() - t0 < std::chrono::seconds(5)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(lab.master("v0"), "br0");
    EXPECT_EQ(lab.default_dev(), "br0");
    ::kill(pid, SIGKILL);
    const auto killed = Clock::now();
    int status = 0;
    ::waitpid(pid, &status, 0);
    while ((lab.exists("br0") || lab.addrs("v0").size() < 2 || lab.default_dev() != "v0") && Clock::now() - killed < std::chrono::seconds(10))
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - killed).count();
    std::cout << fmt::format("  measured: restored {:.0f} ms after SIGKILL\n", ms);
    EXPECT_FALSE(lab.exists("br0"));
    EXPECT_EQ(lab.addrs("v0"), (std::vector<std::string>{"192.0.2.10/24", "2001:db8::10/64"}));
    EXPECT_EQ(lab.default_dev(), "v0");
    EXPECT_LT(ms, 10000.0) << "the watchdog reverts as soon as kvmready is gone, not at its 20 s deadline";
    std::ifstream wl(dir.path / "step-0-bridge-watchdog.log");
    std::string wlog((std::istreambuf_iterator<char>(wl)), std::istreambuf_iterator<char>());
    EXPECT_NE(wlog.find("kvmready ended before confirming"), std::string::npos) << wlog;
}

TEST(FixBridgeNetns, WithoutUplinkNothingElseIsTouched) {
    REQUIRE_NETNS();
    Lab lab;
    ASSERT_TRUE(lab.ok);
    TempDir dir;
    const auto& op = link_op();
    const auto links_before = lab.host.ip_json("link show").size();
    json undo;
    in_netns(lab.host.name(), [&] {
        kvmready::fix::OpContext ctx;
        ctx.run_dir = dir.path;
        const auto step = link_step("br0", "", 1000, 2000);
        undo = op.prepare(step, ctx);
        op.apply(step, ctx, undo);
    });
    EXPECT_TRUE(lab.exists("br0"));
    EXPECT_EQ(lab.master("v0"), "");
    EXPECT_EQ(lab.addrs("v0").size(), 2u);
    EXPECT_EQ(lab.default_dev(), "v0");
    in_netns(lab.host.name(), [&] {
        kvmready::fix::OpContext ctx;
        ctx.run_dir = dir.path;
        op.undo(undo, ctx);
    });
    EXPECT_FALSE(lab.exists("br0"));
    EXPECT_EQ(lab.host.ip_json("link show").size(), links_before);
    EXPECT_EQ(lab.addrs("v0").size(), 2u);
}

// ---- the CLI, end to end ------------------------------------------------------------

const std::string kBinary = KVMREADY_BINARY;
const std::string kNoLibvirt = "qemu:///system?socket=/nonexistent/kvmready-fix-bridge.sock";

// kvmready in namespace `ns` with an overlay over /etc whose upper layer is
// `upper` (so /etc/network, /etc/systemd/network, ... are this test's), its
// own /sys for that namespace, and KVMREADY_STATE_DIR=state. Started, not
// waited for: wait_cli() collects it.
struct Cli {
    pid_t pid = -1;
    fs::path out, err;
};

Cli start_cli(const std::string& ns, const fs::path& dir, std::vector<std::string> args) {
    fs::create_directories(dir / "upper");
    fs::create_directories(dir / "work");
    fs::create_directories(dir / "state");
    Cli c;
    static int n = 0;
    c.out = dir / fmt::format("out-{}", n);
    c.err = dir / fmt::format("err-{}", n++);
    args.insert(args.begin(), kBinary);
    args.insert(args.end(), {"--connect", kNoLibvirt});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string env_state = "KVMREADY_STATE_DIR=" + (dir / "state").string();
    std::string env_path = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    std::vector<char*> envp = {env_state.data(), env_path.data(), nullptr};
    const std::string opts = fmt::format("lowerdir=/etc,upperdir={},workdir={}", (dir / "upper").string(), (dir / "work").string());
    const int nsfd = netns_fd(ns);
    c.pid = ::fork();
    if (c.pid == 0) {
        const int o = ::open(c.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int e = ::open(c.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(o, 1);
        ::dup2(e, 2);
        if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(120);
        if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0) ::_exit(121);
        ::umount2("/sys", MNT_DETACH);
        if (::mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) ::_exit(122);
        if (::mount("overlay", "/etc", "overlay", 0, opts.c_str()) != 0) ::_exit(123);
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    if (nsfd >= 0) ::close(nsfd);
    return c;
}

std::string slurp(const fs::path& p) {
    std::ifstream f(p);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

Cmd wait_cli(const Cli& c) {
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(c.out), slurp(c.err)};
}

Cmd cli(const std::string& ns, const fs::path& dir, std::vector<std::string> args) { return wait_cli(start_cli(ns, dir, std::move(args))); }

const char* const kLabInterfaces =
    "auto lo\n"
    "iface lo inet loopback\n"
    "\n"
    "source /etc/network/interfaces.d/*\n"
    "\n"
    "auto v0\n"
    "iface v0 inet static\n"
    "    address 192.0.2.10/24\n"
    "    gateway 192.0.2.1\n"
    "\n"
    "iface v0 inet6 static\n"
    "    address 2001:db8::10/64\n";

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

// An ifupdown host: /etc/network/interfaces naming v0, bridge-utils' hook.
void ifupdown_host(const fs::path& dir) {
    write(dir / "upper/network/interfaces", kLabInterfaces);
    write(dir / "upper/network/if-pre-up.d/bridge", "#!/bin/sh\n");
}

TEST(FixBridgeCli, IfupdownApplyIsIdempotentAndUndoRestoresBytes) {
    REQUIRE_NETNS();
    Lab lab;
    ASSERT_TRUE(lab.ok);
    TempDir dir;
    ifupdown_host(dir.path);

    auto plan = cli(lab.host.name(), dir.path, {"fix", "--only", "net.bridge", "--bridge", "br0", "--uplink", "v0"});
    EXPECT_EQ(plan.rc, 2) << plan.out << plan.err;
    EXPECT_NE(plan.out.find("net.bridge · confirm"), std::string::npos) << plan.out;
    EXPECT_NE(plan.out.find("+++ b/etc/network/interfaces.d/br0"), std::string::npos) << plan.out;
    EXPECT_NE(plan.out.find("$ ip link set dev v0 master br0"), std::string::npos) << plan.out;
    EXPECT_FALSE(lab.exists("br0")) << "a dry run changes nothing";

    auto noyes = cli(lab.host.name(), dir.path, {"fix", "--apply", "--only", "net.bridge", "--bridge", "br0", "--uplink", "v0"});
    EXPECT_FALSE(lab.exists("br0")) << "moving the uplink needs --yes: " << noyes.out;

    auto apply = cli(lab.host.name(), dir.path, {"fix", "--apply", "--yes", "--only", "net.bridge", "--bridge", "br0", "--uplink", "v0"});
    ASSERT_EQ(apply.rc, 0) << apply.out << apply.err;
    EXPECT_EQ(lab.master("v0"), "br0");
    EXPECT_EQ(lab.addrs("br0"), (std::vector<std::string>{"192.0.2.10/24", "2001:db8::10/64"}));
    EXPECT_EQ(lab.default_dev(), "br0");
    const std::string br0 = slurp(dir.path / "upper/network/interfaces.d/br0");
    EXPECT_NE(br0.find("iface br0 inet static\n    address 192.0.2.10/24\n    gateway 192.0.2.1\n    bridge_ports v0\n"), std::string::npos) << br0;
    EXPECT_NE(slurp(dir.path / "upper/network/interfaces").find("iface v0 inet manual\n"), std::string::npos);

    auto again = cli(lab.host.name(), dir.path, {"fix", "--apply", "--yes", "--only", "net.bridge", "--bridge", "br0", "--uplink", "v0"});
    EXPECT_EQ(again.rc, 0) << again.out << again.err;
    EXPECT_EQ(again.out.find("[net.bridge]"), std::string::npos) << "second apply must change nothing: " << again.out;

    auto undo = cli(lab.host.name(), dir.path, {"fix", "--undo"});
    EXPECT_EQ(undo.rc, 0) << undo.out << undo.err;
    EXPECT_EQ(slurp(dir.path / "upper/network/interfaces"), kLabInterfaces) << "byte-identical restore";
    EXPECT_FALSE(fs::exists(dir.path / "upper/network/interfaces.d/br0"));
    EXPECT_FALSE(lab.exists("br0"));
    EXPECT_EQ(lab.master("v0"), "");
    EXPECT_EQ(lab.addrs("v0"), (std::vector<std::string>{"192.0.2.10/24", "2001:db8::10/64"}));
    EXPECT_EQ(lab.default_dev(), "v0");
}

TEST(FixBridgeCli, LostConnectivityRollsBackAndPersistsNothing) {
    REQUIRE_NETNS();
    Lab lab;
    ASSERT_TRUE(lab.ok);
    ASSERT_TRUE(lab.gw.must("ip addr flush dev v1"));  // the gateway stops answering
    TempDir dir;
    ifupdown_host(dir.path);
    auto apply = cli(lab.host.name(), dir.path, {"fix", "--apply", "--yes", "--only", "net.bridge", "--bridge", "br0", "--uplink", "v0"});
    EXPECT_EQ(apply.rc, 1) << apply.out << apply.err;
    EXPECT_NE((apply.out + apply.err).find("connectivity lost"), std::string::npos) << apply.out << apply.err;
    EXPECT_FALSE(lab.exists("br0"));
    EXPECT_EQ(lab.addrs("v0"), (std::vector<std::string>{"192.0.2.10/24", "2001:db8::10/64"}));
    EXPECT_EQ(lab.default_dev(), "v0");
    EXPECT_EQ(slurp(dir.path / "upper/network/interfaces"), kLabInterfaces) << "nothing persisted after a failed probe";
    EXPECT_FALSE(fs::exists(dir.path / "upper/network/interfaces.d/br0"));
}

TEST(FixBridgeCli, KilledDuringTheMoveTheWatchdogRollsBack) {
    REQUIRE_NETNS();
    Lab lab;
    ASSERT_TRUE(lab.ok);
    ASSERT_TRUE(lab.gw.must("ip addr flush dev v1"));  // the probe waits its whole 5 s
    TempDir dir;
    ifupdown_host(dir.path);
    auto c = start_cli(lab.host.name(), dir.path, {"fix", "--apply", "--yes", "--only", "net.bridge", "--bridge", "br0", "--uplink", "v0"});
    const auto t0 = Clock::now();
    while (lab.master("v0") != "br0" && Clock::now() - t0 < std::chrono::seconds(10)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(lab.master("v0"), "br0") << slurp(c.err);
    ::kill(c.pid, SIGKILL);
    const auto killed = Clock::now();
    (void)wait_cli(c);
    while ((lab.exists("br0") || lab.addrs("v0").size() < 2 || lab.default_dev() != "v0") && Clock::now() - killed < std::chrono::seconds(15))
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - killed).count();
    std::cout << fmt::format("  measured: kvmready SIGKILLed mid-probe, host restored {:.0f} ms later\n", ms);
    EXPECT_FALSE(lab.exists("br0"));
    EXPECT_EQ(lab.addrs("v0"), (std::vector<std::string>{"192.0.2.10/24", "2001:db8::10/64"}));
    EXPECT_EQ(lab.default_dev(), "v0");
    EXPECT_LT(ms, 6000.0) << "restored as soon as kvmready is gone, not at the watchdog's 10 s deadline";
    EXPECT_EQ(slurp(dir.path / "upper/network/interfaces"), kLabInterfaces);
    EXPECT_FALSE(fs::exists(dir.path / "upper/network/interfaces.d/br0"));
    // The interrupted run is journaled; undoing it finds nothing left to revert.
    auto undo = cli(lab.host.name(), dir.path, {"fix", "--undo"});
    EXPECT_EQ(undo.rc, 0) << undo.out << undo.err;
    EXPECT_EQ(lab.addrs("v0").size(), 2u);
    EXPECT_FALSE(lab.exists("br0"));
}

TEST(FixBridgeCli, WithoutUplinkIsAutomaticAndTouchesNothingElse) {
    REQUIRE_NETNS();
    Lab lab;
    ASSERT_TRUE(lab.ok);
    TempDir dir;
    ifupdown_host(dir.path);
    auto apply = cli(lab.host.name(), dir.path, {"fix", "--apply", "--only", "net.bridge", "--bridge", "br0"});
    ASSERT_EQ(apply.rc, 0) << apply.out << apply.err;
    EXPECT_TRUE(lab.exists("br0"));
    EXPECT_EQ(lab.master("v0"), "");
    EXPECT_EQ(lab.addrs("v0").size(), 2u);
    EXPECT_EQ(slurp(dir.path / "upper/network/interfaces"), kLabInterfaces);
    EXPECT_NE(slurp(dir.path / "upper/network/interfaces.d/br0").find("bridge_ports none"), std::string::npos);
    auto again = cli(lab.host.name(), dir.path, {"fix", "--only", "net.bridge", "--bridge", "br0"});
    EXPECT_EQ(again.rc, 0) << again.out;
    auto undo = cli(lab.host.name(), dir.path, {"fix", "--undo"});
    EXPECT_EQ(undo.rc, 0) << undo.out << undo.err;
    EXPECT_FALSE(lab.exists("br0"));
    EXPECT_FALSE(fs::exists(dir.path / "upper/network/interfaces.d/br0"));
}

TEST(FixBridgeCli, NetworkdFilesForTheUplink) {
    REQUIRE_NETNS();
    Lab lab;
    ASSERT_TRUE(lab.ok);
    TempDir dir;
    const std::string wired = "[Match]\nName=v0\n\n[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\n";
    write(dir.path / "upper/systemd/network/20-v0.network", wired);
    if (fs::exists("/etc/network/interfaces") || fs::exists("/etc/netplan")) GTEST_SKIP() << "this machine's own /etc has ifupdown or netplan files, which the overlay shows";
    auto apply = cli(lab.host.name(), dir.path, {"fix", "--apply", "--yes", "--only", "net.bridge", "--bridge", "br0", "--uplink", "v0"});
    ASSERT_EQ(apply.rc, 0) << apply.out << apply.err;
    EXPECT_EQ(lab.master("v0"), "br0");
    const std::string net = slurp(dir.path / "upper/systemd/network/10-kvmready-br0.network");
    EXPECT_NE(net.find("[Match]\nName=br0\n\n[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\n"), std::string::npos) << net;
    EXPECT_NE(slurp(dir.path / "upper/systemd/network/10-kvmready-v0.network").find("Bridge=br0"), std::string::npos);
    EXPECT_NE(slurp(dir.path / "upper/systemd/network/10-kvmready-br0.netdev").find("Kind=bridge"), std::string::npos);
    auto undo = cli(lab.host.name(), dir.path, {"fix", "--undo"});
    EXPECT_EQ(undo.rc, 0) << undo.out << undo.err;
    EXPECT_FALSE(fs::exists(dir.path / "upper/systemd/network/10-kvmready-br0.network"));
    EXPECT_EQ(slurp(dir.path / "upper/systemd/network/20-v0.network"), wired);
    EXPECT_EQ(lab.default_dev(), "v0");
}

}  // namespace
