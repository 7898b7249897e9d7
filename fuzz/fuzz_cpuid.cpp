// Every CPUID dump format (cpuid -r, AIDA64, libcpuid, hwloc, Fuchsia,
// InstLatX64, rjcp XML, Firecracker JSON): malformed input may only end in
// cpuid::ParseError (exit 65), never anything else.
#include <cstdint>
#include <string_view>

#include "cpuid/cpuid.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        (void)kvmready::cpuid::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    } catch (const kvmready::cpuid::ParseError&) {
    }
    return 0;
}
