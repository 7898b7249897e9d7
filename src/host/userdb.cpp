// Parsing /etc/passwd and /etc/group for hosts recorded as directory trees,
// where the running system's NSS would answer about the wrong machine.
#include <charconv>
#include <sstream>

#include "host/host.hpp"

namespace kvmready::host {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    out.push_back(cur);
    return out;
}

std::optional<uint32_t> to_id(const std::string& s) {
    uint32_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

template <typename Match>
std::optional<User> lookup(const std::string& passwd, const std::string& group, Match match) {
    std::istringstream in(passwd);
    std::string line;
    std::optional<User> user;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto f = split(line, ':');
        if (f.size() < 4) continue;
        auto uid = to_id(f[2]);
        auto gid = to_id(f[3]);
        if (!uid || !gid || !match(f[0], *uid)) continue;
        user = User{f[0], *uid, *gid, {}};
        break;
    }
    if (!user) return std::nullopt;
    std::istringstream gin(group);
    while (std::getline(gin, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto f = split(line, ':');
        if (f.size() < 4) continue;
        auto gid = to_id(f[2]);
        if (!gid) continue;
        bool member = *gid == user->gid;
        for (const auto& m : split(f[3], ','))
            if (m == user->name) member = true;
        if (member) user->groups.push_back(Group{*gid, f[0]});
    }
    return user;
}

}  // namespace

std::optional<User> lookup_user_in_db(const std::string& passwd, const std::string& group, const std::string& name) {
    return lookup(passwd, group, [&](const std::string& n, uint32_t) { return n == name; });
}

std::optional<User> lookup_uid_in_db(const std::string& passwd, const std::string& group, uint32_t uid) {
    return lookup(passwd, group, [&](const std::string&, uint32_t u) { return u == uid; });
}

}  // namespace kvmready::host
