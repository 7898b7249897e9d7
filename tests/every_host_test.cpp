// What issue "Every host" promised of the diagnosis, through the real binary:
// on a machine whose KVM module declined to bind, no output advises mknod,
// the kernel's own words lead; a support bundle of it replays the same
// diagnosis on another machine; a selection never claims the whole host.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include "support/temp_dir.hpp"
#include <nlohmann/json.hpp>

#include "support/spawn.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using kvmready::testsupport::run_captured;

const std::string kTree = std::string(KVMREADY_FIXTURES_DIR) + "/pvm-guest-no-kvm";

using TempDir = kvmready::testsupport::TempDir;

TEST(EveryHost, NoDeviceRegisteredMeansNoMknodAnywhere) {
    const auto text = run_captured({KVMREADY_BINARY, "check", "--root", kTree, "--color=never"}, 30000);
    const auto js = run_captured({KVMREADY_BINARY, "check", "--root", kTree, "--json"}, 30000);
    EXPECT_EQ(text.exit_code, 1) << text.err;
    EXPECT_EQ(js.exit_code, 1) << js.err;
    EXPECT_EQ(text.out.find("mknod"), std::string::npos) << text.out;
    EXPECT_EQ(js.out.find("mknod"), std::string::npos);
    const json j = json::parse(js.out);
    EXPECT_EQ(j["verdict"], "not_ready");
    // The verdict's one sentence quotes the kernel, and Next offers what still works.
    EXPECT_NE(j["verdict_text"].get<std::string>().find("kvm-pvm: this kernel is itself a kvm-pvm guest; not binding"), std::string::npos)
        << j["verdict_text"];
    EXPECT_NE(j["next_step"].get<std::string>().find("--virt-type qemu"), std::string::npos) << j["next_step"];
}

TEST(EveryHost, BundleOfTheHostReplaysTheSameDiagnosis) {
    TempDir t;
    const fs::path bundle = t.path / "host.tar.gz";
    const auto rep = run_captured({KVMREADY_BINARY, "report", "--root", kTree, "-o", bundle.string()}, 60000);
    ASSERT_EQ(rep.exit_code, 0) << rep.err;
    const auto direct = run_captured({KVMREADY_BINARY, "check", "--root", kTree, "--json"}, 30000);
    const auto replay = run_captured({KVMREADY_BINARY, "check", "--from", bundle.string(), "--json"}, 30000);
    ASSERT_EQ(replay.exit_code, direct.exit_code) << replay.err;
    const json a = json::parse(direct.out), b = json::parse(replay.out);
    EXPECT_EQ(a["verdict"], b["verdict"]);
    EXPECT_EQ(a["verdict_text"], b["verdict_text"]);
    ASSERT_EQ(a["checks"].size(), b["checks"].size());
    for (size_t i = 0; i < a["checks"].size(); ++i) {
        EXPECT_EQ(a["checks"][i]["status"], b["checks"][i]["status"]) << a["checks"][i]["id"];
        if (a["checks"][i]["category"] == "kvm" || a["checks"][i]["category"] == "cpu")
            EXPECT_EQ(a["checks"][i]["message"], b["checks"][i]["message"]) << a["checks"][i]["id"];
    }
}

TEST(EveryHost, SelectionNeverClaimsTheHost) {
    // system-intel-dmar-off: a real recording (Intel CPU without VMX, no KVM module) where KVM cannot work at all.
    const std::string tree = std::string(KVMREADY_FIXTURES_DIR) + "/system-intel-dmar-off";
    const auto js = run_captured({KVMREADY_BINARY, "check", "--root", tree, "memory", "--json"}, 30000);
    const auto text = run_captured({KVMREADY_BINARY, "check", "--root", tree, "memory", "--color=never"}, 30000);
    ASSERT_EQ(js.exit_code, 0) << js.err;
    const json j = json::parse(js.out);
    EXPECT_EQ(j["scope"]["kind"], "selection");
    EXPECT_EQ(j["scope"]["kvm_checked"], false);
    EXPECT_EQ(j["verdict"], "passed_with_warnings");
    for (const auto* out : {&js.out, &text.out}) {
        EXPECT_EQ(out->find("can run KVM"), std::string::npos) << *out;
        for (const char* claim : {"\"ready", "Verdict: ready", "not_ready", "NOT ready"}) EXPECT_EQ(out->find(claim), std::string::npos) << claim;
        EXPECT_NE(out->find("KVM itself was not checked"), std::string::npos) << *out;
    }
    // A selection holding kvm.api answers for KVM, and fails when it fails.
    const auto kvm = run_captured({KVMREADY_BINARY, "check", "--root", tree, "kvm.api", "--json"}, 30000);
    EXPECT_EQ(kvm.exit_code, 1) << kvm.out;
    EXPECT_EQ(json::parse(kvm.out)["verdict"], "failed");
}

}  // namespace
