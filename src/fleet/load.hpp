// Loading the reports a fleet's hosts produced. Minimal stand-in (JSON
// reports only) for the fleet helper's loader of the same API on branch
// wt-fleet (which also reads bundles); the lead keeps that one at merge.
// Nothing here throws for bad input: a file that cannot be used is returned
// with the reason.
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

LoadedReport load_report(const std::string& path);
std::vector<LoadedReport> load_reports(const std::vector<std::string>& paths);

}  // namespace kvmready::fleet
