#include "host/signal_fd.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <system_error>

namespace kvmready::host {

namespace {
sigset_t set_of(const std::vector<int>& signals) {
    sigset_t s;
    sigemptyset(&s);
    for (int sig : signals) sigaddset(&s, sig);
    return s;
}
}  // namespace

SignalFd::SignalFd(const std::vector<int>& signals) : signals_(signals) {
    const sigset_t s = set_of(signals);
    // Blocked first, so a signal arriving between the two calls waits in the fd.
    if (const int e = ::pthread_sigmask(SIG_BLOCK, &s, nullptr); e != 0) throw std::system_error(e, std::generic_category(), "sigprocmask");
    fd_.reset(::signalfd(-1, &s, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_.ok()) {
        const int e = errno;
        ::pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
        throw std::system_error(e, std::generic_category(), "signalfd");
    }
}

SignalFd::~SignalFd() {
    const sigset_t s = set_of(signals_);
    fd_.reset();
    ::pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
}

int SignalFd::take() {
    signalfd_siginfo si{};
    const ssize_t n = ::read(fd_.get(), &si, sizeof si);
    return n == static_cast<ssize_t>(sizeof si) ? static_cast<int>(si.ssi_signo) : 0;
}

int wait_readable(const std::vector<int>& fds, int timeout_ms, std::vector<bool>& ready) {
    std::vector<pollfd> p;
    p.reserve(fds.size());
    for (int fd : fds) p.push_back({fd, POLLIN, 0});
    ready.assign(fds.size(), false);
    const int n = ::poll(p.data(), p.size(), timeout_ms);
    if (n < 0) return -1;
    for (size_t i = 0; i < p.size(); ++i) ready[i] = (p[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
    return n;
}

ProcessUsage process_usage() {
    ProcessUsage u;
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0) u.rss_kib = std::stol(line.substr(6));
    rusage r{};
    if (::getrusage(RUSAGE_SELF, &r) == 0)
        u.cpu_seconds = static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
    return u;
}

}  // namespace kvmready::host
