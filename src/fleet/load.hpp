// Loading the reports a fleet's hosts produced: `kvmready check --format json`
// output or support bundles (`kvmready report`), judged from their facts as
// `check --from` does. Input comes from many machines and from whatever a
// playbook left in a directory, so nothing here throws for bad input: a file
// that cannot be used is returned with the reason, and the run goes on.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::fleet {

struct LoadedReport {
    std::string path;
    std::optional<nlohmann::json> report;  // the `check --json` object when readable
    std::string error;                     // "" when readable, else why not (names the file)
    std::string source;                    // "json" or "bundle"
};

// The largest JSON report read (a real one is ~50 KiB).
constexpr size_t kMaxReportBytes = 16u << 20;

// One file: a JSON report, a bundle (.tar.gz/.tgz) or an unpacked bundle
// directory. Never throws for bad input.
LoadedReport load_report(const std::string& path);

// Every path in order; a directory that is not an unpacked bundle stands for
// every *.json, *.tar.gz, *.tgz and unpacked bundle below it (sorted by
// path, symlinked directories not followed).
std::vector<LoadedReport> load_reports(const std::vector<std::string>& paths);

// Why `j` is not a kvmready report of a schema this version reads ("" when it is).
std::string report_problem(const nlohmann::json& j);

}  // namespace kvmready::fleet
