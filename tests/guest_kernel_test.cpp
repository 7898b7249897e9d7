// Runs `kvmready check --json` inside a real Linux guest with a real KVM host
// stack: Debian's cloud kernel booted under QEMU TCG (software emulation, so
// it works wherever qemu-system-x86_64 is installed, without /dev/kvm).
//
//  - `-cpu EPYC`: TCG emulates AMD SVM, so the guest's kvm + kvm_amd modules
//    load and /dev/kvm works for real (KVM_RUN executes on the emulated SVM).
//  - `-cpu Skylake-Server`: TCG cannot emulate VMX and masks it, so kvm_intel
//    refuses to load and there is no /dev/kvm.
//
// The guest's initramfs is built per test by tests/guest/mkinitramfs.sh around
// the static init of tests/guest/init.c, which loads the modules, runs the
// command after "--" on the kernel command line and prints its output between
// KVMREADY-GUEST-BEGIN and KVMREADY-GUEST-END on the serial console.
//
// Needs: qemu-system-x86_64 and the guest kernel, fetched by
// scripts/fetch-guest-kernel.sh into ${KVMREADY_CACHE:-/var/cache/kvmready}/
// guest-kernel (or point KVMREADY_GUEST_KERNEL at a directory laid out like
// its `current`). Skips with a reason when either is missing.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/spawn.hpp"
#include <nlohmann/json.hpp>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The guest's init kills the command after this long (kernel argument); QEMU
// itself is killed after kQemuTimeout whatever happens. A normal run takes a
// few seconds (boot ~2 s under TCG).
constexpr int kGuestCommandTimeoutS = 30;
constexpr auto kQemuTimeout = std::chrono::seconds(60);
constexpr auto kMkinitramfsTimeout = std::chrono::seconds(60);

std::string env_or(const char* name, const std::string& dflt) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : dflt;
}

std::optional<std::string> find_in_path(const std::string& prog) {
    std::string path = env_or("PATH", "/usr/local/bin:/usr/bin:/bin");
    std::stringstream ss(path);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
        if (dir.empty()) continue;
        fs::path p = fs::path(dir) / prog;
        if (::access(p.c_str(), X_OK) == 0) return p.string();
    }
    return std::nullopt;
}

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) i++;
    return s.substr(i);
}

