// Termination signals as a readable descriptor (signalfd), for a poll loop
// that must end cleanly between two steps rather than in the middle of one
// (`kvmready watch` writing its outputs). The signals are blocked while the
// object lives; programs spawned meanwhile get an empty mask back
// (host::spawn_piped and run_process reset it), so they still die of SIGTERM.
#pragma once

#include <vector>

#include "host/unique_fd.hpp"

namespace kvmready::host {

class SignalFd {
public:
    // Throws std::system_error when signalfd cannot be made.
    explicit SignalFd(const std::vector<int>& signals);
    ~SignalFd();
    SignalFd(const SignalFd&) = delete;
    SignalFd& operator=(const SignalFd&) = delete;

    [[nodiscard]] int fd() const { return fd_.get(); }
    // The signal waiting, or 0 when none (non-blocking).
    int take();

private:
    UniqueFd fd_;
    std::vector<int> signals_;
};

// poll(2) for readability: fds[i] readable sets ready[i]. Returns the number
// ready, 0 on timeout (timeout_ms -1: none), -1 on EINTR.
int wait_readable(const std::vector<int>& fds, int timeout_ms, std::vector<bool>& ready);

// This process's resident set (VmRSS, KiB) and CPU time used (user+system,
// seconds): watch reports them when it stops, so a long run shows it stayed flat.
struct ProcessUsage {
    long rss_kib = -1;
    double cpu_seconds = -1;
};
ProcessUsage process_usage();

}  // namespace kvmready::host
