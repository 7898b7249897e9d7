// kvmready fix: the engine (plan, journal, apply, undo, interruption, lock,
// symlinks) on copies of recorded host trees, and runtime changes in a
// private mount namespace (a copy of /etc, a private /dev/kvm node), so this
// machine's own configuration is never written.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <sys/wait.h>

#include <csignal>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include "support/temp_dir.hpp"
#include <nlohmann/json.hpp>

#include "fixes/fix.hpp"
#include "support/spawn.hpp"

namespace fs = std::filesystem;
using kvmready::testsupport::Captured;
using kvmready::testsupport::run_captured;

namespace {

using TempDir = kvmready::testsupport::TempDir;

fs::path copy_fixture(const std::string& name, const fs::path& into) {
    const fs::path dst = into / name;
    fs::create_directories(into);
    fs::copy(fs::path(KVMREADY_FIXTURES_DIR) / name, dst, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    return dst;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Every entry under root (but kvmready's own journal) with type, mode, owner
// and content: "byte-identical" is checked on all of it.
std::map<std::string, std::string> snapshot(const fs::path& root) {
    std::map<std::string, std::string> out;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
        const std::string rel = fs::relative(it->path(), root).string();
        if (rel.rfind("var/lib/kvmready", 0) == 0 || rel == "var/lib" || rel == "var") continue;
        struct stat st{};
        ::lstat(it->path().c_str(), &st);
        std::string v = fmt::format("{:o} {}:{}", st.st_mode, st.st_uid, st.st_gid);
        if (S_ISREG(st.st_mode)) v += " " + slurp(it->path());
        if (S_ISLNK(st.st_mode)) v += " -> " + fs::read_symlink(it->path()).string();
        out[rel] = v;
    }
    return out;
}

Captured tool(std::vector<std::string> args, const std::vector<std::string>& env_extra = {}) {
    args.insert(args.begin(), KVMREADY_BINARY);
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
        if (std::string(*e).rfind("KVMREADY_", 0) != 0) env.emplace_back(*e);
    env.insert(env.end(), env_extra.begin(), env_extra.end());
    return run_captured(args, 60000, "", &env);
}

std::string show(const Captured& c) { return fmt::format("exit {}{}\n--- stdout\n{}\n--- stderr\n{}", c.exit_code, c.spawn_error.empty() ? "" : " (" + c.spawn_error + ")", c.out, c.err); }

bool is_root() { return ::geteuid() == 0; }

}  // namespace

// ---- pure parts --------------------------------------------------------------

TEST(FixUnit, UnifiedDiffHasHunksWithContext) {
    const std::string a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
    const std::string b = "1\n2\n3\n4\n5\nsix\n7\n8\n9\n10\n11\n";
    EXPECT_EQ(kvmready::fix::unified_diff("/etc/x", a, b),
              "--- a/etc/x\n+++ b/etc/x\n@@ -3,8 +3,9 @@\n 3\n 4\n 5\n-6\n+six\n 7\n 8\n 9\n 10\n+11\n");
    EXPECT_EQ(kvmready::fix::unified_diff("/etc/new", std::nullopt, std::string("kvm_intel\n")),
              "--- /dev/null\n+++ b/etc/new\n@@ -0,0 +1,1 @@\n+kvm_intel\n");
    EXPECT_EQ(kvmready::fix::unified_diff("/etc/gone", std::string("x\n"), std::nullopt), "--- a/etc/gone\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-x\n");
    // Two changes far apart: two hunks.
    std::string c, d;
    for (int i = 0; i < 20; ++i) {
        c += std::to_string(i) + "\n";
        d += (i == 1 || i == 18 ? "x" : std::to_string(i)) + "\n";
    }
    const std::string diff = kvmready::fix::unified_diff("/f", c, d);
    EXPECT_NE(diff.find("@@ -1,5 +1,5 @@"), std::string::npos) << diff;
    EXPECT_NE(diff.find("@@ -16,5 +16,5 @@"), std::string::npos) << diff;
}

TEST(FixUnit, QuotesOnlyWhatAShellWouldSplit) {
    EXPECT_EQ(kvmready::fix::quote_argv({"usermod", "-aG", "kvm", "alice"}), "usermod -aG kvm alice");
    EXPECT_EQ(kvmready::fix::quote_argv({"echo", "a b", "it's", ""}), "echo 'a b' 'it'\\''s' ''");
}

// ---- offline (--root): plans, apply, idempotence, undo ---------------------

TEST(FixRoot, DryRunShowsTheFileAndItsDiffAndChangesNothing) {
    TempDir t;
    const fs::path root = copy_fixture("no-kvm-module", t.path);
    const auto before = snapshot(root);
    auto r = tool({"fix", "--root", root, "--json"});
    ASSERT_EQ(r.exit_code, 2) << show(r);
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["mode"], "dry-run");
    const nlohmann::json* plan = nullptr;
    for (const auto& p : j["plans"])
        if (p["fix_id"] == "kvm.modules-load") plan = &p;
    ASSERT_NE(plan, nullptr) << r.out;
    EXPECT_EQ((*plan)["applicability"], "automatic");
    ASSERT_EQ((*plan)["steps"].size(), 1u) << "offline: the file only, no modprobe\n" << r.out;
    EXPECT_EQ((*plan)["steps"][0]["path"], "/etc/modules-load.d/kvm.conf");
    EXPECT_NE((*plan)["steps"][0]["diff"].get<std::string>().find("\n+kvm_intel\n"), std::string::npos) << r.out;
    EXPECT_EQ(snapshot(root), before);
    EXPECT_FALSE(fs::exists(root / "var/lib/kvmready")) << "a dry run writes no journal";
    // Text: the diff and the hint to apply.
    auto txt = tool({"fix", "--root", root});
    EXPECT_EQ(txt.exit_code, 2) << show(txt);
    EXPECT_NE(txt.out.find("+++ b/etc/modules-load.d/kvm.conf"), std::string::npos) << txt.out;
    EXPECT_NE(txt.out.find("kvmready fix --apply"), std::string::npos) << txt.out;
}

TEST(FixRoot, ApplyTwiceThenUndoRestoresEveryByte) {
    if (!is_root()) GTEST_SKIP() << "--apply needs root";
    TempDir t;
    const fs::path root = copy_fixture("kvm-group-outside", t.path);
    const auto original = snapshot(root);
    auto r = tool({"fix", "--root", root, "--user", "alice", "--apply", "--yes"});
    ASSERT_EQ(r.exit_code, 0) << show(r);
    const std::string group = slurp(root / "etc/group");
    EXPECT_NE(group.find("\nkvm:x:106:alice\n"), std::string::npos) << group;
    EXPECT_NE(r.out.find("user.groups"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("kvm.access"), std::string::npos) << "before → after names the repaired check\n" << r.out;
    const auto applied = snapshot(root);
    EXPECT_NE(applied, original);

    auto again = tool({"fix", "--root", root, "--user", "alice", "--apply", "--yes"});
    EXPECT_EQ(again.exit_code, 0) << show(again);
    EXPECT_NE(again.out.find("Nothing to do"), std::string::npos) << again.out;
    EXPECT_EQ(snapshot(root), applied) << "the second apply changed something";

    auto hist = tool({"fix", "--root", root, "--history", "--json"});
    ASSERT_EQ(hist.exit_code, 0) << show(hist);
    auto h = nlohmann::json::parse(hist.out);
    ASSERT_EQ(h["runs"].size(), 1u) << hist.out;
    EXPECT_EQ(h["runs"][0]["status"], "complete");

    auto u = tool({"fix", "--root", root, "--undo"});
    ASSERT_EQ(u.exit_code, 0) << show(u);
    EXPECT_EQ(snapshot(root), original) << "undo is not byte-identical";
    hist = tool({"fix", "--root", root, "--history", "--json"});
    EXPECT_EQ(nlohmann::json::parse(hist.out)["runs"][0]["status"], "undone") << hist.out;
    auto u2 = tool({"fix", "--root", root, "--undo"});
    EXPECT_EQ(u2.exit_code, 66) << "nothing left to undo\n" << show(u2);
}

// kvm_amd with nested=0: the modprobe.d file always; a reload only when the
// module's refcount says no VM uses it (and never with --root).
TEST(FixRoot, NestedWritesModprobeOptionsAndReloadsOnlyAnUnusedModule) {
    if (!is_root()) GTEST_SKIP() << "--apply needs root";
    TempDir t;
    const fs::path root = copy_fixture("amd-nested", t.path);
    const fs::path mod = root / "sys/module/kvm_amd";
    { std::ofstream(mod / "parameters/nested") << "0\n"; }
    { std::ofstream(mod / "refcnt") << "2\n"; }
    auto in_use = nlohmann::json::parse(tool({"fix", "--root", root, "--json", "--only", "kvm.nested"}).out);
    ASSERT_EQ(in_use["plans"].size(), 1u) << in_use.dump(2);
    const auto& p = in_use["plans"][0];
    EXPECT_EQ(p["applicability"], "confirm");
    ASSERT_EQ(p["steps"].size(), 1u) << "no reload while 2 VMs hold kvm_amd\n" << p.dump(2);
    EXPECT_EQ(p["steps"][0]["path"], "/etc/modprobe.d/kvm-nested.conf");
    EXPECT_TRUE(p["needs_reboot"].get<bool>());
    EXPECT_NE(p["notes"].dump().find("in use by 2 VM(s)"), std::string::npos) << p.dump(2);

    { std::ofstream(mod / "refcnt") << "0\n"; }
    auto unused = nlohmann::json::parse(tool({"fix", "--root", root, "--json", "--only", "kvm.nested"}).out);
    const auto& q = unused["plans"][0];
    ASSERT_EQ(q["steps"].size(), 2u) << q.dump(2);
    EXPECT_EQ(q["steps"][1]["op"], "module.reload");
    EXPECT_EQ(q["steps"][1]["commands"][0], "rmmod kvm_amd");
    EXPECT_EQ(q["steps"][1]["commands"][1], "modprobe kvm_amd nested=1");
    EXPECT_TRUE(q["needs_module_reload"].get<bool>());

    auto r = tool({"fix", "--root", root, "--apply", "--yes", "--only", "kvm.nested"});
    ASSERT_EQ(r.exit_code, 0) << show(r);
    EXPECT_NE(slurp(root / "etc/modprobe.d/kvm-nested.conf").find("\noptions kvm_amd nested=1\n"), std::string::npos);
    EXPECT_NE(r.out.find("skipped [kvm.nested] reload kvm_amd"), std::string::npos) << r.out;
}

TEST(FixRoot, RefusesToWriteThroughASymlink) {
    if (!is_root()) GTEST_SKIP() << "--apply needs root";
    TempDir t;
    const fs::path root = copy_fixture("no-kvm-module", t.path);
    const fs::path outside = t.path / "outside";
    fs::create_directories(outside);
    fs::create_directory_symlink(outside, root / "etc/modules-load.d");
    auto r = tool({"fix", "--root", root, "--apply"});
    EXPECT_EQ(r.exit_code, 1) << show(r);
    EXPECT_NE(r.out.find("symbolic link"), std::string::npos) << show(r);
    EXPECT_TRUE(fs::is_empty(outside)) << "wrote through the symlink";
    EXPECT_NE(r.out.find("cannot plan kvm.modules-load"), std::string::npos) << r.out;
    // A symlink as the file itself (pointing outside the root) is refused too.
    fs::remove(root / "etc/modules-load.d");
    fs::create_directories(root / "etc/modules-load.d");
    { std::ofstream(outside / "target") << "precious\n"; }
    fs::create_symlink(outside / "target", root / "etc/modules-load.d/kvm.conf");
    r = tool({"fix", "--root", root, "--apply"});
    EXPECT_EQ(r.exit_code, 1) << show(r);
    EXPECT_NE(r.out.find("symbolic link"), std::string::npos) << show(r);
    EXPECT_EQ(slurp(outside / "target"), "precious\n");
}

TEST(FixSafety, NonRootApplyExits77BeforeTouchingAnything) {
    TempDir t;
    const fs::path root = copy_fixture("no-kvm-module", t.path);
    ::chmod(t.path.c_str(), 0755);
    const auto before = snapshot(root);
    std::vector<std::string> argv = {KVMREADY_BINARY, "fix", "--apply", "--root", root};
    if (is_root()) argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"});
    auto r = run_captured(argv, 30000);
    EXPECT_EQ(r.exit_code, 77) << show(r);
    EXPECT_NE(r.err.find("root"), std::string::npos) << r.err;
    EXPECT_EQ(snapshot(root), before);
    EXPECT_FALSE(fs::exists(root / "var/lib/kvmready"));
}

TEST(FixSafety, OneFixAtATime) {
    if (!is_root()) GTEST_SKIP() << "--apply needs root";
    TempDir t;
    const fs::path root = copy_fixture("no-kvm-module", t.path);
    const fs::path state = root / "var/lib/kvmready/fix";
    fs::create_directories(state);
    int fd = ::open((state / "lock").c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX), 0);
    auto r = tool({"fix", "--root", root, "--apply"});
    EXPECT_EQ(r.exit_code, 75) << show(r);
    EXPECT_NE(r.err.find("another `kvmready fix` is running"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(root / "etc/modules-load.d/kvm.conf"));
    ::close(fd);
    auto ok = tool({"fix", "--root", root, "--apply"});
    EXPECT_EQ(ok.exit_code, 0) << show(ok);
}

// SIGKILL after every step's journal record (before and after the change):
// the next --apply finishes with exactly the uninterrupted result, and
// --undo of the interrupted run restores the original tree.
TEST(FixSafety, KilledAtEveryStepThenApplyCompletesOrUndoReverts) {
    if (!is_root()) GTEST_SKIP() << "--apply needs root";
    TempDir t;
    const fs::path ref_root = copy_fixture("kvm-group-outside", t.path / "ref");
    const auto original = snapshot(ref_root);
    const std::vector<std::string> apply = {"fix", "--user", "alice", "--apply", "--yes"};
    auto with_root = [](std::vector<std::string> a, const fs::path& r) {
        a.insert(a.begin() + 1, {"--root", r.string()});
        return a;
    };
    // kvm-group-outside gets user.groups; add a module file step by hiding kvm_intel's
    // boot configuration: the run then has two steps of two kinds (command, file).
    auto ref = tool(with_root(apply, ref_root));
    ASSERT_EQ(ref.exit_code, 0) << show(ref);
    const auto done = snapshot(ref_root);
    auto hist = nlohmann::json::parse(tool({"fix", "--root", ref_root, "--history", "--json"}).out);
    const int steps = hist["runs"][0]["steps_done"];
    ASSERT_GE(steps, 1);
    int cases = 0;
    for (int i = 0; i < steps; ++i) {
        for (const std::string when : {"", "+"}) {
            for (const bool then_undo : {false, true}) {
                SCOPED_TRACE(fmt::format("kill at step {}{}, then {}", i, when, then_undo ? "undo" : "apply"));
                const fs::path root = copy_fixture("kvm-group-outside", t.path / fmt::format("k{}", cases++));
                auto k = tool(with_root(apply, root), {fmt::format("KVMREADY_FIX_KILL_AT_STEP={}{}", i, when)});
                ASSERT_EQ(k.exit_code, 128 + SIGKILL) << show(k);
                auto h = nlohmann::json::parse(tool({"fix", "--root", root, "--history", "--json"}).out);
                EXPECT_EQ(h["runs"][0]["status"], "interrupted") << h.dump();
                if (then_undo) {
                    auto u = tool({"fix", "--root", root, "--undo"});
                    ASSERT_EQ(u.exit_code, 0) << show(u);
                    EXPECT_EQ(snapshot(root), original);
                } else {
                    auto a = tool(with_root(apply, root));
                    ASSERT_EQ(a.exit_code, 0) << show(a);
                    EXPECT_NE(a.out.find("resumed interrupted run"), std::string::npos) << a.out;
                    EXPECT_EQ(snapshot(root), done);
                    // The resumed run is one run: undoing it restores the original.
                    auto u = tool({"fix", "--root", root, "--undo"});
                    ASSERT_EQ(u.exit_code, 0) << show(u);
                    EXPECT_EQ(snapshot(root), original);
                }
                // No temp file is left anywhere.
                for (const auto& e : fs::recursive_directory_iterator(root))
                    EXPECT_EQ(e.path().filename().string().find(".kvmready-"), std::string::npos) << e.path();
            }
        }
    }
}

// A step that fails stops the run; the output and the journal say what was
// done and what failed, and --undo puts back what was done.
TEST(FixSafety, AFailingStepStopsTheRunAndUndoRevertsTheRest) {
    if (!is_root()) GTEST_SKIP() << "--apply needs root";
    TempDir t;
    const fs::path root = copy_fixture("kvm-group-outside", t.path);
    // usermod's backup file cannot be written where a directory stands.
    fs::create_directories(root / "etc/group-");
    { std::ofstream(root / "etc/group-/x") << "x\n"; }
    const auto original = snapshot(root);
    auto r = tool({"fix", "--root", root, "--user", "alice", "--apply", "--yes"});
    EXPECT_EQ(r.exit_code, 1) << show(r);
    EXPECT_NE(r.out.find("done  [kvm.modules-load]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("FAIL  [user.groups] add alice to group kvm"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("1 step(s) done, 1 failed"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Still failing or warning: kvm.access"), std::string::npos) << r.out;
    auto h = nlohmann::json::parse(tool({"fix", "--root", root, "--history", "--json"}).out);
    EXPECT_EQ(h["runs"][0]["status"], "failed");
    auto u = tool({"fix", "--root", root, "--undo"});
    EXPECT_EQ(u.exit_code, 0) << show(u);
    EXPECT_EQ(snapshot(root), original);
}

TEST(FixRoot, CreatesGroupKvmWhenMissing) {
    if (!is_root()) GTEST_SKIP() << "--apply needs root";
    TempDir t;
    const fs::path root = copy_fixture("kvm-group-outside", t.path);
    // A host whose /dev/kvm is 0600 root:root and which has no kvm group.
    auto hj = nlohmann::json::parse(slurp(root / ".kvmready/host.json"));
    hj["nodes"]["/dev/kvm"]["mode"] = "0600";
    hj["nodes"]["/dev/kvm"]["gid"] = 0;
    { std::ofstream(root / ".kvmready/host.json") << hj.dump(2) << "\n"; }
    std::string group = slurp(root / "etc/group"), kept;
    std::istringstream in(group);
    for (std::string l; std::getline(in, l);)
        if (l.rfind("kvm:", 0) != 0) kept += l + "\n";
    { std::ofstream(root / "etc/group") << kept; }
    const auto original = snapshot(root);
    auto r = tool({"fix", "--root", root, "--user", "alice", "--apply", "--yes"});
    ASSERT_EQ(r.exit_code, 0) << show(r);
    const std::string after = slurp(root / "etc/group");
    EXPECT_NE(after.find("\nkvm:x:"), std::string::npos) << after;
    EXPECT_NE(after.find(":alice\n"), std::string::npos) << "alice joins the new group in the same run\n" << after;
    EXPECT_NE(slurp(root / "etc/udev/rules.d/65-kvm.rules").find("GROUP=\"kvm\", MODE=\"0660\""), std::string::npos);
    EXPECT_NE(r.out.find("skipped [kvm.device-permissions] give /dev/kvm to group kvm, mode 0660, now"), std::string::npos)
        << "runtime steps are skipped with --root, and said so\n" << r.out;
    auto u = tool({"fix", "--root", root, "--undo"});
    ASSERT_EQ(u.exit_code, 0) << show(u);
    EXPECT_EQ(snapshot(root), original);
}

TEST(FixSafety, UndoLeavesAFileAnAdminEditedSinceAlone) {
    if (!is_root()) GTEST_SKIP() << "--apply needs root";
    TempDir t;
    const fs::path root = copy_fixture("no-kvm-module", t.path);
    ASSERT_EQ(tool({"fix", "--root", root, "--apply"}).exit_code, 0);
    const fs::path conf = root / "etc/modules-load.d/kvm.conf";
    ASSERT_TRUE(fs::exists(conf));
    { std::ofstream(conf, std::ios::app) << "vhost_net\n"; }
    const std::string edited = slurp(conf);
    auto u = tool({"fix", "--root", root, "--undo"});
    EXPECT_EQ(u.exit_code, 1) << show(u);
    EXPECT_NE(u.out.find("was changed after kvmready wrote it"), std::string::npos) << u.out;
    EXPECT_EQ(slurp(conf), edited);
}

TEST(FixCli, UnknownFixIdIsAUsageError) {
    auto r = tool({"fix", "--only", "no.such-fix"});
    EXPECT_EQ(r.exit_code, 64) << show(r);
    EXPECT_NE(r.err.find("unknown fix 'no.such-fix'"), std::string::npos) << r.err;
    auto u = tool({"fix", "--uplink", "eth0"});
    EXPECT_EQ(u.exit_code, 64) << show(u);
}

// ---- live runtime changes, in a private mount namespace -----------------------

namespace {

// A process in a mount namespace of its own (sleep infinity): bind mounts made
// there and programs run with nsenter see a private /etc and /dev/kvm, while
// the machine's own stay untouched.
class PrivateMounts {
public:
    PrivateMounts() {
        pid_t pid = ::fork();
        if (pid == 0) {
            ::execlp("unshare", "unshare", "-m", "--propagation", "private", "sleep", "infinity", (char*)nullptr);
            ::_exit(127);
        }
        holder_ = pid;
        // unshare has replaced itself with sleep once /proc/PID/ns/mnt differs.
        for (int i = 0; i < 200; ++i) {
            if (fs::read_symlink(fmt::format("/proc/{}/ns/mnt", pid)) != fs::read_symlink("/proc/self/ns/mnt") &&
                slurp(fmt::format("/proc/{}/comm", pid)) == "sleep\n")
                return;
            ::usleep(10000);
        }
    }
    ~PrivateMounts() {
        ::kill(holder_, SIGKILL);
        ::waitpid(holder_, nullptr, 0);
    }
    Captured run(std::vector<std::string> argv, const std::vector<std::string>& env_extra = {}) const {
        argv.insert(argv.begin(), {"/usr/bin/nsenter", "-t", std::to_string(holder_), "-m", "--"});
        std::vector<std::string> env;
        for (char** e = environ; *e; ++e)
            if (std::string(*e).rfind("KVMREADY_", 0) != 0) env.emplace_back(*e);
        env.insert(env.end(), env_extra.begin(), env_extra.end());
        return run_captured(argv, 60000, "", &env);
    }
    void bind(const fs::path& src, const std::string& dst) const {
        auto r = run({"mount", "--bind", src.string(), dst});
        ASSERT_EQ(r.exit_code, 0) << show(r);
    }

private:
    pid_t holder_ = -1;
};

}  // namespace

TEST(FixLive, DevicePermissionsAndGroupsForAUserThenUndo) {
    if (!is_root()) GTEST_SKIP() << "needs root (mount namespaces, mknod)";
    TempDir t;
    const fs::path etc = t.path / "etc";
    ASSERT_EQ(run_captured({"/usr/bin/cp", "-a", "/etc", etc.string()}, 30000).exit_code, 0);
    { std::ofstream(etc / "passwd", std::ios::app) << "kvmfix:x:4242:4242::/nonexistent:/usr/sbin/nologin\n"; }
    { std::ofstream(etc / "group", std::ios::app) << "kvmfix:x:4242:\n"; }
    // A /dev of the test's own, mounted over the real one in the namespace:
    // the nodes a run needs, and /dev/kvm like a host without udev's rule
    // leaves it (0600 root:root). It works whether or not this machine has a
    // /dev/kvm to bind over (on a machine where no KVM device registered
    // there is none), and the machine's own node is never touched.
    const fs::path dev = t.path / "dev";
    fs::create_directories(dev);
    for (auto [name, minor] : {std::pair{"null", 3}, {"zero", 5}, {"full", 7}, {"random", 8}, {"urandom", 9}, {"kmsg", 11}})
        ASSERT_EQ(::mknod((dev / name).c_str(), S_IFCHR | 0666, makedev(1, minor)), 0) << name;
    ::chmod((dev / "kmsg").c_str(), 0644);
    const fs::path node = dev / "kvm";
    ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0600, makedev(10, 232)), 0);
    PrivateMounts ns;
    ns.bind(etc, "/etc");
    ns.bind(dev, "/dev");
    const std::vector<std::string> state = {"KVMREADY_STATE_DIR=" + (t.path / "state").string()};
    const std::string group_before = slurp(etc / "group");
    const auto etc_before = snapshot(etc);

