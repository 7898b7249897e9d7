#pragma once
// Small pieces every smoke stage needs: unique names, nonces and MACs from
// the kernel's RNG, and millisecond stopwatches.
#include <chrono>
#include <cstddef>
#include <string>

namespace kvmready::smoke {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// The last `n` bytes of `s` (a guest's serial output, a log) for messages.
inline std::string tail_of(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(s.size() - n); }

// `bytes` random bytes as lowercase hex (getrandom; throws std::runtime_error).
std::string random_hex(size_t bytes);

}  // namespace kvmready::smoke
