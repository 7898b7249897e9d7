// kvmready compare and --baseline on hosts built from real CPUID dumps of the
// corpus (Intel Haswell to Cascade Lake, AMD Zen 1 to 4): the report's cpu
// section, the pairwise verdicts and reasons, the baseline, the exit codes.
#include <fstream>
#include <algorithm>
#include <map>
#include <memory>

#include "compare_support.hpp"
#include "fleet/cpu_models.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace kvmready::comparetest;
using kvmready::testsupport::TempDir;

class CompareCorpus : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = std::make_unique<TempDir>("kvmready-compare");
        for (const auto& c : corpus_cpus()) reports_[c.key] = report_of(c.key, dir_->path);
    }
    static void TearDownTestSuite() { dir_.reset(); }
    static const std::string& report(const std::string& key) { return reports_.at(key); }
    static nlohmann::json cpu(const std::string& key) {
        std::ifstream in(report(key));
        return nlohmann::json::parse(in).at("cpu");
    }
    static nlohmann::json compare(const std::string& a, const std::string& b, int& exit_code) {
        const auto r = run_tool({"compare", report(a), report(b), "--format", "json"});
        exit_code = r.exit_code;
        EXPECT_TRUE(r.err.empty()) << r.err;
        return parse(r.out);
    }
    static inline std::unique_ptr<TempDir> dir_;
    static inline std::map<std::string, std::string> reports_;
};

std::vector<std::string> strings(const nlohmann::json& a) { return a.get<std::vector<std::string>>(); }

TEST_F(CompareCorpus, TheCpuMapIsLibvirtsAndDecodesTheDumps) {
    const auto& map = kvmready::fleet::cpu_map();
    ASSERT_TRUE(map.error.empty()) << map.error;
    EXPECT_NE(map.model("Skylake-Server"), nullptr);
    EXPECT_NE(map.model("EPYC"), nullptr);
    ASSERT_NE(map.feature("avx2"), nullptr);
    EXPECT_EQ(map.feature("avx2")->leaf, 7u);
    EXPECT_EQ(map.feature("pni")->qemu_name, "sse3");
}

// A report made from a dump has the CPU's own features only, and says why.
TEST_F(CompareCorpus, ADumpReportHasTheCpusFeaturesAndNoGuestFeatures) {
    for (const auto& c : corpus_cpus()) {
        SCOPED_TRACE(c.key);
        const auto j = cpu(c.key);
        EXPECT_TRUE(j.at("guest_features").is_null());
        EXPECT_NE(j.at("guest_features_reason").get<std::string>().find("CPUID dump"), std::string::npos);
        EXPECT_TRUE(j.at("host_model").is_null());
        EXPECT_GT(j.at("cpu_features").at("count").get<int>(), 40);
        EXPECT_EQ(j.at("source").get<std::string>().rfind("dump:", 0), 0u);
    }
}

// Levels and models follow the generations: AVX-512 Xeons are v4, Haswell
// and the Zens before 4 are v3; each decodes to its own libvirt model family.
TEST_F(CompareCorpus, LevelsAndClosestModelsFollowTheGenerations) {
    const std::map<std::string, std::pair<std::string, std::string>> want = {
        {"haswell", {"x86-64-v3", "Haswell"}},     {"broadwell", {"x86-64-v3", "Broadwell"}},
        {"skylake", {"x86-64-v4", "Skylake-Server"}}, {"cascadelake", {"x86-64-v4", "C"}},  // Cascadelake-Server or Cooperlake (same signature, fewest changes)
        {"zen1", {"x86-64-v3", "EPYC"}},           {"zen2", {"x86-64-v3", "EPYC"}},
        {"zen3", {"x86-64-v3", "EPYC"}},           {"zen4", {"x86-64-v4", "EPYC"}},
    };
    for (const auto& [key, w] : want) {
        SCOPED_TRACE(key);
        const auto f = cpu(key).at("cpu_features");
        EXPECT_EQ(f.at("x86_64_level"), w.first);
        EXPECT_EQ(f.at("model").at("name").get<std::string>().rfind(w.second, 0), 0u) << f.at("model");
    }
}

