#include "report/redact.hpp"

#include <cctype>

#include <fmt/format.h>

namespace kvmready::report {

namespace {

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }
bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Addresses that identify nobody and that configurations need verbatim.
bool keep_ipv4(const std::string& ip) {
    return ip == "0.0.0.0" || ip.rfind("127.", 0) == 0 || ip.rfind("255.", 0) == 0 || ip.rfind("192.0.2.", 0) == 0 ||
           ip.rfind("198.51.100.", 0) == 0 || ip.rfind("203.0.113.", 0) == 0 || ip.rfind("224.", 0) == 0;
}

}  // namespace

void Redactor::add_hostname(const std::string& name) {
    if (name.empty() || name == "localhost" || name == "(none)") return;
    if (!hostnames_.count(name)) hostnames_[name] = token_for("hostname", name);
}

void Redactor::add_user(const std::string& name) {
    if (name.empty() || name == "root") return;
    if (!users_.count(name)) users_[name] = token_for("user", name);
}

std::string Redactor::token_for(const std::string& kind, const std::string& value) {
    auto& m = by_kind_[kind];
    if (auto it = m.find(value); it != m.end()) return it->second;
    const size_t n = m.size() + 1;
    std::string t;
    if (kind == "hostname") t = fmt::format("redacted-host-{}", n);
    else if (kind == "user") t = fmt::format("user{}", n);
    // TEST-NET-2 (RFC 5737) keeps redacted IPv4 addresses valid and never routable.
    else if (kind == "ipv4") t = fmt::format("198.51.{}.{}", 100 + n / 250, 1 + n % 250);
    else if (kind == "ipv6") t = fmt::format("2001:db8::{:x}", n);
    // Locally administered, unicast.
    else if (kind == "mac") t = fmt::format("02:00:00:00:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff);
    else if (kind == "uuid") t = fmt::format("00000000-0000-4000-8000-{:012x}", n);
    else t = fmt::format("redacted-{}-{}", kind, n);
    m[value] = t;
    return t;
}

std::string Redactor::replace_words(const std::string& text, const std::map<std::string, std::string>& words) {
    if (words.empty()) return text;
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
        bool replaced = false;
        if (is_word_char(text[i]) && (i == 0 || !is_word_char(text[i - 1]))) {
            size_t j = i;
            while (j < text.size() && is_word_char(text[j])) ++j;
            // Whole words only: "al" must not eat "alice" or "virtual".
            if (auto it = words.find(text.substr(i, j - i)); it != words.end()) {
                out += it->second;
                i = j;
                replaced = true;
            }
        }
        if (!replaced) out += text[i++];
    }
    return out;
}

std::string Redactor::replace_ipv4(const std::string& text) {
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
        if (std::isdigit(static_cast<unsigned char>(text[i])) && (i == 0 || (!std::isalnum(static_cast<unsigned char>(text[i - 1])) && text[i - 1] != '.'))) {
            size_t j = i;
            int parts = 0;
            bool ok = true;
            while (parts < 4) {
                size_t k = j;
                int v = 0;
                while (k < text.size() && std::isdigit(static_cast<unsigned char>(text[k])) && k - j < 3) v = v * 10 + (text[k++] - '0');
                if (k == j || v > 255) { ok = false; break; }
                j = k;
                ++parts;
                if (parts < 4) {
                    if (j < text.size() && text[j] == '.') ++j;
                    else { ok = false; break; }
                }
            }
            // Not part of a longer dotted number (a version string like 6.1.0.56.2).
            if (ok && parts == 4 && (j >= text.size() || (!std::isdigit(static_cast<unsigned char>(text[j])) &&
                                                           !(text[j] == '.' && j + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[j + 1])))))) {
                const std::string ip = text.substr(i, j - i);
                out += keep_ipv4(ip) ? ip : token_for("ipv4", ip);
                i = j;
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

std::string Redactor::replace_macs(const std::string& text) {
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
        if (i + 17 <= text.size() && (i == 0 || !is_hex(text[i - 1]))) {
            bool ok = true;
            for (size_t k = 0; k < 17 && ok; ++k) ok = (k % 3 == 2) ? text[i + k] == ':' : is_hex(text[i + k]);
            if (ok && (i + 17 == text.size() || (!is_hex(text[i + 17]) && text[i + 17] != ':'))) {
                std::string mac = text.substr(i, 17);
                for (auto& c : mac) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                out += (mac == "00:00:00:00:00:00" || mac == "ff:ff:ff:ff:ff:ff") ? mac : token_for("mac", mac);
                i += 17;
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

std::string Redactor::replace_ipv6(const std::string& text) {
    // Candidates: runs of hex digits and colons with at least two colons and
    // one hex group of 1-4 digits, e.g. fe80::1c2d:ff:fe00:1 or 2a01:4f8::2.
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
        if ((is_hex(text[i]) || text[i] == ':') && (i == 0 || (!is_hex(text[i - 1]) && text[i - 1] != ':' && !std::isalnum(static_cast<unsigned char>(text[i - 1]))))) {
            size_t j = i;
            int colons = 0, run = 0, max_run = 0;
            bool double_colon = false;
            while (j < text.size() && (is_hex(text[j]) || text[j] == ':')) {
                if (text[j] == ':') {
                    ++colons;
                    if (j + 1 < text.size() && text[j + 1] == ':') double_colon = true;
                    run = 0;
                } else {
                    max_run = std::max(max_run, ++run);
                }
                ++j;
            }
            const std::string cand = text.substr(i, j - i);
            const bool looks = colons >= 2 && max_run <= 4 && (double_colon ? colons <= 7 : colons == 7) &&
                               cand != "::" && cand.find(":::") == std::string::npos && !(j < text.size() && std::isalnum(static_cast<unsigned char>(text[j])));
            if (looks) {
                std::string lower = cand;
                for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                const bool keep = lower == "::1" || lower.rfind("2001:db8:", 0) == 0 || lower.rfind("ff0", 0) == 0;
                out += keep ? cand : token_for("ipv6", lower);
                i = j;
                continue;
            }
            out += text.substr(i, j - i);
            i = j;
            continue;
        }
        out += text[i++];
    }
    return out;
}

std::string Redactor::replace_uuids(const std::string& text) {
    std::string out;
    size_t i = 0;
    static constexpr int kGroups[] = {8, 4, 4, 4, 12};
    while (i < text.size()) {
        if (i + 36 <= text.size() && (i == 0 || !is_hex(text[i - 1]))) {
            size_t k = i;
            bool ok = true;
            for (int g = 0; g < 5 && ok; ++g) {
                for (int n = 0; n < kGroups[g] && ok; ++n) ok = is_hex(text[k++]);
                if (ok && g < 4) ok = text[k++] == '-';
            }
            if (ok && (k == text.size() || !is_hex(text[k]))) {
                out += token_for("uuid", text.substr(i, 36));
                i = k;
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

std::string Redactor::apply(const std::string& text) {
    std::string s = replace_macs(text);  // before IPv6: a MAC also looks like hex and colons
    s = replace_uuids(s);
    s = replace_ipv6(s);
    s = replace_ipv4(s);
    s = replace_words(s, hostnames_);
    s = replace_words(s, users_);
    return s;
}

nlohmann::ordered_json Redactor::summary() const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (const auto& [kind, m] : by_kind_) {
        nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
        for (const auto& [_, t] : m) tokens.push_back(t);
        j[kind] = {{"count", m.size()}, {"tokens", tokens}};
    }
    return j;
}

}  // namespace kvmready::report
