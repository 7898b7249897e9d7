// net.bridge, the runtime part: a link's state from `ip -j`, and the forward
// and reverse `ip -batch` that move an uplink's addresses and routes.
#include <algorithm>

#include <fmt/format.h>

#include "core/facts_config.hpp"
#include "fixes/bridge.hpp"
#include "fixes/bridge_text.hpp"

namespace kvmready::fix::bridge {

using namespace text;

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
    const auto q = link_queries(name);
    const std::string link = out(q[0]);
    if (link.empty()) return {};
    return parse_link_state(link, out(q[1]), out(q[2]), out(q[3]));
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

}  // namespace kvmready::fix::bridge
