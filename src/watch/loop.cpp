#include "watch/loop.hpp"

#include <algorithm>

#include "watch/batch.hpp"

namespace kvmready::watch {

namespace {
int ms_until(Clock::time_point t, Clock::time_point now) {
    if (t <= now) return 0;
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(t - now).count());
}
}  // namespace

LoopStats run_loop(host::UeventSource& events, host::SignalFd& signals, Judge& judge, const LoopConfig& cfg) {
    LoopStats stats;
    Batch batch(cfg.settle, cfg.max_delay);
    judge.run(everything(), [](const std::string&) { return std::string("start"); });
    auto next_full = Clock::now() + cfg.interval;
    const std::vector<int> fds = {signals.fd(), events.fd()};
    std::vector<bool> ready;
    for (;;) {
        auto now = Clock::now();
        int timeout = ms_until(next_full, now);
        if (batch.pending()) timeout = std::min(timeout, batch.due_in(now));
        if (host::wait_readable(fds, timeout, ready) > 0) {
            if (ready[0])
                if (const int sig = signals.take()) {
                    stats.signal = sig;
                    return stats;
                }
            if (ready[1]) {
                bool lost = false;
                // Bounded per wake-up, so a flood cannot hold off a signal.
                const auto got = events.read_pending(1024, &lost);
                now = Clock::now();
                stats.events += got.size();
                for (const auto& e : got) {
                    const Impact impact = impact_of(e);
                    if (!impact.relevant()) continue;
                    ++stats.relevant;
                    batch.add(impact, host::describe(e), now);
                }
                if (lost) {
                    ++stats.lost_bursts;
                    batch.add(everything(), "lost uevents (receive buffer overflow)", now);
                }
            }
        }
        now = Clock::now();
        if (now >= next_full) {
            // The full run covers whatever was pending.
            judge.run(everything(), [&batch](const std::string& cat) {
                return batch.pending() ? batch.cause_for(cat) + " (periodic full run)" : std::string("periodic full run");
            });
            batch.clear();
            next_full = Clock::now() + cfg.interval;
        } else if (batch.pending() && batch.due_in(now) == 0) {
            // A batch that lost events re-reads everything (its impact says so).
            Impact impact = batch.impact();
            judge.run(impact, [&batch](const std::string& cat) { return batch.cause_for(cat); });
            batch.clear();
        }
    }
}

}  // namespace kvmready::watch
