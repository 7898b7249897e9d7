// net.bridge, the pure part: `ip -j` state, the forward and reverse
// `ip -batch`, the network stack, and the persistent configuration for
// ifupdown, systemd-networkd, netplan and NetworkManager (see bridge.hpp).
#include <fnmatch.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "fixes/bridge.hpp"
#include "util/text.hpp"

namespace kvmready::fix::bridge {

namespace {

using nlohmann::json;

json parse_json_array(const std::string& s) {
    if (s.empty()) return json::array();
    try {
        json j = json::parse(s);
        return j.is_array() ? j : json::array();
    } catch (const json::exception&) {
        return json::array();
    }
}

std::string str(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool flag(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

using util::join_lines;
using util::trim;
using util::words;

std::string dirname_of(const std::string& p) {
    const auto slash = p.rfind('/');
    return slash == std::string::npos || slash == 0 ? "/" : p.substr(0, slash);
}

std::string basename_of(const std::string& p) {
    const auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

// ---- runtime state ------------------------------------------------------------

LinkState parse_link_state(const std::string& link_json, const std::string& addr_json, const std::string& routes4_json,
                           const std::string& routes6_json) {
    LinkState st;
    const json links = parse_json_array(link_json);
    if (links.empty() || !links[0].is_object()) return st;
    const json& l = links[0];
    st.exists = true;
    st.name = str(l, "ifname");
    st.mac = str(l, "address");
    st.master = str(l, "master");
    if (auto li = l.find("linkinfo"); li != l.end() && li->is_object()) st.kind = str(*li, "info_kind");
    if (auto fl = l.find("flags"); fl != l.end() && fl->is_array())
        for (const auto& f : *fl)
            if (f.is_string() && f.get<std::string>() == "UP") st.up = true;

    const json addrs = parse_json_array(addr_json);
    if (!addrs.empty() && addrs[0].is_object())
        for (const auto& a : addrs[0].value("addr_info", json::array())) {
            Addr x;
            x.family = str(a, "family");
            x.local = str(a, "local");
            x.prefixlen = a.value("prefixlen", 0);
            x.broadcast = str(a, "broadcast");
            x.scope = str(a, "scope");
            x.dynamic = flag(a, "dynamic");
            x.noprefixroute = flag(a, "noprefixroute");
            x.valid_lft = a.value("valid_life_time", uint64_t{0xffffffff});
            x.preferred_lft = a.value("preferred_life_time", uint64_t{0xffffffff});
            if ((x.family != "inet" && x.family != "inet6") || x.local.empty()) continue;
            if (x.scope == "link" || x.scope == "host") continue;
            st.addrs.push_back(x);
        }

    auto routes = [&](const std::string& text, const char* family) {
        for (const auto& r : parse_json_array(text)) {
            if (!r.is_object()) continue;
            Route x;
            x.family = family;
            x.type = str(r, "type");
            if (x.type == "unicast") x.type.clear();
            x.dst = str(r, "dst");
            x.gateway = str(r, "gateway");
            x.protocol = str(r, "protocol");
            x.scope = str(r, "scope");
            x.prefsrc = str(r, "prefsrc");
            x.table = str(r, "table");
            if (x.table == "main") x.table.clear();
            if (r.contains("metric") && r["metric"].is_number_unsigned()) x.metric = r["metric"].get<uint64_t>();
            if (auto fl = r.find("flags"); fl != r.end() && fl->is_array())
                for (const auto& f : *fl)
                    if (f.is_string() && f.get<std::string>() == "onlink") x.onlink = true;
            // The kernel's own routes come back with the addresses; local,
            // broadcast and multicast ones belong to the addresses too.
            if (x.protocol == "kernel" || x.table == "local") continue;
            if (!x.type.empty() && x.type != "blackhole" && x.type != "unreachable" && x.type != "prohibit") continue;
            if (r.contains("nexthops")) continue;  // multipath: not moved (see the plan's note)
            st.routes.push_back(x);
        }
    };
    routes(routes4_json, "inet");
    routes(routes6_json, "inet6");
    return st;
}

LinkState read_link(const Runner& run, const std::string& name) {
    auto out = [&](std::vector<std::string> argv) {
        auto r = run(argv);
        return r.started && r.exit_code == 0 ? r.out : std::string();
    };
    const std::string link = out({"ip", "-j", "-d", "link", "show", "dev", name});
    if (link.empty()) return {};
    return parse_link_state(link, out({"ip", "-j", "addr", "show", "dev", name}),
                            out({"ip", "-j", "-4", "route", "show", "table", "all", "dev", name}),
                            out({"ip", "-j", "-6", "route", "show", "table", "all", "dev", name}));
}

namespace {

std::string addr_line(const char* verb, const Addr& a, const std::string& dev, bool with_lifetimes) {
    std::string l = fmt::format("addr {} {}/{}", verb, a.local, a.prefixlen);
    if (std::string(verb) == "add") {
        if (a.family == "inet" && !a.broadcast.empty()) l += " brd " + a.broadcast;
        if (a.scope == "site") l += " scope site";
    }
    l += " dev " + dev;
    if (std::string(verb) == "add") {
        if (a.noprefixroute) l += " noprefixroute";
        // Already proven unique on the uplink: no second duplicate address
        // detection (which would leave the address tentative for a second).
        if (a.family == "inet6") l += " nodad";
        if (with_lifetimes && a.dynamic && a.valid_lft < 0xffffffffULL)
            l += fmt::format(" valid_lft {} preferred_lft {}", a.valid_lft, std::min(a.preferred_lft, a.valid_lft));
    }
    return l;
}

std::string route_line(const Route& r, const std::string& dev) {
    std::string dst = r.dst;
    if (dst == "default") dst = r.family == "inet6" ? "::/0" : "0.0.0.0/0";
    std::string l = "route replace ";
    if (!r.type.empty()) l += r.type + " ";
    l += dst;
    if (!r.table.empty()) l += " table " + r.table;
    if (!r.protocol.empty()) l += " proto " + r.protocol;
    if (!r.scope.empty() && r.scope != "global" && r.scope != "universe") l += " scope " + r.scope;
    if (r.metric) l += fmt::format(" metric {}", *r.metric);
    if (r.type.empty()) {
        if (!r.gateway.empty()) l += " via " + r.gateway;
        l += " dev " + dev;
        if (!r.prefsrc.empty()) l += " src " + r.prefsrc;
        if (r.onlink) l += " onlink";
    }
    return l;
}

}  // namespace

std::vector<std::string> forward_batch(const Move& m) {
    std::vector<std::string> b;
    if (m.create_bridge) b.push_back(fmt::format("link add name {} type bridge stp_state 0 forward_delay 0", m.bridge));
    if (!m.mac.empty()) b.push_back(fmt::format("link set dev {} address {}", m.bridge, m.mac));
    b.push_back(fmt::format("link set dev {} up", m.bridge));
    if (m.uplink.empty()) return b;
    b.push_back(fmt::format("link set dev {} master {}", m.uplink, m.bridge));
    // Secondaries first: deleting a primary IPv4 address deletes its
    // secondaries with it (unless promote_secondaries), and the batch would
    // stop at the next `addr del`.
    for (auto it = m.addrs.rbegin(); it != m.addrs.rend(); ++it) b.push_back(addr_line("del", *it, m.uplink, false));
    for (const auto& a : m.addrs) b.push_back(addr_line("add", a, m.bridge, true));
    for (const auto& r : m.routes) b.push_back(route_line(r, m.bridge));
    return b;
}

std::vector<std::string> reverse_batch(const Move& m) {
    std::vector<std::string> b;
    if (!m.uplink.empty()) {
        b.push_back(fmt::format("link set dev {} nomaster", m.uplink));
        b.push_back(fmt::format("link set dev {} up", m.uplink));
        for (const auto& a : m.addrs) b.push_back(addr_line("add", a, m.uplink, true));
        for (const auto& r : m.routes) b.push_back(route_line(r, m.uplink));
    }
    if (m.create_bridge) {
        b.push_back(fmt::format("link del dev {}", m.bridge));
    } else {
        for (auto it = m.addrs.rbegin(); it != m.addrs.rend(); ++it) b.push_back(addr_line("del", *it, m.bridge, false));
        if (!m.bridge_old_mac.empty() && !m.mac.empty()) b.push_back(fmt::format("link set dev {} address {}", m.bridge, m.bridge_old_mac));
    }
    return b;
}

std::vector<std::vector<std::string>> batch_argv(const std::vector<std::string>& lines) {
    std::vector<std::vector<std::string>> out;
    for (const auto& l : lines) {
        auto w = words(l);
        w.insert(w.begin(), "ip");
        out.push_back(std::move(w));
    }
    return out;
}

std::string probe_target(const Move& m) {
    for (const char* fam : {"inet", "inet6"})
        for (const auto& r : m.routes)
            if (r.family == fam && r.dst == "default" && r.table.empty() && !r.gateway.empty()) return r.gateway;
    return "";
}

// ---- the stack ------------------------------------------------------------------

const char* to_string(Stack s) {
    switch (s) {
    case Stack::Ifupdown: return "ifupdown";
    case Stack::Networkd: return "systemd-networkd";
    case Stack::Netplan: return "netplan";
    case Stack::NetworkManager: return "NetworkManager";
    case Stack::None: break;
    }
    return "none";
}

namespace {

std::vector<std::string> yaml_files(const Target& t) {
    std::vector<std::string> out;
    for (const char* dir : {"/etc/netplan", "/run/netplan", "/lib/netplan"})
        for (const auto& n : t.list(dir))
            if (ends_with(n, ".yaml")) out.push_back(std::string(dir) + "/" + n);
    return out;
}

bool nm_running(const Target& t, std::string& evidence) {
    if (!t.live) return false;
    auto pid = t.read("/run/NetworkManager/NetworkManager.pid");
    if (!pid) return false;
    const std::string p = trim(*pid);
    auto comm = t.read("/proc/" + p + "/comm");
    if (!comm || trim(*comm) != "NetworkManager") return false;
    evidence = fmt::format("NetworkManager runs (pid {} from /run/NetworkManager/NetworkManager.pid)", p);
    return true;
}

bool networkd_running(const Target& t) {
    return t.live && t.read("/run/systemd/netif/state").has_value();
}

bool has_network_files(const Target& t) {
    for (const auto& n : t.list("/etc/systemd/network"))
        if (ends_with(n, ".network") || ends_with(n, ".netdev")) return true;
    return false;
}

}  // namespace

StackInfo detect_stack(const Target& t, const std::string& uplink) {
    (void)uplink;
    StackInfo s;
    const auto yamls = yaml_files(t);
    std::string nm_evidence;
    const bool nm = nm_running(t, nm_evidence);
    const bool networkd = networkd_running(t);
    if (!yamls.empty()) {
        s.stack = Stack::Netplan;
        s.running = nm || networkd;
        s.evidence = fmt::format("netplan configures this host ({}{})", yamls.front(), yamls.size() > 1 ? ", ..." : "");
        if (nm) s.evidence += "; its backend NetworkManager runs";
        else if (networkd) s.evidence += "; its backend systemd-networkd runs";
        return s;
    }
    if (nm) {
        s.stack = Stack::NetworkManager;
        s.running = true;
        s.evidence = nm_evidence;
        return s;
    }
    if (networkd) {
        s.stack = Stack::Networkd;
        s.running = true;
        s.evidence = "systemd-networkd runs (/run/systemd/netif/state)";
        return s;
    }
    if (t.read("/etc/network/interfaces")) {
        s.stack = Stack::Ifupdown;
        s.running = t.live && t.read("/run/network/ifstate").has_value();
        for (const char* p : {"/usr/share/ifupdown2", "/usr/lib/python3/dist-packages/ifupdown2"})
            if (!t.list(p).empty()) s.ifupdown2 = true;
        const bool hook = t.read("/etc/network/if-pre-up.d/bridge").has_value();
        s.bridge_support = s.ifupdown2 || hook;
        s.evidence = fmt::format("{} configures this host (/etc/network/interfaces)", s.ifupdown2 ? "ifupdown2" : "ifupdown");
        return s;
    }
    if (has_network_files(t)) {
        s.stack = Stack::Networkd;
        s.evidence = "systemd-networkd files in /etc/systemd/network (the daemon does not run now)";
        return s;
    }
    if (t.read("/etc/NetworkManager/NetworkManager.conf")) {
        s.stack = Stack::NetworkManager;
        s.evidence = "NetworkManager is installed (/etc/NetworkManager/NetworkManager.conf) but does not run now";
        return s;
    }
    s.evidence = "no NetworkManager, systemd-networkd, netplan or ifupdown configuration found";
    return s;
}

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

bool is_blank_or_comment(const std::string& l) {
    const std::string t = trim(l);
    return t.empty() || t[0] == '#';
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
void load_interfaces(const Target& t, const std::string& path, std::vector<IfFile>& files, int depth) {
    if (depth > 4 || std::any_of(files.begin(), files.end(), [&](const IfFile& f) { return f.path == path; })) return;
    auto text = t.read(path);
    if (!text) return;
    files.push_back({path, split_lines(*text)});
    const auto lines = files.back().lines;
    for (const auto& l : lines) {
        const auto w = words(l);
        if (w.size() < 2) continue;
        std::string arg = w[1];
        if (arg[0] != '/') arg = dirname_of(path) + "/" + arg;
        if (w[0] == "source") {
            const std::string dir = dirname_of(arg), pat = basename_of(arg);
            auto names = t.list(dir);
            std::sort(names.begin(), names.end());
            for (const auto& n : names)
                if (fnmatch(pat.c_str(), n.c_str(), FNM_PERIOD) == 0) load_interfaces(t, dir + "/" + n, files, depth + 1);
        } else if (w[0] == "source-directory" || w[0] == "source-dir") {
            auto names = t.list(arg);
            std::sort(names.begin(), names.end());
            for (const auto& n : names)
                if (!n.empty() && std::all_of(n.begin(), n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }))
                    load_interfaces(t, arg + "/" + n, files, depth + 1);
        }
    }
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
    std::vector<IfFile> files;
    load_interfaces(t, "/etc/network/interfaces", files, 0);
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

const char* const kNetworkDirs[] = {"/etc/systemd/network", "/run/systemd/network", "/usr/lib/systemd/network", "/lib/systemd/network"};

// name -> full path, the first directory winning (networkd's override order).
std::map<std::string, std::string> network_units(const Target& t, const std::string& suffix) {
    std::map<std::string, std::string> out;
    for (const char* dir : kNetworkDirs)
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

// ---- NetworkManager -------------------------------------------------------------

NmPlan nm_commands(const Runner& run, const std::string& bridge, const std::string& uplink, const std::string& mac) {
    NmPlan p;
    auto out = [&](std::vector<std::string> argv) -> std::optional<std::string> {
        auto r = run(argv);
        if (!r.started || r.exit_code != 0) return std::nullopt;
        return r.out;
    };
    const std::string port = bridge + "-port-" + uplink;
    const bool have_bridge = out({"nmcli", "-g", "connection.id", "connection", "show", bridge}).has_value();
    const bool have_port = uplink.empty() || out({"nmcli", "-g", "connection.id", "connection", "show", port}).has_value();
    if (have_bridge && have_port) {
        p.done = true;
        return p;
    }
    std::vector<std::string> add = {"nmcli", "connection", "add", "type", "bridge", "con-name", bridge, "ifname", bridge,
                                    "bridge.stp", "no", "bridge.forward-delay", "0"};
    if (!uplink.empty()) {
        if (!mac.empty()) add.insert(add.end(), {"bridge.mac-address", mac});
        // The uplink's connection: its IP settings move to the bridge.
        auto conn = out({"nmcli", "-g", "GENERAL.CONNECTION", "device", "show", uplink});
        p.old_connection = conn ? trim(*conn) : "";
        if (!p.old_connection.empty()) {
            static const char* const keys[] = {"ipv4.method", "ipv4.addresses", "ipv4.gateway", "ipv4.dns", "ipv4.dns-search", "ipv4.routes",
                                               "ipv6.method", "ipv6.addresses", "ipv6.gateway", "ipv6.dns", "ipv6.dns-search", "ipv6.routes"};
            std::string fields;
            for (const char* k : keys) fields += (fields.empty() ? "" : ",") + std::string(k);
            auto vals = out({"nmcli", "-g", fields, "connection", "show", p.old_connection});
            auto lines = vals ? split_lines(*vals) : std::vector<std::string>{};
            for (size_t i = 0; i < std::size(keys) && i < lines.size(); ++i) {
                std::string v = lines[i];
                // -g escapes ':' in values; nmcli takes ',' separated lists back.
                std::string un;
                for (size_t k = 0; k < v.size(); ++k) {
                    if (v[k] == '\\' && k + 1 < v.size()) ++k;
                    un += v[k];
                }
                if (!un.empty()) add.insert(add.end(), {keys[i], un});
            }
        } else {
            add.insert(add.end(), {"ipv4.method", "disabled", "ipv6.method", "ignore"});
        }
    } else {
        add.insert(add.end(), {"ipv4.method", "disabled", "ipv6.method", "ignore"});
    }
    if (!have_bridge) {
        p.apply.push_back(add);
        p.undo.insert(p.undo.begin(), {"nmcli", "connection", "delete", bridge});
    }
    if (!uplink.empty() && !have_port) {
        p.apply.push_back({"nmcli", "connection", "add", "type", "ethernet", "con-name", port, "ifname", uplink, "master", bridge,
                           "slave-type", "bridge"});
        p.undo.insert(p.undo.begin(), {"nmcli", "connection", "delete", port});
        if (!p.old_connection.empty()) {
            p.apply.push_back({"nmcli", "connection", "modify", p.old_connection, "connection.autoconnect", "no"});
            p.undo.insert(p.undo.begin(), {"nmcli", "connection", "up", p.old_connection});
            p.undo.insert(p.undo.begin(), {"nmcli", "connection", "modify", p.old_connection, "connection.autoconnect", "yes"});
        }
        p.apply.push_back({"nmcli", "connection", "up", port});
    }
    p.apply.push_back({"nmcli", "connection", "up", bridge});
    return p;
}

}  // namespace kvmready::fix::bridge
