// The libvirt RPC client's decoder, fed through a real socket pair: what a
// daemon (or whatever listens on its socket) sends back to a call. Also the
// XDR reader and remote_error on the raw bytes. KVMREADY_FUZZ_SEEDS=DIR
// writes well-formed replies there as a starting corpus.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "host/libvirt_wire.hpp"

using namespace kvmready::host::wire;

namespace {
constexpr uint32_t kProg = 0x20008086, kVers = 1;

void write_seeds(const std::string& dir) {
    auto put = [&](const std::string& name, const std::string& bytes) { std::ofstream(dir + "/" + name, std::ios::binary) << bytes; };
    // AUTH_LIST (66) answered: one type, none.
    put("auth_list", frame(kProg, kVers, 66, 1, 1, 0, XdrOut().u32(1).i32(0).bytes()));
    // An error reply as libvirtd sends it: code, domain, message, level, ...
    const std::string msg = "authentication failed: access denied";
    put("error", frame(kProg, kVers, 66, 1, 1, 1, XdrOut().i32(38).i32(7).opt_str(&msg).i32(2).u32(0).u32(0).bytes()));
    // Two replies in one read, and a keepalive-like message of another program.
    put("two", frame(kProg, kVers, 66, 1, 1, 0, XdrOut().u32(0).bytes()) + frame(0x6b656570, 1, 1, 0, 0, 0, ""));
    put("huge_len", std::string("\xfd\xc3\x5b\x3e", 4) + std::string(24, '\0'));
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* d = std::getenv("KVMREADY_FUZZ_SEEDS")) write_seeds(d);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    {
        XdrIn in(bytes);
        (void)in.u32();
        (void)in.str();
        std::string s;
        (void)in.opt_str(s);
        (void)in.u64();
        RemoteError e;
        (void)decode_error(bytes, e);
    }
    if (size > 200000) return 0;  // a socket pair holds about that much
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
    for (size_t off = 0; off < size;) {
        const ssize_t n = ::write(sv[1], data + off, size - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
    }
    ::close(sv[1]);
    Client c;
    c.adopt(sv[0]);
    c.call(66, "", [](const Reply& r) { (void)r.body.size(); });
    c.call(1, "", [](const Reply& r) { (void)r.error.message.size(); });
    (void)c.run(Clock::now() + std::chrono::milliseconds(200));
    return 0;
}
