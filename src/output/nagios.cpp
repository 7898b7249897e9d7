// The monitoring-plugin contract (Monitoring Plugins Development Guidelines,
// used by Nagios, Icinga, Naemon and NRPE): the exit code is the state
// (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN); the first line is
// "KVMREADY <STATE> - <summary> | <perfdata>", kept under 1 KiB because
// older NRPE and some UIs cut there; the lines after it are the long output
// (one per check that needs attention). A '|' would start perfdata, so text
// never carries one.
#include <algorithm>

#include <fmt/format.h>

#include "output/formats.hpp"
#include "util/utf8.hpp"

namespace kvmready::output {

namespace {

constexpr size_t kFirstLineMax = 1023;  // bytes, without the newline

// Text safe on a plugin line: valid UTF-8 (bytes escaped), no '|' (perfdata
// starts there), no line breaks.
std::string plugin_text(const std::string& s) {
    std::string o = util::escape_bytes(s);
    for (auto& c : o) {
        if (c == '|') c = '/';
        else if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return o;
}

// At most n bytes of s, not cutting a UTF-8 sequence, "..." when cut.
std::string cut(const std::string& s, size_t n) {
    if (s.size() <= n) return s;
    if (n < 3) return "";
    size_t end = 0;
    for (size_t i = 0; i < s.size();) {
        const size_t len = std::max<size_t>(util::utf8_sequence_length(s, i), 1);
        if (i + len > n - 3) break;
        i += len;
        end = i;
    }
    return s.substr(0, end) + "...";
}

const char* tag(Status s) {
    switch (s) {
    case Status::Pass: return "PASS";
    case Status::Warn: return "WARN";
    case Status::Fail: return "FAIL";
    case Status::Skip: return "SKIP";
    case Status::Unknown: return "UNKNOWN";
    case Status::Error: return "ERROR";
    }
    return "UNKNOWN";
}

}  // namespace

NagiosState nagios_state(const Report& r) {
    switch (r.verdict) {
    case Verdict::Ready:
    case Verdict::Passed: return NagiosState::Ok;
    case Verdict::ReadyWithWarnings:
    case Verdict::PassedWithWarnings: return NagiosState::Warning;
    case Verdict::NotReady:
    case Verdict::Failed: return NagiosState::Critical;
    case Verdict::Undetermined: return NagiosState::Unknown;
    }
    return NagiosState::Unknown;
}

const char* to_string(NagiosState s) {
    switch (s) {
    case NagiosState::Ok: return "OK";
    case NagiosState::Warning: return "WARNING";
    case NagiosState::Critical: return "CRITICAL";
    case NagiosState::Unknown: return "UNKNOWN";
    }
    return "UNKNOWN";
}

std::string render_nagios(const Report& r, const Facts& /*f*/, const RunInfo& run) {
    const auto& s = r.summary;
    const int n = s.total();
    // 'label'=value[UOM];[warn];[crit];[min];[max]
    const std::string perf = fmt::format("pass={};;;0;{} warn={};;;0;{} fail={};;;0;{} skip={};;;0;{} unknown={};;;0;{} error={};;;0;{} duration={:.3f}s;;;0",
                                         s.pass, n, s.warn, n, s.fail, n, s.skip, n, s.unknown, n, s.error, n, run.duration_seconds);
    const std::string lead = fmt::format("KVMREADY {} - ", to_string(nagios_state(r)));
    const size_t room = kFirstLineMax - lead.size() - 3 - perf.size();
    std::string out = lead + cut(plugin_text(r.verdict_text), room) + " | " + perf + "\n";
    for (const auto& x : r.findings) {
        if (x.status == Status::Pass || x.status == Status::Skip) continue;
        out += fmt::format("[{}] {}: {}\n", tag(x.status), x.id, plugin_text(x.message));
        if (!x.remediation.text.empty()) out += "    -> " + plugin_text(x.remediation.text) + "\n";
        for (const auto& c : x.remediation.commands) out += "    $ " + plugin_text(c) + "\n";
    }
    out += fmt::format("{} checks: {} passed, {} warnings, {} failed, {} skipped, {} unknown, {} errors\n", n, s.pass, s.warn, s.fail, s.skip,
                       s.unknown, s.error);
    if (!r.next_step.empty()) out += "Next: " + plugin_text(r.next_step) + "\n";
    return out;
}

std::string render_nagios_error(const std::string& error) {
    const std::string lead = "KVMREADY UNKNOWN - ";
    return lead + cut(plugin_text(error), kFirstLineMax - lead.size()) + "\n";
}

}  // namespace kvmready::output
