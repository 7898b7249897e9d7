// Support bundles: redaction, the report -> check --from round trip on this
// machine, and every way a bundle can be bad.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/host.hpp"
#include "report/redact.hpp"
#include "support/tar_writer.hpp"

namespace fs = std::filesystem;
using kvmready::report::Redactor;

extern char** environ;

namespace {

struct Proc {
    int code = -1;
    std::string out, err;
};

Proc run(const std::vector<std::string>& argv, const std::string& cwd = "") {
    const fs::path dir = fs::temp_directory_path() / ("kvmready-run-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const std::string out = (dir / "out").string(), err = (dir / "err").string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    Proc r;
    if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) == 0) {
        int st = 0;
        waitpid(pid, &st, 0);
        r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    posix_spawn_file_actions_destroy(&fa);
    auto slurp = [](const std::string& p) {
        std::ifstream in(p);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    r.out = slurp(out);
    r.err = slurp(err);
    fs::remove_all(dir);
    return r;
}

class TempDir {
public:
    TempDir() {
        char t[] = "/tmp/kvmready-report-test-XXXXXX";
        path_ = ::mkdtemp(t);
    }
    ~TempDir() { fs::remove_all(path_); }
    [[nodiscard]] fs::path path() const { return path_; }
private:
    fs::path path_;
};

using kvmready::testsupport::make_tar;

std::map<std::string, std::string> statuses(const std::string& json_text) {
    std::map<std::string, std::string> m;
    for (const auto& c : nlohmann::json::parse(json_text).at("checks")) m[c.at("id")] = c.at("status");
    return m;
}

std::string all_files_text(const fs::path& dir) {
    std::string all;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        std::ifstream in(e.path(), std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        all += e.path().string() + "\n" + ss.str() + "\n";
    }
    return all;
}

}  // namespace

TEST(Redactor, ReplacesAddressesWithStableValidTokens) {
    Redactor r;
    r.add_hostname("web42");
    r.add_user("alice");
    const std::string in =
        "host web42 ip 10.1.2.3/24 gw 10.1.2.1 again 10.1.2.3 mac 52:54:00:AB:cd:01 v6 fe80::5054:ff:feab:cd01 "
        "uuid 0f3c2b1a-1234-4abc-9def-0123456789ab user alice home /home/alice keep 127.0.0.1 255.255.255.0 "
        "version 6.1.0-56 and 1.2.3.4.5 aliceX virtualweb42";
    const std::string out = r.apply(in);
    for (const char* secret : {"web42 ", "10.1.2.3", "10.1.2.1", "52:54:00", "fe80::5054", "0f3c2b1a", " alice ", "/home/alice"})
        EXPECT_EQ(out.find(secret), std::string::npos) << secret << " survived: " << out;
    // Same value, same token; different values, different tokens.
    const std::string again = r.apply("10.1.2.3 10.1.2.1");
    EXPECT_NE(out.find(again.substr(0, again.find(' '))), std::string::npos);
    EXPECT_NE(again.substr(0, again.find(' ')), again.substr(again.find(' ') + 1));
    // Tokens stay valid and identify nothing real.
    EXPECT_NE(out.find("198.51."), std::string::npos);
    EXPECT_NE(out.find("02:00:00:00:"), std::string::npos);
    EXPECT_NE(out.find("2001:db8::"), std::string::npos);
    // What must not change.
    for (const char* keep : {"127.0.0.1", "255.255.255.0", "6.1.0-56", "1.2.3.4.5", "aliceX", "virtualweb42"})
        EXPECT_NE(out.find(keep), std::string::npos) << keep << " was changed: " << out;
    const auto s = r.summary();
    EXPECT_EQ(s["ipv4"]["count"], 2);
    EXPECT_EQ(s["hostname"]["count"], 1);
    EXPECT_EQ(s["user"]["count"], 1);
    EXPECT_EQ(s.dump().find("10.1.2.3"), std::string::npos) << "the manifest must not list originals";
}

// host.json's interface_addresses (read over rtnetlink since kvmready stopped
// running `ip -j addr`) hold the bridges' addresses as plain strings: the
// redactor replaces them and the bundle still replays.
TEST(Redactor, RecordedBridgeAddressesAreRedactedAndStillReplay) {
    kvmready::host::InterfaceAddresses a;
    a.kind = "bridge";
    a.addresses = {{"virbr0", "inet", "192.168.122.1", 24, "global"}, {"virbr0", "inet6", "fe80::5054:ff:fe57:8b6e", 64, "link"}};
    Redactor r;
    const std::string out = r.apply(nlohmann::json{{"interface_addresses", a}}.dump(2));
    for (const char* secret : {"192.168.122.1", "fe80::5054"}) EXPECT_EQ(out.find(secret), std::string::npos) << secret << " survived: " << out;
    const auto back = nlohmann::json::parse(out).at("interface_addresses").get<kvmready::host::InterfaceAddresses>();
    ASSERT_EQ(back.addresses.size(), 2u);
    EXPECT_EQ(back.addresses[0].ifname, "virbr0");
    EXPECT_EQ(back.addresses[0].prefixlen, 24);
    EXPECT_EQ(back.addresses[1].scope, "link");
    EXPECT_EQ(back.addresses[0].local.rfind("198.51.", 0), 0u) << back.addresses[0].local;
}

TEST(Bundle, ReportThenCheckFromGivesTheLiveStatusesAndLeaksNothing) {
    TempDir t;
    const fs::path bundle = t.path() / "b.tar.gz";
    const Proc live = run({KVMREADY_BINARY, "check", "--json"});
    ASSERT_NE(live.out, "") << live.err;
    const Proc rep = run({KVMREADY_BINARY, "report", "-o", bundle.string()});
    ASSERT_EQ(rep.code, 0) << rep.err;
    EXPECT_EQ(fs::status(bundle).permissions() & fs::perms::others_read, fs::perms::none) << "bundles are private until shared";
    const Proc replay = run({KVMREADY_BINARY, "check", "--from", bundle.string(), "--json"});
    ASSERT_TRUE(replay.code == live.code) << replay.err;
    EXPECT_EQ(statuses(replay.out), statuses(live.out));
    const auto j = nlohmann::json::parse(replay.out);
    EXPECT_TRUE(j["host"]["recorded"].get<bool>());
    EXPECT_EQ(j["host"]["source"], "bundle:" + bundle.string());
    const Proc text = run({KVMREADY_BINARY, "check", "--from", bundle.string(), "--color=never"});
    EXPECT_NE(text.out.find("RECORDED HOST"), std::string::npos);

    // Nothing of this machine's identity is in the bundle.
    const fs::path x = t.path() / "x";
    fs::create_directories(x);
    ASSERT_EQ(run({"/bin/tar", "xzf", bundle.string(), "-C", x.string()}).code, 0);
    const std::string all = all_files_text(x);
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    if (std::string(host).size() > 2) EXPECT_EQ(all.find(std::string(host) + "\n"), std::string::npos) << host;
    ifaddrs* ifs = nullptr;
    ASSERT_EQ(::getifaddrs(&ifs), 0);
    std::set<std::string> addrs;
    for (ifaddrs* i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK)) continue;
        if (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6) continue;
        char buf[NI_MAXHOST];
        if (getnameinfo(i->ifa_addr, i->ifa_addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6), buf, sizeof buf,
                        nullptr, 0, NI_NUMERICHOST) == 0) {
            std::string a = buf;
            a = a.substr(0, a.find('%'));
            addrs.insert(a);
        }
    }
    freeifaddrs(ifs);
    for (const auto& a : addrs) EXPECT_EQ(all.find(a), std::string::npos) << "address " << a << " leaked";
    for (const auto& e : fs::directory_iterator("/sys/class/net")) {
        std::ifstream in(e.path() / "address");
        std::string mac;
        in >> mac;
        if (mac.empty() || mac == "00:00:00:00:00:00") continue;
        EXPECT_EQ(all.find(mac), std::string::npos) << "MAC " << mac << " leaked";
    }
    const auto manifest = nlohmann::json::parse(std::ifstream(x / "kvmready-report" / "manifest.json"));
    EXPECT_TRUE(manifest["redacted"].get<bool>());
    EXPECT_EQ(manifest["format"], "kvmready-bundle/1");
}

