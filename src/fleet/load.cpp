#include "fleet/load.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"
#include "fixes/fix.hpp"
#include "host/bounded_read.hpp"
#include "output/formats.hpp"
#include "report/bundle.hpp"
#include "util/utf8.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace kvmready::fleet {

namespace {

bool bundle_name(const std::string& p) { return p.ends_with(".tar.gz") || p.ends_with(".tgz"); }

bool is_bundle_dir(const fs::path& p) {
    std::error_code ec;
    return fs::is_directory(p, ec) && fs::is_regular_file(p / "manifest.json", ec);
}

// "PATH: why" from the layers below -> "why": the listing names the file.
std::string without_path(std::string why, const std::string& path) {
    for (const std::string& head : {path + ": ", "--from " + path + ": "})
        if (why.rfind(head, 0) == 0) return why.substr(head.size());
    return why;
}

std::string type_name(const json& j) { return j.is_object() ? "an object" : j.is_array() ? "an array" : j.is_string() ? "a string" : j.is_null() ? "null" : j.is_boolean() ? "a boolean" : "a number"; }

// What the fleet reads of one check entry must have the types it expects.
std::string check_problem(const json& c, size_t i) {
    const std::string at = fmt::format("checks[{}]", i);
    if (!c.is_object()) return at + " is not an object";
    for (const char* k : {"id", "status"})
        if (!c.contains(k) || !c[k].is_string()) return fmt::format("{}.{} is missing or not a string", at, k);
    for (const char* k : {"title", "message", "level", "category"})
        if (c.contains(k) && !c[k].is_string()) return fmt::format("{}.{} is not a string", at, k);
    if (!c.contains("remediation")) return "";
    const json& r = c["remediation"];
    if (!r.is_object()) return at + ".remediation is not an object";
    if (r.contains("text") && !r["text"].is_string()) return at + ".remediation.text is not a string";
    if (r.contains("fix_id") && !r["fix_id"].is_string() && !r["fix_id"].is_null()) return at + ".remediation.fix_id is not a string";
    if (r.contains("commands")) {
        if (!r["commands"].is_array()) return at + ".remediation.commands is not an array";
        for (const auto& x : r["commands"])
            if (!x.is_string()) return at + ".remediation.commands holds a non-string";
    }
    return "";
}

LoadedReport load_json(const std::string& path, const std::string& text) {
    LoadedReport r{path, std::nullopt, "", "json"};
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        std::string what = e.what();
        if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
        r.error = text.empty() ? "empty file" : "not valid JSON (truncated or corrupt?): " + what;
        return r;
    }
    r.error = report_problem(j);
    if (r.error.empty()) r.report = std::move(j);
    return r;
}

// As `kvmready check --from BUNDLE` does: the recorded tree probed again
// and judged by this version's checks; the run is now, the recording then.
LoadedReport load_bundle(const std::string& path) {
    LoadedReport r{path, std::nullopt, "", "bundle"};
    try {
        const auto wall = std::chrono::system_clock::now();
        const auto started = std::chrono::steady_clock::now();
        auto bundle = report::open_bundle(path);
        auto h = host::make_rooted_host(bundle->host_tree());
        Facts facts = probe(*h, ProbeOptions{});
        if (auto refused = h->refused_inputs(); !refused.empty())
            throw DataError(fmt::format("malformed recorded host tree: {}", refused.front()));
        const auto& m = bundle->manifest();
        facts.source = "bundle:" + path;
        const std::string created = m.contains("created") && m["created"].is_string() ? m["created"].get<std::string>() : "";
        facts.source_note = fmt::format("recorded by kvmready {} on {}", m.value("version", "?"), created.empty() ? "?" : created);
        const Report rep = run_checks(facts, {}, fix::plannable_unaided);
        output::RunInfo run;
        run.started_unix = std::chrono::duration_cast<std::chrono::seconds>(wall.time_since_epoch()).count();
        run.duration_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        run.recorded_at = created;
        r.report = json::parse(util::dump_json(output::render_json(rep, facts, run)));
    } catch (const std::exception& e) {
        r.error = without_path(e.what(), path);
    }
    return r;
}

}  // namespace

