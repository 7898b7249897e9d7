// The benchmarks' main: Google Benchmark's, unless this process was started
// as a fresh child for one task (fresh_process.hpp).
#include <benchmark/benchmark.h>

#include <string_view>

#include "fresh_process.hpp"

int main(int argc, char** argv) {
    if (argc >= 2 && std::string_view(argv[1]) == kvmready::bench::kFreshFlag)
        return kvmready::bench::fresh_child_main(argc, argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
