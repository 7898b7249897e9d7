// `kvmready fleet` over 1,000 host reports (the target: a report in
// at most 2 s): reading and validating the JSON files, building the fleet,
// and rendering the HTML page and the JSON. The reports are derived from the
// recorded fixtures' golden reports (tests/golden/intel_vtx.json, a ready
// Intel host, and pvm_host.json), each with its own hostname, host id, run
// time and, for a third of them, a failing check and a not-ready verdict.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "fleet/load.hpp"
#include "fleet/model.hpp"
#include "fleet/render.hpp"
#include "util/utf8.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json golden(const char* name) {
    std::ifstream in(fs::path(KVMREADY_SOURCE_DIR) / "tests/golden" / name);
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
}

// A directory of n synthetic reports, made once per process.
const std::string& reports_dir(int n) {
    static std::map<int, std::string> made;
    if (auto it = made.find(n); it != made.end()) return it->second;
    const fs::path dir = fs::temp_directory_path() / fmt::format("kvmready-fleet-bench-{}-{}", ::getpid(), n);
    fs::create_directories(dir);
    const json bases[] = {golden("intel_vtx.json"), golden("pvm_host.json")};
    for (int i = 0; i < n; ++i) {
        json r = bases[i % 2];
        r["host"]["hostname"] = fmt::format("kvm{:04d}.dc{}.example.org", i, i % 7);
        r["host"]["id"] = fmt::format("{:016x}", 0x9e3779b97f4a7c15ull * static_cast<unsigned>(i + 1));
        r["run"] = {{"started", fmt::format("2026-12-07T{:02d}:{:02d}:00Z", i % 24, i % 60)}, {"duration_ms", 6}, {"recorded_at", nullptr}};
        if (i % 3 == 0) {
            auto& c = r["checks"][static_cast<size_t>(i / 3) % r["checks"].size()];
            c["status"] = "fail";
            r["verdict"] = "not_ready";
        }
        std::ofstream(dir / fmt::format("host{:04d}.json", i)) << r.dump(2);
    }
    return made[n] = dir.string();
}

void BM_FleetReport(benchmark::State& st) {
    const std::string& dir = reports_dir(static_cast<int>(st.range(0)));
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    size_t bytes = 0;
    for (auto _ : st) {
        const auto reports = kvmready::fleet::load_reports({dir});
        const auto f = kvmready::fleet::build_fleet(reports, std::vector<std::string>{"kvm0001", "absent"}, now, 86400);
        const std::string html = kvmready::fleet::render_html(f);
        const std::string js = kvmready::util::dump_json(kvmready::fleet::render_fleet_json(f), 2);
        bytes = html.size() + js.size();
        benchmark::DoNotOptimize(bytes);
    }
    st.counters["output_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_FleetReport)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