std::string report_problem(const json& j) {
    if (!j.is_object()) return fmt::format("valid JSON but not a kvmready report ({} at the top)", type_name(j));
    const bool ours = j.contains("tool") && j["tool"].is_object() && j["tool"].contains("name") && j["tool"]["name"] == "kvmready";
    if (!ours) return "valid JSON but not a kvmready report (no \"tool\": {\"name\": \"kvmready\"})";
    if (!j.contains("schema_version") || !j["schema_version"].is_number_integer()) return "kvmready report without an integer schema_version";
    if (j["schema_version"] != 1)
        return fmt::format("kvmready report of schema version {}; this kvmready reads version 1", util::dump_json(j["schema_version"]));
    if (!j.contains("verdict") || !j["verdict"].is_string()) return "malformed kvmready report: \"verdict\" is missing or not a string";
    if (!j.contains("host") || !j["host"].is_object()) return "malformed kvmready report: \"host\" is missing or not an object";
    const json& h = j["host"];
    if (!h.contains("hostname") || !h["hostname"].is_string()) return "malformed kvmready report: host.hostname is missing or not a string";
    for (const char* k : {"id", "id_source", "id_reason", "source"})
        if (h.contains(k) && !h[k].is_string() && !h[k].is_null()) return fmt::format("malformed kvmready report: host.{} is not a string", k);
    if (j.contains("run")) {
        if (!j["run"].is_object()) return "malformed kvmready report: \"run\" is not an object";
        for (const char* k : {"started", "recorded_at"})
            if (j["run"].contains(k) && !j["run"][k].is_string() && !j["run"][k].is_null())
                return fmt::format("malformed kvmready report: run.{} is not a string", k);
    }
    if (!j.contains("checks") || !j["checks"].is_array()) return "malformed kvmready report: \"checks\" is missing or not an array";
    for (size_t i = 0; i < j["checks"].size(); ++i)
        if (auto why = check_problem(j["checks"][i], i); !why.empty()) return "malformed kvmready report: " + why;
    return "";
}

LoadedReport load_report(const std::string& path) {
    try {
        std::error_code ec;
        const auto st = fs::status(path, ec);
        if (bundle_name(path) || is_bundle_dir(path)) return load_bundle(path);
        if (fs::is_directory(st)) return {path, std::nullopt, "a directory that is not an unpacked bundle (no manifest.json)", "json"};
        const host::BoundedRead in = host::read_path_bounded(path, kMaxReportBytes);
        if (!in.data) return {path, std::nullopt, without_path(host::describe_read_failure(in, path, kMaxReportBytes), path), "json"};
        // A bundle renamed without its suffix is still a bundle (gzip magic).
        if (in.data->size() >= 2 && static_cast<unsigned char>((*in.data)[0]) == 0x1f && static_cast<unsigned char>((*in.data)[1]) == 0x8b)
            return load_bundle(path);
        return load_json(path, *in.data);
    } catch (const std::exception& e) {
        // Nothing above should throw; if it does, the file is still only listed.
        return {path, std::nullopt, std::string("cannot be read: ") + e.what(), "json"};
    }
}

namespace {

// The inputs a directory stands for, sorted; an error entry when it holds none.
void expand_dir(const std::string& dir, std::vector<std::string>& files, std::vector<LoadedReport>& errors) {
    std::vector<std::string> found;
    std::error_code ec;
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) {
        errors.push_back({dir, std::nullopt, "cannot list the directory: " + ec.message(), "json"});
        return;
    }
    for (; it != end; it.increment(ec)) {
        if (ec) break;
        const fs::path p = it->path();
        const std::string name = p.filename().string();
        if (!name.empty() && name[0] == '.') {  // a writer's temporary file, or hidden on purpose
            if (it->is_directory(ec)) it.disable_recursion_pending();
            continue;
        }
        if (is_bundle_dir(p)) {
            found.push_back(p.string());
            it.disable_recursion_pending();
        } else if (!it->is_directory(ec) && (name.ends_with(".json") || bundle_name(name))) {
            found.push_back(p.string());
        }
    }
    if (ec) errors.push_back({dir, std::nullopt, "cannot list the whole directory: " + ec.message(), "json"});
    if (found.empty() && !ec) errors.push_back({dir, std::nullopt, "holds no *.json report and no bundle", "json"});
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
}

}  // namespace

std::vector<LoadedReport> load_reports(const std::vector<std::string>& paths) {
    std::vector<LoadedReport> out;
    for (const auto& p : paths) {
        std::error_code ec;
        if (fs::is_directory(p, ec) && !is_bundle_dir(p)) {
            std::vector<std::string> files;
            std::vector<LoadedReport> errors;
            expand_dir(p, files, errors);
            for (auto& e : errors) out.push_back(std::move(e));
            for (const auto& f : files) out.push_back(load_report(f));
        } else {
            out.push_back(load_report(p));
        }
    }
    return out;
}

}  // namespace kvmready::fleet
