// Hosts for the compare tests: real CPUID dumps of the corpus turned into
// kvmready reports by the tool itself (`check --root TREE --cpuid-dump DUMP
// --json`), as a customer's dump would be.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/spawn.hpp"

namespace kvmready::comparetest {

inline const std::string kBinary = KVMREADY_BINARY;
inline const std::filesystem::path kCorpus = KVMREADY_CORPUS_DIR;
inline const std::filesystem::path kFixtures = KVMREADY_FIXTURES_DIR;

// Named dumps of the corpus (aida64-instlatx64/instlatx64__VENDOR__FILE).
struct CorpusCpu {
    const char* key;
    const char* file;
};
inline const std::vector<CorpusCpu>& corpus_cpus() {
    static const std::vector<CorpusCpu> cpus = {
        {"haswell", "GenuineIntel__GenuineIntel00306F2_HaswellEP_00_CPUID.txt"},      // Xeon E5-2630 v3
        {"broadwell", "GenuineIntel__GenuineIntel00406F1_BroadwellE_02_CPUID.txt"},   // Xeon E5-2620 v4
        {"skylake", "GenuineIntel__GenuineIntel0050654_SkylakeXeon_CPUID.txt"},       // Xeon Gold 6154
        {"cascadelake", "GenuineIntel__GenuineIntel0050657_CascadeLakeSP_CPUID1.txt"},  // Xeon Gold 5215
        {"zen1", "AuthenticAMD__AuthenticAMD0800F12_K17_Zen_CPUID4.txt"},
        {"zen2", "AuthenticAMD__AuthenticAMD0870F10_K17_Matisse_CPUID3.txt"},
        {"zen3", "AuthenticAMD__AuthenticAMD0A20F12_K19_Vermeer_01_CPUID.txt"},
        {"zen4", "AuthenticAMD__AuthenticAMD0A60F12_K19_Raphael_10_CPUID.txt"},
    };
    return cpus;
}

inline std::filesystem::path corpus_dump(const std::string& key) {
    for (const auto& c : corpus_cpus())
        if (key == c.key) return kCorpus / "aida64-instlatx64" / (std::string("instlatx64__") + c.file);
    ADD_FAILURE() << "no corpus CPU " << key;
    return {};
}

struct ToolRun {
    int exit_code = -1;
    std::string out, err;
};

inline ToolRun run_tool(const std::vector<std::string>& args, int timeout_ms = 60000) {
    std::vector<std::string> argv{kBinary};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto c = testsupport::run_captured(argv, timeout_ms);
    if (!c.started) ADD_FAILURE() << c.spawn_error;
    if (c.timed_out) ADD_FAILURE() << "kvmready " << args.at(0) << " did not finish";
    return {c.exit_code, c.out, c.err};
}

// The JSON report of the recorded tree `tree` with CPU `key` of the corpus,
// written to dir/key.json; returns its path.
inline std::string report_of(const std::string& key, const std::filesystem::path& dir, const std::string& tree = "intel-vtx") {
    const auto r = run_tool({"check", "--root", (kFixtures / tree).string(), "--cpuid-dump", corpus_dump(key).string(), "--json"});
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1 || r.exit_code == 3) << r.err;
    const auto path = dir / (key + ".json");
    std::ofstream(path) << r.out;
    return path.string();
}

inline nlohmann::json parse(const std::string& s) {
    auto j = nlohmann::json::parse(s, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << s.substr(0, 400);
    return j;
}

}  // namespace kvmready::comparetest
