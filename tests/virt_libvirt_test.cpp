// kvmready against a REAL libvirtd: the test starts its own virtlogd and
// libvirtd (tests/support/libvirt_daemon.hpp) in a private network and mount
// namespace, defines a NAT network and a dir pool there with virsh, and runs
// the real kvmready binary against it. Also a dead daemon (must fail in under
// a second) and a SIGSTOPped one (kvmready must give up and exit within 6 s).
#include "support/libvirt_daemon.hpp"

#include <grp.h>
#include <sys/statvfs.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using kvmready::testsupport::LibvirtDaemon;
using kvmready::testsupport::split_command;
using json = nlohmann::json;
namespace fs = std::filesystem;

struct ToolRun {
    int exit_code = -1;
    bool timed_out = false;
    double wall_ms = 0;
    std::string out, err;
    json doc;
};

json finding(const json& doc, const std::string& id) {
    for (const auto& c : doc.at("checks"))
        if (c.at("id") == id) return c;
    ADD_FAILURE() << "no finding " << id;
    return json::object();
}

std::string status(const json& doc, const std::string& id) { return finding(doc, id).value("status", "?"); }

// The real binary, inside the daemon's namespaces (so it sees virbr0 and the
// daemon's /dev/kvm), timed from fork to exit.
ToolRun kvmready_inside(const LibvirtDaemon& d, std::vector<std::string> args, int timeout_ms = 15000, const std::string& as_user = "",
                        const std::vector<gid_t>& extra_groups = {}) {
    std::vector<std::string> argv = {KVMREADY_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto t0 = std::chrono::steady_clock::now();
    auto r = d.run_inside(argv, timeout_ms, as_user, extra_groups);
    ToolRun out;
    out.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    out.exit_code = r.exit_code;
    out.timed_out = r.timed_out;
    out.out = r.out;
    out.err = r.err + r.error;
    if (!r.out.empty() && r.out.front() == '{') out.doc = json::parse(r.out, nullptr, false);
    return out;
}

ToolRun kvmready_outside(std::vector<std::string> args, int timeout_ms = 15000) {
    std::vector<std::string> argv = {KVMREADY_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto t0 = std::chrono::steady_clock::now();
    auto r = kvmready::host::run_process(argv, timeout_ms);
    ToolRun out;
    out.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    out.exit_code = r.exit_code;
    out.timed_out = r.timed_out;
    out.out = r.out;
    out.err = r.err + r.error;
    if (!r.out.empty() && r.out.front() == '{') out.doc = json::parse(r.out, nullptr, false);
    return out;
}

// Run a remediation command as printed (it must be exact and copy-pasteable):
// split like a shell would and run it where kvmready ran.
void run_remediation(const LibvirtDaemon& d, const std::string& cmd) {
    const auto argv = split_command(cmd);
    ASSERT_FALSE(argv.empty()) << "not a plain command: " << cmd;
    const auto r = d.run_inside(argv, 20000);
    ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.out << r.err << r.error;
}

std::string virsh_out(const LibvirtDaemon& d, const std::vector<std::string>& args) {
    auto r = d.virsh(args);
    EXPECT_EQ(r.exit_code, 0) << "virsh " << args.at(0) << ": " << r.err << r.error;
    return r.out;
}

bool pvm_host() { return fs::exists("/sys/module/kvm_pvm"); }

// One daemon for the suite: its first capabilities call probes QEMU (~8 s),
// later ones and later instances with the same /dev/kvm node use the cache.
class LibvirtLive : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (!LibvirtDaemon::unavailable_reason().empty()) return;
        daemon_ = std::make_unique<LibvirtDaemon>();
        try {
            daemon_->start();
        } catch (const std::exception& e) {
            start_error_ = e.what();
        }
    }
    static void TearDownTestSuite() { daemon_.reset(); }
    void SetUp() override {
        if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
        ASSERT_TRUE(start_error_.empty()) << start_error_;
    }
    // The suite's tests may run in any order: each states what it needs.
    static void ensure_network_and_pool() {
        auto& d = *daemon_;
        if (d.virsh({"net-info", "default"}).exit_code != 0) {
            ASSERT_EQ(d.virsh({"net-define", "/usr/share/libvirt/networks/default.xml"}).exit_code, 0);
            ASSERT_EQ(d.virsh({"net-autostart", "default"}).exit_code, 0);
        }
        if (virsh_out(d, {"net-info", "default"}).find("Active:         no") != std::string::npos) {
            ASSERT_EQ(d.virsh({"net-start", "default"}).exit_code, 0);
        }
        if (d.virsh({"pool-info", "default"}).exit_code != 0) {
            ASSERT_EQ(d.virsh({"pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images"}).exit_code, 0);
            ASSERT_EQ(d.virsh({"pool-build", "default"}).exit_code, 0);
            ASSERT_EQ(d.virsh({"pool-autostart", "default"}).exit_code, 0);
        }
        if (virsh_out(d, {"pool-info", "default"}).find("running") == std::string::npos) {
            ASSERT_EQ(d.virsh({"pool-start", "default"}).exit_code, 0);
        }
    }
    static std::unique_ptr<LibvirtDaemon> daemon_;
    static std::string start_error_;
};

