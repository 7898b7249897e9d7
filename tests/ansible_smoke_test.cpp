// The collection's kvmready_smoke module run for real: ansible-playbook with
// ansible_connection=local on this machine, inside the namespaces of a
// private libvirtd the test starts (support/libvirt_daemon.hpp: its own
// network namespace, /run/libvirt and /var/log/libvirt), so the module's
// `kvmready smoke` boots its throwaway VM (the builtin guest under TCG, as
// SmokeLibvirt does) in that daemon and nowhere else. One boot: the passing
// run is the module's; the failing one (no daemon behind the URI) costs no
// boot and is compared with `kvmready smoke` run directly.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/ansible_play.hpp"
#include "support/guest_vm.hpp"
#include "support/libvirt_daemon.hpp"
#include "support/spawn.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace kvmready::testsupport;

class AnsibleSmoke : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) {
            skip_ = why;
            return;
        }
        for (const char* tool : {"qemu-system-x86_64", "ansible-playbook", "nsenter"})
            if (!find_in_path(tool)) skip_ += std::string(skip_.empty() ? "" : "; ") + tool + " is not installed";
        if (!skip_.empty()) return;
        daemon_ = std::make_unique<LibvirtDaemon>();
        try {
            daemon_->start();
            start_error_ = daemon_->ensure_default_network_and_pool();
        } catch (const std::exception& e) {
            start_error_ = e.what();
        }
    }
    static void TearDownTestSuite() { daemon_.reset(); }

    void SetUp() override {
        if (!skip_.empty()) GTEST_SKIP() << skip_;
        ASSERT_TRUE(start_error_.empty()) << start_error_ << daemon_->log_tail();
        // QEMU runs as libvirt-qemu and must reach the smoke's run directory (TMPDIR).
        tmp_ = std::make_unique<TempDir>("kvmready-ansible-smoke", "/var/tmp");
        ::chmod(tmp_->path.c_str(), 0755);
        // kvmready on the module's PATH (the collection's shell module looks
        // it up there): a symlink, so /proc/self/exe is still the build's
        // binary and finds the builtin guest beside it.
        fs::create_directories(tmp_->path / "bin");
        fs::create_symlink(KVMREADY_BINARY, tmp_->path / "bin" / "kvmready");
        fs::create_directories(tmp_->path / "run");
        ::chmod((tmp_->path / "run").c_str(), 0755);
    }

    // argv run inside the daemon's mount and network namespaces.
    static std::vector<std::string> inside(std::vector<std::string> argv = {}) {
        argv.insert(argv.begin(), {*find_in_path("nsenter"), "-t", std::to_string(daemon_->namespace_pid()), "-m", "-n", "--"});
        return argv;
    }

    std::vector<std::string> env() const {
        const char* path = std::getenv("PATH");
        return ansible_env(tmp_->path, {"PATH=" + (tmp_->path / "bin").string() + ":" + (path ? path : "/usr/sbin:/usr/bin:/sbin:/bin"),
                                        "TMPDIR=" + (tmp_->path / "run").string(),
                                        "ANSIBLE_REMOTE_TEMP=" + (tmp_->path / "ansible-remote").string()});
    }

    json saved(const std::string& name) const {
        const fs::path p = tmp_->path / (name + ".json");
        return fs::exists(p) ? json::parse(read_text(p), nullptr, false) : json();
    }

    static inline std::unique_ptr<LibvirtDaemon> daemon_;
    static inline std::string skip_, start_error_;
    std::unique_ptr<TempDir> tmp_;
};

