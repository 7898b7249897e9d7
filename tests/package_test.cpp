// The Debian package, for real: built with CPack from this build's binary,
// checked by lintian, installed with apt-get on this machine, used from the
// installed files (kvmready, man, bash completion), then purged, leaving
// nothing behind. And kvmready run unprivileged against this live host,
// compared with a root run: what it cannot judge without root is never pass.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/guest_vm.hpp"
#include "support/spawn.hpp"
#include "support/temp_dir.hpp"

namespace {

using kvmready::testsupport::Captured;
using kvmready::testsupport::find_in_path;
using kvmready::testsupport::run_captured;
using kvmready::testsupport::nonempty_lines;
using kvmready::testsupport::TempDir;
namespace fs = std::filesystem;

// posix_spawn takes a path, not a name.
std::string tool(const std::string& name) { return find_in_path(name).value_or("/nonexistent/" + name); }

std::string dump(const Captured& r) { return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err; }

bool installed(const std::string& pkg) {
    auto r = run_captured({tool("dpkg-query"), "-W", "-f=${Status}", pkg}, 30000);
    return r.exit_code == 0 && r.out.find("install ok installed") != std::string::npos;
}

// Still known to dpkg in any state (config-files after a remove).
bool known_to_dpkg(const std::string& pkg) {
    auto r = run_captured({tool("dpkg-query"), "-W", "-f=${Status}", pkg}, 30000);
    return r.exit_code == 0 && r.out.find("not-installed") == std::string::npos;
}

const std::vector<std::string> kAptEnv = {"DEBIAN_FRONTEND=noninteractive", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
const std::vector<std::string> kApt = {"/usr/bin/apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=120"};

Captured apt(const std::vector<std::string>& args) {
    auto argv = kApt;
    argv.insert(argv.end(), args.begin(), args.end());
    return run_captured(argv, 300000, "", &kAptEnv);
}

// Purges the package however the test ends.
struct PurgeAtExit {
    ~PurgeAtExit() {
        if (known_to_dpkg("kvmready")) apt({"purge", "kvmready"});
    }
};

bool exists_nofollow(const fs::path& p) {
    std::error_code ec;
    return fs::exists(fs::symlink_status(p, ec));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(PackageInstall, BuildLintInstallUseAndPurge) {
    if (::geteuid() != 0) GTEST_SKIP() << "installs a package: needs root";
    for (const char* tool : {"apt-get", "dpkg-deb", "dpkg-shlibdeps"})
        if (!find_in_path(tool)) GTEST_SKIP() << tool << " is not installed (dpkg-dev; scripts/dev.sh test installs it)";
    if (known_to_dpkg("kvmready")) GTEST_SKIP() << "a kvmready package is already installed here; not touching someone else's";
    // The package test of another build tree on this machine would race for
    // /usr/bin/kvmready and the dpkg database.
    TempDir out("kvmready-package");

    // 1. The package, from the binary this build made (no rebuild).
    auto t0 = std::chrono::steady_clock::now();
    auto cpack = run_captured({KVMREADY_CPACK, "-G", "DEB", "--config", KVMREADY_BUILD_DIR "/CPackConfig.cmake", "-B", out.path.string()},
                              300000);
    ASSERT_EQ(cpack.exit_code, 0) << dump(cpack);
    std::vector<fs::path> debs;
    for (const auto& e : fs::directory_iterator(out.path))
        if (e.path().extension() == ".deb") debs.push_back(e.path());
    ASSERT_EQ(debs.size(), 1u) << dump(cpack);
    const fs::path deb = debs[0];
    EXPECT_EQ(deb.filename().string(), std::string("kvmready_") + KVMREADY_VERSION + "-1_amd64.deb");
    std::cout << "[ package ] " << deb.filename().string() << ": " << fs::file_size(deb) << " bytes, built in " << seconds_since(t0)
              << " s\n";

    // 2. Its control data: shlibdeps' Depends, dlopen()ed libraries as Recommends.
    auto info = run_captured({tool("dpkg-deb"), "-f", deb.string()}, 30000);
    ASSERT_EQ(info.exit_code, 0) << dump(info);
    EXPECT_TRUE(std::regex_search(info.out, std::regex(R"(\nDepends: [^\n]*libc6 \(>= )"))) << "shlibdeps:\n" << info.out;
    EXPECT_TRUE(std::regex_search(info.out, std::regex(R"(\nDepends: [^\n]*libacl1)"))) << info.out;
    EXPECT_TRUE(std::regex_search(info.out, std::regex(R"(\nDepends: [^\n]*adduser)"))) << info.out;
    EXPECT_NE(info.out.find("\nRecommends: libvirt0, libarchive13, libxml2\n"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("\nSuggests: qemu-system-x86, libvirt-daemon-system\n"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("dlopen()"), std::string::npos) << "the Recommends' reason:\n" << info.out;
    auto conffiles = run_captured({tool("dpkg-deb"), "-I", deb.string(), "conffiles"}, 30000);
    EXPECT_EQ(conffiles.out, "/etc/cron.d/kvmready\n/etc/nagios/nrpe.d/kvmready.cfg\n");
    auto contents = run_captured({tool("dpkg-deb"), "-c", deb.string()}, 30000);
    for (const char* f : {"./usr/bin/kvmready", "./usr/share/man/man1/kvmready.1.gz", "./usr/share/doc/kvmready/copyright",
                          "./usr/share/doc/kvmready/changelog.Debian.gz", "./usr/share/bash-completion/completions/kvmready",
                          "./usr/share/zsh/vendor-completions/_kvmready", "./usr/share/fish/vendor_completions.d/kvmready.fish",
                          "./usr/lib/systemd/system/kvmready.service", "./usr/lib/systemd/system/kvmready.timer", "./usr/lib/kvmready/kvmready-guest.elf",
                          "./etc/cron.d/kvmready", "./etc/nagios/nrpe.d/kvmready.cfg"})
        EXPECT_NE(contents.out.find(std::string(f) + "\n"), std::string::npos) << f << " not in the package:\n" << contents.out;
    TempDir x("kvmready-package-x");
    ASSERT_EQ(run_captured({tool("dpkg-deb"), "-x", deb.string(), x.path.string()}, 60000).exit_code, 0);
    auto sections = run_captured({tool("readelf"), "-S", (x.path / "usr/bin/kvmready").string()}, 30000);
    EXPECT_EQ(sections.out.find(".symtab"), std::string::npos) << "/usr/bin/kvmready is not stripped";
    EXPECT_EQ(sections.out.find(".debug_"), std::string::npos) << "/usr/bin/kvmready carries debug info";

    // The cron fallback ships disabled, and its job is guarded against
    // doubling up with the timer where systemd is PID 1.
    size_t jobs = 0;
    for (const auto& l : nonempty_lines(kvmready::testsupport::read_text(x.path / "etc/cron.d/kvmready"))) {
        if (l.starts_with("#") && std::regex_search(l, std::regex(R"(^#[0-9*])"))) {
            ++jobs;
            EXPECT_NE(l.find(" root [ -d /run/systemd/system ] || /usr/bin/kvmready check "), std::string::npos) << l;
        }
        if (!l.starts_with("#")) {
            EXPECT_TRUE(std::regex_match(l, std::regex(R"([A-Z]+=.*)"))) << "an active line: " << l;
        }
    }
    EXPECT_EQ(jobs, 1u);
    // The guard itself, run by sh in a mount namespace of its own with a
    // fresh /run, with and without /run/systemd/system (systemd as PID 1).
    // The job's kvmready is replaced by echo: only whether it is reached counts.
    if (auto unshare = find_in_path("unshare"); unshare && jobs == 1) {
        std::string job;
        for (const auto& l : nonempty_lines(kvmready::testsupport::read_text(x.path / "etc/cron.d/kvmready")))
            if (std::regex_search(l, std::regex(R"(^#[0-9*])"))) job = l.substr(l.find(" root ") + 6);
        job = std::regex_replace(job, std::regex("/usr/bin/kvmready check"), "echo REACHED");
        job = std::regex_replace(job, std::regex(" >/dev/null$"), "");
        for (const bool systemd : {true, false}) {
            const std::string setup = std::string("mount -t tmpfs none /run || exit 90; ") + (systemd ? "mkdir -p /run/systemd/system; " : "");
            auto r = run_captured({*unshare, "--mount", "--propagation", "private", tool("sh"), "-c", setup + job}, 30000);
            EXPECT_EQ(r.exit_code, 0) << dump(r);
            EXPECT_EQ(r.out.find("REACHED") != std::string::npos, !systemd) << (systemd ? "runs beside systemd" : "never runs") << ": " << job;
        }
    }

    // 3. lintian: no errors (the warnings kept are listed in README.md).
    if (auto lintian = find_in_path("lintian")) {
        auto t1 = std::chrono::steady_clock::now();
        auto l = run_captured({*lintian, "--no-tag-display-limit", deb.string()}, 300000);
        std::cout << "[ lintian ] " << seconds_since(t1) << " s\n" << l.out;
        for (const auto& line : nonempty_lines(l.out)) EXPECT_FALSE(line.starts_with("E: ")) << line;
    } else {
        ADD_FAILURE() << "lintian is not installed (scripts/dev.sh test installs it)";
    }

    // 4. Installed as a user would, purged whatever happens next.
    std::set<std::string> existed_before;
    for (const auto& l : nonempty_lines(contents.out)) {
        const auto dot = l.find(" ./");
        if (dot == std::string::npos) continue;
        std::string p = l.substr(dot + 2);
        if (p.size() > 1 && p.back() == '/') p.pop_back();
        if (exists_nofollow(p)) existed_before.insert(p);
    }
    PurgeAtExit purge;
    auto t2 = std::chrono::steady_clock::now();
    auto inst = apt({"install", "--no-install-recommends", deb.string()});
    ASSERT_EQ(inst.exit_code, 0) << dump(inst);
    ASSERT_TRUE(installed("kvmready"));
    std::cout << "[ install ] " << seconds_since(t2) << " s\n";

    auto version = run_captured({"/usr/bin/kvmready", "--version"}, 30000);
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_EQ(version.out, std::string("kvmready ") + KVMREADY_VERSION + "\n");
    auto check = run_captured({"/usr/bin/kvmready", "check", "--color", "never"}, 120000, "/tmp");
    EXPECT_TRUE(check.exit_code == 0 || check.exit_code == 1 || check.exit_code == 3) << dump(check);
    EXPECT_NE(check.out.find("kvm.api"), std::string::npos) << dump(check);

    const std::vector<std::string> man_env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "MANWIDTH=80"};
    auto man = run_captured({tool("man"), "-P", "cat", "kvmready"}, 60000, "/tmp", &man_env);
    EXPECT_EQ(man.exit_code, 0) << dump(man);
    EXPECT_NE(man.out.find("FILES"), std::string::npos) << dump(man);
    EXPECT_NE(man.out.find("kvmready.timer"), std::string::npos);

    // bash-completion's loader finds the installed script by the command's name.
    const char* loader = "/usr/share/bash-completion/bash_completion";
    std::string load = fs::exists(loader) ? std::string(". ") + loader + "; __load_completion kvmready || exit 90"
                                          : ". /usr/share/bash-completion/completions/kvmready";
    auto comp = run_captured({tool("bash"), "--norc", "--noprofile", "-c",
                              load + "; COMP_WORDS=(kvmready fix --only kvm.mod); COMP_CWORD=3; _kvmready; printf '%s\\n' \"${COMPREPLY[@]}\""},
                             30000, "/tmp");
    EXPECT_EQ(comp.exit_code, 0) << dump(comp);
    EXPECT_EQ(comp.out, "kvm.modules-load\n") << dump(comp);

    // The system user, in group kvm; the timer shipped disabled.
    auto user = run_captured({tool("getent"), "passwd", "kvmready"}, 30000);
    EXPECT_EQ(user.exit_code, 0) << "postinst made no kvmready user";
    if (run_captured({tool("getent"), "group", "kvm"}, 30000).exit_code == 0) {
        auto groups = run_captured({tool("id"), "-nG", "kvmready"}, 30000);
        EXPECT_NE((" " + groups.out).find(" kvm"), std::string::npos) << groups.out;
    }
    EXPECT_FALSE(exists_nofollow("/etc/systemd/system/timers.target.wants/kvmready.timer"));
    if (auto analyze = find_in_path("systemd-analyze")) {
        auto v = run_captured({*analyze, "verify", "/usr/lib/systemd/system/kvmready.timer", "/usr/lib/systemd/system/kvmready.service"}, 60000);
        // Without systemd as PID 1 it may still complain about the machine
        // (no /run/systemd); only what it says about our units counts.
        for (const auto& l : nonempty_lines(v.err + v.out))
            EXPECT_EQ(l.find("kvmready."), std::string::npos) << "systemd-analyze verify: " << l;
    }

    // 5. Purged: nothing it installed or made is left.
    auto listed = run_captured({tool("dpkg"), "-L", "kvmready"}, 30000);
    ASSERT_EQ(listed.exit_code, 0);
    auto t3 = std::chrono::steady_clock::now();
    auto purged = apt({"purge", "kvmready"});
    ASSERT_EQ(purged.exit_code, 0) << dump(purged);
    std::cout << "[ purge ] " << seconds_since(t3) << " s\n";
    EXPECT_FALSE(known_to_dpkg("kvmready"));
    for (const auto& p : nonempty_lines(listed.out)) {
        if (p == "/." || existed_before.count(p)) continue;
        EXPECT_FALSE(exists_nofollow(p)) << p << " left after purge";
    }
    EXPECT_NE(run_captured({tool("getent"), "passwd", "kvmready"}, 30000).exit_code, 0) << "user kvmready left after purge";
    EXPECT_NE(run_captured({tool("getent"), "group", "kvmready"}, 30000).exit_code, 0) << "group kvmready left after purge";
}

// kvmready as nobody against this live host, beside the same run as root.
TEST(UnprivilegedLive, NeverPassesWhatOnlyRootCouldJudge) {
    if (::geteuid() != 0) GTEST_SKIP() << "compares a root run with an unprivileged one: needs root";
    auto setpriv = find_in_path("setpriv");
    if (!setpriv) GTEST_SKIP() << "setpriv (util-linux) is not installed";
    auto as_root = run_captured({KVMREADY_BINARY, "check", "--json"}, 120000, "/tmp");
    auto as_nobody = run_captured({*setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", KVMREADY_BINARY, "check", "--json"},
                                  120000, "/tmp");
    ASSERT_TRUE(as_root.exit_code <= 3) << dump(as_root);
    ASSERT_TRUE(as_nobody.exit_code <= 3) << dump(as_nobody);
    const auto root = nlohmann::json::parse(as_root.out);
    const auto nobody = nlohmann::json::parse(as_nobody.out);
    std::map<std::string, nlohmann::json> by_id;
    for (const auto& c : root.at("checks")) by_id[c.at("id")] = c;
    // Words that name the permission a probe lacked.
    const std::regex permission(R"(permission|EACCES|EPERM|as root|not root|cannot open|cannot read|cannot connect|not readable)",
                                std::regex::icase);
    size_t differing = 0;
    for (const auto& c : nobody.at("checks")) {
        const std::string id = c.at("id"), st = c.at("status"), msg = c.at("message");
        ASSERT_TRUE(by_id.count(id)) << id;
        const std::string root_st = by_id[id].at("status");
        if (st == "pass") {
            EXPECT_EQ(root_st, "pass") << id << " passes unprivileged but is " << root_st << " as root: " << msg;
        }
        if (st == root_st) continue;
        ++differing;
        // A check skipped for a failed dependency says which; anything else
        // that only root sees differently must say it lacked a permission.
        if (st == "skip" && msg.starts_with("needs ")) continue;
        EXPECT_TRUE(std::regex_search(msg, permission))
            << id << ": " << root_st << " as root, " << st << " unprivileged, without naming the permission: " << msg;
    }
    std::cout << "[ unprivileged ] " << differing << " checks differ from the root run\n";
}