std::unique_ptr<LibvirtDaemon> LibvirtLive::daemon_;
std::string LibvirtLive::start_error_;

// A fresh daemon has neither network nor pool: kvmready says so and prints
// commands; running exactly those commands makes both checks pass.
TEST_F(LibvirtLive, MissingNetworkAndPoolAreFixedByThePrintedCommands) {
    auto& d = *daemon_;
    (void)d.virsh({"net-destroy", "default"});
    (void)d.virsh({"net-undefine", "default"});
    (void)d.virsh({"pool-destroy", "default"});
    (void)d.virsh({"pool-undefine", "default"});
    const ToolRun before = kvmready_inside(d, {"check", "--connect", d.uri(), "--json", "libvirt", "storage"});
    ASSERT_TRUE(before.doc.is_object()) << before.out << before.err;
    const json net = finding(before.doc, "libvirt.network");
    const json pool = finding(before.doc, "storage.pool");
    EXPECT_EQ(net["status"], "fail") << net.dump(2);
    EXPECT_EQ(net["remediation"]["fix_id"], "libvirt.network-default");
    EXPECT_EQ(pool["status"], "fail") << pool.dump(2);
    EXPECT_EQ(pool["remediation"]["fix_id"], "storage.pool-default");
    ASSERT_EQ(net["remediation"]["commands"].size(), 3u);
    EXPECT_NE(net["remediation"]["commands"][0].get<std::string>().find("net-define /usr/share/libvirt/networks/default.xml"),
              std::string::npos);
    for (const auto& c : net["remediation"]["commands"]) run_remediation(d, c.get<std::string>());
    for (const auto& c : pool["remediation"]["commands"]) run_remediation(d, c.get<std::string>());
    const ToolRun after = kvmready_inside(d, {"check", "--connect", d.uri(), "--json", "libvirt", "storage"});
    ASSERT_TRUE(after.doc.is_object()) << after.out << after.err;
    EXPECT_EQ(status(after.doc, "libvirt.network"), "pass") << finding(after.doc, "libvirt.network").dump(2);
    EXPECT_EQ(status(after.doc, "storage.pool"), "pass") << finding(after.doc, "storage.pool").dump(2);
    // The commands really did it, as libvirt itself reports.
    EXPECT_NE(virsh_out(d, {"net-info", "default"}).find("Autostart:      yes"), std::string::npos);
    EXPECT_NE(virsh_out(d, {"pool-info", "default"}).find("running"), std::string::npos);
}

