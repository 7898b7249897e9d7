#include <unistd.h>

#include <iostream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "cli/probe_cli.hpp"
#include "core/errors.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"
#include "fixes/fix.hpp"
#include "host/recording_host.hpp"
#include "output/output.hpp"
#include "smoke/smoke.hpp"
#include "util/utf8.hpp"

namespace kvmready::cli {

namespace {

struct CheckOptions {
    bool json = false, quiet = false, verbose = false, strict = false, list = false, full = false;
    std::string color = "auto";
    std::string record;
    ProbeCli probe;
    std::vector<std::string> selectors;
};

int list_checks(bool json) {
    if (json) {
        nlohmann::ordered_json arr = nlohmann::ordered_json::array();
        for (const auto& c : registry())
            arr.push_back({{"id", c.id}, {"category", c.category()}, {"title", c.title}, {"level", to_string(c.level)}});
        std::cout << util::dump_json(arr, 2) << "\n";
        return kExitReady;
    }
    for (const auto& c : registry()) std::cout << fmt::format("{:<22} {:<12} {}\n", c.id, to_string(c.level), c.title);
    return kExitReady;
}

int run_check(const CheckOptions& o) {
    if (o.list) return list_checks(o.json);
    // Reject bad selectors before any probing.
    for (const auto& s : o.selectors)
        if (!find_check(s) && std::none_of(registry().begin(), registry().end(), [&](const CheckSpec& c) { return c.category() == s; }))
            throw UsageError(fmt::format("unknown check or category '{}' (see `kvmready check --list`)", s));
    if (!o.record.empty() && !o.probe.from.empty()) throw UsageError("--record and --from do not mix: a bundle already is a recording");
    ProbeSource src = open_source(o.probe);
    // A recording must hold every area, whatever this run displays.
    if (o.record.empty()) src.options.areas = probe_areas_for(o.selectors);
    std::optional<host::RecordingHost> recorder;
    if (!o.record.empty()) recorder.emplace(*src.host);
    src.options.record_kernel_log = recorder.has_value();
    src.options.config = recorder.has_value();
    const host::Host& source = recorder ? static_cast<const host::Host&>(*recorder) : *src.host;
    if (o.full && (!o.probe.options.root.empty() || !o.probe.from.empty())) throw UsageError("--full boots a VM on this host; it cannot judge a recorded one");
    Facts facts = probe_source(src, source, o.probe);
    if (o.full) {
        facts.smoke = smoke::smoke_for_check(o.probe.options);
        if (smoke::interrupted_by()) return 128 + smoke::interrupted_by();
    }
    if (recorder) {
        const std::string who = facts.access.user ? facts.access.user->name : "?";
        recorder->write(o.record, fmt::format("recorded by kvmready {} from {} (host {}, kernel {}, as {})", KVMREADY_VERSION,
                                              src.host->source(), facts.kernel.hostname, facts.kernel.release, who));
        std::cerr << fmt::format("kvmready: recorded the facts read into {} (replay: kvmready check --root {})\n", o.record, o.record);
    }
    Report report = run_checks(facts, o.selectors, fix::plannable_unaided);
    if (o.json) {
        std::cout << util::dump_json(output::render_json(report, facts), 2) << "\n";
    } else {
        auto style = output::style_for(o.color, isatty(STDOUT_FILENO) == 1);
        style.quiet = o.quiet;
        style.verbose = o.verbose;
        std::cout << util::escape_bytes(output::render_text(report, facts, style));
    }
    std::cout.flush();
    return exit_code_for(report, o.strict);
}

}  // namespace

Action setup_check(CLI::App& app) {
    auto o = std::make_shared<CheckOptions>();
    auto* sub = app.add_subcommand("check", "Probe this host (or a recorded one) and judge whether it can run KVM guests.");
    sub->add_option("checks", o->selectors, "Check ids or categories to run (default: all), e.g. `kvm cpu.virt-extensions`");
    sub->add_flag("--json", o->json, "Print one JSON object (schema in kvmready(1))");
    sub->add_flag("-q,--quiet", o->quiet, "Print only the verdict line");
    sub->add_flag("-v,--verbose", o->verbose, "Show each check's title, level and evidence");
    sub->add_option("--color", o->color, "Colour output: auto, always or never (NO_COLOR is honoured by auto)")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    sub->add_flag("--strict", o->strict, "Exit 1 on warnings too");
    add_probe_options(sub, o->probe, true);
    sub->add_option("--record", o->record, "Also save everything the probe read into this new directory, as a host tree for --root");
    sub->add_flag("--list", o->list, "List the checks with their level and exit");
    sub->add_flag("--full", o->full, "Also boot a throwaway guest through libvirt (check smoke.boot; takes seconds)");
    sub->get_option("--json")->excludes("--quiet");
    return [o] { return run_check(*o); };
}

}  // namespace kvmready::cli
