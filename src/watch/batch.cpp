#include "watch/batch.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace kvmready::watch {

namespace {
void note(std::vector<std::string>& first, size_t& count, const std::string& cause, size_t named) {
    ++count;
    // Repeats of one event (add and remove of the same name) are named once.
    if (first.size() < named && std::find(first.begin(), first.end(), cause) == first.end()) first.push_back(cause);
}
}  // namespace

void Batch::add(const Impact& impact, const std::string& cause, Clock::time_point now) {
    if (events_ == 0) first_ = now;
    last_ = now;
    ++events_;
    impact_.merge(impact);
    note(all_.first, all_.count, cause, kNamed);
    for (const auto& c : impact.categories) {
        auto& k = by_category_[c];
        note(k.first, k.count, cause, kNamed);
    }
}

int Batch::due_in(Clock::time_point now) const {
    if (events_ == 0) return -1;
    const auto due = std::min(last_ + settle_, first_ + max_delay_);
    if (due <= now) return 0;
    // Rounded up: a poll that wakes a hair early would spin once more.
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(due - now).count());
}

std::string Batch::words(const Causes& c) {
    std::string s;
    for (size_t i = 0; i < c.first.size(); ++i) s += (i == 0 ? "" : ", ") + c.first[i];
    const size_t more = c.count - std::min(c.count, c.first.size());
    if (more > 0) s += fmt::format(" and {} more event{}", more, more == 1 ? "" : "s");
    return s;
}

std::string Batch::cause_for(const std::string& category) const {
    const auto it = by_category_.find(category);
    return words(it == by_category_.end() ? all_ : it->second);
}

void Batch::clear() {
    impact_ = {};
    events_ = 0;
    all_ = {};
    by_category_.clear();
}

}  // namespace kvmready::watch
