// End-to-end tests of `kvmready check --root` on the fixture host trees in
// tests/fixtures (README.md there says where each came from). Every case runs
// the real binary twice, as text and as JSON, from the fixtures directory so
// that the printed source is the tree's relative name; asserts exit code,
// verdict, key statuses and hints; checks the JSON schema invariants; and
// compares both outputs byte for byte with their golden copies: a few base
// cases are stored complete (tests/golden/<case>.{txt,json}), the others as
// overlays on another case (tests/golden/<case>.overlay.json, holding only
// the checks and fields that differ; support/golden_overlay.hpp), composed
// complete before the comparison; <case>.stderr for runs that fail before
// judging.
//
// KVMREADY_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing
// them (every other assertion still runs): bases complete, the others as
// overlays on their base's output of this run. Read the diff before committing.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/background.hpp"
#include "support/golden_overlay.hpp"
#include "support/spawn.hpp"

#include "core/check.hpp"
#include <nlohmann/json.hpp>

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace golden = kvmready::testsupport::golden;
using nlohmann::json;

const std::string kBinary = KVMREADY_BINARY;
const std::string kFixtures = KVMREADY_FIXTURES_DIR;
const fs::path kGolden = fs::path(KVMREADY_SOURCE_DIR) / "tests/golden";

struct Proc {
    int exit_code = -1;
    std::string out, err;
};

// The child's environment: ours, with a C locale and no NO_COLOR.
std::vector<std::string> child_env() { return kvmready::testsupport::c_locale_env(); }

