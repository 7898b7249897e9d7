#include "fleet/load.hpp"

#include "host/bounded_read.hpp"

namespace kvmready::fleet {

LoadedReport load_report(const std::string& path) {
    LoadedReport r;
    r.path = path;
    r.source = "json";
    const auto read = host::read_path_bounded(path, kMaxReportBytes);
    if (!read.data) {
        r.error = host::describe_read_failure(read, path, kMaxReportBytes);
        return r;
    }
    auto j = nlohmann::json::parse(*read.data, nullptr, false);
    if (j.is_discarded()) r.error = path + ": not JSON";
    else if (!j.is_object() || !j.contains("schema_version") || !j.contains("checks")) r.error = path + ": not a kvmready report";
    else r.report = std::move(j);
    return r;
}

std::vector<LoadedReport> load_reports(const std::vector<std::string>& paths) {
    std::vector<LoadedReport> out;
    for (const auto& p : paths) out.push_back(load_report(p));
    return out;
}

}  // namespace kvmready::fleet