// What kvmready reports equals what the daemon, virsh and the kernel say.
TEST_F(LibvirtLive, ReportsTheDaemonNetworkPoolAndDomainCapabilitiesAsLibvirtDoes) {
    auto& d = *daemon_;
    ensure_network_and_pool();
    const ToolRun r = kvmready_inside(d, {"check", "--connect", d.uri(), "--json"});
    ASSERT_TRUE(r.doc.is_object()) << r.out << r.err;

    const json dm = finding(r.doc, "libvirt.daemon");
    EXPECT_EQ(dm["status"], "pass") << dm.dump(2);
    EXPECT_EQ(dm["evidence"]["pid"], d.libvirtd_pid());
    EXPECT_EQ(dm["evidence"]["daemon"], "libvirtd");
    EXPECT_EQ(dm["evidence"]["socket"], d.socket_path());
    // `virsh version --daemon`: "Running against daemon: 9.0.0"
    std::smatch m;
    const std::string ver = virsh_out(d, {"version", "--daemon"});
    ASSERT_TRUE(std::regex_search(ver, m, std::regex("Running against daemon: ([0-9.]+)"))) << ver;
    EXPECT_EQ(dm["evidence"]["version"], m[1].str());
    EXPECT_NE(dm["message"].get<std::string>().find(m[1].str()), std::string::npos);
    EXPECT_EQ(status(r.doc, "libvirt.manage"), "pass") << "root may manage domains";

    const json net = finding(r.doc, "libvirt.network");
    EXPECT_EQ(net["status"], "pass") << net.dump(2);
    EXPECT_EQ(net["evidence"]["bridge"], "virbr0");
    EXPECT_EQ(net["evidence"]["bridge_exists"], true);
    EXPECT_EQ(net["evidence"]["forward"], "nat");
    EXPECT_EQ(net["evidence"]["addresses"], json::array({"192.168.122.1/24"}));
    // The bridge exists only in the test's namespace, not on this machine.
    EXPECT_FALSE(fs::exists("/sys/class/net/virbr0")) << "virbr0 leaked out of the namespace";
    const auto ip = d.run_inside({"ip", "-br", "addr", "show", "virbr0"}, 5000);
    EXPECT_NE(ip.out.find("192.168.122.1/24"), std::string::npos) << ip.out << ip.err;

    const json pool = finding(r.doc, "storage.pool");
    EXPECT_EQ(pool["status"], "pass") << pool.dump(2);
    EXPECT_EQ(pool["evidence"]["target"], "/var/lib/libvirt/images");
    // /var/lib/libvirt is the test's directory: statvfs it from here.
    struct statvfs sv {};
    ASSERT_EQ(::statvfs((d.base_dir() + "/lib/images").c_str(), &sv), 0);
    const double avail = static_cast<double>(sv.f_bavail) * sv.f_frsize;
    const double reported = pool["evidence"]["free_for_guests"].get<double>();
    EXPECT_NEAR(reported, avail, 256.0 * 1024 * 1024) << "free space differs from statvfs by more than 256 MiB";
    EXPECT_GT(pool["evidence"]["capacity"].get<double>(), 0);

    // Domain capabilities: compare with `virsh domcapabilities` itself.
    const auto dcr = d.virsh({"domcapabilities", "--virttype", "kvm"});
    const json caps = finding(r.doc, "libvirt.domcaps-kvm");
    EXPECT_EQ(caps["evidence"]["tcg_fallback"], true) << caps.dump(2);
    if (dcr.exit_code != 0) {
        // libvirt offers no kvm domain type on this machine (QEMU found no
        // usable /dev/kvm): kvmready fails the check with libvirt's own words
        // and points at TCG, whatever KVM's reason.
        EXPECT_EQ(caps["status"], "fail") << caps.dump(2);
        const std::string err = caps["evidence"].value("error", "");
        EXPECT_FALSE(err.empty()) << caps.dump(2);
        EXPECT_NE(dcr.err.find(err), std::string::npos) << "virsh: " << dcr.err << "\nkvmready: " << err;
        EXPECT_NE(caps["remediation"]["commands"].dump().find("--virt-type qemu"), std::string::npos) << caps.dump(2);
    } else {
        const std::string& dc = dcr.out;
        ASSERT_TRUE(std::regex_search(dc, m, std::regex("<machine>([^<]+)</machine>"))) << dc;
        EXPECT_EQ(caps["evidence"]["machine"], m[1].str()) << caps.dump(2);
        size_t loaders = 0;
        const std::regex loader_re("<value>(/[^<]+)</value>");
        for (auto it = std::sregex_iterator(dc.begin(), dc.end(), loader_re); it != std::sregex_iterator(); ++it)
            ++loaders;
        EXPECT_EQ(caps["evidence"]["loaders"].size(), loaders);
        EXPECT_FALSE(caps["evidence"]["machine_types"].empty());
        // The daemon's /dev/kvm is 0660 root:kvm and libvirt-qemu is in kvm.
        EXPECT_EQ(status(r.doc, "kvm.qemu-user-access"), "pass") << finding(r.doc, "kvm.qemu-user-access").dump(2);
        if (pvm_host()) {
            // libvirt offers kvm (QEMU opened /dev/kvm), but PVM cannot run ordinary guests.
            EXPECT_EQ(caps["status"], "warn") << caps.dump(2);
            EXPECT_NE(caps["message"].get<std::string>().find("PVM"), std::string::npos);
        } else {
            EXPECT_EQ(caps["status"], "pass") << caps.dump(2);
        }
    }
    EXPECT_EQ(status(r.doc, "qemu.binary"), "pass");
    EXPECT_EQ(status(r.doc, "storage.images-dir"), "pass");
}

