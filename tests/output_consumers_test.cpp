// The formats of `kvmready check` read by the programs they are for, not by
// our idea of them:
//   OutputConsumers  Prometheus's promtool lints the textfile, junitparser
//                    (a real JUnit consumer) and xmllint read the JUnit XML;
//   OutputDaemons    prometheus-node-exporter serves the textfile written by
//                    --output to a scrape over loopback HTTP, and a real NRPE
//                    daemon runs `kvmready check --format nagios` for
//                    check_nrpe, state and text arriving intact.
// Each daemon is started here on 127.0.0.1 at a free port and stopped by its
// PID. A missing tool skips with its Debian package named (scripts/dev.sh
// installs them).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/background.hpp"
#include "support/spawn.hpp"
#include "support/temp_dir.hpp"


namespace {

namespace fs = std::filesystem;
using kvmready::testsupport::Background;
using kvmready::testsupport::run_captured;
using kvmready::testsupport::TempDir;
using nlohmann::json;

const std::string kBinary = KVMREADY_BINARY;
const std::string kFixtures = KVMREADY_FIXTURES_DIR;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

#define REQUIRE_TOOL(path, package) \
    if (!fs::exists(path)) GTEST_SKIP() << path << " is missing (Debian package " << package << "; scripts/dev.sh installs it)"

kvmready::testsupport::Captured run_kvmready(const std::vector<std::string>& args) {
    std::vector<std::string> argv{kBinary};
    argv.insert(argv.end(), args.begin(), args.end());
    auto c = run_captured(argv, 60000, kFixtures);
    EXPECT_TRUE(c.started) << c.spawn_error;
    return c;
}

// ---- files read by their consumers -------------------------------------------------

TEST(OutputConsumers, PromtoolAcceptsTheTextfile) {
    REQUIRE_TOOL("/usr/bin/promtool", "prometheus");
    TempDir dir("kvmready-prom");
    for (const char* tree : {"intel-vtx", "pvm-host", "no-dev-kvm"}) {
        const fs::path file = dir.path / (std::string(tree) + ".prom");
        const auto run = run_kvmready({"check", "--root", tree, "--output", "prometheus:" + file.string()});
        ASSERT_TRUE(fs::exists(file)) << run.err;
        // promtool reads metrics on stdin only; its lint (HELP present, names,
        // units, counters' _total) prints problems and fails.
        const auto lint = run_captured({"/usr/bin/promtool", "check", "metrics"}, 60000, "", nullptr, file.string());
        EXPECT_EQ(lint.exit_code, 0) << tree << "\n" << lint.out << lint.err;
        EXPECT_EQ(lint.out + lint.err, "") << tree;
    }
}

// The Python script junitparser runs: every suite and case with its results, as JSON.
const char* kJunitReader = R"(
import json, sys
from junitparser import JUnitXml
out = []
for suite in JUnitXml.fromfile(sys.argv[1]):
    cases = []
    for case in suite:
        cases.append({"name": case.name, "classname": case.classname, "system_out": case.system_out,
                      "results": [{"kind": type(r).__name__, "message": r.message, "type": r.type, "text": r.text} for r in case.result]})
    out.append({"name": suite.name, "tests": suite.tests, "failures": suite.failures, "errors": suite.errors,
                "skipped": suite.skipped, "cases": cases})
print(json.dumps(out))
)";

