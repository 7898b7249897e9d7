// net.bridge ops: the code that changes the running network.
//
// bridge.link   creates the bridge and, with an uplink, moves the uplink's
//               addresses and routes to it in one `ip -batch`, under a
//               watchdog: a forked child in its own session that runs the
//               reverse batch unless this process confirms a connectivity
//               probe before the deadline. The child reverts at once when
//               this process dies (its end of the pipe closes), so a SIGKILL
//               mid-step leaves the host as it was.
// bridge.nm     the same under NetworkManager: nmcli commands inside a
//               checkpoint that NetworkManager itself rolls back unless it
//               is destroyed in time.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "fixes/bridge.hpp"
#include "fixes/fixes.hpp"
#include "host/process.hpp"
#include "util/text.hpp"

namespace kvmready::fix {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace br = bridge;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

host::RunResult run(const std::vector<std::string>& argv, int timeout_ms = 10000) { return host::run_process(argv, timeout_ms); }

void log(OpContext& ctx, const std::string& s) {
    if (ctx.log) ctx.log(s);
}

std::string write_batch(const std::string& path, const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << text;
        f.flush();
        if (!f) throw std::runtime_error("cannot write " + tmp);
    }
    if (int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    return path;
}

std::string step_file(const OpContext& ctx, const std::string& suffix) {
    return fmt::format("{}/step-{}-{}", ctx.run_dir.empty() ? "/tmp" : ctx.run_dir, ctx.step_index, suffix);
}

std::string find_program(const std::string& name) {
    for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
        const std::string p = std::string(dir) + "/" + name;
        if (::access(p.c_str(), X_OK) == 0) return p;
    }
    throw std::runtime_error(name + " not found (iproute2 is needed)");
}

// ---- the watchdog ----------------------------------------------------------

enum WatchdogExit { kConfirmed = 0, kRevertedOk = 10, kRevertedWithErrors = 11 };

struct Watchdog {
    pid_t pid = -1;
    int fd = -1;  // write end: 'c' confirm, 'r' revert now; closed = revert now
};

void put(int fd, const char* s) {
    if (fd >= 0) (void)!::write(fd, s, std::strlen(s));
}

// Forks the watchdog. After fork() the child calls only async-signal-safe
// functions (it may be forked from a threaded process): everything it
// needs is prepared here.
Watchdog start_watchdog(const std::string& reverse_file, int deadline_ms, const std::string& log_path) {
    const std::string ip = find_program("ip");
    const char* argv[] = {ip.c_str(), "-force", "-batch", reverse_file.c_str(), nullptr};
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    const int logfd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        ::close(p[0]);
        ::close(p[1]);
        if (logfd >= 0) ::close(logfd);
        if (devnull >= 0) ::close(devnull);
        throw std::runtime_error(std::string("fork: ") + std::strerror(e));
    }
    if (pid == 0) {
        ::setsid();  // no terminal signals, survives the run's process group
        struct sigaction ign {};
        ign.sa_handler = SIG_IGN;
        for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) ::sigaction(s, &ign, nullptr);
        ::close(p[1]);
        // Keep only the pipe and the log: no lock files, no stdout pipes of
        // whoever runs kvmready (they must see EOF when kvmready ends).
        if (devnull >= 0) {
            ::dup2(devnull, 0);
            ::dup2(devnull, 1);
        }
        if (logfd >= 0) ::dup2(logfd, 2);
        ::dup2(p[0], 3);
        ::syscall(SYS_close_range, 4U, ~0U, 0U);
        const int in = 3, lg = 2;
        timespec start{};
        ::clock_gettime(CLOCK_MONOTONIC, &start);
        const char* why = "deadline passed without confirmation";
        for (;;) {
            timespec now{};
            ::clock_gettime(CLOCK_MONOTONIC, &now);
            const long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
            if (elapsed >= deadline_ms) break;
            pollfd pf{in, POLLIN, 0};
            const int n = ::poll(&pf, 1, static_cast<int>(deadline_ms - elapsed));
            if (n < 0) continue;
            if (n == 0) break;
            char c = 0;
            const ssize_t got = ::read(in, &c, 1);
            if (got < 0) continue;
            if (got == 0) {
                why = "kvmready ended before confirming";
                break;
            }
            if (c == 'c') {
                put(lg, "watchdog: confirmed, nothing to revert\n");
                ::_exit(kConfirmed);
            }
            if (c == 'r') {
                why = "the connectivity probe failed";
                break;
            }
        }
        put(lg, "watchdog: reverting (");
        put(lg, why);
        put(lg, ")\n");
        const pid_t child = ::fork();
        if (child == 0) {
            ::execv(argv[0], const_cast<char* const*>(argv));
            ::_exit(127);
        }
        int status = 0;
        while (child > 0 && ::waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        const bool ok = child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        put(lg, ok ? "watchdog: reverted\n" : "watchdog: reverted (some lines of the reverse batch failed)\n");
        ::_exit(ok ? kRevertedOk : kRevertedWithErrors);
    }
    ::close(p[0]);
    if (logfd >= 0) ::close(logfd);
    if (devnull >= 0) ::close(devnull);
    return {pid, p[1]};
}