// An inactive network and a stopped pool: fail, with the commands that start them.
TEST_F(LibvirtLive, InactiveNetworkAndPoolFailWithTheCommandsThatStartThem) {
    auto& d = *daemon_;
    ensure_network_and_pool();
    ASSERT_EQ(d.virsh({"net-destroy", "default"}).exit_code, 0);
    ASSERT_EQ(d.virsh({"pool-destroy", "default"}).exit_code, 0);
    const ToolRun r = kvmready_inside(d, {"check", "--connect", d.uri(), "--json", "libvirt.network", "storage.pool"});
    ASSERT_TRUE(r.doc.is_object()) << r.out << r.err;
    const json net = finding(r.doc, "libvirt.network");
    EXPECT_EQ(net["status"], "fail");
    EXPECT_NE(net["message"].get<std::string>().find("not active"), std::string::npos) << net.dump(2);
    EXPECT_FALSE(net["evidence"].contains("bridge_exists")) << "an inactive network's bridge is not looked for";
    const json pool = finding(r.doc, "storage.pool");
    EXPECT_EQ(pool["status"], "fail");
    EXPECT_NE(pool["message"].get<std::string>().find("not active"), std::string::npos) << pool.dump(2);
    for (const auto& c : net["remediation"]["commands"]) run_remediation(d, c.get<std::string>());
    for (const auto& c : pool["remediation"]["commands"]) run_remediation(d, c.get<std::string>());
    const ToolRun again = kvmready_inside(d, {"check", "--connect", d.uri(), "--json", "libvirt.network", "storage.pool"});
    EXPECT_EQ(status(again.doc, "libvirt.network"), "pass");
    EXPECT_EQ(status(again.doc, "storage.pool"), "pass");
}

// A pool whose target QEMU's user cannot reach: kvmready's verdict agrees
// with a real access(2) by that user, and its chmod makes it reachable.
TEST_F(LibvirtLive, PoolTargetTheQemuUserCannotReachAgreesWithRealAccess) {
    auto& d = *daemon_;
    const fs::path locked = fs::path(d.base_dir()) / "lib/locked";
    fs::create_directories(locked / "images");
    ::chmod(locked.c_str(), 0700);
    ::chmod((locked / "images").c_str(), 0755);
    (void)d.virsh({"pool-destroy", "locked"});
    (void)d.virsh({"pool-undefine", "locked"});
    ASSERT_EQ(d.virsh({"pool-define-as", "locked", "dir", "--target", "/var/lib/libvirt/locked/images"}).exit_code, 0);
    ASSERT_EQ(d.virsh({"pool-start", "locked"}).exit_code, 0);
    ASSERT_EQ(d.virsh({"pool-autostart", "locked"}).exit_code, 0);
    auto real_access = [&] {
        return d.run_inside({"test", "-x", "/var/lib/libvirt/locked/images"}, 5000, "libvirt-qemu").exit_code == 0;
    };
    const ToolRun r = kvmready_inside(d, {"check", "--connect", d.uri(), "--json", "--pool", "locked", "storage.pool"});
    const json pool = finding(r.doc, "storage.pool");
    EXPECT_FALSE(real_access());
    EXPECT_EQ(pool["status"], "fail") << pool.dump(2);
    EXPECT_EQ(pool["evidence"]["blocked_at"], "/var/lib/libvirt/locked");
    ASSERT_EQ(pool["remediation"]["commands"].size(), 1u);
    run_remediation(d, pool["remediation"]["commands"][0].get<std::string>());
    EXPECT_TRUE(real_access());
    const ToolRun after = kvmready_inside(d, {"check", "--connect", d.uri(), "--json", "--pool", "locked", "storage.pool"});
    EXPECT_EQ(status(after.doc, "storage.pool"), "pass") << finding(after.doc, "storage.pool").dump(2);
    (void)d.virsh({"pool-destroy", "locked"});
    (void)d.virsh({"pool-undefine", "locked"});
}

