// Text that is not UTF-8 (firmware strings in DMI or the CPU brand, a
// hostname, a daemon's reply) carried into every output format without loss.
//
// The one scheme, everywhere (JSON, text, bundles): every byte that is not
// part of a valid UTF-8 sequence is written as the four characters \xHH
// (lowercase hex), and a backslash that is followed by "x" is written as
// \x5c, so that replacing every \xHH by the byte HH gives back the original
// bytes exactly. Valid UTF-8 without "\x" is unchanged. Documented in
// kvmready(1), ENCODING.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kvmready::util {

// Length of the valid UTF-8 sequence starting at s[i], 0 if it is not one
// (overlong forms, surrogates and code points past U+10FFFF are not).
size_t utf8_sequence_length(std::string_view s, size_t i);

// True when s needs escaping (an invalid byte or a "\x").
bool needs_byte_escape(std::string_view s);

// s in the scheme above.
std::string escape_bytes(std::string_view s);

// The original bytes back from escape_bytes' output.
std::string unescape_bytes(std::string_view s);

namespace detail {
template <typename Json>
void escape_json_strings(Json& j) {
    if (j.is_string()) {
        auto& s = j.template get_ref<typename Json::string_t&>();
        if (needs_byte_escape(s)) s = escape_bytes(s);
    } else if (j.is_array()) {
        for (auto& e : j) escape_json_strings(e);
    } else if (j.is_object()) {
        Json out = Json::object();
        for (auto it = j.begin(); it != j.end(); ++it) {
            Json v = it.value();
            escape_json_strings(v);
            out[needs_byte_escape(it.key()) ? escape_bytes(it.key()) : it.key()] = std::move(v);
        }
        j = std::move(out);
    }
}
}  // namespace detail

// j.dump(indent) with every string (values and keys) in the scheme above:
// nlohmann refuses to dump bytes that are not UTF-8 (type_error 316).
template <typename Json>
std::string dump_json(const Json& j, int indent = -1) {
    try {
        std::string out = j.dump(indent);
        // A backslash in a string is dumped as two: "\\x" in the text means a
        // "\x" that the scheme must escape.
        if (out.find("\\\\x") == std::string::npos) return out;
    } catch (const nlohmann::json::type_error&) {
    }
    Json copy = j;
    detail::escape_json_strings(copy);
    return copy.dump(indent);
}

}  // namespace kvmready::util
