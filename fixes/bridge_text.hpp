// Text helpers shared by net.bridge's configuration dialects
// (fixes/bridge_{ifupdown,networkd,netplan,nm}.cpp).
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "util/text.hpp"

namespace kvmready::fix::bridge::text {

using util::basename_of;
using util::dirname_of;
using util::trim;
using util::words;

inline std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

inline std::string join_lines(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

inline bool ends_with(const std::string& s, const std::string& suffix) { return s.ends_with(suffix); }

inline bool is_blank_or_comment(const std::string& l) {
    const std::string t = trim(l);
    return t.empty() || t[0] == '#';
}

}  // namespace kvmready::fix::bridge::text