// junitparser's reading of the XML matches the JSON report check by check:
// failed checks fail with their message and remediation, skipped ones skip,
// unjudged ones are errors; escaping survives (messages carry quotes, '<', '&').
TEST(OutputConsumers, JunitparserReadsEveryCheckAsTheJsonSaysIt) {
    REQUIRE_TOOL("/usr/bin/python3", "python3");
    if (run_captured({"/usr/bin/python3", "-c", "import junitparser"}, 30000).exit_code != 0)
        GTEST_SKIP() << "junitparser is missing (Debian package python3-junitparser)";
    TempDir dir("kvmready-junit");
    for (const char* tree : {"intel-vtx", "pvm-host", "no-dev-kvm", "vmx-locked"}) {
        const fs::path file = dir.path / (std::string(tree) + ".xml");
        const auto js = run_kvmready({"check", "--root", tree, "--json", "--output", "junit:" + file.string()});
        const json report = json::parse(js.out);
        if (fs::exists("/usr/bin/xmllint")) {
            const auto lint = run_captured({"/usr/bin/xmllint", "--noout", file.string()}, 30000);
            EXPECT_EQ(lint.exit_code, 0) << tree << ": " << lint.err;
            EXPECT_EQ(lint.err, "");
        }
        const auto read = run_captured({"/usr/bin/python3", "-c", kJunitReader, file.string()}, 60000);
        ASSERT_EQ(read.exit_code, 0) << read.err;
        const json suites = json::parse(read.out);
        std::map<std::string, json> cases;
        int failures = 0;
        for (const auto& s : suites) {
            failures += s["failures"].get<int>();
            for (const auto& c : s["cases"]) {
                EXPECT_EQ(s["name"], c["classname"]);
                cases[c["name"]] = c;
            }
        }
        ASSERT_EQ(cases.size(), report["checks"].size()) << tree;
        int want_failures = 0;
        for (const auto& chk : report["checks"]) {
            const json& c = cases.at(chk["id"].get<std::string>());
            EXPECT_EQ(c["classname"], "kvmready." + chk["category"].get<std::string>());
            const std::string status = chk["status"];
            const bool counts = status == "fail" && chk["level"] != "optional";
            want_failures += counts ? 1 : 0;
            const auto& results = c["results"];
            if (counts || status == "unknown" || status == "error" || status == "skip") {
                ASSERT_EQ(results.size(), 1u) << chk["id"];
                EXPECT_EQ(results[0]["kind"], counts ? "Failure" : status == "skip" ? "Skipped" : "Error") << chk["id"];
                EXPECT_EQ(results[0]["message"], chk["message"]) << chk["id"];
                if (counts && !chk["remediation"]["text"].get<std::string>().empty()) {
                    EXPECT_EQ(results[0]["text"].get<std::string>().rfind(chk["remediation"]["text"].get<std::string>(), 0), 0u) << chk["id"];
                }
            } else {
                EXPECT_TRUE(results.empty()) << chk["id"] << " " << status;
            }
        }
        EXPECT_EQ(failures, want_failures) << tree;
    }
}

// ---- daemons on loopback ------------------------------------------------------------

// A TCP port on 127.0.0.1 free right now (the kernel's pick).
int free_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    ::close(s);
    return port;
}

int connect_loopback(int port) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return s;
    ::close(s);
    return -1;
}

