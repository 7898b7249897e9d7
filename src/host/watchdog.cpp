#include "host/watchdog.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace kvmready::host {

namespace {

void put(int fd, const char* s) {
    if (fd >= 0) (void)!::write(fd, s, std::strlen(s));
}

}  // namespace

// Forks the watchdog. After fork() the child calls only async-signal-safe
// functions (it may be forked from a threaded process): everything it
// needs is prepared here.
Watchdog start_watchdog(const std::vector<std::string>& revert_argv, int deadline_ms, const std::string& log_path) {
    std::vector<const char*> argv;
    for (const auto& a : revert_argv) argv.push_back(a.c_str());
    argv.push_back(nullptr);
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
                ::_exit(kWatchdogConfirmed);
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
            ::execv(argv[0], const_cast<char* const*>(argv.data()));
            ::_exit(127);
        }
        int status = 0;
        while (child > 0 && ::waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        const bool ok = child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        put(lg, ok ? "watchdog: reverted\n" : "watchdog: reverted (some lines of the reverse batch failed)\n");
        ::_exit(ok ? kWatchdogRevertedOk : kWatchdogRevertedWithErrors);
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

}  // namespace kvmready::host
