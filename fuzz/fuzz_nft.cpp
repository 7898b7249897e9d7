// The nf_tables dump decoder: netlink messages as the kernel sends them for
// NEWCHAIN, NEWRULE, NEWSET and NEWSETELEM dumps (seeds: real dumps of
// rulesets made by nft and iptables-nft in a network namespace,
// fuzz/corpus/nft/), decoded to JSON and serialized as the tool does.
#include <cstdint>
#include <span>
#include <string>

#include "host/nft_decode.hpp"
#include "util/utf8.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace kvmready::host;
    const std::span<const uint8_t> replies(data, size);
    (void)nft_sets_to_list(replies);
    const auto j = decode_nft_dump(replies, [](uint32_t i) { return i == 1 ? std::string("lo") : std::string(); });
    (void)kvmready::util::dump_json(j);
    return 0;
}
