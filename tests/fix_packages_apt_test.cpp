// pkg.virt-stack for real with apt, where it cannot harm this machine: a
// throwaway Debian root (scripts/fetch-bootstrap-root.sh: mmdebstrap minbase
// with a local file: repository) entered with chroot, in fresh network and
// mount namespaces (`unshare -n`: the install cannot reach any network, so
// it proves the repository is local; /proc is mounted inside the namespace
// and goes with it). The kvmready binary under test is copied in (it links
// libc, libm and libacl only, all in minbase; libstdc++ is linked statically).
//
// One root, one test, in order: the real stack's plan from the root's facts;
// the small test stack (--packages) planned, applied (dpkg in the root shows
// it), planned again (nothing), undone (exactly what the run installed is
// purged, the package that was there before stays).
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/spawn.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using kvmready::testsupport::Captured;
using kvmready::testsupport::run_captured;
using kvmready::testsupport::TempDir;

namespace {

fs::path cache_dir() {
    const char* c = std::getenv("KVMREADY_CACHE");
    return fs::path(c && *c ? c : "/var/cache/kvmready") / "bootstrap-root";
}

std::string show(const Captured& c) { return fmt::format("exit {}\n--- stdout\n{}\n--- stderr\n{}", c.exit_code, c.out, c.err); }

std::string first_line(const fs::path& p) {
    std::ifstream in(p);
    std::string l;
    std::getline(in, l);
    return l;
}

class FixPackagesApt : public ::testing::Test {
protected:
    TempDir tmp{"kvmready-bootstrap", "/var/tmp"};
    fs::path root;
    std::string stack, preinstalled;

    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (chroot, namespaces)";
        const fs::path c = cache_dir();
        if (!fs::exists(c / ".complete") || !fs::exists(c / "root.tar"))
            GTEST_SKIP() << "no bootstrap root in " << c << ": run scripts/fetch-bootstrap-root.sh (scripts/dev.sh test does)";
        const Captured ns = run_captured({"/usr/bin/unshare", "--net", "--mount", "/bin/true"}, 10000);
        if (ns.exit_code != 0) GTEST_SKIP() << "cannot make network and mount namespaces here: " << ns.err;
        root = tmp.path / "root";
        fs::create_directories(root);
        const Captured x = run_captured({"/bin/tar", "-xf", (c / "root.tar").string(), "-C", root.string()}, 120000);
        ASSERT_EQ(x.exit_code, 0) << show(x);
        fs::copy_file(KVMREADY_BINARY, root / "kvmready");
        stack = first_line(c / "stack");
        preinstalled = first_line(c / "preinstalled");
    }

    // argv run inside the root, without network, with its own /proc.
    Captured in_root(std::vector<std::string> argv, int timeout_ms = 120000) {
        std::vector<std::string> full = {"/usr/bin/unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc=" + (root / "proc").string(),
                                         "/usr/sbin/chroot", root.string(), "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
                                         "LANG=C"};
        full.insert(full.end(), argv.begin(), argv.end());
        return run_captured(full, timeout_ms);
    }

    Captured kvmready(std::vector<std::string> args, int timeout_ms = 120000) {
        args.insert(args.begin(), "/kvmready");
        return in_root(args, timeout_ms);
    }

    // Installed packages in the root, by dpkg itself.
    std::set<std::string> installed() {
        const Captured r = in_root({"dpkg-query", "-W", "-f=${binary:Package}\\t${db:Status-Status}\\n"});
        EXPECT_EQ(r.exit_code, 0) << show(r);
        std::set<std::string> out;
        std::istringstream in(r.out);
        for (std::string l; std::getline(in, l);)
            if (auto tab = l.find('\t'); tab != std::string::npos && l.substr(tab + 1) == "installed") out.insert(l.substr(0, tab));
        return out;
    }

    // run_dir: the run's journal directory as the apply printed it (inside the root).
    nlohmann::json journal_done_record(const std::string& run_dir) {
        std::ifstream in(root / fs::path(run_dir).relative_path() / "journal.jsonl");
        for (std::string l; std::getline(in, l);) {
            const auto j = nlohmann::json::parse(l);
            if (j.value("type", "") == "done") return j;
        }
        return nullptr;
    }
};

std::vector<std::string> words(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

std::string csv(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& w : v) out += (out.empty() ? "" : ",") + w;
    return out;
}

