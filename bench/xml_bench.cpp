// kvmready's small XML parser (src/core/xml.cpp) against libxml2, on the XML
// a real libvirtd wrote (tests/fixtures/virt-libvirtd-netns: capabilities,
// domain capabilities for kvm and qemu, the default network and pool: what
// one `check` parses). Two costs: the parse itself, warm, and what a CLI run
// pays once, in a fresh process: the first parse, libxml2's dlopen (with
// ICU, lzma, zlib) included. tests/xml_test.cpp holds the parser to libxml2.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/xml.hpp"
#include "fresh_process.hpp"

namespace {

using namespace kvmready;

const std::string kDir = std::string(KVMREADY_SOURCE_DIR) + "/tests/fixtures/virt-libvirtd-netns/.kvmready/libvirt/";
const std::vector<std::string> kDocs = {"capabilities.xml", "domcaps-kvm.xml", "domcaps-qemu.xml", "network-default.xml",
                                        "pool-default.xml"};

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> all_docs() {
    std::vector<std::string> out;
    for (const auto& d : kDocs) out.push_back(slurp(kDir + d));
    return out;
}

using Parser = std::optional<XmlElement> (*)(const std::string&, std::string&);

Parser parser_named(const std::string& name) { return name == "libxml2" ? parse_xml_libxml2 : parse_xml_lite; }

// Parses every document once; false (and why on stderr) if one fails.
bool parse_all(Parser parse, const std::vector<std::string>& docs) {
    std::string err;
    for (const auto& d : docs)
        if (!parse(d, err)) {
            std::fprintf(stderr, "parse failed: %s\n", err.c_str());
            return false;
        }
    return true;
}

void parse_one(benchmark::State& st, Parser parse) {
    const std::string doc = slurp(kDir + kDocs[st.range(0)]);
    std::string err;
    if (doc.empty() || !parse(doc, err)) return st.SkipWithError(("cannot parse " + kDocs[st.range(0)] + ": " + err).c_str());
    for (auto _ : st) benchmark::DoNotOptimize(parse(doc, err));
    st.SetLabel(kDocs[st.range(0)]);
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * doc.size()));
}

void BM_XmlParse_Own(benchmark::State& st) { parse_one(st, parse_xml_lite); }
void BM_XmlParse_Libxml2(benchmark::State& st) { parse_one(st, parse_xml_libxml2); }
BENCHMARK(BM_XmlParse_Own)->DenseRange(0, 4)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_XmlParse_Libxml2)->DenseRange(0, 4)->Unit(benchmark::kMicrosecond);

// All five documents: the parsing one `check` does, warm.
void parse_check_set(benchmark::State& st, Parser parse) {
    const auto docs = all_docs();
    if (!parse_all(parse, docs)) return st.SkipWithError("a libvirt fixture does not parse");
    for (auto _ : st) benchmark::DoNotOptimize(parse_all(parse, docs));
}
void BM_XmlCheckSet_Own(benchmark::State& st) { parse_check_set(st, parse_xml_lite); }
void BM_XmlCheckSet_Libxml2(benchmark::State& st) { parse_check_set(st, parse_xml_libxml2); }
BENCHMARK(BM_XmlCheckSet_Own)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_XmlCheckSet_Libxml2)->Unit(benchmark::kMicrosecond);

// ---- fresh process: what a CLI run pays ----------------------------------------

// The five documents parsed once, first thing in the process (libxml2: its dlopen included).
double fresh_check_set(const std::vector<std::string>& args) {
    const auto docs = all_docs();
    const Parser parse = parser_named(args.at(0));
    const auto t0 = std::chrono::steady_clock::now();
    if (!parse_all(parse, docs)) return -1;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
const bench::RegisterFresh reg_set("xml-check-set", fresh_check_set);

// libxml2's load alone: dlopen, its dependencies, symbol lookup, and a one-element document.
double fresh_libxml2_load(const std::vector<std::string>&) {
    std::string err;
    const auto t0 = std::chrono::steady_clock::now();
    if (!parse_xml_libxml2("<a/>", err)) {
        std::fprintf(stderr, "libxml2: %s\n", err.c_str());
        return -1;
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
const bench::RegisterFresh reg_load("xml-libxml2-load", fresh_libxml2_load);

void BM_XmlCheckSetFreshProcess_Own(benchmark::State& st) { bench::measure_fresh(st, "xml-check-set", {"own"}); }
void BM_XmlCheckSetFreshProcess_Libxml2(benchmark::State& st) { bench::measure_fresh(st, "xml-check-set", {"libxml2"}); }
void BM_XmlLibxml2LoadFreshProcess(benchmark::State& st) { bench::measure_fresh(st, "xml-libxml2-load", {}); }
BENCHMARK(BM_XmlCheckSetFreshProcess_Own)->UseManualTime()->Iterations(30)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_XmlCheckSetFreshProcess_Libxml2)->UseManualTime()->Iterations(30)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_XmlLibxml2LoadFreshProcess)->UseManualTime()->Iterations(30)->Unit(benchmark::kMicrosecond);

}  // namespace
