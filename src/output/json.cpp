#include <cmath>

#include "output/formats.hpp"
#include "output/output.hpp"

#include "fleet/host_cpu.hpp"

namespace kvmready::output {

namespace {

// host.id and its provenance: what a fleet report tells hosts apart by
// (hostnames repeat). "unknown" with the reason when nothing was readable.
void add_identity(nlohmann::ordered_json& host, const Facts& f) {
    const auto& id = f.identity;
    const auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(s); };
    host["id"] = id.id.empty() ? "unknown" : id.id;
    host["id_source"] = or_null(id.source);
    host["id_reason"] = id.id.empty() ? nlohmann::ordered_json(id.error.empty() ? "no identity was probed" : id.error) : nlohmann::ordered_json();
}

// When the run happened and how long it took; a replayed bundle also says
// when its host was recorded (what a fleet report ages the report by).
nlohmann::ordered_json run_json(const RunInfo& run) {
    return {{"started", rfc3339_utc(run.started_unix)},
            {"duration_ms", static_cast<int64_t>(std::llround(run.duration_seconds * 1000.0))},
            {"recorded_at", run.recorded_at.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(run.recorded_at)}};
}

}  // namespace

nlohmann::ordered_json finding_json(const Finding& f) {
    nlohmann::ordered_json rem = {{"text", f.remediation.text},
                                  {"commands", f.remediation.commands},
                                  {"fix_id", f.remediation.fix_id.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(f.remediation.fix_id)},
                                  {"applicability", f.remediation.applicability.empty() ? nlohmann::ordered_json()
                                                                                         : nlohmann::ordered_json(f.remediation.applicability)},
                                  {"requires_root", f.remediation.requires_root}};
    return {{"id", f.id},
            {"category", f.category},
            {"title", f.title},
            {"level", to_string(f.level)},
            {"status", to_string(f.status)},
            {"message", f.message},
            {"evidence", f.evidence},
            {"remediation", rem}};
}

namespace {

// The CPU's own features, what KVM gives guests and libvirt's host-model
// (src/fleet/host_cpu.hpp): what `kvmready compare` and the fleet baseline
// read back from many hosts' reports.
nlohmann::ordered_json cpu_json(const Facts& f) { return fleet::host_cpu_json(fleet::host_cpu_from_facts(f)); }

// The report as schema 1 first had it, with the cpu section.
nlohmann::ordered_json base_json(const Report& r, const Facts& f) {
    nlohmann::ordered_json checks = nlohmann::ordered_json::array();
    for (const auto& x : r.findings) checks.push_back(finding_json(x));
    const auto& s = r.summary;
    nlohmann::ordered_json out = {{"schema_version", 1},
            {"tool", {{"name", "kvmready"}, {"version", KVMREADY_VERSION}}},
            {"host",
             {{"source", f.source},
              {"recorded", f.source != "live"},
              {"recording", f.source_note.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(f.source_note)},
              {"hostname", f.kernel.hostname},
              {"kernel", f.kernel.release},
              {"cpu_source", f.cpu.source}}},
            {"scope",
             {{"kind", r.scope.whole_host ? "host" : "selection"},
              {"selected", r.scope.selected},
              {"kvm_checked", r.scope.kvm_checked}}},
            {"verdict", to_string(r.verdict)},
            {"verdict_text", r.verdict_text},
            {"next_step", r.next_step.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(r.next_step)},
            {"summary",
             {{"pass", s.pass}, {"warn", s.warn}, {"fail", s.fail}, {"skip", s.skip}, {"unknown", s.unknown}, {"error", s.error}, {"total", s.total()}}},
            {"checks", checks}};
    out["cpu"] = cpu_json(f);
    return out;
}

}  // namespace

nlohmann::ordered_json render_json(const Report& r, const Facts& f) {
    nlohmann::ordered_json out = base_json(r, f);
    add_identity(out["host"], f);
    return out;
}

nlohmann::ordered_json render_json(const Report& r, const Facts& f, const RunInfo& run) {
    nlohmann::ordered_json out = render_json(r, f);
    // After "tool", before "host": read first, and apart from the host's facts.
    nlohmann::ordered_json ordered;
    for (auto& [k, v] : out.items()) {
        ordered[k] = std::move(v);
        if (k == "tool") ordered["run"] = run_json(run);
    }
    return ordered;
}

}  // namespace kvmready::output
