// The Ansible collection (ansible/ansible_collections/kvmready/host) driven by
// the real ansible-core over real SSH against three guests that really
// differ, booted once for the whole suite (SetUpTestSuite; CTest runs the
// suite as one entry, see tests/CMakeLists.txt):
//   ready     -cpu EPYC, kvm_amd nested=1 loaded, user `ansible` in group kvm
//   nokvm     -cpu Skylake-Server: TCG has no VMX, kvm_intel refuses to load
//   noaccess  -cpu EPYC, kvm_amd loaded, `ansible` NOT in group kvm (no /dev/kvm access)
// Guests: support/ssh_guest.hpp (Debian root of scripts/fetch-fleet-guest-root.sh,
// reached on 127.0.0.1 only). kvmready gets onto them through the role's
// install tasks: on `nokvm` as the .deb CPack builds from this build tree
// (while the guests boot), on the others as the binary; its modules are the
// collection's shell modules calling `kvmready ansible-module`. The tests run
// in order and build on each other (the .deb, check, check-mode fix, fix
// twice, the example playbook, undo; then on `ready` the bridge over the SSH
// link, its undo, and its rollback).
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

#include "support/ansible_play.hpp"
#include "support/guest_vm.hpp"
#include "support/spawn.hpp"
#include "support/ssh_guest.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace kvmready::testsupport;

constexpr auto kBootDeadline = std::chrono::seconds(240);
constexpr int kPlaybookTimeoutMs = 600 * 1000;
// The guest the net.bridge tests move eth0 on (its SSH arrives over eth0).
constexpr const char* kBridgeHost = "ready";
// The guest the role gives the .deb (the others get the binary).
constexpr const char* kDebHost = "nokvm";

class AnsibleFleet : public ::testing::Test {
protected:
    static inline std::unique_ptr<TempDir> tmp_;
    static inline std::vector<std::unique_ptr<SshGuest>> guests_;
    static inline std::string skip_, setup_error_;
    static inline fs::path inventory_, key_, deb_;
    static inline std::string deb_skip_;

    static fs::path dir() { return tmp_->path; }
    static fs::path collections() { return ansible_collections_dir(); }

    static void write(const fs::path& p, const std::string& text) {
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }

