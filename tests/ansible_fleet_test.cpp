// The Ansible collection (ansible/ansible_collections/kvmready/host) driven by
// the real ansible-core over real SSH against three guests that really
// differ, booted once for the whole suite (SetUpTestSuite; CTest runs the
// suite as one entry, see tests/CMakeLists.txt):
//   ready     -cpu EPYC, kvm_amd nested=1 loaded, user `ansible` in group kvm
//   nokvm     -cpu Skylake-Server: TCG has no VMX, kvm_intel refuses to load
//   noaccess  -cpu EPYC, kvm_amd loaded, `ansible` NOT in group kvm (no /dev/kvm access)
// Guests: support/ssh_guest.hpp (Debian root of scripts/fetch-fleet-guest-root.sh,
// reached on 127.0.0.1 only). kvmready gets onto them through the role's
// install tasks; its modules are the collection's shell modules calling
// `kvmready ansible-module`. The tests run in order and build on each other
// (check, check-mode fix, fix twice, the example playbook, undo).
// Skips with the reason when QEMU, the guest kernel, the guest root, ssh or
// ansible-playbook are missing.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/guest_vm.hpp"
#include "support/spawn.hpp"
#include "support/ssh_guest.hpp"
#include "support/temp_dir.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace kvmready::testsupport;

constexpr auto kBootDeadline = std::chrono::seconds(240);
constexpr int kPlaybookTimeoutMs = 600 * 1000;

struct PlayRun {
    Captured c;
    double seconds = 0;
    // PLAY RECAP: host -> {"ok": n, "changed": n, "failed": n, ...}
    std::map<std::string, std::map<std::string, int>> recap;
};

std::map<std::string, std::map<std::string, int>> parse_recap(const std::string& out) {
    std::map<std::string, std::map<std::string, int>> r;
    static const std::regex line(R"(^(\S+)\s*:\s*((?:\w+=\d+\s*)+)$)");
    static const std::regex kv(R"((\w+)=(\d+))");
    std::istringstream in(out);
    bool in_recap = false;
    for (std::string l; std::getline(in, l);) {
        if (l.rfind("PLAY RECAP", 0) == 0) in_recap = true;
        std::smatch m;
        if (!in_recap || !std::regex_match(l, m, line)) continue;
        const std::string counts = m[2];
        for (std::sregex_iterator it(counts.begin(), counts.end(), kv), end; it != end; ++it) r[m[1]][(*it)[1]] = std::stoi((*it)[2]);
    }
    return r;
}

class AnsibleFleet : public ::testing::Test {
protected:
    static inline std::unique_ptr<TempDir> tmp_;
    static inline std::vector<std::unique_ptr<SshGuest>> guests_;
    static inline std::string skip_, setup_error_;
    static inline fs::path inventory_, key_;

    static fs::path dir() { return tmp_->path; }
    static fs::path collections() { return fs::path(KVMREADY_SOURCE_DIR) / "ansible"; }

    static void write(const fs::path& p, const std::string& text) {
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }

    static std::vector<std::string> ansible_env() {
        std::vector<std::string> env;
        for (char** e = environ; *e; ++e) {
            const std::string s = *e;
            if (s.rfind("ANSIBLE_", 0) == 0 || s.rfind("LC_", 0) == 0 || s.rfind("LANG", 0) == 0) continue;
            env.push_back(s);
        }
        const fs::path d = dir();
        const std::vector<std::string> mine{"LC_ALL=C.UTF-8",
                                            "ANSIBLE_COLLECTIONS_PATH=" + collections().string(),
                                            "ANSIBLE_HOME=" + (d / "ansible-home").string(),
                                            "ANSIBLE_LOCAL_TEMP=" + (d / "ansible-tmp").string(),
                                            "ANSIBLE_SSH_CONTROL_PATH_DIR=" + (d / "cp").string(),
                                            "ANSIBLE_HOST_KEY_CHECKING=False",
                                            "ANSIBLE_PIPELINING=True",
                                            "ANSIBLE_NOCOLOR=1",
                                            "ANSIBLE_FORKS=3",
                                            "ANSIBLE_RETRY_FILES_ENABLED=False",
                                            "ANSIBLE_DEPRECATION_WARNINGS=False",
                                            "ANSIBLE_TIMEOUT=60"};
        for (const auto& s : mine)
            env.push_back(s);
        return env;
    }

