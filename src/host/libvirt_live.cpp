// The live libvirt query. Every call into libvirt can block forever on a hung
// daemon (the socket accepts, nobody answers), so the query runs on its own
// thread and is abandoned at the deadline; main() then exits without running
// static destructors under that thread's feet (see libvirt_abandoned()).
//
// libvirt's client library is loaded with dlopen when a query runs, not
// linked: it pulls in ~55 shared libraries (glib, gnutls, p11-kit, krb5...)
// whose initialisers cost ~7 ms at every start of kvmready, even for
// `explain`, `cpuid` or a --root replay that never talk to a daemon.
//
// Local sockets are asked through kvmready's own client of libvirt's RPC
// protocol first (libvirt_wire.hpp: nothing to load, the daemon's ~3 ms of
// answers is the whole cost); libvirt.so answers whatever that client
// declines, from scratch.
//
// The calls run cheapest first and each answer is published as it arrives:
// a daemon that answers the connection but re-probes QEMU for every
// capabilities call (4 s each when the QEMU user cannot open /dev/kvm) still
// yields its version, networks and pools, and the snapshot names the calls
// that were still waiting.
#include "host/libvirt.hpp"

#include <cctype>

namespace kvmready::host {

namespace {

std::string percent_decode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

}  // namespace

std::string libvirt_socket_for(const std::string& uri, bool (*exists)(const std::string&)) {
    const auto colon = uri.find("://");
    if (colon == std::string::npos) return "";
    const std::string scheme = uri.substr(0, colon);
    const auto plus = scheme.find('+');
    const std::string transport = plus == std::string::npos ? "unix" : scheme.substr(plus + 1);
    if (transport != "unix") return "";  // ssh, tcp, tls: the daemon is elsewhere
    std::string rest = uri.substr(colon + 3);
    std::string query;
    if (auto q = rest.find('?'); q != std::string::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    for (size_t pos = 0; pos <= query.size();) {
        size_t amp = query.find('&', pos);
        if (amp == std::string::npos) amp = query.size();
        const std::string kv = query.substr(pos, amp - pos);
        if (kv.rfind("socket=", 0) == 0) return percent_decode(kv.substr(7));
        pos = amp + 1;
    }
    const auto slash = rest.find('/');
    const std::string host_part = slash == std::string::npos ? rest : rest.substr(0, slash);
    const std::string path = slash == std::string::npos ? "" : rest.substr(slash);
    if (!host_part.empty() || path != "/system") return "";  // session sockets live in the user's runtime dir
    const std::string driver = plus == std::string::npos ? scheme : scheme.substr(0, plus);
    const std::string modular = "/run/libvirt/virt" + driver + "d-sock";
    if (exists && exists(modular)) return modular;
    return "/run/libvirt/libvirt-sock";
}

}  // namespace kvmready::host

#ifdef KVMREADY_HAVE_LIBVIRT
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "host/libvirt_reader.hpp"
#include "host/libvirt_wire.hpp"

namespace kvmready::host {

namespace {

std::atomic<bool> g_abandoned{false};

bool path_exists(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
}

std::string read_small(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// connect(2) never blocks on a UNIX socket in non-blocking mode, and a
// stopped daemon's listening socket still completes it (the kernel queues
// the connection), so this names the process even when libvirt would hang.
// Returns connect's errno (0 when it connected or there is no local socket).
// keep: receives the connection instead of closing it (the wire client
// speaks on it: one connection less for the daemon to set up).
int identify_peer(LibvirtSnapshot& s, int* keep = nullptr) {
    s.socket_path = libvirt_socket_for(s.uri, path_exists);
    if (s.socket_path.empty()) return 0;
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (s.socket_path.size() >= sizeof addr.sun_path) {
        s.socket_error = "socket path too long";
        return 0;
    }
    std::memcpy(addr.sun_path, s.socket_path.c_str(), s.socket_path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        s.socket_error = std::strerror(errno);
        return 0;
    }
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        const int e = errno;
        s.socket_error = std::strerror(e);
        ::close(fd);
        return e;
    }
    ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
        s.daemon_pid = cred.pid;
        const std::string proc = "/proc/" + std::to_string(cred.pid);
        std::string comm = read_small(proc + "/comm");
        while (!comm.empty() && (comm.back() == '\n' || comm.back() == ' ')) comm.pop_back();
        s.daemon_comm = comm;
        // The state follows the last ')' (comm may contain spaces and parens).
        const std::string stat = read_small(proc + "/stat");
        if (auto p = stat.rfind(')'); p != std::string::npos && p + 2 < stat.size()) s.daemon_state = stat.substr(p + 2, 1);
    }
    if (keep) *keep = fd;
    else ::close(fd);
    return 0;
}

std::string daemon_from_socket_name(const std::string& path) {
    const std::string base = path.substr(path.rfind('/') + 1);
    if (base.rfind("libvirt-sock", 0) == 0) return "libvirtd";
    if (auto dash = base.find("-sock"); dash != std::string::npos && base.rfind("virt", 0) == 0) return base.substr(0, dash);
    return "";
}

// The query publishes each answer into `s` under `mu`; the waiting side
// copies whatever is there when the deadline passes.
struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    LibvirtSnapshot s;
    std::vector<std::string> steps;  // not yet answered, in order
};

const std::vector<std::string>& all_steps() {
    static const std::vector<std::string> steps = {"socket",       "open",         "read-write",   "version",     "networks",
                                                   "pools",        "domcaps-kvm",  "domcaps-qemu", "capabilities", "hypervisor-version"};
    return steps;
}

class Query {
public:
    Query(std::shared_ptr<Pending> p, LibvirtClient client, wire::Clock::time_point deadline)
        : p_(std::move(p)), client_(client), deadline_(deadline) {}

