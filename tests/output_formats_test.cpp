// The renderers of src/output/ for the tools admins run (prometheus, nagios,
// junit, nfd) on reports built here, and the host layer's atomic writer of
// --output files on scratch files. The real consumers (promtool,
// node_exporter, NRPE, junitparser) read them in output_consumers_test.cpp;
// the CLI's exit-code contract is held there too.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "core/xml.hpp"
#include "host/nofollow_fs.hpp"
#include "output/formats.hpp"
#include "support/temp_dir.hpp"
#include "util/utf8.hpp"

namespace {

namespace fs = std::filesystem;
using namespace kvmready;
using output::Format;

Finding make(const std::string& id, Status s, Level l, const std::string& message) {
    Finding f;
    f.id = id;
    f.category = id.substr(0, id.find('.'));
    f.title = "Title of " + id;
    f.level = l;
    f.status = s;
    f.message = message;
    return f;
}

// A whole-host report with one check of each status, free text with every
// character the formats must escape, and the verdict given.
Report sample(Verdict v) {
    Report r;
    r.verdict = v;
    r.verdict_text = "KVM works on this host (via kvm_intel), with 1 warning to read | and <angle> & \"quotes\".";
    Finding api = make("kvm.api", Status::Pass, Level::Required, "KVM_CREATE_VM works");
    api.evidence["flavour"] = "kvm_intel";
    r.findings.push_back(api);
    Finding nested = make("kvm.nested", Status::Warn, Level::Optional, "nested virtualization is disabled (kvm_intel nested=0) | <b>");
    nested.remediation.text = "Enable nesting & reload the module.";
    nested.remediation.commands = {"echo 'options kvm_intel nested=1' > /etc/modprobe.d/kvm-nested.conf"};
    r.findings.push_back(nested);
    Finding pool = make("storage.pool", Status::Fail, Level::Recommended, "pool 'default' is missing \x01 here");
    pool.remediation.text = "Define it.";
    pool.remediation.commands = {"virsh pool-define-as default dir --target /var/lib/libvirt/images"};
    r.findings.push_back(pool);
    r.findings.push_back(make("storage.images-dir", Status::Skip, Level::Recommended, "skipped: storage.pool failed"));
    r.findings.push_back(make("memory.ksm", Status::Unknown, Level::Optional, "cannot read /sys/kernel/mm/ksm/run"));
    r.findings.push_back(make("memory.thp", Status::Error, Level::Optional, "internal error: boom"));
    r.summary = {1, 1, 1, 1, 1, 1};
    return r;
}

output::RunInfo run_info() {
    output::RunInfo run;
    run.finished_unix = 1796670000;  // 2026-12-07T19:00:00Z
    run.duration_seconds = 0.25;
    return run;
}

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

TEST(OutputFormats, NamesAreExactlyTheDocumentedOnes) {
    EXPECT_EQ(output::format_names(), (std::vector<std::string>{"text", "json", "prometheus", "nagios", "junit", "nfd"}));
    for (const auto& n : output::format_names()) EXPECT_EQ(output::name_of(*output::format_named(n)), n);
    EXPECT_FALSE(output::format_named("JSON"));
    EXPECT_FALSE(output::format_named(""));
}

TEST(OutputFormats, TimesAreRfc3339Utc) {
    EXPECT_EQ(output::rfc3339_utc(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(output::rfc3339_utc(1796670000), "2026-12-07T19:00:00Z");
}

// The exposition format as node_exporter's textfile collector takes it:
// HELP and TYPE before each metric's samples, no timestamps, names and
// label values from ids only, one series set to 1 in each state set.
TEST(OutputFormats, PrometheusIsTextfileCollectorShaped) {
    const Report r = sample(Verdict::ReadyWithWarnings);
    const std::string out = output::render_prometheus(r, Facts{}, run_info());
    static const std::regex sample_line(R"(^(kvmready_[a-z_]+)(\{([a-z_]+="[A-Za-z0-9._-]*",?)+\})? (-?[0-9.]+)$)");
    std::set<std::string> helped, typed;
    std::map<std::string, double> sum_by_check;
    double verdict_sum = 0;
    for (const auto& l : lines_of(out)) {
        std::smatch m;
        if (l.rfind("# HELP ", 0) == 0) {
            helped.insert(l.substr(7, l.find(' ', 7) - 7));
            continue;
        }
        if (l.rfind("# TYPE ", 0) == 0) {
            EXPECT_NE(l.find(" gauge"), std::string::npos) << l;
            typed.insert(l.substr(7, l.find(' ', 7) - 7));
            continue;
        }
        ASSERT_TRUE(std::regex_match(l, m, sample_line)) << "not a timestamp-free sample of id labels: " << l;
        const std::string name = m[1];
        EXPECT_TRUE(helped.count(name) && typed.count(name)) << name << " has no HELP/TYPE before its samples";
        if (name == "kvmready_verdict") verdict_sum += std::stod(m[4]);
        if (name == "kvmready_check_status") {
            const std::string labels = m[2];
            const auto at = labels.find("check=\"") + 7;
            sum_by_check[labels.substr(at, labels.find('"', at) - at)] += std::stod(m[4]);
        }
    }
    for (const char* metric : {"kvmready_info", "kvmready_ready", "kvmready_verdict", "kvmready_checks", "kvmready_check_status",
                               "kvmready_last_run_timestamp_seconds", "kvmready_run_duration_seconds"})
        EXPECT_TRUE(helped.count(metric)) << metric;
    EXPECT_EQ(verdict_sum, 1);
    EXPECT_EQ(sum_by_check.size(), r.findings.size());
    for (const auto& [id, sum] : sum_by_check) EXPECT_EQ(sum, 1) << id;
    EXPECT_NE(out.find("kvmready_verdict{verdict=\"ready_with_warnings\"} 1\n"), std::string::npos);
    EXPECT_NE(out.find("kvmready_check_status{check=\"storage.pool\",category=\"storage\",level=\"recommended\",status=\"fail\"} 1\n"),
              std::string::npos);
    EXPECT_NE(out.find("\nkvmready_ready 1\n"), std::string::npos);
    EXPECT_NE(out.find("kvmready_last_run_timestamp_seconds 1796670000\n"), std::string::npos);
    EXPECT_NE(out.find(std::string("kvmready_info{version=\"") + KVMREADY_VERSION + "\"} 1\n"), std::string::npos);
    EXPECT_EQ(out.find("nested virtualization"), std::string::npos) << "free text leaked into a label";
    EXPECT_EQ(output::render_prometheus(sample(Verdict::NotReady), Facts{}, run_info()).find("\nkvmready_ready 1\n"), std::string::npos);
}

TEST(OutputFormats, NagiosStatesFollowThePluginContract) {
    const std::map<Verdict, int> want = {{Verdict::Ready, 0},  {Verdict::ReadyWithWarnings, 1},  {Verdict::NotReady, 2}, {Verdict::Undetermined, 3},
                                         {Verdict::Passed, 0}, {Verdict::PassedWithWarnings, 1}, {Verdict::Failed, 2}};
    for (const auto& [v, code] : want) {
        const Report r = sample(v);
        EXPECT_EQ(output::exit_code(Format::Nagios, r, false), code) << to_string(v);
        EXPECT_EQ(output::exit_code(Format::Nagios, r, true), code) << to_string(v) << " --strict";
        const std::string first = lines_of(output::render_nagios(r, Facts{}, run_info())).front();
        EXPECT_EQ(first.rfind(std::string("KVMREADY ") + output::to_string(output::nagios_state(r)) + " - ", 0), 0u) << first;
        // Every other format keeps kvmready's own codes.
        for (Format f : {Format::Text, Format::Json, Format::Prometheus, Format::Junit, Format::Nfd})
            EXPECT_EQ(output::exit_code(f, r, false), exit_code_for(r, false));
    }
}

TEST(OutputFormats, NagiosFirstLineIsShortWithPerfdataAndTheRestIsLongOutput) {
    Report r = sample(Verdict::NotReady);
    const std::string out = output::render_nagios(r, Facts{}, run_info());
    const auto lines = lines_of(out);
    static const std::regex first(R"(^KVMREADY CRITICAL - ([^|]*) \| pass=1;;;0;6 warn=1;;;0;6 fail=1;;;0;6 skip=1;;;0;6 unknown=1;;;0;6 error=1;;;0;6 duration=0\.250s;;;0$)");
    ASSERT_TRUE(std::regex_match(lines[0], first)) << lines[0];
    for (size_t i = 1; i < lines.size(); ++i) EXPECT_EQ(lines[i].find('|'), std::string::npos) << "a '|' starts perfdata: " << lines[i];
    EXPECT_NE(out.find("[FAIL] storage.pool: pool 'default' is missing"), std::string::npos);
    EXPECT_NE(out.find("    $ virsh pool-define-as default dir"), std::string::npos);
    EXPECT_NE(out.find("[WARN] kvm.nested"), std::string::npos);
    EXPECT_EQ(out.find("[PASS]"), std::string::npos) << "passed checks are counted, not listed";

    // A verdict of 5000 bytes, multibyte characters at every offset: cut
    // below 1 KiB on a character boundary, perfdata intact.
    r.verdict_text.clear();
    for (int i = 0; i < 2500; ++i) r.verdict_text += i % 3 ? "é" : "x";
    const std::string longer = lines_of(output::render_nagios(r, Facts{}, run_info())).front();
    EXPECT_LT(longer.size(), 1024u);
    EXPECT_FALSE(util::needs_byte_escape(longer)) << "cut inside a UTF-8 sequence";
    EXPECT_NE(longer.find("... | pass=1;;;0;6"), std::string::npos) << longer;
    const std::string err = output::render_nagios_error(std::string(3000, 'e') + "|x");
    EXPECT_LT(err.size(), 1025u);
    EXPECT_EQ(err.rfind("KVMREADY UNKNOWN - eee", 0), 0u);
    EXPECT_EQ(err.find('|'), std::string::npos);
}

// libxml2 (the real parser, not the project's small one) reads it back with
// every attribute and text node as it was, control characters spelt \xHH.
TEST(OutputFormats, JunitIsWellFormedAndCountsAsTheVerdictDoes) {
    Facts f;
    f.kernel.hostname = "host<1>&\"";
    const Report r = sample(Verdict::ReadyWithWarnings);
    const std::string out = output::render_junit(r, f, run_info());
    EXPECT_EQ(out.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", 0), 0u);
    std::string error;
    const auto doc = parse_xml_libxml2(out, error);
    ASSERT_TRUE(doc) << error << "\n" << out;
    EXPECT_EQ(doc->name, "testsuites");
    EXPECT_EQ(doc->attr("tests"), "6");
    EXPECT_EQ(doc->attr("failures"), "1");  // storage.pool; the warning passes
    EXPECT_EQ(doc->attr("errors"), "2");
    EXPECT_EQ(doc->attr("skipped"), "1");
    const auto suites = doc->all("testsuite");
    ASSERT_EQ(suites.size(), 3u);  // kvm, storage, memory: one per category, in report order
    EXPECT_EQ(suites[0]->attr("name"), "kvmready.kvm");
    EXPECT_EQ(suites[0]->attr("hostname"), "host<1>&\"");
    EXPECT_EQ(suites[1]->attr("name"), "kvmready.storage");
    EXPECT_EQ(suites[1]->attr("failures"), "1");
    const XmlElement* pool = suites[1]->all("testcase")[0];
    EXPECT_EQ(pool->attr("name"), "storage.pool");
    ASSERT_NE(pool->child("failure"), nullptr);
    EXPECT_EQ(pool->child("failure")->attr("message"), "pool 'default' is missing \\x01 here");
    EXPECT_EQ(pool->child("failure")->text, "Define it.\n$ virsh pool-define-as default dir --target /var/lib/libvirt/images");
    const XmlElement* nested = suites[0]->all("testcase")[1];
    EXPECT_EQ(nested->child("failure"), nullptr);
    EXPECT_NE(nested->child_text("system-out").find("warning: nested virtualization is disabled (kvm_intel nested=0) | <b>"), std::string::npos);
    ASSERT_NE(suites[1]->all("testcase")[1]->child("skipped"), nullptr);
    EXPECT_EQ(suites[2]->all("testcase")[0]->child("error")->attr("type"), "unknown");

    // --strict: warnings fail, as the exit code does.
    output::RunInfo strict = run_info();
    strict.strict = true;
    const auto sdoc = parse_xml_libxml2(output::render_junit(r, f, strict), error);
    ASSERT_TRUE(sdoc) << error;
    EXPECT_EQ(sdoc->attr("failures"), "2");
    EXPECT_EQ(sdoc->all("testsuite")[0]->all("testcase")[1]->child("failure")->attr("type"), "warning");
}

// Label syntax from the Kubernetes documentation, "Labels and Selectors",
// section "Syntax and character set"
// (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set):
// a name segment of at most 63 characters, beginning and ending with an
// alphanumeric character, with dashes, underscores, dots and alphanumerics
// between; an optional prefix that is a DNS subdomain (RFC 1123: lowercase
// alphanumeric labels of at most 63, joined by dots, 253 in all) followed by
// '/'; a value of at most 63 characters, empty or as the name segment.
const std::regex kLabelName(R"(^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$)");
const std::regex kDnsSubdomain(R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)");
const std::regex kLabelValue(R"(^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$)");

// NFD's own namespace. nfd-master's reference, denyLabelNs
// (https://kubernetes-sigs.github.io/node-feature-discovery/v0.13/reference/master-configuration-reference):
// by default every namespace is allowed but kubernetes.io and its
// subdomains, which are always denied, except feature.node.kubernetes.io and
// profile.node.kubernetes.io, which are always allowed and cannot be denied;
// older masters allowed only those and -extra-label-ns. So
// feature.node.kubernetes.io passes every configuration.
bool nfd_accepts_by_default(const std::string& prefix) { return prefix == "feature.node.kubernetes.io" || prefix == "profile.node.kubernetes.io"; }

std::map<std::string, std::string> nfd_labels(const std::string& out, std::string* expiry) {
    std::map<std::string, std::string> labels;
    for (const auto& l : lines_of(out)) {
        if (l.rfind("# +expiry-time=", 0) == 0) *expiry = l.substr(15);
        if (l.empty() || l[0] == '#') continue;
        const auto eq = l.find('=');
        labels[l.substr(0, eq)] = eq == std::string::npos ? "true" : l.substr(eq + 1);
    }
    return labels;
}

void expect_valid_labels(const std::map<std::string, std::string>& labels) {
    for (const auto& [name, value] : labels) {
        const auto slash = name.find('/');
        ASSERT_NE(slash, std::string::npos) << name << " has no prefix";
        const std::string prefix = name.substr(0, slash), segment = name.substr(slash + 1);
        EXPECT_LE(prefix.size(), 253u);
        EXPECT_TRUE(std::regex_match(prefix, kDnsSubdomain)) << prefix;
        EXPECT_TRUE(nfd_accepts_by_default(prefix)) << prefix;
        EXPECT_LE(segment.size(), 63u) << name;
        EXPECT_TRUE(std::regex_match(segment, kLabelName)) << name;
        EXPECT_LE(value.size(), 63u) << name << "=" << value;
        EXPECT_TRUE(std::regex_match(value, kLabelValue)) << name << "=" << value;
        EXPECT_EQ(name.rfind(output::kNfdPrefix, 0), 0u) << name;
    }
}

TEST(OutputFormats, NfdLabelsAreKubernetesLabelsThatExpire) {
    // The regexes themselves, on the docs' own examples and counterexamples.
    EXPECT_TRUE(std::regex_match("a.b_c-d", kLabelName));
    EXPECT_FALSE(std::regex_match("-a", kLabelName));
    EXPECT_FALSE(std::regex_match("a b", kLabelValue));
    EXPECT_TRUE(std::regex_match("", kLabelValue));

    std::string expiry;
    const auto labels = nfd_labels(output::render_nfd(sample(Verdict::ReadyWithWarnings), Facts{}, run_info()), &expiry);
    expect_valid_labels(labels);
    const std::string p = output::kNfdPrefix;
    EXPECT_EQ(labels.at(p + "kvm-usable"), "true");
    EXPECT_EQ(labels.at(p + "verdict"), "ready_with_warnings");
    EXPECT_EQ(labels.at(p + "kvm-flavour"), "intel");
    EXPECT_EQ(labels.at(p + "nested"), "false");
    EXPECT_EQ(expiry, output::rfc3339_utc(run_info().finished_unix + output::kNfdExpirySeconds));
    EXPECT_TRUE(std::regex_match(expiry, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$)")));

    // KVM not usable: kvm.api failed. Not judged, or not run: no label at all.
    Report r = sample(Verdict::NotReady);
    r.findings[0].status = Status::Fail;
    auto no = nfd_labels(output::render_nfd(r, Facts{}, run_info()), &expiry);
    EXPECT_EQ(no.at(p + "kvm-usable"), "false");
    EXPECT_EQ(no.count(p + "kvm-flavour"), 0u);
    r.findings[0].status = Status::Unknown;
    EXPECT_EQ(nfd_labels(output::render_nfd(r, Facts{}, run_info()), &expiry).count(p + "kvm-usable"), 0u);
    // A flavour that is no label value is left out, not mangled.
    r = sample(Verdict::Ready);
    r.findings[0].evidence["flavour"] = "kvm intel (odd)";
    auto odd = nfd_labels(output::render_nfd(r, Facts{}, run_info()), &expiry);
    expect_valid_labels(odd);
    EXPECT_EQ(odd.count(p + "kvm-flavour"), 0u);
}

// ---- the host layer's writer of --output files ----

TEST(OutputFormats, PublishWritesEveryFileWholeAndReadable) {
    testsupport::TempDir dir("kvmready-out");
    const fs::path a = dir.path / "kvmready.prom", b = dir.path / "kvmready";
    std::ofstream(a) << "old\n";
    host::publish_files({{a.string(), "new prometheus\n"}, {b.string(), "nfd\n"}});
    EXPECT_EQ(slurp(a), "new prometheus\n");
    EXPECT_EQ(slurp(b), "nfd\n");
    struct stat st{};
    ASSERT_EQ(::stat(b.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u) << "agents running as other users read it";
    size_t entries = 0;
    for (const auto& e : fs::directory_iterator(dir.path)) entries += e.path().filename().string()[0] == '.' ? 100 : 1;
    EXPECT_EQ(entries, 2u) << "a temporary file was left behind";
}

TEST(OutputFormats, PublishRefusesSymlinksDirectoriesAndMissingParentsWritingNothing) {
    testsupport::TempDir dir("kvmready-out");
    const fs::path victim = dir.path / "victim";
    std::ofstream(victim) << "precious\n";
    fs::create_symlink(victim, dir.path / "link.prom");
    fs::create_directory(dir.path / "real");
    fs::create_directory_symlink(dir.path / "real", dir.path / "linkdir");
    fs::create_directory(dir.path / "adir");
    const fs::path good = dir.path / "good.prom";
    struct Bad {
        fs::path path;
        const char* why;
    };
    for (const Bad& bad : {Bad{dir.path / "link.prom", "symbolic link"}, Bad{dir.path / "linkdir" / "x.prom", "symbolic link"},
                           Bad{dir.path / "adir", "is a directory"}, Bad{dir.path / "missing" / "x.prom", "does not exist"}}) {
        const std::string problem = host::output_file_problem(bad.path.string());
        EXPECT_NE(problem.find(bad.why), std::string::npos) << bad.path << ": " << problem;
        // The good file is listed first: it must not appear either.
        EXPECT_THROW(host::publish_files({{good.string(), "x"}, {bad.path.string(), "y"}}), std::runtime_error) << bad.path;
        EXPECT_FALSE(fs::exists(good)) << "written although " << bad.path << " was refused";
    }
    EXPECT_EQ(slurp(victim), "precious\n");
    EXPECT_TRUE(fs::is_symlink(dir.path / "link.prom"));
    EXPECT_TRUE(fs::is_empty(dir.path / "real"));
    EXPECT_EQ(host::output_file_problem(good.string()), "");
    EXPECT_NE(host::output_file_problem((dir.path / "x/").string()), "");
    for (const auto& e : fs::directory_iterator(dir.path)) EXPECT_NE(e.path().filename().string()[0], '.') << "left behind: " << e.path();
}

// A relative path is the working directory's, as for any program's -o.
TEST(OutputFormats, PublishTakesRelativePaths) {
    testsupport::TempDir dir("kvmready-out");
    const fs::path cwd = fs::current_path();
    fs::current_path(dir.path);
    EXPECT_EQ(host::output_file_problem("rel.prom"), "");
    host::publish_files({{"rel.prom", "r\n"}});
    fs::current_path(cwd);
    EXPECT_EQ(slurp(dir.path / "rel.prom"), "r\n");
}

}  // namespace
