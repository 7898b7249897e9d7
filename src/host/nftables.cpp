// The nf_tables ruleset over netlink, written in the schema of
// `nft -j list ruleset` (see NftRuleset in host.hpp for what is decoded).
//
// Why not the programs or libnftables: `nft -j list ruleset` takes 3.6 ms
// here and `iptables -S` 1.7 ms, mostly process start-up; libnftables in
// process still spends ~2 ms building its caches (128 KiB hash tables per
// table and object kind) for libvirt's six tables, and its JSON shows
// iptables-nft's compat matches (conntrack, physdev) only by name, so
// `iptables -S` would still be needed to see a `--ctstate` condition. The
// rules' bytecode says all of that directly: interface names compared
// (`meta load iifname; cmp eq`), conntrack state masks, verdicts, and the
// compat matches' kernel structs (xt_conntrack_mtinfo*, xt_physdev_info).
//
// Registers: a load (meta, ct, payload, ...) fills one; a later cmp or
// lookup tests it. The decoder remembers what each register holds and
// writes one JSON statement per test. Anything it does not understand
// becomes an opaque condition of its kind ({"match": {"left": {"payload":
// {}}}}), which the firewall model treats as "may or may not apply".
// Held to `nft -j list ruleset` by tests/net_netns_test.cpp; what it buys: bench/nftables_bench.cpp.
// net/if.h first: glibc's and the kernel's interface headers then agree.
#include <net/if.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_tables_compat.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_physdev.h>
#include <linux/netfilter/xt_state.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "host/host.hpp"
#include "host/netlink.hpp"

namespace kvmready::host {

namespace {

using nlohmann::json;

constexpr int kTimeoutMs = 2000;

std::string family_name(uint8_t f) {
    switch (f) {
    case NFPROTO_INET: return "inet";
    case NFPROTO_IPV4: return "ip";
    case NFPROTO_ARP: return "arp";
    case NFPROTO_NETDEV: return "netdev";
    case NFPROTO_BRIDGE: return "bridge";
    case NFPROTO_IPV6: return "ip6";
    default: return std::to_string(f);
    }
}

std::string hook_name(uint8_t family, uint32_t hook) {
    if (family == NFPROTO_NETDEV) return hook == 0 ? "ingress" : hook == 1 ? "egress" : std::to_string(hook);
    if (family == NFPROTO_ARP) return hook == 0 ? "input" : hook == 1 ? "output" : hook == 2 ? "forward" : std::to_string(hook);
    static const char* const names[] = {"prerouting", "input", "forward", "output", "postrouting", "ingress"};
    return hook < 6 ? names[hook] : std::to_string(hook);
}

std::string meta_key_name(uint32_t k) {
    static const std::map<uint32_t, const char*> names = {
        {NFT_META_LEN, "length"},          {NFT_META_PROTOCOL, "protocol"},   {NFT_META_PRIORITY, "priority"},
        {NFT_META_MARK, "mark"},           {NFT_META_IIF, "iif"},             {NFT_META_OIF, "oif"},
        {NFT_META_IIFNAME, "iifname"},     {NFT_META_OIFNAME, "oifname"},     {NFT_META_IIFTYPE, "iiftype"},
        {NFT_META_OIFTYPE, "oiftype"},     {NFT_META_SKUID, "skuid"},         {NFT_META_SKGID, "skgid"},
        {NFT_META_NFTRACE, "nftrace"},     {NFT_META_NFPROTO, "nfproto"},     {NFT_META_L4PROTO, "l4proto"},
        {NFT_META_BRI_IIFNAME, "ibrname"}, {NFT_META_BRI_OIFNAME, "obrname"}, {NFT_META_PKTTYPE, "pkttype"},
        {NFT_META_IIFGROUP, "iifgroup"},   {NFT_META_OIFGROUP, "oifgroup"},   {NFT_META_IIFKIND, "iifkind"},
        {NFT_META_OIFKIND, "oifkind"}};
    auto it = names.find(k);
    return it != names.end() ? it->second : "meta-" + std::to_string(k);
}

bool is_ifname_key(uint32_t k) {
    return k == NFT_META_IIFNAME || k == NFT_META_OIFNAME || k == NFT_META_BRI_IIFNAME || k == NFT_META_BRI_OIFNAME;
}

// An interface name as compared by cmp or stored in a set: NUL-terminated
// for an exact name; without the NUL (shorter than IFNAMSIZ) a prefix,
// which nft writes "br*" and iptables "br+".
std::string ifname_of(const std::vector<uint8_t>& v) {
    const auto nul = std::find(v.begin(), v.end(), uint8_t{0});
    std::string name(v.begin(), nul);
    if (nul == v.end() && v.size() < IFNAMSIZ) name += "*";
    return name;
}

// Conntrack state bits: nf_tables' (NFT_CT_STATE) and the compat matches'
// (xt_state, xt_conntrack) agree on the first four.
json state_names(uint32_t mask, bool xt_conntrack, bool xt_state) {
    json out = json::array();
    for (uint32_t bit = 1; bit && bit <= mask; bit <<= 1) {
        if (!(mask & bit)) continue;
        std::string n;
        switch (bit) {
        case 1: n = "invalid"; break;
        case 2: n = "established"; break;
        case 4: n = "related"; break;
        case 8: n = "new"; break;
        default:
            if (!xt_conntrack && !xt_state && bit == 64) n = "untracked";
            else if (xt_state && bit == XT_STATE_UNTRACKED) n = "untracked";
            else if (xt_conntrack && bit == XT_CONNTRACK_STATE_UNTRACKED) n = "untracked";
            else if (xt_conntrack && bit == XT_CONNTRACK_STATE_SNAT) n = "snat";
            else if (xt_conntrack && bit == XT_CONNTRACK_STATE_DNAT) n = "dnat";
            else n = fmt::format("0x{:x}", bit);
        }
        out.push_back(n);
    }
    if (out.size() == 1) return out[0];
    return out;
}

json opaque_match(const std::string& op, const json& left) { return {{"match", {{"op", op}, {"left", left}}}}; }

// A raw expression: its name and the attributes of NFTA_EXPR_DATA.
struct Expr {
    std::string name;
    std::map<uint16_t, std::vector<uint8_t>> attrs;