// dpkg names Multi-Arch: same packages NAME:ARCH; is NAME (of any architecture) in the set?
bool has(const std::set<std::string>& installed, const std::string& name) {
    for (const auto& p : installed)
        if (p == name || p.rfind(name + ":", 0) == 0) return true;
    return false;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_F(FixPackagesApt, InstallsTheMissingStackAndUndoPurgesExactlyIt) {
    // No network in there: only loopback exists.
    const Captured dev = in_root({"cat", "/proc/net/dev"});
    ASSERT_EQ(dev.exit_code, 0) << show(dev);
    for (const auto& l : kvmready::testsupport::nonempty_lines(dev.out))
        if (l.find(':') != std::string::npos && l.find('|') == std::string::npos) EXPECT_EQ(words(l).at(0), "lo:") << dev.out;

    // The real stack, planned from the bare root's facts (dpkg's status file).
    const Captured real = kvmready({"fix", "--only", "pkg.virt-stack", "--json"});
    ASSERT_EQ(real.exit_code, 2) << show(real);
    const auto rp = nlohmann::json::parse(real.out);
    ASSERT_EQ(rp["plans"].size(), 1u) << real.out;
    const auto& rcmds = rp["plans"][0]["steps"][0]["commands"];
    ASSERT_EQ(rcmds.size(), 2u) << real.out;  // no package lists in the root yet: apt-get update first
    EXPECT_EQ(rcmds[0], "env DEBIAN_FRONTEND=noninteractive apt-get update");
    EXPECT_EQ(rcmds[1],
              "env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils "
              "libvirt-daemon-system dnsmasq-base ovmf");

    // The small stack: one of the names is installed already and not planned.
    std::vector<std::string> asked = words(stack);
    asked.push_back(preinstalled);
    const std::set<std::string> before = installed();
    ASSERT_TRUE(has(before, preinstalled)) << preinstalled << " should be in the root before the run";
    for (const auto& p : words(stack)) ASSERT_FALSE(has(before, p)) << p << " is in the root already";
    const Captured dry = kvmready({"fix", "--only", "pkg.virt-stack", "--packages", csv(asked), "--json"});
    ASSERT_EQ(dry.exit_code, 2) << show(dry);
    const auto dp = nlohmann::json::parse(dry.out);
    EXPECT_EQ(dp["plans"][0]["applicability"], "confirm");
    EXPECT_EQ(dp["plans"][0]["steps"][0]["commands"][1],
              "env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends " + stack);
    // A confirm fix: --apply without --yes installs nothing.
    const Captured no_yes = kvmready({"fix", "--only", "pkg.virt-stack", "--packages", csv(asked), "--apply", "--json"});
    EXPECT_EQ(installed(), before) << show(no_yes);

    auto t0 = std::chrono::steady_clock::now();
    const Captured apply = kvmready({"fix", "--only", "pkg.virt-stack", "--packages", csv(asked), "--apply", "--yes", "--json"}, 300000);
    const double install_s = seconds_since(t0);
    ASSERT_EQ(apply.exit_code, 0) << show(apply);
    const auto ap = nlohmann::json::parse(apply.out);
    ASSERT_TRUE(ap["ok"].get<bool>()) << apply.out;
    const std::set<std::string> after = installed();
    for (const auto& p : words(stack)) EXPECT_TRUE(has(after, p)) << p << " not installed\n" << show(apply);
    std::vector<std::string> added;
    for (const auto& p : after)
        if (!before.count(p)) added.push_back(p);
    EXPECT_GT(added.size(), words(stack).size()) << "the stack's dependencies came too";
    // The journal names exactly the packages the run installed.
    const auto done = journal_done_record(ap["journal"].get<std::string>());
    ASSERT_FALSE(done.is_null()) << "no done record in the journal";
    EXPECT_EQ(done["undo"]["installed"].get<std::vector<std::string>>(), added);

    // Idempotent: nothing left to plan or change.
    const Captured again = kvmready({"fix", "--only", "pkg.virt-stack", "--packages", csv(asked), "--apply", "--yes", "--json"});
    ASSERT_EQ(again.exit_code, 0) << show(again);
    const auto ag = nlohmann::json::parse(again.out);
    EXPECT_TRUE(ag["run_id"].is_null()) << again.out;
    EXPECT_TRUE(ag["steps"].empty()) << again.out;
    EXPECT_EQ(installed(), after);

    t0 = std::chrono::steady_clock::now();
    const Captured undo = kvmready({"fix", "--undo", "--json"}, 300000);
    const double undo_s = seconds_since(t0);
    ASSERT_EQ(undo.exit_code, 0) << show(undo);
    EXPECT_EQ(installed(), before) << show(undo);
    // Purged, not only removed: no configuration files left behind either.
    const Captured left = in_root({"dpkg-query", "-W", "-f=${binary:Package} ${db:Status-Status}\\n"});
    for (const auto& p : added) EXPECT_EQ(left.out.find(p + " config-files"), std::string::npos) << p;

    RecordProperty("install_seconds", fmt::format("{:.1f}", install_s));
    RecordProperty("undo_seconds", fmt::format("{:.1f}", undo_s));
    RecordProperty("packages_installed", static_cast<int>(added.size()));
    std::cout << fmt::format("[ bootstrap ] installed {} packages in {:.1f} s, purged them in {:.1f} s\n", added.size(), install_s, undo_s);
}
