// net.bridge for ifupdown (and ifupdown2): the bridge's stanza in
// interfaces.d (or appended to /etc/network/interfaces), the uplink's stanzas
// turned into `inet manual` with their options moved to the bridge.
#include <algorithm>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "core/facts_config.hpp"
#include "fixes/bridge.hpp"
#include "fixes/bridge_text.hpp"

namespace kvmready::fix::bridge {

using namespace text;

// ---- ifupdown -------------------------------------------------------------------

namespace {

struct IfFile {
    std::string path;
    std::vector<std::string> lines;
};

struct Stanza {
    size_t file = 0;
    size_t begin = 0, end = 0;  // lines [begin, end): header and options (trailing comments/blank lines excluded)
    std::vector<std::string> head;  // words of the first line
};

bool is_keyword(const std::string& w) {
    return w == "iface" || w == "mapping" || w == "auto" || w.rfind("allow-", 0) == 0 || w == "source" || w == "source-directory" ||
           w == "source-dir" || w == "rename" || w == "no-auto-down" || w == "no-scripts";
}

std::vector<Stanza> stanzas_of(const IfFile& f, size_t index) {
    std::vector<Stanza> out;
    for (size_t i = 0; i < f.lines.size(); ++i) {
        const auto w = words(f.lines[i]);
        if (w.empty() || w[0][0] == '#' || !is_keyword(w[0])) continue;
        Stanza s{index, i, i + 1, w};
        if (w[0] == "iface" || w[0] == "mapping") {
            size_t j = i + 1;
            size_t last = i;
            for (; j < f.lines.size(); ++j) {
                const auto wj = words(f.lines[j]);
                if (!wj.empty() && wj[0][0] != '#' && is_keyword(wj[0])) break;
                if (!is_blank_or_comment(f.lines[j])) last = j;
            }
            s.end = last + 1;
        }
        out.push_back(s);
    }
    return out;
}

// /etc/network/interfaces and every file it sources, in order.
std::vector<IfFile> load_interfaces(const Target& t) {
    std::vector<IfFile> files;
    for (const auto& [path, text] : ifupdown_files(t.read, t.list)) files.push_back({path, split_lines(text)});
    return files;
}

// Does /etc/network/interfaces source /etc/network/interfaces.d/NAME?
bool sources_interfaces_d(const IfFile& main) {
    for (const auto& l : main.lines) {
        const auto w = words(l);
        if (w.size() < 2) continue;
        std::string arg = w[1];
        if (arg[0] != '/') arg = "/etc/network/" + arg;
        if (w[0] == "source" && (arg == "/etc/network/interfaces.d/*" || arg == "/etc/network/interfaces.d/*.cfg")) return arg.back() == '*';
        if ((w[0] == "source-directory" || w[0] == "source-dir") && (arg == "/etc/network/interfaces.d" || arg == "/etc/network/interfaces.d/"))
            return true;
    }
    return false;
}

bool option_names_port(const std::string& line, const std::string& port) {
    const auto w = words(line);
    if (w.empty() || (w[0] != "bridge_ports" && w[0] != "bridge-ports")) return false;
    return std::find(w.begin() + 1, w.end(), port) != w.end();
}

}  // namespace

Persist ifupdown_config(const Target& t, const std::string& bridge, const std::string& uplink, const std::string& mac) {
    Persist p;
    const std::vector<IfFile> files = load_interfaces(t);
    if (files.empty()) throw std::runtime_error("/etc/network/interfaces does not exist");
    const bool use_d = sources_interfaces_d(files[0]);
    const std::string own_path = use_d ? "/etc/network/interfaces.d/" + bridge : "/etc/network/interfaces";

    std::vector<Stanza> all;
    for (size_t i = 0; i < files.size(); ++i) {
        auto s = stanzas_of(files[i], i);
        all.insert(all.end(), s.begin(), s.end());
    }
    auto iface_of = [&](const std::string& name) {
        std::vector<const Stanza*> out;
        for (const auto& s : all)
            if (s.head.size() >= 2 && s.head[0] == "iface" && s.head[1] == name) out.push_back(&s);
        return out;
    };

    // The bridge is configured already: by us (our own file, regenerated
    // below) or by someone else (then it must name the uplink already).
    const auto br = iface_of(bridge);
    auto names_port = [&](const Stanza* s) {
        const IfFile& f = files[s->file];
        return std::any_of(f.lines.begin() + static_cast<long>(s->begin), f.lines.begin() + static_cast<long>(s->end),
                           [&](const std::string& l) { return option_names_port(l, uplink); });
    };
    if (!br.empty() && (uplink.empty() || std::any_of(br.begin(), br.end(), names_port))) {
        p.done = true;
        return p;
    }
    bool ours = false;
    for (const auto* s : br) {
        const IfFile& f = files[s->file];
        const bool own_file = f.path == "/etc/network/interfaces.d/" + bridge &&
                              std::any_of(f.lines.begin(), f.lines.end(), [](const std::string& l) { return l.find(kMarker) != std::string::npos; });
        if (own_file) {
            ours = true;  // made without the uplink: regenerated below
            continue;
        }
        throw std::runtime_error(fmt::format("{} is already configured in {} (line {}) without {} in its bridge_ports: add it there by hand",
                                             bridge, f.path, s->begin + 1, uplink));
    }

    // The uplink's stanzas: their options move to the bridge, the uplink
    // becomes `inet manual` (a bridge port carries no address).
    std::map<std::string, std::pair<std::string, std::vector<std::string>>> moved;  // family -> method, option lines
    std::map<size_t, std::vector<std::string>> edited;                              // file -> new lines
    if (!uplink.empty()) {
        auto up = iface_of(uplink);
        // Edit from the bottom so earlier line numbers stay valid.
        std::sort(up.begin(), up.end(), [](const Stanza* a, const Stanza* b) { return a->file != b->file ? a->file < b->file : a->begin > b->begin; });
        for (const auto* s : up) {
            if (s->head.size() < 4) continue;
            const std::string family = s->head[2], method = s->head[3];
            if (!edited.count(s->file)) edited[s->file] = files[s->file].lines;
            auto& lines = edited[s->file];
            std::vector<std::string> opts;
            for (size_t i = s->begin + 1; i < s->end; ++i)
                if (!is_blank_or_comment(files[s->file].lines[i])) opts.push_back(files[s->file].lines[i]);
            if (family == "inet" && method == "manual" && opts.empty()) continue;  // already a port's stanza
            moved[family] = {method, opts};
            std::vector<std::string> repl;
            if (family == "inet")
                repl.push_back(fmt::format("iface {} inet manual", uplink));
            repl.push_back(fmt::format("# {}: {} {} {} moved to {}", kMarker, uplink, family, method, bridge));
            lines.erase(lines.begin() + static_cast<long>(s->begin), lines.begin() + static_cast<long>(s->end));
            lines.insert(lines.begin() + static_cast<long>(s->begin), repl.begin(), repl.end());
        }
        if (up.empty())
            p.notes.push_back(fmt::format("{} has no stanza in the ifupdown configuration: {} gets no address at boot (its runtime addresses "
                                          "are moved now, but nothing configures them after a reboot)",
                                          uplink, bridge));
        if (moved.count("inet") && moved["inet"].first == "dhcp")
            p.notes.push_back(fmt::format("{} got its IPv4 address from DHCP: the DHCP client started for {} keeps running until the next "
                                          "reboot, where {} asks for the lease itself (same MAC, so the same lease)",
                                          uplink, uplink, bridge));
    }

    std::vector<std::string> st;
    st.push_back(fmt::format("# Written by {}: bridge {}{}.", kMarker, bridge, uplink.empty() ? " without ports" : " with uplink " + uplink));
    st.push_back(fmt::format("auto {}", bridge));
    const auto v4 = moved.count("inet") ? moved["inet"] : std::pair<std::string, std::vector<std::string>>{"manual", {}};
    st.push_back(fmt::format("iface {} inet {}", bridge, v4.first));
    for (const auto& o : v4.second) st.push_back(o);
    st.push_back(fmt::format("    bridge_ports {}", uplink.empty() ? "none" : uplink));
    st.push_back("    bridge_stp off");
    st.push_back("    bridge_fd 0");
    if (!mac.empty() && !uplink.empty()) st.push_back("    bridge_hw " + mac);
    if (moved.count("inet6")) {
        st.push_back(fmt::format("iface {} inet6 {}", bridge, moved["inet6"].first));
        for (const auto& o : moved["inet6"].second) st.push_back(o);
    }

    auto emit = [&](const std::string& path, const std::optional<std::string>& before, std::string content) {
        if (before && *before == content) return;
        p.files.push_back({path, before, std::move(content)});
    };
    // Edited uplink files (the main file may also receive the stanza).
    std::optional<std::vector<std::string>> main_lines;
    for (auto& [idx, lines] : edited) {
        if (files[idx].path == own_path && !use_d) main_lines = lines;
        else emit(files[idx].path, join_lines(files[idx].lines), join_lines(lines));
    }
    if (use_d) {
        std::optional<std::string> before;
        for (const auto& f : files)
            if (f.path == own_path) before = join_lines(f.lines);
        if (!before) before = t.read(own_path);
        if (before && !ours) throw std::runtime_error(own_path + " exists and was not written by kvmready: choose another bridge name or edit it by hand");
        emit(own_path, before, join_lines(st));
    } else {
        std::vector<std::string> lines = main_lines ? *main_lines : files[0].lines;
        if (!lines.empty() && !trim(lines.back()).empty()) lines.push_back("");
        lines.insert(lines.end(), st.begin(), st.end());
        emit(own_path, join_lines(files[0].lines), join_lines(lines));
    }
    p.done = p.files.empty();
    return p;
}

}  // namespace kvmready::fix::bridge
