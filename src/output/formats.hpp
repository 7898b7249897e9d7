// The output formats of `kvmready check` by name (--format FMT for stdout,
// --output FMT:PATH for files), each a pure renderer of one Report, and the
// exit-code policy that goes with the stdout format. The CLI parses and
// writes; these only render. Formats for the tools admins run:
//   prometheus  node_exporter's textfile collector (prometheus.cpp)
//   nagios      a monitoring plugin's output, for NRPE/Icinga (nagios.cpp)
//   junit       JUnit XML for CI pipelines (junit.cpp)
//   nfd         a Kubernetes Node Feature Discovery feature file (nfd.cpp)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "output/output.hpp"

namespace kvmready::output {

enum class Format { Text, Json, Prometheus, Nagios, Junit, Nfd };

struct FormatSpec {
    const char* name;
    Format format;
    const char* what;  // for --help and kvmready(1)
};

// Every format, in the order the docs list them.
const std::vector<FormatSpec>& formats();
std::vector<std::string> format_names();
std::optional<Format> format_named(const std::string& name);
const char* name_of(Format f);

// What a renderer may know besides the Report: when and how the run went.
// Passed in, never read from the clock here, so output is reproducible.
struct RunInfo {
    int64_t finished_unix = 0;   // wall clock at the end of the run, seconds since the epoch
    double duration_seconds = 0; // probe + checks
    int64_t started_unix = 0;    // wall clock at the start of the run (JSON run.started)
    std::string recorded_at;     // a replayed bundle: when its host was recorded (RFC 3339, as the manifest says)
    bool strict = false;         // --strict: warnings count as failures (junit)
    TextStyle text;              // the text format's style
};

// Nagios plugin states (Monitoring Plugins guidelines).
enum class NagiosState { Ok = 0, Warning = 1, Critical = 2, Unknown = 3 };
NagiosState nagios_state(const Report& r);
const char* to_string(NagiosState s);

std::string render_prometheus(const Report& r, const Facts& f, const RunInfo& run);
std::string render_nagios(const Report& r, const Facts& f, const RunInfo& run);
// The first line alone for an error that stopped the run (state UNKNOWN).
std::string render_nagios_error(const std::string& error);
std::string render_junit(const Report& r, const Facts& f, const RunInfo& run);
std::string render_nfd(const Report& r, const Facts& f, const RunInfo& run);

// How long an NFD label set stays valid after the run (the feature file's
// expiry-time): a node whose timer stopped loses its labels after this.
inline constexpr int64_t kNfdExpirySeconds = 3 * 3600;
// Every label name in an NFD feature file starts with this prefix (NFD's
// own default namespace, accepted by every nfd-master configuration).
inline constexpr const char* kNfdPrefix = "feature.node.kubernetes.io/kvmready.";

// The JSON report (render_json) with the run's block: when it started, how
// long it took, and for a replayed bundle when the host was recorded.
nlohmann::ordered_json render_json(const Report& r, const Facts& f, const RunInfo& run);

// "2026-12-07T19:00:00Z" (RFC 3339, UTC) for a time in seconds since the epoch.
std::string rfc3339_utc(int64_t unix_seconds);

// The bytes one format writes (stdout or a file).
std::string render(Format fmt, const Report& r, const Facts& f, const RunInfo& run);

// The process's exit code when `stdout_format` is printed: the monitoring
// plugin contract for nagios (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN),
// kvmready's own (exit_code_for) for every other format.
int exit_code(Format stdout_format, const Report& r, bool strict);

}  // namespace kvmready::output