TEST_F(AnsibleSmoke, ModuleResultIsWhatKvmreadySmokeSays) {
    const fs::path d = tmp_->path;
    const std::string down_uri = "qemu:///system?socket=" + (d / "no-such-libvirt-sock").string();
    {
        std::ofstream(d / "inventory.ini") << "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n";
        std::ofstream(d / "smoke.yml") << fmt::format(R"(- hosts: localhost
  gather_facts: false
  tasks:
    - kvmready.host.kvmready_smoke:
        accel: tcg
        guest: builtin
        connect: "{0}"
        timeout: 20
      register: smoke
    - kvmready.host.kvmready_smoke:
        accel: tcg
        connect: "{1}"
      register: down
      ignore_errors: true
    - ansible.builtin.copy:
        content: "{{{{ item.1 | to_json }}}}"
        dest: "{2}/{{{{ item.0 }}}}.json"
      loop: [[smoke, "{{{{ smoke }}}}"], [down, "{{{{ down }}}}"]]
      changed_when: false
)",
                                                      daemon_->uri(), down_uri, d.string());
    }
    const PlayRun r = run_playbook(inside(), d / "inventory.ini", d / "smoke.yml", {}, d, env());
    ASSERT_EQ(r.c.exit_code, 0) << r.c.out << r.c.err << daemon_->log_tail();
    EXPECT_EQ(r.recap.at("localhost").at("changed"), 0) << r.c.out;
    EXPECT_EQ(r.recap.at("localhost").at("ignored"), 1) << r.c.out;

    // The passing run: the module's JSON is kvmready smoke's, and Ansible's
    // verdict follows it.
    const json smoke = saved("smoke");
    ASSERT_TRUE(smoke.is_object() && smoke.contains("smoke")) << smoke.dump(1);
    EXPECT_EQ(smoke.value("changed", true), false);
    EXPECT_EQ(smoke.value("failed", true), false) << smoke.dump(1);
    EXPECT_EQ(smoke.value("rc", -1), 0) << smoke.dump(1);
    EXPECT_EQ(smoke["smoke"].value("passed", false), true) << smoke["smoke"].dump(1);
    // Step (c) is the VM booted through the test's libvirtd: every stage passed.
    bool libvirt_step = false;
    for (const auto& st : smoke["smoke"].value("steps", json::array()))
        if (st.value("id", "") == "c" && st.value("accel", "") == "tcg") {
            libvirt_step = true;
            EXPECT_EQ(st.value("ran", false), true) << st.dump(1);
            EXPECT_EQ(st.value("passed", false), true) << st.dump(1);
            std::map<std::string, std::string> stages;
            for (const auto& stage : st.value("stages", json::array())) stages[stage.value("name", "")] = stage.value("status", "");
            for (const char* n : {"boot", "disk", "nic", "done"}) EXPECT_EQ(stages[n], "pass") << n << "\n" << st.dump(1);
        }
    EXPECT_TRUE(libvirt_step) << smoke["smoke"].dump(1);
    EXPECT_EQ(smoke.value("msg", ""), smoke["smoke"].value("verdict", "<none>"));
    // The throwaway domain and volume went with it.
    EXPECT_EQ(daemon_->virsh({"list", "--all", "--name"}).out.find("kvmready-smoke-"), std::string::npos);
    EXPECT_EQ(daemon_->virsh({"vol-list", "default"}).out.find("kvmready-smoke-"), std::string::npos);

    // The failing run: failed with kvmready smoke's own exit status and
    // answer, the same as the command gives when run directly.
    const json down = saved("down");
    ASSERT_TRUE(down.is_object()) << down.dump(1);
    const Captured direct = run_captured(inside({KVMREADY_BINARY, "smoke", "--accel", "tcg", "--connect", down_uri, "--json"}), 60000);
    const json dj = json::parse(direct.out, nullptr, false);
    ASSERT_TRUE(dj.is_object()) << direct.out << direct.err;
    EXPECT_EQ(direct.exit_code, 69) << direct.out << direct.err;
    EXPECT_EQ(down.value("failed", false), true) << down.dump(1);
    EXPECT_EQ(down.value("changed", true), false);
    EXPECT_EQ(down.value("rc", -1), direct.exit_code) << down.dump(1);
    EXPECT_EQ(down["smoke"].value("passed", true), dj.value("passed", false)) << down.dump(1);
    ASSERT_EQ(down["smoke"].value("steps", json::array()).size(), dj.value("steps", json::array()).size()) << down.dump(1) << dj.dump(1);
    for (size_t i = 0; i < dj["steps"].size(); ++i) {
        for (const char* k : {"id", "ran", "passed", "failure", "message"})
            EXPECT_EQ(down["smoke"]["steps"][i][k], dj["steps"][i][k]) << k << " of step " << i << ": " << dj.dump(1);
    }
    // Ansible's msg is the run's own verdict: the step that failed and why.
    EXPECT_EQ(down.value("msg", ""), dj.value("verdict", "<none>")) << down.dump(1);
    EXPECT_NE(down.value("msg", "").find("cannot connect to libvirt"), std::string::npos) << down.dump(1);
}

}  // namespace
