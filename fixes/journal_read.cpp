#include "fixes/journal_read.hpp"

#include <sstream>

#include <fmt/format.h>

#include "core/errors.hpp"

namespace kvmready::fix {

namespace {

// Each record's fields that the engine reads, with their types: a journal
// with anything else is malformed (65, naming the line), never a crash.
void check_record(const nlohmann::json& j, const std::string& where) {
    auto bad = [&](const std::string& what) { throw DataError(fmt::format("{}: malformed fix journal record: {}", where, what)); };
    if (!j.is_object()) bad("not a JSON object");
    if (!j.contains("type") || !j["type"].is_string()) bad("no \"type\" string");
    for (const char* key : {"op", "fix", "summary", "status", "root", "connect_uri", "id", "user", "error", "reason"})
        if (j.contains(key) && !j[key].is_string()) bad(fmt::format("\"{}\" is not a string", key));
    if (j.contains("step") && !j["step"].is_number_integer()) bad("\"step\" is not an integer");
    if (j.contains("undo") && !j["undo"].is_object() && !j["undo"].is_null()) bad("\"undo\" is not an object");
    if (j.contains("args") && !j["args"].is_object()) bad("\"args\" is not an object");
    const std::string type = j["type"];
    if ((type == "prepare" || type == "done" || type == "undone" || type == "undo-failed") && !j.contains("step")) bad("no \"step\"");
    if (type == "prepare" && !j.contains("op")) bad("no \"op\"");
}

}  // namespace

std::vector<JournalEntry> parse_journal(const std::string& text, const std::string& path) {
    std::vector<JournalEntry> out;
    std::istringstream in(text);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty()) continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
            continue;  // a line cut by a kill
        }
        check_record(j, fmt::format("{}:{}", path, n));
        out.push_back({j["type"].get<std::string>(), std::move(j), n});
    }
    return out;
}

}  // namespace kvmready::fix
