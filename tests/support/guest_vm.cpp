// See guest_vm.hpp.
#include "support/guest_vm.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "support/spawn.hpp"

namespace kvmready::testsupport {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The guest's init kills each command after this long (kernel argument);
// QEMU itself is killed after kQemuTimeout (plus kQemuPerCommand for every
// further command) whatever happens. A normal run takes a few seconds (boot
// ~2 s under TCG).
constexpr int kGuestCommandTimeoutS = 30;
constexpr auto kQemuTimeout = std::chrono::seconds(60);
constexpr auto kQemuPerCommand = std::chrono::seconds(20);
constexpr auto kMkinitramfsTimeout = std::chrono::seconds(60);

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) i++;
    return s.substr(i);
}

}  // namespace

std::string env_or(const char* name, const std::string& dflt) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : dflt;
}

fs::path guest_kernel_dir() {
    return env_or("KVMREADY_GUEST_KERNEL", env_or("KVMREADY_CACHE", "/var/cache/kvmready") + "/guest-kernel/current");
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

std::string tail_lines(const std::string& text, size_t n) {
    size_t pos = text.size();
    for (size_t k = 0; k <= n && pos > 0; k++) {
        size_t nl = text.rfind('\n', pos - 1);
        if (nl == std::string::npos) return text;
        if (k < n) pos = nl;
    }
    return text.substr(pos);
}

const ModuleLoad* GuestRun::module(const std::string& name) const {
    for (const auto& [n, m] : modules)
        if (n == name) return &m;
    return nullptr;
}

void parse_console(GuestRun& g) {
    const std::string& c = g.console;
    static const std::regex mod_re(R"(KVMREADY-GUEST-MODULE name=(\S+) result=(\S+)(?: errno=(\S+))?)");
    static const std::regex unlink_re(R"(KVMREADY-GUEST-UNLINK path=(\S+) result=(\S+)(?: errno=(\S+))?)");
    std::istringstream lines(c);
    std::string line;
    while (std::getline(lines, line)) {
        std::smatch m;
        if (std::regex_search(line, m, mod_re))
            g.modules.push_back({m[1].str(), ModuleLoad{m[2].str(), m[3].matched ? m[3].str() : ""}});
        else if (std::regex_search(line, m, unlink_re))
            g.unlinks.push_back({m[1].str(), ModuleLoad{m[2].str(), m[3].matched ? m[3].str() : ""}});
    }
    const std::string begin = "KVMREADY-GUEST-BEGIN\n";
    for (size_t b = c.find(begin); b != std::string::npos; b = c.find(begin, b)) {
        b += begin.size();
        size_t e = c.find("KVMREADY-GUEST-END ", b);
        if (e == std::string::npos) break;
        GuestCommand cmd;
        cmd.stdout_text = c.substr(b, e - b);
        std::string end_line = c.substr(e, c.find('\n', e) - e);
        static const std::regex exit_re(R"(exit=(-?\d+))");
        std::smatch m;
        if (std::regex_search(end_line, m, exit_re)) {
            int code = std::stoi(m[1].str());
            if (code >= 0) cmd.exit_code = code;
        }
        cmd.timed_out = end_line.find("timeout=1") != std::string::npos;
        b = e + end_line.size();
        // Its stderr, when it had any, comes right after the END line.
        const std::string sb = "\nKVMREADY-GUEST-STDERR-BEGIN\n";
        if (c.compare(b, sb.size(), sb) == 0) {
            size_t s = b + sb.size();
            size_t se = c.find("KVMREADY-GUEST-STDERR-END", s);
            cmd.stderr_text = c.substr(s, se == std::string::npos ? std::string::npos : se - s);
            if (se != std::string::npos) b = se;
        }
        g.commands.push_back(std::move(cmd));
    }
    if (g.commands.empty()) return;
    g.have_block = true;
    g.stdout_text = g.commands[0].stdout_text;
    g.exit_code = g.commands[0].exit_code;
    g.command_timed_out = g.commands[0].timed_out;
    g.stderr_text = g.commands[0].stderr_text;
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

void GuestVmTest::SetUp() {
    auto q = env_or("KVMREADY_QEMU", "");
    if (q.empty()) {
        auto found = find_in_path("qemu-system-x86_64");
        if (!found) GTEST_SKIP() << "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
        q = *found;
    }
    qemu_ = q;

    kernel_dir_ = guest_kernel_dir();
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

void GuestVmTest::TearDown() {
    if (ran_ && HasFailure()) {
        if (!report_text_.empty()) std::cerr << "---- kvmready output ----\n" << report_text_ << "\n";
        std::cerr << "---- guest console (tail) ----\n"
                  << tail_lines(last_.console, 80) << "\n---- qemu output (tail) ----\n"
                  << tail_lines(last_.qemu_log, 20) << "\n------------------------------\n";
    }
    if (!tmp_.empty()) {
        std::error_code ec;
        fs::remove_all(tmp_, ec);
    }
}

GuestRun GuestVmTest::boot(const GuestSpec& spec) {
    GuestRun g;
    fs::path initrd = tmp_ / "initramfs.cpio";
    fs::path mklog = tmp_ / "mkinitramfs.log";
    std::vector<std::string> mk = {"/bin/bash", mkinitramfs_.string(), "--init", init_.string()};
    for (const auto& a : spec.adds) mk.insert(mk.end(), {"--add", a});
    for (const auto& m : spec.pack_only) mk.insert(mk.end(), {"--pack-only", m});
    if (spec.depmod) mk.push_back("--depmod");
    mk.insert(mk.end(), {initrd.string(), modules_dir_.string(), KVMREADY_BINARY});
    mk.insert(mk.end(), spec.modules.begin(), spec.modules.end());
    // Its staging directory goes under our temporary directory too, so
    // nothing is left behind even if it has to be killed.
    Logged r = run_logged(mk, mklog, kMkinitramfsTimeout, tmp_);
    EXPECT_TRUE(r.spawn_error.empty() && r.exit_code == 0 && !r.timed_out)
        << "mkinitramfs.sh failed (exit " << r.exit_code << (r.timed_out ? ", timed out" : "") << r.spawn_error << "):\n"
        << read_text(mklog);
    if (r.exit_code != 0) return g;

    fs::path console = tmp_ / "console.log";
    fs::path qlog = tmp_ / "qemu.log";
    std::string append = fmt::format("console=ttyS0 panic=-1 quiet kvmready.timeout={}", kGuestCommandTimeoutS);
    if (!spec.unlink.empty()) {
        append += " kvmready.unlink=";
        for (size_t i = 0; i < spec.unlink.size(); i++) append += (i ? "," : "") + spec.unlink[i];
    }
    if (spec.dmesg) append += " kvmready.dmesg=1";
    if (!spec.late_wait.empty()) append += " kvmready.late_wait=" + spec.late_wait;
    if (!spec.kernel_args.empty()) append += " " + spec.kernel_args;
    append += " --";
    for (size_t i = 0; i < spec.commands.size(); i++) {
        if (i) append += " ;;";
        append += " /kvmready";
        for (const auto& a : spec.commands[i]) append += " " + a;
    }
    std::vector<std::string> q = {qemu_.string(), "-accel", "tcg", "-cpu", spec.cpu, "-m", "512", "-nographic", "-nodefaults",
                                  "-no-reboot", "-monitor", "none", "-serial", "file:" + console.string(), "-kernel",
                                  vmlinuz_.string(), "-initrd", initrd.string(), "-append", append};
    if (!spec.machine.empty()) q.insert(q.end(), {"-machine", spec.machine});
    q.insert(q.end(), spec.qemu_args.begin(), spec.qemu_args.end());
    ran_ = true;
    const auto limit = kQemuTimeout + kQemuPerCommand * (spec.commands.size() > 1 ? spec.commands.size() - 1 : 0);
    r = run_logged(q, qlog, limit);
    g.qemu_seconds = r.seconds;
    g.qemu_timed_out = r.timed_out;
    g.qemu_exit = r.exit_code;
    g.console = read_text(console);
    g.console.erase(std::remove(g.console.begin(), g.console.end(), '\r'), g.console.end());
    g.qemu_log = read_text(qlog) + r.spawn_error;
    parse_console(g);
    last_ = g;
    std::cout << fmt::format("[ guest    ] -cpu {}: QEMU ran {:.1f} s{}; modules:", spec.cpu, g.qemu_seconds,
                             g.qemu_timed_out ? " (KILLED at the timeout)" : "");
    for (const auto& [n, m] : g.modules) std::cout << " " << n << "=" << (m.result == "ok" ? "ok" : m.errno_name);
    std::cout << "; kvmready exit";
    for (const auto& c : g.commands) std::cout << " " << (c.exit_code ? std::to_string(*c.exit_code) : std::string("?"));
    std::cout << std::endl;

    EXPECT_FALSE(g.qemu_timed_out) << "QEMU killed after " << limit.count() << " s";
    EXPECT_TRUE(g.have_block) << "no KVMREADY-GUEST-BEGIN/END block on the console";
    EXPECT_EQ(g.commands.size(), spec.commands.size()) << "not every command reported";
    EXPECT_EQ(g.unlinks.size(), spec.unlink.size()) << "init did not report every kvmready.unlink path";
    for (size_t i = 0; i < g.commands.size(); i++)
        EXPECT_FALSE(g.commands[i].timed_out) << "kvmready command " << i + 1 << " timed out inside the guest";
    return g;
}

json GuestVmTest::parse_json(const GuestCommand& c) {
    try {
        json j = json::parse(c.stdout_text);
        report_text_ += j.dump(2) + "\n";
        return j;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "kvmready output is not JSON (" << e.what() << "):\n" << c.stdout_text << "\nstderr:\n" << c.stderr_text;
        return json();
    }
}

}  // namespace kvmready::testsupport
