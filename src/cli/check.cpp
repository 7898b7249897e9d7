#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "cli/output_args.hpp"
#include "cli/probe_cli.hpp"
#include "core/errors.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"
#include "fixes/fix.hpp"
#include "host/nofollow_fs.hpp"
#include "host/recording_host.hpp"
#include "output/formats.hpp"
#include "output/output.hpp"
#include "smoke/smoke.hpp"
#include "util/text.hpp"
#include "util/utf8.hpp"

namespace kvmready::cli {

namespace {

struct CheckOptions {
    bool json = false, quiet = false, verbose = false, strict = false, list = false, full = false;
    std::string color = "auto";
    std::string format;                // --format; "" = text, or json with --json
    std::vector<std::string> outputs;  // --output FMT:PATH, as given
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

output::Format stdout_format(const CheckOptions& o) {
    if (!o.format.empty()) return *output::format_named(o.format);  // CLI11 checked the name
    return o.json ? output::Format::Json : output::Format::Text;
}

int run_check(const CheckOptions& o) {
    const auto started = std::chrono::steady_clock::now();
    const auto started_wall = std::chrono::system_clock::now();
    const output::Format to_stdout = stdout_format(o);
    if (o.list) return list_checks(to_stdout == output::Format::Json);
    const std::vector<OutputTo> outputs = parse_outputs(o.outputs);
    // Reject bad selectors before any probing.
    for (const auto& s : o.selectors)
        if (!find_check(s) && std::none_of(registry().begin(), registry().end(), [&](const CheckSpec& c) { return c.category() == s; }))
            throw UsageError(fmt::format("unknown check or category '{}' (see `kvmready check --list`)", s));
    check_output_paths(outputs);
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
    output::RunInfo run;
    run.finished_unix = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    run.duration_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    run.started_unix = std::chrono::duration_cast<std::chrono::seconds>(started_wall.time_since_epoch()).count();
    if (src.bundle && src.bundle->manifest().contains("created") && src.bundle->manifest()["created"].is_string())
        run.recorded_at = src.bundle->manifest()["created"].get<std::string>();
    run.strict = o.strict;
    run.text.quiet = o.quiet;
    run.text.verbose = o.verbose;
    // Files first, all or none: when one cannot be written, stdout stays
    // empty too and the run ends in 73.
    if (!outputs.empty()) {
        output::RunInfo to_file = run;
        const auto file_style = output::style_for(o.color == "never" ? "never" : "auto", false);  // no colour in files
        to_file.text.color = file_style.color;
        to_file.text.unicode = file_style.unicode;
        std::vector<host::OutputFile> files;
        for (const auto& out : outputs) files.push_back({out.path, output::render(out.format, report, facts, to_file)});
        try {
            host::publish_files(files);
        } catch (const std::runtime_error& e) {
            throw ExitError(kExitCantCreat, fmt::format("cannot write --output: {}", e.what()));
        }
    }
    const auto style = output::style_for(o.color, isatty(STDOUT_FILENO) == 1);
    run.text.color = style.color;
    run.text.unicode = style.unicode;
    std::cout << output::render(to_stdout, report, facts, run);
    std::cout.flush();
    return output::exit_code(to_stdout, report, o.strict);
}

// A monitoring plugin must answer in its own terms even when the run fails:
// UNKNOWN (3) with the error as its first line, the error on stderr too.
int run_check_for(const CheckOptions& o) {
    if (stdout_format(o) != output::Format::Nagios) return run_check(o);
    std::string error;
    try {
        return run_check(o);
    } catch (const ExitError& e) {
        error = e.what();
    } catch (const std::exception& e) {
        error = std::string("internal error: ") + e.what();
    }
    std::cerr << "kvmready: " << error << "\n";
    std::cout << output::render_nagios_error("kvmready: " + error);
    return static_cast<int>(output::NagiosState::Unknown);
}

}  // namespace

Action setup_check(CLI::App& app) {
    auto o = std::make_shared<CheckOptions>();
    auto* sub = app.add_subcommand("check", "Probe this host (or a recorded one) and judge whether it can run KVM guests.");
    sub->add_option("checks", o->selectors, "Check ids or categories to run (default: all), e.g. `kvm cpu.virt-extensions`");
    sub->add_option("--format", o->format, "Print the report on stdout in this format: text (default), json, prometheus, nagios, junit or nfd")
        ->check(CLI::IsMember(output::format_names()))
        ->type_name("FMT");
    sub->add_option("--output", o->outputs,
                    "Also write the report in format FMT to the file PATH, atomically (repeatable: one run, several formats)")
        ->type_name("FMT:PATH");
    sub->add_flag("--json", o->json, "Print one JSON object (schema in kvmready(1)); short for --format json");
    sub->add_flag("-q,--quiet", o->quiet, "Print only the verdict line");
    sub->add_flag("-v,--verbose", o->verbose, "Show each check's title, level and evidence");
    sub->add_option("--color", o->color, "Colour output: auto, always or never (NO_COLOR is honoured by auto)")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    sub->add_flag("--strict", o->strict, "Exit 1 on warnings too");
    add_probe_options(sub, o->probe, true);
    sub->add_option("--device", o->probe.options.device,
                    "Ask check devices.passthrough about this PCI device only: BDF (0000:01:00.0) or VENDOR:DEVICE (10de:1db6)")
        ->type_name("DEV");
    sub->add_option("--record", o->record, "Also save everything the probe read into this new directory, as a host tree for --root");
    sub->add_flag("--list", o->list, "List the checks with their level and exit");
    sub->add_flag("--full", o->full, "Also boot a throwaway guest through libvirt (check smoke.boot; takes seconds)");
    sub->get_option("--json")->excludes("--quiet");
    sub->get_option("--json")->excludes("--format");
    return [o] { return run_check_for(*o); };
}

}  // namespace kvmready::cli
