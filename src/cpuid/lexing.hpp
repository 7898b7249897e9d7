// Lexing helpers shared by the CPUID dump parsers (parse.cpp and
// formats_*.cpp): hex fields, blanks, numbered lines, and the sinks that keep
// the first logical CPU's leaves. Internal to src/cpuid.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include "cpuid/cpuid.hpp"

namespace kvmready::cpuid::detail {

using std::string_view;

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

inline size_t hex_run(string_view s, size_t pos) {
    size_t n = 0;
    while (pos + n < s.size() && hex_digit(s[pos + n]) >= 0) ++n;
    return n;
}

// Reads exactly `n` hex digits at `pos` that are not followed by another hex
// digit (so a garbled 9-digit value is not silently cut to 8).
inline bool read_hex_exact(string_view s, size_t& pos, size_t n, uint32_t& out) {
    if (hex_run(s, pos) != n) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 4) | static_cast<uint32_t>(hex_digit(s[pos + i]));
    out = v;
    pos += n;
    return true;
}

// 1..8 hex digits (hwloc and the Firecracker leaf strings drop leading zeros).
inline bool read_hex_var(string_view s, size_t& pos, uint32_t& out) {
    const size_t n = hex_run(s, pos);
    if (n == 0 || n > 8) return false;
    return read_hex_exact(s, pos, n, out);
}

inline void skip_blanks(string_view s, size_t& pos) {
    while (pos < s.size() && is_blank(s[pos])) ++pos;
}

inline string_view trim_left(string_view s) {
    size_t i = 0;
    while (i < s.size() && is_blank(s[i])) ++i;
    return s.substr(i);
}

inline string_view trim(string_view s) {
    s = trim_left(s);
    while (!s.empty() && (is_blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

inline bool consume(string_view s, size_t& pos, string_view lit) {
    if (s.substr(pos, lit.size()) != lit) return false;
    pos += lit.size();
    return true;
}

inline bool rest_is_blank(string_view s, size_t pos) {
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

inline bool is_test_separator(string_view line) {
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

[[noreturn]] inline void fail(const std::string& name, int line, const std::string& msg) {
    throw ParseError(name, line, msg);
}

inline void require_registers(const Dump& d, const std::string& name, string_view what) {
    if (d.leaves.empty())
        fail(name, 0, fmt::format("{} has no register lines", what));
}
}  // namespace kvmready::cpuid::detail
