// Decoding nf_tables' netlink dumps into the schema of `nft -j list ruleset`:
// a pure function over the reply bytes, apart from the socket that fetched
// them (src/host/nftables.cpp), so the fuzz harness (fuzz/fuzz_nft.cpp) and
// the tests run it on recorded kernel replies (fuzz/corpus/nft/).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::host {

// `meta iif`/`oif` compare interface indexes; this names one (the live
// reader asks the kernel, a recorded dump brings its namespace's table).
// Empty, or an empty answer: "#INDEX".
using IfIndexNamer = std::function<std::string(uint32_t)>;

// A set a rule looks up, named as the kernel keys it.
struct NftSetRef {
    uint8_t family = 0;
    std::string table, name;
    bool operator==(const NftSetRef&) const = default;
};

// `replies` is a run of netlink messages as the kernel sends them (header,
// nfgenmsg, attributes): NFT_MSG_NEWCHAIN, NEWRULE, NEWSET and NEWSETELEM
// dumps, in any order; other messages are skipped, a message cut short ends
// the walk. Never throws on malformed bytes; what it cannot read it leaves
// out or writes as an opaque condition.

// The sets whose elements decoding needs: interface-name sets (by their
// NEWSET message) that a rule's lookup names. The reader dumps their
// elements and appends them to the replies.
std::vector<NftSetRef> nft_sets_to_list(std::span<const uint8_t> replies);

// The `nftables` array: a metainfo item, then every chain, then every rule.
nlohmann::json decode_nft_dump(std::span<const uint8_t> replies, const IfIndexNamer& ifname = {});

}  // namespace kvmready::host