    [[nodiscard]] bool has(uint16_t t) const { return attrs.count(t) > 0; }
    [[nodiscard]] uint32_t be32(uint16_t t) const {
        auto it = attrs.find(t);
        if (it == attrs.end() || it->second.size() < 4) return 0;
        uint32_t v;
        std::memcpy(&v, it->second.data(), 4);
        return ntohl(v);
    }
    [[nodiscard]] std::string str(uint16_t t) const {
        auto it = attrs.find(t);
        if (it == attrs.end()) return "";
        const auto& v = it->second;
        return std::string(v.begin(), std::find(v.begin(), v.end(), uint8_t{0}));
    }
    [[nodiscard]] const std::vector<uint8_t>& raw(uint16_t t) const {
        static const std::vector<uint8_t> none;
        auto it = attrs.find(t);
        return it == attrs.end() ? none : it->second;
    }
};

struct Rule {
    uint8_t family = 0;
    std::string table, chain;
    uint64_t handle = 0;
    std::vector<Expr> exprs;
};

// NFTA_DATA_VALUE inside a data attribute (cmp's, a set element's key).
std::vector<uint8_t> data_value(const std::vector<uint8_t>& nested) {
    const auto attrs = nl::parse_attrs(nested.data(), nested.size());
    const nl::Attr* v = nl::find(attrs, NFTA_DATA_VALUE);
    return v ? v->bytes() : std::vector<uint8_t>{};
}

// What a register holds.
struct Reg {
    enum Kind { Meta, Ct, CtStateMask, Other } kind = Other;
    uint32_t key = 0;          // meta or ct key
    uint32_t mask = 0;         // CtStateMask
    std::string what;          // Other: the expression that loaded it
};

class Reader {
public:
    int open() { return sock_.open(NETLINK_NETFILTER, kTimeoutMs); }

