// The VMM-level KVM checks on real recordings, through the real binary
// (`kvmready check --root DIR --json`): a genuine AMD KVM host (kvm_amd inside
// a QEMU TCG EPYC guest) and this PVM machine, both recorded with the
// extended probe (tests/fixtures/README-kvmdeep.md), and a recording made
// before the probe existed, which must still load and say so.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/spawn.hpp"
#include <nlohmann/json.hpp>

extern char** environ;

namespace {

using nlohmann::json;

const std::string kFixtures = KVMREADY_FIXTURES_DIR;

struct Proc {
    int exit_code = -1;
    std::string out, err;
};

// The tool, both streams captured, killed after 30 s.
Proc run_kvmready(const std::vector<std::string>& args) {
    std::vector<std::string> argv{KVMREADY_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto c = kvmready::testsupport::run_captured(argv, 30000);
    if (!c.started) ADD_FAILURE() << c.spawn_error;
    if (c.timed_out) ADD_FAILURE() << "kvmready did not finish within 30 s";
    Proc r;
    r.exit_code = c.exit_code;
    r.out = c.out;
    r.err = c.err;
    return r;
}

// `check --root DIR --json kvm`, checks by id.
std::map<std::string, json> checks_of(const std::string& tree) {
    const Proc p = run_kvmready({"check", "--root", kFixtures + "/" + tree, "--json", "kvm"});
    std::map<std::string, json> by_id;
    json j;
    try {
        j = json::parse(p.out);
    } catch (const json::exception& e) {
        ADD_FAILURE() << tree << ": not JSON (exit " << p.exit_code << "): " << p.err << p.out.substr(0, 300);
        return by_id;
    }
    for (const auto& c : j.at("checks")) by_id[c.at("id").get<std::string>()] = c;
    return by_id;
}

bool has(const json& arr, const std::string& s) {
    for (const auto& x : arr)
        if (x.get<std::string>() == s) return true;
    return false;
}

}  // namespace

// A real kvm_amd host (Linux 6.1): every VMM's capabilities present, guests
// get the host's x86-64-v3 CPU, feature MSRs round-trip, no VM-type API yet,
// nested state exists.
TEST(KvmVmmFixture, AmdEpycGuestKvmHost) {
    auto c = checks_of("kvmdeep-amd-epyc-guest");
    ASSERT_FALSE(c.empty());
    ASSERT_EQ(c["kvm.api"]["status"], "pass");

    const auto& caps = c["kvm.vmm-capabilities"];
    EXPECT_EQ(caps["status"], "pass") << caps["message"];
    for (const char* vmm : {"Firecracker", "cloud-hypervisor", "QEMU"}) {
        EXPECT_TRUE(caps["evidence"]["vmms"][vmm]["missing"].empty()) << vmm;
        EXPECT_GE(caps["evidence"]["vmms"][vmm]["required"].get<int>(), 14) << vmm;
    }
    EXPECT_EQ(caps["evidence"]["vm_fd_checked"], true);

    const auto& g = c["kvm.guest-cpuid"];
    EXPECT_EQ(g["status"], "pass") << g["message"];
    EXPECT_EQ(g["evidence"]["host_level"], "x86-64-v3");
    EXPECT_EQ(g["evidence"]["guest_level"], "x86-64-v3");
    EXPECT_EQ(g["evidence"]["host_source"], "CPUID");  // a recording carries the full dump
    EXPECT_EQ(g["evidence"]["xsave_host"], g["evidence"]["xsave_guest"]);

    const auto& m = c["kvm.feature-msrs"];
    EXPECT_EQ(m["status"], "pass") << m["message"];
    bool arch_caps = false;
    for (const auto& row : m["evidence"]["feature_msrs"]) {
        EXPECT_EQ(row["result"], "accepted") << row.dump();
        if (row["msr"] == "IA32_ARCH_CAPABILITIES (0x10a)") {
            arch_caps = true;
            EXPECT_EQ(row["qemu_cpu_host_writes_it"], true);
        }
    }
    EXPECT_TRUE(arch_caps) << "KVM on AMD emulates IA32_ARCH_CAPABILITIES as a feature MSR";
    EXPECT_NE(m["message"].get<std::string>().find("QEMU -cpu host will not fail"), std::string::npos);

    const auto& vt = c["kvm.vm-types"];
    EXPECT_EQ(vt["status"], "pass");
    EXPECT_EQ(vt["evidence"]["kvm_cap_vm_types"], 0);  // 6.1 predates KVM_CAP_VM_TYPES

    const auto& ns = c["kvm.nested-state"];
    EXPECT_EQ(ns["status"], "pass") << ns["message"];
    EXPECT_EQ(ns["evidence"]["kvm_cap_nested_state"], 4224);
    EXPECT_EQ(ns["evidence"]["nested"], "1");
}

// This PVM machine: KVM works, every VMM's startup capabilities are there,
// but guests lose SSE3 through AVX2 (x86-64-v1 on an x86-64-v4 CPU) and AMX
// state, and nested state cannot be saved.
TEST(KvmVmmFixture, PvmHost) {
    auto c = checks_of("kvmdeep-pvm-host");
    ASSERT_FALSE(c.empty());
    ASSERT_EQ(c["kvm.api"]["status"], "pass");
    EXPECT_EQ(c["kvm.vmm-capabilities"]["status"], "pass") << c["kvm.vmm-capabilities"]["message"];

    const auto& g = c["kvm.guest-cpuid"];
    EXPECT_EQ(g["status"], "warn");
    EXPECT_EQ(g["level"], "recommended");
    EXPECT_EQ(g["evidence"]["host_level"], "x86-64-v4");
    EXPECT_EQ(g["evidence"]["guest_level"], "x86-64-v1");
    const auto& miss = g["evidence"]["missing"];
    for (const char* f : {"sse3", "ssse3", "sse4_1", "sse4_2", "popcnt", "aes", "xsave", "avx", "fma", "f16c"})
        EXPECT_TRUE(has(miss["CPUID.1:ECX"], f)) << f;
    for (const char* f : {"avx2", "bmi1", "bmi2", "avx512f", "sha_ni"}) EXPECT_TRUE(has(miss["CPUID.7.0:EBX"], f)) << f;
    EXPECT_TRUE(has(miss["CPUID.80000001:ECX"], "abm"));
    EXPECT_TRUE(has(miss["CPUID.80000001:EDX"], "rdtscp"));
    // Kept by PVM: cx16 (leaf 1) and the baseline; never listed as missing.
    EXPECT_FALSE(has(miss["CPUID.1:ECX"], "cx16"));
    EXPECT_FALSE(miss.contains("CPUID.1:EDX"));
    EXPECT_TRUE(has(g["evidence"]["xsave_missing"], "amx_tilecfg"));
    EXPECT_TRUE(has(g["evidence"]["xsave_missing"], "amx_tiledata"));
    const std::string msg = g["message"];
    EXPECT_NE(msg.find("sse3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("avx2"), std::string::npos) << msg;
    EXPECT_FALSE(g["remediation"]["text"].get<std::string>().empty());

    EXPECT_EQ(c["kvm.feature-msrs"]["status"], "pass") << c["kvm.feature-msrs"]["message"];
    EXPECT_EQ(c["kvm.vm-types"]["evidence"]["vm_types"], json::array({"default"}));
    const auto& ns = c["kvm.nested-state"];
    EXPECT_EQ(ns["status"], "warn");
    EXPECT_EQ(ns["level"], "optional");
    EXPECT_EQ(ns["evidence"]["kvm_cap_nested_state"], 0);
}

// A recording from before the VMM pass: it loads, the new checks say
// unknown with the reason instead of inventing, and the two that the old
// capability map can answer still answer.
TEST(KvmVmmFixture, OldRecordingSaysUnknownNotPass) {
    auto c = checks_of("pvm-host");
    ASSERT_FALSE(c.empty());
    for (const char* id : {"kvm.vmm-capabilities", "kvm.guest-cpuid", "kvm.feature-msrs"}) {
        EXPECT_EQ(c[id]["status"], "unknown") << id;
        EXPECT_NE(c[id]["message"].get<std::string>().find("predates"), std::string::npos) << c[id]["message"];
        EXPECT_FALSE(c[id]["remediation"]["commands"].empty()) << id;
    }
    EXPECT_EQ(c["kvm.vm-types"]["status"], "pass");
    EXPECT_EQ(c["kvm.vm-types"]["evidence"]["vm_types"], json::array({"default"}));
    EXPECT_EQ(c["kvm.nested-state"]["evidence"]["kvm_cap_nested_state"], 0);
}

// The verdict: these checks never turn a working KVM into "not ready".
TEST(KvmVmmFixture, RecommendedAndOptionalOnly) {
    const Proc p = run_kvmready({"check", "--list"});
    ASSERT_EQ(p.exit_code, 0) << p.err;
    for (const char* id : {"kvm.vmm-capabilities", "kvm.guest-cpuid", "kvm.feature-msrs"}) {
        const auto pos = p.out.find(id);
        ASSERT_NE(pos, std::string::npos) << id;
        EXPECT_NE(p.out.substr(pos, p.out.find('\n', pos) - pos).find("recommended"), std::string::npos) << id;
    }
    for (const char* id : {"kvm.vm-types", "kvm.nested-state"}) {
        const auto pos = p.out.find(id);
        ASSERT_NE(pos, std::string::npos) << id;
        EXPECT_NE(p.out.substr(pos, p.out.find('\n', pos) - pos).find("optional"), std::string::npos) << id;
    }
}