    static PlayRun playbook(const fs::path& play, const std::vector<std::string>& extra = {}) {
        std::vector<std::string> argv{find_in_path("ansible-playbook").value_or("ansible-playbook"), "-i", inventory_.string(), play.string()};
        argv.insert(argv.end(), extra.begin(), extra.end());
        const auto env = ansible_env();
        PlayRun r;
        const auto t0 = std::chrono::steady_clock::now();
        r.c = run_captured(argv, kPlaybookTimeoutMs, dir().string(), &env);
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        r.recap = parse_recap(r.c.out);
        std::cout << fmt::format("[ ansible  ] {} {}: {:.1f} s, exit {}\n", play.filename().string(), fmt::join(extra, " "), r.seconds, r.c.exit_code);
        return r;
    }

    static void SetUpTestSuite() {
        const SshGuestEnv env = find_ssh_guest_env();
        if (!env.missing.empty()) {
            skip_ = "missing: " + env.missing;
            return;
        }
        tmp_ = std::make_unique<TempDir>("kvmready-ansible");
        key_ = dir() / "id_ed25519";
        const Captured kg = run_captured({find_in_path("ssh-keygen").value_or("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "kvmready-test", "-f", key_.string()}, 30000);
        if (kg.exit_code != 0) {
            setup_error_ = "ssh-keygen failed: " + kg.err;
            return;
        }
        // "ssh-ed25519 BASE64 comment": the guest's init takes the middle word.
        std::istringstream pub(read_text(key_.string() + ".pub"));
        std::string type, b64;
        pub >> type >> b64;
        const std::vector<SshGuestSpec> specs{{"ready", "EPYC", "kvm_amd:nested=1", true},
                                              {"nokvm", "Skylake-Server", "kvm_intel", true},
                                              {"noaccess", "EPYC", "kvm_amd:nested=1", false}};
        for (const auto& s : specs) guests_.push_back(std::make_unique<SshGuest>(s, env, dir() / s.name, key_, b64));
        const auto deadline = std::chrono::steady_clock::now() + kBootDeadline;
        std::string inv = "[fleet]\n";
        for (auto& g : guests_) {
            if (!g->wait_ready(deadline)) {
                setup_error_ += g->why() + "\n";
                continue;
            }
            std::cout << fmt::format("[ guest    ] {} answers SSH on 127.0.0.1:{} after {:.1f} s\n", g->spec().name, g->port(), g->boot_seconds());
            inv += fmt::format("{} ansible_port={}\n", g->spec().name, g->port());
        }
        if (!setup_error_.empty()) return;
        inv += fmt::format(
            "[fleet:vars]\nansible_host=127.0.0.1\nansible_user=ansible\nansible_ssh_private_key_file={}\n"
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
            "ansible_python_interpreter=/usr/bin/python3\n",
            key_.string());
        inventory_ = dir() / "inventory.ini";
        write(inventory_, inv);
        // kvmready onto every guest, through the role's own install tasks.
        write(dir() / "install.yml", fmt::format(R"(- hosts: fleet
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: kvmready.host.kvmready
        tasks_from: install.yml
      vars:
        kvmready_install: binary
        kvmready_binary: {}
)",
                                                 KVMREADY_BINARY));
        const PlayRun r = playbook(dir() / "install.yml");
        if (r.c.exit_code != 0) setup_error_ = "installing kvmready failed:\n" + r.c.out + r.c.err;
    }

    static void TearDownTestSuite() {
        guests_.clear();  // QEMU stopped by PID
        tmp_.reset();
    }

    void SetUp() override {
        if (!skip_.empty()) GTEST_SKIP() << skip_;
        ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    }

    static SshGuest& guest(const std::string& name) {
        for (auto& g : guests_)
            if (g->spec().name == name) return *g;
        throw std::runtime_error("no guest " + name);
    }

    // A play over the fleet whose tasks each register a result; every
    // result lands on the controller as OUT/<host>-<name>.json (tasks that
    // neither count as changes nor skip in check mode, so the PLAY RECAP's
    // changed= counts only the tasks under test).
    static fs::path result_play(const std::string& file, const std::string& tasks, const std::vector<std::string>& names) {
        std::string save;
        for (const auto& n : names)
            save += fmt::format(R"(    - name: Save {0}
      ansible.builtin.copy:
        content: "{{{{ {0} | to_json }}}}"
        dest: "{1}/{{{{ inventory_hostname }}}}-{0}.json"
      delegate_to: localhost
      check_mode: false
      changed_when: false
)",
                                n, (dir() / "out").string());
        fs::create_directories(dir() / "out");
        const fs::path p = dir() / file;
        write(p, "- hosts: fleet\n  gather_facts: false\n  tasks:\n" + tasks + save);
        return p;
    }

    static json result(const std::string& host, const std::string& name) {
        const fs::path p = dir() / "out" / (host + "-" + name + ".json");
        if (!fs::exists(p)) return json();
        return json::parse(read_text(p), nullptr, false);
    }

    // Everything a fix could touch on a guest: files under /etc and kvmready's
    // state, the /dev/kvm node, the user's groups, the loaded modules.
    static std::string snapshot(const std::string& host) {
        const Captured c = guest(host).ssh(
            "sudo sh -c 'find /etc /var/lib/kvmready /usr/local/bin -xdev -printf \"%p %m %U %G %s\\n\" 2>/dev/null | sort;"
            " find /etc /var/lib/kvmready -xdev -type f -exec md5sum {} + 2>/dev/null | sort; ls -ln /dev/kvm 2>&1; id ansible;"
            " cut -d\" \" -f1 /proc/modules | sort'",
            120000);
        EXPECT_EQ(c.exit_code, 0) << c.err;
        return c.out;
    }
};

std::string verdict_of(const json& r) {
    if (!r.is_object() || !r.contains("ansible_facts")) return "<no result: " + r.dump() + ">";
    return r["ansible_facts"]["kvmready"].value("verdict", "<none>");
}

bool has_id(const json& list, const std::string& prefix) {
    if (!list.is_array()) return false;
    for (const auto& id : list)
        if (id.is_string() && id.get<std::string>().rfind(prefix, 0) == 0) return true;
    return false;
}

TEST_F(AnsibleFleet, CheckFactsNameEachGuestsVerdict) {
    const fs::path play = result_play("check.yml", R"(    - kvmready.host.kvmready_check:
        fail_on: never
      register: check
    - kvmready.host.kvmready_check:
      register: strict
      ignore_errors: true
)",
                                      {"check", "strict"});
    const PlayRun r = playbook(play);
    ASSERT_EQ(r.c.exit_code, 0) << r.c.out << r.c.err;
    for (const char* h : {"ready", "nokvm", "noaccess"}) {
        SCOPED_TRACE(h);
        EXPECT_EQ(r.recap.at(h).at("changed"), 0) << "kvmready_check never changes anything";
        EXPECT_EQ(result(h, "check").value("changed", true), false);
    }
    const json ready = result("ready", "check"), nokvm = result("nokvm", "check"), noaccess = result("noaccess", "check");
    EXPECT_TRUE(verdict_of(ready) == "ready" || verdict_of(ready) == "ready_with_warnings") << ready.dump(1);
    EXPECT_EQ(ready["ansible_facts"]["kvmready"]["kvm_flavour"], "kvm_amd") << ready["ansible_facts"].dump(1);
    EXPECT_EQ(ready["ansible_facts"]["kvmready"]["nested"], true) << ready["ansible_facts"].dump(1);
    EXPECT_TRUE(nokvm["ansible_facts"]["kvmready"]["kvm_flavour"].is_null()) << nokvm["ansible_facts"].dump(1);
    EXPECT_EQ(verdict_of(nokvm), "not_ready") << nokvm["ansible_facts"].dump(1);
    EXPECT_TRUE(has_id(nokvm["ansible_facts"]["kvmready"]["failed"], "kvm.")) << nokvm["ansible_facts"].dump(1);
    EXPECT_EQ(verdict_of(noaccess), "not_ready") << noaccess["ansible_facts"].dump(1);
    EXPECT_TRUE(has_id(noaccess["ansible_facts"]["kvmready"]["failed"], "kvm.")) << noaccess["ansible_facts"].dump(1);
    // The whole report rides along, as `kvmready check --json` prints it.
    EXPECT_EQ(ready["report"].value("verdict", ""), verdict_of(ready));
    EXPECT_EQ(ready["report"]["host"].value("hostname", ""), "ready");
    // fail_on: not_ready (the default) fails exactly the guests that are not ready.
    EXPECT_EQ(result("ready", "strict").value("failed", true), false);
    EXPECT_EQ(result("nokvm", "strict").value("failed", false), true);
    EXPECT_EQ(result("noaccess", "strict").value("failed", false), true);
}

