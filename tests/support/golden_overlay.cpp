#include "support/golden_overlay.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <regex>
#include <stdexcept>
#include <utility>
#include <vector>

namespace kvmready::testsupport::golden {

namespace {

using Json = nlohmann::ordered_json;
using Lines = std::vector<std::string>;

// ---- text --------------------------------------------------------------

// The status words of `check --color=never` and the JSON status each counts as.
const std::vector<std::pair<std::string, std::string>> kMarks = {{"PASS", "pass"}, {"WARN", "warn"}, {"FAIL", "fail"},
                                                                 {"SKIP", "skip"}, {"UNKN", "unknown"}, {"ERR!", "error"}};

// A check's lines: the status line, stored with the message two spaces after
// the id, and the indented remediation lines below it.
struct Block {
    std::string id, mark;
    Lines lines;
};

// The text output, taken apart into what an overlay stores.
struct TextDoc {
    Lines head;                // before the first category heading
    std::vector<Block> blocks; // in output order
    Lines tail;                // after the summary line
};

std::string category_heading(const std::string& id) {
    std::string c = id.substr(0, id.find('.'));
    for (auto& ch : c) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return c;
}

Lines split_lines(const std::string& text) {
    if (text.empty() || text.back() != '\n') throw std::runtime_error("text output does not end with a newline");
    Lines out;
    size_t start = 0;
    while (start < text.size()) {
        const size_t nl = text.find('\n', start);
        out.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

std::string summary_line(const std::vector<Block>& blocks) {
    std::map<std::string, int> n;
    for (const auto& b : blocks)
        for (const auto& [mark, status] : kMarks)
            if (b.mark == mark) ++n[status];
    return std::to_string(n["pass"]) + " passed, " + std::to_string(n["warn"]) + " warning" + (n["warn"] == 1 ? "" : "s") + ", " +
           std::to_string(n["fail"]) + " failed, " + std::to_string(n["skip"]) + " skipped, " + std::to_string(n["unknown"]) +
           " unknown, " + std::to_string(n["error"]) + " error" + (n["error"] == 1 ? "" : "s");
}

// The text output of these parts, laid out as the text renderer does.
std::string render(const TextDoc& d) {
    size_t width = 0;
    for (const auto& b : d.blocks) width = std::max(width, b.id.size());
    std::string out;
    for (const auto& l : d.head) out += l + "\n";
    std::string category;
    for (const auto& b : d.blocks) {
        if (category_heading(b.id) != category) {
            category = category_heading(b.id);
            out += "\n" + category + "\n";
        }
        // "  MARK id  message" -> "  MARK id<padding>  message"
        const size_t id_end = 2 + b.mark.size() + 1 + b.id.size();
        out += b.lines[0].substr(0, id_end) + std::string(width - b.id.size(), ' ') + b.lines[0].substr(id_end) + "\n";
        for (size_t i = 1; i < b.lines.size(); ++i) out += b.lines[i] + "\n";
    }
    out += "\n" + summary_line(d.blocks) + "\n";
    for (const auto& l : d.tail) out += l + "\n";
    return out;
}

// Takes a text output apart; throws when it is not laid out as render() lays
// it out (so that an overlay made from it composes back to it exactly).
TextDoc parse_text(const std::string& text) {
    const Lines lines = split_lines(text);
    static const std::regex summary(R"(\d+ passed, \d+ warnings?, \d+ failed, \d+ skipped, \d+ unknown, \d+ errors?)");
    static const std::regex check(R"(  (PASS|WARN|FAIL|SKIP|UNKN|ERR!) (\S+) +(\S.*))");
    size_t s = lines.size();
    while (s > 0 && !std::regex_match(lines[s - 1], summary)) --s;
    if (s < 2 || !lines[s - 2].empty()) throw std::runtime_error("text output has no summary line after a blank line");
    const size_t summary_at = s - 1, body_end = s - 2;
    TextDoc d;
    d.tail.assign(lines.begin() + static_cast<long>(summary_at) + 1, lines.end());
    size_t i = 0;
    std::smatch m;
    while (i < body_end && !std::regex_match(lines[i], m, check)) ++i;
    if (i == body_end) {
        d.head.assign(lines.begin(), lines.begin() + static_cast<long>(body_end));
    } else {
        if (i < 2) throw std::runtime_error("text output has no category heading before its first check");
        d.head.assign(lines.begin(), lines.begin() + static_cast<long>(i) - 2);
        for (; i < body_end; ++i) {
            const std::string& l = lines[i];
            if (std::regex_match(l, m, check)) {
                d.blocks.push_back({m[2], m[1], {"  " + m[1].str() + " " + m[2].str() + "  " + m[3].str()}});
            } else if (l.rfind("      ", 0) == 0 && !d.blocks.empty()) {
                d.blocks.back().lines.push_back(l);
            } else if (!l.empty() && l[0] == ' ') {
                throw std::runtime_error("text output: a line that is neither a check's nor its remediation's: " + l);
            }
            // Blank lines and category headings are rendered again (and
            // compared below), not stored.
        }
    }
    if (render(d) != text) throw std::runtime_error("text output is not laid out as the golden composition lays it out");
    return d;
}

// ---- JSON ---------------------------------------------------------------

Json parse_json(const std::string& text) {
    Json j = Json::parse(text);
    if (!j.is_object() || !j.contains("checks") || !j["checks"].is_array() || !j.contains("summary") || !j["summary"].is_object())
        throw std::runtime_error("JSON output has no \"checks\" array or \"summary\" object");
    for (const auto& c : j["checks"])
        if (!c.is_object() || !c.contains("id") || !c["id"].is_string()) throw std::runtime_error("JSON check without an id");
    return j;
}

std::string dump(const Json& j) { return j.dump(2) + "\n"; }

std::vector<std::string> ids_of(const Json& j) {
    std::vector<std::string> ids;
    for (const auto& c : j["checks"]) ids.push_back(c["id"].get<std::string>());
    return ids;
}

const Json* entry(const Json& j, const std::string& id) {
    for (const auto& c : j["checks"])
        if (c["id"] == id) return &c;
    return nullptr;
}

const Block* block(const TextDoc& d, const std::string& id) {
    for (const auto& b : d.blocks)
        if (b.id == id) return &b;
    return nullptr;
}

// The summary counted from the checks, in the base's member order.
void recount_summary(Json& j) {
    for (auto it = j["summary"].begin(); it != j["summary"].end(); ++it) {
        if (it.key() == "total") {
            it.value() = j["checks"].size();
            continue;
        }
        int n = 0;
        for (const auto& c : j["checks"])
            if (c["status"] == it.key()) ++n;
        it.value() = n;
    }
}

}  // namespace

Outputs compose(const Outputs& base, const Json& overlay) {
    const Json b = parse_json(base.json);
    const TextDoc bt = parse_text(base.text);
    const Json none = Json::object();
    const Json& checks = overlay.contains("checks") ? overlay["checks"] : none;
    std::vector<std::string> ids = overlay.contains("only") ? overlay["only"].get<std::vector<std::string>>() : ids_of(b);
    for (auto it = checks.begin(); it != checks.end(); ++it)
        if (std::find(ids.begin(), ids.end(), it.key()) == ids.end())
            throw std::runtime_error("overlay has an entry for " + it.key() + ", which the output does not report");

    Json j = b;
    j["checks"] = Json::array();
    TextDoc t;
    t.head = overlay.contains("text_head") ? overlay["text_head"].get<Lines>() : bt.head;
    t.tail = overlay.contains("text_tail") ? overlay["text_tail"].get<Lines>() : bt.tail;
    for (const auto& id : ids) {
        const Json* own = checks.contains(id) ? &checks[id] : nullptr;
        const Json* je = own && own->contains("json") ? &(*own)["json"] : entry(b, id);
        if (!je) throw std::runtime_error("neither the overlay nor its base has JSON for " + id);
        j["checks"].push_back(*je);
        if (own && own->contains("text")) {
            const Lines lines = (*own)["text"].get<Lines>();
            if (lines.empty() || lines[0].size() < 7) throw std::runtime_error("overlay text of " + id + " has no status line");
            t.blocks.push_back({id, lines[0].substr(2, 4), lines});
        } else if (const Block* bb = block(bt, id)) {
            t.blocks.push_back(*bb);
        } else {
            throw std::runtime_error("neither the overlay nor its base has text for " + id);
        }
    }
    if (overlay.contains("fields"))
        for (auto it = overlay["fields"].begin(); it != overlay["fields"].end(); ++it) {
            if (!j.contains(it.key()) || it.key() == "checks" || it.key() == "summary")
                throw std::runtime_error("overlay field " + it.key() + " is not a member the base can take");
            j[it.key()] = it.value();
        }
    recount_summary(j);
    return {render(t), dump(j)};
}

Json make_overlay(const std::string& base_name, const Outputs& base, const Outputs& actual) {
    const Json b = parse_json(base.json), a = parse_json(actual.json);
    const TextDoc bt = parse_text(base.text), at = parse_text(actual.text);
    std::vector<std::string> keys_a, keys_b;
    for (auto it = a.begin(); it != a.end(); ++it) keys_a.push_back(it.key());
    for (auto it = b.begin(); it != b.end(); ++it) keys_b.push_back(it.key());
    if (keys_a != keys_b) throw std::runtime_error("JSON members differ from the base's");
    const std::vector<std::string> ids = ids_of(a);
    std::vector<std::string> text_ids;
    for (const auto& blk : at.blocks) text_ids.push_back(blk.id);
    if (text_ids != ids) throw std::runtime_error("text and JSON output report different checks");

    Json o = Json::object();
    o["base"] = base_name;
    if (ids != ids_of(b)) o["only"] = ids;
    Json fields = Json::object();
    for (auto it = a.begin(); it != a.end(); ++it)
        if (it.key() != "checks" && it.key() != "summary" && b[it.key()] != it.value()) fields[it.key()] = it.value();
    if (!fields.empty()) o["fields"] = fields;
    if (at.head != bt.head) o["text_head"] = at.head;
    if (at.tail != bt.tail) o["text_tail"] = at.tail;
    Json checks = Json::object();
    for (const auto& id : ids) {
        Json c = Json::object();
        const Json* ja = entry(a, id);
        const Json* jb = entry(b, id);
        if (!jb || *jb != *ja) c["json"] = *ja;
        const Block* ta = block(at, id);
        const Block* tb = block(bt, id);
        if (!tb || tb->lines != ta->lines) c["text"] = ta->lines;
        if (!c.empty()) checks[id] = c;
    }
    if (!checks.empty()) o["checks"] = checks;

    const Outputs back = compose(base, o);
    if (back.json != actual.json) throw std::runtime_error("the JSON output does not compose back to itself from an overlay");
    if (back.text != actual.text) throw std::runtime_error("the text output does not compose back to itself from an overlay");
    return o;
}

std::string overlay_file_text(const Json& overlay) { return overlay.dump(2) + "\n"; }

std::string normalise_run(const std::string& json_text) {
    static const std::regex run(R"(("run": \{\s*"started": ")[^"]*(",\s*"duration_ms": )[0-9]+)");
    std::smatch m;
    if (!std::regex_search(json_text, m, run)) return json_text;
    return m.prefix().str() + m[1].str() + kRunStarted + m[2].str() + "0" + m.suffix().str();
}

}  // namespace kvmready::testsupport::golden
