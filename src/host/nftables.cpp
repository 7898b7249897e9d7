// The nf_tables ruleset over netlink, written in the schema of
// `nft -j list ruleset` (see NftRuleset in host.hpp for what is decoded).
//
// Why not the programs or libnftables: `nft -j list ruleset` takes 3.6 ms
// here and `iptables -S` 1.7 ms, mostly process start-up; libnftables in
// process still spends ~2 ms building its caches (128 KiB hash tables per
// table and object kind) for libvirt's six tables, and its JSON shows
// iptables-nft's compat matches (conntrack, physdev) only by name, so
// `iptables -S` would still be needed to see a `--ctstate` condition. The
// rules' bytecode says all of that directly: interface names compared
// (`meta load iifname; cmp eq`), conntrack state masks, verdicts, and the
// compat matches' kernel structs (xt_conntrack_mtinfo*, xt_physdev_info).
//
// The socket side only: it sends the dump requests and collects the kernel's
// reply messages; turning them into JSON is nft_decode.cpp's, a pure function
// over those bytes (fuzzed, and held to `nft -j` on recorded dumps).
// Held to `nft -j list ruleset` and `iptables-nft -S` by tests/nft_decode_test.cpp and
// tests/net_netns_test.cpp; what it buys: bench/nftables_bench.cpp.
// net/if.h first: glibc's and the kernel's interface headers then agree.
#include <net/if.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "host/host.hpp"
#include "host/netlink.hpp"
#include "host/nft_decode.hpp"

namespace kvmready::host {

namespace {

constexpr int kNftTimeoutMs = 2000;

class Reader {
public:
    int open() { return sock_.open(NETLINK_NETFILTER, kNftTimeoutMs); }

    // The reply messages of the chain, rule and set dumps, then the elements
    // of the sets the decoder needs. 0 or errno; *interrupted when the
    // ruleset changed during the dumps.
    int read(std::vector<uint8_t>& replies, bool* interrupted) {
        replies.clear();
        for (uint16_t msg : {NFT_MSG_GETCHAIN, NFT_MSG_GETRULE, NFT_MSG_GETSET})
            if (int e = dump(msg, NFPROTO_UNSPEC, {}, replies, interrupted)) return e;
        for (const auto& s : nft_sets_to_list(replies))
            if (int e = dump(NFT_MSG_GETSETELEM, s.family, {{NFTA_SET_ELEM_LIST_TABLE, s.table}, {NFTA_SET_ELEM_LIST_SET, s.name}}, replies,
                             interrupted))
                return e;
        return 0;
    }

private:
    int dump(uint16_t msg, uint8_t family, const std::vector<std::pair<uint16_t, std::string>>& strings, std::vector<uint8_t>& out,
             bool* interrupted) {
        nfgenmsg g {};
        g.nfgen_family = family;
        g.version = NFNETLINK_V0;
        nl::Request req(static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | msg), NLM_F_REQUEST | NLM_F_DUMP, &g, sizeof g);
        for (const auto& [t, s] : strings) req.put_string(t, s);
        return sock_.dump(req, [&](const nlmsghdr& m) {
            // The socket hands over only messages that fit its buffer.
            const auto* p = reinterpret_cast<const uint8_t*>(&m);
            out.insert(out.end(), p, p + m.nlmsg_len);
            out.resize(out.size() + (NLMSG_ALIGN(m.nlmsg_len) - m.nlmsg_len), 0);
        }, interrupted);
    }

    nl::Socket sock_;
};

std::string ifname_of_index(uint32_t idx) {
    char name[IF_NAMESIZE] = {};
    return ::if_indextoname(idx, name) ? std::string(name) : std::string();
}

// Test mode: KVMREADY_NFT_CAPTURE=FILE stores the raw replies there, the
// seeds of the fuzz harness and of the decoder's test against `nft -j`
// (scripts/capture-nft-seeds.sh). Never replaces an existing file.
void capture(const std::vector<uint8_t>& replies) {
    const char* path = std::getenv("KVMREADY_NFT_CAPTURE");
    if (!path || !*path) return;
    const int fd = ::open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return;
    size_t off = 0;
    while (off < replies.size()) {
        const ssize_t n = ::write(fd, replies.data() + off, replies.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
    }
    ::close(fd);
}

}  // namespace

NftRuleset read_nftables() {
    NftRuleset out;
    Reader r;
    int e = r.open();
    for (int attempt = 0; e == 0; ++attempt) {
        std::vector<uint8_t> replies;
        bool interrupted = false;
        e = r.read(replies, &interrupted);
        if (e == 0 && (!interrupted || attempt == 2)) {
            capture(replies);
            out.ruleset = {{"nftables", decode_nft_dump(replies, ifname_of_index)}};
            return out;
        }
    }
    out.error_code = e;
    out.error = std::string("reading nf_tables over netlink: ") + std::strerror(e) +
                (e == EPERM || e == EACCES ? " (needs root: CAP_NET_ADMIN)" : "");
    return out;
}

}  // namespace kvmready::host
