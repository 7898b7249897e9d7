// Running helper programs (qemu --version, iptables -S, ip -j addr): argv
// vectors only, never a shell string; bounded in time.
#pragma once

#include <sys/types.h>

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

// A started child: stdout and stderr are the read ends of pipes (O_CLOEXEC),
// the caller reads and closes them and reaps pid.
struct Spawned {
    pid_t pid = -1;     // -1: not started; error_number says why
    int out = -1, err = -1;
    int error_number = 0;
    std::string error;  // "pipe: ..." or "ARGV0: strerror" of the spawn
};

// Spawns argv[0] (searched in PATH), stdin from /dev/null, in its own process
// group (a timeout kills it and its children), with no signal blocked and
// SIGINT, SIGTERM and SIGPIPE at their default action whatever this process
// does with them.
Spawned spawn_piped(const std::vector<std::string>& argv);

// A spawned child the caller watches itself (QEMU with its console on
// stdout): owns the pipes; killed (its whole process group) and reaped
// when it goes out of scope.
class Child {
public:
    explicit Child(const Spawned& sp) : pid_(sp.pid), out_(sp.out), err_(sp.err) {}
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    [[nodiscard]] int out() const { return out_; }
    [[nodiscard]] int err() const { return err_; }
    // Reaped now or earlier (no waiting).
    bool try_reap();
    void kill_and_reap();
    [[nodiscard]] bool reaped() const { return reaped_; }
    // The wait status once reaped.
    [[nodiscard]] int status() const { return status_; }

private:
    pid_t pid_ = -1;
    int out_ = -1, err_ = -1;
    int status_ = 0;
    bool reaped_ = false;
};

// spawn_piped, then both outputs read until exit or the deadline.
RunResult run_process(const std::vector<std::string>& argv, int timeout_ms);

}  // namespace kvmready::host
