// Renderers of `kvmready fix`: the plan (dry run), what --apply did (before
// → after), --undo and --history, as text (fix_text.cpp) or JSON
// (fix_json.cpp). The CLI (cli/fix.cpp) decides and runs; these only print.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fixes/engine.hpp"
#include "fixes/fix.hpp"

namespace kvmready::output {

// Why a plan will not run with these flags ("" when it will): --yes unlocks
// the 'confirm' ones, nothing unlocks the manual ones.
std::string fix_why_not(const fix::Plan& p, bool yes);

// The dry run: every plan, the manual steps, what could not be planned.
struct FixPlanView {
    const fix::PlanSet& set;
    bool yes = false;
    std::string root;                  // --root ("" live): files under it, no runtime changes
    std::string target;                // JSON "target": "live", "root:DIR", "bundle:FILE"
    size_t chosen = 0;                 // plans that will run with these flags
};
std::string render_plans_text(const FixPlanView& v);
nlohmann::ordered_json render_plans_json(const FixPlanView& v);

// One check whose status the applied fixes changed.
struct CheckChange {
    std::string id, before, after, message;
};

// --apply: what ran, and the checks again on the changed host.
struct FixApplyView {
    const fix::ApplyResult& result;
    const std::vector<std::string>& errors;  // fixes that could not be planned
    std::vector<CheckChange> changes;
    std::vector<std::string> still_failing;  // repaired checks still warn/fail
    std::string root;
};
// Before the run: what is not planned or not chosen (text only; JSON has it in the result).
std::string render_apply_preamble_text(const fix::PlanSet& set, bool yes);
std::string render_apply_text(const FixApplyView& v);
nlohmann::ordered_json render_apply_json(const FixApplyView& v);
// --apply with nothing chosen and no run to resume.
std::string render_nothing_to_apply_text();
nlohmann::ordered_json render_nothing_to_apply_json(const std::vector<std::string>& errors);

std::string render_undo_text(const fix::UndoResult& r);
nlohmann::ordered_json render_undo_json(const fix::UndoResult& r);

std::string render_history_text(const std::vector<fix::RunInfo>& runs, const std::string& state);
nlohmann::ordered_json render_history_json(const std::vector<fix::RunInfo>& runs, const std::string& state);

// A step as JSON (also the source of a step's diff in the text).
nlohmann::ordered_json step_json(const fix::Step& s);

}  // namespace kvmready::output
