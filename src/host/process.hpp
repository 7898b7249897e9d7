// Running helper programs (qemu --version, iptables -S, ip -j addr): argv
// vectors only, never a shell string; bounded in time.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::host {

struct RunResult {
    bool started = false;      // false: not found / not executable / not recorded
    int exit_code = -1;        // -1 when killed by a signal or not started
    bool timed_out = false;
    std::string out;
    std::string err;
    std::string error;         // why it did not start
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RunResult, started, exit_code, timed_out, out, err, error)

// Spawns argv[0] (searched in PATH), stdin from /dev/null, in its own process
// group so a timeout kills it and its children.
RunResult run_process(const std::vector<std::string>& argv, int timeout_ms);

}  // namespace kvmready::host
