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

}  // namespace
