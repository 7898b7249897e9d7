#include "host/link_probe.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/process.hpp"

namespace kvmready::host {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double ms_elapsed_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

uint16_t checksum(const uint8_t* p, size_t n) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons(static_cast<uint16_t>(~sum));
}

bool neighbour_reachable(const std::string& dev, const std::string& target) {
    auto r = run_process({"ip", "-j", "neigh", "show", "to", target, "dev", dev}, 2000);
    if (!r.started || r.exit_code != 0) return false;
    try {
        for (const auto& n : json::parse(r.out))
            for (const auto& s : n.value("state", json::array()))
                if (s == "REACHABLE") return true;
    } catch (const json::exception&) {
    }
    return false;
}

}  // namespace

std::string link_operstate(const std::string& dev) {
    std::ifstream f("/sys/class/net/" + dev + "/operstate");
    std::string s;
    f >> s;
    return s;
}

LinkProbe probe_link(const std::string& dev, const std::string& target, int timeout_ms) {
    const auto t0 = Clock::now();
    LinkProbe res;
    if (target.empty()) {
        while (ms_elapsed_since(t0) < timeout_ms) {
            if (link_operstate(dev) == "up") {
                res = {true, fmt::format("{} is up (no default gateway to probe)", dev), ms_elapsed_since(t0)};
                return res;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        res.how = fmt::format("{} did not come up (no default gateway to probe)", dev);
        res.ms = ms_elapsed_since(t0);
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
    while (ms_elapsed_since(t0) < timeout_ms) {
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
                res = {true, fmt::format("{} answered {} on {}", target, v6 ? "neighbour discovery" : "ARP", dev), ms_elapsed_since(t0)};
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
            res = {true, fmt::format("{} answered ping through {}", target, dev), ms_elapsed_since(t0)};
            break;
        }
    }
    if (fd >= 0) ::close(fd);
    if (!res.ok) {
        res.how = fmt::format("{} did not answer ping, ARP or neighbour discovery through {} within {} ms", target, dev, timeout_ms);
        res.ms = ms_elapsed_since(t0);
    }
    return res;
}

}  // namespace kvmready::host