// The tool in `cwd` with the test environment, both streams captured.
Proc run_kvmready(const std::vector<std::string>& args, const std::string& cwd = kFixtures) {
    std::vector<std::string> argv{kBinary};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::vector<std::string> env = child_env();
    const auto c = kvmready::testsupport::run_captured(argv, 60000, cwd, &env);
    if (!c.started) ADD_FAILURE() << c.spawn_error;
    if (c.timed_out) ADD_FAILURE() << "kvmready did not finish within 60 s";
    Proc r;
    r.exit_code = c.exit_code;
    r.out = c.out;
    r.err = c.err;
    return r;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool updating_golden() {
    const char* v = std::getenv("KVMREADY_UPDATE_GOLDEN");
    return v && std::string(v) == "1";
}

void write_file(const fs::path& path, const std::string& content) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

// Byte-for-byte comparison of an output with what `what` says it must be.
void compare_output(const std::string& what, const std::string& expected, const std::string& actual) {
    if (expected == actual) return;
    std::istringstream a(actual), e(expected);
    std::string la, le;
    int line = 1;
    while (true) {
        const bool ga = static_cast<bool>(std::getline(a, la)), ge = static_cast<bool>(std::getline(e, le));
        if (!ga && !ge) break;
        if (!ga || !ge || la != le) {
            ADD_FAILURE() << what << " differs at line " << line << "\n  golden: " << (ge ? le : "<end of file>")
                          << "\n  actual: " << (ga ? la : "<end of output>")
                          << "\n(KVMREADY_UPDATE_GOLDEN=1 rewrites the golden files)";
            return;
        }
        ++line;
    }
    ADD_FAILURE() << what << " differs (line endings or trailing bytes)";
}

// Byte-for-byte comparison with the complete file tests/golden/<name>, or rewrite it.
void check_golden(const std::string& name, const std::string& actual) {
    const fs::path path = kGolden / name;
    if (updating_golden()) {
        write_file(path, actual);
        return;
    }
    ASSERT_TRUE(fs::exists(path)) << path << " is missing; run with KVMREADY_UPDATE_GOLDEN=1 to create it";
    compare_output(path.string(), read_file(path), actual);
}

// The JSON schema every `check --json` output must follow (kvmready(1), JSON OUTPUT).
void check_schema(const json& j) {
    ASSERT_TRUE(j.is_object());
    ASSERT_TRUE(j.contains("schema_version"));
    EXPECT_TRUE(j["schema_version"].is_number_integer());
    EXPECT_EQ(j["schema_version"], 1);
    ASSERT_TRUE(j["tool"].is_object());
    EXPECT_EQ(j["tool"]["name"], "kvmready");
    EXPECT_TRUE(j["tool"]["version"].is_string());
    ASSERT_TRUE(j["host"].is_object());
    EXPECT_TRUE(j["host"]["source"].is_string());
    EXPECT_TRUE(j["host"]["recorded"].is_boolean());
    EXPECT_TRUE(j["host"]["hostname"].is_string());
    EXPECT_TRUE(j["host"]["kernel"].is_string());
    EXPECT_TRUE(j["host"]["cpu_source"].is_string());
    // A whole run judges the host; a run of selected checks only them.
    ASSERT_TRUE(j["scope"].is_object());
    const bool whole = j["scope"]["kind"] == "host";
    EXPECT_TRUE(whole || j["scope"]["kind"] == "selection") << j["scope"];
    EXPECT_EQ(whole, j["scope"]["selected"].empty()) << j["scope"];
    const std::set<std::string> verdicts = whole ? std::set<std::string>{"ready", "ready_with_warnings", "not_ready", "undetermined"}
                                                 : std::set<std::string>{"passed", "passed_with_warnings", "failed", "undetermined"};
    ASSERT_TRUE(j["verdict"].is_string());
    EXPECT_TRUE(verdicts.count(j["verdict"].get<std::string>())) << j["verdict"];
    // "can run KVM" only with kvm.api's evidence.
    if (j["verdict_text"].get<std::string>().find("can run KVM") != std::string::npos) {
        bool api_pass = false;
        for (const auto& chk : j["checks"])
            if (chk["id"] == "kvm.api" && chk["status"] == "pass") api_pass = true;
        EXPECT_TRUE(api_pass) << j["verdict_text"];
    }
    EXPECT_TRUE(j["verdict_text"].is_string());
    EXPECT_TRUE(j["next_step"].is_string() || j["next_step"].is_null());
    if (j["verdict"] == "ready") {
        EXPECT_TRUE(j["next_step"].is_null());
    }

    ASSERT_TRUE(j["checks"].is_array());
    const std::set<std::string> levels = {"required", "recommended", "optional"};
    const std::set<std::string> statuses = {"pass", "warn", "fail", "skip", "unknown", "error"};
    const std::set<std::string> applicabilities = {"automatic", "confirm", "manual"};
    std::map<std::string, int> counted;
    std::set<std::string> ids;
    for (const auto& c : j["checks"]) {
        ASSERT_TRUE(c.is_object());
        for (const char* k : {"id", "category", "title", "level", "status", "message"}) {
            ASSERT_TRUE(c.contains(k) && c[k].is_string()) << k << " in " << c.dump();
        }
        const std::string id = c["id"];
        EXPECT_TRUE(ids.insert(id).second) << "duplicate check id " << id;
        EXPECT_EQ(c["category"], id.substr(0, id.find('.'))) << id;
        EXPECT_FALSE(c["title"].get<std::string>().empty()) << id;
        EXPECT_FALSE(c["message"].get<std::string>().empty()) << id;
        EXPECT_TRUE(levels.count(c["level"].get<std::string>())) << id;
        ASSERT_TRUE(statuses.count(c["status"].get<std::string>())) << id;
        ++counted[c["status"].get<std::string>()];
        EXPECT_TRUE(c["evidence"].is_object()) << id;
        ASSERT_TRUE(c["remediation"].is_object()) << id;
        const json& r = c["remediation"];
        EXPECT_TRUE(r["text"].is_string()) << id;
        ASSERT_TRUE(r["commands"].is_array()) << id;
        for (const auto& cmd : r["commands"]) EXPECT_TRUE(cmd.is_string()) << id;
        EXPECT_TRUE(r["fix_id"].is_string() || r["fix_id"].is_null()) << id;
        EXPECT_TRUE(r["applicability"].is_null() ||
                    (r["applicability"].is_string() && applicabilities.count(r["applicability"].get<std::string>())))
            << id;
        EXPECT_TRUE(r["requires_root"].is_boolean()) << id;
    }
    ASSERT_TRUE(j["summary"].is_object());
    int sum = 0;
    for (const auto& s : statuses) {
        ASSERT_TRUE(j["summary"][s].is_number_integer()) << s;
        EXPECT_EQ(j["summary"][s].get<int>(), counted[s]) << "summary." << s;
        sum += j["summary"][s].get<int>();
    }
    EXPECT_EQ(j["summary"]["total"].get<int>(), static_cast<int>(j["checks"].size()));
    EXPECT_EQ(sum, static_cast<int>(j["checks"].size()));
}

const json* find_check(const json& j, const std::string& id) {
    for (const auto& c : j["checks"])
        if (c["id"] == id) return &c;
    return nullptr;
}

// Message, remediation text and commands of a check, for substring matches.
std::string check_text(const json& c) {
    std::string s = c["message"].get<std::string>() + "\n" + c["remediation"]["text"].get<std::string>();
    for (const auto& cmd : c["remediation"]["commands"]) s += "\n" + cmd.get<std::string>();
    return s;
}

struct Case {
    std::string name;                 // golden file stem and test name
    std::string fixture;              // tree under tests/fixtures
    std::vector<std::string> args;    // after `check --root FIXTURE`
    int exit_code;
    std::string verdict;              // empty for runs that fail before judging
    std::map<std::string, std::string> statuses;
    // (check id, substring of its message/remediation); for error runs: ("stderr", substring)
    std::vector<std::pair<std::string, std::string>> hints;
    // (check id, evidence key, expected value)
    std::vector<std::tuple<std::string, std::string, json>> evidence = {};
    std::vector<std::string> exact_ids = {};  // when set: exactly these checks, in this order
};

// gtest prints parameters as raw bytes otherwise.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name << " (--root " << c.fixture << ")"; }

// Every registered check, in registry order: a full run must report each once.
const std::vector<std::string> kAllIds = [] {
    std::vector<std::string> ids;
    for (const auto& c : kvmready::registry()) ids.push_back(c.id);
    return ids;
}();

const std::vector<Case>& cases() {
    static const std::vector<Case> c = {
        {"intel_vtx", "intel-vtx", {}, 0, "ready",
         {{"cpu.virt-extensions", "pass"}, {"cpu.firmware-enabled", "pass"}, {"cpu.ept-npt", "pass"},
          {"host.hypervisor", "pass"}, {"kvm.module", "pass"}, {"kvm.device", "pass"}, {"kvm.access", "pass"},
          {"kvm.api", "pass"}, {"kvm.nested", "warn"}},
         {{"cpu.firmware-enabled", "IA32_FEATURE_CONTROL=0x5"}, {"kvm.device", "root:kvm"},
          {"kvm.api", "via kvm_intel"}, {"kvm.nested", "options kvm_intel nested=1"}},
         {{"cpu.ept-npt", "ept", true}, {"kvm.nested", "nested", "N"}},
         kAllIds},
        {"amd_nested", "amd-nested", {}, 0, "ready",
         {{"cpu.virt-extensions", "pass"}, {"cpu.firmware-enabled", "pass"}, {"cpu.ept-npt", "pass"},
          {"host.hypervisor", "pass"}, {"kvm.module", "pass"}, {"kvm.device", "pass"}, {"kvm.access", "pass"},
          {"kvm.api", "pass"}, {"kvm.nested", "pass"}},
         {{"cpu.firmware-enabled", "VM_CR=0x0"}, {"cpu.ept-npt", "NPT"}, {"kvm.nested", "kvm_amd nested=1"}},
         {{"cpu.firmware-enabled", "svmdis", false}, {"cpu.ept-npt", "npt", true}}},
        {"no_kvm_module", "no-kvm-module", {}, 1, "not_ready",
         {{"cpu.virt-extensions", "pass"}, {"cpu.firmware-enabled", "pass"}, {"kvm.module", "fail"},
          {"kvm.device", "fail"}, {"kvm.access", "skip"}, {"kvm.api", "skip"}, {"kvm.nested", "skip"}},
         {{"kvm.module", "modprobe kvm_intel"}, {"kvm.device", "modprobe kvm_intel"}},
         {{"kvm.module", "expected_vendor_module", "kvm_intel"}, {"kvm.module", "module_support", true}}},
        {"no_dev_kvm", "no-dev-kvm", {}, 1, "not_ready",
         {{"kvm.module", "pass"}, {"kvm.device", "fail"}, {"kvm.access", "skip"}, {"kvm.api", "skip"},
          {"kvm.nested", "pass"}},
         {{"kvm.device", "mknod -m 0660 /dev/kvm c 10 232"}, {"kvm.device", "KVM registered its device (10:232 in /proc/misc)"}}},
        {"kvm_group_outside", "kvm-group-outside", {"--user", "alice"}, 1, "not_ready",
         {{"kvm.device", "pass"}, {"kvm.access", "fail"}, {"kvm.api", "pass"}},
         {{"kvm.access", "usermod -aG kvm alice"}},
         {{"kvm.access", "user", "alice"}, {"kvm.access", "permission_basis", "the other bits"}}},
        {"kvm_group_stale_session", "kvm-group-stale-session", {}, 1, "not_ready",
         {{"cpu.firmware-enabled", "pass"}, {"kvm.device", "pass"}, {"kvm.access", "fail"}, {"kvm.api", "skip"}},
         {{"kvm.access", "newgrp kvm"}, {"kvm.access", "log out and in"}},
         {{"kvm.access", "user", "alice"}, {"kvm.access", "open_rw", "Permission denied (EACCES)"}}},
        {"vmx_locked", "vmx-locked", {}, 1, "not_ready",
         {{"cpu.virt-extensions", "pass"}, {"cpu.firmware-enabled", "fail"}, {"kvm.module", "fail"},
          {"kvm.device", "fail"}},
         {{"cpu.firmware-enabled", "IA32_FEATURE_CONTROL=0x1"}, {"cpu.firmware-enabled", "firmware setup"}},
         {{"cpu.firmware-enabled", "locked", true}, {"cpu.firmware-enabled", "vmx_outside_smx", false},
          {"kvm.module", "present", json::array({"irqbypass", "kvm"})}}},
        {"vmx_locked_nonroot", "vmx-locked-nonroot", {}, 1, "not_ready",
         {{"cpu.virt-extensions", "pass"}, {"cpu.firmware-enabled", "fail"}, {"kvm.module", "fail"},
          {"kvm.device", "fail"}},
         {{"cpu.firmware-enabled", "kernel reports it unusable"}, {"cpu.firmware-enabled", "disabled by bios"}},
         {{"cpu.firmware-enabled", "msr_error", "reading /dev/cpu/0/msr needs root (CAP_SYS_RAWIO)"},
          {"cpu.virt-extensions", "cpuinfo_vmx", false}}},
        {"hyperv_guest", "hyperv-guest", {}, 1, "not_ready",
         {{"cpu.virt-extensions", "fail"}, {"cpu.firmware-enabled", "skip"}, {"host.hypervisor", "warn"},
          {"kvm.module", "fail"}, {"kvm.device", "fail"}},
         {{"cpu.virt-extensions", "Set-VMProcessor"}, {"cpu.virt-extensions", "Microsoft Hyper-V"},
          {"host.hypervisor", "Hyper-V"}, {"host.hypervisor", "detected by the kernel"}},
         {{"cpu.virt-extensions", "hypervisor_vendor", "Microsoft Hv"},
          {"host.hypervisor", "dmi", {{"bios_vendor", "Microsoft Corporation"}, {"board_vendor", "Microsoft Corporation"},
                                      {"chassis_vendor", "Microsoft Corporation"}, {"product_name", "Virtual Machine"},
                                      {"product_version", "Hyper-V UEFI Release v4.1"},
                                      {"sys_vendor", "Microsoft Corporation"}}}}},
        {"container", "container", {}, 1, "not_ready",
         {{"cpu.virt-extensions", "pass"}, {"host.hypervisor", "warn"}, {"kvm.module", "pass"},
          {"kvm.device", "fail"}, {"kvm.access", "skip"}, {"kvm.api", "skip"}},
         {{"host.hypervisor", "container"}, {"kvm.device", "--device /dev/kvm"}}},
        {"pvm_host", "pvm-host", {}, 0, "ready_with_warnings",
         {{"cpu.virt-extensions", "warn"}, {"cpu.firmware-enabled", "skip"}, {"host.hypervisor", "pass"},
          {"kvm.module", "pass"}, {"kvm.device", "pass"}, {"kvm.access", "pass"}, {"kvm.api", "pass"},
          {"kvm.nested", "unknown"}},
         {{"cpu.virt-extensions", "kvm_pvm"}, {"kvm.api", "via kvm_pvm"}}},
        // Real recordings made inside Debian's cloud kernel under QEMU TCG
        // (tests/fixtures/record-guest.sh): a genuine AMD KVM host, and an
        // Intel CPU without VMX where kvm_intel really failed to load.
        {"amd_epyc_guest", "amd-epyc-guest", {}, 0, "ready_with_warnings",
         {{"cpu.virt-extensions", "pass"}, {"cpu.firmware-enabled", "pass"}, {"cpu.ept-npt", "pass"},
          {"host.hypervisor", "pass"}, {"kvm.module", "pass"}, {"kvm.device", "pass"}, {"kvm.access", "pass"},
          {"kvm.api", "pass"}, {"kvm.nested", "pass"}},
         {{"host.hypervisor", "QEMU TCG"}, {"kvm.api", "via kvm_amd"}, {"kvm.nested", "kvm_amd nested=1"}}},
        {"intel_novmx_guest", "intel-novmx-guest", {}, 1, "not_ready",
         {{"cpu.virt-extensions", "fail"}, {"kvm.module", "fail"}, {"kvm.device", "fail"}, {"kvm.api", "skip"}},
         {{"cpu.virt-extensions", "-cpu EPYC"}, {"kvm.module", "see cpu.virt-extensions"}}},
        {"pvm_host_nobody", "pvm-host", {"--user", "nobody"}, 1, "not_ready",
         {{"kvm.device", "pass"}, {"kvm.access", "fail"}, {"kvm.api", "pass"}},
         {{"kvm.access", "nobody cannot open /dev/kvm"}, {"kvm.access", "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm"}},
         {{"kvm.access", "device_mode", "0600"}}},
        {"pvm_host_strict", "pvm-host", {"--strict"}, 1, "ready_with_warnings",
         {{"cpu.virt-extensions", "warn"}, {"kvm.api", "pass"}}, {}},
        {"select_category_and_id", "pvm-host", {"kvm", "cpu.virt-extensions"}, 0, "passed_with_warnings",
         {{"cpu.virt-extensions", "warn"}, {"kvm.api", "pass"}}, {}, {},
         {"cpu.virt-extensions", "kvm.module", "kvm.device", "kvm.access", "kvm.api", "kvm.nested", "kvm.vmm-capabilities", "kvm.guest-cpuid", "kvm.feature-msrs", "kvm.vm-types", "kvm.nested-state", "kvm.qemu-user-access"}},
        {"select_id", "no-dev-kvm", {"kvm.device"}, 1, "failed", {{"kvm.device", "fail"}},
         {{"kvm.device", "mknod"}}, {}, {"kvm.device"}},
        // The machine kind of issue "Every host": kvm_pvm built in but not bound.
        {"pvm_guest_no_kvm", "pvm-guest-no-kvm", {}, 1, "not_ready",
         {{"cpu.virt-extensions", "fail"}, {"host.hypervisor", "warn"}, {"kvm.module", "fail"}, {"kvm.device", "fail"},
          {"kvm.access", "skip"}, {"kvm.api", "skip"}},
         {{"kvm.device", "kvm-pvm: this kernel is itself a kvm-pvm guest; not binding"}, {"kvm.module", "not binding"},
          {"host.hypervisor", "PVM"}, {"host.hypervisor", "KVMKVMKVM"}, {"cpu.virt-extensions", "--virt-type qemu"}},
         {{"host.hypervisor", "kernel_detected", "PVM"}, {"kvm.device", "device_registration", "not registered (/proc/misc has no kvm)"}}},
        // A selection answers for itself: memory passes here, but KVM does
        // not work, and the verdict must not say otherwise.
        {"select_memory_without_kvm", "system-intel-dmar-off", {"memory"}, 0, "passed_with_warnings", {{"memory.ksm", "pass"}}, {}},
        {"unknown_selector", "pvm-host", {"kvm.bogus"}, 64, "", {},
         {{"stderr", "unknown check or category 'kvm.bogus'"}}},
        {"missing_root", "no-such-tree", {}, 66, "", {}, {{"stderr", "--root no-such-tree: no such directory"}}},
        {"corrupt_host_json", "corrupt-host-json", {}, 65, "", {},
         {{"stderr", "corrupt-host-json/.kvmready/host.json: not valid JSON"}}},
        {"corrupt_cpuid", "corrupt-cpuid", {}, 65, "", {}, {{"stderr", "corrupt-cpuid/.kvmready/cpuid.txt:64:"}}},
    };
    return c;
}

// The case each overlay case's golden output is stored on
// (tests/golden/<case>.overlay.json); every other case that judges is a base,
// stored complete (<case>.txt, <case>.json). Mostly the case of the tree its
// fixture tree is an overlay on (tests/fixtures/*/.kvmready-overlay).
const std::map<std::string, std::string> kGoldenBase = {
    {"amd_nested", "intel_vtx"},
    {"no_kvm_module", "intel_vtx"},
    {"no_dev_kvm", "intel_vtx"},
    {"kvm_group_outside", "intel_vtx"},
    {"kvm_group_stale_session", "kvm_group_outside"},
    {"vmx_locked", "intel_vtx"},
    {"vmx_locked_nonroot", "vmx_locked"},
    {"hyperv_guest", "intel_vtx"},
    {"container", "intel_vtx"},
    {"amd_epyc_guest", "intel_vtx"},
    {"intel_novmx_guest", "amd_epyc_guest"},
    {"pvm_host_nobody", "pvm_host"},
    {"pvm_host_strict", "pvm_host"},
    {"select_category_and_id", "pvm_host"},
    {"select_id", "no_dev_kvm"},
    {"pvm_guest_no_kvm", "pvm_host"},
    {"select_memory_without_kvm", "intel_vtx"},
};

const Case& case_named(const std::string& name) {
    for (const auto& c : cases())
        if (c.name == name) return c;
    throw std::runtime_error("no fixture case named " + name);
}

// The case's text and JSON runs.
std::pair<Proc, Proc> run_case(const Case& c) {
    std::vector<std::string> text_args = {"check", "--root", c.fixture, "--color=never"};
    std::vector<std::string> json_args = {"check", "--root", c.fixture, "--json"};
    text_args.insert(text_args.end(), c.args.begin(), c.args.end());
    json_args.insert(json_args.end(), c.args.begin(), c.args.end());
    Proc js = run_kvmready(json_args);
    js.out = golden::normalise_run(js.out);  // the run's time and duration vary
    return {run_kvmready(text_args), js};
}

fs::path overlay_path(const std::string& name) { return kGolden / (name + ".overlay.json"); }

// The golden output of a case: its complete files, or its overlay composed
// on its base's golden output.
golden::Outputs expected_outputs(const std::string& name) {
    const auto base = kGoldenBase.find(name);
    if (base == kGoldenBase.end())
        return {read_file(kGolden / (name + ".txt")), read_file(kGolden / (name + ".json"))};
    const fs::path path = overlay_path(name);
    if (!fs::exists(path)) throw std::runtime_error(path.string() + " is missing; run with KVMREADY_UPDATE_GOLDEN=1 to create it");
    const auto overlay = nlohmann::ordered_json::parse(read_file(path));
    if (overlay.value("base", "") != base->second)
        throw std::runtime_error(path.string() + " names base " + overlay.value("base", "(none)") + ", kGoldenBase says " + base->second);
    try {
        return golden::compose(expected_outputs(base->second), overlay);
    } catch (const std::exception& e) {
        throw std::runtime_error(path.string() + ": " + e.what());
    }
}

// Compares a case's text and JSON output with its golden output, or (when
// updating) rewrites its golden files: complete for a base, else an overlay
// on what its base prints now.
void check_golden_outputs(const Case& c, const golden::Outputs& actual) {
    const auto base = kGoldenBase.find(c.name);
    if (base == kGoldenBase.end()) {
        check_golden(c.name + ".txt", actual.text);
        check_golden(c.name + ".json", actual.json);
        if (updating_golden()) fs::remove(overlay_path(c.name));
        return;
    }
    if (updating_golden()) {
        const auto [text, js] = run_case(case_named(base->second));
        try {
            const auto overlay = golden::make_overlay(base->second, {text.out, js.out}, actual);
            write_file(overlay_path(c.name), golden::overlay_file_text(overlay));
        } catch (const std::exception& e) {
            ADD_FAILURE() << c.name << " cannot be stored as an overlay on " << base->second << ": " << e.what();
            return;
        }
        for (const char* ext : {".txt", ".json"}) fs::remove(kGolden / (c.name + ext));
        return;
    }
    golden::Outputs expected;
    try {
        expected = expected_outputs(c.name);
    } catch (const std::exception& e) {
        ADD_FAILURE() << e.what() << "\n(KVMREADY_UPDATE_GOLDEN=1 rewrites the golden files)";
        return;
    }
    const std::string what = overlay_path(c.name).string() + " (on " + base->second + ")";
    compare_output(what + ", text output", expected.text, actual.text);
    compare_output(what + ", JSON output", expected.json, actual.json);
}

class FixtureCase : public ::testing::TestWithParam<Case> {};

TEST_P(FixtureCase, TextAndJsonMatchExpectationsAndGolden) {
    const Case& c = GetParam();
    const auto [text, js] = run_case(c);
    EXPECT_EQ(text.exit_code, c.exit_code) << text.err;
    EXPECT_EQ(js.exit_code, c.exit_code) << js.err;

    if (c.verdict.empty()) {
        // Fails before judging: nothing on stdout, one line naming the problem on stderr.
        EXPECT_EQ(text.out, "");
        EXPECT_EQ(js.out, "");
        EXPECT_EQ(text.err, js.err);
        for (const auto& [where, sub] : c.hints) EXPECT_NE(text.err.find(sub), std::string::npos) << sub << " in " << text.err;
        check_golden(c.name + ".stderr", text.err);
        return;
    }
    EXPECT_EQ(text.err, "");
    EXPECT_EQ(js.err, "");
    json j;
    ASSERT_NO_THROW(j = json::parse(js.out)) << js.out;
    check_schema(j);
    EXPECT_EQ(j["verdict"], c.verdict);
    EXPECT_EQ(j["host"]["source"], "root:" + c.fixture);
    EXPECT_EQ(j["host"]["recorded"], true);
    for (const auto& [id, status] : c.statuses) {
        const json* chk = find_check(j, id);
        ASSERT_NE(chk, nullptr) << id;
        EXPECT_EQ((*chk)["status"], status) << id << ": " << (*chk)["message"];
    }
    for (const auto& [id, sub] : c.hints) {
        const json* chk = find_check(j, id);
        ASSERT_NE(chk, nullptr) << id;
        EXPECT_NE(check_text(*chk).find(sub), std::string::npos) << id << " should mention \"" << sub << "\":\n" << check_text(*chk);
        // What JSON says, the text report says too.
        EXPECT_NE(text.out.find(sub), std::string::npos) << "text output should mention \"" << sub << "\"";
    }
    for (const auto& [id, key, value] : c.evidence) {
        const json* chk = find_check(j, id);
        ASSERT_NE(chk, nullptr) << id;
        ASSERT_TRUE((*chk)["evidence"].contains(key)) << id << " evidence lacks " << key;
        EXPECT_EQ((*chk)["evidence"][key], value) << id << "." << key;
    }
    if (!c.exact_ids.empty()) {
        std::vector<std::string> ids;
        for (const auto& chk : j["checks"]) ids.push_back(chk["id"]);
        EXPECT_EQ(ids, c.exact_ids);
    }
    // The text report's verdict line agrees with the JSON verdict.
    const std::map<std::string, std::string> label = {{"ready", "Verdict: ready — "},
                                                      {"ready_with_warnings", "Verdict: ready with warnings — "},
                                                      {"not_ready", "Verdict: NOT ready — "},
                                                      {"undetermined", "Verdict: undetermined — "},
                                                      {"passed", "Verdict: selected checks passed — "},
                                                      {"passed_with_warnings", "Verdict: selected checks passed with warnings — "},
                                                      {"failed", "Verdict: selected checks FAILED — "}};
    EXPECT_NE(text.out.find(label.at(c.verdict)), std::string::npos) << text.out;
    EXPECT_EQ(text.out.find("\x1b["), std::string::npos) << "--color=never printed escape sequences";
    check_golden_outputs(c, {text.out, js.out});
}

INSTANTIATE_TEST_SUITE_P(FixtureCases, FixtureCase, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// Every derived tree is exercised by some case (pvm-host and the guest
// recordings of tests/guest are covered elsewhere too).
TEST(FixtureTrees, EveryDerivedTreeHasACase) {
    std::set<std::string> used;
    for (const auto& c : cases()) used.insert(c.fixture);
    for (const char* tree : {"intel-vtx", "amd-nested", "no-kvm-module", "no-dev-kvm", "kvm-group-outside",
                             "kvm-group-stale-session", "vmx-locked", "vmx-locked-nonroot", "hyperv-guest", "container",
                             "pvm-host", "corrupt-host-json", "corrupt-cpuid"}) {
        EXPECT_TRUE(fs::is_directory(fs::path(kFixtures) / tree)) << tree;
        EXPECT_TRUE(used.count(tree)) << tree << " has no case";
    }
}

// Each golden file belongs to a case and is in the form the case's kind
// asks for: complete text and JSON for a base, one overlay for the others,
// stderr for runs that stop before judging; nothing stale beside them.
TEST(FixtureTrees, EveryGoldenFileBelongsToItsCase) {
    std::set<std::string> expected, present;
    for (const auto& c : cases()) {
        if (c.verdict.empty()) expected.insert(c.name + ".stderr");
        else if (kGoldenBase.count(c.name)) expected.insert(c.name + ".overlay.json");
        else expected.insert({c.name + ".txt", c.name + ".json"});
    }
    for (const auto& [name, base] : kGoldenBase) {
        EXPECT_NO_THROW(case_named(name)) << "kGoldenBase names no case " << name;
        EXPECT_NO_THROW(case_named(base)) << "kGoldenBase names no case " << base;
    }
    for (const auto& e : fs::directory_iterator(kGolden)) present.insert(e.path().filename().string());
    EXPECT_EQ(present, expected);
}

// `--strict` is the only difference between pvm_host and pvm_host_strict.
TEST(FixtureCli, StrictOnlyChangesTheExitCode) {
    const Proc plain = run_kvmready({"check", "--root", "pvm-host", "--json"});
    const Proc strict = run_kvmready({"check", "--root", "pvm-host", "--json", "--strict"});
    EXPECT_EQ(plain.exit_code, 0);
    EXPECT_EQ(strict.exit_code, 1);
    EXPECT_EQ(golden::normalise_run(plain.out), golden::normalise_run(strict.out));
    const Proc ready = run_kvmready({"check", "--root", "amd-nested", "--strict"});
    EXPECT_EQ(ready.exit_code, 0) << "--strict must not fail a ready host";
    // An optional check's warning (kvm.nested off) leaves the verdict ready,
    // so --strict does not fail it either (kvmready(1): optional checks never
    // change the verdict).
    const Proc optional_warn = run_kvmready({"check", "--root", "intel-vtx", "--strict", "--json"});
    EXPECT_EQ(optional_warn.exit_code, 0);
    EXPECT_EQ(json::parse(optional_warn.out)["verdict"], "ready");
}

// Record this live machine, replay the tree: the same checks conclude the same.
TEST(FixtureRecord, RecordThenReplayGivesIdenticalStatuses) {
    char tmpl[] = "/tmp/kvmready-fixture-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    const fs::path dir = tmpl;
    const std::string tree = (dir / "tree").string();
    const Proc live = run_kvmready({"check", "--json", "--record", tree}, dir.string());
    const Proc replay = run_kvmready({"check", "--json", "--root", tree}, dir.string());
    std::error_code ec;
    fs::remove_all(dir, ec);
    EXPECT_FALSE(ec) << ec.message();
    ASSERT_LT(live.exit_code, 64) << live.err;
    ASSERT_LT(replay.exit_code, 64) << replay.err;
    EXPECT_NE(live.err.find("recorded the facts read into"), std::string::npos) << live.err;
    json a, b;
    ASSERT_NO_THROW(a = json::parse(live.out));
    ASSERT_NO_THROW(b = json::parse(replay.out));
    check_schema(a);
    check_schema(b);
    EXPECT_EQ(a["host"]["recorded"], false);
    EXPECT_EQ(b["host"]["recorded"], true);
    std::vector<std::pair<std::string, std::string>> sa, sb;
    for (const auto& c : a["checks"]) sa.emplace_back(c["id"], c["status"]);
    for (const auto& c : b["checks"]) sb.emplace_back(c["id"], c["status"]);
    EXPECT_EQ(sa, sb);
    EXPECT_EQ(a["verdict"], b["verdict"]);
    EXPECT_EQ(live.exit_code, replay.exit_code);
}

}  // namespace
