// Parsers for every CPUID dump format listed in the corpus FORMATS.md.
//
// All line formats are hand-parsed: the largest InstLatX64 dumps are several
// MB with tens of thousands of register lines, and std::regex would dominate
// the run time. Each parser is strict about lines that claim to be register
// lines (a cut-off or garbled one is an error naming its line) and lenient
// about everything else, because the text reports wrap the registers in
// free-form prose we have no use for.
#include "cpuid/cpuid.hpp"

#include <algorithm>
#include <array>
#include <set>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

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

// ---------------------------------------------------------------- lexing helpers

inline int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

inline bool is_blank(char c) { return c == ' ' || c == '\t'; }
inline bool is_alnum(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

size_t hex_run(string_view s, size_t pos) {
    size_t n = 0;
    while (pos + n < s.size() && hex_digit(s[pos + n]) >= 0) ++n;
    return n;
}

// Reads exactly `n` hex digits at `pos` that are not followed by another hex
// digit (so a garbled 9-digit value is not silently cut to 8).
bool read_hex_exact(string_view s, size_t& pos, size_t n, uint32_t& out) {
    if (hex_run(s, pos) != n) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 4) | static_cast<uint32_t>(hex_digit(s[pos + i]));
    out = v;
    pos += n;
    return true;
}

// 1..8 hex digits (hwloc and the Firecracker leaf strings drop leading zeros).
bool read_hex_var(string_view s, size_t& pos, uint32_t& out) {
    const size_t n = hex_run(s, pos);
    if (n == 0 || n > 8) return false;
    return read_hex_exact(s, pos, n, out);
}

void skip_blanks(string_view s, size_t& pos) {
    while (pos < s.size() && is_blank(s[pos])) ++pos;
}

string_view trim_left(string_view s) {
    size_t i = 0;
    while (i < s.size() && is_blank(s[i])) ++i;
    return s.substr(i);
}