    // 0 or errno; *interrupted when the ruleset changed during the dumps.
    int read(json& items, bool* interrupted) {
        items = json::array();
        items.push_back({{"metainfo", {{"reader", "kvmready: nf_tables netlink"}}}});
        sets_.clear();
        elements_.clear();
        std::vector<json> chains;
        if (int e = dump(NFT_MSG_GETCHAIN, NFPROTO_UNSPEC, {}, [&](const nlmsghdr& m, uint8_t family, const std::vector<nl::Attr>& a) {
                (void)m;
                json c = {{"family", family_name(family)}};
                if (auto* t = nl::find(a, NFTA_CHAIN_TABLE)) c["table"] = t->str();
                if (auto* n = nl::find(a, NFTA_CHAIN_NAME)) c["name"] = n->str();
                if (auto* h = nl::find(a, NFTA_CHAIN_HANDLE)) c["handle"] = h->be64();
                if (auto* t = nl::find(a, NFTA_CHAIN_TYPE)) c["type"] = t->str();
                if (auto* h = nl::find(a, NFTA_CHAIN_HOOK)) {
                    const auto hook = nl::parse_attrs(*h);
                    if (auto* num = nl::find(hook, NFTA_HOOK_HOOKNUM)) c["hook"] = hook_name(family, num->be32());
                    if (auto* prio = nl::find(hook, NFTA_HOOK_PRIORITY)) c["prio"] = static_cast<int32_t>(prio->be32());
                }
                if (auto* p = nl::find(a, NFTA_CHAIN_POLICY)) c["policy"] = p->be32() == NF_DROP ? "drop" : "accept";
                chains.push_back(json{{"chain", c}});
            }, interrupted))
            return e;
        std::vector<Rule> rules;
        if (int e = dump(NFT_MSG_GETRULE, NFPROTO_UNSPEC, {}, [&](const nlmsghdr&, uint8_t family, const std::vector<nl::Attr>& a) {
                Rule r;
                r.family = family;
                if (auto* t = nl::find(a, NFTA_RULE_TABLE)) r.table = t->str();
                if (auto* c = nl::find(a, NFTA_RULE_CHAIN)) r.chain = c->str();
                if (auto* h = nl::find(a, NFTA_RULE_HANDLE)) r.handle = h->be64();
                if (auto* list = nl::find(a, NFTA_RULE_EXPRESSIONS)) {
                    for (const auto& elem : nl::parse_attrs(*list)) {
                        if (elem.type != NFTA_LIST_ELEM) continue;
                        const auto ea = nl::parse_attrs(elem);
                        Expr x;
                        if (auto* n = nl::find(ea, NFTA_EXPR_NAME)) x.name = n->str();
                        if (auto* d = nl::find(ea, NFTA_EXPR_DATA))
                            for (const auto& da : nl::parse_attrs(*d)) x.attrs[da.type] = da.bytes();
                        r.exprs.push_back(std::move(x));
                    }
                }
                rules.push_back(std::move(r));
            }, interrupted))
            return e;
        for (auto& c : chains) items.push_back(std::move(c));
        for (const auto& r : rules) {
            json expr = json::array();
            if (int e = decode(r, expr, interrupted)) return e;
            items.push_back({{"rule", {{"family", family_name(r.family)}, {"table", r.table}, {"chain", r.chain}, {"handle", r.handle},
                                       {"expr", expr}}}});
        }
        return 0;
    }

private:
    using OnMsg = std::function<void(const nlmsghdr&, uint8_t, const std::vector<nl::Attr>&)>;

    int dump(uint16_t msg, uint8_t family, const std::vector<std::pair<uint16_t, std::string>>& strings, const OnMsg& on,
             bool* interrupted) {
        nfgenmsg g {};
        g.nfgen_family = family;
        g.version = NFNETLINK_V0;
        nl::Request req(static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | msg), NLM_F_REQUEST | NLM_F_DUMP, &g, sizeof g);
        for (const auto& [t, s] : strings) req.put_string(t, s);
        return sock_.dump(req, [&](const nlmsghdr& m) {
            if ((m.nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES || m.nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return;
            nfgenmsg h {};
            std::memcpy(&h, NLMSG_DATA(&m), sizeof h);
            const auto* p = static_cast<const uint8_t*>(NLMSG_DATA(&m)) + NLMSG_ALIGN(sizeof h);
            on(m, h.nfgen_family, nl::parse_attrs(p, m.nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof h))));
        }, interrupted);
    }

    struct SetInfo {
        uint32_t flags = 0, key_len = 0;
    };

