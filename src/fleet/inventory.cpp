#include "fleet/inventory.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "host/bounded_read.hpp"
#include "util/text.hpp"

using nlohmann::json;

namespace kvmready::fleet {

namespace {

constexpr size_t kMaxInventoryBytes = 16u << 20;
constexpr size_t kMaxExpandedHosts = 100000;  // a range like [0:999999999] must not eat the memory

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// The first non-blank, non-comment line, trimmed.
std::string first_line(const std::string& text) {
    for (const auto& l : lines_of(text)) {
        const std::string t = util::trim(l);
        if (!t.empty() && t[0] != '#' && t[0] != ';') return t;
    }
    return "";
}

struct Collector {
    std::vector<std::string> hosts;
    std::set<std::string> seen;
    void add(const std::string& pattern) {
        for (auto& h : expand_host_range(pattern)) {
            if (seen.size() >= kMaxExpandedHosts) throw DataError(fmt::format("more than {} hosts", kMaxExpandedHosts));
            if (seen.insert(h).second) hosts.push_back(h);
        }
    }
};

// `ansible-inventory --list` (groups with "hosts" arrays, _meta.hostvars)
// and YAML inventories written as JSON (groups with "hosts" objects).
void json_group(const json& g, Collector& c, int depth) {
    if (!g.is_object() || depth > 64) return;
    if (g.contains("hosts")) {
        if (g["hosts"].is_array()) {
            for (const auto& h : g["hosts"])
                if (h.is_string()) c.add(h.get<std::string>());
        } else if (g["hosts"].is_object()) {
            for (const auto& [h, v] : g["hosts"].items()) c.add(h);
        }
    }
    if (g.contains("children") && g["children"].is_object())
        for (const auto& [name, child] : g["children"].items()) json_group(child, c, depth + 1);
}

void parse_json(const json& j, Collector& c) {
    if (!j.is_object()) throw DataError("JSON inventory is not an object");
    if (j.contains("_meta") && j["_meta"].is_object() && j["_meta"].contains("hostvars") && j["_meta"]["hostvars"].is_object())
        for (const auto& [h, v] : j["_meta"]["hostvars"].items()) c.add(h);
    for (const auto& [name, g] : j.items())
        if (name != "_meta") json_group(g, c, 0);
}

// The YAML inventory's shape: every key directly under a "hosts:" key is a
// host. Keys are found by indentation; values and flow collections are not
// needed (a host's variables sit deeper than its name).
void parse_yaml(const std::string& text, Collector& c) {
    std::vector<std::pair<size_t, std::string>> stack;  // indent, key
    for (const auto& raw : lines_of(text)) {
        std::string l = raw;
        if (const auto hash = l.find(" #"); hash != std::string::npos) l = l.substr(0, hash);
        const std::string t = util::trim(l);
        if (t.empty() || t[0] == '#' || t == "---" || t == "...") continue;
        const size_t indent = l.find_first_not_of(' ');
        if (t[0] == '-') continue;  // a list item: not part of an inventory's host structure
        // "key:" or "key: value"; a host range holds colons of its own (web[01:20]:).
        auto colon = t.find(": ");
        if (colon == std::string::npos && t.back() == ':') colon = t.size() - 1;
        if (colon == std::string::npos) throw DataError(fmt::format("YAML line without a key: '{}'", t));
        std::string key = util::trim(t.substr(0, colon));
        if (key.size() >= 2 && (key.front() == '"' || key.front() == '\'') && key.back() == key.front()) key = key.substr(1, key.size() - 2);
        while (!stack.empty() && stack.back().first >= indent) stack.pop_back();
        if (!stack.empty() && stack.back().second == "hosts" && !key.empty()) c.add(key);
        stack.emplace_back(indent, key);
    }
}

// INI: [group], [group:vars] and [group:children] sections; a host line is
// a name (or pattern, maybe with :port) followed by variables.
void parse_ini(const std::string& text, Collector& c) {
    bool hosts_section = true;
    for (const auto& raw : lines_of(text)) {
        const std::string t = util::trim(raw);
        if (t.empty() || t[0] == '#' || t[0] == ';') continue;
        if (t[0] == '[' && t.back() == ']' && t.find(' ') == std::string::npos) {
            const std::string section = t.substr(1, t.size() - 2);
            hosts_section = section.find(':') == std::string::npos || section.ends_with(":hosts");
            continue;
        }
        if (!hosts_section) continue;
        std::string name = t.substr(0, t.find_first_of(" \t"));
        // host:port, but not an IPv6 address (several colons)
        if (const auto colon = name.rfind(':'); colon != std::string::npos && std::count(name.begin(), name.end(), ':') == 1 &&
                                                 colon + 1 < name.size() &&
                                                 std::all_of(name.begin() + static_cast<long>(colon) + 1, name.end(), ::isdigit))
            name = name.substr(0, colon);
        c.add(name);
    }
}

}  // namespace

std::vector<std::string> expand_host_range(const std::string& pattern) {
    const auto open = pattern.find('[');
    if (open == std::string::npos) return {pattern};
    const auto close = pattern.find(']', open);
    if (close == std::string::npos) throw DataError(fmt::format("host pattern '{}': '[' without ']'", pattern));
    const std::string head = pattern.substr(0, open), range = pattern.substr(open + 1, close - open - 1);
    const std::vector<std::string> tails = expand_host_range(pattern.substr(close + 1));
    std::vector<std::string> parts;
    std::stringstream ss(range);
    for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty())
        throw DataError(fmt::format("host pattern '{}': range must be [START:END] or [START:END:STEP]", pattern));
    std::vector<std::string> items;
    const bool numeric = std::all_of(parts[0].begin(), parts[0].end(), ::isdigit) && std::all_of(parts[1].begin(), parts[1].end(), ::isdigit);
    const bool alpha = parts[0].size() == 1 && parts[1].size() == 1 && std::isalpha(static_cast<unsigned char>(parts[0][0])) &&
                       std::isalpha(static_cast<unsigned char>(parts[1][0]));
    long step = 1;
    if (parts.size() == 3) {
        if (parts[2].empty() || parts[2].size() > 6 || !std::all_of(parts[2].begin(), parts[2].end(), ::isdigit) || std::stol(parts[2]) == 0)
            throw DataError(fmt::format("host pattern '{}': bad step", pattern));
        step = std::stol(parts[2]);
    }
    if (numeric && parts[0].size() <= 9 && parts[1].size() <= 9) {
        const long a = std::stol(parts[0]), b = std::stol(parts[1]);
        if (b < a || static_cast<size_t>((b - a) / step) >= kMaxExpandedHosts) throw DataError(fmt::format("host pattern '{}': bad or huge range", pattern));
        const int width = parts[0].size() > 1 && parts[0][0] == '0' ? static_cast<int>(parts[0].size()) : 0;
        for (long i = a; i <= b; i += step) items.push_back(fmt::format("{:0{}d}", i, width));
    } else if (alpha && parts[0][0] <= parts[1][0]) {
        for (char ch = parts[0][0]; ch <= parts[1][0]; ch = static_cast<char>(ch + step)) items.emplace_back(1, ch);
    } else {
        throw DataError(fmt::format("host pattern '{}': bad range [{}]", pattern, range));
    }
    if (items.size() * tails.size() > kMaxExpandedHosts) throw DataError(fmt::format("host pattern '{}' names too many hosts", pattern));
    std::vector<std::string> out;
    for (const auto& i : items)
        for (const auto& t : tails) out.push_back(head + i + t);
    return out;
}

std::vector<std::string> parse_inventory(const std::string& text, const std::string& name) {
    Collector c;
    const std::string first = first_line(text);
    try {
        if (!first.empty() && (first[0] == '{' || first[0] == '[') && first.find(']') != first.size() - 1) {
            json j;
            try {
                j = json::parse(text);
            } catch (const json::parse_error& e) {
                throw DataError(std::string("not valid JSON: ") + e.what());
            }
            parse_json(j, c);
        } else if (first == "---" || (!first.empty() && first.back() == ':' && first[0] != '[')) {
            parse_yaml(text, c);
        } else {
            parse_ini(text, c);
        }
    } catch (const DataError& e) {
        throw DataError(fmt::format("--inventory {}: {}", name, e.what()));
    }
    return c.hosts;
}

std::vector<std::string> read_inventory(const std::string& path) {
    return parse_inventory(host::read_input_file(path, kMaxInventoryBytes, "--inventory " + path), path);
}

}  // namespace kvmready::fleet