// Sends the verdict and waits for the watchdog's answer.
int finish_watchdog(Watchdog& w, char verdict) {
    if (w.fd >= 0) {
        (void)!::write(w.fd, &verdict, 1);
        ::close(w.fd);
        w.fd = -1;
    }
    int status = 0;
    while (::waitpid(w.pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- the connectivity probe --------------------------------------------------

uint16_t checksum(const uint8_t* p, size_t n) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons(static_cast<uint16_t>(~sum));
}

struct ProbeResult {
    bool ok = false;
    std::string how;
    double ms = 0;
};

bool neighbour_reachable(const std::string& dev, const std::string& target) {
    auto r = run({"ip", "-j", "neigh", "show", "to", target, "dev", dev}, 2000);
    if (!r.started || r.exit_code != 0) return false;
    try {
        for (const auto& n : json::parse(r.out))
            for (const auto& s : n.value("state", json::array()))
                if (s == "REACHABLE") return true;
    } catch (const json::exception&) {
    }
    return false;
}

std::string operstate(const std::string& dev) {
    std::ifstream f("/sys/class/net/" + dev + "/operstate");
    std::string s;
    f >> s;
    return s;
}

// An echo reply from target through dev, or the target resolved on dev
// (ARP/ND answered: the link through the bridge works), within timeout_ms.
ProbeResult probe(const std::string& dev, const std::string& target, int timeout_ms) {
    const auto t0 = Clock::now();
    ProbeResult res;
    if (target.empty()) {
        while (ms_since(t0) < timeout_ms) {
            if (operstate(dev) == "up") {
                res = {true, fmt::format("{} is up (no default gateway to probe)", dev), ms_since(t0)};
                return res;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        res.how = fmt::format("{} did not come up (no default gateway to probe)", dev);
        res.ms = ms_since(t0);
        return res;
    }
    const bool v6 = target.find(':') != std::string::npos;
    sockaddr_storage ss{};
    socklen_t sl = 0;
    if (v6) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
        s6->sin6_family = AF_INET6;
        std::string addr = target;
        if (addr.rfind("fe80", 0) == 0) s6->sin6_scope_id = ::if_nametoindex(dev.c_str());
        if (::inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr) != 1) throw std::runtime_error("bad probe address " + target);
        sl = sizeof *s6;
    } else {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
        s4->sin_family = AF_INET;
        if (::inet_pton(AF_INET, target.c_str(), &s4->sin_addr) != 1) throw std::runtime_error("bad probe address " + target);
        sl = sizeof *s4;
    }
    const int fam = v6 ? AF_INET6 : AF_INET;
    const int proto = v6 ? static_cast<int>(IPPROTO_ICMPV6) : static_cast<int>(IPPROTO_ICMP);
    bool raw = true;
    int fd = ::socket(fam, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
    if (fd < 0) {
        raw = false;
        fd = ::socket(fam, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);  // unprivileged ping sockets
    }
    if (fd >= 0) (void)::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev.c_str(), static_cast<socklen_t>(dev.size()));
    const uint16_t id = static_cast<uint16_t>(::getpid() & 0xffff);
    uint16_t seq = 0;
    auto next_send = t0;
    auto next_neigh = t0 + std::chrono::milliseconds(100);
    while (ms_since(t0) < timeout_ms) {
        const auto now = Clock::now();
        if (fd >= 0 && now >= next_send) {
            uint8_t pkt[16] = {};
            pkt[0] = v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
            pkt[4] = static_cast<uint8_t>(id >> 8);
            pkt[5] = static_cast<uint8_t>(id);
            ++seq;
            pkt[6] = static_cast<uint8_t>(seq >> 8);
            pkt[7] = static_cast<uint8_t>(seq);
            std::memcpy(pkt + 8, "kvmready", 8);
            if (!v6) {
                const uint16_t c = checksum(pkt, sizeof pkt);
                std::memcpy(pkt + 2, &c, 2);
            }
            (void)::sendto(fd, pkt, sizeof pkt, 0, reinterpret_cast<sockaddr*>(&ss), sl);
            next_send = now + std::chrono::milliseconds(200);
        }
        if (now >= next_neigh) {
            if (neighbour_reachable(dev, target)) {
                res = {true, fmt::format("{} answered {} on {}", target, v6 ? "neighbour discovery" : "ARP", dev), ms_since(t0)};
                break;
            }
            next_neigh = Clock::now() + std::chrono::milliseconds(100);
        }
        pollfd pf{fd, POLLIN, 0};
        const int n = fd >= 0 ? ::poll(&pf, 1, 20) : (std::this_thread::sleep_for(std::chrono::milliseconds(20)), 0);
        if (n <= 0) continue;
        uint8_t buf[2048];
        sockaddr_storage from{};
        socklen_t fl = sizeof from;
        const ssize_t got = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
        if (got <= 0) continue;
        const uint8_t* icmp = buf;
        size_t len = static_cast<size_t>(got);
        if (!v6 && raw) {
            const size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;
            if (len < ihl + 8) continue;
            icmp += ihl;
            len -= ihl;
        }
        if (len < 8) continue;
        const bool reply = v6 ? icmp[0] == ICMP6_ECHO_REPLY : icmp[0] == ICMP_ECHOREPLY;
        const uint16_t rid = static_cast<uint16_t>(icmp[4] << 8 | icmp[5]);
        bool from_target = false;
        if (v6) from_target = std::memcmp(&reinterpret_cast<sockaddr_in6*>(&from)->sin6_addr, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, 16) == 0;
        else from_target = reinterpret_cast<sockaddr_in*>(&from)->sin_addr.s_addr == reinterpret_cast<sockaddr_in*>(&ss)->sin_addr.s_addr;
        if (reply && from_target && (!raw || rid == id)) {
            res = {true, fmt::format("{} answered ping through {}", target, dev), ms_since(t0)};
            break;
        }
    }
    if (fd >= 0) ::close(fd);
    if (!res.ok) {
        res.how = fmt::format("{} did not answer ping, ARP or neighbour discovery through {} within {} ms", target, dev, timeout_ms);
        res.ms = ms_since(t0);
    }
    return res;
}

// ---- bridge.link -------------------------------------------------------------

br::Runner runner() {
    return [](const std::vector<std::string>& argv) { return run(argv); };
}

int arg_int(const Step& s, const char* key, int def) { return s.args.contains(key) && s.args[key].is_number() ? s.args[key].get<int>() : def; }

json link_prepare(const Step& step, OpContext& ctx) {
    const std::string bridge = step.args.value("bridge", "");
    const std::string uplink = step.args.value("uplink", "");
    if (bridge.empty()) throw std::runtime_error("bridge.link: no bridge name");
    const auto r = runner();
    const br::LinkState b = br::read_link(r, bridge);
    br::Move m;
    m.bridge = bridge;
    m.uplink = uplink;
    m.create_bridge = !b.exists;
    if (b.exists && b.kind != "bridge") throw std::runtime_error(fmt::format("{} exists and is not a bridge ({})", bridge, b.kind.empty() ? "a device" : b.kind));
    if (!uplink.empty()) {
        const br::LinkState u = br::read_link(r, uplink);
        if (!u.exists) throw std::runtime_error(fmt::format("the uplink {} does not exist", uplink));
        if (u.master == bridge) {
            m.uplink.clear();  // done already
        } else {
            if (!u.master.empty()) throw std::runtime_error(fmt::format("{} is already a port of {}", uplink, u.master));
            if (u.kind == "bridge") throw std::runtime_error(fmt::format("{} is itself a bridge", uplink));
            m.mac = u.mac;
            if (b.exists && b.mac != u.mac) m.bridge_old_mac = b.mac;
            if (b.exists && b.mac == u.mac) m.mac.clear();
            m.addrs = u.addrs;
            m.routes = u.routes;
        }
    }
    json undo = {{"move", m}, {"bridge_existed", b.exists}};
    undo["forward_file"] = write_batch(step_file(ctx, "bridge-forward.batch"), br::forward_batch(m));
    undo["reverse_file"] = write_batch(step_file(ctx, "bridge-reverse.batch"), br::reverse_batch(m));
    undo["watchdog_log"] = step_file(ctx, "bridge-watchdog.log");
    return undo;
}

void link_apply(const Step& step, OpContext& ctx, json& undo) {
    const br::Move m = undo.at("move").get<br::Move>();
    const std::string fwd = undo.at("forward_file"), rev = undo.at("reverse_file");
    if (m.uplink.empty()) {
        if (!m.create_bridge && operstate(m.bridge) != "down") {
            // Exists and up (or a port's carrier decides): make sure it is up.
            auto r = run({"ip", "link", "set", "dev", m.bridge, "up"});
            if (!r.started || r.exit_code != 0) throw std::runtime_error("ip link set " + m.bridge + " up: " + r.err + r.error);
            return;
        }
        auto r = run({"ip", "-batch", fwd});
        if (!r.started || r.exit_code != 0) {
            (void)run({"ip", "-force", "-batch", rev});
            throw std::runtime_error(fmt::format("creating {} failed: {}{}", m.bridge, r.err, r.error));
        }
        log(ctx, fmt::format("created bridge {} (no port: no existing interface touched)", m.bridge));
        return;
    }

    const int probe_ms = arg_int(step, "probe_ms", 5000);
    const int deadline_ms = arg_int(step, "watchdog_ms", probe_ms + 5000);
    const std::string target = step.args.value("probe", std::string()).empty() ? br::probe_target(m) : step.args.value("probe", std::string());
    Watchdog w = start_watchdog(rev, deadline_ms, undo.value("watchdog_log", step_file(ctx, "bridge-watchdog.log")));
    log(ctx, fmt::format("watchdog {} armed: it reverts {} -> {} within {} ms unless the probe passes", w.pid, m.uplink, m.bridge, deadline_ms));
    if (const char* hold = std::getenv("KVMREADY_TEST_BRIDGE_HOLD_MS")) {
        // Tests only: a window to kill kvmready between arming and moving.
        std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(hold)));
    }
    const auto t0 = Clock::now();
    auto r = run({"ip", "-batch", fwd});
    const double batch_ms = ms_since(t0);
    if (!r.started || r.exit_code != 0) {
        const auto t1 = Clock::now();
        const int code = finish_watchdog(w, 'r');
        throw std::runtime_error(fmt::format("moving {} to {} failed ({}{}); rolled back in {:.0f} ms{}", m.uplink, m.bridge, util::trim(r.err), r.error,
                                             ms_since(t1), code == kRevertedOk ? "" : " (the reverse batch reported errors)"));
    }
    log(ctx, fmt::format("moved {} address{} and {} route{} from {} to {} in {:.1f} ms; probing {}", m.addrs.size(), m.addrs.size() == 1 ? "" : "es",
                         m.routes.size(), m.routes.size() == 1 ? "" : "s", m.uplink, m.bridge, batch_ms, target.empty() ? m.bridge + "'s carrier" : target));
    const ProbeResult pr = probe(m.bridge, target, probe_ms);
    undo["batch_ms"] = batch_ms;
    undo["probe_ms"] = pr.ms;
    if (!pr.ok) {
        const auto t1 = Clock::now();
        const int code = finish_watchdog(w, 'r');
        throw std::runtime_error(fmt::format("connectivity lost: {}; rolled back ({} back on {}) in {:.0f} ms{}", pr.how, m.uplink, m.uplink,
                                             ms_since(t1), code == kRevertedOk ? "" : " (the reverse batch reported errors)"));
    }
    const int code = finish_watchdog(w, 'c');
    if (code != kConfirmed)
        throw std::runtime_error(fmt::format("the watchdog rolled the move back at its {} ms deadline before the probe's answer reached it ({})",
                                             deadline_ms, pr.how));
    log(ctx, fmt::format("connectivity kept: {} ({:.0f} ms after the move, {:.0f} ms after it started)", pr.how, pr.ms, batch_ms + pr.ms));
}

