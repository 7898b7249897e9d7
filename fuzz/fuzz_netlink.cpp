// The netlink attribute walker every rtnetlink and nf_tables reply goes
// through: nested attributes as deep as the input says, every accessor.
#include <cstdint>

#include "host/netlink.hpp"

namespace {
void walk(const uint8_t* p, size_t len, int depth) {
    using namespace kvmready::host::nl;
    const auto attrs = parse_attrs(p, len);
    for (const auto& a : attrs) {
        (void)a.str();
        (void)a.be32();
        (void)a.u32();
        (void)a.be64();
        (void)a.bytes();
        (void)find(attrs, a.type);
        if (depth < 8) walk(a.data, a.len, depth + 1);
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    walk(data, size, 0);
    return 0;
}
