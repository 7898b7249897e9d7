#include "fleet/model.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <set>

#include "util/text.hpp"

using nlohmann::json;

namespace kvmready::fleet {

namespace {

// A member as a string; "" when absent, null or of another type (the
// loader checked the types the fleet relies on).
std::string str(const json& j, const char* key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
    return j[key].get<std::string>();
}

// Verdicts in the order the page lists them: readiest first.
const std::vector<std::string>& verdict_order() {
    static const std::vector<std::string> v = {"ready", "ready_with_warnings", "passed", "passed_with_warnings", "undetermined", "failed", "not_ready"};
    return v;
}

HostFinding finding_of(const json& c) {
    HostFinding f{str(c, "id"), str(c, "title"), str(c, "level"), str(c, "status"), str(c, "message"), "", {}, ""};
    if (c.contains("remediation") && c["remediation"].is_object()) {
        const json& r = c["remediation"];
        f.fix_text = str(r, "text");
        f.fix_id = str(r, "fix_id");
        if (r.contains("commands") && r["commands"].is_array())
            for (const auto& x : r["commands"])
                if (x.is_string()) f.commands.push_back(x.get<std::string>());
    }
    return f;
}

FleetHost host_of(const LoadedReport& lr, std::vector<std::string>& check_ids, std::map<std::string, std::string>& titles) {
    const json& j = *lr.report;
    const json& h = j["host"];
    FleetHost x;
    x.hostname = str(h, "hostname");
    x.id = str(h, "id") == "unknown" ? "" : str(h, "id");
    x.id_reason = x.id.empty() ? (h.contains("id") ? str(h, "id_reason") : "the report has no host.id (made by an older kvmready)") : "";
    x.key = x.id.empty() ? "hostname:" + util::lower(x.hostname) : "id:" + x.id;
    x.kernel = str(h, "kernel");
    x.verdict = str(j, "verdict");
    x.verdict_text = str(j, "verdict_text");
    x.path = lr.path;
    x.source = lr.source;
    if (j.contains("run")) x.when = !str(j["run"], "recorded_at").empty() ? str(j["run"], "recorded_at") : str(j["run"], "started");
    x.when_unix = parse_rfc3339(x.when);
    for (const auto& c : j["checks"]) {
        const std::string id = str(c, "id"), status = str(c, "status");
        if (!titles.count(id)) {
            titles[id] = str(c, "title");
            check_ids.push_back(id);
        }
        x.status[id] = status;
        if (status != "pass" && status != "skip") x.findings.push_back(finding_of(c));
    }
    return x;
}

// Same host reported twice (a re-run, a bundle beside its JSON): the newest wins.
bool newer(const FleetHost& a, const FleetHost& b) {
    if (a.when_unix.value_or(INT64_MIN) != b.when_unix.value_or(INT64_MIN)) return a.when_unix.value_or(INT64_MIN) > b.when_unix.value_or(INT64_MIN);
    return a.path > b.path;
}

// Inventory names and hostnames compare without case, and a short name
// matches its FQDN ("kvm01" and "kvm01.example.org").
std::string short_name(const std::string& n) { return util::lower(n.substr(0, n.find('.'))); }
bool same_host(const std::string& a, const std::string& b) {
    if (util::lower(a) == util::lower(b)) return true;
    const bool a_fq = a.find('.') != std::string::npos, b_fq = b.find('.') != std::string::npos;
    return a_fq != b_fq && short_name(a) == short_name(b);
}

void rank(Fleet& f) {
    std::map<std::string, RankedCheck> by_id;
    std::map<std::string, std::map<std::string, FixVariant>> fixes;  // id -> text+commands -> variant
    for (const auto& h : f.hosts)
        for (const auto& x : h.findings) {
            if (x.status != "fail" && x.status != "warn") continue;
            RankedCheck& r = by_id[x.id];
            r.id = x.id;
            r.title = x.title;
            r.level = x.level;
            if (x.status == "warn") {
                ++r.warned;
                continue;
            }
            r.hosts.push_back(h.hostname);
            std::string k = x.fix_text;
            for (const auto& c : x.commands) k += "\n" + c;
            FixVariant& v = fixes[x.id][k];
            v.text = x.fix_text;
            v.commands = x.commands;
            v.fix_id = x.fix_id;
            ++v.hosts;
        }
    for (auto& [id, r] : by_id) {
        if (r.hosts.empty()) continue;
        std::sort(r.hosts.begin(), r.hosts.end());
        for (auto& [k, v] : fixes[id]) r.fixes.push_back(v);
        std::stable_sort(r.fixes.begin(), r.fixes.end(), [](const FixVariant& a, const FixVariant& b) { return a.hosts > b.hosts; });
        f.ranked.push_back(std::move(r));
    }
    std::stable_sort(f.ranked.begin(), f.ranked.end(), [](const RankedCheck& a, const RankedCheck& b) {
        if (a.hosts.size() != b.hosts.size()) return a.hosts.size() > b.hosts.size();
        return (a.level == "required") > (b.level == "required");
    });
}

}  // namespace

bool ready_verdict(const std::string& v) { return v == "ready" || v == "ready_with_warnings" || v == "passed" || v == "passed_with_warnings"; }

std::optional<int64_t> parse_rfc3339(const std::string& s) {
    std::tm tm{};
    int consumed = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        consumed != 19)
        return std::nullopt;
    size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        ++i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    }
    int64_t offset = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int hh = 0, mm = 0;
        if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
        offset = (s[i] == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != s.size() || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return std::nullopt;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<int64_t>(timegm(&tm)) - offset;
}

