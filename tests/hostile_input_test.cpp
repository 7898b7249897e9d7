// Input from strangers (CPUID dumps, recorded trees, bundles, fix journals)
// made hostile for real: FIFOs, /dev/zero, device nodes made with mknod in a
// temporary root, archive bombs, bytes that are not UTF-8, a closed stdout.
// Every case must end within seconds with the documented exit code (65
// malformed, 66 missing or unusable) and a message naming the input.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <spawn.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <csignal>
#include <cstring>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "fixes/undo_trust.hpp"
#include "host/bounded_read.hpp"
#include "support/spawn.hpp"
#include "support/tar_writer.hpp"
#include "support/temp_dir.hpp"
#include "util/utf8.hpp"

namespace fs = std::filesystem;
using kvmready::testsupport::Captured;
using kvmready::testsupport::run_captured;
using kvmready::testsupport::TempDir;
using kvmready::testsupport::make_tar;

extern char** environ;

namespace {

const std::string kBin = KVMREADY_BINARY;
constexpr int kDeadlineMs = 20000;  // a hang shows as timed_out, long before ctest's own timeout

Captured tool(const std::vector<std::string>& args, const std::vector<std::string>* env = nullptr) {
    std::vector<std::string> argv{kBin};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_captured(argv, kDeadlineMs, "", env);
}

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

// A copy of a recorded fixture tree to spoil.
fs::path copy_fixture(const TempDir& t, const std::string& name) {
    const fs::path dst = t.path / name;
    fs::copy(fs::path(KVMREADY_FIXTURES_DIR) / name, dst, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    return dst;
}

void replace_with_fifo(const fs::path& p) {
    fs::remove(p);
    ASSERT_EQ(::mkfifo(p.c_str(), 0644), 0) << p;
}

const std::string kManifest = R"({"format": "kvmready-bundle/1", "version": "0.1.0"})";

// A bundle of 100,010 one-line members (ten times the default member limit)
// and an empty TMPDIR for its extraction, both under t.
struct BigBundle {
    fs::path file, tmp;
};
BigBundle big_bundle(const TempDir& t, const std::string& content) {
    BigBundle b{t.path / "big.tar.gz", t.path / "tmp"};
    std::vector<std::tuple<std::string, std::string, int>> entries{{"kvmready-report/manifest.json", kManifest, AE_IFREG}};
    for (int i = 0; i < 100010; ++i) entries.emplace_back(fmt::format("kvmready-report/host/f{}", i), content, AE_IFREG);
    make_tar(b.file, entries);
    fs::create_directories(b.tmp);
    return b;
}

// Files and directories under `dir`, counted up to `cap`; entries vanishing
// while an unpacker works are fine.
size_t entries_below(const fs::path& dir, size_t cap) {
    size_t n = 0;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end && n < cap; it.increment(ec)) ++n;
    return n;
}

}  // namespace

// ---------------------------------------------------------------- cpuid --from

