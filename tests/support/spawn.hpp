// Running programs from tests: argv vectors through posix_spawn (never a
// shell), bounded in time, killed by PID. One copy for every test file.
#pragma once

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace kvmready::testsupport {

struct Captured {
    bool started = false;
    std::string spawn_error;
    bool timed_out = false;
    int exit_code = -1;  // 128 + signal when killed by one
    std::string out, err;
};

// stdin from /dev/null (or stdin_file when given: `promtool check metrics`
// reads only stdin), stdout and stderr captured; in `cwd` when given; with
// `env` instead of this process's environment when given; SIGKILLed at the
// deadline.
Captured run_captured(const std::vector<std::string>& argv, int timeout_ms, const std::string& cwd = "",
                      const std::vector<std::string>* env = nullptr, const std::string& stdin_file = "");

struct Logged {
    std::string spawn_error;
    bool timed_out = false;
    int exit_code = -1;  // 128 + signal when killed by one
    double seconds = 0;
};

// stdin from /dev/null, stdout and stderr appended to `log`, in a process
// group of its own (QEMU and its helpers), the whole group SIGKILLed at the
// deadline. TMPDIR is replaced when `tmpdir` is not empty.
Logged run_logged(const std::vector<std::string>& argv, const std::filesystem::path& log, std::chrono::seconds timeout,
                  const std::filesystem::path& tmpdir = {});

// A program's output as its non-empty lines.
inline std::vector<std::string> nonempty_lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);)
        if (!l.empty()) out.push_back(l);
    return out;
}

}  // namespace kvmready::testsupport
