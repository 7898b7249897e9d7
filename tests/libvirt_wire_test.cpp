// kvmready's own client of libvirt's RPC protocol (src/host/libvirt_wire.hpp):
//  * the XDR pieces and URI handling, against values worked out by hand;
//  * hostile sockets this test serves itself (garbage, a foreign program, an
//    absurd length, a daemon that never answers, SASL): the client declines
//    or gives up at its deadline, never crashes, never hangs;
//  * a real libvirtd (tests/support/libvirt_daemon.hpp): the snapshot the
//    wire client takes equals libvirt.so's field by field, as root and as
//    `nobody` (read-write refused, read-only socket), and a SIGSTOPped
//    daemon gives the deadline error within the timeout.
#include "host/libvirt_wire.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/libvirt.hpp"
#include "support/libvirt_daemon.hpp"

namespace {

namespace wire = kvmready::host::wire;
using kvmready::host::LibvirtClient;
using kvmready::host::LibvirtSnapshot;
using kvmready::host::query_libvirt;
using kvmready::testsupport::LibvirtDaemon;
using json = nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// Everything but who asked and how long it took.
json comparable(const LibvirtSnapshot& s) {
    json j = s;
    // daemon_state is a sample of a live process (S or R from one moment to the next).
    for (const char* k : {"elapsed_ms", "connect_ms", "client", "daemon_state"}) j.erase(k);
    return j;
}

// ---------------------------------------------------------------- encoding

TEST(LibvirtWireXdr, StringsArePaddedToFourBytesAndReadBack) {
    const std::string name = "qemu:///system";  // 14 bytes -> 2 of padding
    wire::XdrOut o;
    o.str(name).opt_str(nullptr).opt_str(&name).u32(7);
    const std::string& b = o.bytes();
    ASSERT_EQ(b.size(), 4 + 16 + 4 + 4 + 4 + 16 + 4);
    EXPECT_EQ(b.substr(0, 4), std::string("\0\0\0\x0e", 4));
    EXPECT_EQ(b.substr(18, 2), std::string("\0\0", 2));
    wire::XdrIn in(b);
    EXPECT_EQ(in.str(), name);
    std::string s;
    EXPECT_FALSE(in.opt_str(s));
    EXPECT_TRUE(in.opt_str(s));
    EXPECT_EQ(s, name);
    EXPECT_EQ(in.u32(), 7u);
    EXPECT_TRUE(in.ok());
    EXPECT_TRUE(in.at_end());
}

TEST(LibvirtWireXdr, ShortOrLyingInputFailsInsteadOfReadingPastTheEnd) {
    // A string claiming 4 GiB in an 8-byte body.
    const std::string body("\xff\xff\xff\xf0xxxx", 8);
    wire::XdrIn in(body);
    EXPECT_EQ(in.str(), "");
    EXPECT_FALSE(in.ok());
    EXPECT_EQ(in.u32(), 0u) << "reads after a failure return zero";
    const std::string bad_bool("\0\0\0\x05", 4);
    wire::XdrIn b(bad_bool);
    std::string s;
    EXPECT_FALSE(b.opt_str(s));
    EXPECT_FALSE(b.ok()) << "an XDR bool of 5";
}

TEST(LibvirtWireXdr, HyperIsBigEndianHighWordFirst) {
    const std::string b("\x00\x00\x00\x01\x00\x00\x00\x02", 8);
    wire::XdrIn in(b);
    EXPECT_EQ(in.u64(), (uint64_t{1} << 32) | 2);
}

TEST(LibvirtWireXdr, FrameLengthCountsItselfAndTheHeader) {
    const std::string f = wire::frame(wire::kRemoteProgram, 1, wire::kAuthList, wire::kCall, 9, wire::kOk, "abcd");
    ASSERT_EQ(f.size(), 32u);
    wire::XdrIn in(f);
    EXPECT_EQ(in.u32(), 32u);
    EXPECT_EQ(in.u32(), 0x20008086u);
    EXPECT_EQ(in.u32(), 1u);
    EXPECT_EQ(in.i32(), 66);
    EXPECT_EQ(in.u32(), 0u);
    EXPECT_EQ(in.u32(), 9u);
    EXPECT_EQ(in.u32(), 0u);
}

TEST(LibvirtWireXdr, RemoteErrorCarriesTheDaemonsMessage) {
    const std::string msg = "operation forbidden: read only access prevents virConnectGetDomainCapabilities";
    wire::XdrOut o;
    o.i32(55).i32(10).opt_str(&msg).i32(2).u32(0).u32(0).u32(0).u32(0).i32(0).i32(0).u32(0);
    wire::RemoteError e;
    ASSERT_TRUE(wire::decode_error(o.bytes(), e));
    EXPECT_EQ(e.code, 55);
    EXPECT_EQ(e.domain, 10);
    EXPECT_EQ(e.message, msg);
}

TEST(LibvirtWireTarget, NamesWhatLibvirtSendsAndWhereReadOnlyGoes) {
    wire::Target t;
    std::string why;
    ASSERT_TRUE(wire::target_for("qemu:///system?socket=/tmp/x/sock", "/tmp/x/sock", t, &why)) << why;
    EXPECT_EQ(t.name, "qemu:///system");
    EXPECT_EQ(t.ro_socket, "/tmp/x/sock") << "socket= names the socket for both modes, as in libvirt";
    ASSERT_TRUE(wire::target_for("qemu+unix:///system", "/run/libvirt/virtqemud-sock", t, &why)) << why;
    EXPECT_EQ(t.name, "qemu:///system");
    EXPECT_EQ(t.rw_socket, "/run/libvirt/virtqemud-sock");
    EXPECT_EQ(t.ro_socket, "/run/libvirt/virtqemud-sock-ro");
    EXPECT_FALSE(wire::target_for("qemu+ssh://host/system", "/x", t, &why));
    EXPECT_NE(why.find("ssh"), std::string::npos) << why;
    EXPECT_FALSE(wire::target_for("qemu:///system?socket=/x&mode=legacy", "/x", t, &why));
    EXPECT_NE(why.find("mode"), std::string::npos) << why;
    EXPECT_FALSE(wire::target_for("qemu:///system", "", t, &why));
    // Errors name derived sockets the way libvirt's client does; socket= verbatim.
    EXPECT_EQ(wire::libvirt_spelling("/run/libvirt/virtqemud-sock-ro", false), "/var/run/libvirt/virtqemud-sock-ro");
    EXPECT_EQ(wire::libvirt_spelling("/run/libvirt/libvirt-sock", true), "/run/libvirt/libvirt-sock");
}

// ------------------------------------------------------- hostile sockets

// A UNIX socket served by this test; each connection runs `handler` on its
// own thread until it returns or the server stops.
class FakeServer {
public:
    using Handler = std::function<void(int fd, const std::atomic<bool>& stop)>;
    explicit FakeServer(Handler h) : handler_(std::move(h)) {
        char tmpl[] = "/tmp/kvmready-wire-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
        dir_ = tmpl;
        path_ = dir_ + "/sock";
        listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a {};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
        if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_, 16) != 0)
            throw std::runtime_error("bind/listen");
        acceptor_ = std::thread([this] {
            while (!stop_) {
                pollfd p {listen_, POLLIN, 0};
                if (::poll(&p, 1, 20) <= 0) continue;
                const int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd < 0) continue;
                ++accepted_;
                workers_.emplace_back([this, fd] {
                    handler_(fd, stop_);
                    ::close(fd);
                });
            }
        });
    }
    ~FakeServer() {
        stop_ = true;
        acceptor_.join();
        for (auto& w : workers_) w.join();
        ::close(listen_);
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string uri() const { return "qemu:///system?socket=" + path_; }
    [[nodiscard]] int accepted() const { return accepted_; }

private:
    Handler handler_;
    std::string dir_, path_;
    int listen_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::thread acceptor_;
    std::vector<std::thread> workers_;
};

