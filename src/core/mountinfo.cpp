#include "core/mountinfo.hpp"

#include <algorithm>
#include <sstream>

#include "host/host.hpp"
#include "util/text.hpp"

namespace kvmready {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mount(const std::string& s) {
    auto octal = [](char c) { return c >= '0' && c <= '7'; };
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
            out.push_back(static_cast<char>(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0')));
            i += 3;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

bool path_under(const std::string& path, const std::string& mp) {
    if (mp == "/") return true;
    return path == mp || (path.rfind(mp, 0) == 0 && path.size() > mp.size() && path[mp.size()] == '/');
}

}  // namespace

std::vector<Mount> parse_mountinfo(const std::string& text) {
    // Fields: id parent maj:min root mountpoint options [optional...] - fstype source superoptions
    std::vector<Mount> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        const auto w = util::words(line);
        if (w.size() < 7) continue;
        const auto dash = std::find(w.begin() + 6, w.end(), "-");
        if (dash == w.end() || dash + 1 == w.end()) continue;
        Mount m;
        m.devnum = w[2];
        m.entry.mountpoint = unescape_mount(w[4]);
        m.entry.fstype = *(dash + 1);
        if (dash + 2 < w.end()) m.entry.source = unescape_mount(*(dash + 2));
        if (dash + 3 < w.end()) m.entry.super_options = *(dash + 3);
        out.push_back(std::move(m));
    }
    return out;
}

MountTable read_mount_table(const host::Host& h) {
    MountTable t;
    if (auto text = h.read_file("/proc/self/mountinfo")) {
        t.read = true;
        t.mounts = parse_mountinfo(*text);
    }
    return t;
}

const Mount* mount_covering(const std::vector<Mount>& mounts, const std::string& path) {
    const Mount* best = nullptr;
    for (const auto& m : mounts)
        if (path_under(path, m.entry.mountpoint) && (!best || m.entry.mountpoint.size() >= best->entry.mountpoint.size())) best = &m;
    return best;
}

}  // namespace kvmready
