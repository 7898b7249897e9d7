// Live invariants of the system probe on whatever machine runs the tests: what
// the probe reports must match what the kernel shows through other means
// (directory listings, sysinfo(2), statfs(2)), and a recording of the probe
// must replay to the same facts.
#include <sys/statfs.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <linux/magic.h>

#include "core/probe.hpp"
#include "host/recording_host.hpp"

namespace kvmready {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

SystemFacts probe_live() {
    auto h = host::make_live_host();
    Facts f;
    f.kernel.cmdline = slurp("/proc/cmdline");
    probe_system(*h, ProbeOptions{}, f);
    return f.system;
}

TEST(SystemLive, HugePagePoolsAreTheDirectoriesUnderSys) {
    const fs::path dir = "/sys/kernel/mm/hugepages";
    if (!fs::exists(dir)) GTEST_SKIP() << "kernel without HugeTLB (no " << dir << ")";
    std::set<uint64_t> sizes;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string n = e.path().filename();
        ASSERT_EQ(n.rfind("hugepages-", 0), 0u) << n;
        sizes.insert(std::stoull(n.substr(10)));
    }
    const SystemFacts s = probe_live();
    std::set<uint64_t> probed;
    for (const auto& p : s.memory.pools) {
        probed.insert(p.size_kb);
        const fs::path pd = dir / ("hugepages-" + std::to_string(p.size_kb) + "kB");
        ASSERT_TRUE(p.nr.has_value()) << pd;
        // The pools only change when someone writes nr_hugepages; compare with a re-read.
        EXPECT_EQ(*p.nr, std::stoull(slurp(pd / "nr_hugepages")));
        EXPECT_LE(p.free.value_or(0), *p.nr + p.surplus.value_or(0));
    }
    EXPECT_EQ(probed, sizes);
    EXPECT_TRUE(std::is_sorted(s.memory.pools.begin(), s.memory.pools.end(),
                               [](const auto& a, const auto& b) { return a.size_kb < b.size_kb; }));
    // The default size is one of the pools.
    ASSERT_TRUE(s.memory.hugepagesize_kb.has_value());
    EXPECT_TRUE(sizes.count(*s.memory.hugepagesize_kb));
}

TEST(SystemLive, MemTotalMatchesSysinfo) {
    struct sysinfo si {};
    ASSERT_EQ(::sysinfo(&si), 0);
    const uint64_t total_kb = static_cast<uint64_t>(si.totalram) * si.mem_unit / 1024;
    const SystemFacts s = probe_live();
    ASSERT_TRUE(s.memory.mem_total_kb.has_value());
    EXPECT_EQ(*s.memory.mem_total_kb, total_kb);
    ASSERT_TRUE(s.memory.mem_available_kb.has_value());
    EXPECT_LE(*s.memory.mem_available_kb, *s.memory.mem_total_kb);
}

TEST(SystemLive, IommuGroupsAndCgroupLayoutMatchTheKernel) {
    const SystemFacts s = probe_live();
    const fs::path groups = "/sys/kernel/iommu_groups";
    size_t n = 0;
    if (fs::exists(groups)) n = static_cast<size_t>(std::distance(fs::directory_iterator(groups), fs::directory_iterator{}));
    EXPECT_EQ(static_cast<size_t>(s.iommu.groups), n);
    EXPECT_EQ(s.iommu.dmar, fs::exists("/sys/firmware/acpi/tables/DMAR"));
    EXPECT_EQ(s.iommu.ivrs, fs::exists("/sys/firmware/acpi/tables/IVRS"));

    // /sys/fs/cgroup is itself cgroup2 exactly on v2 hosts; otherwise the
    // probe saw v1 hierarchies (or nothing) there.
    struct statfs sf {};
    ASSERT_EQ(::statfs("/sys/fs/cgroup", &sf), 0);
    const bool v2_root = sf.f_type == CGROUP2_SUPER_MAGIC;
    const bool has_v1 = std::any_of(s.mounts.begin(), s.mounts.end(), [](const auto& m) { return m.fstype == "cgroup"; });
    if (v2_root) {
        EXPECT_EQ(s.cgroups.v2_mountpoint, "/sys/fs/cgroup");
        ASSERT_TRUE(s.cgroups.v2_controllers.has_value());
        EXPECT_EQ(*s.cgroups.v2_controllers, [] {
            std::string c = slurp("/sys/fs/cgroup/cgroup.controllers");
            while (!c.empty() && c.back() == '\n') c.pop_back();
            return c;
        }());
    } else {
        EXPECT_NE(s.cgroups.v2_mountpoint, "/sys/fs/cgroup");
    }
    // Every enabled controller /proc/cgroups binds to a hierarchy is mounted somewhere.
    for (const auto& c : s.cgroups.controllers) {
        if (c.hierarchy == 0 || !c.enabled || !has_v1) continue;
        const bool mounted = std::any_of(s.mounts.begin(), s.mounts.end(), [&](const auto& m) {
            return m.fstype == "cgroup" && ("," + m.super_options + ",").find("," + c.name + ",") != std::string::npos;
        });
        EXPECT_TRUE(mounted) << c.name << " is bound to hierarchy " << c.hierarchy << " but not found in mountinfo";
    }
    // The THP mode is the bracketed word of the file.
    if (s.memory.thp_enabled) {
        const std::string raw = slurp("/sys/kernel/mm/transparent_hugepage/enabled");
        EXPECT_NE(raw.find("[" + s.memory.thp_enabled->substr(s.memory.thp_enabled->find('[') + 1,
                                                              s.memory.thp_enabled->find(']') - s.memory.thp_enabled->find('[') - 1) +
                           "]"),
                  std::string::npos);
    }
}

// What the probe read on this machine, recorded and replayed, gives the same
// SystemFacts: nothing it decides on is lost in a recording.
TEST(SystemLive, RecordingReplaysToTheSameFacts) {
    auto live = host::make_live_host();
    host::RecordingHost rec(*live);
    Facts a;
    probe_system(rec, ProbeOptions{}, a);
    const fs::path dir = fs::temp_directory_path() / ("kvmready-system-rec-" + std::to_string(::getpid()));
    struct Cleanup {
        fs::path d;
        ~Cleanup() {
            std::error_code ec;
            fs::remove_all(d, ec);
        }
    } cleanup{dir};
    rec.write(dir.string(), "system_live_test");
    auto replay = host::make_rooted_host(dir.string());
    Facts b;
    probe_system(*replay, ProbeOptions{}, b);
    nlohmann::json ja = a.system, jb = b.system;
    // Empty directories do not survive a recording (nothing inside to keep):
    // only whether /sys/kernel/iommu_groups exists can differ, and only when it is empty.
    if (a.system.iommu.groups == 0) ja["iommu"].erase("groups_dir"), jb["iommu"].erase("groups_dir");
    EXPECT_EQ(ja.dump(2), jb.dump(2));
}

}  // namespace
}  // namespace kvmready
