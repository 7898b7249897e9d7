#pragma once
// Small text helpers shared by the probes, the smoke test and the fixes.
#include <algorithm>
#include <cctype>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace kvmready::util {

// s without leading and trailing whitespace.
inline std::string trim(std::string s) {
    auto not_space = [](unsigned char c) { return !std::isspace(c); };
    s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
    s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
    return s;
}

// The items of v with sep between them. Empty items before the first
// non-empty one add no separator ("", "a" joins to "a").
inline std::string join(const std::vector<std::string>& v, std::string_view sep) {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

// Each line followed by a newline: the text of a file made of these lines.
inline std::string join_lines(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

// Does the sep-separated list hold word as one of its items?
inline bool has_word(const std::string& list, const std::string& word, char sep = ' ') {
    size_t pos = 0;
    while (pos <= list.size()) {
        size_t end = list.find(sep, pos);
        if (end == std::string::npos) end = list.size();
        if (list.compare(pos, end - pos, word) == 0) return true;
        pos = end + 1;
    }
    return false;
}

// s in ASCII lower case (kernel and firmware strings; no locale).
inline std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// The whitespace-separated words of s.
inline std::vector<std::string> words(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (std::isspace(static_cast<unsigned char>(c))) {
            if (!cur.empty()) out.push_back(cur), cur.clear();
        } else cur.push_back(c);
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

// s as XML character data or an attribute value (either quote).
inline std::string xml_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '\'': o += "&apos;"; break;
            case '"': o += "&quot;"; break;
            default: o += c;
        }
    }
    return o;
}

// One word as a POSIX shell reads it back: as is when it holds only safe
// characters, else in single quotes. For commands shown to people, never run.
// '%' is safe: it is special only to job-control builtins (fg %1), which see
// it after quote removal anyway, so quoting it would only add noise.
inline std::string shell_quote(const std::string& s) {
    if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,") == std::string::npos)
        return s;
    std::string o = "'";
    for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return o + "'";
}

// The directory part of an absolute path ("/" for "/x"), and the last part.
inline std::string dirname_of(const std::string& p) {
    const auto slash = p.rfind('/');
    return slash == std::string::npos || slash == 0 ? "/" : p.substr(0, slash);
}
inline std::string basename_of(const std::string& p) {
    const auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace kvmready::util
