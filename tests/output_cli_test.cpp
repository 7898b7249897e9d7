// `kvmready check --format FMT --output FMT:PATH` as admins run it: the real
// binary on the recorded fixture trees. Holds the exit-code contract of
// kvmready(1) (EXIT STATUS, the table per format), that text and JSON stay
// byte-identical to the golden files whichever way they are asked for, that
// one run writes several formats, and that a bad --output is refused before
// anything is probed or written.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/background.hpp"
#include "support/golden_overlay.hpp"
#include "support/spawn.hpp"
#include "support/temp_dir.hpp"


namespace {

namespace fs = std::filesystem;
using kvmready::testsupport::TempDir;
using kvmready::testsupport::golden::normalise_run;

const std::string kBinary = KVMREADY_BINARY;
const std::string kFixtures = KVMREADY_FIXTURES_DIR;
const fs::path kGolden = fs::path(KVMREADY_SOURCE_DIR) / "tests/golden";

struct Proc {
    int exit_code = -1;
    std::string out, err;
};

// The tool in the fixtures directory, C locale, no NO_COLOR (as the golden tests run it).
Proc run(const std::vector<std::string>& args) {
    const std::vector<std::string> env = kvmready::testsupport::c_locale_env();
    std::vector<std::string> argv{kBinary};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto c = kvmready::testsupport::run_captured(argv, 60000, kFixtures, &env);
    if (!c.started) ADD_FAILURE() << c.spawn_error;
    if (c.timed_out) ADD_FAILURE() << "kvmready did not finish within 60 s";
    return {c.exit_code, c.out, c.err};
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// One recorded tree per verdict, whole host or selected checks (and the
// arguments after `check --root TREE`). No recorded whole host is
// undetermined; a selected check that cannot be read is.
struct VerdictCase {
    const char* verdict;
    const char* tree;
    std::vector<std::string> args;
};
const std::vector<VerdictCase>& verdict_cases() {
    static const std::vector<VerdictCase> cases = {
        {"ready", "intel-vtx", {}},
        {"ready_with_warnings", "pvm-host", {}},
        {"not_ready", "no-dev-kvm", {}},
        {"passed", "intel-vtx", {"kvm.api"}},
        {"passed_with_warnings", "pvm-host", {"kvm", "cpu.virt-extensions"}},
        {"failed", "no-dev-kvm", {"kvm.device"}},
        {"undetermined", "intel-vtx", {"memory.ksm"}},
    };
    return cases;
}

// kvmready(1), EXIT STATUS: the one table, per format. nagios follows the
// monitoring-plugin contract; every other format kvmready's own codes, where
// --strict makes warnings fail.
int expected_exit(const std::string& format, std::string verdict, bool strict) {
    // A selection's verdicts take the codes of the whole host's.
    if (verdict == "passed") verdict = "ready";
    if (verdict == "passed_with_warnings") verdict = "ready_with_warnings";
    if (verdict == "failed") verdict = "not_ready";
    if (format == "nagios") return verdict == "ready" ? 0 : verdict == "ready_with_warnings" ? 1 : verdict == "not_ready" ? 2 : 3;
    if (verdict == "ready") return 0;
    if (verdict == "ready_with_warnings") return strict ? 1 : 0;
    if (verdict == "not_ready") return 1;
    return 3;
}

TEST(OutputCli, ExitCodesPerFormatAreTheDocumentedTable) {
    for (const auto& c : verdict_cases()) {
        std::vector<std::string> base = {"check", "--root", c.tree};
        base.insert(base.end(), c.args.begin(), c.args.end());
        // The tree gives the verdict this row is for.
        auto js = base;
        js.emplace_back("--json");
        const Proc j = run(js);
        ASSERT_EQ(nlohmann::json::parse(j.out)["verdict"], c.verdict) << c.tree << "\n" << j.err;
        // --strict matters where there are warnings; elsewhere one format shows it changes nothing.
        const bool warnings = std::string(c.verdict).find("warnings") != std::string::npos;
        for (const char* format : {"text", "json", "prometheus", "nagios", "junit", "nfd"})
            for (bool strict : {false, true}) {
                if (strict && !warnings && std::string(format) != "text") continue;
                auto args = base;
                args.insert(args.end(), {"--format", format});
                if (strict) args.emplace_back("--strict");
                const Proc p = run(args);
                EXPECT_EQ(p.exit_code, expected_exit(format, c.verdict, strict))
                    << "--format " << format << (strict ? " --strict" : "") << " on " << c.tree << " (" << c.verdict << ")\n" << p.err;
                EXPECT_FALSE(p.out.empty());
            }
    }
}

// The one table, as kvmready(1) and README.md print it: outcome, then the
// code for text/json/prometheus/junit/nfd, the same under --strict, nagios.
const std::vector<std::pair<std::string, std::vector<int>>> kExitTable = {
    {"ready", {0, 0, 0}},     {"ready_with_warnings", {0, 1, 1}}, {"not_ready", {1, 1, 2}}, {"undetermined", {3, 3, 3}},
    {"usage", {64, 64, 3}},   {"malformed", {65, 65, 3}},         {"input", {66, 66, 3}},   {"internal", {70, 70, 3}},
    {"output", {73, 73, 3}},
};

// The rows' outcomes and codes (leading numbers of the cells), in order.
std::vector<std::pair<std::string, std::vector<int>>> parse_rows(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::pair<std::string, std::vector<int>>> out;
    for (const auto& cells : rows) {
        if (cells.size() != 4) continue;
        std::string first = cells[0];
        first.erase(std::remove(first.begin(), first.end(), '`'), first.end());
        first = first.substr(first.find_first_not_of(' '));
        first = first.substr(0, first.find_first_of(" /"));
        std::vector<int> codes;
        for (size_t i = 1; i < 4; ++i) codes.push_back(std::atoi(cells[i].c_str() + cells[i].find_first_not_of(' ')));
        out.emplace_back(first == "an" ? "output" : first, codes);
    }
    return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == sep) out.push_back(cur), cur.clear();
        else cur += c;
    }
    out.push_back(cur);
    return out;
}