// A pool on a 64 MiB tmpfs: low space, and images on RAM.
TEST_F(LibvirtLive, SmallTmpfsPoolWarnsAboutSpaceAndRam) {
    auto& d = *daemon_;
    fs::create_directories(fs::path(d.base_dir()) / "lib/small");
    const auto mnt = d.run_inside({"mount", "-t", "tmpfs", "-o", "size=64m", "kvmready-test", "/var/lib/libvirt/small"}, 5000);
    ASSERT_EQ(mnt.exit_code, 0) << mnt.err;
    (void)d.virsh({"pool-destroy", "small"});
    (void)d.virsh({"pool-undefine", "small"});
    ASSERT_EQ(d.virsh({"pool-define-as", "small", "dir", "--target", "/var/lib/libvirt/small"}).exit_code, 0);
    ASSERT_EQ(d.virsh({"pool-start", "small"}).exit_code, 0);
    ASSERT_EQ(d.virsh({"pool-autostart", "small"}).exit_code, 0);
    const ToolRun r = kvmready_inside(d, {"check", "--connect", d.uri(), "--json", "--pool", "small", "storage"});
    const json pool = finding(r.doc, "storage.pool");
    EXPECT_EQ(pool["status"], "warn") << pool.dump(2);
    EXPECT_NE(pool["message"].get<std::string>().find("only 0.1 GiB free"), std::string::npos) << pool["message"];
    EXPECT_EQ(pool["evidence"]["fstype"], "tmpfs");
    const json dir = finding(r.doc, "storage.images-dir");
    EXPECT_EQ(dir["status"], "warn") << dir.dump(2);
    EXPECT_EQ(dir["evidence"]["mount_point"], "/var/lib/libvirt/small");
    EXPECT_EQ(dir["level"], "optional");
    (void)d.virsh({"pool-destroy", "small"});
    (void)d.virsh({"pool-undefine", "small"});
    (void)d.run_inside({"umount", "/var/lib/libvirt/small"}, 5000);
}

// With libvirt's default auth (polkit, even for read-only connections) and
// no D-Bus/polkit running, as on this machine, libvirtd turns every non-root
// user away: kvmready says the daemon runs but refused the user, and why.
TEST_F(LibvirtLive, WithoutPolkitNonRootUsersAreTurnedAway) {
    auto& d = *daemon_;
    if (fs::exists("/run/dbus/system_bus_socket")) GTEST_SKIP() << "a system D-Bus runs here; polkit may admit the user";
    const ToolRun r = kvmready_inside(d, {"check", "--json", "libvirt"}, 15000, "nobody");
    ASSERT_TRUE(r.doc.is_object()) << r.out << r.err;
    const json dm = finding(r.doc, "libvirt.daemon");
    EXPECT_EQ(dm["status"], "fail") << dm.dump(2);
    EXPECT_EQ(dm["evidence"]["pid"], d.libvirtd_pid());
    EXPECT_NE(dm["message"].get<std::string>().find("runs but refused nobody's connection"), std::string::npos) << dm["message"];
    // No fix changes libvirtd's auth settings (that is a policy choice):
    // the hint names the settings by hand and no fix id.
    EXPECT_TRUE(dm["remediation"]["fix_id"].is_null()) << dm.dump(2);
    EXPECT_FALSE(dm["remediation"]["text"].get<std::string>().empty()) << dm.dump(2);
    EXPECT_EQ(status(r.doc, "libvirt.manage"), "skip");
}

