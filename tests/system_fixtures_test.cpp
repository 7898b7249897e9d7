// The system-area checks (iommu, memory, kernel.cgroups, confidential,
// security) judged by the real binary on host trees: recordings made inside
// real QEMU guests with tests/fixtures/record-guest-system.sh (a virtual
// Intel or AMD IOMMU, real huge page pools, cgroup v1/v2, a loaded SELinux
// policy, AppArmor with libvirt's profiles), this machine's own recording,
// and the few trees derive-system.py builds from them for what TCG cannot
// emulate (SEV, TDX). Provenance: tests/fixtures/README-system.md.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/check.hpp"
#include "support/spawn.hpp"
#include "support/temp_dir.hpp"
#include <nlohmann/json.hpp>

extern char** environ;

namespace {

using nlohmann::json;

const std::string kBinary = KVMREADY_BINARY;
const std::string kFixtures = KVMREADY_FIXTURES_DIR;

struct Run {
    int exit_code = -1;
    std::string out, err;
};

// The tool, both streams captured, killed after 30 s.
Run run_kvmready(const std::vector<std::string>& args) {
    std::vector<std::string> argv{kBinary};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto c = kvmready::testsupport::run_captured(argv, 30000);
    if (!c.started) ADD_FAILURE() << c.spawn_error;
    if (c.timed_out) ADD_FAILURE() << "kvmready did not finish within 30 s";
    Run r;
    r.exit_code = c.exit_code;
    r.out = c.out;
    r.err = c.err;
    return r;
}

// The findings of `check --root TREE --json <system categories>`, by id.
std::map<std::string, json> judge(const std::string& tree) {
    const Run r = run_kvmready({"check", "--root", kFixtures + "/" + tree, "--json", "iommu", "memory", "kernel", "confidential",
                                "security"});
    std::map<std::string, json> by_id;
    json j;
    try {
        j = json::parse(r.out);
    } catch (const json::exception& e) {
        ADD_FAILURE() << tree << ": not JSON (" << e.what() << "); exit " << r.exit_code << ", stderr: " << r.err;
        return by_id;
    }
    for (const auto& c : j.at("checks")) by_id[c.at("id").get<std::string>()] = c;
    size_t expected = 0;  // the registry's checks of those categories, however many there are
    for (const auto& c : kvmready::registry())
        for (const char* cat : {"iommu", "memory", "kernel", "confidential", "security"}) expected += c.category() == cat;
    EXPECT_EQ(by_id.size(), expected) << tree << ": every system check";
    return by_id;
}

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

std::string status(const json& c) { return c.at("status").get<std::string>(); }
std::string message(const json& c) { return c.at("message").get<std::string>(); }
std::vector<std::string> commands(const json& c) { return c.at("remediation").at("commands").get<std::vector<std::string>>(); }

// Under every warn/fail/unknown: a remediation text; a fix id whenever
// there are commands that change the host.
void expect_remedied(const json& c) {
    const std::string s = status(c);
    if (s != "warn" && s != "fail" && s != "unknown") return;
    EXPECT_FALSE(c.at("remediation").at("text").get<std::string>().empty()) << c.dump(2);
}

TEST(SystemFixtureIntelIommu, RealVtdGuestWithV2AndHugePagePools) {
    auto c = judge("system-intel-iommu");
    ASSERT_FALSE(c.empty());
    for (const auto& [id, f] : c) expect_remedied(f);
    const auto& io = c["iommu.enabled"];
    EXPECT_EQ(status(io), "pass");
    EXPECT_EQ(io["level"], "optional");
    EXPECT_TRUE(contains(message(io), "Intel VT-d is on: 2 IOMMU groups (dmar0)")) << message(io);
    EXPECT_EQ(io["evidence"]["acpi_dmar"], true);
    EXPECT_EQ(io["evidence"]["iommu_groups"], 2);
    EXPECT_EQ(io["evidence"]["cmdline"]["intel_iommu"], "on");
    EXPECT_EQ(io["evidence"]["default_domain_types"]["DMA-FQ"], 2);
    EXPECT_EQ(io["evidence"]["vfio"], true);  // vfio-pci was loaded in the guest

    // hugepagesz=1G hugepages=1 on a 3 GiB guest: the kernel logged "allocating
    // 1 of page size 1.00 GiB failed" (console.log); 64 × 2 MiB succeeded.
    const auto& hp = c["memory.hugepages"];
    EXPECT_EQ(status(hp), "warn");
    EXPECT_EQ(message(hp), "the kernel command line asks for 1 × 1 GiB pages but only 0 could be reserved at boot (not enough free memory)");
    EXPECT_EQ(hp["evidence"]["cmdline_requested"]["1 GiB"], 1);
    EXPECT_EQ(hp["evidence"]["cmdline_requested"]["2 MiB"], 64);
    EXPECT_EQ(hp["evidence"]["pools"][0]["size"], "2 MiB");
    EXPECT_EQ(hp["evidence"]["pools"][0]["nr"], 64);
    EXPECT_EQ(hp["evidence"]["pools"][0]["free"], 64);
    EXPECT_EQ(hp["evidence"]["pools"][1]["size"], "1 GiB");
    EXPECT_EQ(hp["evidence"]["pools"][1]["nr"], 0);
    EXPECT_EQ(hp["evidence"]["hugetlbfs_mounts"]["/dev/hugepages"], "2 MiB");
    EXPECT_EQ(hp["evidence"]["hugetlbfs_mounts"]["/dev/hugepages1G"], "1 GiB");
    EXPECT_EQ(commands(hp), std::vector<std::string>{"sysctl -w vm.compact_memory=1 && echo 1 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"});
    EXPECT_EQ(hp["remediation"]["fix_id"], "memory.hugepages");

    const auto& cg = c["kernel.cgroups"];
    EXPECT_EQ(status(cg), "pass");
    EXPECT_EQ(cg["level"], "recommended");
    EXPECT_EQ(cg["evidence"]["mode"], "v2");
    EXPECT_EQ(cg["evidence"]["v2_subtree_control"], "cpuset cpu io memory pids");
    EXPECT_EQ(cg["evidence"]["controllers_available"], json({"cpu", "cpuset", "memory", "io"}));

    EXPECT_EQ(status(c["memory.thp"]), "pass");
    EXPECT_EQ(c["memory.thp"]["evidence"]["mode"], "always");
    EXPECT_EQ(c["memory.thp"]["evidence"]["defrag"], "always defer defer+madvise [madvise] never");
    EXPECT_EQ(status(c["memory.available"]), "pass");
    EXPECT_EQ(c["memory.available"]["evidence"]["hugepages_free"], "128 MiB");
    EXPECT_EQ(status(c["confidential.sev"]), "skip");
    EXPECT_TRUE(contains(message(c["confidential.sev"]), "not an AMD CPU (GenuineIntel)"));
    // securityfs was not mounted in this guest: AppArmor's profile list is unreadable, never "pass".
    EXPECT_EQ(status(c["security.apparmor"]), "unknown");
    EXPECT_EQ(commands(c["security.apparmor"]).front(), "mount -t securityfs securityfs /sys/kernel/security");
}

TEST(SystemFixtureIntelDmarOff, RealIommuOffV1CgroupsLowMemory) {
    auto c = judge("system-intel-dmar-off");
    ASSERT_FALSE(c.empty());
    for (const auto& [id, f] : c) expect_remedied(f);
    const auto& io = c["iommu.enabled"];
    EXPECT_EQ(status(io), "warn");
    EXPECT_EQ(message(io), "the IOMMU is switched off on the kernel command line (intel_iommu=off), so no device can be assigned to a guest");
    EXPECT_EQ(io["evidence"]["acpi_dmar"], true);
    EXPECT_EQ(io["evidence"]["iommu_groups"], 0);
    EXPECT_EQ(commands(io), (std::vector<std::string>{"sed -i 's/ *intel_iommu=off//' /etc/default/grub", "update-grub"}));
    EXPECT_TRUE(io["remediation"]["fix_id"].is_null());  // manual commands, no fix

    const auto& hp = c["memory.hugepages"];
    EXPECT_EQ(status(hp), "warn");
    EXPECT_TRUE(contains(message(hp), "64 × 2 MiB pages are reserved but no hugetlbfs of that size is mounted")) << message(hp);
    EXPECT_EQ(commands(hp), std::vector<std::string>{"mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages"});

    const auto& thp = c["memory.thp"];
    EXPECT_EQ(status(thp), "warn");
    EXPECT_EQ(thp["evidence"]["mode"], "never");
    EXPECT_FALSE(thp["evidence"].contains("reason"));  // asked for on the command line, not the kernel's own choice
    EXPECT_EQ(commands(thp).front(), "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled");
    EXPECT_EQ(commands(thp)[1], "sed -i 's/^GRUB_CMDLINE_LINUX=\"/&transparent_hugepage=madvise /' /etc/default/grub");

    const auto& ksm = c["memory.ksm"];
    EXPECT_EQ(status(ksm), "pass");
    EXPECT_EQ(ksm["evidence"]["run"], "1");
    EXPECT_TRUE(contains(message(ksm), "KSM is running (run=1) but has merged nothing yet"));

    const auto& av = c["memory.available"];
    EXPECT_EQ(status(av), "warn");
    EXPECT_EQ(av["level"], "recommended");
    EXPECT_TRUE(contains(message(av), "of 470 MiB RAM is available for guests, less than 1 GiB")) << message(av);
    EXPECT_LT(av["evidence"]["mem_available_kb"].get<uint64_t>(), 1024u * 1024);
    EXPECT_EQ(commands(av).back(), "echo 0 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");

    const auto& cg = c["kernel.cgroups"];
    EXPECT_EQ(status(cg), "pass");
    EXPECT_EQ(cg["evidence"]["mode"], "v1");
    EXPECT_EQ(cg["evidence"]["v1_mounts"]["cpuacct"], "/sys/fs/cgroup/cpu,cpuacct");
    EXPECT_EQ(cg["evidence"]["v1_mounts"]["blkio"], "/sys/fs/cgroup/blkio");
    EXPECT_TRUE(contains(message(cg), "cgroup v1 (legacy) with every controller libvirt uses"));
    EXPECT_TRUE(cg["evidence"].contains("note"));
}

TEST(SystemFixtureAmdIommu, RealIvrsWithoutDriverAppArmorLibvirtCgroupDisabled) {
    auto c = judge("system-amd-iommu");
    ASSERT_FALSE(c.empty());
    for (const auto& [id, f] : c) expect_remedied(f);
    const auto& io = c["iommu.enabled"];
    EXPECT_EQ(status(io), "warn");
    EXPECT_TRUE(contains(message(io), "ACPI IVRS table")) << message(io);
    EXPECT_TRUE(contains(message(io), "CONFIG_AMD_IOMMU"));  // Debian's cloud kernel is built without it
    EXPECT_EQ(io["evidence"]["acpi_ivrs"], true);
    EXPECT_EQ(io["evidence"]["acpi_dmar"], false);

    const auto& cg = c["kernel.cgroups"];
    EXPECT_EQ(status(cg), "warn");
    EXPECT_EQ(cg["evidence"]["controllers_missing"], json({"memory"}));
    EXPECT_EQ(cg["evidence"]["cmdline"]["cgroup_disable"], "memory");
    EXPECT_TRUE(contains(message(cg), "memory is disabled by cgroup_disable=memory on the kernel command line"));
    EXPECT_EQ(commands(cg), (std::vector<std::string>{"sed -i 's/ *cgroup_disable=memory//' /etc/default/grub", "update-grub"}));

    const auto& hp = c["memory.hugepages"];
    EXPECT_EQ(status(hp), "pass");
    EXPECT_EQ(message(hp), "huge pages reserved for guests: 32 × 2 MiB (32 free); hugetlbfs mounted at /dev/hugepages");

    // Loaded by the real apparmor_parser; libvirt-<uuid> written by the real virt-aa-helper.
    const auto& aa = c["security.apparmor"];
    EXPECT_EQ(status(aa), "pass");
    EXPECT_EQ(aa["evidence"]["daemon_profile"], "libvirtd (enforce)");
    EXPECT_EQ(aa["evidence"]["helper_profile"], "virt-aa-helper (enforce)");
    EXPECT_EQ(aa["evidence"]["guest_profiles"], 1);
    EXPECT_EQ(aa["evidence"]["profiles_loaded"], 7);
    EXPECT_TRUE(contains(message(aa), "(1 loaded now)"));
    EXPECT_EQ(status(c["security.selinux"]), "skip");
    EXPECT_TRUE(contains(message(c["security.selinux"]), "active LSMs: lockdown,capability,landlock,yama,apparmor,tomoyo,bpf"));

    // TCG's EPYC model stops at CPUID 8000001Eh: there is no SEV to see.
    EXPECT_EQ(status(c["confidential.sev"]), "skip");
    EXPECT_TRUE(contains(message(c["confidential.sev"]), "no CPUID leaf 8000001Fh"));
    EXPECT_EQ(status(c["confidential.tdx"]), "skip");
}

// The same recorded guest with its kernel's build configuration at
// /boot/config-RELEASE (as Debian installs it; the recording predates
// kvmready reading it): "not set" or a missing line means no driver, "=y"
// means AMD-Vi failed to come up, a file that is no kernel config changes
// nothing. A bundle made of the tree replays the diagnosis.
TEST(SystemFixtureAmdIommu, KernelConfigTellsNoDriverFromFailedInit) {
    namespace fs = std::filesystem;
    kvmready::testsupport::TempDir tmp;
    const fs::path tree = tmp.path / "tree";
    fs::copy(kFixtures + "/system-amd-iommu", tree, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    std::string release;
    std::ifstream(tree / "proc/sys/kernel/osrelease") >> release;
    ASSERT_FALSE(release.empty());
    fs::create_directories(tree / "boot");
    const auto iommu_with = [&](const std::string& config) {
        std::ofstream(tree / "boot" / ("config-" + release), std::ios::trunc) << config;
        const auto r = run_kvmready({"check", "--root", tree.string(), "--json", "iommu"});
        const json j = json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
        return j.is_discarded() ? json() : j.at("checks").at(0);
    };
    json io = iommu_with("CONFIG_X86=y\n# CONFIG_AMD_IOMMU is not set\nCONFIG_INTEL_IOMMU=y\n");
    EXPECT_TRUE(contains(message(io), release + " is built without CONFIG_AMD_IOMMU (/boot/config-" + release + ")")) << message(io);
    EXPECT_EQ(io["evidence"]["kernel_config"]["CONFIG_AMD_IOMMU"], "n");
    EXPECT_EQ(io["evidence"]["kernel_config"]["CONFIG_INTEL_IOMMU"], "y");
    // A support bundle carries the file: check --from judges alike.
    const std::string bundle = (tmp.path / "bundle.tar.gz").string();
    const auto rep = run_kvmready({"report", "--root", tree.string(), "-o", bundle});
    ASSERT_EQ(rep.exit_code, 0) << rep.out << rep.err;
    const json replay = json::parse(run_kvmready({"check", "--from", bundle, "--json", "iommu"}).out, nullptr, false);
    ASSERT_FALSE(replay.is_discarded());
    EXPECT_EQ(replay.at("checks").at(0)["message"], io["message"]);
    EXPECT_EQ(replay.at("checks").at(0)["evidence"], io["evidence"]);
    io = iommu_with("CONFIG_X86=y\n");
    EXPECT_TRUE(contains(message(io), "is built without CONFIG_AMD_IOMMU")) << "a missing line: its dependencies are off: " << message(io);
    io = iommu_with("CONFIG_X86=y\nCONFIG_AMD_IOMMU=y\n");
    EXPECT_TRUE(contains(message(io), "has CONFIG_AMD_IOMMU, yet it created no IOMMU groups: AMD-Vi failed to initialise")) << message(io);
    io = iommu_with("not a kernel configuration\n");
    EXPECT_TRUE(contains(message(io), "this kernel lacks CONFIG_AMD_IOMMU or AMD-Vi failed to initialise")) << message(io);
    EXPECT_FALSE(io["evidence"].contains("kernel_config"));
}

TEST(SystemFixtureSelinux, RealPolicyPermissiveAndEnforcing) {
    auto p = judge("system-selinux-permissive");
    ASSERT_FALSE(p.empty());
    const auto& sp = p["security.selinux"];
    EXPECT_EQ(status(sp), "warn");
    EXPECT_TRUE(contains(message(sp), "SELinux is permissive"));
    EXPECT_EQ(sp["evidence"]["enforce"], "0");
    EXPECT_EQ(sp["evidence"]["policy_loaded"], true);
    EXPECT_EQ(sp["evidence"]["booleans"]["virt_use_nfs"], "0 0");
    EXPECT_EQ(commands(sp).back(), "sed -i 's/^SELINUX=.*/SELINUX=enforcing/' /etc/selinux/config");
    for (const auto& cmd : commands(sp)) EXPECT_FALSE(contains(cmd, "setenforce 0")) << "never switch SELinux off";
    EXPECT_EQ(status(p["security.apparmor"]), "skip");
    // 470 MiB guest: the kernel itself left THP off (hugepage_init, < 512 MiB).
    EXPECT_EQ(status(p["memory.thp"]), "warn");
    EXPECT_TRUE(p["memory.thp"]["evidence"].contains("reason"));
    // The initramfs mounts no cgroup filesystem.
    EXPECT_EQ(status(p["kernel.cgroups"]), "warn");
    EXPECT_EQ(p["kernel.cgroups"]["evidence"]["mode"], "none");

    auto e = judge("system-selinux-enforcing");
    ASSERT_FALSE(e.empty());
    const auto& se = e["security.selinux"];
    EXPECT_EQ(status(se), "warn");
    EXPECT_EQ(se["evidence"]["enforce"], "1");
    EXPECT_TRUE(contains(message(se), "/etc/selinux/config says SELINUX=permissive"));
    EXPECT_EQ(commands(se), std::vector<std::string>{"sed -i 's/^SELINUX=.*/SELINUX=enforcing/' /etc/selinux/config"});

    auto n = judge("system-selinux-nfs");
    ASSERT_FALSE(n.empty());
    const auto& sn = n["security.selinux"];
    EXPECT_EQ(status(sn), "warn");
    EXPECT_TRUE(contains(message(sn), "/var/lib/libvirt/images is on nfs4 (nas01:/export/vm-images), but virt_use_nfs is off"));
    EXPECT_EQ(commands(sn), std::vector<std::string>{"setsebool -P virt_use_nfs 1"});
    EXPECT_TRUE(sn["remediation"]["fix_id"].is_null());  // manual commands, no fix
}

TEST(SystemFixtureSev, DerivedFromRealEpycGuestWithGenoaCpuid) {
    auto c = judge("system-amd-sev");
    ASSERT_FALSE(c.empty());
    const auto& s = c["confidential.sev"];
    EXPECT_EQ(status(s), "pass");
    EXPECT_TRUE(contains(message(s), "SEV is available for guests: kvm_amd sev=Y, sev_es=N, /dev/sev present, up to 1006 encrypted guests"));
    EXPECT_TRUE(contains(message(s), "SEV-ES is off because the firmware left no ASIDs for it"));
    EXPECT_EQ(s["evidence"]["cpuid_8000001f"], json({"sme", "sev", "sev_es"}));
    EXPECT_EQ(s["evidence"]["encrypted_guests_max"], 1006);
    EXPECT_EQ(s["evidence"]["misc_capacity"], "sev 1006\nsev_es 0");
    EXPECT_EQ(status(c["confidential.tdx"]), "skip");

    auto off = judge("system-amd-sev-firmware-off");
    ASSERT_FALSE(off.empty());
    const auto& o = off["confidential.sev"];
    EXPECT_EQ(status(o), "warn");
    EXPECT_TRUE(contains(message(o), "the kernel removed it from /proc/cpuinfo: the firmware has not enabled memory encryption"));
    EXPECT_EQ(o["evidence"]["cpuinfo_sev"], false);
    EXPECT_EQ(o["remediation"]["applicability"], "manual");
}

TEST(SystemFixtureTdx, DerivedFromRealGuestWithSapphireRapidsCpuid) {
    auto c = judge("system-intel-tdx");
    ASSERT_FALSE(c.empty());
    EXPECT_EQ(status(c["confidential.tdx"]), "pass");
    EXPECT_EQ(message(c["confidential.tdx"]), "TDX is enabled in KVM (kvm_intel tdx=Y): trust domains can be created");
    EXPECT_EQ(c["confidential.tdx"]["evidence"]["cpuinfo_tdx_host_platform"], true);
    EXPECT_EQ(status(c["confidential.sev"]), "skip");

    auto off = judge("system-intel-tdx-kvm-off");
    ASSERT_FALSE(off.empty());
    const auto& t = off["confidential.tdx"];
    EXPECT_EQ(status(t), "warn");
    EXPECT_EQ(t["evidence"]["kvm_intel_tdx"], "N");
    EXPECT_EQ(commands(t), (std::vector<std::string>{"echo 'options kvm_intel tdx=1' > /etc/modprobe.d/kvm-tdx.conf",
                                                     "modprobe -r kvm_intel && modprobe kvm_intel"}));
    EXPECT_TRUE(t["remediation"]["fix_id"].is_null());  // manual commands, no fix
}

// This machine: a PVM host (KVM guest itself) on hybrid cgroups, no IOMMU.
TEST(SystemFixturePvmHost, RealRecordingOfThisMachine) {
    auto c = judge("system-pvm-host");
    ASSERT_FALSE(c.empty());
    const auto& io = c["iommu.enabled"];
    EXPECT_EQ(status(io), "warn");
    EXPECT_TRUE(contains(message(io), "this virtual machine has no virtual IOMMU (no ACPI DMAR table)")) << message(io);
    const auto& cg = c["kernel.cgroups"];
    EXPECT_EQ(status(cg), "pass");
    EXPECT_EQ(cg["evidence"]["mode"], "hybrid");
    EXPECT_EQ(cg["evidence"]["v2_mount"], "/sys/fs/cgroup/unified");
    EXPECT_EQ(cg["evidence"]["v2_controllers"], "hugetlb");
    EXPECT_EQ(c["memory.thp"]["evidence"]["mode"], "madvise");
    EXPECT_EQ(c["memory.ksm"]["evidence"]["run"], "0");
    EXPECT_EQ(status(c["memory.hugepages"]), "pass");
    EXPECT_TRUE(contains(message(c["memory.hugepages"]), "sizes offered: 2 MiB, 1 GiB"));
    EXPECT_EQ(status(c["security.selinux"]), "skip");
    EXPECT_EQ(status(c["security.apparmor"]), "skip");
}

// Trees recorded before this area existed (the other fixtures) must not
// crash or pass on missing data.
TEST(SystemFixtureOldRecording, MissingFactsAreUnknownOrSkipNeverPass) {
    auto c = judge("intel-vtx");
    ASSERT_FALSE(c.empty());
    for (const char* id : {"iommu.enabled", "memory.hugepages", "memory.thp", "memory.ksm", "memory.available", "kernel.cgroups"}) {
        EXPECT_NE(status(c[id]), "pass") << id << ": " << message(c[id]);
        EXPECT_NE(status(c[id]), "error") << id << ": " << message(c[id]);
    }
    EXPECT_EQ(status(c["memory.available"]), "unknown");
    EXPECT_EQ(status(c["iommu.enabled"]), "unknown");
}

}  // namespace
