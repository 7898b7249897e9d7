// See libvirt_wire.hpp. Written from libvirt's protocol description
// (virnetprotocol.x, remote_protocol.x), not from its code.
#include "host/libvirt_wire.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

Outcome query(const std::string& uri, const std::string& socket_path, Clock::time_point deadline, const Publish& publish,
              std::string* reason, int connected_fd) {
    Target t;
    if (!target_for(uri, socket_path, t, reason)) {
        if (connected_fd >= 0) ::close(connected_fd);
        return Outcome::declined;
    }
    const auto t0 = Clock::now();
    Client c;  // owns connected_fd from the first open_on on
    // One connection, as the libvirt.so path: read-write when this user may
    // have it, else read-only (a separate socket unless socket= names one).
    std::string rw_error, ro_error;
    Opened o = open_on(c, connected_fd, t.rw_socket, t.explicit_socket, t.name, 0, deadline, rw_error, reason);
    if (o == Opened::refused)
        o = open_on(c, -1, t.ro_socket, t.explicit_socket, t.name, kConnectReadOnly, deadline, ro_error, reason);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (o == Opened::timed_out) return Outcome::timed_out;
    if (o == Opened::declined) return Outcome::declined;
    if (o == Opened::refused) {
        publish("open", [&](LibvirtSnapshot& s) {
            s.error = ro_error;
            s.connect_ms = ms;
            s.client = "wire";
        });
        return Outcome::answered;
    }
    publish("open", [&](LibvirtSnapshot& s) {
        s.connected = true;
        s.connect_ms = ms;
        s.client = "wire";
    });
    publish("read-write", [&](LibvirtSnapshot& s) {
        s.read_write = rw_error.empty();
        s.read_write_error = rw_error;
    });

    // Everything below is pipelined: the daemon answers on its worker
    // threads, so the slow capability calls (seconds when QEMU must be
    // probed) do not hold back versions, networks and pools.
    std::string bad;  // a reply whose body does not decode
    auto decoded = [&](XdrIn& in, const char* what) {
        if (in.ok()) return true;
        if (bad.empty()) bad = std::string("a malformed ") + what + " reply";
        return false;
    };
    auto string_reply = [&](const Reply& r, const char* what, std::string& value, std::string& error) {
        if (!r.ok) {
            error = r.error.message;
            return;
        }
        XdrIn in(r.body);
        std::string v = in.str();
        if (decoded(in, what)) value = std::move(v);
    };

    std::string type;
    uint64_t lib = 0;
    bool lib_ok = false;
    int version_answers = 0;
    auto version_done = [&] {
        if (++version_answers < 2) return;
        publish("version", [&](LibvirtSnapshot& s) {
            s.hypervisor_type = type;
            if (lib_ok) s.library_version = lib;
        });
    };
    c.call(kConnectGetType, "", [&](const Reply& r) {
        std::string ignored;
        string_reply(r, "GET_TYPE", type, ignored);
        version_done();
    });
    c.call(kConnectGetLibVersion, "", [&](const Reply& r) {
        if (r.ok) {
            XdrIn in(r.body);
            const uint64_t v = in.u64();
            if (decoded(in, "GET_LIB_VERSION")) {
                lib = v;
                lib_ok = true;
            }
        }
        version_done();
    });

    // Networks: the list, then four calls per network.
    std::vector<LibvirtNetwork> nets;
    std::string nets_error;
    size_t nets_left = 0;
    auto nets_publish = [&] {
        publish("networks", [&](LibvirtSnapshot& s) {
            s.networks = nets;
            s.networks_error = nets_error;
        });
    };
    auto net_done = [&] {
        if (--nets_left == 0) nets_publish();
    };
    auto int_reply = [&](const Reply& r, const char* what) -> int32_t {
        if (!r.ok) return -1;
        XdrIn in(r.body);
        const int32_t v = in.i32();
        return decoded(in, what) ? v : -1;
    };
    c.call(kConnectListAllNetworks, XdrOut().i32(1).u32(0).bytes(), [&](const Reply& r) {
        if (!r.ok) {
            nets_error = r.error.message;
            nets_publish();
            return;
        }
        XdrIn in(r.body);
        const uint32_t n = in.u32();
        std::vector<std::string> refs;  // remote_nonnull_network, re-encoded for the per-network calls
        for (uint32_t i = 0; i < n && in.ok() && i < 65536; ++i) {
            LibvirtNetwork net;
            net.name = in.str();
            const std::string uuid = in.opaque(16);
            nets.push_back(std::move(net));
            refs.push_back(XdrOut().str(nets.back().name).opaque(uuid).bytes());
        }
        (void)in.u32();  // ret: the count again
        if (!decoded(in, "LIST_ALL_NETWORKS") || refs.size() != n) {
            if (bad.empty()) bad = "a malformed LIST_ALL_NETWORKS reply";
            return;
        }
        if (n == 0) {
            nets_publish();
            return;
        }
        nets_left = 4 * n;
        for (size_t i = 0; i < refs.size(); ++i) {
            c.call(kNetworkIsActive, refs[i], [&, i](const Reply& a) {
                nets[i].active = int_reply(a, "NETWORK_IS_ACTIVE") == 1;
                net_done();
            });
            c.call(kNetworkIsPersistent, refs[i], [&, i](const Reply& a) {
                nets[i].persistent = int_reply(a, "NETWORK_IS_PERSISTENT") == 1;
                net_done();
            });
            c.call(kNetworkGetAutostart, refs[i], [&, i](const Reply& a) {
                nets[i].autostart = int_reply(a, "NETWORK_GET_AUTOSTART") > 0;
                net_done();
            });
            c.call(kNetworkGetXmlDesc, XdrOut().opaque(refs[i]).u32(0).bytes(), [&, i](const Reply& a) {
                std::string ignored;
                string_reply(a, "NETWORK_GET_XML_DESC", nets[i].xml, ignored);
                net_done();
            });
        }
    });

    // Pools: the list, then five calls per pool.
    std::vector<LibvirtPool> pools;
    std::string pools_error;
    size_t pools_left = 0;
    auto pools_publish = [&] {
        publish("pools", [&](LibvirtSnapshot& s) {
            s.pools = pools;
            s.pools_error = pools_error;
        });
    };
    auto pool_done = [&] {
        if (--pools_left == 0) pools_publish();
    };
    c.call(kConnectListAllStoragePools, XdrOut().i32(1).u32(0).bytes(), [&](const Reply& r) {
        if (!r.ok) {
            pools_error = r.error.message;
            pools_publish();
            return;
        }
        XdrIn in(r.body);
        const uint32_t n = in.u32();
        std::vector<std::string> refs;
        for (uint32_t i = 0; i < n && in.ok() && i < 65536; ++i) {
            LibvirtPool p;
            p.name = in.str();
            const std::string uuid = in.opaque(16);
            pools.push_back(std::move(p));
            refs.push_back(XdrOut().str(pools.back().name).opaque(uuid).bytes());
        }
        (void)in.u32();
        if (!decoded(in, "LIST_ALL_STORAGE_POOLS") || refs.size() != n) {
            if (bad.empty()) bad = "a malformed LIST_ALL_STORAGE_POOLS reply";
            return;
        }
        if (n == 0) {
            pools_publish();
            return;
        }
        pools_left = 5 * n;
        for (size_t i = 0; i < refs.size(); ++i) {
            c.call(kStoragePoolIsActive, refs[i], [&, i](const Reply& a) {
                pools[i].active = int_reply(a, "STORAGE_POOL_IS_ACTIVE") == 1;
                pool_done();
            });
            c.call(kStoragePoolIsPersistent, refs[i], [&, i](const Reply& a) {
                pools[i].persistent = int_reply(a, "STORAGE_POOL_IS_PERSISTENT") == 1;
                pool_done();
            });
            c.call(kStoragePoolGetAutostart, refs[i], [&, i](const Reply& a) {
                pools[i].autostart = int_reply(a, "STORAGE_POOL_GET_AUTOSTART") > 0;
                pool_done();
            });
            c.call(kStoragePoolGetInfo, refs[i], [&, i](const Reply& a) {
                if (a.ok) {
                    XdrIn in2(a.body);
                    const uint32_t state = in2.u32();  // unsigned char, widened to 4 bytes by XDR
                    const uint64_t cap = in2.u64(), alloc = in2.u64(), avail = in2.u64();
                    if (decoded(in2, "STORAGE_POOL_GET_INFO")) {
                        pools[i].state = static_cast<int>(state);
                        pools[i].capacity = cap;
                        pools[i].allocation = alloc;
                        pools[i].available = avail;
                    }
                }
                pool_done();
            });
            c.call(kStoragePoolGetXmlDesc, XdrOut().opaque(refs[i]).u32(0).bytes(), [&, i](const Reply& a) {
                std::string ignored;
                string_reply(a, "STORAGE_POOL_GET_XML_DESC", pools[i].xml, ignored);
                pool_done();
            });
        }
    });

    // Capabilities, in the order the libvirt.so path asks them.
    for (const char* virttype : {"kvm", "qemu"}) {
        const std::string vt = virttype;
        const bool kvm = vt == "kvm";
        XdrOut a;
        a.opt_str(nullptr).opt_str(nullptr).opt_str(nullptr).opt_str(&vt).u32(0);
        c.call(kConnectGetDomainCapabilities, a.bytes(), [&, kvm](const Reply& r) {
            std::string xml, error;
            string_reply(r, "GET_DOMAIN_CAPABILITIES", xml, error);
            publish(kvm ? "domcaps-kvm" : "domcaps-qemu", [&](LibvirtSnapshot& s) {
                (kvm ? s.domcaps_kvm_xml : s.domcaps_qemu_xml) = std::move(xml);
                (kvm ? s.domcaps_kvm_error : s.domcaps_qemu_error) = error;
            });
        });
    }
    c.call(kConnectGetCapabilities, "", [&](const Reply& r) {
        std::string xml, error;
        string_reply(r, "GET_CAPABILITIES", xml, error);
        publish("capabilities", [&](LibvirtSnapshot& s) {
            s.capabilities_xml = std::move(xml);
            s.capabilities_error = error;
        });
    });
    c.call(kConnectGetVersion, "", [&](const Reply& r) {
        uint64_t hv = 0;
        bool ok = false;
        if (r.ok) {
            XdrIn in(r.body);
            hv = in.u64();
            ok = decoded(in, "GET_VERSION");
        }
        publish("hypervisor-version", [&](LibvirtSnapshot& s) {
            if (ok) s.hypervisor_version = hv;
        });
    });

    switch (c.run(deadline)) {
    case RunStatus::idle: break;
    case RunStatus::timeout: return Outcome::timed_out;
    case RunStatus::closed:
    case RunStatus::protocol:
        if (reason) *reason = c.problem();
        return Outcome::declined;
    }
    if (!bad.empty()) {
        if (reason) *reason = bad;
        return Outcome::declined;
    }
    // A polite goodbye; everything is published, so a daemon that does not
    // answer it costs at most a moment.
    c.call(kConnectClose, "", [](const Reply&) {});
    (void)c.run(std::min(deadline, Clock::now() + std::chrono::milliseconds(100)));
    return Outcome::answered;
}

}  // namespace kvmready::host::wire
