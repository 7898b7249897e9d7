// Edge cases of the system-area checks on Facts built in code: situations the
// recorded trees (system_fixtures_test.cpp) do not cover, such as a kernel
// whose VT-d is off by default, grubby hosts, a TDX trust domain, AppArmor in
// complain mode, or libvirt's security driver set to "none".
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/runner.hpp"

namespace kvmready {
namespace {

void put_string(cpuid::Leaf& l, const char* s12) {
    auto word = [&](int i) {
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) v |= static_cast<uint32_t>(static_cast<unsigned char>(s12[i * 4 + k])) << (8 * k);
        return v;
    };
    l.ebx = word(0);
    l.edx = word(1);
    l.ecx = word(2);
}

// A minimal CPUID dump: vendor, family 6 / 25, the extended range.
cpuid::Dump dump(const char* vendor, uint32_t max_basic = 0x0d, uint32_t max_ext = 0x80000008) {
    cpuid::Dump d;
    d.format = "test";
    cpuid::Leaf l0{0, 0, max_basic, 0, 0, 0};
    put_string(l0, vendor);
    d.leaves.push_back(l0);
    d.leaves.push_back({1, 0, 0x000806f8, 0, 0, 0});
    d.leaves.push_back({0x80000000, 0, max_ext, 0, 0, 0});
    return d;
}

Facts base(const char* vendor = "GenuineIntel") {
    Facts f;
    f.source = "test";
    f.cpu.source = "recorded";
    f.cpu.available = true;
    f.cpu.dump = dump(vendor);
    f.cpu.cpuinfo_read = true;
    f.kernel.release = "6.1.0-50-amd64";
    f.kernel.cmdline = "BOOT_IMAGE=/boot/vmlinuz-6.1.0-50-amd64 root=UUID=1 ro quiet";
    auto& s = f.system;
    s.probed = true;
    s.mountinfo_read = true;
    s.iommu.acpi_tables_read = true;
    s.iommu.acpi_tables = {"APIC", "DSDT", "FACP"};
    s.iommu.groups_dir = true;
    s.boot.grub_default_read = true;
    s.boot.grub_cmdline_linux = "";
    s.boot.grub_cmdline_default = "quiet";
    s.boot.update_grub = true;
    s.memory.meminfo_read = true;
    s.memory.mem_total_kb = 32ull * 1024 * 1024;
    s.memory.mem_available_kb = 30ull * 1024 * 1024;
    s.memory.hugepagesize_kb = 2048;
    s.memory.hugepages_dir = true;
    s.memory.pools = {{2048, 0, 0, 0, 0}, {1048576, 0, 0, 0, 0}};
    s.memory.thp_enabled = "always [madvise] never";
    s.memory.ksm_run = "0";
    return f;
}

Finding run(const Facts& f, const std::string& id) {
    Report r = run_checks(f, {id});
    EXPECT_EQ(r.findings.size(), 1u);
    return r.findings.empty() ? Finding{} : r.findings.front();
}

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

TEST(SystemChecksIommu, DmarWithoutArgumentGetsIntelIommuOnForGrub) {
    Facts f = base();
    f.system.iommu.dmar = true;
    f.system.iommu.acpi_tables.push_back("DMAR");
    const Finding r = run(f, "iommu.enabled");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.level, Level::Optional);
    EXPECT_TRUE(has(r.message, "add intel_iommu=on")) << r.message;
    EXPECT_EQ(r.remediation.commands,
              (std::vector<std::string>{"sed -i 's/^GRUB_CMDLINE_LINUX=\"/&intel_iommu=on /' /etc/default/grub", "update-grub"}));
    EXPECT_EQ(r.remediation.fix_id, "");  // no fix edits the boot loader: the commands are manual
    EXPECT_TRUE(r.remediation.requires_root);
}

TEST(SystemChecksIommu, GrubbyHostsAndArgumentsAlreadyInGrub) {
    Facts f = base();
    f.system.iommu.dmar = true;
    f.system.boot.grubby = true;
    EXPECT_EQ(run(f, "iommu.enabled").remediation.commands,
              std::vector<std::string>{"grubby --update-kernel=ALL --args=\"intel_iommu=on\""});
    f.system.boot.grubby = false;
    f.system.boot.grub_cmdline_linux = "intel_iommu=on";
    const Finding r = run(f, "iommu.enabled");
    EXPECT_EQ(r.remediation.commands, std::vector<std::string>{"update-grub"});
    EXPECT_TRUE(has(r.remediation.text, "already in /etc/default/grub")) << r.remediation.text;
}

