// The line-oriented CPUID dump formats: `cpuid -r`, AIDA64/InstLatX64,
// libcpuid raw and .test, hwloc-gather-cpuid, Fuchsia DEFINE_CPUID_VALUES and
// IC Book Labs reports (the corpus FORMATS.md). Hand-parsed, strict about
// register lines and lenient about prose (see parse.cpp).
#include <algorithm>
#include <array>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "cpuid/formats.hpp"
#include "cpuid/lexing.hpp"

namespace kvmready::cpuid::detail {

using std::string_view;

// ---------------------------------------------------------------- cpuid -r

namespace {

// "CPU:" (cpuid -1) or "CPU <n>:"; AIDA's InstLatX64 copies of such dumps use it too.
bool is_cpu_n_header(string_view t) {
    t = trim(t);
    if (t.size() < 4 || t.substr(0, 3) != "CPU" || t.back() != ':') return false;
    string_view mid = trim(t.substr(3, t.size() - 4));
    return std::all_of(mid.begin(), mid.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool parse_cpuid_r_line(string_view t, uint32_t& leaf, uint32_t& sub, std::array<uint32_t, 4>& r) {
    size_t p = 0;
    if (!consume(t, p, "0x") || !read_hex_exact(t, p, 8, leaf)) return false;
    sub = 0;
    if (p < t.size() && t[p] == ' ') {
        ++p;
        // Very old cpuid releases printed no subleaf column.
        if (!consume(t, p, "0x") || !read_hex_var(t, p, sub)) return false;
    }
    if (!consume(t, p, ":")) return false;
    static constexpr std::array<string_view, 4> kNames = {"eax=0x", "ebx=0x", "ecx=0x", "edx=0x"};
    for (size_t i = 0; i < 4; ++i) {
        const size_t before = p;
        skip_blanks(t, p);
        if (p == before) return false;
        if (!consume(t, p, kNames[i]) || !read_hex_exact(t, p, 8, r[i])) return false;
    }
    return rest_is_blank(t, p);
}

}  // namespace

// "0x<hex> 0x<hex>:" or "0x<hex>:" at the start of the (trimmed) line.
bool looks_like_cpuid_r_line(string_view t) {
    size_t p = 0;
    if (!consume(t, p, "0x") || hex_run(t, p) == 0) return false;
    p += hex_run(t, p);
    return consume(t, p, " 0x") || consume(t, p, ":");
}

Dump parse_cpuid_r(string_view text, const std::string& name) {
    Dump d;
    d.format = "cpuid-r";
    LeafSink sink(d);
    Blocks blocks;
    Lines lines(text);
    string_view line;
    while (lines.next(line)) {
        const string_view t = trim_left(line);
        if (is_cpu_n_header(t)) {
            blocks.start();
            continue;
        }
        if (!t.starts_with("0x")) continue;
        uint32_t leaf = 0, sub = 0;
        std::array<uint32_t, 4> r{};
        if (!parse_cpuid_r_line(t, leaf, sub, r))
            fail(name, lines.number(),
                 "malformed cpuid -r register line (expected '0x<leaf> 0x<subleaf>: eax=0x<8 hex> "
                 "ebx=0x<8 hex> ecx=0x<8 hex> edx=0x<8 hex>')");
        // Concatenated single-CPU dumps may have lost their "CPU n:" headers.
        if (leaf == 0 && blocks.has_leaf0()) blocks.start();
        blocks.note(leaf);
        if (blocks.collecting()) sink.add(leaf, sub, r[0], r[1], r[2], r[3]);
    }
    require_registers(d, name, "cpuid -r dump");
    d.logical_cpus = blocks.count();
    return d;
}

// ---------------------------------------------------------------- AIDA64 / InstLatX64

namespace {

// Whether the hex run at `p` is a register-line index field (the leaf of
// "CPUID <leaf>", the index of "MSR <index>") rather than a word of prose.
// The full 8 digits always are. A shorter or longer run counts when it has a
// decimal digit and is either long enough to be a garbled field (4+ digits)
// or ends the line (a dump cut short inside the field). Header lines such as
// "CPUID Manufacturer:" or "CPUID Registers (CPU #1):" start with a non-hex
// word, and prose like "CPUID 7 features" or "MSR 3Ah" is left alone.
bool is_index_field(string_view t, size_t p) {
    const size_t n = hex_run(t, p);
    if (n == 0) return false;
    if (p + n < t.size() && is_alnum(t[p + n])) return false;
    if (n == 8) return true;
    const bool has_digit = std::any_of(t.begin() + static_cast<std::ptrdiff_t>(p),
                                       t.begin() + static_cast<std::ptrdiff_t>(p + n),
                                       [](char c) { return c >= '0' && c <= '9'; });
    return has_digit && (n >= 4 || rest_is_blank(t, p + n));
}

bool parse_aida_line(string_view t, uint32_t& leaf, std::array<uint32_t, 4>& r, std::optional<uint32_t>& sl) {
    size_t p = 5;
    skip_blanks(t, p);
    if (!read_hex_exact(t, p, 8, leaf)) return false;
    // Separator: ": ", "  \t", " ", " : ", " :" - any blanks with at most one colon.
    const size_t sep_start = p;
    skip_blanks(t, p);
    if (p < t.size() && t[p] == ':') ++p;
    skip_blanks(t, p);
    if (p == sep_start) return false;
    for (size_t i = 0; i < 4; ++i) {
        if (i > 0) {
            if (p >= t.size() || (t[p] != '-' && !is_blank(t[p]))) return false;
            ++p;
        }
        if (!read_hex_exact(t, p, 8, r[i])) return false;
    }
    if (p < t.size() && !is_blank(t[p])) return false;
    sl.reset();
    const size_t tag = t.find("[SL ", p);
    if (tag != string_view::npos) {
        size_t q = tag + 4;
        uint32_t v = 0;
        if (!read_hex_var(t, q, v) || !consume(t, q, "]")) return false;
        sl = v;
    }
    return true;
}

// MSR <H8>: <H4>-<H4>-<H4>-<H4>[tail]  or  MSR <H8>: < FAILED >
bool looks_like_msr_line(string_view t) { return t.starts_with("MSR ") && is_index_field(t, 4); }

// Returns false for malformed lines; `value` unset for "< FAILED >".
bool parse_msr_line(string_view t, uint32_t& index, std::optional<uint64_t>& value) {
    size_t p = 4;
    if (!read_hex_exact(t, p, 8, index) || !consume(t, p, ":")) return false;
    skip_blanks(t, p);
    if (t.substr(p).starts_with("< FAILED >")) {
        value.reset();
        return rest_is_blank(t, p + 10);
    }
    uint64_t v = 0;
    for (int i = 0; i < 4; ++i) {
        if (i > 0 && !consume(t, p, "-")) return false;
        uint32_t part = 0;
        if (!read_hex_exact(t, p, 4, part)) return false;
        v = (v << 16) | part;
    }
    if (p < t.size() && !is_blank(t[p])) return false;
    value = v;
    return true;
}

// Header lines that open a logical-CPU block (FORMATS.md section 1). Any
// "------[ ... ]------" section header also closes the current block so that
// register lines can never leak from one section into the previous CPU.
bool is_aida_block_header(string_view t) {
    if (t.starts_with("------[")) return true;
    if (t.starts_with("CPU#") && t.find("AffMask") != string_view::npos) return true;
    if (t.starts_with("CPUID Registers (CPU #")) return true;
    if (t.starts_with("Group:") && t.find("Affinity mask") != string_view::npos) return true;
    if (t.starts_with("___") && t.find("Logical CPU #") != string_view::npos) return true;
    return is_cpu_n_header(t);
}

}  // namespace

bool looks_like_aida_line(string_view t) {
    if (!t.starts_with("CPUID") || t.size() < 6 || !is_blank(t[5])) return false;
    size_t p = 5;
    skip_blanks(t, p);
    return is_index_field(t, p);
}

Dump parse_aida(string_view text, const std::string& name) {
    Dump d;
    d.format = "aida64";
    LeafSink sink(d);
    Blocks blocks;
    Lines lines(text);
    string_view line;
    while (lines.next(line)) {
        const string_view t = trim_left(line);
        if (t.empty()) continue;
        if (blocks.any() && is_test_separator(line)) break;  // libcpuid .test: expected values follow
        if (looks_like_aida_line(t)) {
            uint32_t leaf = 0;
            std::array<uint32_t, 4> r{};
            std::optional<uint32_t> sl;
            if (!parse_aida_line(t, leaf, r, sl))
                fail(name, lines.number(),
                     "malformed AIDA64/InstLatX64 register line (expected 'CPUID <leaf>: "
                     "EAX-EBX-ECX-EDX' with 8 hex digits each)");
            // Header-less dumps start each logical CPU with leaf 0 again.
            if (leaf == 0 && blocks.has_leaf0()) blocks.start();
            const uint32_t occurrence = blocks.note(leaf);
            if (blocks.collecting()) sink.add(leaf, sl.value_or(occurrence), r[0], r[1], r[2], r[3]);
            continue;
        }
        if (looks_like_msr_line(t)) {
            uint32_t index = 0;
            std::optional<uint64_t> value;
            if (!parse_msr_line(t, index, value))
                fail(name, lines.number(),
                     "malformed MSR line (expected 'MSR <8 hex>: XXXX-XXXX-XXXX-XXXX' or '< FAILED >')");
            // MSR sections follow the CPU blocks in logical-CPU order: first one wins.
            if (value) d.msrs.emplace(index, *value);
            continue;
        }
        if (is_aida_block_header(t)) blocks.start();
    }
    require_registers(d, name, "AIDA64/InstLatX64 dump");
    d.logical_cpus = blocks.count();
    return d;
}

// ---------------------------------------------------------------- libcpuid raw

namespace {

struct LibcpuidKey {
    uint32_t base = 0;     // leaf for the array index 0
    bool index_is_subleaf = false;
};

// Keys written by libcpuid's cpuid_serialize_raw_data(): basic_cpuid, ext_cpuid
// and per-leaf subleaf arrays named <vendor>_fn<leaf> (decimal: intel_fn4,
// intel_fn11) or <vendor>_fn<leaf>h (hex: intel_fn12h, amd_fn8000001dh).
// Decoding the number from the name keeps future keys working.
std::optional<LibcpuidKey> libcpuid_key(string_view key) {
    if (key == "basic_cpuid") return LibcpuidKey{0, false};
    if (key == "ext_cpuid") return LibcpuidKey{0x80000000u, false};
    const size_t fn = key.find("_fn");
    if (fn == string_view::npos || fn == 0) return std::nullopt;
    string_view num = key.substr(fn + 3);
    if (num.empty()) return std::nullopt;
    const bool hex = num.back() == 'h';
    if (hex) num.remove_suffix(1);
    if (num.empty() || num.size() > 8) return std::nullopt;
    uint64_t v = 0;
    for (char c : num) {
        const int dg = hex_digit(c);
        if (dg < 0 || (!hex && dg > 9)) return std::nullopt;
        v = v * (hex ? 16 : 10) + static_cast<uint64_t>(dg);
    }
    if (v > 0xffffffffu) return std::nullopt;
    return LibcpuidKey{static_cast<uint32_t>(v), true};
}

// `<ident>[` at the start of a line.
bool split_libcpuid_line(string_view t, string_view& key) {
    size_t p = 0;
    while (p < t.size() && (is_alnum(t[p]) || t[p] == '_')) ++p;
    if (p == 0 || p >= t.size() || t[p] != '[') return false;
    key = t.substr(0, p);
    return true;
}

bool parse_libcpuid_values(string_view t, size_t p, uint32_t& index, std::array<uint32_t, 4>& r) {
    if (!consume(t, p, "[")) return false;
    size_t n = 0;
    uint64_t idx = 0;
    while (p < t.size() && t[p] >= '0' && t[p] <= '9' && n < 6) {
        idx = idx * 10 + static_cast<uint64_t>(t[p] - '0');
        ++p;
        ++n;
    }
    if (n == 0 || !consume(t, p, "]=")) return false;
    index = static_cast<uint32_t>(idx);
    for (size_t i = 0; i < 4; ++i) {
        if (i > 0) {
            const size_t before = p;
            skip_blanks(t, p);
            if (p == before) return false;
        }
        if (!read_hex_exact(t, p, 8, r[i])) return false;
    }
    return rest_is_blank(t, p);
}

}  // namespace

bool looks_like_libcpuid_line(string_view t) {
    string_view key;
    return split_libcpuid_line(t, key) && libcpuid_key(key).has_value();
}

Dump parse_libcpuid_raw(string_view text, const std::string& name) {
    Dump d;
    d.format = "libcpuid-raw";
    LeafSink sink(d);
    Blocks blocks;
    bool block_has_basic0 = false;
    Lines lines(text);
    string_view line;
    while (lines.next(line)) {
        const string_view t = trim_left(line);
        if (t.empty()) continue;
        if (blocks.any() && is_test_separator(line)) break;
        if (t.starts_with("___") && t.find("Logical CPU #") != string_view::npos) {
            blocks.start();
            block_has_basic0 = false;
            continue;
        }
        string_view key;
        if (!split_libcpuid_line(t, key)) continue;  // version=..., arm_* keys, prose
        const auto k = libcpuid_key(key);
        if (!k) continue;  // an array this parser does not know: not CPUID leaf data
        uint32_t index = 0;
        std::array<uint32_t, 4> r{};
        if (!parse_libcpuid_values(t, key.size(), index, r))
            fail(name, lines.number(),
                 fmt::format("malformed libcpuid raw line (expected '{}[<n>]=<8 hex> <8 hex> <8 hex> <8 hex>')",
                             key));
        const bool is_basic0 = key == "basic_cpuid" && index == 0;
        // A separator-less concatenation of dumps restarts at basic_cpuid[0].
        if (is_basic0 && block_has_basic0) blocks.start();
        if (is_basic0) block_has_basic0 = true;
        const uint32_t leaf = k->index_is_subleaf ? k->base : k->base + index;
        const uint32_t sub = k->index_is_subleaf ? index : 0;
        blocks.note(leaf);
        if (blocks.collecting()) sink.add(leaf, sub, r[0], r[1], r[2], r[3]);
    }
    require_registers(d, name, "libcpuid raw dump");
    d.logical_cpus = blocks.count();
    return d;
}

// ---------------------------------------------------------------- hwloc-gather-cpuid

namespace {

bool parse_hwloc_line(string_view t, uint32_t& mask, std::array<uint32_t, 4>& in, std::array<uint32_t, 4>& out) {
    size_t p = 0;
    auto token = [&](uint32_t& v) {
        skip_blanks(t, p);
        if (!read_hex_var(t, p, v)) return false;
        return p == t.size() || is_blank(t[p]);
    };
    if (!token(mask)) return false;
    for (auto& v : in)
        if (!token(v)) return false;
    skip_blanks(t, p);
    if (!consume(t, p, "=>")) return false;
    for (auto& v : out)
        if (!token(v)) return false;
    return rest_is_blank(t, p);
}

}  // namespace

bool looks_like_hwloc_line(string_view t) {
    if (t.starts_with("# mask e[abcd]x")) return true;
    return !t.empty() && hex_digit(t[0]) >= 0 && t.find("=>") != string_view::npos;
}

Dump parse_hwloc(string_view text, const std::string& name) {
    Dump d;
    d.format = "hwloc";
    LeafSink sink(d);
    Lines lines(text);
    string_view line;
    while (lines.next(line)) {
        const string_view t = trim(line);
        if (t.empty() || t[0] == '#') continue;
        uint32_t mask = 0;
        std::array<uint32_t, 4> in{}, out{};
        if (!parse_hwloc_line(t, mask, in, out))
            fail(name, lines.number(),
                 "malformed hwloc-gather-cpuid line (expected '<mask> <eax> <ebx> <ecx> <edx> => "
                 "<eax> <ebx> <ecx> <edx>' in hex)");
        // mask bit 0: EAX (leaf) was set, bit 2: ECX (subleaf) was set.
        if ((mask & 1u) == 0)
            fail(name, lines.number(), "hwloc-gather-cpuid line without the EAX input bit in its mask");
        sink.add(in[0], (mask & 4u) ? in[2] : 0, out[0], out[1], out[2], out[3]);
    }
    require_registers(d, name, "hwloc-gather-cpuid file");
    d.logical_cpus = 1;  // one file per logical processor
    return d;
}

// ---------------------------------------------------------------- Fuchsia

namespace {

bool parse_fuchsia_line(string_view t, std::array<uint32_t, 6>& v) {
    size_t p = 0;
    if (!consume(t, p, "DEFINE_CPUID_VALUES(")) return false;
    for (size_t i = 0; i < 6; ++i) {
        skip_blanks(t, p);
        if (i > 0) {
            if (!consume(t, p, ",")) return false;
            skip_blanks(t, p);
        }
        if (!consume(t, p, "0x") || !read_hex_var(t, p, v[i])) return false;
    }
    skip_blanks(t, p);
    if (!consume(t, p, ")")) return false;
    return rest_is_blank(t, p);
}

}  // namespace

Dump parse_fuchsia(string_view text, const std::string& name) {
    Dump d;
    d.format = "fuchsia";
    LeafSink sink(d);
    Lines lines(text);
    string_view line;
    while (lines.next(line)) {
        const string_view t = trim(line);
        if (!t.starts_with("DEFINE_CPUID_VALUES")) continue;  // licence comment, blank lines
        std::array<uint32_t, 6> v{};
        if (!parse_fuchsia_line(t, v))
            fail(name, lines.number(),
                 "malformed DEFINE_CPUID_VALUES line (expected (leaf, subleaf, eax, ebx, ecx, edx) in 0x hex)");
        sink.add(v[0], v[1], v[2], v[3], v[4], v[5]);
    }
    require_registers(d, name, "Fuchsia CPUID file");
    d.logical_cpus = 1;
    return d;
}

// ---------------------------------------------------------------- IC Book Labs

namespace {

bool is_dash_rule(string_view t) {
    return t.size() >= 10 && t.find_first_not_of('-') == string_view::npos;
}

}  // namespace

bool is_icbook_header(string_view t) {
    return t.starts_with("Function") && t.find("Subfunction") != string_view::npos &&
           t.find("EAX") != string_view::npos && t.find("EDX") != string_view::npos;
}

Dump parse_icbook(string_view text, const std::string& name) {
    Dump d;
    d.format = "icbooklabs";
    LeafSink sink(d);
    Lines lines(text);
    string_view line;
    enum { kBefore, kRule, kRows } state = kBefore;
    while (lines.next(line)) {
        const string_view t = trim(line);
        if (state == kBefore) {
            if (is_icbook_header(t)) state = kRule;
            continue;
        }
        if (state == kRule) {
            if (t.empty()) continue;
            if (!is_dash_rule(t)) fail(name, lines.number(), "IC Book Labs dump table: expected a line of dashes under the header");
            state = kRows;
            continue;
        }
        if (is_dash_rule(t)) break;  // end of the first table; later ones are decodes
        if (t.empty()) continue;
        std::array<uint32_t, 7> v{};
        size_t p = 0;
        bool ok = true;
        for (size_t i = 0; i < 7 && ok; ++i) {
            if (i > 0) {
                const size_t before = p;
                skip_blanks(t, p);
                ok = p > before;
            }
            ok = ok && read_hex_exact(t, p, 8, v[i]);
        }
        if (!ok || p != t.size())
            fail(name, lines.number(),
                 "malformed IC Book Labs dump row (expected function, subfunction, pass, EAX, EBX, ECX, EDX "
                 "as 8 hex digits each)");
        sink.add(v[0], v[1], v[3], v[4], v[5], v[6]);
    }
    if (state == kRule) fail(name, 0, "IC Book Labs report: the CPUID dump table header has no table under it");
    require_registers(d, name, "IC Book Labs report");
    d.logical_cpus = 1;
    return d;
}

}  // namespace kvmready::cpuid::detail