// One whole message from the client (length word included), or "" on EOF,
// timeout or stop. `in` keeps what arrived beyond it (pipelined calls).
std::string read_message(int fd, const std::atomic<bool>& stop, std::string& in, int timeout_ms = 3000) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!stop && Clock::now() < deadline) {
        if (in.size() >= 4) {
            wire::XdrIn h(in);
            const uint32_t len = h.u32();
            if (len < 28 || len > (1u << 20)) return "";
            if (in.size() >= len) {
                std::string m = in.substr(0, len);
                in.erase(0, len);
                return m;
            }
        }
        pollfd p {fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return "";
        in.append(buf, static_cast<size_t>(n));
    }
    return "";
}

struct Call {
    int32_t proc = 0;
    uint32_t serial = 0;
};
Call header_of(const std::string& msg) {
    wire::XdrIn h(msg, 4);
    h.u32();
    h.u32();
    Call c;
    c.proc = h.i32();
    h.u32();
    c.serial = h.u32();
    return c;
}

void send_all(int fd, const std::string& b) { (void)!::send(fd, b.data(), b.size(), MSG_NOSIGNAL); }

std::string reply_ok(const Call& c, const std::string& body) {
    return wire::frame(wire::kRemoteProgram, 1, c.proc, wire::kReply, c.serial, wire::kOk, body);
}

