// Debouncing: the events of one burst (`ip link add` raises several, a
// container start dozens) are coalesced into one re-judging, due when no
// event came for `settle` or at the latest `max_delay` after the first, so
// a steady stream still re-judges regularly. Pure: the loop passes the
// time in and turns due_in() into its poll timeout; nothing sleeps.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "watch/impact.hpp"

namespace kvmready::watch {

using Clock = std::chrono::steady_clock;

class Batch {
public:
    Batch(std::chrono::milliseconds settle, std::chrono::milliseconds max_delay) : settle_(settle), max_delay_(max_delay) {}

    // An event (its impact and how logs name it) arrived at `now`.
    void add(const Impact& impact, const std::string& cause, Clock::time_point now);
    [[nodiscard]] bool pending() const { return events_ > 0; }
    // Milliseconds until due (0: due now); -1 when nothing is pending.
    [[nodiscard]] int due_in(Clock::time_point now) const;
    [[nodiscard]] const Impact& impact() const { return impact_; }
    [[nodiscard]] size_t events() const { return events_; }
    // "net add br0", "net add br0, net add tap0 and 3 more events": the
    // events of the batch that can change a check of `category` (all of
    // them when none names it).
    [[nodiscard]] std::string cause_for(const std::string& category) const;
    void clear();

private:
    struct Causes {
        std::vector<std::string> first;  // the first few, for the log
        size_t count = 0;
    };
    static constexpr size_t kNamed = 3;
    static std::string words(const Causes& c);
    std::chrono::milliseconds settle_, max_delay_;
    Impact impact_;
    size_t events_ = 0;
    Clock::time_point first_{}, last_{};
    Causes all_;
    std::map<std::string, Causes> by_category_;  // bounded by the registry's categories
};

}  // namespace kvmready::watch
