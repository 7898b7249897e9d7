// kvmready's nf_tables reader (src/host/nftables.cpp: one netlink dump,
// decoded in process) against the programs it replaces, `nft -j list
// ruleset` and `iptables -S`, run through the project's process runner
// (argv, no shell). All three read a network namespace this benchmark makes
// and fills with a libvirt-like ruleset (libvirt 9's iptables-nft chains for
// virbr0 in filter, nat and mangle, a physdev and a conntrack match, plus a
// native nft table), never this machine's own; the namespace is deleted at
// exit. tests/net_netns_test.cpp holds the reader to `nft -j list ruleset`.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "host/host.hpp"
#include "host/process.hpp"

namespace {

using namespace kvmready;

// What `iptables-save` shows after libvirt 9 started its default network.
constexpr const char* kIptables = R"(*mangle
:LIBVIRT_PRT - [0:0]
-A POSTROUTING -j LIBVIRT_PRT
-A LIBVIRT_PRT -o virbr0 -p udp -m udp --dport 68 -j CHECKSUM --checksum-fill
COMMIT
*nat
:LIBVIRT_PRT - [0:0]
-A POSTROUTING -j LIBVIRT_PRT
-A LIBVIRT_PRT -s 192.168.122.0/24 -d 224.0.0.0/24 -j RETURN
-A LIBVIRT_PRT -s 192.168.122.0/24 -d 255.255.255.255/32 -j RETURN
-A LIBVIRT_PRT -s 192.168.122.0/24 ! -d 192.168.122.0/24 -p tcp -j MASQUERADE --to-ports 1024-65535
-A LIBVIRT_PRT -s 192.168.122.0/24 ! -d 192.168.122.0/24 -p udp -j MASQUERADE --to-ports 1024-65535
-A LIBVIRT_PRT -s 192.168.122.0/24 ! -d 192.168.122.0/24 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:LIBVIRT_FWI - [0:0]
:LIBVIRT_FWO - [0:0]
:LIBVIRT_FWX - [0:0]
:LIBVIRT_INP - [0:0]
:LIBVIRT_OUT - [0:0]
-A INPUT -j LIBVIRT_INP
-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT
-A FORWARD -j LIBVIRT_FWX
-A FORWARD -j LIBVIRT_FWI
-A FORWARD -j LIBVIRT_FWO
-A OUTPUT -j LIBVIRT_OUT
-A LIBVIRT_FWI -d 192.168.122.0/24 -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A LIBVIRT_FWI -o virbr0 -j REJECT --reject-with icmp-port-unreachable
-A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT
-A LIBVIRT_FWO -i virbr0 -j REJECT --reject-with icmp-port-unreachable
-A LIBVIRT_FWX -i virbr0 -o virbr0 -j ACCEPT
-A LIBVIRT_INP -i virbr0 -p udp -m udp --dport 53 -j ACCEPT
-A LIBVIRT_INP -i virbr0 -p tcp -m tcp --dport 53 -j ACCEPT
-A LIBVIRT_INP -i virbr0 -p udp -m udp --dport 67 -j ACCEPT
-A LIBVIRT_INP -i virbr0 -p tcp -m tcp --dport 67 -j ACCEPT
-A LIBVIRT_OUT -o virbr0 -p udp -m udp --dport 53 -j ACCEPT
-A LIBVIRT_OUT -o virbr0 -p tcp -m tcp --dport 53 -j ACCEPT
-A LIBVIRT_OUT -o virbr0 -p udp -m udp --dport 68 -j ACCEPT
-A LIBVIRT_OUT -o virbr0 -p tcp -m tcp --dport 68 -j ACCEPT
COMMIT
)";

// A host firewall of its own beside libvirt's (as firewalld or a hand-written nftables.conf leaves one).
constexpr const char* kNft = R"(table inet host_filter {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    iif "lo" accept
    tcp dport 22 accept
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    iifname "virbr0" accept
    oifname "virbr0" ct state established,related accept
  }
}
)";