    // Where no KVM device is registered (kvm_pvm declined: "232 kvm" absent
    // from /proc/misc), the node only gives ENXIO, so kvm.access cannot be
    // judged and names kvm.device instead. The fix still does its real work
    // on the node, the rule and the groups, and undo still restores them.
    const bool registered = ("\n" + slurp("/proc/misc")).find("\n232 kvm\n") != std::string::npos;
    auto check = ns.run({KVMREADY_BINARY, "check", "--user", "kvmfix", "kvm.access", "--json"});
    if (registered) {
        ASSERT_EQ(nlohmann::json::parse(check.out)["checks"][0]["status"], "fail") << check.out;
    } else {
        const auto c = nlohmann::json::parse(check.out)["checks"][0];
        ASSERT_EQ(c["status"], "skip") << check.out;
        EXPECT_NE(c["message"].get<std::string>().find("kvm.device"), std::string::npos) << check.out;
    }

    auto r = ns.run({KVMREADY_BINARY, "fix", "--apply", "--yes", "--user", "kvmfix", "--only", "kvm.device-permissions,user.groups"}, state);
    ASSERT_EQ(r.exit_code, 0) << show(r);
    struct stat st{};
    if (!registered) {
        // Nothing fails that these fixes repair (kvm.access cannot be judged
        // without a device), so nothing is changed: no mode, no group, no rule.
        ASSERT_EQ(::stat(node.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 07777, 0600u);
        EXPECT_EQ(snapshot(etc), etc_before);
        GTEST_SKIP() << "no KVM device is registered on this machine (no 232 kvm in /proc/misc): the fixes rightly had nothing to "
                        "repair; their effects and undo need a machine whose /dev/kvm is registered";
    }
    ASSERT_EQ(::stat(node.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0660u);
    EXPECT_NE(st.st_gid, 0u);
    EXPECT_NE(slurp(etc / "udev/rules.d/65-kvm.rules").find("KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\""), std::string::npos);
    EXPECT_NE(slurp(etc / "group").find(":kvmfix\n"), std::string::npos) << "kvmfix not added to kvm";
    if (registered) {
        EXPECT_NE(r.out.find("kvm.access"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("fail → pass"), std::string::npos) << r.out;
        check = ns.run({KVMREADY_BINARY, "check", "--user", "kvmfix", "kvm.access", "--json"});
        EXPECT_EQ(nlohmann::json::parse(check.out)["checks"][0]["status"], "pass") << check.out;
    }

    // --only everywhere: this namespace shares the machine's network, so no
    // other fix (a daemon, a network) may run here.
    auto again = ns.run({KVMREADY_BINARY, "fix", "--apply", "--yes", "--user", "kvmfix", "--only", "kvm.device-permissions,user.groups"}, state);
    EXPECT_NE(again.out.find("Nothing to do"), std::string::npos) << show(again);
    EXPECT_EQ(again.exit_code, 0) << show(again);
    EXPECT_EQ(again.out.find("done  [kvm.device-permissions]"), std::string::npos) << again.out;
    EXPECT_EQ(again.out.find("done  [user.groups]"), std::string::npos) << again.out;

    auto u = ns.run({KVMREADY_BINARY, "fix", "--undo"}, state);
    ASSERT_EQ(u.exit_code, 0) << show(u);
    ASSERT_EQ(::stat(node.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_gid, 0u);
    EXPECT_EQ(slurp(etc / "group"), group_before);
    EXPECT_EQ(snapshot(etc), etc_before);
}

TEST(FixLive, HugepagesNowAndAtBootThenUndo) {
    if (!is_root()) GTEST_SKIP() << "needs root";
    const std::string nr_path = "/proc/sys/vm/nr_hugepages";
    if (!fs::exists(nr_path)) GTEST_SKIP() << "no hugetlb support in this kernel";
    TempDir t;
    const fs::path sysctl = t.path / "sysctl.d";
    fs::create_directories(sysctl);
    PrivateMounts ns;
    ns.bind(sysctl, "/etc/sysctl.d");
    const std::vector<std::string> state = {"KVMREADY_STATE_DIR=" + (t.path / "state").string()};
    auto read_nr = [&] { return std::stoul(slurp(nr_path)); };
    const unsigned long before = read_nr();
    const std::string want = std::to_string(before + 2);
    auto r = ns.run({KVMREADY_BINARY, "fix", "--apply", "--yes", "--only", "memory.hugepages", "--hugepages", want}, state);
    ASSERT_EQ(r.exit_code, 0) << show(r);
    EXPECT_EQ(read_nr(), before + 2);
    EXPECT_NE(slurp(sysctl / "60-kvmready-hugepages.conf").find("vm.nr_hugepages = " + want + "\n"), std::string::npos);
    auto again = ns.run({KVMREADY_BINARY, "fix", "--apply", "--yes", "--only", "memory.hugepages", "--hugepages", want}, state);
    EXPECT_NE(again.out.find("Nothing to do"), std::string::npos) << show(again);
    auto u = ns.run({KVMREADY_BINARY, "fix", "--undo"}, state);
    ASSERT_EQ(u.exit_code, 0) << show(u);
    EXPECT_EQ(read_nr(), before);
    EXPECT_TRUE(fs::is_empty(sysctl));
}