    void run(const std::string& uri) {
        LibvirtSnapshot peer;
        peer.uri = uri;
        int peer_fd = -1;
        const int refused = identify_peer(peer, client_ == LibvirtClient::library ? nullptr : &peer_fd);
        publish("socket", [&](LibvirtSnapshot& s) {
            s.socket_path = peer.socket_path;
            s.socket_error = peer.socket_error;
            s.daemon_pid = peer.daemon_pid;
            s.daemon_comm = peer.daemon_comm;
            s.daemon_state = peer.daemon_state;
            if (s.daemon_comm == "libvirtd" || s.daemon_comm.rfind("virt", 0) == 0) s.daemon = s.daemon_comm;
            else if (!s.socket_path.empty()) s.daemon = daemon_from_socket_name(s.socket_path);
        });
        if (refused == ENOENT || refused == ECONNREFUSED) {
            // Nobody listens: libvirt could only say the same, after ~7 ms of loading.
            publish("open", [&](LibvirtSnapshot& s) {
                // As libvirt words it: socket= verbatim, derived paths under /var/run.
                const auto q = uri.find('?');
                const bool named = q != std::string::npos && (uri.find("?socket=", q) == q || uri.find("&socket=", q) != std::string::npos);
                s.error = "Failed to connect socket to '" + wire::libvirt_spelling(peer.socket_path, named) + "': " + std::strerror(refused);
            });
            finish();
            return;
        }
        // The one place that picks the client. The wire reader first: it
        // answers a local daemon in a fraction of what loading libvirt.so
        // costs, and declines what it does not handle (remote transports,
        // authentication, surprises); libvirt.so reads the rest, from scratch.
        const LibvirtPublish pub = [this](const std::string& step, const std::function<void(LibvirtSnapshot&)>& fill) { publish(step, fill); };
        if (client_ != LibvirtClient::library) {
            std::string why;
            const auto status = read_libvirt(open_wire_reader(uri, peer.socket_path, deadline_, &why, peer_fd), pub, deadline_, &why);
            if (status == LibvirtReader::Status::answered) {
                finish();
                return;
            }
            // The waiting side reports the deadline and the calls still open;
            // libvirt.so would only hang on the same daemon.
            if (status == LibvirtReader::Status::timed_out) return;
            restart();
            if (client_ == LibvirtClient::wire) {
                publish("open", [&](LibvirtSnapshot& s) {
                    s.error = "the wire client declined: " + why;
                    s.client = "wire";
                });
                finish();
                return;
            }
        }
        (void)read_libvirt(open_library_reader(uri), pub, deadline_, nullptr);
        finish();
    }

private:
    void publish(const std::string& step, const std::function<void(LibvirtSnapshot&)>& fill) {
        std::lock_guard lock(p_->mu);
        fill(p_->s);
        std::erase(p_->steps, step);
        if (step == "socket") after_socket_ = p_->s;
    }