TEST(OutputCli, TheExitCodeTableIsTheDocumentedOne) {
    // The table rows agree with the policy the binary is held to above.
    for (const auto& [verdict, codes] : std::vector<std::pair<std::string, std::vector<int>>>(kExitTable.begin(), kExitTable.begin() + 4)) {
        EXPECT_EQ(codes[0], expected_exit("text", verdict, false)) << verdict;
        EXPECT_EQ(codes[1], expected_exit("text", verdict, true)) << verdict;
        EXPECT_EQ(codes[2], expected_exit("nagios", verdict, false)) << verdict;
    }
    // man/kvmready.1: the tbl table between .TS and .TE, tab-separated.
    std::vector<std::vector<std::string>> man_rows;
    {
        std::istringstream in(slurp(fs::path(KVMREADY_SOURCE_DIR) / "man/kvmready.1"));
        bool inside = false;
        int tables = 0;
        for (std::string l; std::getline(in, l);) {
            if (l == ".TS") inside = true, ++tables;
            else if (l == ".TE") inside = false;
            else if (inside && l.find('\t') != std::string::npos && l.rfind("Outcome", 0) != 0) man_rows.push_back(split(l, '\t'));
        }
        EXPECT_EQ(tables, 1) << "ONE table of exit codes in the man page";
    }
    EXPECT_EQ(parse_rows(man_rows), kExitTable) << "man/kvmready.1, EXIT STATUS";
    // README.md: the Markdown table whose header starts "| Outcome |".
    std::vector<std::vector<std::string>> md_rows;
    {
        std::istringstream in(slurp(fs::path(KVMREADY_SOURCE_DIR) / "README.md"));
        bool inside = false;
        int tables = 0;
        for (std::string l; std::getline(in, l);) {
            if (l.rfind("| Outcome |", 0) == 0) inside = true, ++tables;
            else if (inside && l.rfind("|", 0) != 0) inside = false;
            else if (inside && l.rfind("|---", 0) != 0) {
                auto cells = split(l, '|');
                md_rows.emplace_back(cells.begin() + 1, cells.end() - 1);
            }
        }
        EXPECT_EQ(tables, 1) << "ONE table of exit codes in README.md";
    }
    EXPECT_EQ(parse_rows(md_rows), kExitTable) << "README.md";
}

