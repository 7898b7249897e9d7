// The device enumeration `check devices` runs on every live host: through
// libudev (what kvmready uses where a udev daemon keeps a database) against
// the direct sysfs read it uses where none does (src/host/udev_enum.cpp).
// Both enumerate the same PCI, block and network devices of this machine;
// tests/devices_live_test.cpp holds the two equal.
#include <benchmark/benchmark.h>

#include "host/udev_enum.hpp"

namespace {

using namespace kvmready;

void BM_EnumerateDevicesLibudev(benchmark::State& st) {
    size_t n = 0;
    for (auto _ : st) n = host::enumerate_udev().devices.size();
    st.counters["devices"] = static_cast<double>(n);
}
BENCHMARK(BM_EnumerateDevicesLibudev)->Unit(benchmark::kMicrosecond);

void BM_EnumerateDevicesSysfs(benchmark::State& st) {
    size_t n = 0;
    for (auto _ : st) n = host::enumerate_sysfs_live().devices.size();
    st.counters["devices"] = static_cast<double>(n);
}
BENCHMARK(BM_EnumerateDevicesSysfs)->Unit(benchmark::kMicrosecond);

}  // namespace
