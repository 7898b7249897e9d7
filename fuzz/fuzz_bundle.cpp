// The support bundle reader: an archive from a stranger, unpacked into a
// private temporary directory under the limits. Malformed input may only end
// in DataError/NoInputError (65/66); nothing may be left behind.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/errors.hpp"
#include "report/bundle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string dir = [] {
        std::string t = "/tmp/kvmready-fuzz-bundle-XXXXXX";
        if (!::mkdtemp(t.data())) std::abort();
        ::setenv("TMPDIR", t.c_str(), 1);
        return t;
    }();
    const std::string path = dir + "/in.tar.gz";
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    kvmready::report::BundleLimits limits;
    limits.seconds = 5;
    limits.bytes = limits.member_bytes = 1 << 20;  // fast iterations; the logic is the same
    limits.members = 2000;
    try {
        auto b = kvmready::report::open_bundle(path, limits);
        (void)b->manifest().value("version", "");
    } catch (const kvmready::ExitError& e) {
        if (e.code != kvmready::kExitDataErr && e.code != kvmready::kExitNoInput) std::abort();
    }
    ::unlink(path.c_str());
    // Every extraction directory is gone again.
    if (!std::filesystem::is_empty(dir)) std::abort();
    return 0;
}
