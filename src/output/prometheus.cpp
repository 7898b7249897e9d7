// node_exporter's textfile-collector format (Prometheus text exposition
// 0.0.4): every metric kvmready_*, with # HELP and # TYPE, no timestamps
// (the collector refuses them), and labels that carry only ids and levels,
// never free text, so series stay few and stable. Enumerations are state
// sets: one series per possible value, 1 for the current one, so an alert
// can say `kvmready_check_status{status="fail"} == 1` and absence means
// "no data", never "fine".
#include <fmt/format.h>

#include "output/formats.hpp"

namespace kvmready::output {

namespace {

// A label value as the exposition format quotes it. Values here are ids and
// levels; the version string is ours. Escaped anyway, so nothing can break a line.
std::string label_value(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '\\') o += "\\\\";
        else if (c == '"') o += "\\\"";
        else if (c == '\n') o += "\\n";
        else o += c;
    }
    return o;
}

void head(std::string& out, const char* name, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", name, help, name);
}

constexpr Verdict kVerdicts[] = {Verdict::Ready,  Verdict::ReadyWithWarnings,  Verdict::NotReady, Verdict::Undetermined,
                                 Verdict::Passed, Verdict::PassedWithWarnings, Verdict::Failed};
constexpr Status kStatuses[] = {Status::Pass, Status::Warn, Status::Fail, Status::Skip, Status::Unknown, Status::Error};

int count(const Summary& s, Status st) {
    switch (st) {
    case Status::Pass: return s.pass;
    case Status::Warn: return s.warn;
    case Status::Fail: return s.fail;
    case Status::Skip: return s.skip;
    case Status::Unknown: return s.unknown;
    case Status::Error: return s.error;
    }
    return 0;
}

}  // namespace

std::string render_prometheus(const Report& r, const Facts& /*f*/, const RunInfo& run) {
    std::string out;
    head(out, "kvmready_info", "kvmready that wrote these metrics (value always 1).");
    out += fmt::format("kvmready_info{{version=\"{}\"}} 1\n", label_value(KVMREADY_VERSION));

    head(out, "kvmready_ready", "1 when the last run found that this host can run KVM guests (verdict ready or ready_with_warnings), else 0.");
    const bool ready = r.verdict == Verdict::Ready || r.verdict == Verdict::ReadyWithWarnings;
    out += fmt::format("kvmready_ready {}\n", ready ? 1 : 0);

    head(out, "kvmready_verdict", "Verdict of the last run: 1 for the verdict reached, 0 for the others.");
    for (Verdict v : kVerdicts)
        out += fmt::format("kvmready_verdict{{verdict=\"{}\"}} {}\n", to_string(v), v == r.verdict ? 1 : 0);

    head(out, "kvmready_checks", "Number of checks of the last run with each status.");
    for (Status s : kStatuses) out += fmt::format("kvmready_checks{{status=\"{}\"}} {}\n", to_string(s), count(r.summary, s));

    head(out, "kvmready_check_status", "Status of each check of the last run: 1 for its status, 0 for the others.");
    for (const auto& x : r.findings)
        for (Status s : kStatuses)
            out += fmt::format("kvmready_check_status{{check=\"{}\",category=\"{}\",level=\"{}\",status=\"{}\"}} {}\n", label_value(x.id),
                               label_value(x.category), to_string(x.level), to_string(s), s == x.status ? 1 : 0);

    head(out, "kvmready_last_run_timestamp_seconds", "When the last run finished, in seconds since the Unix epoch.");
    out += fmt::format("kvmready_last_run_timestamp_seconds {}\n", run.finished_unix);
    head(out, "kvmready_run_duration_seconds", "How long the last run took to probe and judge the host, in seconds.");
    out += fmt::format("kvmready_run_duration_seconds {:.3f}\n", run.duration_seconds);
    return out;
}

}  // namespace kvmready::output
