#include "cli/doc_lists.hpp"

#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "core/check.hpp"
#include "core/errors.hpp"
#include "fixes/fix.hpp"

namespace kvmready::cli {

namespace {

// roff: hyphens as \-, backslashes as \e, no control character at a line start.
std::string roff(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '-') out += "\\-";
        else if (c == '\\') out += "\\e";
        else out += c;
    }
    if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
    return out;
}

std::string markdown_cell(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
    return out;
}

std::string sentence(std::string s) {
    if (!s.empty() && s.back() != '.') s += '.';
    return s;
}

std::string readme_checks() {
    std::string out = "| id | level | what it decides |\n|---|---|---|\n";
    for (const auto& c : registry()) out += fmt::format("| `{}` | {} | {} |\n", c.id, to_string(c.level), markdown_cell(c.title));
    return out;
}

std::string readme_fixes() {
    std::string out = "| fix id | repairs | what it does |\n|---|---|---|\n";
    for (const auto& f : fix::registry()) {
        std::string repairs;
        for (const char* r : f.repairs) repairs += fmt::format("{}`{}`", repairs.empty() ? "" : ", ", r);
        if (f.needs_option) repairs += fmt::format("{}with `{}`", repairs.empty() ? "" : ", ", f.needs_option);
        out += fmt::format("| `{}` | {} | {} |\n", f.id, repairs, markdown_cell(f.description));
    }
    return out;
}

std::string man_checks() {
    std::string out;
    for (const auto& c : registry())
        out += fmt::format(".TP\n.B {} \\fR({})\n{}\n{}\n", roff(c.id), to_string(c.level), roff(sentence(c.title)), roff(sentence(c.reads)));
    return out;
}

std::string man_fixes() {
    std::string out;
    const auto& all = fix::registry();
    for (size_t i = 0; i < all.size(); ++i) out += fmt::format(".BR {} {}\n", roff(all[i].id), i + 1 == all.size() ? ";" : ",");
    return out;
}

// Replaces what lies between the line holding `begin` and the line holding
// `end` (both kept) with body.
std::string replace_section(const std::string& doc, const std::string& begin, const std::string& end, const std::string& body) {
    const size_t b = doc.find(begin);
    if (b == std::string::npos) throw DataError(fmt::format("marker '{}' not found", begin));
    const size_t body_start = doc.find('\n', b);
    const size_t e = doc.find(end, body_start == std::string::npos ? b : body_start);
    if (body_start == std::string::npos || e == std::string::npos) throw DataError(fmt::format("marker '{}' not found after '{}'", end, begin));
    const size_t end_line = doc.rfind('\n', e);
    return doc.substr(0, body_start + 1) + body + doc.substr(end_line + 1);
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw NoInputError(fmt::format("{}: cannot read", path));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

std::string regenerate_readme(const std::string& text) {
    std::string out = replace_section(text, "<!-- BEGIN checks", "<!-- END checks", readme_checks());
    return replace_section(out, "<!-- BEGIN fixes", "<!-- END fixes", readme_fixes());
}

std::string regenerate_man(const std::string& text) {
    std::string out = replace_section(text, ".\\\" BEGIN checks", ".\\\" END checks", man_checks());
    return replace_section(out, ".\\\" BEGIN fixes", ".\\\" END fixes", man_fixes());
}

// Hidden: prints the document with its lists regenerated; cmake/docs.cmake
// writes it back when it changed (this command writes no file).
Action setup_doc_lists(CLI::App& app) {
    auto kind = std::make_shared<std::string>();
    auto path = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("__doc-lists", "");
    sub->group("");
    sub->add_option("kind", *kind, "readme or man")->required()->check(CLI::IsMember({"readme", "man"}));
    sub->add_option("file", *path, "the document to regenerate")->required();
    return [kind, path] {
        const std::string text = slurp(*path);
        std::cout << (*kind == "readme" ? regenerate_readme(text) : regenerate_man(text));
        return kExitReady;
    };
}

}  // namespace kvmready::cli