    static PlayRun playbook(const fs::path& play, const std::vector<std::string>& extra = {}) {
        return run_playbook({}, inventory_, play, extra, dir(), ansible_env(dir()), kPlaybookTimeoutMs);
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
        build_deb();  // while the guests boot
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
        // kvmready onto every guest, through the role's own install tasks:
        // the package on kDebHost, the binary on the others.
        write(dir() / "install.yml", fmt::format(R"(- hosts: fleet
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: kvmready.host.kvmready
        tasks_from: install.yml
      vars:
        kvmready_install: "{{{{ 'deb' if inventory_hostname == '{}' else 'binary' }}}}"
        kvmready_binary: {}
        kvmready_deb: {}
)",
                                                 deb_.empty() ? "" : kDebHost, KVMREADY_BINARY, deb_.string()));
        const PlayRun r = playbook(dir() / "install.yml");
        if (r.c.exit_code != 0) setup_error_ = "installing kvmready failed:\n" + r.c.out + r.c.err;
    }

    // The package CPack builds from this build tree (what `scripts/dev.sh
    // package` makes); deb_skip_ says why not when it cannot.
    static void build_deb() {
        if (!find_in_path("dpkg-shlibdeps")) {
            deb_skip_ = "dpkg-shlibdeps is not installed (dpkg-dev; scripts/dev.sh test installs it): CPack cannot build the .deb";
            return;
        }
        const fs::path out = dir() / "deb";
        fs::create_directories(out);
        const auto t0 = std::chrono::steady_clock::now();
        const Captured pk = run_captured({KVMREADY_CPACK, "-G", "DEB", "--config", KVMREADY_BUILD_DIR "/CPackConfig.cmake", "-B", out.string()}, 300000);
        const fs::path deb = out / (std::string("kvmready_") + KVMREADY_VERSION + "-1_amd64.deb");
        if (pk.exit_code != 0 || !fs::exists(deb)) {
            setup_error_ = "cpack -G DEB failed:\n" + pk.out + pk.err;
            return;
        }
        deb_ = deb;
        std::cout << fmt::format("[ package  ] {} ({} bytes) in {:.1f} s\n", deb.filename().string(), fs::file_size(deb),
                                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
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
    static fs::path result_play(const std::string& file, const std::string& tasks, const std::vector<std::string>& names,
                                const std::string& hosts = "fleet") {
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
        write(p, "- hosts: " + hosts + "\n  gather_facts: false\n  tasks:\n" + tasks + save);
        return p;
    }

    // eth0's link, addresses and routes, and ifupdown's files on `host`: what
    // the bridge move changes and its undo and rollback must give back (the
    // lifetime of the route QEMU's router advertisement gave counts down).
    static std::string net_state(const std::string& host) {
        return state_of(host,
                        "ip -o link show dev eth0 | sed 's/\\\\.*//'; ip -br addr show dev eth0;"
                        " ip route show table all | grep -v '^local\\|^broadcast\\|^multicast\\|fe80\\|ff00' | sed 's/ expires [0-9]*sec//';"
                        " md5sum /etc/network/interfaces; ls -A /etc/network/interfaces.d");
    }
    static inline std::string net_before_, bridge_run_id_;

    static json result(const std::string& host, const std::string& name) {
        const fs::path p = dir() / "out" / (host + "-" + name + ".json");
        if (!fs::exists(p)) return json();
        return json::parse(read_text(p), nullptr, false);
    }

    // Everything a fix could touch on a guest: files under /etc and kvmready's
    // state, the /dev/kvm node, the user's groups, the loaded modules.
    static std::string snapshot(const std::string& host) {
        return state_of(host,
                        "sudo sh -c 'find /etc /var/lib/kvmready /usr/local/bin -xdev -printf \"%p %m %U %G %s\\n\" 2>/dev/null | sort;"
                        " find /etc /var/lib/kvmready -xdev -type f -exec md5sum {} + 2>/dev/null | sort; ls -ln /dev/kvm 2>&1; id ansible;"
                        " cut -d\" \" -f1 /proc/modules | sort'");
    }

    // A command's output on `host` (a test failure when it does not exit 0).
    static std::string state_of(const std::string& host, const std::string& command) {
        const Captured c = guest(host).ssh(command, 120000);
        EXPECT_EQ(c.exit_code, 0) << command << ": " << c.err;
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

// The role's .deb install path, taken on kDebHost by the suite's setup
// (ansible.builtin.apt with deb:, python3-apt in the guest root): the package
// is installed, its postinst made the system user, and its /usr/bin/kvmready
// is the only kvmready there, so the modules of the next test run it.
TEST_F(AnsibleFleet, RoleInstalledTheDebAndItRuns) {
    if (!deb_skip_.empty()) GTEST_SKIP() << deb_skip_;
    const Captured c = guest(kDebHost).ssh(
        "dpkg-query -W -f='${Status} ${Version}\\n' kvmready; command -v kvmready; ls /usr/local/bin/kvmready 2>&1; kvmready --version;"
        " id -nG kvmready; kvmready check --json > /tmp/deb-check.json; echo \"check exit $?\"; head -c 200 /tmp/deb-check.json",
        120000);
    ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
    EXPECT_NE(c.out.find(std::string("install ok installed ") + KVMREADY_VERSION + "-1\n"), std::string::npos) << c.out;
    EXPECT_NE(c.out.find("\n/usr/bin/kvmready\n"), std::string::npos) << c.out;
    EXPECT_NE(c.out.find("/usr/local/bin/kvmready': No such file"), std::string::npos) << c.out;
    EXPECT_NE(c.out.find(std::string("\nkvmready ") + KVMREADY_VERSION + "\n"), std::string::npos) << c.out;
    // The postinst's system user, in group kvm (the guest root has it).
    EXPECT_TRUE(std::regex_search(c.out, std::regex(R"(\nkvmready( \w+)* kvm)"))) << c.out;
    // kvmready check from the package: exit 1 (not ready: no KVM on this guest), a JSON report.
    EXPECT_NE(c.out.find("check exit 1\n{"), std::string::npos) << c.out;
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


// ---- net.bridge over the very link Ansible uses ------------------------------
// On `ready`, whose SSH arrives through QEMU user networking on eth0 (ifupdown:
// a static stanza in /etc/network/interfaces). The fix runs asynchronously
// (async + poll: 0) and its result is collected by async_status over fresh
// SSH connections, as the collection's README tells users to do.

// kvmready_fix as an async task, then async_status until it finished: the
// result registered as `name` (the module's own JSON once finished).
std::string async_fix(const std::string& name, const std::string& params, bool ignore_errors = false) {
    return fmt::format(R"(    - name: {0} (async, over the link it may move)
      kvmready.host.kvmready_fix:
{1}      become: true
      async: 180
      poll: 0
      register: {0}_job
    - name: {0}, collected over a fresh connection
      ansible.builtin.async_status:
        jid: "{{{{ {0}_job.ansible_job_id }}}}"
      become: true
      register: {0}
      until: {0}.finished
      retries: 180
      delay: 1
{2})",
                       name, params, ignore_errors ? "      ignore_errors: true\n" : "");
}

TEST_F(AnsibleFleet, BridgeUplinkOverTheSshLinkSurvivesAndSecondRunChangesNothing) {
    const std::string before = net_state(kBridgeHost);
    ASSERT_NE(before.find("10.0.2.15/24"), std::string::npos) << "eth0 does not carry the guest's address:\n" << before;
    net_before_ = before;
    const std::string params = "        bridge: kvbr0\n        uplink: eth0\n        only: [net.bridge]\n        confirm: [net.bridge]\n";
    // The second run is synchronous: it must find nothing to move.
    const std::string again_task = "    - kvmready.host.kvmready_fix:\n" + params + "      become: true\n      register: again\n";
    const PlayRun r = playbook(result_play("bridge.yml", async_fix("bridge", params) + again_task, {"bridge", "again"}, kBridgeHost));
    ASSERT_EQ(r.c.exit_code, 0) << r.c.out << r.c.err;
    const json fix = result(kBridgeHost, "bridge"), again = result(kBridgeHost, "again");
    EXPECT_EQ(fix.value("finished", 0), 1) << fix.dump(1);
    EXPECT_EQ(fix.value("changed", false), true) << fix.dump(1);
    EXPECT_EQ(fix.value("failed", true), false) << fix.dump(1);
    EXPECT_EQ(fix["fixes"], json::array({"net.bridge"})) << fix.dump(1);
    // The plan wrote ifupdown's configuration (the stack the guest uses).
    EXPECT_NE(fix.dump().find("ifupdown configures this host"), std::string::npos) << fix.dump(1);
    ASSERT_TRUE(fix.contains("run_id") && fix["run_id"].is_string()) << fix.dump(1);
    bridge_run_id_ = fix["run_id"];
    // The second run over the moved link: nothing left to do.
    EXPECT_EQ(again.value("changed", true), false) << again.dump(1);
    EXPECT_EQ(again.value("failed", true), false) << again.dump(1);
    // SSH still works, and the bridge holds what eth0 had.
    const Captured c = guest(kBridgeHost).ssh(
        "ip -o link show dev eth0; echo ---; ip -br addr show dev kvbr0; echo ---; ip route show default; echo ---;"
        " cat /etc/network/interfaces.d/kvbr0; echo ---; cat /etc/network/interfaces",
        60000);
    ASSERT_EQ(c.exit_code, 0) << "SSH after the move: " << c.err;
    EXPECT_NE(c.out.find("master kvbr0"), std::string::npos) << c.out;
    EXPECT_TRUE(std::regex_search(c.out, std::regex(R"(\nkvbr0\s+UP\s+10\.0\.2\.15/24)"))) << c.out;
    EXPECT_NE(c.out.find("default via 10.0.2.2 dev kvbr0"), std::string::npos) << c.out;
    EXPECT_TRUE(std::regex_search(c.out, std::regex(R"(iface kvbr0 inet static\n\s+address 10\.0\.2\.15/24\n\s+gateway 10\.0\.2\.2\n\s+bridge_ports eth0\n)"))) << c.out;
    EXPECT_TRUE(std::regex_search(c.out, std::regex(R"(iface eth0 inet manual)"))) << c.out;
}

TEST_F(AnsibleFleet, BridgeUndoWithStateAbsentRestoresTheNic) {
    if (bridge_run_id_.empty()) GTEST_SKIP() << "the bridge was not applied (see the test before)";
    const PlayRun r = playbook(result_play("bridge-undo.yml", async_fix("undo", "        state: absent\n        run_id: " + bridge_run_id_ + "\n"),
                                           {"undo"}, kBridgeHost));
    ASSERT_EQ(r.c.exit_code, 0) << r.c.out << r.c.err;
    const json undo = result(kBridgeHost, "undo");
    EXPECT_EQ(undo.value("changed", false), true) << undo.dump(1);
    EXPECT_EQ(undo.value("failed", true), false) << undo.dump(1);
    EXPECT_EQ(net_state(kBridgeHost), net_before_) << "the undo did not give eth0 and its configuration back";
    const Captured c = guest(kBridgeHost).ssh("ip -br link show dev kvbr0 2>&1", 60000);
    EXPECT_NE(c.out.find("does not exist"), std::string::npos) << c.out;
}

// The rollback, produced for real: the bridge exists already with STP on and
// a 30 s forward delay (a classic misconfiguration), so once eth0 is its port
// nothing is forwarded for a minute: the connectivity probe gets no answer
// from the gateway, kvmready tells its watchdog to run the reverse batch, and
// the host is reachable again and unchanged, which Ansible's next connection
// proves.
TEST_F(AnsibleFleet, BridgeWatchdogRollsBackWhenTheMoveLosesConnectivity) {
    if (net_before_.empty()) GTEST_SKIP() << "no network state recorded (see the bridge test before)";
    Captured mk = guest(kBridgeHost).ssh("sudo ip link add kvbr1 type bridge stp_state 1 forward_delay 3000 && sudo ip link set kvbr1 up", 60000);
    ASSERT_EQ(mk.exit_code, 0) << mk.err;
    const PlayRun r = playbook(result_play("bridge-rollback.yml",
                                           async_fix("rollback", "        bridge: kvbr1\n        uplink: eth0\n        only: [net.bridge]\n        confirm: [net.bridge]\n",
                                                     true),
                                           {"rollback"}, kBridgeHost));
    (void)guest(kBridgeHost).ssh("sudo ip link del kvbr1", 60000);
    ASSERT_EQ(r.c.exit_code, 0) << r.c.out << r.c.err;
    const json rb = result(kBridgeHost, "rollback");
    EXPECT_EQ(rb.value("finished", 0), 1) << rb.dump(1);
    EXPECT_EQ(rb.value("failed", false), true) << rb.dump(1);
    EXPECT_EQ(rb.value("changed", true), false) << rb.dump(1);
    std::cout << "[ rollback ] " << rb.value("msg", "<no msg>") << "\n";
    // Ansible's msg names the step and why it was rolled back.
    const std::string msg = rb.value("msg", "");
    EXPECT_NE(msg.find("[net.bridge]"), std::string::npos) << rb.dump(1);
    EXPECT_NE(msg.find("connectivity lost"), std::string::npos) << rb.dump(1);
    EXPECT_NE(msg.find("rolled back"), std::string::npos) << rb.dump(1);
    EXPECT_EQ(net_state(kBridgeHost), net_before_) << "the rollback did not leave eth0 and its configuration as they were";
}


}  // namespace
