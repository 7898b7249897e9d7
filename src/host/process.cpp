#include "host/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

extern char** environ;

namespace kvmready::host {

Spawned spawn_piped(const std::vector<std::string>& argv) {
    Spawned sp;
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) < 0) {
        sp.error_number = errno;
        sp.error = std::string("pipe: ") + std::strerror(errno);
        return sp;
    }
    if (pipe2(err_pipe, O_CLOEXEC) < 0) {
        sp.error_number = errno;
        sp.error = std::string("pipe: ") + std::strerror(errno);
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        return sp;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (rc != 0) {
        sp.error_number = rc;
        sp.error = argv[0] + ": " + std::strerror(rc);
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        return sp;
    }
    sp.pid = pid;
    sp.out = out_pipe[0];
    sp.err = err_pipe[0];
    return sp;
}

Child::~Child() {
    kill_and_reap();
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
}

bool Child::try_reap() {
    if (pid_ <= 0 || reaped_) return reaped_;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
}

void Child::kill_and_reap() {
    if (pid_ <= 0 || reaped_) return;
    ::kill(-pid_, SIGKILL);
    while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
}

RunResult run_process(const std::vector<std::string>& argv, int timeout_ms) {
    RunResult r;
    if (argv.empty()) {
        r.error = "empty command";
        return r;
    }
    const Spawned sp = spawn_piped(argv);
    if (sp.pid < 0) {
        r.error = sp.error;
        return r;
    }
    const pid_t pid = sp.pid;
    r.started = true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::array<pollfd, 2> fds = {pollfd{sp.out, POLLIN, 0}, pollfd{sp.err, POLLIN, 0}};
    int open_fds = 2;
    char buf[8192];
    while (open_fds > 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) {
            r.timed_out = true;
            break;
        }
        int n = ::poll(fds.data(), fds.size(), static_cast<int>(left));
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& p : fds)
        if (p.fd >= 0) ::close(p.fd);
    if (r.timed_out) ::kill(-pid, SIGKILL);
    int status = 0;
    // Output closed: the child is exiting; bound the wait all the same.
    for (;;) {
        pid_t w = ::waitpid(pid, &status, r.timed_out ? 0 : WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) break;
        if (w == 0) {
            if (std::chrono::steady_clock::now() >= deadline) {
                r.timed_out = true;
                ::kill(-pid, SIGKILL);
                continue;
            }
            ::usleep(1000);
        }
    }
    if (WIFEXITED(status) && !r.timed_out) r.exit_code = WEXITSTATUS(status);
    return r;
}

}  // namespace kvmready::host