struct WireResult {
    wire::Outcome outcome;
    std::string reason;
    LibvirtSnapshot snap;
    double ms = 0;
};

WireResult run_wire(const std::string& uri, const std::string& socket, int timeout_ms) {
    WireResult r;
    const auto t0 = Clock::now();
    r.outcome = wire::query(
        uri, socket, t0 + std::chrono::milliseconds(timeout_ms),
        [&](const std::string&, const std::function<void(LibvirtSnapshot&)>& fill) { fill(r.snap); }, &r.reason);
    r.ms = ms_since(t0);
    return r;
}

// Replies a daemon could never send, one per connection.
const std::vector<std::pair<std::string, std::function<std::string(const Call&)>>>& hostile_replies() {
    static const std::vector<std::pair<std::string, std::function<std::string(const Call&)>>> v = {
        {"text", [](const Call&) { return std::string("HTTP/1.1 400 Bad Request\r\n\r\nthis is not libvirt\n"); }},
        {"foreign program", [](const Call& c) { return wire::frame(0x12345678, 1, c.proc, wire::kReply, c.serial, wire::kOk, ""); }},
        {"absurd length", [](const Call&) { return std::string("\x7f\xff\xff\xff\0\0\0\0", 8); }},
        {"length below the header", [](const Call&) { return std::string("\0\0\0\x08\0\0\0\0", 8); }},
        {"reply to another serial", [](const Call& c) { return reply_ok({c.proc, c.serial + 100}, std::string(4, '\0')); }},
        {"stream message", [](const Call& c) { return wire::frame(wire::kRemoteProgram, 1, c.proc, wire::kStream, c.serial, 2, "xx"); }},
        {"error that does not decode", [](const Call& c) {
             return wire::frame(wire::kRemoteProgram, 1, c.proc, wire::kReply, c.serial, wire::kError, std::string("\0\0", 2));
         }},
        {"AUTH_LIST with 2^32-1 types", [](const Call& c) { return reply_ok(c, std::string("\xff\xff\xff\xff", 4)); }},
        {"half a message, then EOF", [](const Call& c) { return reply_ok(c, std::string(40, 'x')).substr(0, 20); }},
    };
    return v;
}

TEST(LibvirtWireHostile, EveryNonsenseReplyIsDeclinedQuicklyWithAReason) {
    for (const auto& [what, make] : hostile_replies()) {
        SCOPED_TRACE(what);
        FakeServer srv([&make = make](int fd, const std::atomic<bool>& stop) {
            std::string in;
            const std::string m = read_message(fd, stop, in);
            if (m.empty()) return;
            send_all(fd, make(header_of(m)));
        });
        const WireResult r = run_wire(srv.uri(), srv.path(), 3000);
        EXPECT_EQ(r.outcome, wire::Outcome::declined) << r.reason;
        EXPECT_FALSE(r.reason.empty());
        EXPECT_FALSE(r.snap.connected);
        EXPECT_LT(r.ms, 2500) << "declining must not wait for the 3 s deadline";
    }
}

TEST(LibvirtWireHostile, SaslIsLeftToLibvirt) {
    FakeServer srv([](int fd, const std::atomic<bool>& stop) {
        std::string in;
        for (std::string m; !(m = read_message(fd, stop, in)).empty();) {
            const Call c = header_of(m);
            if (c.proc == wire::kAuthList) send_all(fd, reply_ok(c, wire::XdrOut().u32(1).i32(1).bytes()));
            else send_all(fd, wire::frame(wire::kRemoteProgram, 1, c.proc, wire::kReply, c.serial, wire::kError,
                                          wire::XdrOut().i32(1).i32(7).opt_str(nullptr).i32(2).bytes()));
        }
    });
    const WireResult r = run_wire(srv.uri(), srv.path(), 3000);
    EXPECT_EQ(r.outcome, wire::Outcome::declined);
    EXPECT_NE(r.reason.find("sasl"), std::string::npos) << r.reason;
}