TEST(SystemChecksIommu, PassthroughAndUnknown) {
    Facts f = base("AuthenticAMD");
    f.system.iommu.ivrs = true;
    f.system.iommu.units = {{"ivhd0", "0x25bf732fa2295afe"}};
    f.system.iommu.groups = 40;
    f.system.iommu.domain_types = {{"identity", 40}};
    f.kernel.cmdline += " iommu=pt";
    Finding r = run(f, "iommu.enabled");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_TRUE(has(r.message, "AMD-Vi is on: 40 IOMMU groups (ivhd0)")) << r.message;
    EXPECT_TRUE(has(r.message, "passthrough")) << r.message;
    EXPECT_EQ(r.evidence["cmdline"]["iommu"], "pt");

    Facts none = base();
    none.system.iommu = {};
    r = run(none, "iommu.enabled");
    EXPECT_EQ(r.status, Status::Unknown);
    EXPECT_FALSE(r.remediation.text.empty());
}

TEST(SystemChecksIommu, BareMetalWithoutTablePointsAtFirmware) {
    Facts f = base();
    const Finding r = run(f, "iommu.enabled");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_TRUE(has(r.message, "no ACPI DMAR table, so VT-d is disabled in the firmware setup or absent")) << r.message;
    EXPECT_EQ(r.remediation.applicability, "manual");
}

// The kernel's build configuration (/boot/config-RELEASE) tells a kernel
// without the driver from one that has not enabled it or failed: the former
// needs another kernel, and no kernel argument or firmware setting helps.
TEST(SystemChecksIommu, KernelConfigWithoutTheDriverNamesAnotherKernel) {
    Facts f = base("AuthenticAMD");
    f.kernel.release = "6.1.0-57-cloud-amd64";
    f.system.iommu.ivrs = true;
    f.system.iommu.kernel_config = "/boot/config-6.1.0-57-cloud-amd64";
    f.system.iommu.kernel_config_options = {{"CONFIG_AMD_IOMMU", "n"}, {"CONFIG_INTEL_IOMMU", "y"}, {"CONFIG_IRQ_REMAP", "y"}};
    Finding r = run(f, "iommu.enabled");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_TRUE(has(r.message, "the firmware describes AMD-Vi (ACPI IVRS table) but the running kernel has no driver for it: "
                               "6.1.0-57-cloud-amd64 is built without CONFIG_AMD_IOMMU (/boot/config-6.1.0-57-cloud-amd64)"))
        << r.message;
    EXPECT_TRUE(has(r.remediation.text, "linux-image-amd64 rather than this -cloud flavour")) << r.remediation.text;
    EXPECT_TRUE(has(r.remediation.text, "no amd_iommu= argument needed")) << r.remediation.text;
    EXPECT_FALSE(has(r.remediation.text, "firmware")) << r.remediation.text;
    EXPECT_EQ(r.remediation.commands, std::vector<std::string>{"apt-get install linux-image-amd64"});
    EXPECT_EQ(r.evidence["kernel_config"]["CONFIG_AMD_IOMMU"], "n");
    EXPECT_EQ(r.evidence["kernel_config"]["file"], "/boot/config-6.1.0-57-cloud-amd64");

    // Built in, yet no groups: it failed to come up, and the log says why.
    f.system.iommu.kernel_config_options["CONFIG_AMD_IOMMU"] = "y";
    r = run(f, "iommu.enabled");
    EXPECT_TRUE(has(r.message, "has CONFIG_AMD_IOMMU, yet it created no IOMMU groups: AMD-Vi failed to initialise")) << r.message;
    EXPECT_EQ(r.remediation.commands, std::vector<std::string>{"dmesg | grep -i -e AMD-Vi -e IOMMU"});

    // Intel without the driver: another kernel, and then intel_iommu=on.
    Facts i = base();
    i.system.iommu.dmar = true;
    i.system.iommu.kernel_config = "/boot/config-6.1.0-50-amd64";
    i.system.iommu.kernel_config_options = {{"CONFIG_AMD_IOMMU", "y"}, {"CONFIG_INTEL_IOMMU", "n"}};
    r = run(i, "iommu.enabled");
    EXPECT_TRUE(has(r.message, "describes Intel VT-d (ACPI DMAR table) but the running kernel has no driver for it")) << r.message;
    EXPECT_TRUE(has(r.remediation.text, "Debian's linux-image-amd64 has it")) << r.remediation.text;
    EXPECT_EQ(r.remediation.commands, (std::vector<std::string>{"apt-get install linux-image-amd64",
                                                                "sed -i 's/^GRUB_CMDLINE_LINUX=\"/&intel_iommu=on /' /etc/default/grub",
                                                                "update-grub"}));
    // With the driver, the argument is what is missing (as without a config).
    i.system.iommu.kernel_config_options["CONFIG_INTEL_IOMMU"] = "y";
    EXPECT_TRUE(has(run(i, "iommu.enabled").message, "add intel_iommu=on"));
}