// Waits until the daemon accepts on 127.0.0.1:port (10 s at most).
bool wait_listening(Background& d, int port) {
    for (int i = 0; i < 100; ++i) {
        if (!d.running()) return false;
        if (const int s = connect_loopback(port); s >= 0) {
            ::close(s);
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

// GET path over HTTP/1.0 on loopback: the body.
std::string http_get(int port, const std::string& path) {
    const int s = connect_loopback(port);
    if (s < 0) return "";
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(s, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        ::close(s);
        return "";
    }
    std::string resp;
    char buf[65536];
    for (ssize_t n; (n = ::recv(s, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<size_t>(n));
    ::close(s);
    const auto body = resp.find("\r\n\r\n");
    return body == std::string::npos ? "" : resp.substr(body + 4);
}

TEST(OutputDaemons, NodeExporterServesTheTextfile) {
    REQUIRE_TOOL("/usr/bin/prometheus-node-exporter", "prometheus-node-exporter");
    TempDir dir("kvmready-nodeexp");
    const fs::path textfiles = dir.path / "textfile";
    fs::create_directory(textfiles);
    fs::permissions(textfiles, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                                   fs::perms::others_exec);
    const std::string out = "prometheus:" + (textfiles / "kvmready.prom").string();
    // The packaged timer's command line (two formats, one run).
    auto first = run_kvmready({"check", "--root", "pvm-host", "--output", out, "--output", "nfd:" + (dir.path / "kvmready").string()});
    ASSERT_EQ(first.exit_code, 0) << first.err;
    const int port = free_port();
    ASSERT_GT(port, 0);
    // Only the textfile collector: nothing of this machine is read or served.
    const fs::path exporter_log = dir.path / "node-exporter.log";
    Background exporter({"/usr/bin/prometheus-node-exporter", "--web.listen-address=127.0.0.1:" + std::to_string(port),
                     "--collector.disable-defaults", "--collector.textfile", "--collector.textfile.directory=" + textfiles.string()},
                    exporter_log);
    ASSERT_TRUE(exporter.started());
    ASSERT_TRUE(wait_listening(exporter, port)) << slurp(exporter_log);
    std::string metrics = http_get(port, "/metrics");
    EXPECT_NE(metrics.find("node_textfile_scrape_error 0"), std::string::npos) << slurp(exporter_log);
    EXPECT_NE(metrics.find("kvmready_verdict{verdict=\"ready_with_warnings\"} 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("kvmready_check_status{category=\"kvm\",check=\"kvm.api\",level=\"required\",status=\"pass\"} 1"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("kvmready_info{version=\"" KVMREADY_VERSION "\"} 1"), std::string::npos);
    EXPECT_NE(metrics.find("# TYPE kvmready_ready gauge\nkvmready_ready 1"), std::string::npos);
    EXPECT_NE(metrics.find("node_textfile_mtime_seconds{file=\""), std::string::npos);

    // The next run replaces the file under the running exporter: each scrape
    // sees one whole file, and the new verdict.
    auto second = run_kvmready({"check", "--root", "no-dev-kvm", "--output", out});
    ASSERT_EQ(second.exit_code, 1) << second.err;
    metrics = http_get(port, "/metrics");
    EXPECT_NE(metrics.find("node_textfile_scrape_error 0"), std::string::npos) << slurp(exporter_log);
    EXPECT_NE(metrics.find("kvmready_verdict{verdict=\"not_ready\"} 1"), std::string::npos);
    EXPECT_NE(metrics.find("kvmready_ready 0"), std::string::npos);
    exporter.stop();
}

// NRPE runs the plugin as the documented command line and check_nrpe brings
// back what kvmready printed, with the state as its exit code.
TEST(OutputDaemons, NrpeCarriesStateAndText) {
    REQUIRE_TOOL("/usr/sbin/nrpe", "nagios-nrpe-server");
    REQUIRE_TOOL("/usr/lib/nagios/plugins/check_nrpe", "nagios-nrpe-plugin");
    TempDir dir("kvmready-nrpe");
    const int port = free_port();
    ASSERT_GT(port, 0);
    struct Row {
        const char* command;
        const char* tree;
        int state;
    };
    const Row rows[] = {{"kvmready_ready", "intel-vtx", 0}, {"kvmready_warn", "pvm-host", 1}, {"kvmready_not_ready", "no-dev-kvm", 2},
                        {"kvmready_broken", "no-such-tree", 3}};
    std::string cfg = "server_address=127.0.0.1\nserver_port=" + std::to_string(port) +
                      "\nallowed_hosts=127.0.0.1\ndont_blame_nrpe=0\nallow_bash_command_substitution=0\n"
                      "command_timeout=60\nconnection_timeout=60\ndebug=0\n";
    // As root NRPE refuses to stay root: it runs plugins as this user.
    if (::geteuid() == 0) cfg += run_captured({"/usr/bin/id", "-u", "nagios"}, 5000).exit_code == 0 ? "nrpe_user=nagios\nnrpe_group=nagios\n"
                                                                                                     : "nrpe_user=nobody\nnrpe_group=nogroup\n";
    // The trees copied where NRPE's unprivileged user can read them (the
    // build's composed fixtures are private to their owner).
    const fs::path trees = dir.path / "trees";
    fs::create_directory(trees);
    for (const auto& r : rows)
        if (fs::exists(fs::path(kFixtures) / r.tree))
            fs::copy(fs::path(kFixtures) / r.tree, trees / r.tree, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    fs::permissions(dir.path, fs::perms::others_read | fs::perms::others_exec, fs::perm_options::add);
    for (const auto& e : fs::recursive_directory_iterator(dir.path))
        if (!e.is_symlink()) fs::permissions(e.path(), fs::perms::others_read | (e.is_directory() ? fs::perms::others_exec : fs::perms::none),
                                             fs::perm_options::add);
    for (const auto& r : rows)
        cfg += std::string("command[") + r.command + "]=" + kBinary + " check --root " + (trees / r.tree).string() + " --format nagios\n";
    std::ofstream(dir.path / "nrpe.cfg") << cfg;
    const fs::path nrpe_log = dir.path / "nrpe.log";
    Background nrpe({"/usr/sbin/nrpe", "-c", (dir.path / "nrpe.cfg").string(), "-n", "-f"}, nrpe_log);
    ASSERT_TRUE(nrpe.started());
    ASSERT_TRUE(wait_listening(nrpe, port)) << slurp(nrpe_log);
    for (const auto& r : rows) {
        const auto direct = run_kvmready({"check", "--root", (trees / r.tree).string(), "--format", "nagios"});
        ASSERT_EQ(direct.exit_code, r.state) << r.tree << direct.err;
        const auto via = run_captured({"/usr/lib/nagios/plugins/check_nrpe", "-H", "127.0.0.1", "-p", std::to_string(port), "-n", "-t", "60",
                                       "-c", r.command},
                                      90000);
        EXPECT_EQ(via.exit_code, r.state) << r.command << "\n" << via.out << via.err << slurp(nrpe_log);
        // Byte for byte, but for the run's own duration in the perfdata.
        static const std::regex duration("duration=[0-9.]+s");
        EXPECT_EQ(std::regex_replace(via.out, duration, "duration=Ts"), std::regex_replace(direct.out, duration, "duration=Ts")) << r.command;
        if (r.state != 3) {
            EXPECT_NE(via.out.find('\n'), via.out.size() - 1) << "the long output arrived too";
        }
        EXPECT_NE(via.out.find("KVMREADY "), std::string::npos);
    }
    nrpe.stop();
}

}  // namespace
