#include "fresh_process.hpp"

#include <chrono>
#include <cstdio>
#include <map>
#include <string_view>

#include "host/process.hpp"

namespace kvmready::bench {

namespace {

std::map<std::string, FreshTask>& tasks() {
    static std::map<std::string, FreshTask> m;
    return m;
}

}  // namespace

RegisterFresh::RegisterFresh(const char* name, FreshTask task) { tasks()[name] = task; }

int fresh_child_main(int argc, char** argv) {
    if (argc < 3) return 64;
    const auto it = tasks().find(argv[2]);
    if (it == tasks().end()) {
        std::fprintf(stderr, "no fresh-process task %s\n", argv[2]);
        return 64;
    }
    const std::vector<std::string> args(argv + 3, argv + argc);
    const double s = it->second(args);
    if (s < 0) return 1;
    std::printf("%.9f\n", s);
    return 0;
}

void measure_fresh(benchmark::State& st, const std::string& task, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/proc/self/exe", kFreshFlag, task};
    argv.insert(argv.end(), args.begin(), args.end());
    double process_s = 0;
    for (auto _ : st) {
        const auto t0 = std::chrono::steady_clock::now();
        const host::RunResult r = host::run_process(argv, 60000);
        process_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!r.started || r.exit_code != 0) {
            st.SkipWithError(("fresh process " + task + " failed: " + r.error + r.err).c_str());
            return;
        }
        st.SetIterationTime(std::stod(r.out));
    }
    st.counters["process_ms"] = benchmark::Counter(process_s * 1e3 / static_cast<double>(st.iterations()));
}

}  // namespace kvmready::bench
