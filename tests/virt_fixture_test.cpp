// Real recordings against a real libvirtd (tests/fixtures/README-virt.md):
// replaying each tree gives the statuses kvmready printed while recording it
// (saved in the tree as .kvmready/recorded-check.json). Statuses, not
// messages: wording may improve, conclusions on the same facts may not drift.
//
// KVMREADY_RECORD_VIRT_FIXTURES=DIR re-creates the trees under DIR with the
// test harness (root only); that is how the committed ones were made.
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/process.hpp"
#include "support/libvirt_daemon.hpp"

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using kvmready::testsupport::LibvirtDaemon;

const fs::path kFixtures = KVMREADY_FIXTURES_DIR;

// The checks this area owns, and the kvm.* ones they read.
bool compared(const std::string& id) {
    for (const char* p : {"qemu.", "libvirt.", "storage.", "kvm."})
        if (id.rfind(p, 0) == 0) return true;
    return false;
}

json run_json(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {KVMREADY_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = kvmready::host::run_process(argv, 20000);
    EXPECT_TRUE(r.started) << r.error;
    return json::parse(r.out, nullptr, false);
}

class VirtFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(VirtFixture, ReplayGivesTheRecordedStatuses) {
    const fs::path tree = kFixtures / GetParam();
    std::ifstream in(tree / ".kvmready/recorded-check.json");
    ASSERT_TRUE(in) << "missing " << tree / ".kvmready/recorded-check.json";
    const json recorded = json::parse(in);
    const json replay = run_json({"check", "--json", "--root", tree.string()});
    ASSERT_TRUE(replay.is_object());
    std::map<std::string, json> by_id;
    for (const auto& c : replay["checks"]) by_id[c["id"]] = c;
    int n = 0;
    for (const auto& c : recorded["checks"]) {
        const std::string id = c["id"];
        if (!compared(id)) continue;
        ASSERT_TRUE(by_id.count(id)) << id << " is gone";
        EXPECT_EQ(by_id[id]["status"], c["status"]) << id << "\nrecorded: " << c["message"] << "\nreplayed: " << by_id[id]["message"];
        ++n;
    }
    EXPECT_GE(n, 8) << "the recording has this area's checks";
}

INSTANTIATE_TEST_SUITE_P(Trees, VirtFixture, ::testing::Values("virt-libvirtd-netns", "virt-libvirtd-stopped", "virt-qemu-user-no-kvm"),
                         [](const auto& info) {
                             std::string s = info.param;
                             for (auto& ch : s)
                                 if (ch == '-') ch = '_';
                             return s;
                         });

// What each tree shows, so a re-recording that lost the situation is caught.
TEST(VirtFixtureContent, EachTreeCapturesItsSituation) {
    auto statuses = [](const char* tree) {
        std::map<std::string, std::string> m;
        const json doc = run_json({"check", "--json", "--root", (kFixtures / tree).string()});  // named: range-for would drop a temporary
        for (const auto& c : doc["checks"]) m[c["id"].get<std::string>()] = c["status"].get<std::string>();
        return m;
    };
    auto healthy = statuses("virt-libvirtd-netns");
    EXPECT_EQ(healthy["libvirt.daemon"], "pass");
    EXPECT_EQ(healthy["libvirt.network"], "pass");
    EXPECT_EQ(healthy["storage.pool"], "pass");
    EXPECT_EQ(healthy["kvm.qemu-user-access"], "pass");
    auto stopped = statuses("virt-libvirtd-stopped");
    EXPECT_EQ(stopped["libvirt.daemon"], "fail");
    EXPECT_EQ(stopped["libvirt.network"], "skip");
    auto noaccess = statuses("virt-qemu-user-no-kvm");
    EXPECT_EQ(noaccess["kvm.qemu-user-access"], "fail");
    EXPECT_TRUE(noaccess["libvirt.domcaps-kvm"] == "unknown" || noaccess["libvirt.domcaps-kvm"] == "warn");
}

// ---- re-recording (not a regular test) ----

void record(const LibvirtDaemon& d, const fs::path& out, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {KVMREADY_BINARY, "check", "--json", "--record", out.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const auto r = d.run_inside(argv, 30000);
    ASSERT_TRUE(r.started) << r.error;
    ASSERT_TRUE(fs::exists(out / ".kvmready/host.json")) << r.err;
    std::ofstream(out / ".kvmready/recorded-check.json") << r.out;
}

TEST(VirtFixtureRecord, RecordTreesAgainstARealDaemon) {
    const char* dir = std::getenv("KVMREADY_RECORD_VIRT_FIXTURES");
    if (!dir) GTEST_SKIP() << "set KVMREADY_RECORD_VIRT_FIXTURES=DIR to re-record the virt fixtures into DIR";
    if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    const fs::path base = dir;
    fs::create_directories(base);
    {
        LibvirtDaemon d;
        d.start();
        ASSERT_EQ(d.virsh({"net-define", "/usr/share/libvirt/networks/default.xml"}).exit_code, 0);
        ASSERT_EQ(d.virsh({"net-start", "default"}).exit_code, 0);
        ASSERT_EQ(d.virsh({"net-autostart", "default"}).exit_code, 0);
        ASSERT_EQ(d.virsh({"pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images"}).exit_code, 0);
        ASSERT_EQ(d.virsh({"pool-build", "default"}).exit_code, 0);
        ASSERT_EQ(d.virsh({"pool-start", "default"}).exit_code, 0);
        ASSERT_EQ(d.virsh({"pool-autostart", "default"}).exit_code, 0);
        record(d, base / "virt-libvirtd-netns");
        d.pause();
        record(d, base / "virt-libvirtd-stopped");
        d.resume();
    }
    {
        LibvirtDaemon::Options o;
        o.private_kvm_node = false;
        o.warm_up = false;
        LibvirtDaemon d(o);
        d.start();
        ASSERT_EQ(d.virsh({"net-define", "/usr/share/libvirt/networks/default.xml"}).exit_code, 0);
        ASSERT_EQ(d.virsh({"net-start", "default"}).exit_code, 0);
        ASSERT_EQ(d.virsh({"net-autostart", "default"}).exit_code, 0);
        record(d, base / "virt-qemu-user-no-kvm");
    }
}

// KVMREADY_VIRT_HOLD_SECONDS=N: start a daemon with the default network and
// pool, print how to reach it, and keep it for N seconds (for hyperfine).
TEST(VirtFixtureRecord, HoldADaemonForMeasurements) {
    const char* secs = std::getenv("KVMREADY_VIRT_HOLD_SECONDS");
    if (!secs) GTEST_SKIP() << "set KVMREADY_VIRT_HOLD_SECONDS=N to keep a private libvirtd running for N seconds";
    if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    LibvirtDaemon d;
    d.start();
    for (std::vector<std::string> a : {std::vector<std::string>{"net-define", "/usr/share/libvirt/networks/default.xml"},
                                       {"net-start", "default"}, {"net-autostart", "default"},
                                       {"pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images"}, {"pool-start", "default"},
                                       {"pool-autostart", "default"}})
        ASSERT_EQ(d.virsh(a).exit_code, 0) << a[0];
    std::cerr << "uri=" << d.uri() << "\nnsenter -t " << d.namespace_pid() << " -m -n -- COMMAND\n" << std::flush;
    std::this_thread::sleep_for(std::chrono::seconds(std::atoi(secs)));
}

}  // namespace
