// probe_net: the host's networking as guests will meet it. Sysfs and procfs
// first (device nodes, bridges and their ports, sysctls); netlink only when
// there is something to look at, i.e. at least one bridge: the bridges'
// addresses (sysfs has none; rtnetlink, what `ip -j addr show type bridge`
// prints) and the firewall (nf_tables' ruleset, which holds iptables-nft's
// rules too). `iptables -S` runs only when legacy x_tables hold a filter
// table, which nf_tables cannot show. Host trees recorded before kvmready
// read these itself replay the programs' recorded output instead.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <set>
#include <sstream>
#include <thread>

#include "core/probe.hpp"
#include "util/text.hpp"

namespace kvmready {

namespace {

constexpr int kToolTimeoutMs = 2000;
const std::string kNet = "/sys/class/net/";

using util::lower;
using util::trim;

std::optional<int> read_int(const host::Host& h, const std::string& path, int base = 10) {
    auto text = h.read_file(path);
    if (!text) return std::nullopt;
    try {
        return std::stoi(trim(*text), nullptr, base);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::set<unsigned> misc_minors(const host::Host& h) {
    std::set<unsigned> out;
    for (const auto& [name, minor] : read_misc_devices(h).value_or(std::map<std::string, unsigned>{})) out.insert(minor);
    return out;
}

NetNode probe_node(const host::Host& h, const std::string& path, unsigned minor, const std::set<unsigned>& misc,
                   const std::string& release, const std::string& module_rel) {
    NetNode n;
    n.path = path;
    const auto st = h.stat(path);
    n.exists = st.exists;
    if (st.exists) {
        n.type = st.type;
        n.major = st.major;
        n.minor = st.minor;
        n.mode = st.mode;
        n.uid = st.uid;
        n.gid = st.gid;
    }
    n.registered = misc.count(minor) > 0;
    // Where to look for the module only matters when the node is missing and
    // no driver is registered: then "modprobe" either works or cannot.
    if (!n.registered && !release.empty()) {
        for (const char* ext : {".ko", ".ko.xz", ".ko.zst", ".ko.gz"}) {
            if (h.stat("/lib/modules/" + release + "/kernel/" + module_rel + ext).exists) {
                n.module_installed = true;
                break;
            }
        }
    }
    return n;
}

std::string uevent_devtype(const host::Host& h, const std::string& iface) {
    std::istringstream in(h.read_file(kNet + iface + "/uevent").value_or(""));
    for (std::string line; std::getline(in, line);)
        if (line.rfind("DEVTYPE=", 0) == 0) return trim(line.substr(8));
    return "";
}

// A NIC backed by a device (PCI, virtio, USB): its device/uevent names the
// driver. Read rather than stat'ed, so that a recording keeps the directory.
bool is_physical(const host::Host& h, const std::string& iface, std::string* driver = nullptr) {
    auto ue = h.read_file(kNet + iface + "/device/uevent");
    if (!ue) return h.stat(kNet + iface + "/device").exists;
    if (driver) {
        std::istringstream in(*ue);
        for (std::string line; std::getline(in, line);)
            if (line.rfind("DRIVER=", 0) == 0) *driver = trim(line.substr(7));
    }
    return true;
}

// The interfaces an interface is stacked on (bond slaves, a vlan's parent).
// A file is read through each lower_* link so that a recording keeps it
// (git drops empty directories).
std::vector<std::string> lower_devices(const host::Host& h, const std::string& iface) {
    std::vector<std::string> out;
    for (const auto& e : h.list_dir(kNet + iface)) {
        if (e.rfind("lower_", 0) != 0) continue;
        if (h.read_file(kNet + iface + "/" + e + "/ifindex")) out.push_back(e.substr(6));
    }
    return out;
}

// A physical NIC under iface (itself, or down its lower_* chain), or "".
std::string physical_under(const host::Host& h, const std::string& iface, int depth) {
    if (is_physical(h, iface)) return iface;
    if (depth >= 4) return "";
    for (const auto& lower : lower_devices(h, iface))
        if (auto nic = physical_under(h, lower, depth + 1); !nic.empty()) return nic;
    return "";
}

BridgePort probe_port(const host::Host& h, const std::string& name) {
    BridgePort p;
    p.name = name;
    const std::string base = kNet + name;
    p.operstate = trim(h.read_file(base + "/operstate").value_or(""));
    const std::string devtype = uevent_devtype(h, name);
    if (is_physical(h, name, &p.driver)) {
        p.kind = "physical";
        p.uplink = true;
        p.uplink_nic = name;
        return p;
    }
    if (h.stat(base + "/tun_flags").exists) {
        p.kind = "tap";
        return p;
    }
    if (devtype == "bridge" || h.stat(base + "/bridge").exists) p.kind = "bridge";
    else if (devtype == "bond" || h.read_file(base + "/bonding/mode")) p.kind = "bond";
    else if (!devtype.empty()) p.kind = devtype;  // vlan, vxlan, wlan, ...
    p.uplink_nic = physical_under(h, name, 0);
    p.uplink = !p.uplink_nic.empty();
    if (p.kind.empty()) {
        // A veth names its peer in iflink (another ifindex, possibly in another
        // namespace); so does a macvlan its parent, but that one has lower_*.
        auto ifindex = read_int(h, base + "/ifindex");
        auto iflink = read_int(h, base + "/iflink");
        p.kind = ifindex && iflink && *ifindex != *iflink && lower_devices(h, name).empty() ? "veth" : "other";
    }
    return p;
}

BridgeInfo probe_bridge(const host::Host& h, const std::string& name) {
    BridgeInfo b;
    b.name = name;
    const std::string base = kNet + name;
    b.operstate = trim(h.read_file(base + "/operstate").value_or(""));
    if (auto flags = read_int(h, base + "/flags", 16)) b.admin_up = (*flags & 0x1) != 0;
    if (auto c = read_int(h, base + "/carrier")) b.carrier = *c == 1;
    b.stp_state = read_int(h, base + "/bridge/stp_state");
    b.forward_delay_cs = read_int(h, base + "/bridge/forward_delay");
    b.nf_call_iptables = read_int(h, base + "/bridge/nf_call_iptables");
    for (const auto& port : h.list_dir(base + "/brif")) {
        BridgePort p = probe_port(h, port);
        // brif/PORT/state: the port's STP state (and a file that keeps the
        // port in a recording's listing).
        if (auto st = read_int(h, base + "/brif/" + port + "/state")) {
            static const char* const names[] = {"disabled", "listening", "learning", "forwarding", "blocking"};
            p.stp_port_state = *st >= 0 && *st <= 4 ? names[*st] : std::to_string(*st);
        }
        b.ports.push_back(std::move(p));
    }
    return b;
}

void parse_addresses(const std::string& text, NetFacts& n) {
    const auto j = nlohmann::json::parse(text);
    for (const auto& iface : j) {
        const std::string name = iface.value("ifname", "");
        auto it = std::find_if(n.bridges.begin(), n.bridges.end(), [&](const BridgeInfo& b) { return b.name == name; });
        if (it == n.bridges.end()) continue;
        for (const auto& a : iface.value("addr_info", nlohmann::json::array())) {
            BridgeAddress ba;
            ba.family = a.value("family", "");
            ba.local = a.value("local", "");
            ba.prefixlen = a.value("prefixlen", 0);
            ba.scope = a.value("scope", "");
            if (!ba.local.empty()) it->addresses.push_back(ba);
        }
    }
}

std::string run_error(const host::RunResult& r, const std::string& what) {
    if (!r.started) return what + " did not run: " + (r.error.empty() ? "not found" : r.error);
    if (r.timed_out) return what + " timed out";
    std::string err = trim(r.err);
    if (auto nl = err.find('\n'); nl != std::string::npos) err = err.substr(0, nl);
    return what + " exited with status " + std::to_string(r.exit_code) + (err.empty() ? "" : ": " + err);
}

// ---- iptables -S ----------------------------------------------------------

std::vector<std::string> split_args(const std::string& line) {
    std::vector<std::string> out;
    std::string cur;
    bool quoted = false, any = false;
    for (size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (c == '\\' && quoted && i + 1 < line.size()) {
            cur += line[++i];
        } else if (c == '"') {
            quoted = !quoted;
            any = true;
        } else if (!quoted && std::isspace(static_cast<unsigned char>(c))) {
            if (any || !cur.empty()) out.push_back(cur);
            cur.clear();
            any = false;
        } else {
            cur += c;
        }
    }
    if (any || !cur.empty()) out.push_back(cur);
    return out;
}

bool states_established_only(const std::string& list) {
    std::istringstream in(list);
    bool any = false;
    for (std::string s; std::getline(in, s, ',');) {
        s = lower(trim(s));
        if (s != "established" && s != "related") return false;
        any = true;
    }
    return any;
}

FwRule parse_iptables_rule(const std::vector<std::string>& a, size_t start, const std::set<std::string>& chains) {
    FwRule r;
    bool negate = false;
    for (size_t i = start; i < a.size(); ++i) {
        const std::string& t = a[i];
        auto next = [&]() -> std::string { return i + 1 < a.size() ? a[++i] : std::string(); };
        if (t == "!") {
            negate = true;
            continue;
        }
        if (t == "-i" || t == "--in-interface") r.iif = (negate ? "!" : "") + next();
        else if (t == "-o" || t == "--out-interface") r.oif = (negate ? "!" : "") + next();
        else if (t == "-m" || t == "--match") {
            next();  // a match module's name is no condition; its options are
        } else if (t == "--physdev-is-bridged") {
            if (negate) r.other_match = true;
            else r.physdev_bridged = true;
        } else if (t == "--ctstate" || t == "--state") {
            const std::string states = next();
            if (!negate && states_established_only(states)) r.established_only = true;
            else r.other_match = true;
        } else if (t == "--comment") {
            next();
        } else if (t == "-j" || t == "--jump" || t == "-g" || t == "--goto") {
            const std::string target = next();
            if (target == "ACCEPT") r.verdict = "accept";
            else if (target == "DROP") r.verdict = "drop";
            else if (target == "REJECT") r.verdict = "reject";
            else if (target == "RETURN") r.verdict = "return";
            else if (chains.count(target)) {
                r.verdict = (t == "-g" || t == "--goto") ? "goto" : "jump";
                r.target = target;
            }
            // Other targets (LOG, NFLOG, MARK, ...) do not end the chain; their
            // options follow and are not conditions.
            break;
        } else if (!t.empty() && t[0] == '-') {
            r.other_match = true;
            // Skip the option's value(s): anything up to the next option.
            while (i + 1 < a.size() && !a[i + 1].empty() && a[i + 1][0] != '-' && a[i + 1] != "!") ++i;
        }
        negate = false;
    }
    return r;
}

// ---- nft -j list ruleset ---------------------------------------------------

using util::join;

std::vector<std::string> json_strings(const nlohmann::json& v) {
    std::vector<std::string> out;
    if (v.is_string()) out.push_back(v.get<std::string>());
    else if (v.is_array())
        for (const auto& e : v) {
            auto inner = json_strings(e);
            out.insert(out.end(), inner.begin(), inner.end());
        }
    else if (v.is_object() && v.contains("set")) return json_strings(v["set"]);
    return out;
}

// Statements that neither decide nor restrict which packets a rule applies to.
bool is_side_effect(const std::string& key) {
    static const std::set<std::string> k = {"counter", "log", "mangle", "notrack", "flow", "meter"};
    return k.count(key) > 0;
}

FwRule parse_nft_rule(const nlohmann::json& rule) {
    FwRule r;
    std::vector<std::string> text;
    for (const auto& e : rule.value("expr", nlohmann::json::array())) {
        if (!e.is_object() || e.empty()) continue;
        const std::string key = e.begin().key();
        const auto& val = e.begin().value();
        if (key == "match") {
            const std::string op = val.value("op", "==");
            const auto left = val.value("left", nlohmann::json::object());
            const auto right = val.value("right", nlohmann::json());
            const bool neg = op == "!=";
            const bool pos = op == "==" || op == "in";
            std::string meta = left.contains("meta") ? left["meta"].value("key", "") : "";
            const std::string names = join(json_strings(right), ",");
            if ((meta == "iifname" || meta == "oifname" || meta == "iif" || meta == "oif") && (neg || pos) && !names.empty()) {
                (meta[0] == 'i' ? r.iif : r.oif) = (neg ? "!" : "") + names;
                text.push_back(meta + (neg ? " != " : " ") + names);
                continue;
            }
            if ((meta == "ibrname" || meta == "obrname") && (neg || pos) && !names.empty()) {
                // Bridge-family match on the bridge itself: kept in iif/oif with
                // a "br:" prefix so the checks can tell it from a port name.
                (meta[0] == 'i' ? r.iif : r.oif) = (neg ? "!" : "") + std::string("br:") + names;
                text.push_back(meta + (neg ? " != " : " ") + names);
                continue;
            }
            if (left.contains("ct") && left["ct"].value("key", "") == "state" && pos) {
                const auto states = json_strings(right);
                if (states_established_only(join(states, ","))) r.established_only = true;
                else r.other_match = true;
                text.push_back("ct state " + join(states, ","));
                continue;
            }
            r.other_match = true;
            // The condition by its kind: "<ip saddr>", "<meta l4proto>", "<payload>".
            std::string what = "match";
            if (!meta.empty()) what = "meta " + meta;
            else if (left.contains("ct")) what = "ct " + left["ct"].value("key", "");
            else if (left.contains("payload") && left["payload"].contains("field"))
                what = left["payload"].value("protocol", "") + " " + left["payload"].value("field", "");
            else if (left.is_object() && !left.empty()) what = left.begin().key();
            text.push_back("<" + what + ">");
        } else if (key == "accept" || key == "drop" || key == "reject" || key == "return") {
            r.verdict = key;
            text.push_back(key);
        } else if (key == "jump" || key == "goto") {
            r.verdict = key;
            r.target = val.value("target", "");
            text.push_back(key + " " + r.target);
        } else if (key == "xt") {
            // iptables-nft's compat expressions: opaque in nft's JSON; kvmready's
            // own reading decodes physdev (conntrack/state become ct matches).
            const std::string name = val.value("name", "");
            if (val.value("type", "") == "target") {
                if (name == "REJECT") r.verdict = "reject";
                text.push_back("xt target " + name);
            } else if (name == "comment") {
                // no condition
            } else if (name == "physdev" && val.value("physdev_is_bridged", false)) {
                r.physdev_bridged = true;
                text.push_back("xt match physdev --physdev-is-bridged");
            } else {
                r.other_match = true;
                text.push_back("xt match " + val.value("name", ""));
            }
        } else if (!is_side_effect(key)) {
            r.other_match = true;
            text.push_back("<" + key + ">");
        }
    }
    r.text = join(text, " ");
    return r;
}

}  // namespace

std::vector<FwChain> parse_iptables_save(const std::string& text) {
    std::vector<FwChain> chains;
    std::set<std::string> names = {"INPUT", "FORWARD", "OUTPUT"};
    std::vector<std::vector<std::string>> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        auto a = split_args(line);
        if (a.size() < 2) continue;
        if (a[0] == "-N") names.insert(a[1]);
        if (a[0] == "-P" || a[0] == "-N" || a[0] == "-A") lines.push_back(std::move(a));
    }
    auto chain = [&](const std::string& name) -> FwChain& {
        for (auto& c : chains)
            if (c.name == name) return c;
        FwChain c;
        c.source = "iptables";
        c.family = "ip";
        c.table = "filter";
        c.name = name;
        c.base = name == "FORWARD";
        chains.push_back(c);
        return chains.back();
    };
    for (const auto& a : lines) {
        if (a[0] == "-P") chain(a[1]).policy = a.size() > 2 ? lower(a[2]) : "";
        else if (a[0] == "-N") chain(a[1]);
        else {
            FwRule r = parse_iptables_rule(a, 2, names);
            std::vector<std::string> rest(a.begin() + 2, a.end());
            r.text = "-A " + a[1] + " " + join(rest, " ");
            chain(a[1]).rules.push_back(std::move(r));
        }
    }
    return chains;
}

std::vector<FwChain> parse_nft_json(const std::string& text) { return parse_nft_ruleset(nlohmann::json::parse(text)); }

std::vector<FwChain> parse_nft_ruleset(const nlohmann::json& j) {
    std::vector<FwChain> chains;
    for (const auto& o : j.value("nftables", nlohmann::json::array())) {
        if (o.contains("chain")) {
            const auto& c = o["chain"];
            FwChain ch;
            ch.source = "nft";
            ch.family = c.value("family", "");
            ch.table = c.value("table", "");
            ch.name = c.value("name", "");
            ch.base = c.value("hook", "") == "forward";
            if (c.contains("hook")) ch.policy = c.value("policy", "accept");
            chains.push_back(std::move(ch));
        } else if (o.contains("rule")) {
            const auto& r = o["rule"];
            for (auto& ch : chains) {
                if (ch.family == r.value("family", "") && ch.table == r.value("table", "") && ch.name == r.value("chain", "")) {
                    ch.rules.push_back(parse_nft_rule(r));
                    break;
                }
            }
        }
    }
    return chains;
}

std::vector<FwChain> forward_reachable(std::vector<FwChain> chains) {
    auto key = [](const FwChain& c) { return c.source + "/" + c.family + "/" + c.table + "/" + c.name; };
    std::set<std::string> keep;
    std::vector<const FwChain*> todo;
    for (const auto& c : chains)
        if (c.base) todo.push_back(&c);
    while (!todo.empty()) {
        const FwChain* c = todo.back();
        todo.pop_back();
        if (!keep.insert(key(*c)).second) continue;
        for (const auto& r : c->rules) {
            if (r.target.empty()) continue;
            for (const auto& o : chains)
                if (o.source == c->source && o.family == c->family && o.table == c->table && o.name == r.target) todo.push_back(&o);
        }
    }
    chains.erase(std::remove_if(chains.begin(), chains.end(), [&](const FwChain& c) { return !keep.count(key(c)); }), chains.end());
    return chains;
}

namespace {

// What probe_net reads only when a bridge exists: addresses and the firewall,
// each from the Host's own reader or, in trees recorded before kvmready read
// them itself, from the programs' output.
struct BridgeReads {
    host::RunResult addr_res, ipt_res, nft_res;
    host::InterfaceAddresses addrs;
    host::NftRuleset nft;
    bool run_iptables = false;
};

// Starts the reads; `iptables -S`, when it must run, runs on `iptables`
// beside the sysfs reads (the caller joins it).
void start_bridge_reads(const host::Host& h, FirewallFacts& fw, BridgeReads& r, std::thread& iptables) {
    std::istringstream in(h.read_file("/proc/net/ip_tables_names").value_or(""));
    for (std::string t; in >> t;) fw.legacy_tables.push_back(t);
    const bool legacy_filter = std::find(fw.legacy_tables.begin(), fw.legacy_tables.end(), "filter") != fw.legacy_tables.end();
    r.nft = h.nftables();
    r.addrs = h.interface_addresses("bridge");
    // iptables -S shows what nf_tables cannot: a legacy x_tables filter
    // table (its rules never reach nf_tables), or any rules at all when
    // nf_tables could not be read for another reason than privileges
    // (a kernel without it). It costs 1.7 ms, so it runs beside sysfs.
    const bool denied = r.nft.error_code == EPERM || r.nft.error_code == EACCES;
    r.run_iptables = !r.nft.available || legacy_filter || (!r.nft.error.empty() && !denied);
    if (r.run_iptables) iptables = std::thread([&h, &r] { r.ipt_res = h.run({"iptables", "-S"}, kToolTimeoutMs); });
    // Trees recorded before kvmready read these itself hold the programs' output.
    if (!r.nft.available) r.nft_res = h.run({"nft", "-j", "list", "ruleset"}, kToolTimeoutMs);
    if (!r.addrs.available) r.addr_res = h.run({"ip", "-j", "addr", "show", "type", "bridge"}, kToolTimeoutMs);
}

// The bridges' addresses, onto the bridges probed.
void attach_addresses(const BridgeReads& r, NetFacts& n) {
    if (r.addrs.available) {
        if (r.addrs.error.empty()) {
            for (const auto& a : r.addrs.addresses) {
                auto it = std::find_if(n.bridges.begin(), n.bridges.end(), [&](const BridgeInfo& b) { return b.name == a.ifname; });
                if (it != n.bridges.end()) it->addresses.push_back(BridgeAddress{a.family, a.local, a.prefixlen, a.scope});
            }
            n.addresses_known = true;
        } else {
            n.addresses_error = r.addrs.error;
        }
    } else if (r.addr_res.started && r.addr_res.exit_code == 0) {
        try {
            parse_addresses(r.addr_res.out, n);
            n.addresses_known = true;
        } catch (const nlohmann::json::exception& e) {
            n.addresses_error = std::string("ip -j addr show: unreadable output: ") + e.what();
        }
    } else {
        n.addresses_error = run_error(r.addr_res, "ip -j addr show");
    }
}

// nf_tables' chains, from the ruleset read or `nft -j list ruleset`.
std::vector<FwChain> nft_chains(const BridgeReads& r, FirewallFacts& fw) {
    std::vector<FwChain> c;
    if (r.nft.available && r.nft.error.empty()) {
        c = parse_nft_ruleset(r.nft.ruleset);
        fw.nft_ok = true;
        if (!r.run_iptables) {
            // iptables-nft keeps its rules in nf_tables' "ip filter" table:
            // they are iptables' rules (read without running it), judged and
            // fixed as such. A table of that name written with nft itself
            // (base chains not named like iptables') stays nft's.
            const bool iptables_made = std::all_of(c.begin(), c.end(), [](const FwChain& x) {
                if (x.family != "ip" || x.table != "filter" || x.policy.empty()) return true;
                return x.name == "INPUT" || x.name == "FORWARD" || x.name == "OUTPUT";
            });
            fw.iptables_ok = true;
            if (iptables_made)
                for (auto& x : c)
                    if (x.family == "ip" && x.table == "filter") x.source = "iptables";
            std::stable_partition(c.begin(), c.end(), [](const FwChain& x) { return x.source == "iptables"; });
        }
    } else if (r.nft.available) {
        fw.nft_error = r.nft.error;
        // Without legacy tables, iptables' rules are nf_tables' too.
        if (!r.run_iptables) fw.iptables_error = r.nft.error;
    } else if (r.nft_res.started && r.nft_res.exit_code == 0) {
        try {
            c = parse_nft_json(r.nft_res.out);
            fw.nft_ok = true;
        } catch (const nlohmann::json::exception& e) {
            fw.nft_error = std::string("nft -j list ruleset: unreadable output: ") + e.what();
        }
    } else {
        fw.nft_error = run_error(r.nft_res, "nft -j list ruleset");
    }
    return c;
}

// The chains guest traffic can pass, from iptables and nf_tables.
void read_firewall(const BridgeReads& r, FirewallFacts& fw) {
    fw.probed = true;
    std::vector<FwChain> all;
    if (r.run_iptables) {
        if (r.ipt_res.started && r.ipt_res.exit_code == 0) {
            fw.iptables_ok = true;
            all = parse_iptables_save(r.ipt_res.out);
        } else {
            fw.iptables_error = run_error(r.ipt_res, "iptables -S");
        }
    }
    const bool legacy_filter = std::find(fw.legacy_tables.begin(), fw.legacy_tables.end(), "filter") != fw.legacy_tables.end();
    std::vector<FwChain> c = nft_chains(r, fw);
    // When `iptables -S` showed iptables-nft's rules (and legacy iptables
    // holds no filter table of its own), judge them once, as iptables rules.
    if (r.run_iptables && fw.iptables_ok && !legacy_filter)
        c.erase(std::remove_if(c.begin(), c.end(), [](const FwChain& x) { return x.family == "ip" && x.table == "filter"; }), c.end());
    all.insert(all.end(), c.begin(), c.end());
    fw.chains = forward_reachable(std::move(all));
}

}  // namespace

void probe_net(const host::Host& h, const ProbeOptions&, Facts& f) {
    auto& n = f.net;
    n.probed = true;

    // Bridges first: whether addresses and the firewall are read at all
    // depends on them.
    std::vector<std::string> bridge_names;
    std::vector<std::string> others;
    for (const auto& iface : h.list_dir("/sys/class/net")) {
        if (h.stat(kNet + iface + "/bridge").exists) bridge_names.push_back(iface);
        else others.push_back(iface);
    }

    BridgeReads reads;
    std::thread iptables;
    if (!bridge_names.empty()) start_bridge_reads(h, n.firewall, reads, iptables);

    const auto misc = misc_minors(h);
    const std::string& rel = f.kernel.release;
    n.tun = probe_node(h, "/dev/net/tun", 200, misc, rel, "drivers/net/tun");
    n.vhost_net = probe_node(h, "/dev/vhost-net", 238, misc, rel, "drivers/vhost/vhost_net");
    n.vhost_vsock = probe_node(h, "/dev/vhost-vsock", 241, misc, rel, "drivers/vhost/vhost_vsock");

    n.ip_forward = read_int(h, "/proc/sys/net/ipv4/ip_forward");
    n.ipv6_forwarding = read_int(h, "/proc/sys/net/ipv6/conf/all/forwarding");
    for (const char* k : {"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"})
        if (auto v = read_int(h, std::string("/proc/sys/net/bridge/") + k)) n.bridge_nf[k] = *v;
    n.br_netfilter_loaded = !n.bridge_nf.empty();

    for (const auto& b : bridge_names) n.bridges.push_back(probe_bridge(h, b));
    for (const auto& iface : others)
        if (is_physical(h, iface)) n.physical_nics.push_back(iface);

    if (iptables.joinable()) iptables.join();
    if (bridge_names.empty()) {
        n.firewall.not_probed_reason = "no bridge exists, so no guest traffic is forwarded here";
        return;
    }
    attach_addresses(reads, n);
    read_firewall(reads, n.firewall);
}

}  // namespace kvmready
