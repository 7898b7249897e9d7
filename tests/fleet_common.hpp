// Shared by the fleet tests that run the real binary: host reports made by
// `kvmready check --root` (and bundles by `kvmready report --root`) from
// copies of the recorded fixture trees, each given its own machine-id.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/background.hpp"
#include "support/spawn.hpp"

namespace kvmready::fleettest {

namespace fs = std::filesystem;

inline const std::string kBinary = KVMREADY_BINARY;
inline const std::string kFixtures = KVMREADY_FIXTURES_DIR;

inline testsupport::Captured run_kvmready(const std::vector<std::string>& args, const std::string& cwd = "") {
    std::vector<std::string> argv{kBinary};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::vector<std::string> env = testsupport::c_locale_env();
    auto c = testsupport::run_captured(argv, 120000, cwd, &env);
    if (!c.started) ADD_FAILURE() << c.spawn_error;
    if (c.timed_out) ADD_FAILURE() << "kvmready did not finish within 120 s";
    return c;
}

inline std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void spit(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary | std::ios::trunc) << text; }

// A copy of fixture `name` under dir/trees/as, with `machine_id` as its
// /etc/machine-id ("" for none): the tree path.
inline fs::path tree_copy(const fs::path& dir, const std::string& name, const std::string& as, const std::string& machine_id) {
    const fs::path t = dir / "trees" / as;
    fs::create_directories(t.parent_path());
    fs::copy(fs::path(kFixtures) / name, t, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    if (!machine_id.empty()) {
        fs::create_directories(t / "etc");
        spit(t / "etc/machine-id", machine_id + "\n");
    }
    return t;
}

// `check --root TREE --json` written to out; the parsed report.
inline nlohmann::json json_report(const fs::path& tree, const fs::path& out) {
    const auto c = run_kvmready({"check", "--root", tree.string(), "--json"});
    EXPECT_LT(c.exit_code, 64) << c.err;
    spit(out, c.out);
    return nlohmann::json::parse(c.out);
}

struct FleetHostSpec {
    const char* fixture;
    const char* as;
    const char* machine_id;
};

// Four recorded hosts that differ (ready, no KVM module, VMX locked off by
// the firmware, AMD nested) and a clone of the first with the same hostname
// and another machine-id.
inline const std::vector<FleetHostSpec>& fleet_hosts() {
    static const std::vector<FleetHostSpec> v = {
        {"intel-vtx", "intel-vtx", "11111111111111111111111111111111"},
        {"intel-vtx", "intel-vtx-clone", "22222222222222222222222222222222"},
        {"no-kvm-module", "no-kvm-module", "33333333333333333333333333333333"},
        {"vmx-locked", "vmx-locked", "44444444444444444444444444444444"},
        {"amd-nested", "amd-nested", "55555555555555555555555555555555"},
    };
    return v;
}

}  // namespace kvmready::fleettest