// A daemon that accepts and never says a word: the client gives up at its
// deadline, not later, and says it timed out (not a protocol problem).
TEST(LibvirtWireHostile, SilentDaemonTimesOutAtTheDeadline) {
    FakeServer srv([](int fd, const std::atomic<bool>& stop) {
        while (!stop) {
            pollfd p {fd, POLLIN, 0};
            if (::poll(&p, 1, 20) > 0) {
                char buf[4096];
                if (::recv(fd, buf, sizeof buf, 0) <= 0) return;
            }
        }
    });
    const WireResult r = run_wire(srv.uri(), srv.path(), 400);
    EXPECT_EQ(r.outcome, wire::Outcome::timed_out) << r.reason;
    EXPECT_GE(r.ms, 390);
    EXPECT_LT(r.ms, 3000) << "the 400 ms deadline ends the wait";
}

#ifdef KVMREADY_HAVE_LIBVIRT
// Through query_libvirt: garbage makes the automatic query fall back to
// libvirt.so, which fails cleanly on the same garbage; forcing the wire
// client names why it declined.
TEST(LibvirtWireHostile, GarbageFallsBackToLibvirtSoAndFailsCleanly) {
    FakeServer srv([](int fd, const std::atomic<bool>& stop) {
        std::string in;
        if (read_message(fd, stop, in, 1000).empty()) return;
        send_all(fd, "this is not libvirt, this is not libvirt, this is not libvirt\n");
    });
    const auto t0 = Clock::now();
    const LibvirtSnapshot forced = query_libvirt(srv.uri(), 3000, LibvirtClient::wire);
    EXPECT_FALSE(forced.connected);
    EXPECT_FALSE(forced.timed_out);
    EXPECT_EQ(forced.client, "wire");
    EXPECT_NE(forced.error.find("declined"), std::string::npos) << forced.error;
    const LibvirtSnapshot s = query_libvirt(srv.uri(), 3000, LibvirtClient::automatic);
    EXPECT_FALSE(s.connected);
    EXPECT_FALSE(s.timed_out) << "libvirt.so rejects the garbage too";
    EXPECT_EQ(s.client, "libvirt.so") << json(s).dump();
    EXPECT_FALSE(s.error.empty());
    EXPECT_LT(ms_since(t0), 3000);
}
#endif

// A "daemon" that opens the connection, then hangs up at the first real
// call: the wire client has published the open by then. Falling back must
// leave libvirt.so's snapshot alone, not a mix of both.
TEST(LibvirtWireHostile, HangUpAfterOpenFallsBackWithoutMixingAnswers) {
    FakeServer srv([](int fd, const std::atomic<bool>& stop) {
        std::string in;
        for (std::string m; !(m = read_message(fd, stop, in, 1000)).empty();) {
            const Call c = header_of(m);
            if (c.proc == wire::kAuthList) send_all(fd, reply_ok(c, wire::XdrOut().u32(1).i32(0).bytes()));
            else if (c.proc == wire::kConnectOpen) send_all(fd, reply_ok(c, ""));
            else return;
        }
    });
    const LibvirtSnapshot forced = query_libvirt(srv.uri(), 3000, LibvirtClient::wire);
    EXPECT_FALSE(forced.connected) << "the declined wire answer is withdrawn";
    EXPECT_NE(forced.error.find("closed the connection"), std::string::npos) << forced.error;
    const auto t0 = Clock::now();
    const LibvirtSnapshot s = query_libvirt(srv.uri(), 3000);
    EXPECT_LT(ms_since(t0), 3000);
    EXPECT_FALSE(s.timed_out);
    EXPECT_EQ(s.client, "libvirt.so") << json(s).dump();
    const LibvirtSnapshot lib = query_libvirt(srv.uri(), 3000, LibvirtClient::library);
    EXPECT_EQ(comparable(s), comparable(lib));
    EXPECT_GE(srv.accepted(), 4) << "peer check and wire client twice, libvirt.so at least once";
}

// ------------------------------------------------------------ real daemon