// The socket's group decides (auth none, rw socket 0770 group libvirt): nobody
// may read but not manage, and domain capabilities are refused to read-only
// connections; nobody holding group libvirt may manage and sees them.
TEST(LibvirtSocketGroup, GroupLibvirtDecidesWhoMayManage) {
    if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    struct group* g = ::getgrnam("libvirt");
    if (!g) GTEST_SKIP() << "no group libvirt on this machine";
    const gid_t libvirt_gid = g->gr_gid;
    LibvirtDaemon::Options o;
    // A fresh daemon probes QEMU on its first domain-capabilities query, which
    // can outlast kvmready's 3 s deadline on a cold machine (seen on a clean
    // CI clone); warm it up so this test judges permissions, not that probe.
    o.warm_up = true;
    o.config_append = {{"libvirtd.conf",
                        "unix_sock_group = \"libvirt\"\nunix_sock_rw_perms = \"0770\"\nauth_unix_ro = \"none\"\nauth_unix_rw = \"none\""}};
    LibvirtDaemon d(o);
    ASSERT_NO_THROW(d.start());
    const ToolRun r = kvmready_inside(d, {"check", "--json", "libvirt"}, 20000, "nobody");
    ASSERT_TRUE(r.doc.is_object()) << r.out << r.err;
    EXPECT_EQ(status(r.doc, "libvirt.daemon"), "pass") << finding(r.doc, "libvirt.daemon").dump(2);
    const json m = finding(r.doc, "libvirt.manage");
    EXPECT_EQ(m["status"], "fail") << m.dump(2);
    EXPECT_EQ(m["remediation"]["commands"], json::array({"usermod -aG libvirt nobody"}));
    EXPECT_EQ(status(r.doc, "libvirt.domcaps-kvm"), "unknown") << finding(r.doc, "libvirt.domcaps-kvm").dump(2);

    const ToolRun member = kvmready_inside(d, {"check", "--json", "libvirt"}, 20000, "nobody", {libvirt_gid});
    ASSERT_TRUE(member.doc.is_object()) << member.out << member.err;
    EXPECT_EQ(status(member.doc, "libvirt.manage"), "pass") << finding(member.doc, "libvirt.manage").dump(2);
    const json caps = finding(member.doc, "libvirt.domcaps-kvm");
    EXPECT_NE(caps["status"], "unknown") << caps.dump(2);
    // A member reads the capabilities: the kvm ones, or (no usable /dev/kvm
    // here) libvirt's own refusal to offer kvm, as root would see it.
    const auto dcr = d.virsh({"domcapabilities", "--virttype", "kvm"});
    if (dcr.exit_code == 0) {
        EXPECT_FALSE(caps["evidence"].value("machine", "").empty()) << caps.dump(2);
    } else {
        EXPECT_NE(dcr.err.find(caps["evidence"].value("error", "?")), std::string::npos) << caps.dump(2) << dcr.err;
    }

    // For another user named with --user, membership in the user database decides.
    const ToolRun other = kvmready_inside(d, {"check", "--json", "--user", "nobody", "libvirt.manage"});
    EXPECT_EQ(status(other.doc, "libvirt.manage"), "fail");
    EXPECT_NE(finding(other.doc, "libvirt.manage")["message"].get<std::string>().find("not in group libvirt"), std::string::npos);
}