TEST_F(AnsibleFleet, FixCheckModeChangesNothing) {
    std::map<std::string, std::string> before;
    for (const char* h : {"ready", "nokvm", "noaccess"}) before[h] = snapshot(h);
    // Confirmed: what the guests can really do. pkg.virt-stack (install QEMU
    // and libvirt) is left out: the guests reach no package repository.
    const fs::path play = result_play("fix-check.yml", R"(    - kvmready.host.kvmready_fix:
        confirm: [user.groups]
      become: true
      register: fix
)",
                                      {"fix"});
    const PlayRun r = playbook(play, {"--check", "--diff"});
    ASSERT_EQ(r.c.exit_code, 0) << r.c.out << r.c.err;
    for (const char* h : {"ready", "nokvm", "noaccess"}) EXPECT_EQ(snapshot(h), before[h]) << h << ": check mode changed the guest";
    // The guest without /dev/kvm access has something to fix: check mode says
    // so (changed) and shows the unified diffs; nothing was applied.
    const json fix = result("noaccess", "fix");
    EXPECT_EQ(fix.value("changed", false), true) << fix.dump(1);
    EXPECT_FALSE(fix.value("fixes", json::array()).empty()) << fix.dump(1);
    EXPECT_FALSE(fix.contains("run_id")) << fix.dump(1);
    EXPECT_EQ(r.recap.at("noaccess").at("changed"), 1);
}