void link_undo(const json& undo, OpContext& ctx) {
    if (!undo.contains("move")) return;
    const br::Move m = undo.at("move").get<br::Move>();
    const auto r = runner();
    const br::LinkState b = br::read_link(r, m.bridge);
    if (!b.exists) {
        log(ctx, fmt::format("{} is gone already", m.bridge));
        if (!m.uplink.empty()) (void)run({"ip", "link", "set", "dev", m.uplink, "up"});
        return;
    }
    if (!m.uplink.empty()) {
        const br::LinkState u = br::read_link(r, m.uplink);
        if (u.master == m.bridge) {
            const std::string rev = undo.value("reverse_file", std::string());
            std::string file = rev;
            if (rev.empty() || ::access(rev.c_str(), R_OK) != 0) file = write_batch(step_file(ctx, "bridge-undo.batch"), br::reverse_batch(m));
            auto res = run({"ip", "-force", "-batch", file});
            log(ctx, fmt::format("moved {}'s addresses and routes back from {}{}", m.uplink, m.bridge,
                                 res.exit_code == 0 ? "" : " (some lines failed: " + res.err + ")"));
            return;
        }
        log(ctx, fmt::format("{} is not a port of {} (the watchdog reverted the move, or someone else did)", m.uplink, m.bridge));
    }
    if (m.create_bridge) {
        auto res = run({"ip", "link", "del", "dev", m.bridge});
        if (!res.started || res.exit_code != 0) throw std::runtime_error("ip link del " + m.bridge + ": " + res.err + res.error);
        log(ctx, "removed bridge " + m.bridge);
    }
}