    // Interface names in a set (exact names and prefixes), or nullopt when
    // its elements are not plain names (concatenations, other ranges).
    int set_names(uint8_t family, const std::string& table, const std::string& set, std::optional<std::vector<std::string>>& out,
                  bool* interrupted) {
        const std::string key = std::to_string(family) + "/" + table + "/" + set;
        if (auto it = elements_.find(key); it != elements_.end()) {
            out = it->second;
            return 0;
        }
        if (!sets_loaded_.count(family)) {
            sets_loaded_.insert(family);
            if (int e = dump(NFT_MSG_GETSET, family, {}, [&](const nlmsghdr&, uint8_t f, const std::vector<nl::Attr>& a) {
                    auto* t = nl::find(a, NFTA_SET_TABLE);
                    auto* n = nl::find(a, NFTA_SET_NAME);
                    if (!t || !n) return;
                    SetInfo si;
                    if (auto* fl = nl::find(a, NFTA_SET_FLAGS)) si.flags = fl->be32();
                    if (auto* kl = nl::find(a, NFTA_SET_KEY_LEN)) si.key_len = kl->be32();
                    sets_[std::to_string(f) + "/" + t->str() + "/" + n->str()] = si;
                }, interrupted))
                return e;
        }
        out.reset();
        auto si = sets_.find(key);
        if (si == sets_.end() || si->second.key_len != IFNAMSIZ || (si->second.flags & (NFT_SET_MAP | NFT_SET_CONCAT | NFT_SET_OBJECT))) {
            elements_[key] = out;
            return 0;
        }
        struct Elem {
            std::vector<uint8_t> key;
            uint32_t flags = 0;
        };
        std::vector<Elem> elems;
        if (int e = dump(NFT_MSG_GETSETELEM, family, {{NFTA_SET_ELEM_LIST_TABLE, table}, {NFTA_SET_ELEM_LIST_SET, set}},
                         [&](const nlmsghdr&, uint8_t, const std::vector<nl::Attr>& a) {
                             auto* list = nl::find(a, NFTA_SET_ELEM_LIST_ELEMENTS);
                             if (!list) return;
                             for (const auto& el : nl::parse_attrs(*list)) {
                                 const auto ea = nl::parse_attrs(el);
                                 Elem x;
                                 if (auto* k = nl::find(ea, NFTA_SET_ELEM_KEY)) x.key = data_value(k->bytes());
                                 if (auto* fl = nl::find(ea, NFTA_SET_ELEM_FLAGS)) x.flags = fl->be32();
                                 elems.push_back(std::move(x));
                             }
                         },
                         interrupted))
            return e;
        std::vector<std::string> names;
        bool ok = true;
        if (!(si->second.flags & NFT_SET_INTERVAL)) {
            for (const auto& x : elems) {
                if (x.flags & NFT_SET_ELEM_CATCHALL) ok = false;
                else names.push_back(ifname_of(x.key));
            }
        } else {
            // Ranges [start, end): an exact name is [name, name + 1), a
            // prefix "br*" is ["br", "bs"); an end without a start closes
            // the empty range below the first element.
            std::sort(elems.begin(), elems.end(), [](const Elem& a, const Elem& b) { return a.key < b.key; });
            for (size_t i = 0; i < elems.size() && ok; ++i) {
                if (elems[i].flags & NFT_SET_ELEM_CATCHALL) ok = false;
                if (elems[i].flags & NFT_SET_ELEM_INTERVAL_END) continue;
                if (i + 1 >= elems.size() || !(elems[i + 1].flags & NFT_SET_ELEM_INTERVAL_END)) {
                    ok = false;
                    break;
                }
                const auto& s = elems[i].key;
                const auto& e = elems[i + 1].key;
                std::vector<uint8_t> next = s;  // s + 1 as a big-endian number
                for (size_t k = next.size(); k-- > 0;)
                    if (++next[k] != 0) break;
                std::vector<uint8_t> prefix(s.begin(), std::find(s.begin(), s.end(), uint8_t{0}));
                std::vector<uint8_t> prefix_end = prefix;
                if (!prefix_end.empty()) ++prefix_end.back();
                prefix_end.resize(s.size(), 0);
                if (e == next) names.emplace_back(prefix.begin(), prefix.end());
                else if (!prefix.empty() && prefix.back() != 0xff && e == prefix_end) names.push_back(std::string(prefix.begin(), prefix.end()) + "*");
                else ok = false;
                ++i;
            }
        }
        std::sort(names.begin(), names.end());  // as nft lists them
        if (ok) out = names;
        elements_[key] = out;
        return 0;
    }

