// `kvmready fix --json`: one object per run (schema_version 1).
#include <fmt/format.h>

#include "output/fix_output.hpp"

namespace kvmready::output {

namespace {

nlohmann::ordered_json plan_json(const fix::Plan& p, bool selected, const std::string& why_not) {
    nlohmann::ordered_json j = {{"fix_id", p.fix_id.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(p.fix_id)},
                                {"title", p.title},
                                {"applicability", fix::to_string(p.applicability)},
                                {"repairs", p.repairs},
                                {"reason", p.reason},
                                {"will_apply", selected}};
    if (!why_not.empty()) j["not_applied_because"] = why_not;
    j["needs_reboot"] = p.needs_reboot;
    j["needs_module_reload"] = p.needs_module_reload;
    j["needs_relogin"] = p.needs_relogin;
    j["notes"] = p.notes;
    if (p.applicability == fix::Applicability::Manual) j["manual"] = p.manual;
    nlohmann::ordered_json steps = nlohmann::ordered_json::array();
    for (const auto& s : p.steps) steps.push_back(step_json(s));
    j["steps"] = steps;
    return j;
}

nlohmann::ordered_json step_reports_json(const std::vector<fix::StepReport>& steps) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& s : steps) out.push_back({{"fix_id", s.fix_id}, {"summary", s.summary}, {"status", s.status}, {"detail", s.detail}});
    return out;
}

}  // namespace

nlohmann::ordered_json step_json(const fix::Step& s) {
    nlohmann::ordered_json j = {{"op", s.op}, {"summary", s.summary}, {"runtime", s.runtime}};
    nlohmann::ordered_json cmds = nlohmann::ordered_json::array();
    for (const auto& c : s.commands) cmds.push_back(fix::quote_argv(c));
    j["commands"] = cmds;
    if (s.op == "file.write" || s.op == "file.remove") {
        const std::string path = s.args.at("path");
        std::optional<std::string> before;
        if (!s.args.at("before").is_null()) before = s.args.at("before").get<std::string>();
        std::optional<std::string> after;
        if (s.op == "file.write") after = s.args.at("content").get<std::string>();
        j["path"] = path;
        j["diff"] = fix::unified_diff(path, before, after);
        if (s.op == "file.write") j["mode"] = fmt::format("{:04o}", s.args.at("mode").get<unsigned>());
    } else if (s.args.contains("diff")) {
        j["diff"] = s.args.at("diff");
    }
    return j;
}

nlohmann::ordered_json render_plans_json(const FixPlanView& v) {
    nlohmann::ordered_json plans = nlohmann::ordered_json::array(), manual = nlohmann::ordered_json::array();
    for (const auto& p : v.set.plans) plans.push_back(plan_json(p, fix_why_not(p, v.yes).empty(), fix_why_not(p, v.yes)));
    for (const auto& p : v.set.manual) manual.push_back(plan_json(p, false, fix_why_not(p, v.yes)));
    return {{"schema_version", 1}, {"mode", "dry-run"}, {"target", v.target}, {"plans", plans}, {"manual", manual}, {"errors", v.set.errors}};
}

nlohmann::ordered_json render_nothing_to_apply_json(const std::vector<std::string>& errors) {
    return {{"schema_version", 1}, {"mode", "apply"}, {"run_id", nullptr}, {"ok", errors.empty()},
            {"steps", nlohmann::ordered_json::array()}, {"errors", errors}};
}

nlohmann::ordered_json render_apply_json(const FixApplyView& v) {
    const auto& res = v.result;
    nlohmann::ordered_json changes = nlohmann::ordered_json::array();
    for (const auto& c : v.changes) changes.push_back({{"id", c.id}, {"before", c.before}, {"after", c.after}, {"message", c.message}});
    return {{"schema_version", 1},
            {"mode", "apply"},
            {"run_id", res.run_id},
            {"journal", res.run_dir},
            {"resumed", res.resumed},
            {"reverted_half_done", res.reverted_half_done},
            {"ok", res.ok},
            {"steps", step_reports_json(res.steps)},
            {"changed_checks", changes},
            {"still_failing", v.still_failing},
            {"errors", v.errors}};
}

nlohmann::ordered_json render_undo_json(const fix::UndoResult& r) {
    return {{"schema_version", 1}, {"run_id", r.run_id}, {"ok", r.ok}, {"steps", step_reports_json(r.steps)}};
}

nlohmann::ordered_json render_history_json(const std::vector<fix::RunInfo>& runs, const std::string& state) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& r : runs)
        arr.push_back({{"run_id", r.id},
                       {"created", r.header.value("created", "")},
                       {"status", r.status()},
                       {"fixes", r.fixes()},
                       {"steps_done", r.steps_done()},
                       {"command", r.header.value("argv", nlohmann::json::array())}});
    return {{"schema_version", 1}, {"state_dir", state}, {"runs", arr}};
}

}  // namespace kvmready::output