TEST(SystemChecksMemory, NumaHugepagesRequestAndOddSizes) {
    Facts f = base();
    f.kernel.cmdline += " hugepagesz=1G hugepages=0:2,1:2";
    f.system.memory.pools[1].nr = 3;
    f.system.memory.pools[1].free = 3;
    f.system.mounts.push_back({"/dev/hugepages1G", "hugetlbfs", "hugetlbfs", "rw,pagesize=1024M"});
    Finding r = run(f, "memory.hugepages");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_TRUE(has(r.message, "asks for 4 × 1 GiB pages but only 3 could be reserved")) << r.message;

    f.kernel.cmdline = "ro hugepagesz=16G hugepages=1";
    r = run(f, "memory.hugepages");
    EXPECT_TRUE(has(r.message, "a size this CPU or kernel does not offer")) << r.message;
}

TEST(SystemChecksMemory, AvailableFallsBackToMemFreeAndCountsHugepages) {
    Facts f = base();
    f.system.memory.mem_available_kb.reset();
    f.system.memory.mem_free_kb = 700 * 1024;
    f.system.memory.pools[0].nr = 512;
    f.system.memory.pools[0].free = 500;
    Finding r = run(f, "memory.available");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.level, Level::Recommended);
    EXPECT_TRUE(has(r.message, "only 700 MiB of 32 GiB RAM is available for guests (MemFree)")) << r.message;
    EXPECT_TRUE(has(r.message, "1000 MiB sits in free huge pages")) << r.message;
    EXPECT_EQ(r.remediation.commands.back(), "echo 12 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");

    f.system.memory.mem_free_kb = 2 * 1024 * 1024;
    EXPECT_EQ(run(f, "memory.available").status, Status::Pass);
    f.system.memory.meminfo_read = false;
    EXPECT_EQ(run(f, "memory.available").status, Status::Unknown);
}

TEST(SystemChecksMemory, KsmSavingsAndMissingKsm) {
    Facts f = base();
    f.system.memory.ksm_run = "1";
    f.system.memory.ksm_pages_sharing = 262144;
    f.system.memory.ksm_pages_shared = 1000;
    Finding r = run(f, "memory.ksm");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_TRUE(has(r.message, "262144 pages shared, saving about 1 GiB")) << r.message;
    f.system.memory.ksm_run.reset();
    EXPECT_EQ(run(f, "memory.ksm").status, Status::Skip);
}

TEST(SystemChecksCgroups, V2WithUnreadableControllersIsUnknown) {
    Facts f = base();
    f.system.mounts = {{"/sys/fs/cgroup", "cgroup2", "cgroup2", "rw,nsdelegate,memory_recursiveprot"}};
    f.system.cgroups.v2_mountpoint = "/sys/fs/cgroup";
    EXPECT_EQ(run(f, "kernel.cgroups").status, Status::Unknown);
    f.system.cgroups.v2_controllers = "cpuset cpu io memory hugetlb pids rdma misc";
    EXPECT_EQ(run(f, "kernel.cgroups").status, Status::Pass);
}

TEST(SystemChecksCgroups, V1ControllerNotMountedGetsMountCommand) {
    Facts f = base();
    f.system.mounts = {{"/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cgroup", "rw,cpu,cpuacct"},
                       {"/sys/fs/cgroup/cpuset", "cgroup", "cgroup", "rw,cpuset"},
                       {"/sys/fs/cgroup/memory", "cgroup", "cgroup", "rw,memory"},
                       {"/sys/fs/cgroup/devices", "cgroup", "cgroup", "rw,devices"}};
    f.system.cgroups.proc_cgroups_read = true;
    f.system.cgroups.controllers = {{"cpu", 2, 1, true}, {"cpuacct", 2, 1, true}, {"cpuset", 3, 1, true},
                                    {"memory", 4, 1, true}, {"devices", 5, 1, true}, {"blkio", 0, 1, true}};
    const Finding r = run(f, "kernel.cgroups");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_TRUE(has(r.message, "no cgroup v1 hierarchy is mounted with blkio")) << r.message;
    EXPECT_EQ(r.remediation.commands,
              std::vector<std::string>{"mkdir -p /sys/fs/cgroup/blkio && mount -t cgroup -o blkio cgroup /sys/fs/cgroup/blkio"});
}