TEST(Bundle, ExistingOutputIsKeptWithoutForceAndReplacedWithIt) {
    TempDir t;
    const fs::path out = t.path() / "b.tar.gz";
    std::ofstream(out) << "precious";
    const Proc r = run({KVMREADY_BINARY, "report", "-o", out.string()});
    EXPECT_EQ(r.code, 64);
    EXPECT_NE(r.err.find("--force"), std::string::npos);
    std::ifstream in(out);
    std::string content;
    in >> content;
    EXPECT_EQ(content, "precious");
    EXPECT_EQ(run({KVMREADY_BINARY, "report", "-o", out.string(), "--force"}).code, 0);
    EXPECT_GT(fs::file_size(out), 1000u);
    // No temporary files left beside it.
    int n = 0;
    for (const auto& e : fs::directory_iterator(t.path())) n += e.path().filename().string().find("partial") != std::string::npos;
    EXPECT_EQ(n, 0);
}

TEST(Bundle, BadBundlesAreRejectedWithDataError) {
    TempDir t;
    const std::string bin = KVMREADY_BINARY;
    // Missing.
    EXPECT_EQ(run({bin, "check", "--from", (t.path() / "nope.tar.gz").string()}).code, 66);
    // Truncated: a real bundle cut in half.
    const fs::path good = t.path() / "good.tar.gz";
    ASSERT_EQ(run({bin, "report", "-o", good.string()}).code, 0);
    const fs::path cut = t.path() / "cut.tar.gz";
    fs::copy_file(good, cut);
    fs::resize_file(cut, fs::file_size(good) / 2);
    Proc r = run({bin, "check", "--from", cut.string()});
    EXPECT_EQ(r.code, 65) << r.err;
    EXPECT_NE(r.err.find("cut.tar.gz"), std::string::npos);
    // Not an archive at all.
    const fs::path junk = t.path() / "junk.tar.gz";
    std::ofstream(junk) << "this is not a tarball";
    EXPECT_EQ(run({bin, "check", "--from", junk.string()}).code, 65);
    // A foreign (valid) archive.
    const fs::path foreign = t.path() / "foreign.tar.gz";
    make_tar(foreign, {{"etc/", "", AE_IFDIR}, {"etc/passwd", "root:x:0:0::/root:/bin/sh\n", AE_IFREG}});
    r = run({bin, "check", "--from", foreign.string()});
    EXPECT_EQ(r.code, 65);
    EXPECT_NE(r.err.find("kvmready bundle"), std::string::npos) << r.err;
    // Unsafe entries: nothing may be written outside the extraction directory.
    const fs::path victim = t.path() / "escaped";
    for (const auto& entries : std::vector<std::vector<std::tuple<std::string, std::string, int>>>{
             {{"kvmready-report/../../escaped", "x", AE_IFREG}},
             {{(t.path() / "escaped").string(), "x", AE_IFREG}},
             {{"kvmready-report/link", t.path().string(), AE_IFLNK}, {"kvmready-report/link/escaped", "x", AE_IFREG}}}) {
        const fs::path evil = t.path() / "evil.tar.gz";
        fs::remove(evil);
        make_tar(evil, entries);
        r = run({bin, "check", "--from", evil.string()});
        EXPECT_EQ(r.code, 65) << r.err;
        EXPECT_FALSE(fs::exists(victim));
    }
}
