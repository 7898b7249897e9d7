// kvmready fix: the plan (dry run, the default), --apply with an undo
// journal and a re-check, --undo, --history. This file wires the options to
// the engine (fixes/) and the renderers (output/fix_*.cpp); it prints nothing
// of its own making.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
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
#include "output/fix_output.hpp"
#include "util/utf8.hpp"

namespace kvmready::cli {

namespace {

struct FixCli {
    bool apply = false, yes = false, json = false, history = false, list = false;
    std::optional<std::string> undo;
    std::string only;
    std::string packages;  // --packages, for pkg.virt-stack
    ProbeCli probe;  // probe.options: what both the probe and the fixes read
    std::vector<std::string> argv;

    [[nodiscard]] const Options& options() const { return probe.options; }
    [[nodiscard]] const std::string& root() const { return probe.options.root; }
    // Progress and messages of the engine: beside the text, off the JSON.
    [[nodiscard]] std::function<void(const std::string&)> log() const {
        const bool to_err = json;
        return [to_err](const std::string& m) { (to_err ? std::cerr : std::cout) << m << "\n"; };
    }
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
    std::unique_ptr<report::OpenedBundle> bundle;  // keeps a --from bundle's files while the host reads them
    std::unique_ptr<host::Host> host;
};

Judged judge(const FixCli& o) {
    ProbeSource src = open_source(o.probe);
    src.options.config = true;  // the planners read ConfigFacts
    src.options.uplink = o.options().uplink;
    src.options.pool_path = o.options().pool_path;
    src.options.config_addresses = o.probe.from.empty();  // never from a bundle: it has none
    Judged j;
    j.facts = probe_source(src, *src.host, o.probe);
    j.report = run_checks(j.facts, {}, fix::plannable_unaided);
    j.host = std::move(src.host);
    j.bundle = std::move(src.bundle);
    return j;
}

void print_json(const nlohmann::ordered_json& j) { std::cout << util::dump_json(j, 2) << "\n"; }

int run_history(const FixCli& o) {
    const std::string state = fix::state_dir(o.root());
    auto runs = fix::list_runs(state);
    if (o.json) print_json(output::render_history_json(runs, state));
    else std::cout << output::render_history_text(runs, state);
    return kExitReady;
}

void require_root(const char* what) {
    if (::geteuid() != 0)
        throw ExitError(kExitNoPerm, fmt::format("{} changes the system and must run as root; nothing was changed (try: sudo kvmready fix {})",
                                                 what, std::string(what) == "--apply" ? "--apply" : "--undo"));
}

int run_undo(const FixCli& o) {
    require_root("--undo");
    const std::string state = fix::state_dir(o.root());
    fix::StateLock lock(state);
    auto res = fix::undo_run(state, *o.undo, o.log(), o.root());
    if (o.json) print_json(output::render_undo_json(res));
    else std::cout << output::render_undo_text(res);
    return res.ok ? kExitReady : kExitNotReady;
}

std::vector<fix::Plan> chosen_plans(const fix::PlanSet& set, bool yes) {
    std::vector<fix::Plan> chosen;
    for (const auto& p : set.plans)
        if (output::fix_why_not(p, yes).empty()) chosen.push_back(p);
    return chosen;
}

// The dry run: print the plans (for this host, a --root tree or a --from bundle).
int print_plans(const FixCli& o, const fix::PlanSet& set, const std::string& target) {
    const output::FixPlanView view{set, o.yes, o.root(), target, chosen_plans(set, o.yes).size()};
    if (o.json) print_json(output::render_plans_json(view));
    else std::cout << output::render_plans_text(view);
    return set.plans.empty() ? (set.errors.empty() ? kExitReady : kExitNotReady) : 2;
}

// Before → after: the checks whose status changed, and the repaired checks
// that still warn or fail.
void compare(const Report& before, const Report& after, const std::vector<fix::Plan>& chosen, output::FixApplyView& v) {
    for (const auto& f : before.findings) {
        const Finding* a = nullptr;
        for (const auto& g : after.findings)
            if (g.id == f.id) a = &g;
        if (!a || a->status == f.status) continue;
        v.changes.push_back({f.id, to_string(f.status), to_string(a->status), a->message});
    }
    for (const auto& p : chosen)
        for (const auto& r : p.repairs)
            for (const auto& g : after.findings)
                if (g.id == r && (g.status == Status::Fail || g.status == Status::Warn) &&
                    std::find(v.still_failing.begin(), v.still_failing.end(), r) == v.still_failing.end())
                    v.still_failing.push_back(r);
}

int run_apply(const FixCli& o) {
    require_root("--apply");
    const std::string state = fix::state_dir(o.root());
    fix::StateLock lock(state);
    const std::vector<std::string> reverted = fix::revert_half_done(state, o.argv, o.log(), o.root());
    Judged before = judge(o);
    const fix::PlanSet set = fix::make_plans(before.facts, before.report, o.options());
    const std::vector<fix::Plan> chosen = chosen_plans(set, o.yes);
    if (!o.json) std::cout << output::render_apply_preamble_text(set, o.yes);
    if (chosen.empty() && !fix::interrupted_run(state).has_value()) {
        if (o.json) print_json(output::render_nothing_to_apply_json(set.errors));
        else std::cout << output::render_nothing_to_apply_text();
        return set.errors.empty() ? kExitReady : kExitNotReady;
    }
    auto res = fix::apply_plans(state, chosen, o.options(), o.argv, o.log());
    res.reverted_half_done = reverted;
    // Before → after, from a fresh probe of the changed host.
    const Judged after = judge(o);
    output::FixApplyView view{res, set.errors, {}, {}, o.root()};
    compare(before.report, after.report, chosen, view);
    if (o.json) print_json(output::render_apply_json(view));
    else std::cout << output::render_apply_text(view);
    return res.ok ? kExitReady : kExitNotReady;
}

// Options that cannot work, before anything is probed or locked.
void validate(FixCli& o) {
    auto& opt = o.probe.options;
    opt.only = split_csv(o.only);
    for (const auto& id : opt.only)
        if (!fix::find_fix(id)) throw UsageError(fmt::format("unknown fix '{}' (see `kvmready fix --list`)", id));
    opt.packages = split_csv(o.packages);
    for (const auto& p : opt.packages)  // a package manager's argv: never an option ("-o...")
        if (p.empty() || !std::isalnum(static_cast<unsigned char>(p[0])) ||
            !std::all_of(p.begin(), p.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("+-._:", c); }))
            throw UsageError(fmt::format("--packages: '{}' is not a package name", p));
    validate_uplink_and_pool_path(opt);
    if (!o.probe.from.empty() && (o.apply || o.undo || o.history))
        throw UsageError("--from plans for the recorded host of a bundle; --apply, --undo and --history change or read this one");
}

int run_fix(FixCli& o) {
    if (o.list) {
        for (const auto& f : fix::registry()) std::cout << fmt::format("{:<24} {}\n", f.id, f.title);
        return kExitReady;
    }
    validate(o);
    // --root: runs are journaled inside the root, so history and undo work there too.
    if (o.history) return run_history(o);
    if (o.undo) return run_undo(o);
    if (o.apply) return run_apply(o);
    Judged j = judge(o);
    const fix::PlanSet set = fix::make_plans(j.facts, j.report, o.options());
    const std::string target = !o.probe.from.empty() ? j.facts.source : o.root().empty() ? std::string("live") : "root:" + o.root();
    return print_plans(o, set, target);
}

}  // namespace

