// "Ready means the next step works": the seed documents' admin workflow
// (virsh net-define/autostart/start, a dir pool, virt-install, then virsh
// start/suspend/resume/dumpxml/define/destroy), done with the REAL
// virt-install and virsh against the tests' own libvirtd (tests/support/
// libvirt_daemon.hpp: its own network and mount namespace), the way
// `kvmready check` says: the domain type its libvirt.domcaps-kvm finding
// recommends, and its storage.pool commands for the pool the seed makes.
// Where kvmready says KVM guests will not work, a KVM guest must indeed not
// work, and a finding must say why.
//
// The guest has no OS: a blank disk boots into SeaBIOS, which (with
// bios.useserial) writes to the guest's serial port, a file here. "Boot
// failed: not a bootable disk" there means the firmware ran to the end of
// POST and read the disk virt-install created in the pool. Where kvm guests
// start but cannot run an OS (kvm_pvm: SeaBIOS runs, kernels hang), the
// guest kernel of scripts/fetch-guest-kernel.sh tells the two apart.
//
// Runtime: ~8 s to start the daemon (QEMU capability probe), ~5 s for the
// workflow, ~9 s for the kvm attempt on a kvm_pvm host (<1 s elsewhere).
#include "support/libvirt_daemon.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/guest_vm.hpp"
#include "support/temp_dir.hpp"

namespace {

using kvmready::testsupport::find_in_path;
using kvmready::testsupport::LibvirtDaemon;
using kvmready::testsupport::read_text;
using kvmready::testsupport::split_command;
using kvmready::testsupport::TempDir;
using json = nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The seed names its network br0 and its pool vmpool. The pool name carries
// this process's PID: kvmready's advice for it writes /tmp/<pool>-pool.xml,
// which is this machine's /tmp.
const std::string kNet = "vmnet";
const std::string kBridge = "virbr7";
const std::string kPool = "vmpool" + std::to_string(::getpid());

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
    return s;
}

json finding(const json& doc, const std::string& id) {
    const json* c = kvmready::testsupport::find_check(doc, id);
    if (!c) ADD_FAILURE() << "no finding " << id;
    return c ? *c : json::object();
}

// A kvm_pvm host: the module is loaded and /dev/kvm is its node.
bool pvm_host() { return fs::exists("/sys/module/kvm_pvm") && fs::exists("/dev/kvm"); }