TEST(HostileInput, CpuidFromFifoIsRefusedAsUnusableWithoutBlocking) {
    TempDir t;
    const fs::path fifo = t.path / "dump.fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
    Captured r = tool({"cpuid", "--from", fifo.string()});
    ASSERT_FALSE(r.timed_out) << "blocked on the FIFO";
    EXPECT_EQ(r.exit_code, 66) << r.err;
    EXPECT_NE(r.err.find(fifo.string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
}

TEST(HostileInput, CpuidFromDevZeroIsRefusedNotReadForever) {
    Captured r = tool({"cpuid", "--from", "/dev/zero"});
    ASSERT_FALSE(r.timed_out) << "read /dev/zero without bound";
    EXPECT_EQ(r.exit_code, 66) << r.err;
    EXPECT_NE(r.err.find("character device"), std::string::npos) << r.err;
}

TEST(HostileInput, CpuidFromDirectorySaysItIsADirectory) {
    TempDir t;
    Captured r = tool({"cpuid", "--from", t.path.string()});
    EXPECT_EQ(r.exit_code, 66) << r.err;
    EXPECT_NE(r.err.find("directory"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("empty"), std::string::npos) << r.err;
}

TEST(HostileInput, CpuidDumpOverTheSizeCapIsMalformed) {
    TempDir t;
    const fs::path big = t.path / "huge.txt";
    { std::ofstream(big) << "x"; }
    fs::resize_file(big, kvmready::host::kMaxCpuidDumpBytes + 1);  // sparse: costs no disk
    Captured r = tool({"cpuid", "--from", big.string()});
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("larger than"), std::string::npos) << r.err;
}

TEST(HostileInput, FirecrackerJsonWithOutOfRangeNumberIsMalformedNotInternal) {
    TempDir t;
    const fs::path f = t.path / "fc.json";
    write(f, R"({"guest_cpu_config": {"cpuid_modifiers": [], "kvm_capabilities": [1e999]}})");
    Captured r = tool({"cpuid", "--from", f.string()});
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find(f.string()), std::string::npos) << r.err;
}

// ---------------------------------------------------------------- --root trees

TEST(HostileInput, RootTreeWithFifoWhereAFileBelongsIsMalformed) {
    for (const char* victim : {"proc/cpuinfo", "etc/passwd", "proc/sys/kernel/hostname"}) {
        TempDir t;
        const fs::path root = copy_fixture(t, "intel-vtx");
        replace_with_fifo(root / victim);
        Captured r = tool({"check", "--root", root.string()});
        ASSERT_FALSE(r.timed_out) << victim << ": check hung on the FIFO";
        EXPECT_EQ(r.exit_code, 65) << victim << ": " << r.err;
        EXPECT_NE(r.err.find(victim), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
    }
}

TEST(HostileInput, RootTreeSidecarAsFifoIsMalformed) {
    TempDir t;
    const fs::path root = copy_fixture(t, "intel-vtx");
    fs::create_directories(root / ".kvmready");
    replace_with_fifo(root / ".kvmready/host.json");
    Captured r = tool({"check", "--root", root.string()});
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("host.json"), std::string::npos) << r.err;
}

TEST(HostileInput, RootTreeWithDeviceNodeWhereAFileBelongsIsMalformed) {
    TempDir t;
    const fs::path root = copy_fixture(t, "intel-vtx");
    fs::remove(root / "proc/cpuinfo");
    // /dev/zero's numbers: read, it would never end.
    if (::mknod((root / "proc/cpuinfo").c_str(), S_IFCHR | 0644, makedev(1, 5)) != 0)
        GTEST_SKIP() << "mknod needs CAP_MKNOD: " << std::strerror(errno);
    Captured r = tool({"check", "--root", root.string()});
    ASSERT_FALSE(r.timed_out) << "read the device node without bound";
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("character device"), std::string::npos) << r.err;
}

TEST(HostileInput, NonUtf8HostnameIsCarriedEscapedIntoJsonAndText) {
    TempDir t;
    const fs::path root = copy_fixture(t, "intel-vtx");
    const std::string raw = std::string("h\xff\xfe") + "st\\x41";
    write(root / "proc/sys/kernel/hostname", raw + "\n");
    Captured r = tool({"check", "--root", root.string(), "--json"});
    EXPECT_NE(r.exit_code, 70) << r.err;
    EXPECT_EQ(r.err.find("invalid UTF-8"), std::string::npos) << r.err;
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << r.out.substr(0, 400);
    const std::string dumped = j.dump();
    EXPECT_NE(dumped.find(R"(h\\xff\\xfest\\x5cx41)"), std::string::npos) << "hostname not in the documented escape";
    EXPECT_EQ(kvmready::util::unescape_bytes("h\\xff\\xfest\\x5cx41"), raw);
    r = tool({"check", "--root", root.string(), "--verbose"});
    EXPECT_NE(r.exit_code, 70) << r.err;
}

// ---------------------------------------------------------------- closed stdout

TEST(HostileInput, ClosedStdoutEndsQuietly) {
    TempDir t;
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    ::close(p[0]);  // the reader is gone before anything is written: `| head -0`
    const fs::path err = t.path / "err";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const std::string root = (fs::path(KVMREADY_FIXTURES_DIR) / "intel-vtx").string();
    std::vector<std::string> args{kBin, "check", "--root", root, "--verbose"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_FALSE(WIFSIGNALED(st)) << "killed by signal " << WTERMSIG(st);
    EXPECT_NE(WEXITSTATUS(st), 70);
    EXPECT_NE(WEXITSTATUS(st), 73);
    std::ifstream in(err);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "") << "error spam on a closed stdout";
}

