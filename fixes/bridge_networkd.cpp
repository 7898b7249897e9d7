// net.bridge for systemd-networkd: the bridge's .netdev and .network, and a
// .network for the uplink that sorts before the one that configured it.
#include <fnmatch.h>

#include <algorithm>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "core/facts_config.hpp"
#include "fixes/bridge.hpp"
#include "fixes/bridge_text.hpp"

namespace kvmready::fix::bridge {

using namespace text;

// ---- systemd-networkd -------------------------------------------------------------

std::vector<IniSection> parse_ini(const std::string& text) {
    std::vector<IniSection> out;
    for (const auto& raw : split_lines(text)) {
        const std::string l = trim(raw);
        if (l.empty() || l[0] == '#' || l[0] == ';') continue;
        if (l.front() == '[' && l.back() == ']') {
            out.push_back({l.substr(1, l.size() - 2), {}});
            continue;
        }
        const auto eq = l.find('=');
        if (eq == std::string::npos || out.empty()) continue;
        out.back().keys.emplace_back(trim(l.substr(0, eq)), trim(l.substr(eq + 1)));
    }
    return out;
}

bool network_matches(const std::vector<IniSection>& ini, const std::string& ifname, const std::string& mac) {
    bool any = false;
    for (const auto& s : ini) {
        if (s.name != "Match") continue;
        for (const auto& [k, v] : s.keys) {
            auto alts = words(v);
            bool negate = false;
            if (!alts.empty() && alts[0][0] == '!') {
                negate = true;
                alts[0] = alts[0].substr(1);
            }
            auto hit = [&](const std::string& value, int flags) {
                return std::any_of(alts.begin(), alts.end(), [&](const std::string& g) { return fnmatch(g.c_str(), value.c_str(), flags) == 0; });
            };
            bool ok = true;
            if (k == "Name") ok = hit(ifname, 0);
            else if (k == "MACAddress" || k == "PermanentMACAddress") ok = !mac.empty() && hit(mac, FNM_CASEFOLD);
            else continue;  // Type=, Driver=, Path=, Host=, ...: not decided here, taken as matching
            if (negate) ok = !ok;
            if (!ok) return false;
            any = true;
        }
    }
    (void)any;
    return true;
}

namespace {

// name -> full path, the first directory winning (networkd's override order).
std::map<std::string, std::string> network_units(const Target& t, const std::string& suffix) {
    std::map<std::string, std::string> out;
    for (const char* dir : kNetworkdDirs)
        for (const auto& n : t.list(dir))
            if (ends_with(n, suffix) && !out.count(n)) out[n] = std::string(dir) + "/" + n;
    return out;
}

std::string ini_text(const std::vector<IniSection>& ini) {
    std::string out;
    for (const auto& s : ini) {
        if (!out.empty()) out += "\n";
        out += "[" + s.name + "]\n";
        for (const auto& [k, v] : s.keys) out += k + "=" + v + "\n";
    }
    return out;
}

}  // namespace

Persist networkd_config(const Target& t, const std::string& bridge, const std::string& uplink, const std::string& mac,
                        const std::string& uplink_network_file) {
    Persist p;
    const auto networks = network_units(t, ".network");
    const auto netdevs = network_units(t, ".netdev");
    const std::string netdev_name = "10-kvmready-" + bridge + ".netdev";
    const std::string brnet_name = "10-kvmready-" + bridge + ".network";

    // A bridge someone else defined: it must take the uplink already.
    for (const auto& [n, path] : netdevs) {
        if (n == netdev_name) continue;
        auto text = t.read(path);
        if (!text) continue;
        const auto ini = parse_ini(*text);
        bool defines = false;
        for (const auto& s : ini)
            if (s.name == "NetDev")
                for (const auto& [k, v] : s.keys)
                    if (k == "Name" && v == bridge) defines = true;
        if (!defines) continue;
        if (uplink.empty()) {
            p.done = true;
            return p;
        }
        for (const auto& [nn, npath] : networks) {
            auto nt = t.read(npath);
            if (!nt) continue;
            const auto nini = parse_ini(*nt);
            if (!network_matches(nini, uplink, mac)) continue;
            for (const auto& s : nini)
                for (const auto& [k, v] : s.keys)
                    if (s.name == "Network" && k == "Bridge" && v == bridge) {
                        p.done = true;
                        return p;
                    }
            break;  // the first match decides
        }
        throw std::runtime_error(fmt::format("{} is defined in {}, but {} is not its port there: add Bridge={} to {}'s .network by hand",
                                             bridge, path, uplink, bridge, uplink));
    }

    // The uplink's current .network: networkd's own answer when given, else
    // the first file (by name) whose [Match] selects it.
    std::string up_file = uplink_network_file, up_name;
    std::vector<IniSection> up_ini;
    if (!uplink.empty()) {
        if (up_file.empty())
            for (const auto& [n, path] : networks) {
                if (n.find("kvmready-") != std::string::npos) continue;
                auto text = t.read(path);
                if (text && network_matches(parse_ini(*text), uplink, mac)) {
                    up_file = path;
                    break;
                }
            }
        if (!up_file.empty()) {
            up_name = basename_of(up_file);
            if (up_name.find("kvmready-") != std::string::npos) up_file.clear();  // ours: the move was persisted
            else if (auto text = t.read(up_file)) up_ini = parse_ini(*text);
        }
    }

    std::vector<IniSection> netdev = {{"NetDev", {{"Name", bridge}, {"Kind", "bridge"}}}, {"Bridge", {{"STP", "no"}, {"ForwardDelaySec", "0"}}}};
    if (!uplink.empty() && !mac.empty()) netdev[0].keys.emplace_back("MACAddress", mac);
    std::vector<IniSection> brnet = {{"Match", {{"Name", bridge}}}};
    std::vector<IniSection> upnet;
    std::string from = uplink.empty() ? "" : up_file.empty() ? "" : " from " + up_file;
    if (!up_ini.empty()) {
        for (const auto& s : up_ini) {
            if (s.name == "Match") continue;
            IniSection c{s.name, {}};
            for (const auto& kv : s.keys)
                if (!(s.name == "Network" && kv.first == "Bridge")) c.keys.push_back(kv);
            brnet.push_back(c);
        }
    } else {
        brnet.push_back({"Network", {{"ConfigureWithoutCarrier", "yes"}, {"LinkLocalAddressing", "no"}}});
        if (!uplink.empty() && up_name.find("kvmready-") == std::string::npos)
            p.notes.push_back(fmt::format("no .network file configures {}: {} gets no address at boot (its runtime addresses are moved now)",
                                          uplink, bridge));
    }
    const std::string header = fmt::format("# Written by {}: bridge {}{}.\n", kMarker, bridge, from);
    auto emit = [&](const std::string& path, std::string content) {
        auto before = t.read(path);
        if (before && *before == content) return;
        if (before && before->find(kMarker) == std::string::npos)
            throw std::runtime_error(path + " exists and was not written by kvmready: choose another bridge name or edit it by hand");
        p.files.push_back({path, before, std::move(content)});
    };
    emit("/etc/systemd/network/" + netdev_name, header + ini_text(netdev));
    if (!uplink.empty() && up_name.find("kvmready-") != std::string::npos) {
        // Persisted before: keep the bridge's .network as it is.
        if (!t.read("/etc/systemd/network/" + brnet_name)) emit("/etc/systemd/network/" + brnet_name, header + ini_text(brnet));
    } else {
        emit("/etc/systemd/network/" + brnet_name, header + ini_text(brnet));
    }
    if (!uplink.empty() && up_name.find("kvmready-") == std::string::npos) {
        // Sorts before the file that configured the uplink, so it wins.
        std::string name;
        for (const char* prefix : {"10-", "05-", "01-", "00-"}) {
            name = std::string(prefix) + "kvmready-" + uplink + ".network";
            if (up_name.empty() || name < up_name) break;
        }
        if (!up_name.empty() && !(name < up_name))
            throw std::runtime_error(fmt::format("{} configures {} and sorts before any name kvmready can give: move its settings by hand", up_file, uplink));
        upnet = {{"Match", {{"Name", uplink}}}};
        for (const auto& s : up_ini)
            if (s.name == "Link") upnet.push_back(s);
        upnet.push_back({"Network", {{"Bridge", bridge}}});
        emit("/etc/systemd/network/" + name, header + ini_text(upnet));
    }
    p.done = p.files.empty();
    return p;
}

}  // namespace kvmready::fix::bridge