    int decode(const Rule& r, json& expr, bool* interrupted) {
        std::map<uint32_t, Reg> regs;
        for (const auto& x : r.exprs) {
            const std::string& n = x.name;
            if (n == "meta" || n == "ct") {
                const bool meta = n == "meta";
                const auto dreg = static_cast<uint16_t>(meta ? int{NFTA_META_DREG} : int{NFTA_CT_DREG});
                const uint32_t key = x.be32(static_cast<uint16_t>(meta ? int{NFTA_META_KEY} : int{NFTA_CT_KEY}));
                if (x.has(dreg)) {
                    Reg g;
                    g.kind = meta ? Reg::Meta : (x.has(NFTA_CT_DIRECTION) ? Reg::Other : Reg::Ct);
                    g.key = key;
                    g.what = n;
                    regs[x.be32(dreg)] = g;
                } else {
                    const json what = {{n, {{"key", meta ? meta_key_name(key) : std::to_string(key)}}}};
                    expr.push_back({{"mangle", {{"key", what}}}});
                }
            } else if (n == "bitwise") {
                const uint32_t sreg = x.be32(NFTA_BITWISE_SREG), dreg = x.be32(NFTA_BITWISE_DREG);
                Reg g;
                g.what = "bitwise";
                auto src = regs.find(sreg);
                const auto mask = data_value(x.raw(NFTA_BITWISE_MASK));
                const auto xr = data_value(x.raw(NFTA_BITWISE_XOR));
                const bool bool_op = !x.has(NFTA_BITWISE_OP) || x.be32(NFTA_BITWISE_OP) == NFT_BITWISE_BOOL;
                if (src != regs.end() && src->second.kind == Reg::Ct && src->second.key == NFT_CT_STATE && bool_op && mask.size() == 4 &&
                    std::all_of(xr.begin(), xr.end(), [](uint8_t b) { return b == 0; })) {
                    g.kind = Reg::CtStateMask;
                    std::memcpy(&g.mask, mask.data(), 4);
                }
                regs[dreg] = g;
            } else if (n == "cmp") {
                expr.push_back(cmp(x, regs));
            } else if (n == "lookup") {
                json j;
                if (int e = lookup(r, x, regs, j, interrupted)) return e;
                expr.push_back(j);
            } else if (n == "immediate") {
                const uint32_t dreg = x.be32(NFTA_IMMEDIATE_DREG);
                if (dreg != NFT_REG_VERDICT) {
                    regs[dreg] = Reg{Reg::Other, 0, 0, "immediate"};
                    continue;
                }
                const auto d = nl::parse_attrs(x.raw(NFTA_IMMEDIATE_DATA).data(), x.raw(NFTA_IMMEDIATE_DATA).size());
                const nl::Attr* v = nl::find(d, NFTA_DATA_VERDICT);
                if (!v) continue;
                const auto va = nl::parse_attrs(*v);
                const nl::Attr* code = nl::find(va, NFTA_VERDICT_CODE);
                const nl::Attr* chain = nl::find(va, NFTA_VERDICT_CHAIN);
                const auto c = static_cast<int32_t>(code ? code->be32() : 0);
                if (c == NF_ACCEPT) expr.push_back({{"accept", nullptr}});
                else if (c == NF_DROP) expr.push_back({{"drop", nullptr}});
                else if (c == NFT_RETURN) expr.push_back({{"return", nullptr}});
                else if (c == NFT_JUMP) expr.push_back({{"jump", {{"target", chain ? chain->str() : ""}}}});
                else if (c == NFT_GOTO) expr.push_back({{"goto", {{"target", chain ? chain->str() : ""}}}});
                else if (c == NF_QUEUE) expr.push_back({{"queue", nullptr}});
                // NFT_CONTINUE and NFT_BREAK end nothing.
            } else if (n == "match") {
                expr.push_back(xt_match(x));
            } else if (n == "target") {
                expr.push_back({{"xt", {{"type", "target"}, {"name", x.str(NFTA_TARGET_NAME)}}}});
            } else if (n == "counter" || n == "log" || n == "notrack" || n == "limit" || n == "quota" || n == "reject") {
                expr.push_back({{n, nullptr}});
            } else if (n == "objref") {
                expr.push_back({{x.be32(NFTA_OBJREF_IMM_TYPE) == NFT_OBJECT_COUNTER ? "counter" : "objref", nullptr}});
            } else if (n == "flow_offload") {
                expr.push_back({{"flow", nullptr}});
            } else if (n == "payload" && x.has(NFTA_PAYLOAD_DREG)) {
                regs[x.be32(NFTA_PAYLOAD_DREG)] = Reg{Reg::Other, 0, 0, n};
            } else if (n == "payload") {
                expr.push_back({{"mangle", {{"key", {{n, nullptr}}}}}});
            } else if (n == "exthdr" || n == "rt" || n == "fib" || n == "socket" || n == "osf" || n == "numgen" || n == "hash" ||
                       n == "xfrm" || n == "tunnel" || n == "byteorder" || n == "inner" || n == "last") {
                // Loads (or a rewrite of) a register: whatever a later test
                // compares is then of unknown origin.
                regs.clear();
            } else {
                // nat, masq, redir, range, dynset, connlimit, dup, fwd, ...:
                // a condition or an action the firewall model cannot weigh.
                expr.push_back({{n, nullptr}});
                regs.clear();
            }
        }
        return 0;
    }