// SIGSTOP: the socket still accepts, nothing answers. kvmready must give up
// at its deadline, name the stopped process and exit.
TEST_F(LibvirtLive, StoppedDaemonIsAbandonedWithinSecondsAndNamed) {
    auto& d = *daemon_;
    struct Resume {
        LibvirtDaemon& d;
        ~Resume() { d.resume(); }
    } resume{d};
    d.pause();
    const ToolRun r = kvmready_outside({"check", "--connect", d.uri(), "--json"}, 20000);
    EXPECT_FALSE(r.timed_out) << "kvmready hung on a stopped daemon";
    EXPECT_LT(r.wall_ms, 6000) << "kvmready took " << r.wall_ms << " ms";
    ASSERT_TRUE(r.doc.is_object()) << r.out << r.err;
    const json dm = finding(r.doc, "libvirt.daemon");
    EXPECT_EQ(dm["status"], "fail") << dm.dump(2);
    EXPECT_EQ(dm["evidence"]["pid"], d.libvirtd_pid());
    EXPECT_EQ(dm["evidence"]["state"], "T");
    EXPECT_EQ(dm["remediation"]["commands"], json::array({"kill -CONT " + std::to_string(d.libvirtd_pid())}));
    for (const char* id : {"libvirt.manage", "libvirt.domcaps-kvm", "libvirt.network", "storage.pool"}) {
        EXPECT_EQ(status(r.doc, id), "skip") << id;
        EXPECT_NE(finding(r.doc, id)["message"].get<std::string>().find("libvirt.daemon"), std::string::npos) << id;
    }
    // The stopped daemon fails only recommended checks: whatever the verdict
    // (a machine without KVM is not ready anyway), no required check fails
    // because of it.
    for (const auto& c : r.doc["checks"])
        if (c["status"] == "fail" && c["level"] == "required") {
            EXPECT_NE(c["category"], "libvirt") << c.dump(2);
            EXPECT_NE(c["category"], "storage") << c.dump(2);
        }
    if (status(r.doc, "kvm.api") == "pass") {
        EXPECT_NE(r.doc["verdict"], "not_ready");
    }
    std::cerr << "[ measured ] kvmready check with a SIGSTOPped libvirtd: " << r.wall_ms << " ms\n";
}

// A crashed daemon (SIGKILL: its socket file stays, nobody listens) and a
// stopped one (socket gone) both fail in well under a second.
TEST(LibvirtDead, DeadDaemonFailsFast) {
    if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    LibvirtDaemon::Options o;
    o.warm_up = false;
    LibvirtDaemon d(o);
    ASSERT_NO_THROW(d.start());
    const std::string uri = d.uri();
    d.kill_libvirtd();
    ASSERT_TRUE(fs::exists(d.socket_path())) << "SIGKILL should leave the socket file behind";
    const ToolRun refused = kvmready_outside({"check", "--connect", uri, "--json"});
    ASSERT_TRUE(refused.doc.is_object()) << refused.out << refused.err;
    const json a = finding(refused.doc, "libvirt.daemon");
    EXPECT_EQ(a["status"], "fail") << a.dump(2);
    EXPECT_NE(a["message"].get<std::string>().find("Connection refused"), std::string::npos) << a["message"];
    EXPECT_LT(refused.wall_ms, 1000) << "took " << refused.wall_ms << " ms";
    EXPECT_EQ(status(refused.doc, "libvirt.network"), "skip");
    // No systemd here: the hint starts the daemons by hand.
    if (!fs::exists("/run/systemd/system")) {
        EXPECT_EQ(a["remediation"]["commands"], json::array({"virtlogd -d", "libvirtd -d"}));
    }

    fs::remove(d.socket_path());
    const ToolRun missing = kvmready_outside({"check", "--connect", uri, "--json"});
    const json b = finding(missing.doc, "libvirt.daemon");
    EXPECT_EQ(b["status"], "fail") << b.dump(2);
    EXPECT_NE(b["message"].get<std::string>().find("No such file or directory"), std::string::npos) << b["message"];
    EXPECT_LT(missing.wall_ms, 1000) << "took " << missing.wall_ms << " ms";
    std::cerr << "[ measured ] kvmready check, dead libvirtd: " << refused.wall_ms << " ms (refused), " << missing.wall_ms
              << " ms (no socket)\n";
}

