// `kvmready fleet`: many hosts' reports (what a playbook collected) as one
// page and/or one JSON document.
#include <chrono>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "core/errors.hpp"
#include "fleet/baseline.hpp"
#include "fleet/inventory.hpp"
#include "fleet/load.hpp"
#include "fleet/model.hpp"
#include "fleet/render.hpp"
#include "host/nofollow_fs.hpp"
#include "util/utf8.hpp"

namespace kvmready::cli {

namespace {

struct FleetOptions {
    std::vector<std::string> reports;
    std::string inventory, html, json, stale_after = "24h";
    bool json_given = false;  // --json seen, with or without FILE
    bool baseline = false;
};

// "24h", "30m", "7d", "1w", "1d12h", "90s" or plain seconds.
int64_t parse_duration(const std::string& s) {
    int64_t total = 0;
    size_t i = 0;
    const std::string bad = fmt::format("--stale-after {}: expected a duration such as 24h, 30m, 7d or 1d12h", s);
    if (s.empty()) throw UsageError(bad);
    while (i < s.size()) {
        size_t j = i;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        if (j == i || j - i > 9) throw UsageError(bad);
        const int64_t n = std::stoll(s.substr(i, j - i));
        int64_t unit = 1;
        if (j < s.size()) {
            switch (s[j]) {
            case 's': unit = 1; break;
            case 'm': unit = 60; break;
            case 'h': unit = 3600; break;
            case 'd': unit = 86400; break;
            case 'w': unit = 7 * 86400; break;
            default: throw UsageError(bad);
            }
            ++j;
        } else if (i != 0) {
            throw UsageError(bad);  // "1d12": the 12 of what?
        }
        total += n * unit;
        i = j;
    }
    if (total <= 0) throw UsageError(bad);
    return total;
}

// A report's strings on a terminal: control characters (an escape
// sequence in a hostile check title) become '?'.
std::string printable(std::string s) {
    for (auto& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return s;
}

std::string text_summary(const fleet::Fleet& f) {
    std::string verdicts;
    for (const auto& [v, n] : f.verdicts) verdicts += fmt::format("{}{} {}", verdicts.empty() ? "" : ", ", n, printable(v));
    std::string o = fmt::format("kvmready fleet: {} host{}{}{}; {} stale", f.hosts.size(), f.hosts.size() == 1 ? "" : "s",
                                verdicts.empty() ? "" : ": ", verdicts, f.stale_count());
    if (f.inventory_given) o += fmt::format(", {} missing from the inventory", f.missing.size());
    o += fmt::format(", {} unreadable\n", f.unreadable.size());
    if (!f.ranked.empty()) o += "Failing checks, by hosts blocked:\n";
    for (const auto& r : f.ranked) o += fmt::format("  {:>5}  {:<24} {}\n", r.hosts.size(), printable(r.id), printable(r.title));
    for (const auto& u : f.unreadable) o += fmt::format("unreadable: {}: {}\n", printable(u.path), printable(u.error));
    for (const auto& m : f.missing) o += fmt::format("no report: {}\n", printable(m));
    return util::escape_bytes(o);
}

// `--json FILE` right before the reports takes the first report as FILE:
// never overwrite a host's report or bundle that way.
void refuse_clobbering_a_report(const std::string& path, const std::string& option) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return;
    if (fleet::load_report(path).report)
        throw UsageError(fmt::format("{} {} would overwrite a host report; write {}=OUT after the reports, or `--json -` for stdout", option, path, option));
}

// `fleet --baseline`: the CPU every host can give its guests (src/fleet/
// baseline.hpp), over the same inputs (directories, bundles) as the page.
int run_baseline(const FleetOptions& o) {
    if (!o.html.empty() || !o.inventory.empty()) throw UsageError("fleet --baseline: -o and --inventory belong to the fleet page, not the baseline");
    if (o.json_given && !o.json.empty() && o.json != "-") throw UsageError("fleet --baseline --json prints to stdout; redirect it");
    const fleet::BaselineRun run = fleet::baseline_of_reports(fleet::load_reports(o.reports));
    if (run.hosts.empty()) {
        for (const auto& p : run.problems) std::cerr << printable(p) << "\n";
        throw NoInputError("fleet --baseline: no report with a cpu section among the inputs");
    }
    std::cout << util::escape_bytes(o.json_given ? util::dump_json(fleet::baseline_json(run), 2) + "\n" : fleet::baseline_text(run));
    return run.result.usable() ? kExitReady : kExitNotReady;
}

int run_fleet(const FleetOptions& o) {
    if (o.baseline) return run_baseline(o);
    const int64_t stale_after = parse_duration(o.stale_after);
    const bool json_to_stdout = o.json_given && (o.json.empty() || o.json == "-");
    std::vector<std::pair<std::string, std::string>> outs;  // path, option
    if (!o.html.empty()) outs.emplace_back(o.html, "-o");
    if (o.json_given && !json_to_stdout) outs.emplace_back(o.json, "--json");
    if (outs.size() == 2 && std::filesystem::absolute(outs[0].first).lexically_normal() == std::filesystem::absolute(outs[1].first).lexically_normal())
        throw UsageError("-o and --json name the same file");
    for (const auto& [path, opt] : outs) {
        refuse_clobbering_a_report(path, opt);
        if (const std::string why = host::output_file_problem(path); !why.empty()) throw ExitError(kExitCantCreat, fmt::format("{} {}: {}", opt, path, why));
    }
    std::optional<std::vector<std::string>> inventory;
    if (!o.inventory.empty()) inventory = fleet::read_inventory(o.inventory);
    const auto reports = fleet::load_reports(o.reports);
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const fleet::Fleet f = fleet::build_fleet(reports, inventory, now, stale_after);
    if (f.hosts.empty()) {
        std::cerr << text_summary(f);
        throw NoInputError(fmt::format("no readable report among {} input{}", reports.size(), reports.size() == 1 ? "" : "s"));
    }
    std::vector<host::OutputFile> files;
    for (const auto& [path, opt] : outs)
        files.push_back({path, opt == "-o" ? fleet::render_html(f) : util::dump_json(fleet::render_fleet_json(f), 2) + "\n"});
    try {
        host::publish_files(files);
    } catch (const std::runtime_error& e) {
        throw ExitError(kExitCantCreat, fmt::format("cannot write the fleet report: {}", e.what()));
    }
    if (json_to_stdout) {
        std::cout << util::dump_json(fleet::render_fleet_json(f), 2) << "\n";
    } else {
        std::cout << text_summary(f);
        for (const auto& [path, opt] : outs) std::cout << fmt::format("Wrote {}.\n", path);
    }
    return f.all_ready() ? kExitReady : kExitNotReady;
}

}  // namespace

Action setup_fleet(CLI::App& app) {
    auto o = std::make_shared<FleetOptions>();
    auto* sub = app.add_subcommand("fleet", "Combine many hosts' JSON reports or bundles into one HTML page and/or JSON: verdicts, "
                                            "a hosts x checks matrix, failing checks ranked with their fixes, stale and missing hosts.");
    sub->add_option("reports", o->reports, "JSON reports (kvmready check --format json), bundles (kvmready report), or directories holding them")
        ->required()
        ->type_name("REPORT...");
    sub->add_option("--inventory", o->inventory, "Ansible inventory (INI, YAML, ansible-inventory --list JSON) or one host per line: "
                                                 "list its hosts that sent no report")
        ->type_name("FILE");
    sub->add_option("-o,--output", o->html, "Write the self-contained HTML page to FILE, atomically")->type_name("FILE");
    sub->add_option("--json", o->json, "Write the fleet report as JSON to FILE (- or no FILE: stdout, instead of the summary)")
        ->expected(0, 1)
        ->type_name("[FILE]");
    sub->add_option("--stale-after", o->stale_after, "A report older than this is stale (default 24h; s, m, h, d, w)")->type_name("DURATION");
    sub->add_flag("--baseline", o->baseline,
                  "Print instead the CPU every host can give its guests: common features, x86-64 level, the named model "
                  "and its libvirt/nova/Proxmox/KubeVirt forms (text, or JSON with --json); exit 1 when no common model exists");
    return [o, sub] {
        if (sub->get_option("--json")->count() > 0) o->json_given = true;
        return run_fleet(*o);
    };
}

}  // namespace kvmready::cli
