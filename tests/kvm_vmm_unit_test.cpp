// The decisions of checks/kvm_vmm.cpp on facts that cannot be produced on
// this machine: the real AMD KVM recording (tests/fixtures/kvmdeep-amd-epyc-guest)
// loaded through the rooted host, then one fact changed per test the way a
// broken or different host would show it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/probe.hpp"
#include "core/runner.hpp"

using namespace kvmready;

namespace {

Facts amd_facts() {
    auto h = host::make_rooted_host(std::string(KVMREADY_FIXTURES_DIR) + "/kvmdeep-amd-epyc-guest");
    return probe(*h, ProbeOptions{});
}

Finding run(const Facts& f, const std::string& id) {
    const Report r = run_checks(f, {id});
    for (const auto& x : r.findings)
        if (x.id == id) return x;
    throw std::runtime_error("no finding " + id);
}

host::KvmFeatureMsr* msr(Facts& f, uint32_t idx) {
    for (auto& m : f.kvm.feature_msrs)
        if (m.index == idx) return &m;
    return nullptr;
}

void clear_bit(Facts& f, uint32_t leaf, uint32_t sub, int reg, unsigned bit) {
    for (auto& e : f.kvm.supported_cpuid) {
        if (e.function != leaf || e.index != sub) continue;
        uint32_t* r[] = {&e.eax, &e.ebx, &e.ecx, &e.edx};
        *r[reg] &= ~(1u << bit);
    }
}

}  // namespace

TEST(KvmVmmUnit, BaselineRecordingPasses) {
    const Facts f = amd_facts();
    for (const char* id : {"kvm.vmm-capabilities", "kvm.guest-cpuid", "kvm.feature-msrs", "kvm.vm-types", "kvm.nested-state"})
        EXPECT_EQ(run(f, id).status, Status::Pass) << id << ": " << run(f, id).message;
}

// A vCPU refusing IA32_ARCH_CAPABILITIES is QEMU -cpu host's abort.
TEST(KvmVmmUnit, RefusedArchCapabilitiesPredictsQemuAbort) {
    Facts f = amd_facts();
    auto* m = msr(f, 0x10a);
    ASSERT_NE(m, nullptr);
    m->set_result = 0;
    m->refused_bits = m->value & 0xff;
    const Finding r = run(f, "kvm.feature-msrs");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_NE(r.message.find(fmt::format("failed to set MSR 0x10a to {:#x}", m->value)), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("QEMU -cpu host"), std::string::npos);
    EXPECT_FALSE(r.remediation.text.empty());
    EXPECT_FALSE(r.remediation.commands.empty());
    bool row = false;
    for (const auto& x : r.evidence["feature_msrs"])
        if (x["msr"] == "IA32_ARCH_CAPABILITIES (0x10a)") {
            row = true;
            EXPECT_EQ(x["result"], "refused");
            EXPECT_EQ(x["refused_bits"], fmt::format("{:#x}", m->value & 0xff));
        }
    EXPECT_TRUE(row);
}

// QEMU only writes what KVM_GET_MSR_INDEX_LIST lists: a refused MSR that is
// not listed still warns, without blaming QEMU.
TEST(KvmVmmUnit, RefusedMsrQemuDoesNotWrite) {
    Facts f = amd_facts();
    auto* m = msr(f, 0xc0011029);
    ASSERT_NE(m, nullptr) << "AMD64_DE_CFG is a feature MSR on kvm_amd";
    m->set_result = 0;
    const Finding r = run(f, "kvm.feature-msrs");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.message.find("QEMU -cpu host"), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("AMD64_DE_CFG (0xc0011029)"), std::string::npos) << r.message;
}

TEST(KvmVmmUnit, MissingCapabilityNamesTheVmmThatNeedsIt) {
    Facts f = amd_facts();
    f.kvm.system_caps["split_irqchip"] = 0;  // only cloud-hypervisor requires it
    Finding r = run(f, "kvm.vmm-capabilities");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_NE(r.message.find("cloud-hypervisor lacks KVM_CAP_SPLIT_IRQCHIP"), std::string::npos) << r.message;
    EXPECT_EQ(r.message.find("Firecracker"), std::string::npos) << r.message;
    EXPECT_EQ(r.evidence["vmms"]["cloud-hypervisor"]["missing"], nlohmann::ordered_json::array({"KVM_CAP_SPLIT_IRQCHIP"}));

    f = amd_facts();
    f.kvm.vm_caps["irqfd"] = 0;  // /dev/kvm says yes, the VM says no
    r = run(f, "kvm.vmm-capabilities");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.evidence["vmms"]["Firecracker"]["missing_on_vm_fd"], nlohmann::ordered_json::array({"KVM_CAP_IRQFD"}));

    f = amd_facts();
    f.kvm.system_caps.erase("pit_state2");  // an older probe that did not ask
    r = run(f, "kvm.vmm-capabilities");
    EXPECT_EQ(r.status, Status::Unknown) << r.message;
}

