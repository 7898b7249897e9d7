// `kvmready fix` as text: numbered plans with their diffs and commands, the
// run's step counts, before → after, undo and history lines.
#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "output/fix_output.hpp"

namespace kvmready::output {

namespace {

std::string indent(const std::string& text, const std::string& pad) {
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
        size_t j = text.find('\n', i);
        if (j == std::string::npos) j = text.size();
        out += pad + text.substr(i, j - i) + "\n";
        i = j + 1;
    }
    return out;
}

std::string join(const std::vector<std::string>& items, const char* sep) { return fmt::format("{}", fmt::join(items, sep)); }

std::string step_text(const fix::Step& s, const std::string& root) {
    std::string out = fmt::format("    - {}{}\n", s.summary, s.runtime && !root.empty() ? " (not with --root: runtime change)" : "");
    auto j = step_json(s);
    // Files show their diff; other steps their commands, then any
    // document they submit (a libvirt XML) as a diff.
    if (!s.op.starts_with("file."))
        for (const auto& c : s.commands) out += fmt::format("      $ {}\n", fix::quote_argv(c));
    if (j.contains("diff")) {
        if (j.contains("mode")) out += fmt::format("      mode {} root:root\n", j["mode"].get<std::string>());
        out += indent(j["diff"].get<std::string>(), "      ");
    }
    return out;
}

std::string plan_text(const fix::Plan& p, int n, bool yes, const std::string& root) {
    const std::string label = !p.fix_id.empty() ? p.fix_id : !p.repairs.empty() ? p.repairs.front() : std::string("?");
    std::string out = fmt::format("[{}] {} · {}{}\n", n, label, fix::to_string(p.applicability),
                                  p.repairs.empty() ? "" : " · repairs " + join(p.repairs, ", "));
    out += fmt::format("    {}\n", p.title);
    if (!p.reason.empty()) out += fmt::format("    why: {}\n", p.reason);
    if (!p.manual.empty()) out += fmt::format("    do: {}\n", p.manual);
    for (const auto& s : p.steps) out += step_text(s, root);
    std::vector<std::string> needs;
    if (p.needs_reboot) needs.push_back("a reboot");
    if (p.needs_module_reload) needs.push_back("a module reload (done by the plan)");
    if (p.needs_relogin) needs.push_back("a new login");
    if (!needs.empty()) out += fmt::format("    needs: {}\n", join(needs, ", "));
    for (const auto& note : p.notes) out += fmt::format("    note: {}\n", note);
    const std::string wn = fix_why_not(p, yes);
    if (!wn.empty() && p.applicability != fix::Applicability::Manual) out += fmt::format("    not applied: {}\n", wn);
    return out;
}

}  // namespace

std::string fix_why_not(const fix::Plan& p, bool yes) {
    if (p.applicability == fix::Applicability::Manual) return "manual: only a person can do it";
    if (p.applicability == fix::Applicability::Confirm && !yes) return "needs --yes (it changes existing state)";
    return "";
}

std::string render_plans_text(const FixPlanView& v) {
    const auto& set = v.set;
    std::string out = fmt::format("kvmready fix · dry run: nothing is changed{}\n\n", v.root.empty() ? "" : fmt::format(" · files under {}", v.root));
    int n = 0;
    for (const auto& p : set.plans) out += plan_text(p, ++n, v.yes, v.root) + "\n";
    for (const auto& p : set.manual) out += plan_text(p, ++n, v.yes, v.root) + "\n";
    for (const auto& e : set.errors) out += fmt::format("cannot plan {}\n", e);
    if (set.plans.empty()) out += "Nothing to fix automatically.\n";
    else
        out += fmt::format("{} fix(es) planned; apply with `kvmready fix --apply{}`{}.\n", set.plans.size(), v.chosen < set.plans.size() ? " --yes" : "",
                           v.chosen < set.plans.size() ? " (--yes for the 'confirm' ones)" : "");
    return out;
}

std::string render_apply_preamble_text(const fix::PlanSet& set, bool yes) {
    std::string out;
    for (const auto& e : set.errors) out += fmt::format("cannot plan {}\n", e);
    for (const auto& p : set.plans)
        if (!fix_why_not(p, yes).empty()) out += fmt::format("skipped {}: {}\n", p.fix_id, fix_why_not(p, yes));
    return out;
}

std::string render_nothing_to_apply_text() { return "Nothing to do.\n"; }

std::string render_apply_text(const FixApplyView& v) {
    const auto& res = v.result;
    std::string out;
    if (res.resumed)
        out += fmt::format("resumed interrupted run {}{}\n", res.run_id,
                           res.reverted_half_done.empty() ? "" : fmt::format(" (put back {} half-done step(s) first)", res.reverted_half_done.size()));
    int done = 0, failed = 0, not_done = 0, skipped = 0;
    for (const auto& s : res.steps) {
        if (s.status == "done") ++done;
        else if (s.status == "failed") ++failed;
        else if (s.status == "not-done") ++not_done;
        else ++skipped;
    }
    if (failed && not_done) {
        out += "\nNot done (stopped at the failure):\n";
        for (const auto& s : res.steps)
            if (s.status == "not-done") out += fmt::format("  [{}] {}\n", s.fix_id, s.summary);
    }
    for (const auto& s : res.steps)
        if (s.status == "skipped") out += fmt::format("  skipped [{}] {}: {}\n", s.fix_id, s.summary, s.detail);
    out += fmt::format("\nrun {}: {} step(s) done, {} failed, {} not done, {} skipped · journal {}\n", res.run_id, done, failed, not_done, skipped,
                       res.run_dir);
    if (!v.changes.empty()) {
        out += "\nBefore → after:\n";
        for (const auto& c : v.changes) out += fmt::format("  {:<26} {} → {}  {}\n", c.id, c.before, c.after, c.message);
    }
    if (!v.still_failing.empty()) out += fmt::format("Still failing or warning: {} (see `kvmready check`)\n", join(v.still_failing, ", "));
    out += fmt::format("Undo with: kvmready fix --undo {}{}\n", res.run_id, v.root.empty() ? "" : " --root " + v.root);
    return out;
}

std::string render_undo_text(const fix::UndoResult& r) {
    return fmt::format("{} run {}: {} step(s) reverted{}\n", r.ok ? "undid" : "partly undid", r.run_id,
                       std::count_if(r.steps.begin(), r.steps.end(), [](const fix::StepReport& s) { return s.status == "done"; }),
                       r.ok ? "" : "; the failures above were left as they are");
}

std::string render_history_text(const std::vector<fix::RunInfo>& runs, const std::string& state) {
    if (runs.empty()) return fmt::format("no fix runs recorded in {}\n", state);
    std::string out;
    for (const auto& r : runs) {
        const std::string fixes = join(r.fixes(), ",");
        out += fmt::format("{:<26} {:<16} {:>3} steps  {}\n", r.id, r.status(), r.steps_done(), fixes.empty() ? "-" : fixes);
    }
    return out;
}

}  // namespace kvmready::output
