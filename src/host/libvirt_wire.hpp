// A small client of libvirt's remote RPC protocol (XDR messages over the
// daemon's local UNIX socket), used before libvirt.so.0 for the live query.
//
// Why: libvirt's client library drags ~55 shared libraries into the process
// (glib, gnutls, krb5...) and costs ~8 ms to load, several times what the
// daemon needs to answer the whole query. The protocol is libvirt's stable
// wire ABI (remote_protocol.x: procedure numbers never change), and a local
// socket with auth "none" needs nothing but a handful of calls.
//
// It implements host::LibvirtReader (host/libvirt_reader.hpp) for reading
// only: changes go through libvirt.so (host/libvirt_client.hpp).
//
// Scope is deliberately narrow: local UNIX sockets, auth none or polkit (one
// call: the daemon does the asking), the calls the query makes. Everything
// else (ssh/tls/tcp transports, SASL, URIs with extra parameters, any reply
// this code does not expect) is declined with a reason, and the caller asks
// libvirt.so instead, so correctness never depends on this client.
// Held to libvirt.so by tests/libvirt_wire_test.cpp; what it buys: bench/libvirt_client_bench.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "host/libvirt.hpp"
#include "host/libvirt_reader.hpp"

namespace kvmready::host::wire {

using Clock = std::chrono::steady_clock;

// Constants from libvirt's src/rpc/virnetprotocol.x and src/remote/remote_protocol.x.
constexpr uint32_t kRemoteProgram = 0x20008086;
constexpr uint32_t kRemoteVersion = 1;
enum Proc : int32_t {
    kConnectOpen = 1,
    kConnectClose = 2,
    kConnectGetType = 3,
    kConnectGetVersion = 4,
    kConnectGetCapabilities = 7,
    kNetworkGetXmlDesc = 43,
    kNetworkGetAutostart = 44,
    kAuthList = 66,
    kAuthPolkit = 70,
    kStoragePoolGetInfo = 87,
    kStoragePoolGetXmlDesc = 88,
    kStoragePoolGetAutostart = 89,
    kNetworkIsActive = 152,
    kNetworkIsPersistent = 153,
    kStoragePoolIsActive = 154,
    kStoragePoolIsPersistent = 155,
    kConnectGetLibVersion = 157,
    kConnectListAllStoragePools = 281,
    kConnectListAllNetworks = 283,
    kConnectGetDomainCapabilities = 342,
};
enum MessageType : uint32_t { kCall = 0, kReply = 1, kMessage = 2, kStream = 3, kCallWithFds = 4, kReplyWithFds = 5 };
enum MessageStatus : uint32_t { kOk = 0, kError = 1, kContinue = 2 };
// The largest message accepted: libvirt's own limit is 16 MiB (32 MiB in
// newer releases); anything past this is not a libvirt daemon talking.
constexpr uint32_t kMaxMessage = 64u << 20;

// XDR (RFC 4506) encoding of the few types the calls use.
class XdrOut {
public:
    XdrOut& u32(uint32_t v);
    XdrOut& i32(int32_t v) { return u32(static_cast<uint32_t>(v)); }
    XdrOut& str(const std::string& s);
    XdrOut& opt_str(const std::string* s);           // remote_string: a present flag, then the string
    XdrOut& opaque(const std::string& fixed_bytes);  // fixed-length opaque (a UUID)
    [[nodiscard]] const std::string& bytes() const { return b_; }

private:
    std::string b_;
};

// Decoding: a short or malformed body clears ok() instead of throwing, and
// every later read returns a zero value.
class XdrIn {
public:
    explicit XdrIn(const std::string& b, size_t pos = 0) : b_(b), pos_(pos) {}
    uint32_t u32();
    int32_t i32() { return static_cast<int32_t>(u32()); }
    uint64_t u64();
    std::string str();
    std::string opaque(size_t n);  // fixed length
    bool opt_str(std::string& out); // false when absent
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] bool at_end() const { return pos_ == b_.size(); }
    [[nodiscard]] size_t left() const { return b_.size() - pos_; }

private:
    bool need(size_t n);
    const std::string& b_;
    size_t pos_;
    bool ok_ = true;
};

// A whole message: 4-byte big-endian length (itself included), the
// 24-byte header, then the body.
std::string frame(uint32_t prog, uint32_t vers, int32_t proc, uint32_t type, uint32_t serial, uint32_t status,
                  const std::string& body);

struct RemoteError {
    int code = 0;
    int domain = 0;
    std::string message;  // as libvirt.so would show it
};
// remote_error; only the fields before `level` matter for the message.
bool decode_error(const std::string& body, RemoteError& out);

struct Reply {
    int32_t proc = 0;
    uint32_t serial = 0;
    bool ok = false;         // status OK: body is the procedure's _ret
    std::string body;
    RemoteError error;       // status ERROR
};

enum class RunStatus {
    idle,      // every call answered
    timeout,   // the deadline passed with calls outstanding
    closed,    // the daemon closed the connection (problem() says how)
    protocol,  // a reply this client does not understand (problem() says which)
};

// One connection. Calls are queued with call() (pipelined: all of them go out
// before the first reply is read) and answered through their callbacks,
// matched by serial; callbacks may queue further calls. Never blocks past the
// deadline given to run().
class Client {
public:
    Client() = default;
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // 0 when connected, else connect(2)'s errno.
    int connect(const std::string& path);
    // Takes over a connected, non-blocking socket.
    void adopt(int fd);
    using Done = std::function<void(const Reply&)>;
    uint32_t call(int32_t proc, const std::string& args, Done done);
    RunStatus run(Clock::time_point deadline);
    [[nodiscard]] const std::string& problem() const { return problem_; }
    [[nodiscard]] size_t outstanding() const { return pending_.size(); }
    void close();

private:
    bool dispatch();  // complete messages in in_; false on a protocol problem

    int fd_ = -1;
    uint32_t serial_ = 0;
    std::string out_;
    size_t out_pos_ = 0;
    std::string in_;
    std::string buf_;
    std::map<uint32_t, std::pair<int32_t, Done>> pending_;
    std::string problem_;
};

// The connection name libvirt's remote driver sends in CONNECT_OPEN for `uri`
// ("qemu+unix:///system?socket=/x" -> "qemu:///system"), and the read-only
// socket (socket= wins for both, as in libvirt; else PATH-ro). Empty name
// with *why set when the URI carries anything this client does not handle.
struct Target {
    std::string name;
    std::string rw_socket;
    std::string ro_socket;
    bool explicit_socket = false;  // socket= in the URI
};
bool target_for(const std::string& uri, const std::string& socket_path, Target& out, std::string* why);

// A socket path as libvirt's client words it in errors: the system sockets
// it derives itself are named under /var/run/libvirt (a symlink to /run).
std::string libvirt_spelling(const std::string& path, bool explicit_socket);

// The live query over the wire alone: open_wire_reader and read_libvirt
// (host/libvirt_reader.hpp), the same steps, fields and error messages as the
// libvirt.so reader. connected_fd: a non-blocking connection to socket_path
// already made (by the peer check), or -1; it is owned, and closed, by the
// query. declined: not this client's case (*reason set): ask libvirt.so.
using Publish = LibvirtPublish;
using Outcome = LibvirtReader::Status;
Outcome query(const std::string& uri, const std::string& socket_path, Clock::time_point deadline, const Publish& publish,
              std::string* reason, int connected_fd = -1);

}  // namespace kvmready::host::wire