TEST(KvmVmmUnit, LostSse42DropsGuestsToV1) {
    Facts f = amd_facts();
    clear_bit(f, 1, 0, 2, 20);  // sse4_2
    const Finding r = run(f, "kvm.guest-cpuid");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.evidence["guest_level"], "x86-64-v1");
    EXPECT_EQ(r.evidence["host_level"], "x86-64-v3");
    EXPECT_NE(r.message.find("sse4_2 (v2)"), std::string::npos) << r.message;
}

TEST(KvmVmmUnit, GapWithoutLevelDropIsAPassThatNamesIt) {
    Facts f = amd_facts();
    clear_bit(f, 0x80000001, 0, 3, 27);  // rdtscp: not part of any x86-64 level
    const Finding r = run(f, "kvm.guest-cpuid");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_NE(r.message.find("rdtscp"), std::string::npos) << r.message;
}

TEST(KvmVmmUnit, HidingKernelParameterIsTheRemedy) {
    Facts f = amd_facts();
    clear_bit(f, 7, 0, 1, 5);  // avx2 gone: what clearcpuid=avx2 does to KVM
    f.kernel.cmdline = "root=/dev/vda1 clearcpuid=avx2 quiet";
    const Finding r = run(f, "kvm.guest-cpuid");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_NE(r.remediation.text.find("clearcpuid=avx2"), std::string::npos) << r.remediation.text;
    EXPECT_EQ(r.evidence["kernel_parameters"], nlohmann::ordered_json::array({"clearcpuid=avx2"}));
}

TEST(KvmVmmUnit, ForeignCpuidDumpIsNotCompared) {
    Facts f = amd_facts();
    f.cpu.source = "dump:customer.txt";
    EXPECT_EQ(run(f, "kvm.guest-cpuid").status, Status::Unknown);
    f = amd_facts();
    f.kvm.supported_cpuid.clear();
    f.kvm.supported_cpuid_errno = E2BIG;
    const Finding r = run(f, "kvm.guest-cpuid");
    EXPECT_EQ(r.status, Status::Unknown);
    EXPECT_NE(r.message.find("E2BIG"), std::string::npos) << r.message;
}

TEST(KvmVmmUnit, VmTypesDecodeAndSevMismatch) {
    Facts f = amd_facts();
    f.kvm.system_caps["vm_types"] = 0b111101;  // default, sev, sev_es, sev_snp, tdx
    Finding r = run(f, "kvm.vm-types");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_EQ(r.evidence["vm_types"], nlohmann::ordered_json::array({"default", "sev", "sev_es", "sev_snp", "tdx"}));

    // The CPU advertises SEV-SNP (CPUID 0x8000001F EAX bits 1 and 4), KVM only default VMs.
    f = amd_facts();
    f.kvm.system_caps["vm_types"] = 1;
    bool patched = false;
    for (auto& l : f.cpu.dump.leaves)
        if (l.leaf == 0x80000000) l.eax = std::max<uint32_t>(l.eax, 0x8000001f);
    for (auto& l : f.cpu.dump.leaves)
        if (l.leaf == 0x8000001f) {
            l.eax |= (1u << 1) | (1u << 4);
            patched = true;
        }
    if (!patched) f.cpu.dump.leaves.push_back({0x8000001f, 0, (1u << 1) | (1u << 4), 0, 0, 0});
    r = run(f, "kvm.vm-types");
    EXPECT_EQ(r.status, Status::Warn) << r.message;
    EXPECT_NE(r.message.find("SEV-SNP"), std::string::npos) << r.message;
    EXPECT_EQ(r.remediation.fix_id, "");  // no fix exists for SEV: the commands are manual
}

TEST(KvmVmmUnit, NestedStateZeroWarns) {
    Facts f = amd_facts();
    f.kvm.system_caps["nested_state"] = 0;
    const Finding r = run(f, "kvm.nested-state");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.level, Level::Optional);
}

// Facts round-trip through JSON with every new field, so a recording
// replays exactly what was probed.
TEST(KvmVmmUnit, ProbeResultRoundTripsThroughJson) {
    const Facts f = amd_facts();
    const nlohmann::json j = f.kvm;
    const auto back = j.get<host::KvmProbe>();
    EXPECT_EQ(nlohmann::json(back), j);
    EXPECT_EQ(back.supported_cpuid.size(), f.kvm.supported_cpuid.size());
    EXPECT_EQ(back.feature_msrs.size(), f.kvm.feature_msrs.size());
    EXPECT_FALSE(back.supported_cpuid.empty());
}