    static json left_of(const Reg& g) {
        if (g.kind == Reg::Meta) return {{"meta", {{"key", meta_key_name(g.key)}}}};
        if (g.kind == Reg::Ct || g.kind == Reg::CtStateMask) return {{"ct", {{"key", g.key == NFT_CT_STATE ? "state" : std::to_string(g.key)}}}};
        return {{g.what.empty() ? "unknown" : g.what, json::object()}};
    }

    static json cmp(const Expr& x, const std::map<uint32_t, Reg>& regs) {
        static const char* const ops[] = {"==", "!=", "<", "<=", ">", ">="};
        const uint32_t opn = x.be32(NFTA_CMP_OP);
        const std::string op = opn < 6 ? ops[opn] : "?";
        const auto value = data_value(x.raw(NFTA_CMP_DATA));
        auto it = regs.find(x.be32(NFTA_CMP_SREG));
        if (it == regs.end()) return opaque_match(op, {{"unknown", json::object()}});
        const Reg& g = it->second;
        const bool eq_or_ne = opn == NFT_CMP_EQ || opn == NFT_CMP_NEQ;
        if (g.kind == Reg::Meta && is_ifname_key(g.key) && eq_or_ne)
            return {{"match", {{"op", op}, {"left", left_of(g)}, {"right", ifname_of(value)}}}};
        if (g.kind == Reg::Meta && (g.key == NFT_META_IIF || g.key == NFT_META_OIF) && eq_or_ne && value.size() == 4) {
            uint32_t idx;
            std::memcpy(&idx, value.data(), 4);
            char name[IF_NAMESIZE] = {};
            const std::string n = ::if_indextoname(idx, name) ? std::string(name) : "#" + std::to_string(idx);
            return {{"match", {{"op", op}, {"left", left_of(g)}, {"right", n}}}};
        }
        if (g.kind == Reg::Ct && g.key == NFT_CT_STATE && eq_or_ne && value.size() == 4) {
            uint32_t v;
            std::memcpy(&v, value.data(), 4);
            return {{"match", {{"op", op}, {"left", left_of(g)}, {"right", state_names(v, false, false)}}}};
        }
        if (g.kind == Reg::CtStateMask && eq_or_ne && value.size() == 4 &&
            std::all_of(value.begin(), value.end(), [](uint8_t b) { return b == 0; })) {
            // (state & mask) != 0: one of these states; == 0: none of them.
            return {{"match", {{"op", opn == NFT_CMP_NEQ ? "in" : "!="}, {"left", left_of(g)}, {"right", state_names(g.mask, false, false)}}}};
        }
        return opaque_match(op, left_of(g));
    }