TEST(SystemChecksConfidential, TrustDomainAndKvmAmdSevOff) {
    Facts f = base();
    f.cpu.dump = dump("GenuineIntel", 0x21);
    cpuid::Leaf l21{0x21, 0, 0, 0, 0, 0};
    put_string(l21, "IntelTDX    ");
    f.cpu.dump.leaves.push_back(l21);
    Finding r = run(f, "confidential.tdx");
    EXPECT_EQ(r.status, Status::Skip);
    EXPECT_TRUE(has(r.message, "itself a TDX trust domain")) << r.message;

    Facts a = base("AuthenticAMD");
    a.cpu.dump = dump("AuthenticAMD", 0x10, 0x8000001f);
    a.cpu.dump.leaves.push_back({0x8000001f, 0, 0x1000f, 0x41b3, 509, 100});  // sme sev sev_es
    a.cpu.cpuinfo_flags = {"svm", "sme", "sev", "sev_es"};
    a.modules.present.push_back({"kvm_amd", false, "live", {{"sev", "N"}, {"sev_es", "N"}, {"nested", "1"}}});
    a.system.confidential.dev_sev = true;
    a.kernel.cmdline += " kvm_amd.sev=0";
    r = run(a, "confidential.sev");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_TRUE(has(r.message, "as kvm_amd.sev=0 on the kernel command line asks")) << r.message;
    EXPECT_EQ(r.remediation.commands, (std::vector<std::string>{"sed -i 's/ *kvm_amd.sev=0//' /etc/default/grub", "update-grub"}));

    a.kernel.cmdline = "ro";
    r = run(a, "confidential.sev");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.remediation.commands.front(), "echo 'options kvm_amd sev=1 sev_es=1' > /etc/modprobe.d/kvm-sev.conf");

    a.modules.present.back().parameters.erase("sev");
    EXPECT_TRUE(has(run(a, "confidential.sev").message, "built without it")) << run(a, "confidential.sev").message;

    Facts nocpu = base();
    nocpu.cpu.available = false;
    EXPECT_EQ(run(nocpu, "confidential.sev").status, Status::Unknown);
    EXPECT_EQ(run(nocpu, "confidential.tdx").status, Status::Unknown);
}

TEST(SystemChecksSecurity, AppArmorStatesNeverSuggestDisabling) {
    Facts f = base();
    auto& s = f.system.security;
    s.lsm = "lockdown,capability,landlock,yama,apparmor";
    s.apparmor_enabled = "Y";
    s.apparmor_profiles_read = true;
    s.apparmor_profiles_total = 40;
    s.libvirtd_profile_file = true;
    s.virt_aa_helper_profile_file = true;
    s.libvirt_qemu_template = true;

    std::vector<Finding> seen;
    Finding r = run(f, "security.apparmor");  // installed, not loaded
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.remediation.commands.front(),
              "apparmor_parser -r /etc/apparmor.d/usr.sbin.libvirtd /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper");
    seen.push_back(r);

    s.libvirtd_profile_disabled = true;
    r = run(f, "security.apparmor");
    EXPECT_TRUE(has(r.message, "disabled (/etc/apparmor.d/disable/usr.sbin.libvirtd)")) << r.message;
    EXPECT_EQ(r.remediation.commands.front(), "rm /etc/apparmor.d/disable/usr.sbin.libvirtd");
    seen.push_back(r);

    s.libvirtd_profile_disabled = false;
    s.apparmor_libvirt_profiles = {"libvirtd (complain)", "virt-aa-helper (complain)"};
    r = run(f, "security.apparmor");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_TRUE(has(r.remediation.commands.front(), "aa-enforce")) << r.remediation.commands.front();
    seen.push_back(r);

    s.apparmor_libvirt_profiles = {"libvirtd (enforce)", "virt-aa-helper (enforce)"};
    s.qemu_conf_read = true;
    s.qemu_security_driver = "\"none\"";
    r = run(f, "security.apparmor");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_TRUE(has(r.message, "security_driver = \"none\"")) << r.message;
    seen.push_back(r);

    s.qemu_security_driver.reset();
    s.libvirt_qemu_template = false;
    EXPECT_TRUE(has(run(f, "security.apparmor").message, "TEMPLATE.qemu is missing"));

    // Another LSM wins: not active, nothing to judge.
    s.lsm = "lockdown,capability,selinux";
    EXPECT_EQ(run(f, "security.apparmor").status, Status::Skip);

    for (const auto& x : seen)
        for (const auto& cmd : x.remediation.commands) {
            EXPECT_FALSE(has(cmd, "aa-disable") || has(cmd, "apparmor=0") || has(cmd, "aa-teardown") || has(cmd, "aa-complain")) << cmd;
        }
}