// The exit code follows the stdout format only: files change nothing.
TEST(OutputCli, OutputFilesDoNotChangeTheExitCode) {
    TempDir dir("kvmready-out");
    const std::string nagios = "nagios:" + (dir.path / "n.txt").string();
    EXPECT_EQ(run({"check", "--root", "no-dev-kvm", "--output", nagios}).exit_code, 1);
    EXPECT_EQ(run({"check", "--root", "no-dev-kvm", "--format", "nagios", "--output", "json:" + (dir.path / "j").string()}).exit_code, 2);
}

// Text and JSON are what they were: byte for byte the golden files, asked
// for as --json, --format json, or written with --output.
TEST(OutputCli, TextAndJsonStayByteIdentical) {
    TempDir dir("kvmready-out");
    const fs::path t = dir.path / "report.txt", j = dir.path / "report.json";
    const Proc text = run({"check", "--root", "intel-vtx", "--color=never", "--format", "text", "--output", "text:" + t.string(), "--output",
                           "json:" + j.string()});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_EQ(text.out, slurp(kGolden / "intel_vtx.txt"));
    EXPECT_EQ(slurp(t), slurp(kGolden / "intel_vtx.txt"));
    EXPECT_EQ(normalise_run(slurp(j)), slurp(kGolden / "intel_vtx.json"));
    EXPECT_EQ(normalise_run(run({"check", "--root", "intel-vtx", "--format", "json"}).out), slurp(kGolden / "intel_vtx.json"));
    EXPECT_EQ(normalise_run(run({"check", "--root", "intel-vtx", "--json"}).out), slurp(kGolden / "intel_vtx.json"));
    EXPECT_EQ(run({"check", "--root", "intel-vtx", "--json", "--format", "json"}).exit_code, 64) << "--json is --format json";
    EXPECT_EQ(run({"check", "--root", "intel-vtx", "--format", "yaml"}).exit_code, 64);
}

// A usage error names the tool and the subcommand, so a script's log says
// which call was wrong.
TEST(OutputCli, UsageErrorsNameTheSubcommand) {
    const Proc fleet = run({"fleet"});
    EXPECT_EQ(fleet.exit_code, 64);
    EXPECT_EQ(fleet.out, "");
    EXPECT_EQ(fleet.err.rfind("kvmready fleet: ", 0), 0u) << fleet.err;
    EXPECT_NE(fleet.err.find("reports is required"), std::string::npos) << fleet.err;
    EXPECT_NE(fleet.err.find("kvmready fleet --help"), std::string::npos) << fleet.err;
    const Proc check = run({"check", "--bogus"});
    EXPECT_EQ(check.exit_code, 64);
    EXPECT_EQ(check.err.rfind("kvmready check: ", 0), 0u) << check.err;
    EXPECT_NE(check.err.find("--bogus"), std::string::npos) << check.err;
}

// The packaged timer's own command line: several formats from one run, each
// file whole, stdout only the chosen format.
TEST(OutputCli, OneRunWritesEveryFormat) {
    TempDir dir("kvmready-out");
    std::vector<std::string> args = {"check", "--root", "pvm-host", "--format", "nagios"};
    const char* formats[] = {"text", "json", "prometheus", "nagios", "junit", "nfd"};
    for (const char* f : formats) args.insert(args.end(), {"--output", std::string(f) + ":" + (dir.path / f).string()});
    const Proc p = run(args);
    EXPECT_EQ(p.exit_code, 1) << p.err;
    EXPECT_EQ(p.out.rfind("KVMREADY WARNING - ", 0), 0u) << p.out;
    EXPECT_EQ(p.err, "");
    for (const char* f : formats) {
        struct stat st{};
        ASSERT_EQ(::stat((dir.path / f).c_str(), &st), 0) << f;
        EXPECT_EQ(st.st_mode & 0777, 0644u) << f;
        EXPECT_GT(st.st_size, 0) << f;
    }
    EXPECT_EQ(slurp(dir.path / "nagios"), p.out);
    EXPECT_EQ(normalise_run(slurp(dir.path / "json")), normalise_run(run({"check", "--root", "pvm-host", "--json"}).out));
    EXPECT_NE(slurp(dir.path / "prometheus").find("kvmready_verdict{verdict=\"ready_with_warnings\"} 1"), std::string::npos);
    EXPECT_NE(slurp(dir.path / "nfd").find("kvmready.verdict=ready_with_warnings"), std::string::npos);
    EXPECT_EQ(slurp(dir.path / "junit").rfind("<?xml", 0), 0u);
    for (const auto& e : fs::directory_iterator(dir.path)) EXPECT_NE(e.path().filename().string()[0], '.') << "left behind: " << e.path();
}

