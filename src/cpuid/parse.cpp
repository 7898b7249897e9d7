// parse(): recognises which of the CPUID dump formats listed in the corpus
// FORMATS.md a text is, and hands it to that format's parser
// (formats_text.cpp: the line-oriented reports; formats_xml_json.cpp: RJCP
// XML, Firecracker JSON), or explains what the input is instead.
//
// All line formats are hand-parsed: the largest InstLatX64 dumps are several
// MB with tens of thousands of register lines, and std::regex would dominate
// the run time. Each parser is strict about lines that claim to be register
// lines (a cut-off or garbled one is an error naming its line) and lenient
// about everything else, because the text reports wrap the registers in
// free-form prose we have no use for.
#include "cpuid/cpuid.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cpuid/formats.hpp"
#include "cpuid/lexing.hpp"

namespace kvmready::cpuid {

namespace {

using std::string_view;

std::string compose_what(const std::string& file, int line, const std::string& msg) {
    if (line > 0) return fmt::format("{}:{}: {}", file, line, msg);
    return fmt::format("{}: {}", file, msg);
}

constexpr string_view kSupportedList =
    "cpuid -r, AIDA64/InstLatX64, libcpuid raw/.test, hwloc-gather-cpuid, RJCP XML, "
    "Firecracker fingerprint JSON, IC Book Labs report, Fuchsia DEFINE_CPUID_VALUES";

using namespace detail;

// ---------------------------------------------------------------- detection

enum class Format { kNone, kCpuidR, kAida, kLibcpuidRaw, kHwloc, kFuchsia, kIcBook };

Format classify_line(string_view line) {
    const string_view t = trim_left(line);
    if (t.empty()) return Format::kNone;
    if (looks_like_aida_line(t)) return Format::kAida;
    if (looks_like_cpuid_r_line(t)) return Format::kCpuidR;
    if (looks_like_libcpuid_line(t)) return Format::kLibcpuidRaw;
    if (t.starts_with("DEFINE_CPUID_VALUES")) return Format::kFuchsia;
    if (is_icbook_header(t)) return Format::kIcBook;
    if (looks_like_hwloc_line(t)) return Format::kHwloc;
    return Format::kNone;
}

bool has_line_starting(string_view text, std::initializer_list<string_view> keys, int min_hits) {
    Lines lines(text);
    string_view line;
    int hits = 0;
    while (lines.next(line)) {
        for (string_view k : keys)
            if (line.starts_with(k)) {
                ++hits;
                break;
            }
        if (hits >= min_hits) return true;
        if (lines.number() > 400) break;
    }
    return false;
}

// Explains the usual wrong inputs instead of a bare "unknown format".
[[noreturn]] void fail_unrecognised(string_view text, const std::string& name, int separator_line) {
    const std::string hint = fmt::format("supported formats: {}", kSupportedList);
    const bool binary = std::count(text.begin(), text.end(), '\0') > 0 ||
                        std::count_if(text.begin(), text.end(), [](char c) {
                            const auto u = static_cast<unsigned char>(c);
                            return u < 0x20 && c != '\n' && c != '\r' && c != '\t';
                        }) > static_cast<std::ptrdiff_t>(text.size() / 20);
    if (trim(text).empty())
        fail(name, 0, fmt::format("not a CPUID dump: the input is empty ({})", hint));
    if (binary)
        fail(name, 0, fmt::format("not a CPUID dump: the input is binary data, not text ({})", hint));
    if (has_line_starting(text, {"processor\t", "vendor_id\t", "flags\t", "cpu family\t", "model name\t"}, 2))
        fail(name, 0,
             fmt::format("not a CPUID dump: this looks like /proc/cpuinfo, which shows the kernel's "
                         "filtered feature flags rather than raw CPUID registers; capture the registers "
                         "with `cpuid -r -1` instead ({})",
                         hint));
    if (has_line_starting(text, {"Architecture:", "Vendor ID:", "Model name:", "CPU(s):", "CPU op-mode(s):"}, 2))
        fail(name, 0,
             fmt::format("not a CPUID dump: this looks like lscpu output, which has no raw CPUID "
                         "registers; capture them with `cpuid -r -1` instead ({})",
                         hint));
    if (separator_line > 0)
        fail(name, 0,
             fmt::format("not a CPUID dump: a libcpuid .test container with no raw register lines "
                         "before its expected-values separator (line {}) ({})",
                         separator_line, hint));
    fail(name, 0, fmt::format("not a CPUID dump: no register lines in any supported format ({})", kSupportedList));
}

std::string utf16_to_ascii(string_view text, bool little_endian) {
    std::string out;
    out.reserve(text.size() / 2);
    for (size_t i = 2; i + 1 < text.size(); i += 2) {
        const auto lo = static_cast<unsigned char>(text[little_endian ? i : i + 1]);
        const auto hi = static_cast<unsigned char>(text[little_endian ? i + 1 : i]);
        out.push_back(hi == 0 && lo < 0x80 ? static_cast<char>(lo) : '?');
    }
    return out;
}

Dump parse_text(string_view text, const std::string& name) {
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);

    const size_t first = text.find_first_not_of(" \t\r\n");
    if (first != string_view::npos && text[first] == '{') return parse_firecracker(text, name);
    if (first != string_view::npos && text[first] == '<') return parse_rjcp_xml(text, name);

    // The first line that can only belong to one format decides.
    Lines lines(text);
    string_view line;
    int separator_line = 0;
    while (lines.next(line)) {
        if (separator_line == 0 && is_test_separator(line)) separator_line = lines.number();
        switch (classify_line(line)) {
        case Format::kNone: continue;
        case Format::kAida: return parse_aida(text, name);
        case Format::kCpuidR: return parse_cpuid_r(text, name);
        case Format::kLibcpuidRaw: return parse_libcpuid_raw(text, name);
        case Format::kHwloc: return parse_hwloc(text, name);
        case Format::kFuchsia: return parse_fuchsia(text, name);
        case Format::kIcBook: return parse_icbook(text, name);
        }
    }
    fail_unrecognised(text, name, separator_line);
}

}  // namespace

ParseError::ParseError(std::string file_, int line_, const std::string& what)
    : std::runtime_error(compose_what(file_, line_, what)), file(std::move(file_)), line(line_) {}

Dump parse(std::string_view text, const std::string& name) {
    try {
        // Windows tools (AIDA64 reports saved by Notepad) may write UTF-16 with a BOM.
        if (text.starts_with("\xFF\xFE") || text.starts_with("\xFE\xFF")) {
            const std::string ascii = utf16_to_ascii(text, text[0] == '\xFF');
            return parse_text(ascii, name);
        }
        return parse_text(text, name);
    } catch (const ParseError&) {
        throw;
    } catch (const nlohmann::json::exception& e) {
        // The input is at fault whatever the JSON library tripped on.
        throw ParseError(name, 0, fmt::format("unexpected JSON content: {}", e.what()));
    } catch (const std::out_of_range& e) {
        throw ParseError(name, 0, fmt::format("number out of range ({})", e.what()));
    } catch (const std::invalid_argument& e) {
        throw ParseError(name, 0, fmt::format("not a number ({})", e.what()));
    }
}

}  // namespace kvmready::cpuid