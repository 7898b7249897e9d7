// The structured CPUID dump formats: RJCP XML and Firecracker fingerprint
// JSON (the corpus FORMATS.md).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cpuid/formats.hpp"
#include "cpuid/lexing.hpp"

namespace kvmready::cpuid::detail {

using std::string_view;

// ---------------------------------------------------------------- RJCP XML

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

}  // namespace kvmready::cpuid::detail
