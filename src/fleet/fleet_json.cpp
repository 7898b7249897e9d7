#include "fleet/render.hpp"

#include "output/formats.hpp"

namespace kvmready::fleet {

namespace {

using ojson = nlohmann::ordered_json;

ojson or_null(const std::string& s) { return s.empty() ? ojson() : ojson(s); }

ojson host_json(const FleetHost& h, int64_t now) {
    ojson findings = ojson::array();
    for (const auto& x : h.findings)
        findings.push_back({{"id", x.id}, {"title", x.title}, {"level", x.level}, {"status", x.status}, {"message", x.message},
                            {"fix", {{"text", x.fix_text}, {"commands", x.commands}, {"fix_id", or_null(x.fix_id)}}}});
    ojson checks = ojson::object();
    for (const auto& [id, st] : h.status) checks[id] = st;
    return {{"hostname", h.hostname},
            {"id", h.id.empty() ? ojson("unknown") : ojson(h.id)},
            {"id_reason", or_null(h.id_reason)},
            {"verdict", h.verdict},
            {"verdict_text", h.verdict_text},
            {"kernel", h.kernel},
            {"report", h.path},
            {"source", h.source},
            {"reported_at", or_null(h.when)},
            {"age_seconds", h.when_unix ? ojson(now - *h.when_unix) : ojson()},
            {"stale", h.stale},
            {"in_inventory", h.in_inventory},
            {"superseded", h.superseded},
            {"checks", checks},
            {"findings", findings}};
}

}  // namespace

ojson render_fleet_json(const Fleet& f) {
    ojson verdicts = ojson::object();
    for (const auto& [v, n] : f.verdicts) verdicts[v] = n;
    ojson ranking = ojson::array();
    for (const auto& r : f.ranked) {
        ojson fixes = ojson::array();
        for (const auto& x : r.fixes) fixes.push_back({{"text", x.text}, {"commands", x.commands}, {"fix_id", or_null(x.fix_id)}, {"hosts", x.hosts}});
        ranking.push_back({{"id", r.id}, {"title", r.title}, {"level", r.level}, {"hosts_blocked", r.hosts.size()}, {"hosts", r.hosts},
                           {"hosts_warned", r.warned}, {"fixes", fixes}});
    }
    ojson hosts = ojson::array();
    for (const auto& h : f.hosts) hosts.push_back(host_json(h, f.generated_unix));
    ojson unreadable = ojson::array();
    for (const auto& u : f.unreadable) unreadable.push_back({{"path", u.path}, {"source", u.source}, {"error", u.error}});
    return {{"format", "kvmready-fleet/1"},
            {"tool", {{"name", "kvmready"}, {"version", KVMREADY_VERSION}}},
            {"generated", output::rfc3339_utc(f.generated_unix)},
            {"stale_after_seconds", f.stale_after_seconds},
            {"summary",
             {{"hosts", f.hosts.size()},
              {"verdicts", verdicts},
              {"stale", f.stale_count()},
              {"missing", f.inventory_given ? ojson(f.missing.size()) : ojson()},
              {"unreadable", f.unreadable.size()},
              {"all_ready", f.all_ready()}}},
            {"ranking", ranking},
            {"checks", f.check_ids},
            {"hosts", hosts},
            {"missing", f.inventory_given ? ojson(f.missing) : ojson()},
            {"unreadable", unreadable}};
}

}  // namespace kvmready::fleet
