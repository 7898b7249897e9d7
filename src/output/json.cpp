#include "output/output.hpp"

#include "fleet/host_cpu.hpp"

namespace kvmready::output {

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

// The CPU's own features, what KVM gives guests and libvirt's host-model
// (src/fleet/host_cpu.hpp): what `kvmready compare` and the fleet baseline
// read back from many hosts' reports.
namespace {
nlohmann::ordered_json cpu_json(const Facts& f) { return fleet::host_cpu_json(fleet::host_cpu_from_facts(f)); }
}  // namespace

nlohmann::ordered_json render_json(const Report& r, const Facts& f) {
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

}  // namespace kvmready::output
