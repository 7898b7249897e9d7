// The recorded CPUID corpus (../shared/corpus/cpuid) against MANIFEST.tsv.
// Expected values come only from the manifest, read at test time.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cpuid/cpuid.hpp"

namespace fs = std::filesystem;
using kvmready::cpuid::decode;
using kvmready::cpuid::Decoded;
using kvmready::cpuid::Dump;
using kvmready::cpuid::parse;
using kvmready::cpuid::ParseError;

namespace {

const fs::path kCorpus{KVMREADY_CORPUS_DIR};

// Folders whose files carry raw CPUID registers.
const std::set<std::string> kRawFolders = {
    "aida64-instlatx64", "libcpuid-test",     "hwloc-gather-cpuid", "rjcp-xml",
    "firecracker-fingerprint-json", "icbooklabs-report", "fuchsia-inc",
};
// Folders that are deliberately not CPUID dumps.
const std::set<std::string> kForeignFolders = {"proc-cpuinfo", "lscpu"};

// Format names parse() must report per folder (libcpuid .test files hold
// either an AIDA-style or a libcpuid raw dump).
const std::map<std::string, std::set<std::string>> kFolderFormats = {
    {"aida64-instlatx64", {"aida64"}},
    {"libcpuid-test", {"aida64", "libcpuid-raw"}},
    {"hwloc-gather-cpuid", {"hwloc"}},
    {"rjcp-xml", {"rjcp-xml"}},
    {"firecracker-fingerprint-json", {"firecracker-json"}},
    {"icbooklabs-report", {"icbooklabs"}},
    {"fuchsia-inc", {"fuchsia"}},
};

// Justified disagreements with MANIFEST.tsv: (file, field) -> reason. Empty:
// every compared field agrees.
const std::map<std::pair<std::string, std::string>, std::string> kKnownDisagreements = {};

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Manifest {
    std::vector<std::map<std::string, std::string>> rows;
};

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        const size_t tab = line.find('\t', start);
        out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
        if (tab == std::string::npos) break;
        start = tab + 1;
    }
    return out;
}

Manifest load_manifest() {
    Manifest m;
    std::istringstream in(read_file(kCorpus / "MANIFEST.tsv"));
    std::string line;
    std::getline(in, line);
    const std::vector<std::string> header = split_tabs(line);
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        const auto cells = split_tabs(line);
        if (cells.size() != header.size())
            throw std::runtime_error("MANIFEST.tsv row with " + std::to_string(cells.size()) + " cells: " + line);
        std::map<std::string, std::string> row;
        for (size_t i = 0; i < header.size(); ++i) row[header[i]] = cells[i];
        m.rows.push_back(std::move(row));
    }
    return m;
}

std::string folder_of(const std::string& file) { return file.substr(0, file.find('/')); }

std::string yes_no(bool b) { return b ? "yes" : "no"; }

size_t files_in(const std::string& folder) {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(kCorpus / folder))
        if (e.is_regular_file()) ++n;
    return n;
}

class CpuidCorpus : public ::testing::Test {
protected:
    void SetUp() override {
        // A missing corpus must fail, not skip: it would hide every check below.
        ASSERT_TRUE(fs::is_directory(kCorpus)) << "CPUID corpus not found at " << kCorpus;
        ASSERT_TRUE(fs::exists(kCorpus / "MANIFEST.tsv")) << "MANIFEST.tsv missing in " << kCorpus;
        manifest_ = load_manifest();
    }
    Manifest manifest_;
};

// Compares one manifest field; returns false (and records) on disagreement
// unless the pair is listed in kKnownDisagreements.
class Comparer {
public:
    explicit Comparer(std::string file) : file_(std::move(file)) {}
    void check(const std::string& field, const std::string& expected, const std::string& actual) {
        if (expected == actual) return;
        if (kKnownDisagreements.count({file_, field})) return;
        ADD_FAILURE() << file_ << ": " << field << " manifest='" << expected << "' parsed='" << actual << "'";
    }

private:
    std::string file_;
};

