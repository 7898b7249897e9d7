// See libvirt_wire.hpp. Written from libvirt's protocol description
// (virnetprotocol.x, remote_protocol.x), not from its code.
#include "host/libvirt_wire.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

namespace kvmready::host::wire {

namespace {

constexpr size_t kHeader = 4 + 24;  // length word + virNetMessageHeader
constexpr uint32_t kConnectReadOnly = 1;  // VIR_CONNECT_RO
constexpr int32_t kAuthPolkitType = 2;    // REMOTE_AUTH_POLKIT

uint32_t be32(const char* p) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

size_t pad4(size_t n) { return (4 - n % 4) % 4; }

}  // namespace

XdrOut& XdrOut::u32(uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
    b_.append(b, 4);
    return *this;
}

XdrOut& XdrOut::str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    b_ += s;
    b_.append(pad4(s.size()), '\0');
    return *this;
}

XdrOut& XdrOut::opt_str(const std::string* s) {
    if (!s) return u32(0);
    u32(1);
    return str(*s);
}

XdrOut& XdrOut::opaque(const std::string& fixed_bytes) {
    b_ += fixed_bytes;
    b_.append(pad4(fixed_bytes.size()), '\0');
    return *this;
}

bool XdrIn::need(size_t n) {
    if (!ok_ || n > b_.size() - pos_) {
        ok_ = false;
        return false;
    }
    return true;
}

uint32_t XdrIn::u32() {
    if (!need(4)) return 0;
    const uint32_t v = be32(b_.data() + pos_);
    pos_ += 4;
    return v;
}

uint64_t XdrIn::u64() {
    const uint64_t hi = u32();
    const uint64_t lo = u32();
    return ok_ ? (hi << 32) | lo : 0;
}

std::string XdrIn::opaque(size_t n) {
    if (!need(n) || !need(n + pad4(n))) return {};
    std::string out = b_.substr(pos_, n);
    pos_ += n + pad4(n);
    return out;
}

std::string XdrIn::str() {
    const uint32_t n = u32();
    if (!ok_) return {};
    return opaque(n);
}

bool XdrIn::opt_str(std::string& out) {
    const uint32_t present = u32();
    if (present > 1) ok_ = false;  // an XDR bool is 0 or 1
    if (!ok_ || !present) return false;
    out = str();
    return ok_;
}

std::string frame(uint32_t prog, uint32_t vers, int32_t proc, uint32_t type, uint32_t serial, uint32_t status,
                  const std::string& body) {
    XdrOut o;
    o.u32(static_cast<uint32_t>(kHeader + body.size())).u32(prog).u32(vers).i32(proc).u32(type).u32(serial).u32(status);
    return o.bytes() + body;
}

bool decode_error(const std::string& body, RemoteError& out) {
    XdrIn in(body);
    out.code = in.i32();
    out.domain = in.i32();
    std::string msg;
    const bool has = in.opt_str(msg);
    if (!in.ok()) return false;
    // libvirt's client shows this text when the daemon sent none.
    out.message = has ? msg : "Unknown error";
    return true;
}

Client::~Client() { close(); }

void Client::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    serial_ = 0;
    out_.clear();
    out_pos_ = 0;
    in_.clear();
    pending_.clear();
    problem_.clear();
}

int Client::connect(const std::string& path) {
    close();
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return ENAMETOOLONG;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    // Non-blocking from the start: a stopped daemon's socket still accepts
    // into its backlog, and nothing here may wait without a deadline.
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return errno;
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        const int e = errno;
        ::close(fd_);
        fd_ = -1;
        return e;
    }
    return 0;
}

void Client::adopt(int fd) {
    close();
    fd_ = fd;
}

uint32_t Client::call(int32_t proc, const std::string& args, Done done) {
    const uint32_t serial = ++serial_;
    out_ += frame(kRemoteProgram, kRemoteVersion, proc, kCall, serial, kOk, args);
    pending_.emplace(serial, std::make_pair(proc, std::move(done)));
    return serial;
}

