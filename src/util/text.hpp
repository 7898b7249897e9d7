#pragma once
// Small text helpers shared by the probes.
#include <algorithm>
#include <cctype>
#include <string>

namespace kvmready::util {

// s without leading and trailing whitespace.
inline std::string trim(std::string s) {
    auto not_space = [](unsigned char c) { return !std::isspace(c); };
    s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
    s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
    return s;
}

}  // namespace kvmready::util
