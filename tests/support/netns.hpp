// A network namespace a test owns (`ip netns add`), deleted with its
// interfaces when the object goes. Commands run in it through `ip netns
// exec`, which also remounts /sys for the namespace. Header-only.
#pragma once

#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "host/process.hpp"

namespace kvmready::testsupport {

class TestNetns {
public:
    explicit TestNetns(const std::string& tag) {
        static std::atomic<int> counter{0};
        name_ = fmt::format("kvrw-{}-{}-{}", tag, ::getpid(), counter++);
        const auto r = host::run_process({"ip", "netns", "add", name_}, 15000);
        ok_ = r.started && !r.timed_out && r.exit_code == 0;
        error_ = r.err + r.error;
    }
    ~TestNetns() {
        if (ok_) (void)host::run_process({"ip", "netns", "del", name_}, 15000);
    }
    TestNetns(const TestNetns&) = delete;
    TestNetns& operator=(const TestNetns&) = delete;

    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] const std::string& error() const { return error_; }
    [[nodiscard]] const std::string& name() const { return name_; }
    // argv prefixed to run a program in the namespace.
    [[nodiscard]] std::vector<std::string> exec_argv(std::vector<std::string> argv) const {
        argv.insert(argv.begin(), {"ip", "netns", "exec", name_});
        return argv;
    }
    // "" when the command exited 0, else what went wrong.
    [[nodiscard]] std::string run(const std::vector<std::string>& argv, int timeout_ms = 15000) const {
        const auto r = host::run_process(exec_argv(argv), timeout_ms);
        if (r.started && !r.timed_out && r.exit_code == 0) return "";
        return fmt::format("{} -> exit {}{}: {}{}", fmt::join(argv, " "), r.exit_code, r.timed_out ? " (timed out)" : "", r.err, r.error);
    }

private:
    std::string name_;
    bool ok_ = false;
    std::string error_;
};

}  // namespace kvmready::testsupport