// ---- bridge.nm -----------------------------------------------------------------

std::vector<std::vector<std::string>> argvs(const json& j) {
    std::vector<std::vector<std::string>> out;
    for (const auto& a : j) out.push_back(a.get<std::vector<std::string>>());
    return out;
}

const std::vector<std::string> kNmBus = {"busctl", "call", "org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager",
                                         "org.freedesktop.NetworkManager"};

json nm_prepare(const Step& step, OpContext&) { return {{"undo", step.args.value("undo", json::array())}, {"bridge", step.args.value("bridge", "")}}; }

void nm_apply(const Step& step, OpContext& ctx, json&) {
    const int rollback_s = arg_int(step, "rollback_s", 30);
    const int probe_ms = arg_int(step, "probe_ms", 5000);
    // Checkpoint over all devices; NetworkManager rolls back by itself after
    // rollback_s unless destroyed, deleting the connections made since
    // (flags: DELETE_NEW_CONNECTIONS | DISCONNECT_NEW_DEVICES).
    auto create = kNmBus;
    create.insert(create.end(), {"CheckpointCreate", "aouu", "0", std::to_string(rollback_s), "6"});
    auto c = run(create);
    if (!c.started || c.exit_code != 0) throw std::runtime_error("NetworkManager checkpoint: " + c.err + c.error);
    std::string cp;
    if (auto q = c.out.find('"'); q != std::string::npos) cp = c.out.substr(q + 1, c.out.find('"', q + 1) - q - 1);
    if (cp.empty()) throw std::runtime_error("NetworkManager checkpoint: no path in " + c.out);
    auto rollback = [&](const std::string& why) {
        auto rb = kNmBus;
        rb.insert(rb.end(), {"CheckpointRollback", "o", cp});
        (void)run(rb, 60000);
        throw std::runtime_error(why + "; NetworkManager rolled back to checkpoint " + cp);
    };
    const auto t0 = Clock::now();
    for (const auto& a : argvs(step.args.value("apply", json::array()))) {
        auto r = run(a, 60000);
        if (!r.started || r.exit_code != 0) rollback(quote_argv(a) + " failed: " + r.err + r.error);
    }
    const std::string bridge = step.args.value("bridge", "");
    const std::string target = step.args.value("probe", "");
    const ProbeResult pr = probe(bridge, target, probe_ms);
    if (!pr.ok) rollback("connectivity lost: " + pr.how);
    auto d = kNmBus;
    d.insert(d.end(), {"CheckpointDestroy", "o", cp});
    auto dr = run(d);
    if (!dr.started || dr.exit_code != 0) rollback("could not confirm the checkpoint in time: " + dr.err);
    log(ctx, fmt::format("connectivity kept: {} ({:.0f} ms after the first nmcli command)", pr.how, ms_since(t0)));
}

void nm_undo(const json& undo, OpContext& ctx) {
    for (const auto& a : argvs(undo.value("undo", json::array()))) {
        auto r = run(a, 60000);
        log(ctx, quote_argv(a) + (r.exit_code == 0 ? "" : ": " + r.err));
    }
}

}  // namespace

void register_bridge_ops() {
    register_op("bridge.link", Op{link_prepare, link_apply, link_undo});
    register_op("bridge.nm", Op{nm_prepare, nm_apply, nm_undo});
}

}  // namespace kvmready::fix