TEST(SystemChecksSecurity, SelinuxWithoutPolicyAndCifsImages) {
    Facts f = base();
    auto& s = f.system.security;
    s.selinuxfs = true;
    s.selinux_enforce = "0";
    s.selinux_policy_loaded = false;
    Finding r = run(f, "security.selinux");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_TRUE(has(r.message, "no policy is loaded")) << r.message;

    s.selinux_policy_loaded = true;
    s.selinux_enforce = "1";
    s.selinux_config_mode = "enforcing";
    s.selinux_config_type = "targeted";
    s.selinux_booleans = {{"virt_use_samba", "0 0"}, {"virt_use_nfs", "1 1"}};
    s.images_mount = MountEntry{"/var/lib/libvirt/images", "cifs", "//filer/vms", "rw,vers=3.1.1"};
    r = run(f, "security.selinux");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.remediation.commands, std::vector<std::string>{"setsebool -P virt_use_samba 1"});

    s.images_mount = MountEntry{"/", "xfs", "/dev/mapper/rhel-root", "rw,attr2"};
    r = run(f, "security.selinux");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_TRUE(has(r.message, "SELinux is enforcing (targeted policy)")) << r.message;
    for (const auto& cmd : r.remediation.commands) EXPECT_FALSE(has(cmd, "setenforce 0")) << cmd;
}

TEST(SystemFacts, JsonRoundTripKeepsEverything) {
    Facts f = base();
    f.system.iommu.units = {{"dmar0", "0xf00f4a"}};
    f.system.iommu.domain_types = {{"DMA-FQ", 3}};
    f.system.cgroups.controllers = {{"memory", 0, 12, false}};
    f.system.security.images_mount = MountEntry{"/var/lib/libvirt/images", "nfs4", "nas:/vm", "rw"};
    f.system.security.selinux_booleans = {{"virt_use_nfs", "0 0"}};
    const Facts back = facts_from_json(facts_to_json(f));
    EXPECT_EQ(nlohmann::json(back.system), nlohmann::json(f.system));
    // Recordings made before this area existed have no "system" key at all.
    nlohmann::json old = facts_to_json(f);
    old.erase("system");
    EXPECT_FALSE(facts_from_json(old).system.probed);
}

TEST(SystemChecksMemory, StrictOvercommitWithLittleRoomWarns) {
    Facts f = base();
    auto& m = f.system.memory;
    m.overcommit_memory = "2";
    m.overcommit_ratio = 50;
    m.commit_limit_kb = 16 * 1024 * 1024;
    m.committed_as_kb = 15 * 1024 * 1024 + 512 * 1024;
    Finding r = run(f, "memory.overcommit");
    EXPECT_EQ(r.status, Status::Warn);
    EXPECT_EQ(r.level, Level::Recommended);
    EXPECT_TRUE(has(r.message, "only 512 MiB of the 16 GiB commit limit is left")) << r.message;
    EXPECT_EQ(r.remediation.commands.front(), "sysctl -w vm.overcommit_memory=0");
    EXPECT_EQ(r.evidence["overcommit_ratio"], 50);

    m.committed_as_kb = 4 * 1024 * 1024;  // 12 GiB of room
    r = run(f, "memory.overcommit");
    EXPECT_EQ(r.status, Status::Pass);
    EXPECT_TRUE(has(r.message, "12 GiB of the 16 GiB commit limit is left")) << r.message;

    m.committed_as_kb = 17 * 1024 * 1024;  // already over the limit: no room at all
    EXPECT_EQ(run(f, "memory.overcommit").status, Status::Warn);
    m.commit_limit_kb.reset();
    EXPECT_EQ(run(f, "memory.overcommit").status, Status::Warn);
}

TEST(SystemChecksMemory, HeuristicOvercommitPassesAndUnreadableIsUnknown) {
    Facts f = base();
    f.system.memory.overcommit_memory = "0";
    EXPECT_EQ(run(f, "memory.overcommit").status, Status::Pass);
    f.system.memory.overcommit_memory = "1";
    EXPECT_EQ(run(f, "memory.overcommit").status, Status::Pass);
    f.system.memory.overcommit_memory = "7";
    EXPECT_EQ(run(f, "memory.overcommit").status, Status::Unknown);
    f.system.memory.overcommit_memory.reset();
    EXPECT_EQ(run(f, "memory.overcommit").status, Status::Unknown);
}

}  // namespace
}  // namespace kvmready