bool Client::dispatch() {
    size_t pos = 0;
    bool good = true;
    while (good && in_.size() - pos >= 4) {
        const uint32_t len = be32(in_.data() + pos);
        if (len < kHeader || len > kMaxMessage) {
            problem_ = "a message of " + std::to_string(len) + " bytes";
            good = false;
            break;
        }
        if (in_.size() - pos < len) break;
        XdrIn h(in_, pos + 4);
        const uint32_t prog = h.u32(), vers = h.u32();
        const int32_t proc = h.i32();
        const uint32_t type = h.u32(), serial = h.u32(), status = h.u32();
        std::string body = in_.substr(pos + kHeader, len - kHeader);
        pos += len;
        // Events and keepalive pings are only sent to clients that asked for
        // them; one arriving anyway needs no answer.
        if (type == kMessage) continue;
        if (prog != kRemoteProgram || vers != kRemoteVersion || type != kReply) {
            problem_ = "an unexpected message (program " + std::to_string(prog) + ", type " + std::to_string(type) + ")";
            good = false;
            break;
        }
        auto it = pending_.find(serial);
        if (it == pending_.end() || it->second.first != proc) {
            problem_ = "a reply to no call (serial " + std::to_string(serial) + ", procedure " + std::to_string(proc) + ")";
            good = false;
            break;
        }
        Reply r;
        r.proc = proc;
        r.serial = serial;
        if (status == kOk) {
            r.ok = true;
            r.body = std::move(body);
        } else if (status != kError || !decode_error(body, r.error)) {
            problem_ = "a malformed reply to procedure " + std::to_string(proc);
            good = false;
            break;
        }
        Done done = std::move(it->second.second);
        pending_.erase(it);
        done(r);
    }
    in_.erase(0, pos);
    return good;
}

