// The watch loop: one poll over the termination signals and the uevent
// source, whose timeout is whichever comes first of the pending batch's due
// time and the next periodic full run. Nothing sleeps; a signal ends the
// loop between two runs, never inside one, so no output is left half-made.
#pragma once

#include <chrono>
#include <cstddef>
#include <ostream>

#include "host/signal_fd.hpp"
#include "host/udev_monitor.hpp"
#include "watch/judge.hpp"

namespace kvmready::watch {

struct LoopConfig {
    std::chrono::milliseconds settle{100};      // quiet time that ends a burst
    std::chrono::milliseconds max_delay{500};   // a steady stream still re-judges this often
    std::chrono::milliseconds interval{300000}; // periodic full run
};

struct LoopStats {
    int signal = 0;                 // the signal that ended the loop
    size_t events = 0;              // uevents read
    size_t relevant = 0;            // of them, those that can change a check
    size_t lost_bursts = 0;         // times the kernel dropped events (full re-run)
};

// Runs until a signal arrives on `signals`; the first (full) run first.
LoopStats run_loop(host::UeventSource& events, host::SignalFd& signals, Judge& judge, const LoopConfig& cfg);

}  // namespace kvmready::watch
