// In-process cost of each stage of `kvmready check`, so a regression shows
// where it is: probing files, the /dev/kvm ioctl test, CPUID, judging, output.
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "core/probe.hpp"
#include "core/runner.hpp"
#include "output/output.hpp"

using namespace kvmready;

static void BM_ProbeWithoutKvmTest(benchmark::State& st) {
    auto h = host::make_live_host();
    ProbeOptions o;
    o.kvm_api = false;
    for (auto _ : st) benchmark::DoNotOptimize(probe(*h, o));
}
BENCHMARK(BM_ProbeWithoutKvmTest)->Unit(benchmark::kMicrosecond);

static void BM_KvmIoctlTest(benchmark::State& st) {
    for (auto _ : st) benchmark::DoNotOptimize(host::run_kvm_probe("/dev/kvm"));
}
BENCHMARK(BM_KvmIoctlTest)->Unit(benchmark::kMicrosecond);

static void BM_LiveCpuid(benchmark::State& st) {
    auto h = host::make_live_host();
    for (auto _ : st) benchmark::DoNotOptimize(h->cpuid());
}
BENCHMARK(BM_LiveCpuid)->Unit(benchmark::kMicrosecond);

static void BM_RunChecksAndRender(benchmark::State& st) {
    auto h = host::make_live_host();
    const Facts f = probe(*h, ProbeOptions{});
    for (auto _ : st) {
        Report r = run_checks(f, {});
        benchmark::DoNotOptimize(output::render_json(r, f).dump());
    }
}
BENCHMARK(BM_RunChecksAndRender)->Unit(benchmark::kMicrosecond);