TEST_F(AnsibleFleet, FixAppliesThenSecondRunChangesNothing) {
    const std::string tasks = R"(    - kvmready.host.kvmready_fix:
        confirm: [user.groups]
      become: true
      register: fix
    - kvmready.host.kvmready_check:
        fail_on: never
      register: after
)";
    const PlayRun first = playbook(result_play("fix.yml", tasks, {"fix", "after"}));
    ASSERT_EQ(first.c.exit_code, 0) << first.c.out << first.c.err;
    const json fix = result("noaccess", "fix");
    EXPECT_EQ(fix.value("changed", false), true) << fix.dump(1);
    EXPECT_TRUE(fix.contains("run_id") && fix["run_id"].is_string()) << fix.dump(1);
    const PlayRun second = playbook(dir() / "fix.yml");
    ASSERT_EQ(second.c.exit_code, 0) << second.c.out << second.c.err;
    for (const char* h : {"ready", "nokvm", "noaccess"}) {
        SCOPED_TRACE(h);
        EXPECT_EQ(second.recap.at(h).at("changed"), 0) << second.c.out;
        EXPECT_EQ(result(h, "fix").value("changed", true), false) << result(h, "fix").dump(1);
    }
}

TEST_F(AnsibleFleet, ExamplePlaybookCollectsReportsAndLocalFact) {
    const fs::path reports = dir() / "reports", bundles = dir() / "bundles";
    const fs::path example = collections() / "ansible_collections/kvmready/host/playbooks/example.yml";
    const PlayRun r = playbook(example, {"-e", "kvmready_install=binary", "-e", std::string("kvmready_binary=") + KVMREADY_BINARY, "-e",
                                         "kvmready_reports_dir=" + reports.string(), "-e", "kvmready_bundle_dir=" + bundles.string()});
    ASSERT_EQ(r.c.exit_code, 0) << r.c.out << r.c.err;
    std::map<std::string, std::string> verdicts;
    for (const char* h : {"ready", "nokvm", "noaccess"}) {
        SCOPED_TRACE(h);
        const json rep = json::parse(read_text(reports / (std::string(h) + ".json")), nullptr, false);
        ASSERT_TRUE(rep.is_object()) << "no JSON report collected for " << h;
        EXPECT_EQ(rep["host"].value("hostname", ""), h);
        verdicts[h] = rep.value("verdict", "");
        const std::string bundle = read_text(bundles / (std::string(h) + ".tar.gz"));
        EXPECT_TRUE(bundle.size() > 2 && bundle[0] == '\x1f' && bundle[1] == '\x8b') << "no gzip bundle fetched for " << h;
    }
    EXPECT_TRUE(verdicts["ready"] == "ready" || verdicts["ready"] == "ready_with_warnings") << verdicts["ready"];
    EXPECT_EQ(verdicts["nokvm"], "not_ready");
    // The fleet report of what the playbook collected names each host's
    // verdict, and the inventory has no host without a report.
    const fs::path page = dir() / "fleet.html";
    const Captured fl = run_captured({KVMREADY_BINARY, "fleet", reports.string(), "--inventory", inventory_.string(), "-o", page.string(), "--json", "-"}, 120000);
    EXPECT_TRUE(fl.exit_code == 0 || fl.exit_code == 1) << fl.err;
    const json fj = json::parse(fl.out, nullptr, false);
    ASSERT_TRUE(fj.is_object()) << fl.out << fl.err;
    EXPECT_EQ(fj["summary"].value("hosts", 0), 3) << fl.out;
    EXPECT_EQ(fj["summary"].value("missing", -1), 0) << fl.out;
    for (const auto& host : fj["hosts"]) EXPECT_EQ(host.value("verdict", "?"), verdicts[host.value("hostname", "?")]) << host.value("hostname", "?");
    EXPECT_NE(read_text(page).find("nokvm"), std::string::npos) << "the page does not name the hosts";
    // ansible_local.kvmready, as any later play gathering facts sees it.
    const fs::path play = result_play("local.yml", R"(    - ansible.builtin.setup:
        gather_subset: ['!all', '!min', 'local']
    - ansible.builtin.set_fact:
        local: "{{ ansible_local.kvmready }}"
)",
                                      {"local"});
    const PlayRun lr = playbook(play);
    ASSERT_EQ(lr.c.exit_code, 0) << lr.c.out << lr.c.err;
    for (const char* h : {"ready", "nokvm", "noaccess"})
        EXPECT_EQ(result(h, "local").value("verdict", "<none>"), verdicts[h]) << h << ": " << result(h, "local").dump().substr(0, 400);
}

TEST_F(AnsibleFleet, UndoWithStateAbsent) {
    const fs::path play = result_play("undo.yml", R"(    - kvmready.host.kvmready_fix:
        state: absent
      become: true
      register: undo
)",
                                      {"undo"});
    const PlayRun first = playbook(play);
    ASSERT_EQ(first.c.exit_code, 0) << first.c.out << first.c.err;
    EXPECT_EQ(result("noaccess", "undo").value("changed", false), true) << result("noaccess", "undo").dump(1);
    const PlayRun second = playbook(play);
    ASSERT_EQ(second.c.exit_code, 0) << second.c.out << second.c.err;
    for (const char* h : {"ready", "nokvm", "noaccess"}) EXPECT_EQ(second.recap.at(h).at("changed"), 0) << h << second.c.out;
}

}  // namespace