// This machine as it is: /dev/kvm 0600 root:root, so libvirt's QEMU user
// cannot open it. libvirt still lists kvm (its probe ran QEMU as root) and
// re-probes QEMU on every capabilities call; kvmready must tie the two.
TEST(LibvirtHostKvmNode, QemuUserWithoutKvmAccessExplainsLibvirtsBehaviour) {
    if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    struct stat st {};
    if (::stat("/dev/kvm", &st) != 0) GTEST_SKIP() << "no /dev/kvm";
    if ((st.st_mode & 0066) != 0) GTEST_SKIP() << "this machine's /dev/kvm is group/other accessible; the case needs a 0600 node";
    LibvirtDaemon::Options o;
    o.private_kvm_node = false;
    o.warm_up = false;  // the point is what a client sees while libvirt probes
    LibvirtDaemon d(o);
    ASSERT_NO_THROW(d.start());
    const ToolRun r = kvmready_inside(d, {"check", "--connect", d.uri(), "--json"}, 20000);
    ASSERT_TRUE(r.doc.is_object()) << r.out << r.err;
    EXPECT_LT(r.wall_ms, 6000);
    const json access = finding(r.doc, "kvm.qemu-user-access");
    EXPECT_EQ(access["status"], "fail") << access.dump(2);
    EXPECT_EQ(access["evidence"]["user"], "libvirt-qemu");
    EXPECT_EQ(access["remediation"]["fix_id"], "kvm.device-permissions");
    const json caps = finding(r.doc, "libvirt.domcaps-kvm");
    EXPECT_TRUE(caps["status"] == "unknown" || caps["status"] == "warn") << caps.dump(2);
    EXPECT_NE(caps["message"].get<std::string>().find("kvm.qemu-user-access"), std::string::npos) << caps["message"];
    EXPECT_EQ(caps["remediation"]["fix_id"], "kvm.device-permissions");
    EXPECT_EQ(status(r.doc, "libvirt.daemon"), "pass") << "the daemon answered the connection";
    std::cerr << "[ measured ] kvmready check while libvirt re-probes QEMU: " << r.wall_ms << " ms, domcaps-kvm "
              << caps["status"] << "\n";
}

// Record against the real daemon, replay the tree: every check concludes the same.
TEST_F(LibvirtLive, RecordThenReplayGivesTheSameStatuses) {
    auto& d = *daemon_;
    ensure_network_and_pool();
    const std::string tree = d.base_dir() + "/recording";
    const ToolRun live = kvmready_inside(d, {"check", "--json", "--record", tree});
    ASSERT_TRUE(live.doc.is_object()) << live.out << live.err;
    ASSERT_TRUE(fs::exists(tree + "/.kvmready/libvirt/snapshot.json"));
    // The kvm capabilities are recorded where libvirt offers them; where it
    // refuses (no usable /dev/kvm), its error is, and replays the same.
    if (!finding(live.doc, "libvirt.domcaps-kvm")["evidence"].value("machine", "").empty()) {
        EXPECT_TRUE(fs::exists(tree + "/.kvmready/libvirt/domcaps-kvm.xml"));
    }
    const ToolRun replay = kvmready_outside({"check", "--json", "--root", tree});
    ASSERT_TRUE(replay.doc.is_object()) << replay.out << replay.err;
    ASSERT_EQ(live.doc["checks"].size(), replay.doc["checks"].size());
    for (size_t i = 0; i < live.doc["checks"].size(); ++i) {
        const auto& a = live.doc["checks"][i];
        const auto& b = replay.doc["checks"][i];
        if (a["id"] == "kvm.api" || a["id"].get<std::string>().rfind("net.", 0) == 0) continue;  // not this area's to keep
        EXPECT_EQ(a["status"], b["status"]) << a["id"] << "\nlive: " << a["message"] << "\nreplay: " << b["message"];
        if (a["category"] == "libvirt" || a["category"] == "storage" || a["category"] == "qemu") {
            EXPECT_EQ(a["message"], b["message"]) << a["id"];
        }
    }
}

}  // namespace
