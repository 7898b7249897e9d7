// net.bridge for netplan: /etc/netplan/60-kvmready-BR.yaml, and the uplink's
// IP settings moved out of the yaml file that defines it.
#include <algorithm>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "fixes/bridge.hpp"
#include "fixes/bridge_text.hpp"

namespace kvmready::fix::bridge {

using namespace text;

// ---- netplan -------------------------------------------------------------------

namespace {

int indent_of(const std::string& l) {
    const auto b = l.find_first_not_of(' ');
    return b == std::string::npos ? -1 : static_cast<int>(b);
}

bool yaml_key_is(const std::string& l, const std::string& key) {
    const std::string t = trim(l);
    return t == key + ":" || t.rfind(key + ": ", 0) == 0 || t == "\"" + key + "\":" || t == "'" + key + "':";
}

// The line range [begin, end) of the block under `key` at `indent` inside
// [from, to), or nullopt.
std::optional<std::pair<size_t, size_t>> yaml_block(const std::vector<std::string>& lines, size_t from, size_t to, const std::string& key,
                                                     int indent) {
    for (size_t i = from; i < to; ++i) {
        if (indent_of(lines[i]) != indent || !yaml_key_is(lines[i], key)) continue;
        size_t j = i + 1;
        for (; j < to; ++j) {
            const int ind = indent_of(lines[j]);
            if (ind >= 0 && ind <= indent && trim(lines[j])[0] != '#') break;
        }
        while (j > i + 1 && indent_of(lines[j - 1]) < 0) --j;
        return std::make_pair(i, j);
    }
    return std::nullopt;
}

}  // namespace

Persist netplan_config(const Target& t, const std::string& bridge, const std::string& uplink, const std::string& mac) {
    Persist p;
    const std::string own = "/etc/netplan/60-kvmready-" + bridge + ".yaml";
    std::vector<std::string> moved;  // the uplink's IP keys, as lines relative to their indent
    std::optional<File> up_edit;
    for (const auto& name : [&] {
             auto v = t.list("/etc/netplan");
             std::sort(v.begin(), v.end());
             return v;
         }()) {
        const std::string path = "/etc/netplan/" + name;
        if (!ends_with(name, ".yaml") || path == own || uplink.empty()) continue;
        auto text = t.read(path);
        if (!text) continue;
        auto lines = split_lines(*text);
        auto net = yaml_block(lines, 0, lines.size(), "network", 0);
        if (!net) continue;
        int ind1 = -1;
        for (size_t i = net->first + 1; i < net->second && ind1 < 0; ++i)
            if (!is_blank_or_comment(lines[i])) ind1 = indent_of(lines[i]);
        auto eth = yaml_block(lines, net->first + 1, net->second, "ethernets", ind1);
        if (!eth) continue;
        int ind2 = -1;
        for (size_t i = eth->first + 1; i < eth->second && ind2 < 0; ++i)
            if (!is_blank_or_comment(lines[i])) ind2 = indent_of(lines[i]);
        auto dev = yaml_block(lines, eth->first + 1, eth->second, uplink, ind2);
        if (!dev) continue;
        int ind3 = -1;
        for (size_t i = dev->first + 1; i < dev->second && ind3 < 0; ++i)
            if (!is_blank_or_comment(lines[i])) ind3 = indent_of(lines[i]);
        static const std::set<std::string> ip_keys = {"addresses", "gateway4", "gateway6", "routes", "routing-policy", "dhcp4", "dhcp6",
                                                      "dhcp4-overrides", "dhcp6-overrides", "nameservers", "accept-ra", "ipv6-privacy",
                                                      "link-local", "ipv6-address-generation", "ipv6-address-token", "critical"};
        std::vector<std::string> keep;
        size_t i = dev->first + 1;
        while (i < dev->second) {
            if (indent_of(lines[i]) != ind3) {
                keep.push_back(lines[i]);
                ++i;
                continue;
            }
            const std::string t0 = trim(lines[i]);
            const std::string key = t0.substr(0, t0.find(':'));
            size_t j = i + 1;
            while (j < dev->second && (indent_of(lines[j]) < 0 || indent_of(lines[j]) > ind3)) ++j;
            // Moved lines lose the device's indent (re-indented under the bridge).
            for (size_t k = i; k < j; ++k)
                if (ip_keys.count(key)) moved.push_back(lines[k].substr(std::min<size_t>(lines[k].size(), static_cast<size_t>(ind3))));
                else keep.push_back(lines[k]);
            i = j;
        }
        if (moved.empty()) break;
        std::vector<std::string> out(lines.begin(), lines.begin() + static_cast<long>(dev->first));
        if (keep.empty() || std::all_of(keep.begin(), keep.end(), [](const std::string& l) { return is_blank_or_comment(l); }))
            out.push_back(std::string(static_cast<size_t>(ind2), ' ') + uplink + ": {}  # " + kMarker + ": IP settings moved to " + bridge);
        else {
            out.push_back(lines[dev->first] + "  # " + kMarker + ": IP settings moved to " + bridge);
            out.insert(out.end(), keep.begin(), keep.end());
        }
        out.insert(out.end(), lines.begin() + static_cast<long>(dev->second), lines.end());
        up_edit = File{path, *text, join_lines(out)};
        break;
    }
    if (auto cur = t.read(own); cur && !uplink.empty() && !up_edit && cur->find("interfaces: [" + uplink + "]") != std::string::npos) {
        p.done = true;  // persisted before: the uplink's yaml no longer holds IP settings
        return p;
    }
    if (!uplink.empty() && !up_edit)
        p.notes.push_back(fmt::format("no netplan file gives {} an address: {} gets none at boot (its runtime addresses are moved now)", uplink, bridge));

    std::vector<std::string> y = {fmt::format("# Written by {}: bridge {}.", kMarker, bridge), "network:", "  version: 2", "  bridges:",
                                  "    " + bridge + ":"};
    y.push_back(uplink.empty() ? "      interfaces: []" : "      interfaces: [" + uplink + "]");
    if (!uplink.empty() && !mac.empty()) y.push_back("      macaddress: \"" + mac + "\"");
    y.push_back("      parameters:");
    y.push_back("        stp: false");
    y.push_back("        forward-delay: 0");
    for (const auto& l : moved) y.push_back("      " + l);
    if (uplink.empty()) {
        y.push_back("      dhcp4: false");
        y.push_back("      dhcp6: false");
        y.push_back("      link-local: []");
    }
    const std::string content = join_lines(y);
    auto before = t.read(own);
    if (before && before->find(kMarker) == std::string::npos)
        throw std::runtime_error(own + " exists and was not written by kvmready: choose another bridge name or edit it by hand");
    if (!before || *before != content) p.files.push_back({own, before, content});
    if (up_edit) p.files.push_back(*up_edit);
    p.done = p.files.empty();
    return p;
}

}  // namespace kvmready::fix::bridge
