#include "core/runner.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/errors.hpp"
#include "core/probe.hpp"

namespace kvmready {

const char* to_string(Status s) {
    switch (s) {
    case Status::Pass: return "pass";
    case Status::Warn: return "warn";
    case Status::Fail: return "fail";
    case Status::Skip: return "skip";
    case Status::Unknown: return "unknown";
    case Status::Error: return "error";
    }
    return "error";
}

const char* to_string(Level l) {
    switch (l) {
    case Level::Required: return "required";
    case Level::Recommended: return "recommended";
    case Level::Optional: return "optional";
    }
    return "required";
}

const char* to_string(Verdict v) {
    switch (v) {
    case Verdict::Ready: return "ready";
    case Verdict::ReadyWithWarnings: return "ready_with_warnings";
    case Verdict::NotReady: return "not_ready";
    case Verdict::Undetermined: return "undetermined";
    case Verdict::Passed: return "passed";
    case Verdict::PassedWithWarnings: return "passed_with_warnings";
    case Verdict::Failed: return "failed";
    }
    return "undetermined";
}

const CheckSpec* find_check(const std::string& id) {
    for (const auto& c : registry())
        if (id == c.id) return &c;
    return nullptr;
}

namespace {

Finding run_one(const CheckSpec& spec, const Facts& facts, const Results& results) {
    Finding f;
    f.id = spec.id;
    f.category = spec.category();
    f.title = spec.title;
    f.level = spec.level;
    for (const char* dep : spec.depends_on) {
        const Finding* d = results.find(dep);
        if (d && (d->status == Status::Fail || d->status == Status::Skip)) {
            f.status = Status::Skip;
            // A skipped dependency passes its reason on, so the root cause
            // reads the same all along the chain.
            f.message = d->status == Status::Fail ? fmt::format("needs {} (failed)", dep) : d->message;
            return f;
        }
    }
    try {
        spec.run(facts, results, f);
    } catch (const std::exception& e) {
        f.status = Status::Error;
        f.message = fmt::format("the check itself failed: {}", e.what());
        f.evidence = nlohmann::ordered_json::object();
        f.remediation = Remediation{"This is a kvmready bug; please report it with `kvmready report`.", {}, "", "manual", false};
    }
    return f;
}

bool selected_by(const CheckSpec& spec, const std::vector<std::string>& selectors) {
    if (selectors.empty()) return true;
    const std::string cat = spec.category();
    return std::any_of(selectors.begin(), selectors.end(), [&](const std::string& s) { return s == spec.id || s == cat; });
}

// A "ready" that silently rests on unanswered checks would be trusted too far.
std::string unjudged_note(int n) {
    if (n == 0) return "";
    return fmt::format("; {} recommended check{} could not be judged (unknown)", n, n == 1 ? "" : "s");
}

// What the verdict needs besides the findings: the request (for the options
// a next step repeats), the fixes the layer above knows, the ground truth.
struct Context {
    const Request& request;
    const FixPlannable& plannable;
    std::string ground_truth;          // id of the check marked ground_truth ("" if none)
};

// One next step: the single command, or the hint naming where the several
// commands are, of the first finding that matches.
template <typename Pred>
std::string first_command(const std::vector<Finding>& findings, const Context& ctx, Pred pred) {
    const Request& request = ctx.request;
    for (const auto& f : findings) {
        if (!pred(f)) continue;
        const auto& rem = f.remediation;
        // A fix kvmready can apply: point at its plan, the safe first step.
        // (Not the fixes that need options of their own: --bridge, --hugepages.)
        if (!rem.fix_id.empty() && ctx.plannable && ctx.plannable(rem.fix_id) && rem.applicability != "manual") {
            std::string opts;
            if (request.connect_uri != Request{}.connect_uri) opts += " --connect " + request.connect_uri;
            if (!request.user.empty()) opts += " --user " + request.user;
            // The whole plan, not --only: one fix often needs another
            // (the node's group, then the user in it).
            return fmt::format("kvmready fix{2}   # plans {0}; apply with: sudo kvmready fix --apply{1}{2}", rem.fix_id,
                               rem.applicability == "confirm" ? " --yes" : "", opts);
        }
        if (rem.commands.size() == 1) return rem.commands.front();
        if (rem.commands.size() > 1) {
            std::string text = rem.text;
            if (!text.empty() && text.back() == '.') text.pop_back();
            return fmt::format("{}: the {} commands under {}", text, rem.commands.size(), f.id);
        }
        if (!rem.text.empty()) return rem.text;
    }
    return {};
}

void decide(Report& r, const Context& ctx) {
    const Finding* first_fail = nullptr;
    const Finding* first_unknown = nullptr;
    int warnings = 0;
    std::vector<std::string> failed_recommended;
    int unjudged = 0;  // recommended checks that said unknown or error
    std::string flavour;
    for (const auto& f : r.findings) {
        if (f.level == Level::Required) {
            if (f.status == Status::Fail && !first_fail) first_fail = &f;
            if ((f.status == Status::Unknown || f.status == Status::Error || f.status == Status::Skip) && !first_unknown)
                first_unknown = &f;
        }
        // Warnings that count: any non-pass outcome of a recommended check, a
        // required check that passed with reservations. Optional ones never do.
        const bool counts = (f.level == Level::Recommended && (f.status == Status::Warn || f.status == Status::Fail)) ||
                            (f.level == Level::Required && f.status == Status::Warn);
        if (f.level == Level::Recommended && (f.status == Status::Unknown || f.status == Status::Error)) ++unjudged;
        if (counts && f.status == Status::Fail) failed_recommended.push_back(f.id);
        else if (counts) ++warnings;
        if (f.id == ctx.ground_truth && f.status == Status::Pass && f.evidence.contains("flavour"))
            flavour = " (via " + f.evidence["flavour"].get<std::string>() + ")";
    }
    auto first_command = [&](auto pred) { return kvmready::first_command(r.findings, ctx, pred); };
    if (first_fail) {
        // Lead with the cause: registry order puts causes first, and a failed
        // recommended check (a firmware lock) can be the cause of a required one.
        auto is_cause = [](const Finding& f) { return f.level != Level::Optional && f.status == Status::Fail; };
        const Finding* lead = first_fail;
        for (const auto& f : r.findings)
            if (is_cause(f)) {
                lead = &f;
                break;
            }
        r.verdict = Verdict::NotReady;
        r.verdict_text = fmt::format("This host cannot run KVM virtual machines: {}.", lead->message);
        r.next_step = first_command(is_cause);
    } else if (first_unknown) {
        r.verdict = Verdict::Undetermined;
        r.verdict_text = fmt::format("Could not determine whether this host can run KVM: {} is {} ({}).", first_unknown->id,
                                     to_string(first_unknown->status), first_unknown->message);
        r.next_step = first_command([](const Finding& f) { return f.status == Status::Unknown || f.status == Status::Error; });
    } else if (warnings > 0 || !failed_recommended.empty()) {
        // KVM itself works; say plainly which recommended parts failed (the
        // admin's next job) before counting the softer warnings.
        r.verdict = Verdict::ReadyWithWarnings;
        std::string rest;
        if (!failed_recommended.empty())
            rest = fmt::format("but {} recommended check{} failed ({})", failed_recommended.size(),
                               failed_recommended.size() == 1 ? "" : "s", fmt::join(failed_recommended, ", "));
        if (warnings > 0)
            rest += fmt::format("{}{} warning{} to read", rest.empty() ? "with " : " and ", warnings, warnings == 1 ? "" : "s");
        r.verdict_text = fmt::format("KVM works on this host{}, {}{}.", flavour, rest, unjudged_note(unjudged));
        r.next_step = first_command([](const Finding& f) { return f.level == Level::Recommended && f.status == Status::Fail; });
        if (r.next_step.empty())
            r.next_step = first_command([](const Finding& f) {
                return f.level != Level::Optional && (f.status == Status::Warn || f.status == Status::Fail);
            });
    } else {
        r.verdict = Verdict::Ready;
        r.verdict_text = fmt::format("This host can run KVM virtual machines{}{}.", flavour, unjudged_note(unjudged));
    }
}

// A run of selected checks answers for them alone: its sentence names the
// selection and says whether KVM itself (the ground truth, kvm.api) was among it.
void decide_selection(Report& r, const Results& results, const std::vector<CheckSpec>& checks, const Context& ctx) {
    const std::string sel = fmt::format("{}", fmt::join(r.scope.selected, ", "));
    const size_t n = r.findings.size();
    const Finding* lead = nullptr;       // a failed selected check, or the failed dependency behind a skipped one
    const Finding* undetermined = nullptr;
    const Finding* warned_dependency = nullptr;  // of a skipped selected check, outside the selection
    int warnings = 0, unjudged = 0, judged = 0;
    for (const auto& f : r.findings) {
        if (f.status == Status::Fail && f.level != Level::Optional && !lead) lead = &f;
        if (f.status == Status::Skip && !lead) {
            // Skipped because a check it needs failed (that check may lie
            // outside the selection): the selection failed, for that reason.
            const CheckSpec* spec = nullptr;
            for (const auto& c : checks)
                if (f.id == c.id) spec = &c;
            if (spec)
                for (const char* dep : spec->depends_on) {
                    const Finding* d = results.find(dep);
                    if (d && d->status == Status::Fail && !lead) lead = d;
                    // Not applicable because of a dependency's warning (no
                    // IOMMU: devices.passthrough): that warning, outside the
                    // selection, is the selection's.
                    const bool shown = std::any_of(r.findings.begin(), r.findings.end(), [&](const Finding& x) { return x.id == dep; });
                    if (d && d->status == Status::Warn && !shown) {
                        ++warnings;
                        if (!warned_dependency) warned_dependency = d;
                    }
                }
        }
        // As for the whole host: an unjudged required check leaves the
        // answer open; unjudged recommended ones are counted in the sentence.
        if ((f.status == Status::Unknown || f.status == Status::Error) && f.level == Level::Required && !undetermined) undetermined = &f;
        if ((f.status == Status::Unknown || f.status == Status::Error) && f.level == Level::Recommended) ++unjudged;
        if (f.status == Status::Pass || f.status == Status::Warn || f.status == Status::Fail) ++judged;
        if (f.status == Status::Warn || (f.status == Status::Fail && f.level == Level::Optional)) ++warnings;
    }
    // Nothing selected could be judged at all: no answer either.
    if (!undetermined && judged == 0)
        for (const auto& f : r.findings)
            if (f.status == Status::Unknown || f.status == Status::Error) {
                undetermined = &f;
                break;
            }
    const std::string kvm_clause =
        r.scope.kvm_checked ? (results.status(ctx.ground_truth) == Status::Pass
                                   ? fmt::format("KVM works ({} passed); the rest of the host was not checked", ctx.ground_truth)
                                   : "the rest of the host was not checked")
                            : "KVM itself was not checked";
    auto pred_of = [](const Finding* x) { return [x](const Finding& f) { return f.id == x->id; }; };
    if (lead) {
        r.verdict = Verdict::Failed;
        r.verdict_text = fmt::format("The selected checks ({}) failed: {}: {}.", sel, lead->id, lead->message);
        // The lead may be a dependency outside the selection: look there too.
        std::vector<Finding> pool = r.findings;
        if (!std::any_of(r.findings.begin(), r.findings.end(), [&](const Finding& f) { return f.id == lead->id; })) pool.push_back(*lead);
        r.next_step = first_command(pool, ctx, pred_of(lead));
    } else if (undetermined) {
        r.verdict = Verdict::Undetermined;
        r.verdict_text = fmt::format("Could not judge the selected checks ({}): {} is {} ({}).", sel, undetermined->id,
                                     to_string(undetermined->status), undetermined->message);
        r.next_step = first_command(r.findings, ctx, pred_of(undetermined));
    } else if (warnings > 0) {
        r.verdict = Verdict::PassedWithWarnings;
        r.verdict_text = fmt::format("The {} selected check{} ({}) passed with {} warning{}{}{}; {}.", n, n == 1 ? "" : "s", sel, warnings,
                                     warnings == 1 ? "" : "s",
                                     warned_dependency ? fmt::format(" ({} warns, outside the selection)", warned_dependency->id) : "",
                                     unjudged_note(unjudged), kvm_clause);
        std::vector<Finding> pool = r.findings;
        if (warned_dependency) pool.push_back(*warned_dependency);
        r.next_step = first_command(pool, ctx, [](const Finding& f) { return f.status == Status::Warn; });
    } else {
        r.verdict = Verdict::Passed;
        r.verdict_text = fmt::format("The {} selected check{} ({}) passed{}; {}.", n, n == 1 ? "" : "s", sel, unjudged_note(unjudged), kvm_clause);
    }
    if (!r.scope.kvm_checked || r.verdict != Verdict::Failed)
        if (r.next_step.empty() && !r.scope.kvm_checked) r.next_step = "kvmready check   # judges the whole host, KVM included";
}

}  // namespace

unsigned probe_areas_for(const std::vector<std::string>& selectors) {
    if (selectors.empty()) return kAreaAll;
    unsigned areas = 0;
    std::set<std::string> seen;
    std::vector<const CheckSpec*> todo;
    for (const auto& spec : registry())
        if (selected_by(spec, selectors)) todo.push_back(&spec);
    while (!todo.empty()) {
        const CheckSpec* c = todo.back();
        todo.pop_back();
        if (!seen.insert(c->id).second) continue;
        areas |= c->areas;
        for (const char* dep : c->depends_on)
            if (const CheckSpec* d = find_check(dep)) todo.push_back(d);
    }
    return areas;
}

Report run_checks(const Facts& facts, const std::vector<std::string>& selectors, const FixPlannable& plannable) {
    return run_checks(facts, selectors, registry(), plannable);
}

Report run_checks(const Facts& facts, const std::vector<std::string>& selectors, const std::vector<CheckSpec>& checks,
                  const FixPlannable& plannable) {
    for (const auto& s : selectors) {
        bool known = std::any_of(checks.begin(), checks.end(),
                                 [&](const CheckSpec& c) { return s == c.id || s == c.category(); });
        if (!known) throw UsageError(fmt::format("unknown check or category '{}' (see `kvmready check --list`)", s));
    }
    Results results(facts);
    Report r;
    r.scope.selected = selectors;
    for (const auto& spec : checks) {
        Finding f = run_one(spec, facts, results);
        results.add(f);
        if (!selected_by(spec, selectors)) {
            r.scope.whole_host = false;
            continue;
        }
        switch (f.status) {
        case Status::Pass: ++r.summary.pass; break;
        case Status::Warn: ++r.summary.warn; break;
        case Status::Fail: ++r.summary.fail; break;
        case Status::Skip: ++r.summary.skip; break;
        case Status::Unknown: ++r.summary.unknown; break;
        case Status::Error: ++r.summary.error; break;
        }
        r.findings.push_back(std::move(f));
    }
    Context ctx{facts.request, plannable, ""};
    for (const auto& spec : checks)
        if (spec.ground_truth) ctx.ground_truth = spec.id;
    r.scope.kvm_checked = !ctx.ground_truth.empty() &&
                          std::any_of(r.findings.begin(), r.findings.end(), [&](const Finding& f) { return f.id == ctx.ground_truth; });
    if (r.scope.whole_host) decide(r, ctx);
    else decide_selection(r, results, checks, ctx);
    return r;
}

int exit_code_for(const Report& r, bool strict) {
    switch (r.verdict) {
    case Verdict::Ready: return kExitReady;
    case Verdict::ReadyWithWarnings: return strict ? kExitNotReady : kExitReady;
    case Verdict::NotReady: return kExitNotReady;
    case Verdict::Undetermined: return kExitUndetermined;
    case Verdict::Passed: return kExitReady;
    case Verdict::PassedWithWarnings: return strict ? kExitNotReady : kExitReady;
    case Verdict::Failed: return kExitNotReady;
    }
    return kExitSoftware;
}

}  // namespace kvmready