#ifdef KVMREADY_HAVE_LIBVIRT
class LibvirtWireLive : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (!LibvirtDaemon::unavailable_reason().empty()) return;
        // The classic packaging: read-write socket for root (a group, on
        // real hosts) without authentication, read-only socket for anyone.
        LibvirtDaemon::Options o;
        o.config_append = {{"libvirtd.conf", "auth_unix_ro = \"none\"\nauth_unix_rw = \"none\"\nunix_sock_rw_perms = \"0700\"\n"}};
        daemon_ = std::make_unique<LibvirtDaemon>(o);
        try {
            daemon_->start();
            for (std::vector<std::string> a :
                 {std::vector<std::string>{"net-define", "/usr/share/libvirt/networks/default.xml"}, {"net-start", "default"},
                  {"net-autostart", "default"}, {"pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images"},
                  {"pool-start", "default"}, {"pool-autostart", "default"},
                  // A second, inactive pool: the lists carry more than one entry in a known order.
                  {"pool-define-as", "spare", "dir", "--target", "/var/lib/libvirt"}}) {
                auto r = daemon_->virsh(a);
                if (r.exit_code != 0) throw std::runtime_error("virsh " + a[0] + ": " + r.err + r.error);
            }
        } catch (const std::exception& e) {
            start_error_ = e.what();
        }
    }
    static void TearDownTestSuite() { daemon_.reset(); }
    void SetUp() override {
        if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
        ASSERT_TRUE(start_error_.empty()) << start_error_;
    }
    static std::unique_ptr<LibvirtDaemon> daemon_;
    static std::string start_error_;
};
std::unique_ptr<LibvirtDaemon> LibvirtWireLive::daemon_;
std::string LibvirtWireLive::start_error_;

void expect_same(const LibvirtSnapshot& w, const LibvirtSnapshot& l) {
    EXPECT_EQ(w.client, "wire");
    EXPECT_EQ(l.client, "libvirt.so");
    const json a = comparable(w), b = comparable(l);
    for (const auto& [k, v] : b.items()) EXPECT_EQ(a.value(k, json()), v) << "field " << k;
    EXPECT_EQ(a.size(), b.size());
}

TEST_F(LibvirtWireLive, SnapshotEqualsLibvirtSoFieldByField) {
    const std::string uri = daemon_->uri();
    const LibvirtSnapshot w = query_libvirt(uri, 15000, LibvirtClient::wire);
    const LibvirtSnapshot l = query_libvirt(uri, 15000, LibvirtClient::library);
    ASSERT_TRUE(w.connected) << w.error;
    ASSERT_TRUE(l.connected) << l.error;
    // The comparison means something only if there was something to compare.
    EXPECT_TRUE(w.read_write);
    EXPECT_EQ(w.hypervisor_type, "QEMU");
    EXPECT_GT(w.library_version, 1000000u);
    EXPECT_GT(w.hypervisor_version, 1000000u);
    ASSERT_EQ(w.networks.size(), 1u);
    EXPECT_TRUE(w.networks[0].active && w.networks[0].autostart && w.networks[0].persistent);
    EXPECT_NE(w.networks[0].xml.find("<name>default</name>"), std::string::npos);
    ASSERT_EQ(w.pools.size(), 2u);
    EXPECT_GT(w.pools[0].capacity + w.pools[1].capacity, 0u);
    EXPECT_NE(w.domcaps_qemu_xml.find("<domainCapabilities>"), std::string::npos);
    EXPECT_NE(w.capabilities_xml.find("<capabilities>"), std::string::npos);
    EXPECT_FALSE(w.domcaps_kvm_xml.empty() && w.domcaps_kvm_error.empty());
    expect_same(w, l);
    // The automatic choice is the wire client for a local socket.
    EXPECT_EQ(query_libvirt(uri, 15000).client, "wire");
}

// Both snapshots of `uri` taken as `nobody` in a child that joins the
// daemon's mount namespace (where /run/libvirt is the daemon's), sent back as JSON.
struct Pair {
    LibvirtSnapshot wire, library;
};
void snapshots_as_nobody(const LibvirtDaemon& d, const std::string& uri, Pair& out) {
    passwd* pw = ::getpwnam("nobody");
    if (!pw) GTEST_SKIP() << "no user nobody";
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    const std::string mntns = "/proc/" + std::to_string(d.namespace_pid()) + "/ns/mnt";
    int pipefd[2];
    ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(pipefd[0]);
        const int ns = ::open(mntns.c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0 || ::setns(ns, CLONE_NEWNS) != 0 || ::chdir("/") != 0) ::_exit(2);
        if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(3);
        json j;
        j["wire"] = query_libvirt(uri, 8000, LibvirtClient::wire);
        j["library"] = query_libvirt(uri, 8000, LibvirtClient::library);
        const std::string text = j.dump();
        size_t off = 0;
        while (off < text.size()) {
            const ssize_t n = ::write(pipefd[1], text.data() + off, text.size() - off);
            if (n <= 0) ::_exit(4);
            off += static_cast<size_t>(n);
        }
        ::_exit(0);
    }
    ::close(pipefd[1]);
    std::string text;
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    bool timed_out = false;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        pollfd p {pipefd[0], POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
        char buf[65536];
        const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
    }
    ::close(pipefd[0]);
    if (timed_out) ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    ASSERT_FALSE(timed_out);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
    const json j = json::parse(text, nullptr, false);
    ASSERT_TRUE(j.is_object()) << text;
    out.wire = j["wire"].get<LibvirtSnapshot>();
    out.library = j["library"].get<LibvirtSnapshot>();
}