TEST_F(CpuidCorpus, EveryRawDumpMatchesManifest) {
    std::map<std::string, size_t> manifest_rows, compared;
    for (const auto& row : manifest_.rows) {
        const std::string& file = row.at("file");
        const std::string folder = folder_of(file);
        ASSERT_EQ(folder, row.at("format")) << file;
        if (!kRawFolders.count(folder)) continue;
        ++manifest_rows[folder];

        SCOPED_TRACE(file);
        Dump dump;
        try {
            dump = parse(read_file(kCorpus / file), file);
        } catch (const ParseError& e) {
            ADD_FAILURE() << "parse failed: " << e.what();
            continue;
        }
        const Decoded d = decode(dump);
        Comparer c(file);

        EXPECT_TRUE(kFolderFormats.at(folder).count(dump.format)) << file << " parsed as " << dump.format;
        EXPECT_FALSE(dump.leaves.empty());
        c.check("cpu_vendor", row.at("cpu_vendor"), d.vendor);
        c.check("vmx", row.at("vmx"), yes_no(d.vmx));
        c.check("svm", row.at("svm"), d.has_extended ? yes_no(d.svm) : "n/a");
        c.check("hypervisor", row.at("hypervisor"), d.has_leaf1 ? yes_no(d.hypervisor) : "n/a");
        c.check("hv_vendor_leaf_40000000", row.at("hv_vendor_leaf_40000000"), d.hypervisor_vendor.value_or(""));
        c.check("cpuid_1_eax", row.at("cpuid_1_eax"), d.has_leaf1 ? fmt::format("{:08X}", d.signature) : "");
        // An empty manifest brand means the dump has none: ours must be empty too.
        c.check("model_string", row.at("model_string"), d.brand);
        c.check("logical_cpus_parsed", row.at("logical_cpus_parsed"), std::to_string(dump.logical_cpus));
        auto msr = [&](uint32_t index) {
            const auto it = dump.msrs.find(index);
            return it == dump.msrs.end() ? std::string{} : fmt::format("{:016X}", it->second);
        };
        // Firecracker lists the MSRs a guest is given, not the host's VMX MSRs;
        // the manifest only records these two for InstLatX64 reports.
        if (folder != "firecracker-fingerprint-json") {
            c.check("vmx_basic_msr_480", row.at("vmx_basic_msr_480"), msr(0x480));
            c.check("feature_control_msr_3a", row.at("feature_control_msr_3a"), msr(0x3a));
        }
        ++compared[folder];
    }

    // Every manifest row of a raw folder, and every file on disk, was compared.
    for (const auto& folder : kRawFolders) {
        EXPECT_GT(manifest_rows[folder], 0u) << folder;
        EXPECT_EQ(compared[folder], manifest_rows[folder]) << folder;
        EXPECT_EQ(files_in(folder), manifest_rows[folder]) << folder << ": files on disk vs manifest rows";
    }
    size_t total = 0;
    for (const auto& [folder, n] : compared) total += n;
    std::cout << "[ corpus   ] compared " << total << " raw dumps:";
    for (const auto& [folder, n] : compared) std::cout << ' ' << folder << '=' << n;
    std::cout << '\n';
}

TEST_F(CpuidCorpus, ForeignTextIsRejectedWithAHelpfulMessage) {
    std::map<std::string, size_t> manifest_rows, rejected;
    for (const auto& row : manifest_.rows) {
        const std::string& file = row.at("file");
        const std::string folder = folder_of(file);
        if (!kForeignFolders.count(folder)) continue;
        ++manifest_rows[folder];
        SCOPED_TRACE(file);
        try {
            (void)parse(read_file(kCorpus / file), file);
            ADD_FAILURE() << file << " was accepted as a CPUID dump";
        } catch (const ParseError& e) {
            ++rejected[folder];
            const std::string what = e.what();
            EXPECT_EQ(e.file, file);
            EXPECT_EQ(e.line, 0) << what;
            EXPECT_NE(what.find("not a CPUID dump"), std::string::npos) << what;
            // Name what the user passed and what to run instead.
            EXPECT_NE(what.find(folder == "lscpu" ? "lscpu" : "/proc/cpuinfo"), std::string::npos) << what;
            EXPECT_NE(what.find("cpuid -r"), std::string::npos) << what;
        }
    }
    for (const auto& folder : kForeignFolders) {
        EXPECT_GT(manifest_rows[folder], 0u) << folder;
        EXPECT_EQ(rejected[folder], manifest_rows[folder]) << folder;
        EXPECT_EQ(files_in(folder), manifest_rows[folder]) << folder;
    }
}

// The manifest's own cross-check with libcpuid's expected feature lists: our
// vmx/svm/hypervisor bits must agree with libcpuid wherever the manifest says
// they do (the 11 VIA/Zhaoxin mismatches are libcpuid's, see FORMATS.md).
TEST_F(CpuidCorpus, LibcpuidExpectedFeaturesAgreeWhereManifestSaysSo) {
    size_t checked = 0;
    for (const auto& row : manifest_.rows) {
        if (row.at("libcpuid_expected_xcheck") != "agree") continue;
        const std::string& file = row.at("file");
        SCOPED_TRACE(file);
        const std::string text = read_file(kCorpus / file);
        const Decoded d = decode(parse(text, file));
        // The feature list is the 34th line of the first expected-values section.
        const size_t sep = text.find(std::string(80, '-') + "\n");
        ASSERT_NE(sep, std::string::npos);
        std::istringstream in(text.substr(sep + 81));
        std::string line, features;
        for (int i = 0; i < 34 && std::getline(in, line); ++i) features = line;
        std::set<std::string> names;
        std::istringstream words(features);
        for (std::string w; words >> w;) names.insert(w);
        EXPECT_EQ(names.count("vmx") == 1, d.vmx);
        EXPECT_EQ(names.count("svm") == 1, d.svm);
        EXPECT_EQ(names.count("hypervisor") == 1, d.hypervisor);
        ++checked;
    }
    EXPECT_GT(checked, 300u);
}