// Refused before any probing, with the value named on stderr, nothing on
// stdout, nothing written: 64 for what the command line got wrong, 73 for a
// file that cannot be created there.
TEST(OutputCli, BadOutputValuesAreRefusedWritingNothing) {
    TempDir dir("kvmready-out");
    const fs::path good = dir.path / "good.prom";
    const fs::path victim = dir.path / "victim";
    std::ofstream(victim) << "precious\n";
    fs::create_symlink(victim, dir.path / "link.prom");
    fs::create_directory(dir.path / "adir");
    struct Bad {
        std::string value;
        int code;
        const char* says;
    };
    const std::string d = dir.path.string();
    for (const Bad& bad : {Bad{"yaml:" + d + "/x", 64, "unknown format 'yaml'"}, Bad{"prometheus:", 64, "no file named"},
                           Bad{d + "/nocolon", 64, "expected FMT:PATH"}, Bad{"nfd:" + d + "/adir", 73, "is a directory"},
                           Bad{"nfd:" + d + "/missing/x", 73, "does not exist"}, Bad{"prometheus:" + d + "/link.prom", 73, "symbolic link"},
                           Bad{"json:" + good.string(), 64, "the same file as"}, Bad{"json:" + d + "/./good.prom", 64, "the same file as"}}) {
        for (const char* format : {"text", "nagios"}) {
            const Proc p = run({"check", "--root", "intel-vtx", "--format", format, "--output", "prometheus:" + good.string(), "--output", bad.value});
            const bool nagios = std::string(format) == "nagios";
            EXPECT_EQ(p.exit_code, nagios ? 3 : bad.code) << bad.value << " --format " << format << "\n" << p.err;
            EXPECT_NE(p.err.find(bad.says), std::string::npos) << bad.value << ": " << p.err;
            EXPECT_NE(p.err.find("--output"), std::string::npos) << p.err;
            if (nagios) {
                EXPECT_EQ(p.out.rfind("KVMREADY UNKNOWN - kvmready: --output", 0), 0u) << p.out;
            } else {
                EXPECT_EQ(p.out, "");
            }
            EXPECT_FALSE(fs::exists(good)) << "written although " << bad.value << " was refused";
        }
    }
    EXPECT_EQ(slurp(victim), "precious\n");
    EXPECT_TRUE(fs::is_symlink(dir.path / "link.prom"));
    EXPECT_TRUE(fs::is_empty(dir.path / "adir"));
}

// A failing run under --format nagios still answers as a plugin: UNKNOWN.
TEST(OutputCli, NagiosErrorsAreUnknown) {
    const Proc p = run({"check", "--root", "/nonexistent-kvmready-tree", "--format", "nagios"});
    EXPECT_EQ(p.exit_code, 3) << p.err;
    EXPECT_EQ(p.out.rfind("KVMREADY UNKNOWN - kvmready: ", 0), 0u) << p.out;
    EXPECT_EQ(p.out.find('\n'), p.out.size() - 1) << "one line";
    EXPECT_NE(p.err.find("/nonexistent-kvmready-tree"), std::string::npos) << p.err;
    const Proc text = run({"check", "--root", "/nonexistent-kvmready-tree"});
    EXPECT_EQ(p.err, text.err) << "stderr says the same whatever the format";
    EXPECT_EQ(text.exit_code, 66) << "kvmready's own code for a missing --root";
}

}  // namespace