Action setup_fix(CLI::App& app) {
    auto o = std::make_shared<FixCli>();
    auto* sub = app.add_subcommand("fix", "Plan (default) or apply the fixes for what `check` found; undo them.");
    sub->add_flag("--apply", o->apply, "Make the changes (automatic fixes; 'confirm' ones also need --yes), journaled for --undo");
    sub->add_flag("-y,--yes", o->yes, "Also apply the 'confirm' fixes");
    sub->add_option("--only", o->only, "Only these fixes (comma-separated ids, see --list)")->option_text("ID,...");
    sub->add_option("--packages", o->packages, "pkg.virt-stack installs these packages instead of the distribution's virtualization stack")
        ->option_text("PKG,...");
    sub->add_option("--undo", o->undo, "Revert a run (the newest one when no RUN-ID is given)")->expected(0, 1)->default_str("")->option_text("[RUN-ID]");
    sub->add_flag("--history", o->history, "List the recorded fix runs");
    sub->add_flag("--list", o->list, "List the fixes kvmready knows");
    sub->add_flag("--json", o->json, "Print the plan / result as one JSON object");
    auto& opt = o->probe.options;
    sub->add_option("--root", opt.root, "Change files under this directory instead of / (a golden image); no runtime changes");
    add_request_options(sub, opt,
                        {"Who should be able to use KVM and libvirt (default: the invoking user)", "libvirt URI (default qemu:///system)",
                         "libvirt network to define/start (default: default)", "libvirt storage pool to create (default: default)",
                         "Create this Linux bridge (runtime and persistent)"});
    sub->add_option("--subnet", opt.subnet, "IPv4 subnet for a network kvmready defines, e.g. 192.168.150.0/24");
    sub->add_option("--pool-path", opt.pool_path, "Directory for the pool (default /var/lib/libvirt/images)");
    sub->add_option("--uplink", opt.uplink, "Enslave this interface to --bridge, moving its addresses and routes (rolls back on lost connectivity)");
    sub->add_option("--hugepages", opt.hugepages, "Reserve N default-size huge pages now and at boot");
    sub->add_option("--device", opt.device,
                    "Bind this PCI device to vfio-pci for passthrough (fix devices.vfio-bind): BDF or VENDOR:DEVICE, several "
                    "comma-separated (a shared IOMMU group goes whole)")
        ->type_name("DEV[,DEV...]");
    // Plan for a customer's host on this machine: the facts of a support bundle, read only.
    auto* from = sub->add_option("--from", o->probe.from,
                                 "Print the plan for the host recorded in a support bundle (kvmready report): FILE.tar.gz or its unpacked "
                                 "directory; nothing is changed");
    from->excludes("--root");
    sub->add_option("--bundle-limit", o->probe.bundle_limits, "Raise a limit on unpacking a --from bundle (see kvmready(1), LIMITS)")
        ->type_name("NAME=N");
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
