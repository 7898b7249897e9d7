// The nf_tables decoder (src/host/nft_decode.cpp) held to the real tools on
// real data: the kernel's own netlink replies for rulesets made by nft and
// iptables-nft in a network namespace (fuzz/corpus/nft/, recorded by
// scripts/capture-nft-seeds.sh), decoded and compared with what `nft -j list
// ruleset` and `iptables-nft -S` said about the same namespace: chains,
// hooks, priorities, policies, verdicts and jumps, interface matches (names,
// prefixes, sets, indexes), conntrack state, the compat matches' names and
// options. The live test records the same rulesets afresh on this kernel.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/nft_decode.hpp"
#include "host/process.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSource = fs::path(KVMREADY_SOURCE_DIR);
const fs::path kSeeds = kSource / "fuzz" / "corpus" / "nft";

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> rulesets(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".nl") out.push_back(e.path().stem().string());
    std::sort(out.begin(), out.end());
    return out;
}

json decode_recorded(const fs::path& dir, const std::string& name) {
    const std::string bytes = slurp(dir / (name + ".nl"));
    const json links = json::parse(slurp(dir / (name + ".links.json")));
    auto namer = [&](uint32_t idx) { return links.value(std::to_string(idx), std::string()); };
    return kvmready::host::decode_nft_dump({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, namer);
}

// Interface names as one sorted, comparable string: "virbr0" or "{a,br*}".
std::string names(const json& right, const std::map<std::string, json>& named_sets) {
    if (right.is_string()) {
        const std::string s = right;
        if (s.empty() || s[0] != '@') return s;
        auto it = named_sets.find(s.substr(1));
        return it == named_sets.end() ? s : names(json{{"set", it->second}}, named_sets);
    }
    std::vector<std::string> v;
    const json& elems = right.contains("set") ? right["set"] : right;
    for (const auto& e : elems) v.push_back(e.is_string() ? e.get<std::string>() : e.dump());
    std::sort(v.begin(), v.end());
    std::string out = "{";
    for (const auto& s : v) out += (out.size() > 1 ? "," : "") + s;
    return out + "}";
}

std::string states(const json& right) {
    std::vector<std::string> v;
    if (right.is_string()) v.push_back(right);
    else for (const auto& s : right) v.push_back(s);
    std::sort(v.begin(), v.end());
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out;
}

// One statement as both sides can say it, or "" for what the decoder keeps
// opaque on purpose (addresses, ports, counters' values, ...).
std::string statement(const json& s, const std::map<std::string, json>& named_sets) {
    for (const char* v : {"accept", "drop", "return", "queue", "vmap"})
        if (s.contains(v)) return v;
    for (const char* v : {"jump", "goto"})
        if (s.contains(v)) return std::string(v) + " " + s[v].value("target", "");
    if (s.contains("xt")) return "xt " + s["xt"].value("type", "") + " " + s["xt"].value("name", "");
    if (!s.contains("match")) return "";
    const json& m = s["match"];
    if (m.contains("xt")) return "xt match " + m["xt"].get<std::string>();  // ours: a compat match decoded
    const json left = m.value("left", json::object()), right = m.value("right", json("<opaque>"));
    if (left.contains("meta")) {
        const std::string key = left["meta"].value("key", "");
        if (key == "iifname" || key == "oifname" || key == "iif" || key == "oif" || key == "ibrname" || key == "obrname")
            return "meta " + key + " " + m.value("op", "") + " " + names(right, named_sets);
    }
    if (left.contains("ct") && left["ct"].value("key", "") == "state") return "ct state " + m.value("op", "") + " " + states(right);
    return "";
}

struct View {
    std::map<std::string, json> chains;                           // "family table name" -> hook, prio, policy, type
    std::map<std::string, std::vector<std::vector<std::string>>> rules;  // "family table chain" -> statements per rule
};

View view(const json& items) {
    View v;
    std::map<std::string, json> named_sets;
    for (const auto& item : items)
        if (item.contains("set")) named_sets[item["set"].value("name", "")] = item["set"].value("elem", json::array());
    for (const auto& item : items) {
        if (item.contains("chain")) {
            const json& c = item["chain"];
            json k = json::object();
            for (const char* f : {"type", "hook", "prio", "policy"})
                if (c.contains(f)) k[f] = c[f];
            v.chains[c.value("family", "") + " " + c.value("table", "") + " " + c.value("name", "")] = k;
        } else if (item.contains("rule")) {
            const json& r = item["rule"];
            std::vector<std::string> st;
            for (const auto& s : r["expr"])
                if (auto x = statement(s, named_sets); !x.empty()) st.push_back(x);
            v.rules[r.value("family", "") + " " + r.value("table", "") + " " + r.value("chain", "")].push_back(st);
        }
    }
    return v;
}

// "meta iifname == virbr0" -> "meta iifname", "jump sub" -> "jump".
std::string kind_of(const std::string& st) {
    const size_t first = st.find(' ');
    if (st.rfind("meta ", 0) == 0 || st.rfind("ct ", 0) == 0) return st.substr(0, st.find(' ', first + 1));
    return st.substr(0, first);
}

// Returns the kinds of statements compared ("meta iifname", "jump", ...).
std::set<std::string> expect_same_as_nft(const fs::path& dir, const std::string& name) {
    SCOPED_TRACE(dir / name);
    const json ours = decode_recorded(dir, name);
    const json nft = json::parse(slurp(dir / (name + ".nft.json")));
    const View a = view(ours), b = view(nft.at("nftables"));
    std::set<std::string> kinds;
    for (const auto& [chain, rules] : b.rules)
        for (const auto& r : rules)
            for (const auto& st : r) kinds.insert(kind_of(st));
    EXPECT_FALSE(b.chains.empty()) << "nft listed no chains: a ruleset that loaded nothing proves nothing";
    EXPECT_EQ(a.chains, b.chains);
    for (const auto& [chain, rules] : b.rules) {
        auto it = a.rules.find(chain);
        if (it == a.rules.end()) {
            ADD_FAILURE() << chain << " missing from the decoded dump";
            continue;
        }
        if (it->second.size() != rules.size()) {
            ADD_FAILURE() << chain << ": " << it->second.size() << " rules decoded, nft lists " << rules.size();
            continue;
        }
        for (size_t i = 0; i < rules.size(); ++i) EXPECT_EQ(it->second[i], rules[i]) << chain << " rule " << i;
    }
    for (const auto& [chain, rules] : a.rules) EXPECT_TRUE(b.rules.count(chain)) << chain << " only in the decoded dump";
    return kinds;
}

// What the recorded rulesets must exercise for the comparison to hold the
// decoder to anything.
const std::set<std::string> kKinds = {"accept", "drop", "return", "jump", "goto", "vmap", "meta iifname", "meta oifname", "meta iif", "meta oif",
                                      "ct state", "xt"};

void expect_kinds(const std::set<std::string>& seen) {
    for (const auto& k : kKinds) EXPECT_TRUE(seen.count(k)) << "no \"" << k << "\" statement in the recorded rulesets";
}

// The compat matches nft shows by name only: their options as iptables-nft
// prints them, rule by rule, for the filter table.
std::vector<std::string> compat_options_of_iptables(const std::string& line) {
    std::vector<std::string> out, w;
    std::istringstream in(line);
    for (std::string s; in >> s;) w.push_back(s);
    auto upper = [](std::string s) {
        std::vector<std::string> v;
        std::istringstream in(s);
        for (std::string x; std::getline(in, x, ',');) v.push_back(x);
        std::sort(v.begin(), v.end());
        std::string o;
        for (const auto& x : v) o += (o.empty() ? "" : ",") + x;
        return o;
    };
    for (size_t i = 0; i < w.size(); ++i) {
        const bool neg = i > 0 && w[i - 1] == "!";
        // `-m state --state` is the conntrack match under another name
        // (xt_conntrack's STATE_ALIAS flag): the same test.
        if ((w[i] == "--ctstate" || w[i] == "--state") && i + 1 < w.size())
            out.push_back(std::string(neg ? "!" : "") + "ctstate " + upper(w[i + 1]));
        else if (w[i] == "--physdev-is-bridged") out.push_back(std::string(neg ? "!" : "") + "physdev-is-bridged");
    }
    return out;
}

std::vector<std::string> compat_options_decoded(const json& expr) {
    std::vector<std::string> out;
    for (const auto& s : expr) {
        if (s.contains("match") && s["match"].contains("xt")) {
            const json& m = s["match"];
            // Sorted lower-case names sort the same upper-cased.
            std::string st = states(m.value("right", json("<opaque>")));
            std::transform(st.begin(), st.end(), st.begin(), ::toupper);
            out.push_back(std::string(m.value("op", "") == "!=" ? "!" : "") + "ctstate " + st);
        } else if (s.contains("xt") && s["xt"].contains("physdev_is_bridged")) {
            out.push_back(std::string(s["xt"]["physdev_is_bridged"].get<bool>() ? "" : "!") + "physdev-is-bridged");
        }
    }
    return out;
}

void expect_same_as_iptables(const fs::path& dir, const std::string& name) {
    SCOPED_TRACE(dir / name);
    const json ours = decode_recorded(dir, name);
    std::map<std::string, std::vector<std::vector<std::string>>> want, got;
    std::istringstream in(slurp(dir / (name + ".ipt.txt")));
    for (std::string line; std::getline(in, line);) {
        std::istringstream w(line);
        std::string a, chain;
        w >> a >> chain;
        if (a == "-A") want[chain].push_back(compat_options_of_iptables(line));
    }
    for (const auto& item : ours)
        if (item.contains("rule") && item["rule"]["family"] == "ip" && item["rule"]["table"] == "filter")
            got[item["rule"]["chain"]].push_back(compat_options_decoded(item["rule"]["expr"]));
    EXPECT_EQ(got, want);
}

TEST(NftDecode, RecordedDumpsAgreeWithNft) {
    const auto names = rulesets(kSeeds);
    ASSERT_GE(names.size(), 3u) << kSeeds << " holds no recorded dumps";
    std::set<std::string> kinds;
    for (const auto& n : names) kinds.merge(expect_same_as_nft(kSeeds, n));
    expect_kinds(kinds);
}

TEST(NftDecode, RecordedCompatMatchesAgreeWithIptables) {
    int rules_with_options = 0;
    for (const auto& n : rulesets(kSeeds)) {
        expect_same_as_iptables(kSeeds, n);
        for (const auto& item : decode_recorded(kSeeds, n))
            if (item.contains("rule") && !compat_options_decoded(item["rule"]["expr"]).empty()) ++rules_with_options;
    }
    // conntrack, state and physdev matches are in the recordings.
    EXPECT_GE(rules_with_options, 5);
}

// Every cut of a real dump (a reply torn anywhere) decodes without throwing,
// to no more rules than the whole.
TEST(NftDecode, TruncatedDumpsDecode) {
    for (const auto& n : rulesets(kSeeds)) {
        const std::string bytes = slurp(kSeeds / (n + ".nl"));
        const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
        const size_t whole = kvmready::host::decode_nft_dump({p, bytes.size()}).size();
        // About 400 cuts per dump, and every one in the first messages.
        for (size_t len = 0; len < bytes.size(); len += len < 512 ? 1 : std::max<size_t>(1, bytes.size() / 400)) {
            size_t items = 0;
            EXPECT_NO_THROW(items = kvmready::host::decode_nft_dump({p, len}).size()) << n << " cut at " << len;
            EXPECT_LE(items, whole) << n << " cut at " << len;
            EXPECT_NO_THROW((void)kvmready::host::nft_sets_to_list({p, len}));
        }
    }
}

// Afresh on this kernel: the committed rulesets loaded in namespaces made
// for them, read by the real binary, compared with the real tools.
TEST(NftDecode, LiveNamespacesAgreeWithNftAndIptables) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to make network namespaces";
    for (const char* tool : {"nft", "iptables-nft", "ip", "python3"}) {
        bool found = false;
        for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) found = found || ::access((std::string(dir) + tool).c_str(), X_OK) == 0;
        if (!found) GTEST_SKIP() << tool << " is not installed (scripts/capture-nft-seeds.sh needs it)";
    }
    kvmready::testsupport::TempDir tmp("kvmready-nft-live");
    const auto r = kvmready::host::run_process({"bash", (kSource / "scripts" / "capture-nft-seeds.sh").string(), KVMREADY_BINARY,
                                                tmp.path.string()},
                                               60000);
    if (r.exit_code != 0 && r.err.find("netns") != std::string::npos) GTEST_SKIP() << "no network namespaces here: " << r.err;
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << r.error;
    const auto names = rulesets(tmp.path);
    ASSERT_EQ(names, rulesets(kSeeds));
    std::set<std::string> kinds;
    for (const auto& n : names) {
        kinds.merge(expect_same_as_nft(tmp.path, n));
        expect_same_as_iptables(tmp.path, n);
    }
    expect_kinds(kinds);
}

}  // namespace
