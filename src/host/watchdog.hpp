// A revert watchdog: a forked child in its own session that runs one program
// (argv, never a shell) unless this process confirms in time. It reverts at
// once when this process dies (its end of the pipe closes), so a SIGKILL in
// the middle of a risky change (moving an uplink's addresses to a bridge)
// leaves the host as it was. Used by the net.bridge fix (fixes/ops_bridge.cpp).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace kvmready::host {

enum WatchdogExit { kWatchdogConfirmed = 0, kWatchdogRevertedOk = 10, kWatchdogRevertedWithErrors = 11 };

struct Watchdog {
    pid_t pid = -1;
    int fd = -1;  // write end: 'c' confirm, 'r' revert now; closed = revert now
};

// Forks the watchdog; it waits up to deadline_ms for a verdict, then runs
// revert_argv (argv[0] an absolute path) with its stderr in log_path.
// Throws std::runtime_error when it cannot be started.
Watchdog start_watchdog(const std::vector<std::string>& revert_argv, int deadline_ms, const std::string& log_path);

// Sends the verdict ('c' or 'r') and waits for the watchdog's exit status
// (a WatchdogExit, -1 when it died otherwise).
int finish_watchdog(Watchdog& w, char verdict);

}  // namespace kvmready::host