int Fleet::stale_count() const {
    return static_cast<int>(std::count_if(hosts.begin(), hosts.end(), [](const FleetHost& h) { return h.stale; }));
}

bool Fleet::all_ready() const {
    if (hosts.empty() || !missing.empty() || !unreadable.empty() || stale_count() > 0) return false;
    return std::all_of(hosts.begin(), hosts.end(), [](const FleetHost& h) { return ready_verdict(h.verdict); });
}

Fleet build_fleet(const std::vector<LoadedReport>& reports, const std::optional<std::vector<std::string>>& inventory, int64_t now_unix,
                  int64_t stale_after_seconds) {
    Fleet f;
    f.generated_unix = now_unix;
    f.stale_after_seconds = stale_after_seconds;
    std::map<std::string, size_t> by_key;
    for (const auto& lr : reports) {
        if (!lr.report) {
            f.unreadable.push_back({lr.path, lr.source, lr.error});
            continue;
        }
        FleetHost h = host_of(lr, f.check_ids, f.check_titles);
        auto it = by_key.find(h.key);
        if (it == by_key.end()) {
            by_key[h.key] = f.hosts.size();
            f.hosts.push_back(std::move(h));
            continue;
        }
        FleetHost& old = f.hosts[it->second];
        if (newer(h, old)) {
            h.superseded = std::move(old.superseded);
            h.superseded.push_back(old.path);
            old = std::move(h);
        } else {
            old.superseded.push_back(h.path);
        }
    }
    for (auto& h : f.hosts) h.stale = !h.when_unix || now_unix - *h.when_unix > stale_after_seconds;
    std::sort(f.hosts.begin(), f.hosts.end(), [](const FleetHost& a, const FleetHost& b) {
        const std::string la = util::lower(a.hostname), lb = util::lower(b.hostname);
        return la != lb ? la < lb : a.id < b.id;
    });
    std::map<std::string, int> counts;
    for (const auto& h : f.hosts) ++counts[h.verdict];
    for (const auto& v : verdict_order())
        if (counts.count(v)) f.verdicts.emplace_back(v, counts[v]);
    for (const auto& [v, n] : counts)
        if (std::find(verdict_order().begin(), verdict_order().end(), v) == verdict_order().end()) f.verdicts.emplace_back(v, n);
    if (inventory) {
        f.inventory_given = true;
        for (auto& h : f.hosts)
            h.in_inventory = std::any_of(inventory->begin(), inventory->end(), [&](const std::string& n) { return same_host(n, h.hostname); });
        for (const auto& n : *inventory)
            if (std::none_of(f.hosts.begin(), f.hosts.end(), [&](const FleetHost& h) { return same_host(n, h.hostname); })) f.missing.push_back(n);
    }
    rank(f);
    return f;
}

}  // namespace kvmready::fleet