class VirtInstall : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (!LibvirtDaemon::unavailable_reason().empty() || !find_in_path("virt-install")) return;
        daemon_ = std::make_unique<LibvirtDaemon>();
        try {
            daemon_->start();
        } catch (const std::exception& e) {
            start_error_ = e.what();
        }
    }
    static void TearDownTestSuite() {
        daemon_.reset();  // stops libvirtd and virtlogd by PID, deletes the namespace and its directory
        std::error_code ec;
        fs::remove("/tmp/" + kPool + "-pool.xml", ec);
    }

    void SetUp() override {
        if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
        if (!find_in_path("virt-install")) GTEST_SKIP() << "virt-install is not installed (apt-get install virtinst)";
        ASSERT_TRUE(start_error_.empty()) << start_error_;
        tmp_ = std::make_unique<TempDir>("kvmready-virtinstall");
        fs::permissions(tmp_->path, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    }
    void TearDown() override {
        if (!daemon_ || !start_error_.empty()) return;
        // Every exit path: no domain and no volume of the test survives it.
        for (const std::string& name : domains_) {
            (void)admin({"virsh", "-q", "-c", daemon_->uri(), "destroy", name});
            (void)admin({"virsh", "-q", "-c", daemon_->uri(), "undefine", name, "--remove-all-storage"});
        }
        domains_.clear();
    }

    // What the admin types, run where the daemon's QEMU runs: its /dev/kvm,
    // its /var/lib/libvirt, its bridges. virt-install keeps its log under
    // XDG_CACHE_HOME, pointed at the test's directory.
    kvmready::host::RunResult admin(std::vector<std::string> argv, int timeout_ms = 30000) const {
        if (argv.at(0) == "virt-install")
            argv.insert(argv.begin(), {"env", "XDG_CACHE_HOME=" + (tmp_ ? tmp_->path.string() : std::string("/nonexistent"))});
        return daemon_->run_inside(argv, timeout_ms);
    }
    kvmready::host::RunResult virsh(const std::vector<std::string>& args, int timeout_ms = 20000) const {
        std::vector<std::string> argv = {"virsh", "-q", "-c", daemon_->uri()};
        argv.insert(argv.end(), args.begin(), args.end());
        return admin(argv, timeout_ms);
    }
    // Asserted step of the workflow, with libvirt's own words when it fails.
    std::string must(const std::vector<std::string>& args) const {
        const auto r = virsh(args);
        EXPECT_EQ(r.exit_code, 0) << "virsh " << fmt_args(args) << ": " << r.out << r.err << r.error << "\n" << daemon_->log_tail(1500);
        return r.out;
    }
    static std::string fmt_args(const std::vector<std::string>& a) {
        std::string s;
        for (const auto& x : a) s += (s.empty() ? "" : " ") + x;
        return s;
    }

    json kvmready_check(std::vector<std::string> extra = {}) const {
        std::vector<std::string> argv = {KVMREADY_BINARY, "check", "--connect", daemon_->uri(), "--json", "--network", kNet, "--pool", kPool};
        argv.insert(argv.end(), extra.begin(), extra.end());
        const auto r = daemon_->run_inside(argv, 30000);
        json doc = json::parse(r.out, nullptr, false);
        EXPECT_TRUE(doc.is_object()) << r.out << r.err << r.error;
        return doc.is_object() ? doc : json{{"checks", json::array()}};
    }

    // A remediation command as printed: plain argv, or `CMD > FILE` (the
    // only shell syntax kvmready's commands use), run where kvmready ran.
    void run_remediation(const std::string& cmd) const {
        std::string left = cmd, file;
        if (const auto gt = cmd.find(" > "); gt != std::string::npos) {
            left = cmd.substr(0, gt);
            const auto target = split_command(cmd.substr(gt + 3));
            ASSERT_EQ(target.size(), 1u) << "not a plain redirection: " << cmd;
            file = target[0];
        }
        const auto argv = split_command(left);
        ASSERT_FALSE(argv.empty()) << "not a plain command: " << cmd;
        const auto r = admin(argv);
        ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.out << r.err << r.error;
        if (!file.empty()) {
            std::ofstream out(file, std::ios::trunc);
            out << r.out;
            ASSERT_TRUE(out.good()) << "cannot write " << file;
        }
    }

    // The seed's network and storage steps, in its order; the pool step as
    // the seed writes it (pool-create-as: a transient pool), then made
    // persistent by exactly the commands kvmready prints for it.
    void seed_network_and_pool() {
        const fs::path xml = tmp_->path / (kNet + ".xml");
        std::ofstream(xml) << "<network><name>" << kNet << "</name><forward mode='nat'/><bridge name='" << kBridge
                           << "'/><ip address='192.168.124.1' netmask='255.255.255.0'><dhcp><range start='192.168.124.2' "
                              "end='192.168.124.254'/></dhcp></ip></network>\n";
        must({"net-define", xml.string()});
        must({"net-autostart", kNet});
        must({"net-start", kNet});

        must({"pool-create-as", "--name", kPool, "--type", "dir", "--target", "/var/lib/libvirt/images"});
        // The seed's next two lines cannot work on what pool-create-as made:
        // a transient pool has no autostart, and it is already running.
        EXPECT_NE(virsh({"pool-autostart", kPool}).exit_code, 0) << "libvirt autostarted a transient pool";
        EXPECT_NE(virsh({"pool-start", kPool}).exit_code, 0);

        const json before = kvmready_check({"libvirt.network", "storage.pool"});
        const json net = finding(before, "libvirt.network");
        EXPECT_EQ(net.value("status", ""), "pass") << net.dump(2);
        const json pool = finding(before, "storage.pool");
        ASSERT_EQ(pool.value("status", ""), "warn") << pool.dump(2);
        EXPECT_NE(pool.value("message", "").find("transient"), std::string::npos) << pool.dump(2);
        ASSERT_TRUE(pool.contains("remediation")) << pool.dump(2);
        for (const auto& c : pool["remediation"]["commands"]) run_remediation(c.get<std::string>());
        const std::string info = must({"pool-info", kPool});
        EXPECT_TRUE(std::regex_search(info, std::regex("Persistent:\\s+yes"))) << info;
        EXPECT_TRUE(std::regex_search(info, std::regex("Autostart:\\s+yes"))) << info;
        EXPECT_TRUE(std::regex_search(info, std::regex("State:\\s+running"))) << info;
        const json after = finding(kvmready_check({"storage.pool"}), "storage.pool");
        // Space may be short where the test runs (a warning of its own); the pool is not.
        EXPECT_NE(after.value("status", ""), "fail") << after.dump(2);
        const std::string msg = after.value("message", "");
        EXPECT_EQ(msg.find("transient"), std::string::npos) << after.dump(2);
        EXPECT_EQ(msg.find("does not start at boot"), std::string::npos) << after.dump(2);
    }

    // The domain type kvmready recommends, checked against what the host is.
    std::string recommended_type(const json& doc) {
        const json caps = finding(doc, "libvirt.domcaps-kvm");
        const std::string st = caps.value("status", "?");
        if (st == "pass") {
            // kvm only where libvirt offers it, KVM works and it is not PVM.
            EXPECT_EQ(finding(doc, "kvm.api").value("status", ""), "pass") << caps.dump(2);
            EXPECT_FALSE(pvm_host()) << "kvmready recommends kvm guests on a kvm_pvm host: " << caps.dump(2);
            EXPECT_EQ(virsh({"domcapabilities", "--virttype", "kvm"}).exit_code, 0) << caps.dump(2);
            return "kvm";
        }
        // Not ready for kvm: the finding must say what to run instead.
        EXPECT_TRUE(st == "warn" || st == "fail") << caps.dump(2);
        std::string advice = caps.value("message", "");
        for (const auto& c : caps.value("remediation", json::object()).value("commands", json::array())) advice += "\n" + c.get<std::string>();
        EXPECT_NE(advice.find("virt-install --virt-type qemu"), std::string::npos)
            << "libvirt.domcaps-kvm does not say which domain type works instead:\n" << caps.dump(2);
        return "qemu";
    }

    // virt-install as in the seed, with the type kvmready recommends and
    // options that need no install media, display or console.
    kvmready::host::RunResult virt_install(const std::string& name, const std::string& type) {
        domains_.push_back(name);
        return admin({"virt-install", "--connect", daemon_->uri(), "--name", name, "--memory", "64", "--vcpus", "1", "--virt-type",
                      type, "--import", "--disk", "pool=" + kPool + ",size=0.01", "--osinfo", "generic", "--network",
                      "network=" + kNet, "--graphics", "none", "--serial", "file,path=" + serial_log(name), "--boot",
                      "hd,bios.useserial=on", "--noautoconsole"},
                     60000);
    }
    // A guest that boots a kernel directly (what an installer does first),
    // with no disk and no NIC: panic=-1 because it has no root to mount.
    kvmready::host::RunResult virt_install_kernel(const std::string& name, const std::string& type, const std::string& kernel) {
        domains_.push_back(name);
        return admin({"virt-install", "--connect", daemon_->uri(), "--name", name, "--memory", "256", "--vcpus", "1", "--virt-type",
                      type, "--osinfo", "generic", "--disk", "none", "--network", "none", "--graphics", "none", "--serial",
                      "file,path=" + serial_log(name), "--import", "--boot",
                      "kernel=" + kernel + ",kernel_args=console=ttyS0 panic=-1", "--noautoconsole"},
                     60000);
    }
    // The guest's serial port is a plain file (libvirt opens it and hands
    // QEMU the descriptor; no pty needed), in the daemon's log directory:
    // /var/log/libvirt inside its namespace, base_dir()/log outside.
    static std::string serial_log(const std::string& name) { return "/var/log/libvirt/" + name + "-serial.log"; }
    fs::path serial_file(const std::string& name) const { return daemon_->base_dir() + "/log/" + name + "-serial.log"; }
    std::string serial_text(const std::string& name) const { return read_text(serial_file(name)); }

    // Waits until the guest's serial output holds `text`; returns the
    // seconds it took, or -1 at the deadline.
    double wait_for_serial(const std::string& name, const std::string& text, double timeout_s) const {
        const auto t0 = Clock::now();
        for (;;) {
            const double el = std::chrono::duration<double>(Clock::now() - t0).count();
            if (serial_text(name).find(text) != std::string::npos) return el;
            if (el > timeout_s) return -1;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    // SeaBIOS got through POST and read the (blank) disk virt-install created.
    double wait_for_disk_boot(const std::string& name, double timeout_s) const {
        return wait_for_serial(name, "Boot failed: not a bootable disk", timeout_s);
    }

    std::string domstate(const std::string& name) const { return trim(virsh({"domstate", name}).out); }

    static std::unique_ptr<LibvirtDaemon> daemon_;
    static std::string start_error_;
    static json check_;  // `kvmready check --json` of the suite's daemon
    std::unique_ptr<TempDir> tmp_;
    std::vector<std::string> domains_;
};

std::unique_ptr<LibvirtDaemon> VirtInstall::daemon_;
std::string VirtInstall::start_error_;
json VirtInstall::check_;

// The seed's workflow end to end, the way kvmready's findings say.
TEST_F(VirtInstall, SeedWorkflowWorksWithTheDomainTypeKvmreadyRecommends) {
    const auto t0 = Clock::now();
    seed_network_and_pool();
    check_ = kvmready_check();
    const std::string type = recommended_type(check_);
    ASSERT_FALSE(HasFailure());

    const auto vi = virt_install("t1", type);
    ASSERT_EQ(vi.exit_code, 0) << "virt-install --virt-type " << type << ": " << vi.out << vi.err << vi.error << "\n"
                               << daemon_->log_tail(2000);
    EXPECT_EQ(domstate("t1"), "running");
    // The guest really runs: its firmware reaches the disk and reads it.
    const double boot_s = wait_for_disk_boot("t1", 20);
    ASSERT_GE(boot_s, 0) << "the " << type << " guest's firmware never read its disk:\n" << serial_text("t1");

    // What libvirt runs is what was asked: the type, the pool's volume, the network's bridge.
    const std::string live = must({"dumpxml", "t1"});
    EXPECT_NE(live.find("<domain type='" + type + "'"), std::string::npos) << live;
    const std::string vols = must({"vol-list", kPool});
    std::smatch m;
    ASSERT_TRUE(std::regex_search(vols, m, std::regex("(t1[^ \\n]*)\\s+(/\\S+)"))) << vols;
    const std::string vol_path = m[2].str();
    EXPECT_EQ(trim(must({"vol-path", "--pool", kPool, m[1].str()})), vol_path);
    EXPECT_NE(live.find("<source file='" + vol_path + "'"), std::string::npos) << "disk not from pool " << kPool << ":\n" << live;
    ASSERT_TRUE(std::regex_search(live, m, std::regex("<interface type='network'>[\\s\\S]*?<source network='" + kNet +
                                                      "'[^>]*bridge='" + kBridge + "'[\\s\\S]*?<target dev='([^']+)'")))
        << live;
    const std::string tap = m[1].str();
    const auto link = admin({"ip", "-o", "link", "show", "master", kBridge}, 5000);
    EXPECT_NE(link.out.find(tap + ":"), std::string::npos) << tap << " is not on " << kBridge << ": " << link.out << link.err;

    // The seed's virsh steps. virt-install --import already started the
    // guest, so it is stopped first for `virsh start` to have work to do.
    must({"destroy", "t1"});
    EXPECT_EQ(domstate("t1"), "shut off");
    // libvirt creates the serial file anew: what it then holds is this boot's.
    fs::remove(serial_file("t1"));
    must({"start", "t1"});
    EXPECT_EQ(domstate("t1"), "running");
    EXPECT_GE(wait_for_disk_boot("t1", 20), 0) << "after virsh start the firmware did not run again:\n" << serial_text("t1");
    must({"suspend", "t1"});
    EXPECT_EQ(domstate("t1"), "paused");
    must({"resume", "t1"});
    EXPECT_EQ(domstate("t1"), "running");
    const fs::path saved = tmp_->path / "t1.xml";
    { std::ofstream(saved) << must({"dumpxml", "t1"}); }
    must({"define", saved.string()});
    must({"destroy", "t1"});
    EXPECT_EQ(domstate("t1"), "shut off");
    // The definition that came back from the dump is still the same guest.
    const std::string inactive = must({"dumpxml", "--inactive", "t1"});
    EXPECT_NE(inactive.find("<domain type='" + type + "'"), std::string::npos) << inactive;
    EXPECT_NE(inactive.find("<source file='" + vol_path + "'"), std::string::npos) << inactive;
    EXPECT_NE(inactive.find("<source network='" + kNet + "'"), std::string::npos) << inactive;

    must({"undefine", "t1", "--remove-all-storage"});
    domains_.clear();
    EXPECT_EQ(must({"vol-list", kPool}).find("t1"), std::string::npos) << "the volume outlived its domain";
    std::printf("[ measured ] seed workflow with --virt-type %s: %.1f s (firmware read the disk %.2f s after virt-install)\n",
                type.c_str(), std::chrono::duration<double>(Clock::now() - t0).count(), boot_s);
}

// Where kvmready says the host is not ready for KVM guests, a KVM guest
// indeed does not work, and a finding names the reason. Without /dev/kvm
// virt-install refuses --virt-type kvm outright. On a kvm_pvm host it does
// not: the domain starts and even SeaBIOS runs (it reads a blank disk), but
// an OS kernel never prints its first line, while the same kernel as a
// guest of the recommended type does.
TEST_F(VirtInstall, KvmTypeFailsWhereKvmreadySaysNotReadyAndAFindingSaysWhy) {
    if (check_.is_null()) {
        seed_network_and_pool();
        check_ = kvmready_check();
    }
    const json caps = finding(check_, "libvirt.domcaps-kvm");
    if (caps.value("status", "") == "pass")
        GTEST_SKIP() << "kvmready recommends kvm guests here; the workflow test ran one: " << caps.value("message", "");
    const std::string recommended = recommended_type(check_);

    // The finding names the cause, and the cause is this host's.
    const std::string why = caps.value("message", "");
    if (pvm_host()) {
        EXPECT_NE(why.find("PVM"), std::string::npos) << caps.dump(2);
    } else if (!fs::exists("/dev/kvm")) {
        EXPECT_EQ(caps.value("status", ""), "fail") << caps.dump(2);
        EXPECT_NE(why.find("libvirt offers no KVM guests"), std::string::npos) << caps.dump(2);
        EXPECT_NE(why.find("kvm.api"), std::string::npos) << caps.dump(2);
        const json api = finding(check_, "kvm.api");
        EXPECT_NE(api.value("status", ""), "pass") << api.dump(2);
    } else {
        // Any other reason must point at the finding that has it.
        EXPECT_TRUE(why.find("kvm.") != std::string::npos || why.find("PVM") != std::string::npos) << caps.dump(2);
    }

    // What the admin installs after virt-install is an OS: with the guest
    // kernel at hand the kvm guest boots it directly, else it is the seed's
    // blank-disk guest (enough where libvirt refuses type kvm outright).
    const fs::path cached = kvmready::testsupport::guest_kernel_dir() / "vmlinuz";
    const fs::path kernel = tmp_->path / "vmlinuz";
    if (fs::exists(cached)) fs::copy_file(cached, kernel);  // a copy of its own: libvirt relabels the kernel it boots
    const auto vi = fs::exists(kernel) ? virt_install_kernel("k-kvm", "kvm", kernel.string()) : virt_install("t1kvm", "kvm");
    const auto kvm_started = Clock::now();
    if (vi.exit_code != 0) {
        // Refused for the domain type, not for the options (they work with
        // the recommended type): "Host does not support domain type kvm ...".
        EXPECT_TRUE(std::regex_search(vi.err, std::regex("domain type kvm"))) << vi.out << vi.err;
        std::printf("[ measured ] --virt-type kvm: refused by virt-install: %s\n", trim(vi.err).c_str());
        return;
    }
    // It started (kvm_pvm: even SeaBIOS runs), so whether it works is up to the kernel.
    if (!fs::exists(kernel))
        GTEST_SKIP() << "virt-install started a kvm guest; telling whether an OS runs in it needs the guest kernel in " << cached
                     << " (scripts/fetch-guest-kernel.sh)";
    // The same kernel as a guest of the recommended type prints its first
    // line; the kvm guest, started first, gets several times that long.
    const auto ok = virt_install_kernel("k-" + recommended, recommended, kernel.string());
    ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err << ok.error;
    const double control_s = wait_for_serial("k-" + recommended, "Linux version", 30);
    ASSERT_GE(control_s, 0) << "the kernel did not start as a " << recommended << " guest either:\n" << serial_text("k-" + recommended);
    (void)virsh({"destroy", "k-" + recommended});
    const double waited = std::max(6.0, 3 * control_s);
    const double left = waited - std::chrono::duration<double>(Clock::now() - kvm_started).count();
    const bool kvm_printed = wait_for_serial("k-kvm", "Linux version", std::max(0.0, left)) >= 0;
    EXPECT_FALSE(kvm_printed) << "the kernel started as a kvm guest although kvmready says: " << caps.dump(2) << "\n" << serial_text("k-kvm");
    std::printf("[ measured ] --virt-type kvm: the domain starts; a kernel prints \"Linux version\" %.2f s after virt-install as a %s "
                "guest, %s within %.1f s as a kvm guest\n",
                control_s, recommended.c_str(), kvm_printed ? "also" : "never", waited);
}

}  // namespace