// qemu:///system as `nobody`, resolved as libvirt does with no socket=: the
// read-write socket (0700 root) refuses the connection, the read-only one
// (libvirt-sock-ro, a different socket) answers.
TEST_F(LibvirtWireLive, ReadOnlyFallbackAsNobodyEqualsLibvirtSo) {
    Pair p;
    ASSERT_NO_FATAL_FAILURE(snapshots_as_nobody(*daemon_, "qemu:///system", p));
    if (IsSkipped()) return;
    const auto& w = p.wire;
    ASSERT_TRUE(w.connected) << w.error;
    EXPECT_FALSE(w.read_write) << "nobody must not get a read-write connection";
    // libvirt names the sockets it derives under /var/run (remote_sockets.c).
    EXPECT_EQ(w.read_write_error, "Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied");
    EXPECT_EQ(w.socket_path, "/run/libvirt/libvirt-sock");
    EXPECT_EQ(w.networks.size(), 1u);
    EXPECT_FALSE(w.capabilities_xml.empty());
    expect_same(w, p.library);
}

// libvirt's own default configuration: polkit on the read-write socket. As
// `nobody` the daemon asks polkit, which has no system bus here, and refuses;
// the wire client reports the daemon's refusal word for word as libvirt.so.
TEST_F(LibvirtWireLive, PolkitRefusalAsNobodyEqualsLibvirtSo) {
    LibvirtDaemon d;
    ASSERT_NO_THROW(d.start());
    Pair p;
    ASSERT_NO_FATAL_FAILURE(snapshots_as_nobody(d, "qemu:///system", p));
    if (IsSkipped()) return;
    EXPECT_FALSE(p.wire.read_write);
    EXPECT_FALSE(p.wire.error.empty() && p.wire.read_write_error.empty()) << "polkit cannot have said yes here";
    expect_same(p.wire, p.library);
}

// A stopped daemon: the connection is accepted (the kernel queues it),
// nothing answers. The query gives the deadline error within the timeout,
// names the stopped process, and the wire client does not fall back to
// libvirt.so (which would only hang on the same daemon).
TEST_F(LibvirtWireLive, StoppedDaemonGivesTheDeadlineErrorWithinTheTimeout) {
    auto& d = *daemon_;
    d.pause();
    struct Resume {
        LibvirtDaemon& d;
        ~Resume() { d.resume(); }
    } resume{d};
    const WireResult r = run_wire(d.uri(), d.socket_path(), 600);
    EXPECT_EQ(r.outcome, wire::Outcome::timed_out) << r.reason;
    EXPECT_LT(r.ms, 3000) << "the 600 ms deadline ends the wait";
    const auto t0 = Clock::now();
    const LibvirtSnapshot s = query_libvirt(d.uri(), 1000);
    const double ms = ms_since(t0);
    EXPECT_TRUE(s.timed_out);
    EXPECT_FALSE(s.connected);
    EXPECT_NE(s.error.find("no answer from the libvirt daemon within 1000 ms"), std::string::npos) << s.error;
    EXPECT_EQ(s.daemon_pid, d.libvirtd_pid());
    EXPECT_EQ(s.daemon_state, "T");
    ASSERT_FALSE(s.unanswered.empty());
    EXPECT_EQ(s.unanswered.front(), "open");
    EXPECT_TRUE(s.client.empty()) << "no client got as far as opening: " << s.client;
    EXPECT_GE(ms, 990);
    EXPECT_LT(ms, 3500) << "the 1000 ms deadline ends the wait";
}
#endif

}  // namespace