    int lookup(const Rule& r, const Expr& x, const std::map<uint32_t, Reg>& regs, json& out, bool* interrupted) {
        const bool inv = x.be32(NFTA_LOOKUP_FLAGS) & NFT_LOOKUP_F_INV;
        if (x.has(NFTA_LOOKUP_DREG)) {
            out = {{x.be32(NFTA_LOOKUP_DREG) == NFT_REG_VERDICT ? "vmap" : "map", nullptr}};
            return 0;
        }
        auto it = regs.find(x.be32(NFTA_LOOKUP_SREG));
        const std::string set = x.str(NFTA_LOOKUP_SET);
        if (it != regs.end() && it->second.kind == Reg::Meta && is_ifname_key(it->second.key)) {
            std::optional<std::vector<std::string>> names;
            if (int e = set_names(r.family, r.table, set, names, interrupted)) return e;
            if (names) {
                out = {{"match", {{"op", inv ? "!=" : "=="}, {"left", left_of(it->second)}, {"right", {{"set", *names}}}}}};
                return 0;
            }
        }
        out = opaque_match(inv ? "!=" : "==", {{"lookup", {{"set", set}}}});
        return 0;
    }

    static json xt_match(const Expr& x) {
        const std::string name = x.str(NFTA_MATCH_NAME);
        const uint32_t rev = x.be32(NFTA_MATCH_REV);
        const auto& info = x.raw(NFTA_MATCH_INFO);
        json j = {{"type", "match"}, {"name", name}};
        if (name == "conntrack" && rev >= 1 && rev <= 3) {
            // mtinfo1 has 8-bit state masks; 2 and 3 share 16-bit ones at
            // the same offsets.
            const size_t need = rev == 1 ? sizeof(xt_conntrack_mtinfo1) : sizeof(xt_conntrack_mtinfo2);
            if (info.size() >= need) {
                uint16_t flags, invert, state = 0;
                std::memcpy(&flags, info.data() + offsetof(xt_conntrack_mtinfo2, match_flags), 2);
                std::memcpy(&invert, info.data() + offsetof(xt_conntrack_mtinfo2, invert_flags), 2);
                if (rev == 1) state = info[offsetof(xt_conntrack_mtinfo1, state_mask)];
                else std::memcpy(&state, info.data() + offsetof(xt_conntrack_mtinfo2, state_mask), 2);
                if ((flags & ~(XT_CONNTRACK_STATE | XT_CONNTRACK_STATE_ALIAS)) == 0 && (flags & XT_CONNTRACK_STATE))
                    return {{"match", {{"op", (invert & XT_CONNTRACK_STATE) ? "!=" : "in"}, {"left", {{"ct", {{"key", "state"}}}}},
                                       {"right", state_names(state, true, false)}, {"xt", name}}}};
            }
        } else if (name == "state" && info.size() >= sizeof(xt_state_info)) {
            unsigned int mask;
            std::memcpy(&mask, info.data(), sizeof mask);
            return {{"match", {{"op", "in"}, {"left", {{"ct", {{"key", "state"}}}}}, {"right", state_names(mask, false, true)}, {"xt", name}}}};
        } else if (name == "physdev" && info.size() >= sizeof(xt_physdev_info)) {
            const uint8_t invert = info[offsetof(xt_physdev_info, invert)];
            const uint8_t bitmask = info[offsetof(xt_physdev_info, bitmask)];
            if (bitmask == XT_PHYSDEV_OP_BRIDGED) j["physdev_is_bridged"] = !(invert & XT_PHYSDEV_OP_BRIDGED);
        }
        return {{"xt", j}};
    }

    nl::Socket sock_;
    std::set<uint8_t> sets_loaded_;
    std::map<std::string, SetInfo> sets_;
    std::map<std::string, std::optional<std::vector<std::string>>> elements_;
};

}  // namespace

NftRuleset read_nftables() {
    NftRuleset out;
    Reader r;
    int e = r.open();
    for (int attempt = 0; e == 0; ++attempt) {
        json items;
        bool interrupted = false;
        e = r.read(items, &interrupted);
        if (e == 0 && (!interrupted || attempt == 2)) {
            out.ruleset = {{"nftables", items}};
            return out;
        }
    }
    out.error_code = e;
    out.error = std::string("reading nf_tables over netlink: ") + std::strerror(e) +
                (e == EPERM || e == EACCES ? " (needs root: CAP_NET_ADMIN)" : "");
    return out;
}

}  // namespace kvmready::host
