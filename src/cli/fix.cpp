// kvmready fix: the plan (dry run, the default), --apply with an undo
// journal and a re-check, --undo, --history.
#include <unistd.h>

#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "cli/probe_cli.hpp"
#include "core/errors.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"
#include "fixes/engine.hpp"
#include "fixes/fix.hpp"
#include "util/utf8.hpp"

namespace kvmready::cli {

namespace {

struct FixCli {
    bool apply = false, yes = false, json = false, history = false, list = false;
    std::optional<std::string> undo;
    std::string only;
    ProbeCli probe;
    fix::FixOptions fix;
    std::vector<std::string> argv;
};

std::vector<std::string> split_csv(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

struct Judged {
    Facts facts;
    Report report;
    std::unique_ptr<host::Host> host;
};

Judged judge(const FixCli& o) {
    ProbeSource src = open_source(o.probe);
    src.options.config = true;  // the planners read ConfigFacts
    src.options.uplink = o.fix.uplink;
    src.options.pool_path = o.fix.pool_path;
    Judged j;
    j.facts = probe_source(src, *src.host, o.probe);
    j.report = run_checks(j.facts, {});
    j.host = std::move(src.host);
    return j;
}

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

// Why a plan will not run with these flags ("" when it will).
std::string why_not(const fix::Plan& p, const FixCli& o) {
    if (p.applicability == fix::Applicability::Manual) return "manual: only a person can do it";
    if (p.applicability == fix::Applicability::Confirm && !o.yes) return "needs --yes (it changes existing state)";
    return "";
}

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

std::string plan_text(const fix::Plan& p, int n, const FixCli& o) {
    const std::string label = !p.fix_id.empty() ? p.fix_id : !p.repairs.empty() ? p.repairs.front() : std::string("?");
    std::string out = fmt::format("[{}] {} · {}{}\n", n, label, fix::to_string(p.applicability),
                                  p.repairs.empty() ? "" : " · repairs " + [&] {
                                      std::string r;
                                      for (const auto& x : p.repairs) r += (r.empty() ? "" : ", ") + x;
                                      return r;
                                  }());
    out += fmt::format("    {}\n", p.title);
    if (!p.reason.empty()) out += fmt::format("    why: {}\n", p.reason);
    if (!p.manual.empty()) out += fmt::format("    do: {}\n", p.manual);
    for (const auto& s : p.steps) {
        out += fmt::format("    - {}{}\n", s.summary, s.runtime && !o.fix.root.empty() ? " (not with --root: runtime change)" : "");
        auto j = step_json(s);
        // Files show their diff; other steps their commands, then any
        // document they submit (a libvirt XML) as a diff.
        if (!s.op.starts_with("file."))
            for (const auto& c : s.commands) out += fmt::format("      $ {}\n", fix::quote_argv(c));
        if (j.contains("diff")) {
            if (j.contains("mode")) out += fmt::format("      mode {} root:root\n", j["mode"].get<std::string>());
            out += indent(j["diff"].get<std::string>(), "      ");
        }
    }
    std::vector<std::string> needs;
    if (p.needs_reboot) needs.push_back("a reboot");
    if (p.needs_module_reload) needs.push_back("a module reload (done by the plan)");
    if (p.needs_relogin) needs.push_back("a new login");
    if (!needs.empty()) {
        std::string s;
        for (const auto& x : needs) s += (s.empty() ? "" : ", ") + x;
        out += fmt::format("    needs: {}\n", s);
    }
    for (const auto& note : p.notes) out += fmt::format("    note: {}\n", note);
    const std::string wn = why_not(p, o);
    if (!wn.empty() && p.applicability != fix::Applicability::Manual) out += fmt::format("    not applied: {}\n", wn);
    return out;
}

int run_history(const FixCli& o) {
    const std::string state = fix::state_dir(o.fix.root);
    auto runs = fix::list_runs(state);
    if (o.json) {
        nlohmann::ordered_json arr = nlohmann::ordered_json::array();
        for (const auto& r : runs)
            arr.push_back({{"run_id", r.id},
                           {"created", r.header.value("created", "")},
                           {"status", r.status()},
                           {"fixes", r.fixes()},
                           {"steps_done", r.steps_done()},
                           {"command", r.header.value("argv", nlohmann::json::array())}});
        std::cout << util::dump_json(nlohmann::ordered_json({{"schema_version", 1}, {"state_dir", state}, {"runs", arr}}), 2) << "\n";
        return kExitReady;
    }
    if (runs.empty()) {
        std::cout << fmt::format("no fix runs recorded in {}\n", state);
        return kExitReady;
    }
    for (const auto& r : runs) {
        std::string fixes;
        for (const auto& f : r.fixes()) fixes += (fixes.empty() ? "" : ",") + f;
        std::cout << fmt::format("{:<26} {:<16} {:>3} steps  {}\n", r.id, r.status(), r.steps_done(), fixes.empty() ? "-" : fixes);
    }
    return kExitReady;
}

void require_root(const char* what) {
    if (::geteuid() != 0)
        throw ExitError(kExitNoPerm, fmt::format("{} changes the system and must run as root; nothing was changed (try: sudo kvmready fix {})",
                                                 what, std::string(what) == "--apply" ? "--apply" : "--undo"));
}

int run_undo(const FixCli& o) {
    require_root("--undo");
    const std::string state = fix::state_dir(o.fix.root);
    fix::StateLock lock(state);
    auto log = [&](const std::string& m) { (o.json ? std::cerr : std::cout) << m << "\n"; };
    auto res = fix::undo_run(state, *o.undo, log, o.fix.root);
    if (o.json) {
        nlohmann::ordered_json steps = nlohmann::ordered_json::array();
        for (const auto& s : res.steps) steps.push_back({{"fix_id", s.fix_id}, {"summary", s.summary}, {"status", s.status}, {"detail", s.detail}});
        std::cout << util::dump_json(nlohmann::ordered_json({{"schema_version", 1}, {"run_id", res.run_id}, {"ok", res.ok}, {"steps", steps}}), 2) << "\n";
    } else {
        std::cout << fmt::format("{} run {}: {} step(s) reverted{}\n", res.ok ? "undid" : "partly undid", res.run_id,
                                 std::count_if(res.steps.begin(), res.steps.end(), [](const fix::StepReport& s) { return s.status == "done"; }),
                                 res.ok ? "" : "; the failures above were left as they are");
    }
    return res.ok ? kExitReady : kExitNotReady;
}

int run_fix(FixCli& o) {
    if (o.list) {
        for (const auto& f : fix::registry()) std::cout << fmt::format("{:<24} {}\n", f.id, f.title);
        return kExitReady;
    }
    o.fix.only = split_csv(o.only);
    for (const auto& id : o.fix.only)
        if (!fix::find_fix(id)) throw UsageError(fmt::format("unknown fix '{}' (see `kvmready fix --list`)", id));
    if (!o.fix.uplink.empty() && o.fix.bridge.empty()) throw UsageError("--uplink needs --bridge NAME");
    if (!o.fix.pool_path.empty() && !o.fix.pool_path.starts_with("/")) throw UsageError("--pool-path must be an absolute path");
    if (!o.fix.root.empty() && (o.history || o.undo)) {
        // Runs are journaled inside the root: fine.
    }
    if (o.history) return run_history(o);
    if (o.undo) return run_undo(o);
    if (o.apply) require_root("--apply");
    // The probe sees what the fixes see: same user, URI, network, pool, bridge.
    o.probe.root = o.fix.root;
    o.probe.user = o.fix.user;
    o.probe.request.connect_uri = o.fix.connect_uri;
    o.probe.request.network = o.fix.network;
    o.probe.request.network_given = o.fix.network_given;
    o.probe.request.pool = o.fix.pool;
    o.probe.request.pool_given = o.fix.pool_given;
    o.probe.request.bridge = o.fix.bridge;
    std::optional<fix::StateLock> lock;
    const std::string state = fix::state_dir(o.fix.root);
    std::vector<std::string> reverted;
    if (o.apply) {
        lock.emplace(state);
        reverted = fix::revert_half_done(state, o.argv, [&](const std::string& m) { (o.json ? std::cerr : std::cout) << m << "\n"; }, o.fix.root);
    }
    Judged before = judge(o);
    fix::PlanSet set = fix::make_plans(before.facts, before.report, o.fix);
    std::vector<fix::Plan> chosen;
    for (const auto& p : set.plans)
        if (why_not(p, o).empty()) chosen.push_back(p);

    if (!o.apply) {
        if (o.json) {
            nlohmann::ordered_json plans = nlohmann::ordered_json::array(), manual = nlohmann::ordered_json::array();
            for (const auto& p : set.plans) plans.push_back(plan_json(p, why_not(p, o).empty(), why_not(p, o)));
            for (const auto& p : set.manual) manual.push_back(plan_json(p, false, why_not(p, o)));
            std::cout << util::dump_json(nlohmann::ordered_json({{"schema_version", 1},
                                                 {"mode", "dry-run"},
                                                 {"target", o.fix.root.empty() ? std::string("live") : "root:" + o.fix.root},
                                                 {"plans", plans},
                                                 {"manual", manual},
                                                 {"errors", set.errors}}),
                             2)
                      << "\n";
        } else {
            std::cout << fmt::format("kvmready fix · dry run: nothing is changed{}\n\n",
                                     o.fix.root.empty() ? "" : fmt::format(" · files under {}", o.fix.root));
            int n = 0;
            for (const auto& p : set.plans) std::cout << plan_text(p, ++n, o) << "\n";
            for (const auto& p : set.manual) std::cout << plan_text(p, ++n, o) << "\n";
            for (const auto& e : set.errors) std::cout << fmt::format("cannot plan {}\n", e);
            if (set.plans.empty()) std::cout << "Nothing to fix automatically.\n";
            else
                std::cout << fmt::format("{} fix(es) planned; apply with `kvmready fix --apply{}`{}.\n", set.plans.size(),
                                         chosen.size() < set.plans.size() ? " --yes" : "",
                                         chosen.size() < set.plans.size() ? " (--yes for the 'confirm' ones)" : "");
        }
        return set.plans.empty() ? (set.errors.empty() ? kExitReady : kExitNotReady) : 2;
    }

    auto log = [&](const std::string& m) { (o.json ? std::cerr : std::cout) << m << "\n"; };
    if (!o.json) {
        for (const auto& e : set.errors) std::cout << fmt::format("cannot plan {}\n", e);
        for (const auto& p : set.plans)
            if (!why_not(p, o).empty()) std::cout << fmt::format("skipped {}: {}\n", p.fix_id, why_not(p, o));
    }
    const bool resuming = fix::interrupted_run(state).has_value();
    if (chosen.empty() && !resuming) {
        if (o.json)
            std::cout << util::dump_json(nlohmann::ordered_json({{"schema_version", 1}, {"mode", "apply"}, {"run_id", nullptr}, {"ok", set.errors.empty()},
                                                 {"steps", nlohmann::ordered_json::array()}, {"errors", set.errors}}),
                             2)
                      << "\n";
        else
            std::cout << "Nothing to do.\n";
        return set.errors.empty() ? kExitReady : kExitNotReady;
    }
    auto res = fix::apply_plans(state, chosen, o.fix, o.argv, log);
    res.reverted_half_done = reverted;

    // Before → after, from a fresh probe of the changed host.
    Judged after = judge(o);
    nlohmann::ordered_json changes = nlohmann::ordered_json::array();
    std::string change_text;
    for (const auto& f : before.report.findings) {
        const Finding* a = nullptr;
        for (const auto& g : after.report.findings)
            if (g.id == f.id) a = &g;
        if (!a || a->status == f.status) continue;
        changes.push_back({{"id", f.id}, {"before", to_string(f.status)}, {"after", to_string(a->status)}, {"message", a->message}});
        change_text += fmt::format("  {:<26} {} → {}  {}\n", f.id, to_string(f.status), to_string(a->status), a->message);
    }
    std::vector<std::string> still;
    for (const auto& p : chosen)
        for (const auto& r : p.repairs)
            for (const auto& g : after.report.findings)
                if (g.id == r && (g.status == Status::Fail || g.status == Status::Warn) &&
                    std::find(still.begin(), still.end(), r) == still.end())
                    still.push_back(r);
    const bool ok = res.ok;
    if (o.json) {
        nlohmann::ordered_json steps = nlohmann::ordered_json::array();
        for (const auto& s : res.steps) steps.push_back({{"fix_id", s.fix_id}, {"summary", s.summary}, {"status", s.status}, {"detail", s.detail}});
        std::cout << util::dump_json(nlohmann::ordered_json({{"schema_version", 1},
                                             {"mode", "apply"},
                                             {"run_id", res.run_id},
                                             {"journal", res.run_dir},
                                             {"resumed", res.resumed},
                                             {"reverted_half_done", res.reverted_half_done},
                                             {"ok", ok},
                                             {"steps", steps},
                                             {"changed_checks", changes},
                                             {"still_failing", still},
                                             {"errors", set.errors}}),
                         2)
                  << "\n";
    } else {
        if (res.resumed)
            std::cout << fmt::format("resumed interrupted run {}{}\n", res.run_id,
                                     res.reverted_half_done.empty() ? "" : fmt::format(" (put back {} half-done step(s) first)", res.reverted_half_done.size()));
        int done = 0, failed = 0, not_done = 0, skipped = 0;
        for (const auto& s : res.steps) {
            if (s.status == "done") ++done;
            else if (s.status == "failed") ++failed;
            else if (s.status == "not-done") ++not_done;
            else ++skipped;
        }
        if (failed && not_done) {
            std::cout << "\nNot done (stopped at the failure):\n";
            for (const auto& s : res.steps)
                if (s.status == "not-done") std::cout << fmt::format("  [{}] {}\n", s.fix_id, s.summary);
        }
        for (const auto& s : res.steps)
            if (s.status == "skipped") std::cout << fmt::format("  skipped [{}] {}: {}\n", s.fix_id, s.summary, s.detail);
        std::cout << fmt::format("\nrun {}: {} step(s) done, {} failed, {} not done, {} skipped · journal {}\n", res.run_id, done, failed, not_done,
                                 skipped, res.run_dir);
        if (!change_text.empty()) std::cout << "\nBefore → after:\n" << change_text;
        if (!still.empty()) {
            std::string s;
            for (const auto& x : still) s += (s.empty() ? "" : ", ") + x;
            std::cout << fmt::format("Still failing or warning: {} (see `kvmready check`)\n", s);
        }
        std::cout << fmt::format("Undo with: kvmready fix --undo {}{}\n", res.run_id, o.fix.root.empty() ? "" : " --root " + o.fix.root);
    }
    return ok ? kExitReady : kExitNotReady;
}

}  // namespace

Action setup_fix(CLI::App& app) {
    auto o = std::make_shared<FixCli>();
    auto* sub = app.add_subcommand("fix", "Plan (default) or apply the fixes for what `check` found; undo them.");
    sub->add_flag("--apply", o->apply, "Make the changes (automatic fixes; 'confirm' ones also need --yes), journaled for --undo");
    sub->add_flag("-y,--yes", o->yes, "Also apply the 'confirm' fixes");
    sub->add_option("--only", o->only, "Only these fixes (comma-separated ids, see --list)")->option_text("ID,...");
    sub->add_option("--undo", o->undo, "Revert a run (the newest one when no RUN-ID is given)")->expected(0, 1)->default_str("")->option_text("[RUN-ID]");
    sub->add_flag("--history", o->history, "List the recorded fix runs");
    sub->add_flag("--list", o->list, "List the fixes kvmready knows");
    sub->add_flag("--json", o->json, "Print the plan / result as one JSON object");
    sub->add_option("--root", o->fix.root, "Change files under this directory instead of / (a golden image); no runtime changes");
    sub->add_option("-u,--user", o->fix.user, "Who should be able to use KVM and libvirt (default: the invoking user)");
    sub->add_option("-c,--connect", o->fix.connect_uri, "libvirt URI (default qemu:///system)");
    sub->add_option("--network", o->fix.network, "libvirt network to define/start (default: default)")
        ->each([o](const std::string&) { o->fix.network_given = true; });
    sub->add_option("--subnet", o->fix.subnet, "IPv4 subnet for a network kvmready defines, e.g. 192.168.150.0/24");
    sub->add_option("--pool", o->fix.pool, "libvirt storage pool to create (default: default)")
        ->each([o](const std::string&) { o->fix.pool_given = true; });
    sub->add_option("--pool-path", o->fix.pool_path, "Directory for the pool (default /var/lib/libvirt/images)");
    sub->add_option("--bridge", o->fix.bridge, "Create this Linux bridge (runtime and persistent)");
    sub->add_option("--uplink", o->fix.uplink, "Enslave this interface to --bridge, moving its addresses and routes (rolls back on lost connectivity)");
    sub->add_option("--hugepages", o->fix.hugepages, "Reserve N default-size huge pages now and at boot");
    sub->get_option("--undo")->excludes("--apply")->excludes("--history");
    sub->get_option("--apply")->excludes("--history");
    sub->footer("Exit status: 0 nothing to do / applied, 2 (dry run) fixes are planned, 1 a step failed or could not be planned, "
                "64 usage, 73 state directory not writable, 75 another fix is running, 77 --apply/--undo without root.");
    return [o] {
        o->argv = {command_line()};
        return run_fix(*o);
    };
}

}  // namespace kvmready::cli