TEST_F(CompareCorpus, ANewerIntelTakesTheOldersGuestsButNotBack) {
    int code = -1;
    const auto j = compare("haswell", "skylake", code);
    EXPECT_EQ(code, 1);
    EXPECT_TRUE(j.at("same_vendor"));
    // The Haswell dump was taken with newer microcode (md-clear, spec-ctrl,
    // ssbd, stibp) than the Skylake one: all it has more is mitigations.
    EXPECT_FALSE(j.at("b_to_a"));
    bool avx512 = false;
    for (const auto& d : j.at("differences")) {
        if (d.at("on") == report("haswell")) {
            EXPECT_EQ(d.at("reason"), "microcode-mitigations") << d;
        }
        if (d.at("feature") == "avx512f") {
            avx512 = true;
            EXPECT_EQ(d.at("reason"), "hardware-generation");
        }
    }
    EXPECT_TRUE(avx512);
    // The reverse comparison is the mirror image.
    const auto k = compare("skylake", "haswell", code);
    EXPECT_EQ(code, 1);
    EXPECT_FALSE(k.at("a_to_b"));
    EXPECT_EQ(k.at("differences").size(), j.at("differences").size());
}

TEST_F(CompareCorpus, ZenGenerationsMigrateForwardOnly) {
    for (const auto& [older, newer] : std::vector<std::pair<std::string, std::string>>{{"zen1", "zen2"}, {"zen3", "zen4"}}) {
        SCOPED_TRACE(older + " -> " + newer);
        int code = -1;
        const auto j = compare(older, newer, code);
        EXPECT_EQ(code, 1);
        EXPECT_FALSE(j.at("b_to_a"));
        for (const auto& d : j.at("differences")) {
            if (d.at("on") == report(newer) && d.at("reason") != "microcode-mitigations") {
                EXPECT_EQ(d.at("reason"), "hardware-generation") << d;
            }
        }
    }
}

TEST_F(CompareCorpus, AHostIsCompatibleWithItselfAndNotWithTheOtherVendor) {
    int code = -1;
    auto j = compare("cascadelake", "cascadelake", code);
    EXPECT_EQ(code, 0);
    EXPECT_TRUE(j.at("compatible"));
    EXPECT_TRUE(j.at("differences").empty());
    j = compare("skylake", "zen4", code);
    EXPECT_EQ(code, 1);
    EXPECT_FALSE(j.at("same_vendor"));
    EXPECT_FALSE(j.at("a_to_b"));
    EXPECT_FALSE(j.at("b_to_a"));
    EXPECT_TRUE(j.at("baseline").at("mixed_vendors"));
}