TEST_F(CpuidCorpus, WholeCorpusParsesQuickly) {
    std::vector<std::pair<std::string, std::string>> texts;
    size_t bytes = 0, foreign = 0;
    for (const auto& row : manifest_.rows) {
        const std::string& file = row.at("file");
        if (kForeignFolders.count(folder_of(file))) ++foreign;
        texts.emplace_back(file, read_file(kCorpus / file));
        bytes += texts.back().second.size();
    }
    const auto start = std::chrono::steady_clock::now();
    size_t leaves = 0, rejected = 0;
    for (const auto& [file, text] : texts) {
        try {
            leaves += parse(text, file).leaves.size();
        } catch (const ParseError&) {
            ++rejected;
        }
    }
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::cout << "[ corpus   ] parsed " << texts.size() << " files (" << bytes / 1024 << " KiB, " << leaves
              << " first-CPU leaves, " << rejected << " rejected) in " << ms << " ms\n";
    EXPECT_EQ(rejected, foreign);
    // The time is printed, not asserted: speed is the benchmarks' business.
}

// Line that carries leaf 1 in each text format (format knowledge, not per-file data).
bool is_leaf1_line(const std::string& folder, const std::string& line, const std::string& format) {
    if (folder == "hwloc-gather-cpuid") return line.rfind("1 1 0 0 0 =>", 0) == 0;
    if (folder == "rjcp-xml") return line.find("<register eax=\"00000001\" ecx=\"00000000\">") != std::string::npos;
    if (folder == "icbooklabs-report") return line.rfind("  00000001    00000000", 0) == 0;
    if (folder == "fuchsia-inc") return line.rfind("DEFINE_CPUID_VALUES(0x00000001,", 0) == 0;
    if (format == "libcpuid-raw") return line.rfind("basic_cpuid[1]=", 0) == 0;
    return line.rfind("CPUID 00000001", 0) == 0;
}

// A download cut short, or one garbled digit, inside the first CPU's leaf 1
// line must be an error naming that line in every file of every format.
TEST_F(CpuidCorpus, CorruptLeaf1LineIsReportedAtItsLine) {
    size_t checked = 0, raw_rows = 0;
    for (const auto& row : manifest_.rows) {
        const std::string& file = row.at("file");
        const std::string folder = folder_of(file);
        if (!kRawFolders.count(folder)) continue;
        ++raw_rows;
        SCOPED_TRACE(file);
        const std::string text = read_file(kCorpus / file);
        if (folder == "firecracker-fingerprint-json") {
            const std::string half = text.substr(0, text.size() / 2);
            try {
                (void)parse(half, file);
                ADD_FAILURE() << "half a JSON document was accepted";
            } catch (const ParseError& e) {
                EXPECT_GT(e.line, 1) << e.what();
            }
            ++checked;
            continue;
        }
        const std::string format = parse(text, file).format;
        size_t start = 0;
        int line_no = 1;
        bool found = false;
        while (start < text.size()) {
            const size_t end = std::min(text.find('\n', start), text.size());
            if (is_leaf1_line(folder, text.substr(start, end - start), format)) {
                found = true;
                break;
            }
            start = end + 1;
            ++line_no;
        }
        ASSERT_TRUE(found) << "no leaf 1 line";
        const size_t end = std::min(text.find('\n', start), text.size());
        const size_t cut = start + std::min<size_t>((end - start) / 2, 40);
        try {
            (void)parse(text.substr(0, cut), file);
            ADD_FAILURE() << "truncated dump accepted";
        } catch (const ParseError& e) {
            EXPECT_EQ(e.line, line_no) << e.what();
        }
        std::string garbled = text;
        garbled[cut] = 'G';
        try {
            (void)parse(garbled, file);
            ADD_FAILURE() << "garbled dump accepted";
        } catch (const ParseError& e) {
            EXPECT_EQ(e.line, line_no) << e.what();
        }
        ++checked;
    }
    EXPECT_EQ(checked, raw_rows);
}

// The round trip through our cpuid -r writer keeps every leaf of real dumps.
TEST_F(CpuidCorpus, CpuidRRoundTripOfEveryRawDump) {
    size_t n = 0;
    for (const auto& row : manifest_.rows) {
        const std::string& file = row.at("file");
        if (!kRawFolders.count(folder_of(file))) continue;
        SCOPED_TRACE(file);
        const Dump original = parse(read_file(kCorpus / file), file);
        const Dump again = parse(kvmready::cpuid::to_cpuid_r(original), "roundtrip");
        EXPECT_EQ(again.format, "cpuid-r");
        EXPECT_EQ(again.logical_cpus, 1);
        ASSERT_EQ(again.leaves.size(), original.leaves.size());
        for (const auto& l : original.leaves) {
            const auto r = again.find(l.leaf, l.subleaf);
            ASSERT_TRUE(r.has_value()) << fmt::format("leaf {:08x}.{:x}", l.leaf, l.subleaf);
            EXPECT_EQ(std::tie(r->eax, r->ebx, r->ecx, r->edx), std::tie(l.eax, l.ebx, l.ecx, l.edx));
        }
        const Decoded a = decode(original), b = decode(again);
        EXPECT_EQ(kvmready::cpuid::to_json(a), kvmready::cpuid::to_json(b));
        ++n;
    }
    EXPECT_GT(n, 0u);
}

}  // namespace