string_view trim(string_view s) {
    s = trim_left(s);
    while (!s.empty() && (is_blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool consume(string_view s, size_t& pos, string_view lit) {
    if (s.substr(pos, lit.size()) != lit) return false;
    pos += lit.size();
    return true;
}

bool rest_is_blank(string_view s, size_t pos) {
    for (; pos < s.size(); ++pos)
        if (!is_blank(s[pos])) return false;
    return true;
}

// Iterates lines with 1-based numbers; strips a trailing CR (CRLF files).
class Lines {
public:
    explicit Lines(string_view text) : text_(text) {}
    bool next(string_view& line) {
        if (done_) return false;
        const size_t nl = text_.find('\n', pos_);
        if (nl == string_view::npos) {
            line = text_.substr(pos_);
            done_ = true;
        } else {
            line = text_.substr(pos_, nl - pos_);
            pos_ = nl + 1;
            done_ = pos_ == text_.size();  // a final "\n" does not open another line
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        ++no_;
        return true;
    }
    [[nodiscard]] int number() const { return no_; }

private:
    string_view text_;
    size_t pos_ = 0;
    int no_ = 0;
    bool done_ = false;
};

bool is_test_separator(string_view line) {
    return line.size() == 80 && line.find_first_not_of('-') == string_view::npos;
}

// Collects the first logical CPU's leaves, keeping the first value seen for
// each (leaf, subleaf): duplicated "[SL 3E]" lines and the overlapping
// libcpuid arrays (basic_cpuid[4] vs intel_fn4[0]) must not override it.
class LeafSink {
public:
    explicit LeafSink(Dump& d) : d_(d) {}
    void add(uint32_t leaf, uint32_t sub, uint32_t a, uint32_t b, uint32_t c, uint32_t e) {
        if (!seen_.insert(key(leaf, sub)).second) return;
        d_.leaves.push_back(Leaf{leaf, sub, a, b, c, e});
    }

private:
    static uint64_t key(uint32_t leaf, uint32_t sub) { return (uint64_t{leaf} << 32) | sub; }
    Dump& d_;
    std::set<uint64_t> seen_;
};

// Tracks logical-CPU blocks: only the first block with register lines feeds
// the dump, later ones are still validated and counted.
class Blocks {
public:
    void start() {
        if (has_regs_) first_done_ = true;
        has_regs_ = false;
        has_leaf0_ = false;
        occurrences_.clear();
    }
    // Returns the occurrence index of `leaf` in this block (0 for the first).
    uint32_t note(uint32_t leaf) {
        if (!has_regs_) ++count_;
        has_regs_ = true;
        if (leaf == 0) has_leaf0_ = true;
        return occurrences_[leaf]++;
    }
    [[nodiscard]] bool has_leaf0() const { return has_leaf0_; }
    [[nodiscard]] bool collecting() const { return !first_done_; }
    [[nodiscard]] int count() const { return count_; }
    [[nodiscard]] bool any() const { return count_ > 0; }

private:
    bool has_regs_ = false;
    bool has_leaf0_ = false;
    bool first_done_ = false;
    int count_ = 0;
    std::unordered_map<uint32_t, uint32_t> occurrences_;
};

[[noreturn]] void fail(const std::string& name, int line, const std::string& msg) {
    throw ParseError(name, line, msg);
}

void require_registers(const Dump& d, const std::string& name, string_view what) {
    if (d.leaves.empty())
        fail(name, 0, fmt::format("{} has no register lines", what));
}

// ---------------------------------------------------------------- cpuid -r

// "CPU:" (cpuid -1) or "CPU <n>:"; AIDA's InstLatX64 copies of such dumps use it too.
bool is_cpu_n_header(string_view t) {
    t = trim(t);
    if (t.size() < 4 || t.substr(0, 3) != "CPU" || t.back() != ':') return false;
    string_view mid = trim(t.substr(3, t.size() - 4));
    return std::all_of(mid.begin(), mid.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "0x<hex> 0x<hex>:" or "0x<hex>:" at the start of the (trimmed) line.
bool looks_like_cpuid_r_line(string_view t) {
    size_t p = 0;
    if (!consume(t, p, "0x") || hex_run(t, p) == 0) return false;
    p += hex_run(t, p);
    return consume(t, p, " 0x") || consume(t, p, ":");
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

bool looks_like_aida_line(string_view t) {
    if (!t.starts_with("CPUID") || t.size() < 6 || !is_blank(t[5])) return false;
    size_t p = 5;
    skip_blanks(t, p);
    return is_index_field(t, p);
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

bool looks_like_libcpuid_line(string_view t) {
    string_view key;
    return split_libcpuid_line(t, key) && libcpuid_key(key).has_value();
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

bool looks_like_hwloc_line(string_view t) {
    if (t.starts_with("# mask e[abcd]x")) return true;
    return !t.empty() && hex_digit(t[0]) >= 0 && t.find("=>") != string_view::npos;
}

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

bool is_icbook_header(string_view t) {
    return t.starts_with("Function") && t.find("Subfunction") != string_view::npos &&
           t.find("EAX") != string_view::npos && t.find("EDX") != string_view::npos;
}

bool is_dash_rule(string_view t) {
    return t.size() >= 10 && t.find_first_not_of('-') == string_view::npos;
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

// ---------------------------------------------------------------- RJCP XML

int line_of(string_view text, size_t offset) {
    return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(std::min(offset, text.size())), '\n'));
}

// Value of attribute `attr` inside a start tag (`tag` excludes '<' and '>').
std::optional<string_view> xml_attr(string_view tag, string_view attr) {
    size_t p = 0;
    while ((p = tag.find(attr, p)) != string_view::npos) {
        const bool word_start = p > 0 && (is_blank(tag[p - 1]) || tag[p - 1] == '\n' || tag[p - 1] == '\r');
        size_t q = p + attr.size();
        while (q < tag.size() && is_blank(tag[q])) ++q;
        if (word_start && q < tag.size() && tag[q] == '=') {
            ++q;
            while (q < tag.size() && is_blank(tag[q])) ++q;
            if (q >= tag.size() || (tag[q] != '"' && tag[q] != '\'')) return std::nullopt;
            const char quote = tag[q];
            const size_t end = tag.find(quote, q + 1);
            if (end == string_view::npos) return std::nullopt;
            return tag.substr(q + 1, end - q - 1);
        }
        p += attr.size();
    }
    return std::nullopt;
}

bool hex8_field(string_view s, uint32_t& v) {
    s = trim(s);
    size_t p = 0;
    return read_hex_exact(s, p, 8, v) && p == s.size();
}

// Hand-rolled scan rather than an XML library: the files are flat, written by
// one tool, and only <processor> and <register> elements matter.
Dump parse_rjcp_xml(string_view text, const std::string& name) {
    Dump d;
    d.format = "rjcp-xml";
    LeafSink sink(d);
    if (text.find("<cpuid") == string_view::npos)
        fail(name, 0, "XML document is not an RJCP CpuId dump (no <cpuid> root element)");
    Blocks blocks;
    size_t p = 0;
    while ((p = text.find('<', p)) != string_view::npos) {
        const size_t close = text.find('>', p);
        if (close == string_view::npos) fail(name, line_of(text, p), "unterminated XML tag");
        const string_view tag = text.substr(p + 1, close - p - 1);
        auto is_elem = [&](string_view el) {
            return tag.starts_with(el) && (tag.size() == el.size() || is_blank(tag[el.size()]) ||
                                           tag[el.size()] == '/' || tag[el.size()] == '\n' ||
                                           tag[el.size()] == '\r');
        };
        if (is_elem("processor")) {
            blocks.start();
        } else if (is_elem("register")) {
            // Counting lines is only worth it when there is an error to report.
            const size_t at = p;
            const auto ln = [&] { return line_of(text, at); };
            const auto eax = xml_attr(tag, "eax");
            const auto ecx = xml_attr(tag, "ecx");
            uint32_t leaf = 0, sub = 0;
            if (!eax || !ecx || !hex8_field(*eax, leaf) || !hex8_field(*ecx, sub))
                fail(name, ln(), "malformed <register> element (expected eax=\"<8 hex>\" ecx=\"<8 hex>\")");
            const size_t end = text.find("</register>", close);
            const size_t next_tag = text.find('<', close + 1);
            if (end == string_view::npos || next_tag != end)
                fail(name, ln(), "<register> element without a matching </register>");
            const string_view body = text.substr(close + 1, end - close - 1);
            std::array<uint32_t, 4> r{};
            size_t start = 0;
            bool ok = true;
            for (size_t i = 0; i < 4 && ok; ++i) {
                const size_t comma = i < 3 ? body.find(',', start) : body.size();
                ok = comma != string_view::npos && hex8_field(body.substr(start, comma - start), r[i]);
                start = comma + 1;
            }
            if (!ok)
                fail(name, ln(), "malformed <register> value (expected EAX,EBX,ECX,EDX as 8 hex digits each)");
            blocks.note(leaf);
            if (blocks.collecting()) sink.add(leaf, sub, r[0], r[1], r[2], r[3]);
            p = end + 1;
            continue;
        }
        p = close + 1;
    }
    require_registers(d, name, "RJCP CpuId XML");
    d.logical_cpus = blocks.count();
    return d;
}

// ---------------------------------------------------------------- Firecracker JSON

uint64_t parse_bitmap(const std::string& bits, size_t width, const std::string& name, const std::string& where) {
    if (bits.size() != width + 2 || bits.substr(0, 2) != "0b")
        fail(name, 0, fmt::format("{}: bitmap must be '0b' followed by {} binary digits", where, width));
    uint64_t v = 0;
    for (size_t i = 2; i < bits.size(); ++i) {
        const char c = bits[i];
        if (c == 'x' || c == 'X')
            fail(name, 0,
                 fmt::format("{}: bitmap has don't-care bits ('x'): this is a Firecracker CPU template, "
                             "not a fingerprint of real CPUID values",
                             where));
        if (c != '0' && c != '1') fail(name, 0, fmt::format("{}: bitmap has a non-binary digit", where));
        v = (v << 1) | static_cast<uint64_t>(c - '0');
    }
    return v;
}

uint32_t json_hex(const nlohmann::json& j, const char* key, const std::string& name, const std::string& where) {
    if (!j.contains(key) || !j[key].is_string()) fail(name, 0, fmt::format("{}: missing \"{}\" string", where, key));
    const std::string s = j[key].get<std::string>();
    size_t p = 0;
    uint32_t v = 0;
    if (!consume(s, p, "0x") || !read_hex_var(s, p, v) || p != s.size())
        fail(name, 0, fmt::format("{}: \"{}\" is not a 0x hex number: {}", where, key, s));
    return v;
}

Dump parse_firecracker(string_view text, const std::string& name) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::parse_error& e) {
        fail(name, line_of(text, e.byte > 0 ? e.byte - 1 : 0), fmt::format("invalid JSON: {}", e.what()));
    } catch (const nlohmann::json::exception& e) {
        // out_of_range: a number too large for any type (1e999).
        fail(name, 0, fmt::format("invalid JSON: {}", e.what()));
    }
    if (!j.is_object()) fail(name, 0, "JSON document is not a Firecracker CPU fingerprint");
    if (!j.contains("guest_cpu_config")) {
        if (j.contains("cpuid_modifiers"))
            fail(name, 0,
                 "this is a Firecracker CPU template (partial bit masks), not a fingerprint; use "
                 "cpu-template-helper fingerprint dump, or cpuid -r on the host");
        fail(name, 0, "JSON document is not a Firecracker CPU fingerprint (no \"guest_cpu_config\")");
    }
    const auto& cfg = j["guest_cpu_config"];
    if (!cfg.is_object() || !cfg.contains("cpuid_modifiers") || !cfg["cpuid_modifiers"].is_array())
        fail(name, 0, "Firecracker fingerprint without guest_cpu_config.cpuid_modifiers");
    Dump d;
    d.format = "firecracker-json";
    d.logical_cpus = 1;
    LeafSink sink(d);
    size_t n = 0;
    for (const auto& m : cfg["cpuid_modifiers"]) {
        const std::string where = fmt::format("cpuid_modifiers[{}]", n++);
        if (!m.is_object()) fail(name, 0, where + ": not an object");
        const uint32_t leaf = json_hex(m, "leaf", name, where);
        const uint32_t sub = json_hex(m, "subleaf", name, where);
        std::array<uint32_t, 4> r{};
        std::array<bool, 4> have{};
        if (!m.contains("modifiers") || !m["modifiers"].is_array()) fail(name, 0, where + ": no \"modifiers\" array");
        for (const auto& reg : m["modifiers"]) {
            if (!reg.is_object() || !reg.contains("register") || !reg["register"].is_string() ||
                !reg.contains("bitmap") || !reg["bitmap"].is_string())
                fail(name, 0, where + ": modifier without \"register\"/\"bitmap\" strings");
            const std::string rn = reg["register"].get<std::string>();
            static constexpr std::array<const char*, 4> kRegs = {"eax", "ebx", "ecx", "edx"};
            const auto it = std::find_if(kRegs.begin(), kRegs.end(), [&](const char* s) { return rn == s; });
            if (it == kRegs.end()) fail(name, 0, fmt::format("{}: unknown register \"{}\"", where, rn));
            const auto idx = static_cast<size_t>(it - kRegs.begin());
            r[idx] = static_cast<uint32_t>(parse_bitmap(reg["bitmap"].get<std::string>(), 32, name, where + "." + rn));
            have[idx] = true;
        }
        // A fingerprint lists all four registers; a missing one would read as 0.
        if (!std::all_of(have.begin(), have.end(), [](bool b) { return b; }))
            fail(name, 0, where + ": not all of eax, ebx, ecx, edx are given");
        sink.add(leaf, sub, r[0], r[1], r[2], r[3]);
    }
    if (cfg.contains("msr_modifiers") && cfg["msr_modifiers"].is_array()) {
        n = 0;
        for (const auto& m : cfg["msr_modifiers"]) {
            const std::string where = fmt::format("msr_modifiers[{}]", n++);
            if (!m.is_object() || !m.contains("bitmap") || !m["bitmap"].is_string())
                fail(name, 0, where + ": no \"bitmap\" string");
            const uint32_t addr = json_hex(m, "addr", name, where);
            d.msrs.emplace(addr, parse_bitmap(m["bitmap"].get<std::string>(), 64, name, where));
        }
    }
    require_registers(d, name, "Firecracker fingerprint");
    return d;
}

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