RunStatus Client::run(Clock::time_point deadline) {
    if (fd_ < 0) {
        problem_ = "not connected";
        return RunStatus::closed;
    }
    if (buf_.empty()) buf_.resize(256 * 1024);  // the XML replies are tens of KiB
    for (;;) {
        while (out_pos_ < out_.size()) {
            const ssize_t n = ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL);
            if (n > 0) {
                out_pos_ += static_cast<size_t>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            } else {
                problem_ = std::string("writing to the daemon: ") + std::strerror(errno);
                return RunStatus::closed;
            }
        }
        if (out_pos_ == out_.size()) {
            out_.clear();
            out_pos_ = 0;
        }
        if (pending_.empty()) return RunStatus::idle;
        const auto now = Clock::now();
        if (now >= deadline) return RunStatus::timeout;
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
        pollfd p {fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
        const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
        if (r < 0 && errno != EINTR) {
            problem_ = std::string("poll: ") + std::strerror(errno);
            return RunStatus::closed;
        }
        if (r <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        bool eof = false;
        for (;;) {
            const ssize_t n = ::recv(fd_, buf_.data(), buf_.size(), 0);
            if (n > 0) {
                in_.append(buf_.data(), static_cast<size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            eof = true;
            if (n < 0) problem_ = std::string("reading from the daemon: ") + std::strerror(errno);
            break;
        }
        if (!dispatch()) return RunStatus::protocol;
        if (eof) {
            if (pending_.empty()) return RunStatus::idle;
            if (problem_.empty()) problem_ = "the daemon closed the connection";
            return RunStatus::closed;
        }
    }
}

bool target_for(const std::string& uri, const std::string& socket_path, Target& out, std::string* why) {
    auto no = [&](const std::string& w) {
        if (why) *why = w;
        return false;
    };
    if (socket_path.empty()) return no("not a local socket");
    const auto colon = uri.find("://");
    if (colon == std::string::npos) return no("no scheme in the URI");
    const std::string scheme = uri.substr(0, colon);
    const auto plus = scheme.find('+');
    if (plus != std::string::npos && scheme.substr(plus + 1) != "unix") return no("transport " + scheme.substr(plus + 1));
    std::string rest = uri.substr(colon + 3);
    bool explicit_socket = false;
    if (const auto q = rest.find('?'); q != std::string::npos) {
        const std::string query = rest.substr(q + 1);
        rest = rest.substr(0, q);
        for (size_t pos = 0; pos <= query.size();) {
            size_t amp = query.find('&', pos);
            if (amp == std::string::npos) amp = query.size();
            const std::string kv = query.substr(pos, amp - pos);
            // libvirt strips its own transport parameters from the name it
            // sends; others go to the daemon. Only socket= is handled here.
            if (kv.rfind("socket=", 0) == 0) explicit_socket = true;
            else if (!kv.empty()) return no("URI parameter " + kv.substr(0, kv.find('=')));
            pos = amp + 1;
        }
    }
    if (!rest.empty() && rest.front() != '/') return no("a host in the URI");
    out.name = scheme.substr(0, plus) + "://" + rest;
    out.rw_socket = socket_path;
    out.ro_socket = explicit_socket ? socket_path : socket_path + "-ro";
    out.explicit_socket = explicit_socket;
    return true;
}

std::string libvirt_spelling(const std::string& path, bool explicit_socket) {
    // libvirt's remote driver builds system socket paths under
    // LOCALSTATEDIR/run (/var/run: portable to hosts without /run), never
    // under its RUNSTATEDIR; its errors name that spelling.
    if (explicit_socket || path.rfind("/run/libvirt/", 0) != 0) return path;
    return "/var" + path;
}

namespace {

enum class Opened { yes, refused, timed_out, declined };

const char* auth_name(int32_t t) {
    switch (t) {
    case 1: return "sasl";
    case 2: return "polkit";
    }
    return "unknown";
}

// AUTH_LIST, then (polkit) AUTH_POLKIT, then CONNECT_OPEN, one after the
// other: the daemon runs a client's calls on several workers, and an open
// racing ahead of the authentication step would be refused.
Opened open_on(Client& c, int connected_fd, const std::string& path, bool explicit_socket, const std::string& name,
               uint32_t flags, Clock::time_point deadline, std::string& error, std::string* reason) {
    int e = 0;
    if (connected_fd >= 0) c.adopt(connected_fd);
    else e = c.connect(path);
    // A full backlog: the daemon stopped accepting, which libvirt.so would wait out.
    if (e == EAGAIN) return Opened::timed_out;
    if (e) {
        // libvirt's own words (virNetSocketNewConnectUNIX + virReportSystemError).
        error = "Failed to connect socket to '" + libvirt_spelling(path, explicit_socket) + "': " + std::strerror(e);
        return Opened::refused;
    }
    auto pump = [&]() -> std::optional<Opened> {
        switch (c.run(deadline)) {
        case RunStatus::idle: return std::nullopt;
        case RunStatus::timeout: return Opened::timed_out;
        case RunStatus::closed:
        case RunStatus::protocol: break;
        }
        if (reason) *reason = c.problem();
        return Opened::declined;
    };
    std::string auth_problem = "no answer to AUTH_LIST";
    bool polkit = false;
    c.call(kAuthList, "", [&](const Reply& r) {
        if (!r.ok) {
            auth_problem = "AUTH_LIST: " + r.error.message;
            return;
        }
        XdrIn in(r.body);
        const uint32_t n = in.u32();
        const int32_t first = n ? in.i32() : 0;  // libvirt's client uses the first one offered
        if (!in.ok() || n > 20) {
            auth_problem = "a malformed AUTH_LIST reply";
        } else if (first == 0 || first == kAuthPolkitType) {
            polkit = first == kAuthPolkitType;
            auth_problem.clear();
        } else {
            auth_problem = std::string("authentication ") + auth_name(first) + " required";
        }
    });
    if (auto o = pump()) return *o;
    if (!auth_problem.empty()) {
        if (reason) *reason = auth_problem;
        return Opened::declined;
    }
    bool allowed = true;
    std::string refusal;
    if (polkit) {
        // The daemon asks polkit whether this process may have the
        // connection (root never gets here: the daemon waives polkit for uid 0).
        c.call(kAuthPolkit, "", [&](const Reply& r) {
            allowed = r.ok;
            if (!r.ok) refusal = r.error.message;
        });
        if (auto o = pump()) return *o;
    }
    if (allowed) {
        const std::string name_copy = name;
        c.call(kConnectOpen, XdrOut().opt_str(&name_copy).u32(flags).bytes(), [&](const Reply& r) {
            allowed = r.ok;
            if (!r.ok) refusal = r.error.message;
        });
        if (auto o = pump()) return *o;
    }
    if (!allowed) {
        error = refusal;
        c.close();
        return Opened::refused;
    }
    return Opened::yes;
}

}  // namespace

namespace {

// The reads on one opened connection, pipelined: everything queued goes out
// before the first reply is read, and the daemon answers on its worker
// threads, so the slow capability calls (seconds when QEMU must be probed)
// do not hold back versions, networks and pools.
class WireReader final : public LibvirtReader {
public:
    explicit WireReader(std::unique_ptr<Client> c) : c_(std::move(c)) {}
    [[nodiscard]] const char* client() const override { return "wire"; }

    void version(std::function<void(std::string, std::optional<uint64_t>)> done) override {
        struct State {
            std::string type;
            std::optional<uint64_t> lib;
            int answers = 0;
        };
        auto st = std::make_shared<State>();
        auto answered = [st, done = std::move(done)] {
            if (++st->answers == 2) done(st->type, st->lib);
        };
        c_->call(kConnectGetType, "", [this, st, answered](const Reply& r) {
            std::string ignored;
            string_reply(r, "GET_TYPE", st->type, ignored);
            answered();
        });
        c_->call(kConnectGetLibVersion, "", [this, st, answered](const Reply& r) {
            if (r.ok) {
                XdrIn in(r.body);
                const uint64_t v = in.u64();
                if (decoded(in, "GET_LIB_VERSION")) st->lib = v;
            }
            answered();
        });
    }

    void networks(std::function<void(std::vector<LibvirtNetwork>, std::string)> done) override {
        list_then_each<LibvirtNetwork>(kConnectListAllNetworks, "LIST_ALL_NETWORKS", std::move(done),
                                       [this](const std::string& ref, const std::function<LibvirtNetwork&()>& net, const std::function<void()>& one_done) {
                                           network_calls(ref, net, one_done);
                                       }, 4);
    }

    void pools(std::function<void(std::vector<LibvirtPool>, std::string)> done) override {
        list_then_each<LibvirtPool>(kConnectListAllStoragePools, "LIST_ALL_STORAGE_POOLS", std::move(done),
                                    [this](const std::string& ref, const std::function<LibvirtPool&()>& pool, const std::function<void()>& one_done) {
                                        pool_calls(ref, pool, one_done);
                                    }, 5);
    }

    void domain_capabilities(const std::string& virttype, std::function<void(std::string, std::string)> done) override {
        XdrOut a;
        a.opt_str(nullptr).opt_str(nullptr).opt_str(nullptr).opt_str(&virttype).u32(0);
        c_->call(kConnectGetDomainCapabilities, a.bytes(), [this, done = std::move(done)](const Reply& r) {
            std::string xml, error;
            string_reply(r, "GET_DOMAIN_CAPABILITIES", xml, error);
            done(std::move(xml), error);
        });
    }

    void capabilities(std::function<void(std::string, std::string)> done) override {
        c_->call(kConnectGetCapabilities, "", [this, done = std::move(done)](const Reply& r) {
            std::string xml, error;
            string_reply(r, "GET_CAPABILITIES", xml, error);
            done(std::move(xml), error);
        });
    }

    void hypervisor_version(std::function<void(std::optional<uint64_t>)> done) override {
        c_->call(kConnectGetVersion, "", [this, done = std::move(done)](const Reply& r) {
            std::optional<uint64_t> hv;
            if (r.ok) {
                XdrIn in(r.body);
                const uint64_t v = in.u64();
                if (decoded(in, "GET_VERSION")) hv = v;
            }
            done(hv);
        });
    }

    Status run(Clock::time_point deadline, std::string* reason) override {
        switch (c_->run(deadline)) {
        case RunStatus::idle: break;
        case RunStatus::timeout: return Status::timed_out;
        case RunStatus::closed:
        case RunStatus::protocol:
            if (reason) *reason = c_->problem();
            return Status::declined;
        }
        if (!bad_.empty()) {
            if (reason) *reason = bad_;
            return Status::declined;
        }
        // A polite goodbye; everything is delivered, so a daemon that does
        // not answer it costs at most a moment.
        c_->call(kConnectClose, "", [](const Reply&) {});
        (void)c_->run(std::min(deadline, Clock::now() + std::chrono::milliseconds(100)));
        return Status::answered;
    }

private:
    // A reply whose body does not decode: the whole read is declined (the
    // caller asks libvirt.so), the first such reply named.
    bool decoded(XdrIn& in, const char* what) {
        if (in.ok()) return true;
        if (bad_.empty()) bad_ = std::string("a malformed ") + what + " reply";
        return false;
    }

    void string_reply(const Reply& r, const char* what, std::string& value, std::string& error) {
        if (!r.ok) {
            error = r.error.message;
            return;
        }
        XdrIn in(r.body);
        std::string v = in.str();
        if (decoded(in, what)) value = std::move(v);
    }

    int32_t int_reply(const Reply& r, const char* what) {
        if (!r.ok) return -1;
        XdrIn in(r.body);
        const int32_t v = in.i32();
        return decoded(in, what) ? v : -1;
    }

    // LIST_ALL_NETWORKS / LIST_ALL_STORAGE_POOLS, then `per_item` calls for
    // each object (each: `each` queues them, and calls one_done per answer);
    // done once every one answered.
    template <class T>
    void list_then_each(int32_t list_proc, const char* what, std::function<void(std::vector<T>, std::string)> done,
                        std::function<void(const std::string&, const std::function<T&()>&, const std::function<void()>&)> each,
                        size_t per_item) {
        struct State {
            std::vector<T> items;
            size_t left = 0;
        };
        auto st = std::make_shared<State>();
        c_->call(list_proc, XdrOut().i32(1).u32(0).bytes(), [this, st, what, done = std::move(done), each = std::move(each), per_item](const Reply& r) {
            if (!r.ok) {
                done({}, r.error.message);
                return;
            }
            XdrIn in(r.body);
            const uint32_t n = in.u32();
            std::vector<std::string> refs;  // remote_nonnull_network / _storage_pool, re-encoded for the per-object calls
            for (uint32_t i = 0; i < n && in.ok() && i < 65536; ++i) {
                T item;
                item.name = in.str();
                const std::string uuid = in.opaque(16);
                st->items.push_back(std::move(item));
                refs.push_back(XdrOut().str(st->items.back().name).opaque(uuid).bytes());
            }
            (void)in.u32();  // ret: the count again
            if (!decoded(in, what) || refs.size() != n) {
                if (bad_.empty()) bad_ = std::string("a malformed ") + what + " reply";
                return;
            }
            if (n == 0) {
                done({}, "");
                return;
            }
            st->left = per_item * n;
            auto one_done = [st, done] {
                if (--st->left == 0) done(st->items, "");
            };
            for (size_t i = 0; i < refs.size(); ++i) each(refs[i], [st, i]() -> T& { return st->items[i]; }, one_done);
        });
    }

    void network_calls(const std::string& ref, const std::function<LibvirtNetwork&()>& net, const std::function<void()>& one_done) {
        c_->call(kNetworkIsActive, ref, [this, net, one_done](const Reply& a) {
            net().active = int_reply(a, "NETWORK_IS_ACTIVE") == 1;
            one_done();
        });
        c_->call(kNetworkIsPersistent, ref, [this, net, one_done](const Reply& a) {
            net().persistent = int_reply(a, "NETWORK_IS_PERSISTENT") == 1;
            one_done();
        });
        c_->call(kNetworkGetAutostart, ref, [this, net, one_done](const Reply& a) {
            net().autostart = int_reply(a, "NETWORK_GET_AUTOSTART") > 0;
            one_done();
        });
        c_->call(kNetworkGetXmlDesc, XdrOut().opaque(ref).u32(0).bytes(), [this, net, one_done](const Reply& a) {
            std::string ignored;
            string_reply(a, "NETWORK_GET_XML_DESC", net().xml, ignored);
            one_done();
        });
    }

    void pool_calls(const std::string& ref, const std::function<LibvirtPool&()>& pool, const std::function<void()>& one_done) {
        c_->call(kStoragePoolIsActive, ref, [this, pool, one_done](const Reply& a) {
            pool().active = int_reply(a, "STORAGE_POOL_IS_ACTIVE") == 1;
            one_done();
        });
        c_->call(kStoragePoolIsPersistent, ref, [this, pool, one_done](const Reply& a) {
            pool().persistent = int_reply(a, "STORAGE_POOL_IS_PERSISTENT") == 1;
            one_done();
        });
        c_->call(kStoragePoolGetAutostart, ref, [this, pool, one_done](const Reply& a) {
            pool().autostart = int_reply(a, "STORAGE_POOL_GET_AUTOSTART") > 0;
            one_done();
        });
        c_->call(kStoragePoolGetInfo, ref, [this, pool, one_done](const Reply& a) {
            if (a.ok) {
                XdrIn in(a.body);
                const uint32_t state = in.u32();  // unsigned char, widened to 4 bytes by XDR
                const uint64_t cap = in.u64(), alloc = in.u64(), avail = in.u64();
                if (decoded(in, "STORAGE_POOL_GET_INFO")) {
                    LibvirtPool& p = pool();
                    p.state = static_cast<int>(state);
                    p.capacity = cap;
                    p.allocation = alloc;
                    p.available = avail;
                }
            }
            one_done();
        });
        c_->call(kStoragePoolGetXmlDesc, XdrOut().opaque(ref).u32(0).bytes(), [this, pool, one_done](const Reply& a) {
            std::string ignored;
            string_reply(a, "STORAGE_POOL_GET_XML_DESC", pool().xml, ignored);
            one_done();
        });
    }

    std::unique_ptr<Client> c_;
    std::string bad_;
};

}  // namespace

Outcome query(const std::string& uri, const std::string& socket_path, Clock::time_point deadline, const Publish& publish,
              std::string* reason, int connected_fd) {
    return read_libvirt(open_wire_reader(uri, socket_path, deadline, reason, connected_fd), publish, deadline, reason);
}

}  // namespace kvmready::host::wire

namespace kvmready::host {

LibvirtReaderOpen open_wire_reader(const std::string& uri, const std::string& socket_path, LibvirtClock::time_point deadline,
                                   std::string* reason, int connected_fd) {
    using namespace wire;
    LibvirtReaderOpen out;
    out.client = "wire";
    wire::Target t;
    if (!target_for(uri, socket_path, t, reason)) {
        if (connected_fd >= 0) ::close(connected_fd);
        out.status = LibvirtReaderOpen::Status::declined;
        return out;
    }
    const auto t0 = Clock::now();
    auto c = std::make_unique<Client>();  // owns connected_fd from the first open_on on
    // One connection, as the libvirt.so path: read-write when this user may
    // have it, else read-only (a separate socket unless socket= names one).
    std::string ro_error;
    Opened o = open_on(*c, connected_fd, t.rw_socket, t.explicit_socket, t.name, 0, deadline, out.read_write_error, reason);
    if (o == Opened::refused)
        o = open_on(*c, -1, t.ro_socket, t.explicit_socket, t.name, kConnectReadOnly, deadline, ro_error, reason);
    out.connect_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    switch (o) {
    case Opened::timed_out: out.status = LibvirtReaderOpen::Status::timed_out; break;
    case Opened::declined: out.status = LibvirtReaderOpen::Status::declined; break;
    case Opened::refused:
        out.status = LibvirtReaderOpen::Status::refused;
        out.error = ro_error;
        break;
    case Opened::yes:
        out.status = LibvirtReaderOpen::Status::opened;
        out.reader = std::make_unique<WireReader>(std::move(c));
        break;
    }
    return out;
}

}  // namespace kvmready::host
