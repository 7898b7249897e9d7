// One-time costs (loading libxml2, libvirt.so) show only in a process that
// has not paid them yet, so these benchmarks re-run this binary: the child
// does one named task (the measured section timed by itself, after its inputs
// are read) and prints the seconds; the parent reports that as manual time,
// with the child's whole lifetime (exec to exit) as the counter process_ms.
#pragma once

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace kvmready::bench {

// argv[1] of a child run.
inline constexpr const char* kFreshFlag = "--kvmready-fresh-process";

// A task a child can run: seconds of its measured section, or < 0 after
// printing why to stderr.
using FreshTask = double (*)(const std::vector<std::string>& args);

// Registers a task by name (from a namespace-scope static initialiser).
struct RegisterFresh {
    RegisterFresh(const char* name, FreshTask task);
};

// main() of a child: argv = {self, kFreshFlag, task, args...}.
int fresh_child_main(int argc, char** argv);

// Runs `task` with `args` in a new process once per iteration of `st`
// (which must use UseManualTime()); skips the benchmark with the child's
// stderr when it fails.
void measure_fresh(benchmark::State& st, const std::string& task, const std::vector<std::string>& args);

}  // namespace kvmready::bench