// ---------------------------------------------------------------- daemons

// A libvirt socket that accepts and hangs up at once (a daemon restarting):
// whichever client path kvmready takes (its wire client, libvirt.so's
// fallback writing to the dead socket), the run ends with a finding that
// names the daemon, never killed by SIGPIPE (141) nor with an internal error.
TEST(HostileInput, DaemonThatAcceptsAndHangsUpEndsTheRunWithAFinding) {
    TempDir t;
    const std::string sock = (t.path / "libvirt-sock").string();
    const int srv = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(srv, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    ASSERT_LT(sock.size(), sizeof sa.sun_path);
    std::memcpy(sa.sun_path, sock.c_str(), sock.size() + 1);
    ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
    ASSERT_EQ(::listen(srv, 64), 0);
    std::atomic<bool> stop{false};
    std::atomic<int> accepted{0};
    std::thread server([&] {
        while (!stop) {
            pollfd p{srv, POLLIN, 0};
            if (::poll(&p, 1, 20) > 0) {
                const int c = ::accept4(srv, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) {
                    ++accepted;
                    ::close(c);
                }
            }
        }
    });
    for (int i = 0; i < 5; ++i) {
        Captured r = tool({"check", "--connect", "qemu:///system?socket=" + sock, "--json", "libvirt.daemon"});
        EXPECT_FALSE(r.timed_out);
        EXPECT_NE(r.exit_code, 141) << "killed by SIGPIPE";
        EXPECT_NE(r.exit_code, 70) << r.err;
        const auto doc = nlohmann::json::parse(r.out, nullptr, false);
        ASSERT_TRUE(doc.is_object()) << r.out << r.err;
        const auto& c = doc["checks"][0];
        EXPECT_EQ(c["id"], "libvirt.daemon");
        EXPECT_EQ(c["status"], "fail") << c.dump(2);
        EXPECT_FALSE(c["message"].get<std::string>().empty());
    }
    stop = true;
    server.join();
    ::close(srv);
    EXPECT_GT(accepted.load(), 0) << "kvmready never connected: the case was not exercised";
}

// ---------------------------------------------------------------- bundles

TEST(HostileInput, BundleMemberBombIsRefusedQuicklyAndLeavesNothing) {
    TempDir t;
    const auto [bomb, tmp] = big_bundle(t, "");
    std::vector<std::string> env{"TMPDIR=" + tmp.string(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    const auto t0 = std::chrono::steady_clock::now();
    Captured r = tool({"check", "--from", bomb.string()}, &env);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("members"), std::string::npos) << r.err;
    EXPECT_LT(s, 5.0) << "took " << s << " s to refuse";
    EXPECT_TRUE(fs::is_empty(tmp)) << "the extraction directory was left behind";
    // The limit is raisable: then the count is no longer what stops it.
    r = tool({"check", "--from", bomb.string(), "--bundle-limit", "members=200000", "--bundle-limit", "seconds=1"}, &env);
    EXPECT_EQ(r.err.find("more than 10000 members"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::is_empty(tmp));
    r = tool({"check", "--from", bomb.string(), "--bundle-limit", "nonsense=1"}, &env);
    EXPECT_EQ(r.exit_code, 64) << r.err;
}

// SIGINT or SIGTERM while a big bundle unpacks: the run ends at once with
// 128+N and the extraction directory is gone, as on every other exit.
TEST(HostileInput, SignalDuringUnpackingLeavesNothingBehind) {
    TempDir t;
    const auto [big, tmp] = big_bundle(t, "x");
    for (const int sig : {SIGINT, SIGTERM}) {
        std::vector<std::string> argv{kBin, "check", "--from", big.string(), "--bundle-limit", "members=200000",
                                      "--bundle-limit", "seconds=60"};
        std::vector<std::string> env{"TMPDIR=" + tmp.string(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
        std::vector<char*> cargv, cenv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        for (auto& e : env) cenv.push_back(e.data());
        cenv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, (t.path / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        pid_t pid = -1;
        ASSERT_EQ(::posix_spawn(&pid, kBin.c_str(), &fa, nullptr, cargv.data(), cenv.data()), 0);
        posix_spawn_file_actions_destroy(&fa);
        // Wait until members are being written (not merely the extraction
        // directory made), then signal: the signal lands mid-unpack.
        const auto started = std::chrono::steady_clock::now();
        while (entries_below(tmp, 10) < 10 && std::chrono::steady_clock::now() - started < std::chrono::seconds(30))
            ::usleep(1000);
        ASSERT_GE(entries_below(tmp, 10), 10u) << "unpacking never started";
        const auto t0 = std::chrono::steady_clock::now();
        ASSERT_EQ(::kill(pid, sig), 0);
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::ifstream in(t.path / "err");
        const std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        ASSERT_TRUE(WIFEXITED(status) || WIFSIGNALED(status));
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        EXPECT_EQ(code, 128 + sig) << err;
        EXPECT_LT(s, 3.0) << "took " << s << " s to stop";
        EXPECT_TRUE(fs::is_empty(tmp)) << "signal " << sig << ": the extraction directory was left behind";
    }
}

TEST(HostileInput, BundleWithUnsafeOrMalformedMembersIsMalformed) {
    TempDir t;
    const std::string m = "kvmready-report/manifest.json";
    std::string deep = "kvmready-report/host";
    for (int i = 0; i < 40; ++i) deep += "/d";
    const std::string long_name = "kvmready-report/host/" + std::string(2000, 'a');
    struct Case {
        std::string what;
        std::vector<std::tuple<std::string, std::string, int>> entries;
        bool hardlink = false;
    };
    const std::vector<Case> cases{
        {"file then directory", {{m, kManifest, AE_IFREG}, {"kvmready-report/host", "x", AE_IFREG}, {"kvmready-report/host/a", "x", AE_IFREG}}},
        {"directory then file", {{m, kManifest, AE_IFREG}, {"kvmready-report/host/a/", "", AE_IFDIR}, {"kvmready-report/host/a", "x", AE_IFREG}}},
        {"duplicate member", {{m, kManifest, AE_IFREG}, {m, kManifest, AE_IFREG}}},
        {"deep", {{m, kManifest, AE_IFREG}, {deep + "/f", "x", AE_IFREG}}},
        {"long name", {{m, kManifest, AE_IFREG}, {long_name, "x", AE_IFREG}}},
        {"device node", {{m, kManifest, AE_IFREG}, {"kvmready-report/host/zero", "", AE_IFCHR}}},
        {"fifo", {{m, kManifest, AE_IFREG}, {"kvmready-report/host/fifo", "", AE_IFIFO}}},
        {"hard link out", {{m, kManifest, AE_IFREG}, {"kvmready-report/host/passwd", "LINK:/etc/passwd", AE_IFREG}}, true},
        {"manifest types", {{m, R"({"format": 5, "version": []})", AE_IFREG}, {"kvmready-report/host/", "", AE_IFDIR}}},
        {"manifest array", {{m, R"([1, 2])", AE_IFREG}, {"kvmready-report/host/", "", AE_IFDIR}}},
        {"manifest is a directory", {{m + "/", "", AE_IFDIR}, {"kvmready-report/host/", "", AE_IFDIR}}},
        {"host is a file", {{m, kManifest, AE_IFREG}, {"kvmready-report/host", "x", AE_IFREG}}},
    };
    for (const auto& c : cases) {
        const fs::path tar = t.path / "evil.tar.gz";
        fs::remove(tar);
        make_tar(tar, c.entries, c.hardlink);
        Captured r = tool({"check", "--from", tar.string()});
        ASSERT_FALSE(r.timed_out) << c.what;
        EXPECT_EQ(r.exit_code, 65) << c.what << ": " << r.err;
        EXPECT_NE(r.err.find("evil.tar.gz"), std::string::npos) << c.what << ": " << r.err;
    }
}

TEST(HostileInput, BundleAsFifoIsRefusedWithoutBlocking) {
    TempDir t;
    const fs::path fifo = t.path / "bundle.tar.gz";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
    Captured r = tool({"check", "--from", fifo.string()});
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.exit_code, 66) << r.err;
}

// ---------------------------------------------------------------- fix journal

namespace {

// A state directory under root with one run whose journal holds lines.
fs::path make_journal(const fs::path& root, const std::vector<std::string>& lines) {
    const fs::path run = root / "var/lib/kvmready/fix/runs/20240101T000000.000000Z-1";
    fs::create_directories(run);
    fs::permissions(root / "var/lib/kvmready/fix", fs::perms::owner_all, fs::perm_options::replace);
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    write(run / "journal.jsonl", text);
    fs::permissions(run / "journal.jsonl", fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
    return run;
}

}  // namespace

TEST(HostileInput, JournalWithWrongTypesIsMalformedNamingTheLine) {
    TempDir t;
    const std::string header = R"({"type": "run", "id": "x", "root": ")" + t.path.string() + R"(", "connect_uri": "qemu:///system"})";
    for (const std::string& bad : {std::string(R"({"type": "prepare", "step": "one", "op": "file.write"})"),
                                   std::string(R"({"type": "prepare", "step": 0})"), std::string(R"({"type": 7})"),
                                   std::string(R"([1, 2, 3])"), std::string(R"({"type": "end", "status": false})")}) {
        fs::remove_all(t.path / "var");
        make_journal(t.path, {header, bad});
        for (const char* mode : {"--history", "--undo"}) {
            Captured r = tool({"fix", "--root", t.path.string(), mode});
            EXPECT_EQ(r.exit_code, 65) << bad << " " << mode << ": " << r.err;
            EXPECT_NE(r.err.find("journal.jsonl:2"), std::string::npos) << r.err;
        }
    }
}

TEST(HostileInput, JournalInAStateDirOthersCanWriteIsNotTrusted) {
    TempDir t;
    const fs::path victim = t.path / "victim";
    write(victim, "keep me");
    const std::string header = R"({"type": "run", "id": "x", "root": ")" + t.path.string() + R"(", "connect_uri": "qemu:///system"})";
    const std::string step = R"({"type": "prepare", "step": 0, "op": "file.write", "fix": "f", "summary": "s", "undo": {"path": "/victim", "existed": false}})";
    make_journal(t.path, {header, step});
    ::chmod((t.path / "var/lib/kvmready/fix").c_str(), 0777);
    Captured r = tool({"fix", "--root", t.path.string(), "--undo"});
    EXPECT_EQ(r.exit_code, 66) << r.err;
    EXPECT_NE(r.err.find("refusing to trust"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::exists(victim));
}

TEST(HostileInput, JournalRecordedForAnotherRootIsNotUndoneHere) {
    TempDir t, other;
    const fs::path victim = other.path / "victim";
    write(victim, "keep me");
    // The journal under t claims the run's root was `other`.
    const std::string header = R"({"type": "run", "id": "x", "root": ")" + other.path.string() + R"(", "connect_uri": "qemu:///system"})";
    const std::string step = R"({"type": "prepare", "step": 0, "op": "file.write", "fix": "f", "summary": "s", "undo": {"path": "/victim", "existed": false}})";
    make_journal(t.path, {header, step});
    Captured r = tool({"fix", "--root", t.path.string(), "--undo"});
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("recorded for root"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::exists(victim)) << "undo wrote under the journal's root";
}

// ---------------------------------------------------------------- undo confined to the plan's own targets

namespace {

std::string state_of(const fs::path& p) {
    std::error_code ec;
    const auto st = fs::symlink_status(p, ec);
    if (ec || st.type() == fs::file_type::not_found) return "<absent>";
    if (st.type() == fs::file_type::directory) return "<directory>";
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// `fix --undo` on a journal of the header and `records` (lines 2, 3, ...)
// under t: refused with 65 naming the journal line `line`, the journal
// unchanged, every watched path as it was. run_files: files to put in the
// run's directory (saved copies).
void expect_undo_refused(const TempDir& t, const std::vector<nlohmann::json>& records, int line, const std::vector<fs::path>& watched,
                         const std::string& why, const std::map<std::string, std::string>& run_files = {}) {
    fs::remove_all(t.path / "var");
    std::vector<std::string> lines = {R"({"type": "run", "id": "x", "root": ")" + t.path.string() + R"(", "connect_uri": "qemu:///system"})"};
    for (const auto& r : records) lines.push_back(r.dump());
    const fs::path run = make_journal(t.path, lines);
    for (const auto& [name, text] : run_files) write(run / name, text);
    std::vector<std::string> before;
    for (const auto& w : watched) before.push_back(state_of(w));
    const std::string journal = state_of(run / "journal.jsonl");
    Captured r = tool({"fix", "--root", t.path.string(), "--undo"});
    ASSERT_FALSE(r.timed_out) << why;
    EXPECT_EQ(r.exit_code, 65) << why << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(fmt::format("journal.jsonl:{}", line)), std::string::npos) << why << ": " << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    for (size_t i = 0; i < watched.size(); ++i) EXPECT_EQ(state_of(watched[i]), before[i]) << why << ": " << watched[i] << " changed";
    EXPECT_EQ(state_of(run / "journal.jsonl"), journal) << why << ": the journal was appended to";
}

nlohmann::json prepare(const std::string& op, const nlohmann::json& args, const nlohmann::json& undo) {
    return {{"type", "prepare"}, {"step", 0}, {"fix", "f"}, {"op", op}, {"summary", "s"}, {"args", args}, {"undo", undo}};
}

const std::string kRun = "var/lib/kvmready/fix/runs/20240101T000000.000000Z-1";

}  // namespace

// Each of these journals would make the undo ops write (or run) something
// the step never planned: a path, a saved copy, a command.
TEST(HostileInput, UndoWritesOnlyThePathItsStepPlanned) {
    TempDir t;
    const fs::path planned = t.path / "etc/sysctl.d/60-kvmready-ip-forward.conf", victim = t.path / "etc/sysctl.d/99-other.conf";
    write(planned, "net.ipv4.ip_forward = 1\n");
    write(victim, "keep me\n");
    const nlohmann::json args = {{"path", "/etc/sysctl.d/60-kvmready-ip-forward.conf"}, {"content", "net.ipv4.ip_forward = 1\n"},
                                 {"before", nullptr}, {"mode", 420}, {"uid", 0}, {"gid", 0}};
    // file.write's undo removes a file it created when it still holds what
    // it wrote: pointed at the victim with the victim's content.
    const nlohmann::json steer = {{"path", "/etc/sysctl.d/99-other.conf"}, {"existed", false}, {"temp", ".99-other.conf.kvmready-x-0"},
                                  {"written", "keep me\n"}, {"created_dirs", nlohmann::json::array()}};
    expect_undo_refused(t, {prepare("file.write", args, steer)}, 2, {victim, planned}, "but the step planned");
    // The same in the "done" record, which undo prefers.
    nlohmann::json own = steer;
    own["path"] = args["path"];
    own["temp"] = ".60-kvmready-ip-forward.conf.kvmready-x-0";
    own["written"] = args["content"];
    expect_undo_refused(t, {prepare("file.write", args, own), {{"type", "done"}, {"step", 0}, {"undo", steer}}}, 3, {victim, planned},
                        "but the step planned");
    // A plan that names a file no fix writes.
    nlohmann::json args_out = args, steer_out = own;
    args_out["path"] = steer_out["path"] = "/etc/shadow";
    write(t.path / "etc/shadow", "root:x:\n");
    expect_undo_refused(t, {prepare("file.write", args_out, steer_out)}, 2, {t.path / "etc/shadow"}, "is not a file any kvmready fix writes");
    // A directory to remove that is not above the path.
    fs::create_directories(t.path / "etc/keep.d");
    nlohmann::json dirs = own;
    dirs["created_dirs"] = {"/etc/keep.d"};
    expect_undo_refused(t, {prepare("file.write", args, dirs)}, 2, {t.path / "etc/keep.d", planned}, "is not a directory above");
    // A temporary name with a slash would be removed elsewhere.
    nlohmann::json temp = own;
    temp["temp"] = "../99-other.conf";
    expect_undo_refused(t, {prepare("file.write", args, temp)}, 2, {victim, planned}, "is not one kvmready makes");
    // A plan recorded without its args (or by a kvmready before they were kept).
    nlohmann::json no_args = prepare("file.write", args, own);
    no_args.erase("args");
    expect_undo_refused(t, {no_args}, 2, {planned}, "is not recorded");
}

TEST(HostileInput, UndoRestoresOnlyCopiesInItsOwnRunDirectory) {
    TempDir t;
    const fs::path planned = t.path / "etc/modprobe.d/kvm-nested.conf";
    write(planned, "options kvm_intel nested=1\n");
    // The run directory holds a copy under the step's name: read from
    // there whatever the journal says, the planned file would become "evil".
    const nlohmann::json args = {{"path", "/etc/modprobe.d/kvm-nested.conf"}, {"content", "options kvm_intel nested=1\n"},
                                 {"before", "x"}, {"mode", 420}, {"uid", 0}, {"gid", 0}};
    nlohmann::json u = {{"path", "/etc/modprobe.d/kvm-nested.conf"}, {"existed", true}, {"mode", 420}, {"uid", 0}, {"gid", 0},
                        {"temp", ".kvm-nested.conf.kvmready-x-0"}, {"written", "options kvm_intel nested=1\n"},
                        {"created_dirs", nlohmann::json::array()}};
    for (const std::string& copy : std::vector<std::string>{(t.path / "elsewhere/step0.orig").string(), "/etc/step0.orig", (t.path / kRun / "step7.orig").string(),
                                   (t.path / kRun / "../step0.orig").string()}) {
        u["copy"] = copy;
        expect_undo_refused(t, {prepare("file.write", args, u)}, 2, {planned}, "this run's own copy", {{"step0.orig", "evil\n"}});
    }
}

TEST(HostileInput, UndoRunsOnlyTheStepsOwnInverseOfAnAllowedProgram) {
    TempDir t;
    const fs::path pwned = t.path / "pwned";
    // argv differing from the step's (an allowed program, other arguments).
    const nlohmann::json args = {{"argv", {"ip", "link", "set", "dev", "kvrbr0", "up"}}, {"undo_argv", {"ip", "link", "set", "dev", "kvrbr0", "down"}},
                                 {"snapshots", nlohmann::json::array()}};
    nlohmann::json u = args;
    u["undo_argv"] = {"ip", "link", "delete", "kvmready-nonexistent0"};
    expect_undo_refused(t, {prepare("command", args, u)}, 2, {}, "is not the step's undo_argv");
    // A program no fix runs as an inverse, even when the step agrees.
    nlohmann::json a2 = args;
    a2["undo_argv"] = {"touch", pwned.string()};
    expect_undo_refused(t, {prepare("command", a2, a2)}, 2, {pwned}, "touch is not a program kvmready's fixes run");
    a2["undo_argv"] = {"/etc/init.d/../../usr/bin/touch", pwned.string()};
    expect_undo_refused(t, {prepare("command", a2, a2)}, 2, {pwned}, "is not a program kvmready's fixes run");
    // NetworkManager steps: only nmcli, only the step's own commands.
    using nlohmann::json;
    const json nm = {{"bridge", "br0"}, {"undo", json::array({json::array({"nmcli", "connection", "delete", "br0"})})}};
    json nm_u = {{"bridge", "br0"}, {"undo", json::array({json::array({"touch", pwned.string()})})}};
    expect_undo_refused(t, {prepare("bridge.nm", nm, nm_u)}, 2, {pwned}, "undo commands are not the step's");
    expect_undo_refused(t, {prepare("bridge.nm", nm_u, nm_u)}, 2, {pwned}, "touch is not a program");
    nm_u["undo"] = {{"touch", pwned.string()}};  // an object, not a list of commands
    expect_undo_refused(t, {prepare("bridge.nm", nm_u, nm_u)}, 2, {pwned}, "not lists of strings");
    // Snapshots of files the step did not plan to save.
    write(t.path / "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    nlohmann::json snap = {{"argv", {"usermod", "-aG", "kvm", "u"}}, {"undo_argv", {"gpasswd", "-d", "u", "kvm"}}, {"snapshots", {"/etc/group"}}};
    nlohmann::json snap_u = snap;
    snap_u["snapshots"] = {{{"path", "/etc/passwd"}, {"existed", false}}};
    expect_undo_refused(t, {prepare("command", snap, snap_u)}, 2, {t.path / "etc/passwd"}, "but the step planned");
    EXPECT_TRUE(kvmready::fix::undo_program_allowed("gpasswd"));
    EXPECT_TRUE(kvmready::fix::undo_program_allowed("/etc/init.d/virtqemud"));
    EXPECT_FALSE(kvmready::fix::undo_program_allowed("/etc/init.d/virt-../x"));
    EXPECT_FALSE(kvmready::fix::undo_program_allowed("/usr/sbin/gpasswd"));
}

TEST(HostileInput, UndoOfRuntimeStepsStaysOnTheirPlannedProcAndDevPaths) {
    TempDir t;
    const fs::path planned = t.path / "proc/sys/net/ipv4/ip_forward", victim = t.path / "proc/sys/kernel/hostname";
    write(planned, "1\n");
    write(victim, "keep\n");
    const nlohmann::json args = {{"path", "/proc/sys/net/ipv4/ip_forward"}, {"value", "1"}};
    expect_undo_refused(t, {prepare("proc.write", args, {{"path", victim.string()}, {"old", "0"}})}, 2, {victim, planned},
                        "but the step planned");
    // The planned path itself, reached through a symlink planted on the way.
    fs::remove_all(t.path / "proc/sys/net");
    fs::create_directories(t.path / "elsewhere/ipv4");
    write(t.path / "elsewhere/ipv4/ip_forward", "1\n");
    fs::create_directory_symlink(t.path / "elsewhere", t.path / "proc/sys/net");
    expect_undo_refused(t, {prepare("proc.write", args, {{"path", planned.string()}, {"old", "0"}})}, 2, {t.path / "elsewhere/ipv4/ip_forward"},
                        "is a symbolic link");
    // node.perms: the step's device node only.
    write(t.path / "dev/kvm", "");
    write(t.path / "dev/mem", "");
    ::chmod((t.path / "dev/mem").c_str(), 0600);
    const nlohmann::json node = {{"path", "/dev/kvm"}, {"mode", 432}, {"group", "kvm"}};
    expect_undo_refused(t, {prepare("node.perms", node, {{"path", (t.path / "dev/mem").string()}, {"mode", 438}, {"uid", 0}, {"gid", 0}})}, 2,
                        {}, "but the step planned");
    EXPECT_EQ(fs::status(t.path / "dev/mem").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

// ---------------------------------------------------------------- the helpers themselves

TEST(HostileInput, EscapeSchemeRoundTripsArbitraryBytes) {
    std::mt19937 rng(42);
    for (int i = 0; i < 2000; ++i) {
        std::string s(rng() % 40, '\0');
        for (auto& c : s) c = static_cast<char>(rng() % 4 == 0 ? '\\' : rng() % 3 == 0 ? 'x' : rng());
        const std::string e = kvmready::util::escape_bytes(s);
        EXPECT_FALSE(kvmready::util::needs_byte_escape(e) && e.find("\\x") == std::string::npos);
        EXPECT_EQ(kvmready::util::unescape_bytes(e), s);
        nlohmann::json j = {{s, s}};
        EXPECT_NO_THROW({
            auto parsed = nlohmann::json::parse(kvmready::util::dump_json(j));
            EXPECT_TRUE(parsed.is_object());
        });
    }
    EXPECT_EQ(kvmready::util::escape_bytes("plain é ✓"), "plain é ✓");
    EXPECT_EQ(kvmready::util::escape_bytes("\xff"), "\\xff");
    EXPECT_EQ(kvmready::util::escape_bytes("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a UTF-16 surrogate is not UTF-8
}

TEST(HostileInput, BoundedReaderRefusesFifosAndDevicesAndCaps) {
    TempDir t;
    const fs::path fifo = t.path / "f";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
    auto r = kvmready::host::read_path_bounded(fifo.string(), 1024);
    EXPECT_FALSE(r.data);
    EXPECT_EQ(r.kind, "a FIFO");
    r = kvmready::host::read_path_bounded("/dev/zero", 1024);
    EXPECT_FALSE(r.data);
    EXPECT_EQ(r.kind, "a character device");
    // procfs reports size 0: the cap holds while reading.
    r = kvmready::host::read_path_bounded("/proc/self/maps", 16);
    EXPECT_FALSE(r.data);
    EXPECT_EQ(r.error, EFBIG);
    r = kvmready::host::read_path_bounded("/proc/self/maps", 1 << 20);
    ASSERT_TRUE(r.data);
    EXPECT_FALSE(r.data->empty());
}
