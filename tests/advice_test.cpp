// Advice suits the host it is given on: the CPU vendor (an AMD VM gets
// AMD's IOMMU, not Intel's), the distribution's package manager, the outer
// hypervisor's own setting for nested virtualization (or none). Judged in
// process on real recorded trees, with one fact changed where a recording
// of that kind does not exist here.
#include <string>

#include <gtest/gtest.h>

#include "core/check.hpp"
#include "core/kvm_state.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"
#include "host/host.hpp"

namespace {

using namespace kvmready;

Facts facts_of(const std::string& tree) {
    auto h = host::make_rooted_host(std::string(KVMREADY_FIXTURES_DIR) + "/" + tree);
    return probe(*h, ProbeOptions{});
}

const Finding& finding(const Report& r, const std::string& id) {
    for (const auto& f : r.findings)
        if (f.id == id) return f;
    throw std::runtime_error("no finding " + id);
}

std::string all_advice(const Finding& f) {
    std::string s = f.message + "\n" + f.remediation.text;
    for (const auto& c : f.remediation.commands) s += "\n" + c;
    return s;
}

TEST(Advice, AmdVmGetsAnAmdOrVirtioIommuNotIntels) {
    // A real AMD EPYC guest (QEMU TCG) without a virtual IOMMU.
    const Report r = run_checks(facts_of("kvmdeep-amd-epyc-guest"), {"iommu.enabled"});
    const std::string a = all_advice(finding(r, "iommu.enabled"));
    EXPECT_EQ(a.find("intel-iommu"), std::string::npos) << a;
    EXPECT_EQ(a.find("model='intel'"), std::string::npos) << a;
    EXPECT_NE(a.find("amd-iommu"), std::string::npos) << a;
    // And an Intel one gets Intel's.
    const Report i = run_checks(facts_of("kvmdeep-pvm-host"), {"iommu.enabled"});
    EXPECT_NE(all_advice(finding(i, "iommu.enabled")).find("intel-iommu"), std::string::npos);
}

TEST(Advice, PackageCommandsFollowTheDistribution) {
    Facts f = facts_of("intel-vtx");
    for (const auto& [os, want] : std::vector<std::pair<std::string, std::string>>{
             {"debian", "apt-get install"}, {"rhel centos fedora", "dnf install"}, {"opensuse-leap suse opensuse", "zypper install"},
             {"arch", "pacman -S"}}) {
        f.kernel.os_id = os;
        f.virt.qemu.path.clear();  // no QEMU: qemu.binary advises installing it
        f.virt.qemu.candidates = {"/usr/bin/qemu-system-x86_64"};
        const Report r = run_checks(f, {"qemu.binary"});
        const Finding& q = finding(r, "qemu.binary");
        ASSERT_FALSE(q.remediation.commands.empty()) << q.message;
        EXPECT_EQ(q.remediation.commands.front().rfind(want, 0), 0u) << os << ": " << q.remediation.commands.front();
    }
}

TEST(Advice, NestedSettingIsTheOuterHypervisorsOwnOrNone) {
    Facts f = facts_of("hyperv-guest");
    OuterHypervisor hv = outer_hypervisor(f);
    EXPECT_EQ(hv.key, "hyperv");
    EXPECT_NE(nested_advice(hv, f).commands.at(0).find("ExposeVirtualizationExtensions"), std::string::npos);
    for (const auto& [key, want] : std::vector<std::pair<std::string, std::string>>{
             {"vmware", "vhv.enable"}, {"virtualbox", "--nested-hw-virt on"}, {"xen", "nestedhvm=1"}, {"kvm", "nested=1"},
             {"parallels", "--nested-virt on"}, {"tcg", "-cpu EPYC"}, {"bhyve", "no setting"}, {"pvm", "no setting"}}) {
        hv.key = key;
        const auto adv = nested_advice(hv, f);
        std::string all = adv.text;
        for (const auto& c : adv.commands) all += "\n" + c;
        EXPECT_NE(all.find(want), std::string::npos) << key << ": " << all;
    }
}

TEST(Advice, KernelAndCpuidDisagreeingIsShownNotHidden) {
    // pvm-guest-no-kvm: CPUID says KVMKVMKVM, the kernel detected PVM.
    const Facts f = facts_of("pvm-guest-no-kvm");
    const OuterHypervisor hv = outer_hypervisor(f);
    EXPECT_EQ(hv.key, "pvm");
    EXPECT_EQ(hv.kernel_detected, "PVM");
    EXPECT_EQ(hv.cpuid_signature, "KVMKVMKVM");
    ASSERT_EQ(hv.disagreements.size(), 1u);
    const Report r = run_checks(f, {"host.hypervisor"});
    EXPECT_NE(finding(r, "host.hypervisor").message.find("KVMKVMKVM"), std::string::npos);
}

// Only what explains a module that did not bind is quoted as the reason:
// a rejected command-line parameter is noise, and errors while running a
// guest prove the module had bound. An old error does not explain a module
// that is simply not loaded now; a standing cause (no VT-x) does.
TEST(Advice, KernelLinesThatDoNotExplainAbsenceAreNotQuotedAsTheReason) {
    Facts f = facts_of("pvm-guest-no-kvm");
    auto line = [](int level, std::string text) {
        host::KernelLogLine l;
        l.level = level;
        l.text = std::move(text);
        return l;
    };
    f.kernel_log.log.lines = {line(4, "kvm: unknown parameter 'modules-load' ignored"),
                              line(3, "kvm-pvm: INTERNAL_ERROR in batch emul: rip=0x10004a cpl=0 cr3=0x0"),
                              line(4, "kvm [412]: vcpu0, guest rIP: 0xffffffff81000000 unhandled rdmsr: 0x123")};
    KvmState s = kvm_state(f);
    EXPECT_EQ(s.absence, KvmAbsence::None);
    EXPECT_TRUE(s.kernel_lines.empty());
    Report r = run_checks(f, {"kvm.module"});
    EXPECT_EQ(finding(r, "kvm.module").message.find("INTERNAL_ERROR"), std::string::npos) << finding(r, "kvm.module").message;
    EXPECT_NE(finding(r, "kvm.module").message.find("says nothing about why"), std::string::npos) << finding(r, "kvm.module").message;

    // A real init error of a loaded-but-unbound module is quoted...
    f.kernel_log.log.lines.push_back(line(3, "kvm_pvm: failed to allocate host PCID range"));
    s = kvm_state(f);
    EXPECT_EQ(s.absence, KvmAbsence::OtherError);
    r = run_checks(f, {"kvm.module"});
    EXPECT_NE(finding(r, "kvm.module").message.find("failed to allocate"), std::string::npos) << finding(r, "kvm.module").message;
    // ...but not when nothing is loaded: it may be from a load long ago.
    Facts none = f;
    none.modules.present.clear();
    r = run_checks(none, {"kvm.module"});
    EXPECT_EQ(finding(r, "kvm.module").message.rfind("no KVM module is loaded or built in", 0), 0u) << finding(r, "kvm.module").message;
    EXPECT_EQ(finding(r, "kvm.module").message.find("failed to allocate"), std::string::npos) << finding(r, "kvm.module").message;
    // A standing cause holds either way.
    none.kernel_log.log.lines.push_back(line(3, "kvm_amd: SVM not supported by CPU 0, not amd or hygon"));
    r = run_checks(none, {"kvm.module"});
    EXPECT_NE(finding(r, "kvm.module").message.find("SVM not supported"), std::string::npos) << finding(r, "kvm.module").message;
}

}  // namespace