std::string tail_lines(const std::string& text, size_t n) {
    size_t pos = text.size();
    for (size_t k = 0; k <= n && pos > 0; k++) {
        size_t nl = text.rfind('\n', pos - 1);
        if (nl == std::string::npos) return text;
        if (k < n) pos = nl;
    }
    return text.substr(pos);
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

using ProcResult = kvmready::testsupport::Logged;

ProcResult run_process(const std::vector<std::string>& argv, const fs::path& log, std::chrono::seconds timeout,
                       const fs::path& tmpdir = {}) {
    return kvmready::testsupport::run_logged(argv, log, timeout, tmpdir);
}

struct ModuleLoad {
    std::string result;  // "ok" or "error"
    std::string errno_name;
};

struct GuestRun {
    std::string console;                      // whole serial console, \r removed
    std::string qemu_log;
    double qemu_seconds = 0;
    bool qemu_timed_out = false;
    int qemu_exit = -1;
    std::vector<std::pair<std::string, ModuleLoad>> modules;  // in load order
    bool have_block = false;                  // BEGIN..END markers found
    std::string stdout_text;
    std::optional<int> exit_code;
    bool command_timed_out = false;
    std::string stderr_text;

    [[nodiscard]] const ModuleLoad* module(const std::string& name) const {
        for (const auto& [n, m] : modules)
            if (n == name) return &m;
        return nullptr;
    }
};

void parse_console(GuestRun& g) {
    const std::string& c = g.console;
    static const std::regex mod_re(
        R"(KVMREADY-GUEST-MODULE name=(\S+) result=(\S+)(?: errno=(\S+))?)");
    std::istringstream lines(c);
    std::string line;
    while (std::getline(lines, line)) {
        std::smatch m;
        if (std::regex_search(line, m, mod_re))
            g.modules.push_back({m[1].str(), ModuleLoad{m[2].str(), m[3].matched ? m[3].str() : ""}});
    }
    const std::string begin = "KVMREADY-GUEST-BEGIN\n";
    size_t b = c.find(begin);
    if (b == std::string::npos) return;
    b += begin.size();
    size_t e = c.find("KVMREADY-GUEST-END ", b);
    if (e == std::string::npos) return;
    g.have_block = true;
    g.stdout_text = c.substr(b, e - b);
    std::string end_line = c.substr(e, c.find('\n', e) - e);
    static const std::regex exit_re(R"(exit=(-?\d+))");
    std::smatch m;
    if (std::regex_search(end_line, m, exit_re)) {
        int code = std::stoi(m[1].str());
        if (code >= 0) g.exit_code = code;
    }
    g.command_timed_out = end_line.find("timeout=1") != std::string::npos;
    const std::string sb = "KVMREADY-GUEST-STDERR-BEGIN\n";
    size_t s = c.find(sb, e);
    if (s != std::string::npos) {
        s += sb.size();
        size_t se = c.find("KVMREADY-GUEST-STDERR-END", s);
        g.stderr_text = c.substr(s, se == std::string::npos ? std::string::npos : se - s);
    }
}

const json* find_check(const json& report, const std::string& id) {
    if (!report.contains("checks") || !report["checks"].is_array()) return nullptr;
    for (const auto& c : report["checks"])
        if (c.is_object() && c.value("id", "") == id) return &c;
    return nullptr;
}

std::string status_of(const json* check) {
    if (!check) return "<missing>";
    return check->value("status", "<no status>");
}

// Every string in `j` (recursively, values only) that contains `needle`.
void strings_containing(const json& j, const std::string& needle, std::vector<std::string>& out) {
    if (j.is_string()) {
        if (j.get<std::string>().find(needle) != std::string::npos) out.push_back(j.get<std::string>());
    } else if (j.is_structured()) {
        for (const auto& v : j) strings_containing(v, needle, out);
    }
}

// Every object in `j` (recursively) that has a string value equal to `needle`.
void objects_naming(const json& j, const std::string& needle, std::vector<const json*>& out) {
    if (j.is_object()) {
        for (const auto& [k, v] : j.items())
            if (v.is_string() && v.get<std::string>() == needle) {
                out.push_back(&j);
                break;
            }
    }
    if (j.is_structured())
        for (const auto& v : j) objects_naming(v, needle, out);
}

bool mentions_builtin(const std::string& s) {
    std::string l = lower(s);
    return l.find("built-in") != std::string::npos || l.find("builtin") != std::string::npos ||
           l.find("built in") != std::string::npos;
}

class GuestKernelTest : public ::testing::Test {
protected:
    fs::path kernel_dir_, vmlinuz_, modules_dir_, qemu_, init_, mkinitramfs_;
    fs::path tmp_;
    GuestRun last_;
    bool ran_ = false;
    std::string report_text_;  // printed when a test fails

    void SetUp() override {
        auto q = env_or("KVMREADY_QEMU", "");
        if (q.empty()) {
            auto found = find_in_path("qemu-system-x86_64");
            if (!found) GTEST_SKIP() << "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
            q = *found;
        }
        qemu_ = q;

        kernel_dir_ = env_or("KVMREADY_GUEST_KERNEL",
                             env_or("KVMREADY_CACHE", "/var/cache/kvmready") + "/guest-kernel/current");
        vmlinuz_ = kernel_dir_ / "vmlinuz";
        std::string release = trim(read_text(kernel_dir_ / "release"));
        modules_dir_ = kernel_dir_ / "lib/modules" / release;
        if (!fs::exists(vmlinuz_) || release.empty() || !fs::exists(modules_dir_ / "modules.dep")) {
            GTEST_SKIP() << "guest kernel not found in " << kernel_dir_
                         << "; fetch it with " KVMREADY_SCRIPTS_DIR "/fetch-guest-kernel.sh"
                         << " (or: cmake --build BUILD --target guest-kernel)";
        }

#ifdef KVMREADY_GUEST_INIT
        init_ = KVMREADY_GUEST_INIT;
#endif
        ASSERT_FALSE(init_.empty()) << "built without a static libc: no guest init (tests/guest/init.c)";
        ASSERT_TRUE(fs::exists(init_)) << init_ << " missing: build target kvmready_guest_init";
        mkinitramfs_ = fs::path(KVMREADY_GUEST_DIR) / "mkinitramfs.sh";
        ASSERT_TRUE(fs::exists(mkinitramfs_)) << mkinitramfs_;
        ASSERT_TRUE(fs::exists(KVMREADY_BINARY)) << KVMREADY_BINARY << " missing: build target kvmready";

        std::string tmpl = (fs::path(env_or("TMPDIR", "/tmp")) / "kvmready-guest-XXXXXX").string();
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        ASSERT_NE(::mkdtemp(buf.data()), nullptr) << "mkdtemp " << tmpl << ": " << std::strerror(errno);
        tmp_ = buf.data();
    }

    void TearDown() override {
        if (ran_ && HasFailure()) {
            if (!report_text_.empty()) std::cerr << "---- kvmready report ----\n" << report_text_ << "\n";
            std::cerr << "---- guest console (tail) ----\n"
                      << tail_lines(last_.console, 80) << "\n---- qemu output (tail) ----\n"
                      << tail_lines(last_.qemu_log, 20) << "\n------------------------------\n";
        }
        if (!tmp_.empty()) {
            std::error_code ec;
            fs::remove_all(tmp_, ec);
        }
    }

    // Boots the guest with `cpu`, loading `modules` (and their dependencies),
    // and runs /kvmready with `args` in it.
    GuestRun boot(const std::string& cpu, const std::vector<std::string>& modules,
                  const std::vector<std::string>& args) {
        GuestRun g;
        fs::path initrd = tmp_ / "initramfs.cpio";
        fs::path mklog = tmp_ / "mkinitramfs.log";
        std::vector<std::string> mk = {"/bin/bash", mkinitramfs_.string(), "--init", init_.string(),
                                       initrd.string(), modules_dir_.string(), KVMREADY_BINARY};
        mk.insert(mk.end(), modules.begin(), modules.end());
        // Its staging directory goes under our temporary directory too, so
        // nothing is left behind even if it has to be killed.
        ProcResult r = run_process(mk, mklog, kMkinitramfsTimeout, tmp_);
        EXPECT_TRUE(r.spawn_error.empty() && r.exit_code == 0 && !r.timed_out)
            << "mkinitramfs.sh failed (exit " << r.exit_code << (r.timed_out ? ", timed out" : "")
            << r.spawn_error << "):\n" << read_text(mklog);
        if (r.exit_code != 0) return g;

        fs::path console = tmp_ / "console.log";
        fs::path qlog = tmp_ / "qemu.log";
        std::string append = fmt::format("console=ttyS0 panic=-1 quiet kvmready.timeout={} --",
                                         kGuestCommandTimeoutS);
        append += " /kvmready";
        for (const auto& a : args) append += " " + a;
        std::vector<std::string> q = {
            qemu_.string(), "-accel", "tcg", "-cpu", cpu, "-m", "512", "-nographic", "-nodefaults",
            "-no-reboot", "-monitor", "none", "-serial", "file:" + console.string(), "-kernel",
            vmlinuz_.string(), "-initrd", initrd.string(), "-append", append};
        ran_ = true;
        r = run_process(q, qlog, kQemuTimeout);
        g.qemu_seconds = r.seconds;
        g.qemu_timed_out = r.timed_out;
        g.qemu_exit = r.exit_code;
        g.console = read_text(console);
        g.console.erase(std::remove(g.console.begin(), g.console.end(), '\r'), g.console.end());
        g.qemu_log = read_text(qlog) + r.spawn_error;
        parse_console(g);
        last_ = g;
        std::cout << fmt::format("[ guest    ] -cpu {}: QEMU ran {:.1f} s{}; modules:", cpu, g.qemu_seconds,
                                 g.qemu_timed_out ? " (KILLED at the timeout)" : "");
        for (const auto& [n, m] : g.modules)
            std::cout << " " << n << "=" << (m.result == "ok" ? "ok" : m.errno_name);
        std::cout << "; kvmready exit "
                  << (g.exit_code ? std::to_string(*g.exit_code) : std::string("?")) << std::endl;

        EXPECT_FALSE(g.qemu_timed_out) << "QEMU killed after " << kQemuTimeout.count() << " s";
        EXPECT_TRUE(g.have_block) << "no KVMREADY-GUEST-BEGIN/END block on the console";
        EXPECT_FALSE(g.command_timed_out) << "kvmready timed out inside the guest";
        return g;
    }

    json parse_report(const GuestRun& g) {
        try {
            json j = json::parse(g.stdout_text);
            report_text_ = j.dump(2);
            return j;
        } catch (const std::exception& e) {
            ADD_FAILURE() << "kvmready output is not JSON (" << e.what() << "):\n" << g.stdout_text
                          << "\nstderr:\n" << g.stderr_text;
            return json();
        }
    }
};

TEST_F(GuestKernelTest, AmdSvmGuestIsARealKvmHost) {
    GuestRun g = boot("EPYC", {"msr", "kvm", "kvm_amd"}, {"check", "--json"});
    ASSERT_TRUE(g.have_block);

    // The guest kernel itself says the AMD KVM stack came up.
    for (const char* m : {"irqbypass", "kvm", "kvm_amd"}) {
        const ModuleLoad* ml = g.module(m);
        ASSERT_NE(ml, nullptr) << "no load line for " << m;
        EXPECT_EQ(ml->result, "ok") << m << " failed to load: " << ml->errno_name;
    }

    json report = parse_report(g);
    ASSERT_TRUE(report.is_object());
    EXPECT_EQ(report.value("schema_version", 0), 1);

    const json* cpu = find_check(report, "cpu.virt-extensions");
    EXPECT_EQ(status_of(cpu), "pass");
    if (cpu) {
        const json ev = cpu->value("evidence", json::object());
        if (ev.is_object() && ev.contains("svm") && ev["svm"].is_boolean()) {
            EXPECT_TRUE(ev["svm"].get<bool>()) << "cpu.virt-extensions evidence: " << ev.dump();
        } else {
            std::vector<std::string> hits;
            strings_containing(ev, "svm", hits);
            strings_containing(ev, "SVM", hits);
            EXPECT_FALSE(hits.empty()) << "cpu.virt-extensions evidence does not mention SVM: " << ev.dump();
        }
    }

    // kvm_amd is named, as a module loaded from a .ko, never as built in.
    const json* mod = find_check(report, "kvm.module");
    EXPECT_EQ(status_of(mod), "pass");
    if (mod) {
        const json ev = mod->value("evidence", json::object());
        std::vector<std::string> named;
        strings_containing(ev, "kvm_amd", named);
        EXPECT_FALSE(named.empty()) << "kvm.module evidence does not name kvm_amd: " << ev.dump();
        for (const auto& n : named) EXPECT_FALSE(mentions_builtin(n)) << "kvm_amd reported built in: " << n;
        std::vector<const json*> objs;
        objects_naming(ev, "kvm_amd", objs);
        for (const json* o : objs)
            for (const char* key : {"builtin", "built_in"})
                if (o->contains(key)) {
                    EXPECT_EQ((*o)[key], false) << o->dump();
                }
        EXPECT_FALSE(mentions_builtin(mod->value("message", ""))) << mod->value("message", "");
        // Where the report lists the modules installed for the kernel
        // (loadable from /lib/modules), kvm_amd must be among them.
        if (ev.is_object() && ev.contains("installed_for_kernel") && ev["installed_for_kernel"].is_array()) {
            const auto& inst = ev["installed_for_kernel"];
            EXPECT_NE(std::find(inst.begin(), inst.end(), json("kvm_amd")), inst.end()) << inst.dump();
        }
    }

    EXPECT_EQ(status_of(find_check(report, "kvm.device")), "pass");
    EXPECT_EQ(status_of(find_check(report, "kvm.api")), "pass");

    std::string verdict = report.value("verdict", "");
    EXPECT_TRUE(verdict == "ready" || verdict == "ready_with_warnings") << "verdict " << verdict;
    ASSERT_TRUE(g.exit_code.has_value());
    EXPECT_NE(*g.exit_code, 1) << "exit code says not ready";
    EXPECT_NE(*g.exit_code, 3) << "exit code says undetermined";
    if (verdict == "ready") {
        EXPECT_EQ(*g.exit_code, 0);
    }
}

TEST_F(GuestKernelTest, IntelWithoutVmxGuestIsNotReady) {
    GuestRun g = boot("Skylake-Server", {"msr", "kvm", "kvm_intel"}, {"check", "--json"});
    ASSERT_TRUE(g.have_block);

    const ModuleLoad* kvm = g.module("kvm");
    ASSERT_NE(kvm, nullptr);
    EXPECT_EQ(kvm->result, "ok") << "kvm itself should load: " << kvm->errno_name;
    const ModuleLoad* intel = g.module("kvm_intel");
    ASSERT_NE(intel, nullptr) << "no load line for kvm_intel";
    EXPECT_EQ(intel->result, "error") << "kvm_intel loaded on a CPU without VMX?";
    // 6.1 says "kvm: no hardware support for 'kvm_intel'" and returns EOPNOTSUPP.
    EXPECT_FALSE(intel->errno_name.empty());

    json report = parse_report(g);
    ASSERT_TRUE(report.is_object());

    EXPECT_EQ(status_of(find_check(report, "cpu.virt-extensions")), "fail");
    EXPECT_EQ(status_of(find_check(report, "kvm.device")), "fail");
    EXPECT_NE(status_of(find_check(report, "kvm.api")), "pass");
    EXPECT_EQ(report.value("verdict", ""), "not_ready");
    ASSERT_TRUE(g.exit_code.has_value());
    EXPECT_EQ(*g.exit_code, 1);
}

}  // namespace