// The baseline is the intersection: every host has every baseline feature,
// its level is the lowest, and the model's require/disable give exactly it.
TEST_F(CompareCorpus, TheBaselineIsWhatEveryHostGives) {
    const auto r = run_tool({"compare", "--baseline", report("skylake"), report("haswell"), report("cascadelake"), "--format", "json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = parse(r.out);
    const auto feats = strings(j.at("features"));
    for (const auto& key : {"skylake", "haswell", "cascadelake"}) {
        const auto own = strings(cpu(key).at("cpu_features").at("features"));
        for (const auto& f : feats) EXPECT_TRUE(std::find(own.begin(), own.end(), f) != own.end()) << key << " lacks " << f;
    }
    EXPECT_EQ(j.at("x86_64_level"), "x86-64-v3");
    const auto* model = kvmready::fleet::cpu_map().model(j.at("model").at("name"));
    ASSERT_NE(model, nullptr);
    kvmready::fleet::FeatureSet s = model->features;
    for (const auto& f : strings(j.at("model").at("require"))) s.insert(f);
    for (const auto& f : strings(j.at("model").at("disable"))) s.erase(f);
    EXPECT_EQ(s, kvmready::fleet::FeatureSet(feats.begin(), feats.end()));
    for (const auto& h : j.at("hosts")) EXPECT_TRUE(h.at("cpu_only")) << h;
    const auto text = run_tool({"compare", "--baseline", report("skylake"), report("haswell")});
    EXPECT_EQ(text.exit_code, 0);
    EXPECT_NE(text.out.find("<cpu mode='custom' match='exact'"), std::string::npos);
    EXPECT_NE(text.out.find("cpu_models = "), std::string::npos);
    EXPECT_NE(text.out.find("the CPU's own features only"), std::string::npos);
}

// `fleet --baseline` over the directory a playbook filled is the same
// baseline as `compare --baseline` over its files; a foreign file in it is
// listed, not fatal.
TEST_F(CompareCorpus, FleetBaselineIsCompareBaselineOverADirectory) {
    namespace fs = std::filesystem;
    const TempDir tmp("kvmready-fleet-baseline");
    const fs::path dir = tmp.path;
    for (const auto& key : {"skylake", "haswell", "cascadelake"}) fs::copy_file(report(key), dir / (std::string(key) + ".json"));
    { std::ofstream(dir / "notes.json") << "{\"not\": \"a report\"}\n"; }
    const auto fleet = run_tool({"fleet", "--baseline", "--json", "-", dir.string()});
    const auto compare = run_tool({"compare", "--baseline", report("skylake"), report("haswell"), report("cascadelake"), "--format", "json"});
    ASSERT_EQ(fleet.exit_code, 0) << fleet.err;
    ASSERT_EQ(compare.exit_code, 0) << compare.err;
    auto a = parse(fleet.out), b = parse(compare.out);
    EXPECT_EQ(a.at("features"), b.at("features"));
    EXPECT_EQ(a.at("x86_64_level"), b.at("x86_64_level"));
    EXPECT_EQ(a.at("model"), b.at("model"));
    EXPECT_EQ(a.at("hosts").size(), 3u);
    EXPECT_NE(fleet.out.find("notes.json"), std::string::npos) << "the foreign file is not listed:\n" << fleet.out;
}

TEST_F(CompareCorpus, BadInputHasItsExitCode) {
    TempDir d("kvmready-compare-bad");
    const auto junk = (d.path / "junk.json").string();
    std::ofstream(junk) << "{not json";
    const auto foreign = (d.path / "foreign.json").string();
    std::ofstream(foreign) << R"({"schema_version": 1, "checks": []})";
    auto r = run_tool({"compare", report("haswell"), (d.path / "missing.json").string()});
    EXPECT_EQ(r.exit_code, 66) << r.err;
    EXPECT_NE(r.err.find("missing.json"), std::string::npos);
    r = run_tool({"compare", junk, report("haswell")});
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("junk.json"), std::string::npos);
    r = run_tool({"compare", report("haswell"), foreign});
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("foreign.json"), std::string::npos) << r.err;
    // A kvmready report without a cpu section (made by an older kvmready).
    auto old_report = nlohmann::json::parse(std::ifstream(report("haswell")));
    old_report.erase("cpu");
    const auto no_cpu = (d.path / "old.json").string();
    std::ofstream(no_cpu) << old_report.dump();
    r = run_tool({"compare", report("haswell"), no_cpu});
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("no cpu section"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
    r = run_tool({"compare", report("haswell")});
    EXPECT_EQ(r.exit_code, 64);
}

// A recorded host with KVM data: what its CPU has and KVM does not give
// guests is "kvm-withheld" when compared with the same CPU's dump alone.
TEST_F(CompareCorpus, WhatKvmWithholdsIsNamedSo) {
    const std::string tree = (kFixtures / "kvmdeep-pvm-host").string();
    const auto host = run_tool({"check", "--root", tree, "--json"});
    const auto dump = run_tool({"check", "--root", tree, "--cpuid-dump", tree + "/.kvmready/cpuid.txt", "--json"});
    const auto hj = parse(host.out);
    ASSERT_FALSE(hj.at("cpu").at("guest_features").is_null()) << hj.at("cpu").at("guest_features_reason");
    std::ofstream(dir_->path / "kvm.json") << host.out;
    std::ofstream(dir_->path / "dump.json") << dump.out;
    const auto r = run_tool({"compare", (dir_->path / "kvm.json").string(), (dir_->path / "dump.json").string(), "--format", "json"});
    const auto j = parse(r.out);
    int withheld = 0;
    for (const auto& d : j.at("differences")) {
        if (d.at("on") == (dir_->path / "dump.json").string() && d.at("reason") != "microcode-mitigations") {
            EXPECT_EQ(d.at("reason"), "kvm-withheld") << d;
            ++withheld;
        }
        if (d.at("on") == (dir_->path / "kvm.json").string() && d.at("reason") != "microcode-mitigations") {
            EXPECT_EQ(d.at("reason"), "kvm-emulated") << d;
        }
    }
    EXPECT_GT(withheld, 0) << j.at("differences");
}

}  // namespace