    // The wire client declined midway: forget its partial answers, so the
    // snapshot holds libvirt.so's alone.
    void restart() {
        std::lock_guard lock(p_->mu);
        p_->s = after_socket_;
        p_->steps = all_steps();
        std::erase(p_->steps, std::string("socket"));
    }

    void finish() {
        std::lock_guard lock(p_->mu);
        p_->steps.clear();
        p_->done = true;
        p_->cv.notify_all();
    }

    std::shared_ptr<Pending> p_;
    LibvirtClient client_;
    wire::Clock::time_point deadline_;
    LibvirtSnapshot after_socket_;
};

}  // namespace

bool libvirt_abandoned() { return g_abandoned.load(); }

LibvirtSnapshot query_libvirt(const std::string& uri, int timeout_ms) { return query_libvirt(uri, timeout_ms, LibvirtClient::automatic); }

namespace {

// The waiting half: whatever answered by the deadline.
class InFlight final : public LibvirtPending {
public:
    InFlight(std::shared_ptr<Pending> p, std::chrono::steady_clock::time_point start, int timeout_ms)
        : p_(std::move(p)), start_(start), timeout_ms_(timeout_ms) {}

    LibvirtSnapshot wait() override {
        std::unique_lock lock(p_->mu);
        const bool done = p_->cv.wait_until(lock, start_ + std::chrono::milliseconds(timeout_ms_), [&] { return p_->done; });
        LibvirtSnapshot s = p_->s;
        if (!done) {
            g_abandoned = true;
            s.timed_out = true;
            s.unanswered = p_->steps;
            if (!s.connected && s.error.empty())
                s.error = "no answer from the libvirt daemon within " + std::to_string(timeout_ms_) +
                          " ms: it accepts connections but does not respond (hung, stopped, or overloaded)";
        }
        lock.unlock();
        s.elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
        return s;
    }

private:
    std::shared_ptr<Pending> p_;
    std::chrono::steady_clock::time_point start_;
    int timeout_ms_;
};

std::unique_ptr<LibvirtPending> start(const std::string& uri, int timeout_ms, LibvirtClient client) {
    const auto start = std::chrono::steady_clock::now();
    auto pending = std::make_shared<Pending>();
    pending->s.uri = uri;
    pending->s.attempted = true;
    pending->steps = all_steps();
    // The wire client's own deadline falls a little after this side's, so
    // the timeout is always decided here, with the calls still open named.
    const auto wire_deadline = start + std::chrono::milliseconds(timeout_ms) + std::chrono::milliseconds(50);
    // No socket file: the query ends at its first connect (ENOENT) and can
    // never hang, so it runs here; a thread would only compete for the CPUs
    // the other probes use (check on a host with libvirt installed, stopped).
    if (const std::string sock = libvirt_socket_for(uri, path_exists); !sock.empty() && !path_exists(sock)) {
        Query(pending, client, wire_deadline).run(uri);
        return std::make_unique<InFlight>(pending, start, timeout_ms);
    }
    std::thread([pending, uri, client, wire_deadline] { Query(pending, client, wire_deadline).run(uri); }).detach();
    return std::make_unique<InFlight>(pending, start, timeout_ms);
}

}  // namespace

std::unique_ptr<LibvirtPending> start_libvirt_query(const std::string& uri, int timeout_ms) {
    return start(uri, timeout_ms, LibvirtClient::automatic);
}

LibvirtSnapshot query_libvirt(const std::string& uri, int timeout_ms, LibvirtClient client) {
    return start(uri, timeout_ms, client)->wait();
}

}  // namespace kvmready::host
#endif