// The namespace, made on first use and deleted at exit. While a benchmark
// runs, this (main) thread is inside it: netlink sockets it opens and
// programs it starts see only its ruleset.
class RulesetNetns {
public:
    RulesetNetns() : name_("kvrb-nft-" + std::to_string(::getpid())) {
        if (::geteuid() != 0) {
            error_ = "needs root (network namespaces, CAP_NET_ADMIN)";
            return;
        }
        for (const char* tool : {"ip", "nft", "iptables", "iptables-restore"})
            if (host::run_process({tool, "--version"}, 5000).error.size()) {
                error_ = std::string(tool) + " is not installed (apt-get install iproute2 nftables iptables)";
                return;
            }
        if (!run({"ip", "netns", "add", name_})) return;
        created_ = true;
        const std::string dir = "/run/netns/";
        const std::string v4 = "/tmp/" + name_ + ".v4", nft = "/tmp/" + name_ + ".nft";
        std::ofstream(v4) << kIptables;
        std::ofstream(nft) << kNft;
        const bool filled = run({"ip", "netns", "exec", name_, "iptables-restore", v4}) &&
                            run({"ip", "netns", "exec", name_, "nft", "-f", nft});
        ::unlink(v4.c_str());
        ::unlink(nft.c_str());
        if (!filled) return;
        ns_fd_ = ::open((dir + name_).c_str(), O_RDONLY | O_CLOEXEC);
        own_fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (ns_fd_ < 0 || own_fd_ < 0) error_ = "cannot open the namespaces";
    }
    ~RulesetNetns() {
        if (ns_fd_ >= 0) ::close(ns_fd_);
        if (own_fd_ >= 0) ::close(own_fd_);
        if (created_) host::run_process({"ip", "netns", "del", name_}, 10000);
    }
    [[nodiscard]] const std::string& error() const { return error_; }
    bool enter() { return ::setns(ns_fd_, CLONE_NEWNET) == 0; }
    void leave() { (void)::setns(own_fd_, CLONE_NEWNET); }

private:
    bool run(const std::vector<std::string>& argv) {
        const auto r = host::run_process(argv, 15000);
        if (r.started && r.exit_code == 0) return true;
        error_ = argv[0] + " " + argv[1] + " " + argv[2] + "... failed: " + r.err + r.error;
        return false;
    }
    std::string name_, error_;
    bool created_ = false;
    int ns_fd_ = -1, own_fd_ = -1;
};

RulesetNetns& netns() {
    static RulesetNetns n;
    return n;
}

// Runs `body` inside the namespace, after `check` said the first result is sound.
template <class Body, class Check>
void in_netns(benchmark::State& st, Body body, Check check) {
    RulesetNetns& n = netns();
    if (!n.error().empty()) return st.SkipWithError(n.error().c_str());
    if (!n.enter()) return st.SkipWithError("setns into the benchmark's namespace failed");
    if (std::string why = check(body()); !why.empty()) {
        n.leave();
        return st.SkipWithError(why.c_str());
    }
    for (auto _ : st) benchmark::DoNotOptimize(body());
    n.leave();
}

void BM_Nftables_NetlinkReader(benchmark::State& st) {
    in_netns(st, [] { return host::read_nftables(); },
             [](const host::NftRuleset& r) -> std::string {
                 if (!r.error.empty()) return r.error;
                 const std::string j = r.ruleset.dump();
                 return j.find("LIBVIRT_FWI") != std::string::npos && j.find("host_filter") != std::string::npos
                            ? ""
                            : "the reader did not see the benchmark's ruleset";
             });
}
BENCHMARK(BM_Nftables_NetlinkReader)->UseRealTime()->Unit(benchmark::kMicrosecond);

auto program(std::vector<std::string> argv, const char* needle) {
    return std::make_pair([argv] { return host::run_process(argv, 15000); },
                          [argv, needle](const host::RunResult& r) -> std::string {
                              if (r.exit_code != 0) return argv[0] + " failed: " + r.err + r.error;
                              return r.out.find(needle) != std::string::npos ? "" : argv[0] + " did not show the ruleset";
                          });
}

void BM_Nftables_NftJsonListRuleset(benchmark::State& st) {
    auto [body, check] = program({"nft", "-j", "list", "ruleset"}, "LIBVIRT_FWI");
    in_netns(st, body, check);
}
void BM_Nftables_IptablesS(benchmark::State& st) {
    auto [body, check] = program({"iptables", "-S"}, "LIBVIRT_FWI");
    in_netns(st, body, check);
}
BENCHMARK(BM_Nftables_NftJsonListRuleset)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Nftables_IptablesS)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
