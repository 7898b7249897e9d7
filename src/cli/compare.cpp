// `kvmready compare A B`: can guests live-migrate between two hosts, each
// way, which CPU features differ and why, and the CPU both can give guests in
// the dialects of libvirt, nova, Proxmox and KubeVirt. `--baseline R...`
// does the last part for any number of hosts (what `fleet --baseline` runs).
#include <cerrno>
#include <iostream>

#include "cli/cli.hpp"
#include "core/errors.hpp"
#include "fleet/baseline.hpp"
#include "fleet/load.hpp"
#include "fleet/migrate.hpp"
#include "host/bounded_read.hpp"
#include "util/utf8.hpp"

namespace kvmready::cli {

namespace {

struct CompareOptions {
    std::vector<std::string> reports;
    bool baseline = false;
    std::string format = "text";
};

// A report that did not load: missing or unreadable is 66, anything else
// (not JSON, not a kvmready report, no cpu section) is malformed, 65.
[[noreturn]] void input_failed(const std::string& path, const std::string& why) {
    const auto probe = host::read_path_bounded(path, 1);
    const bool missing = !probe.data && probe.kind.empty() &&
                         (probe.error == ENOENT || probe.error == EACCES || probe.error == EPERM || probe.error == ENOTDIR || probe.error == ELOOP);
    if (missing) throw NoInputError(why);
    throw DataError(why);
}

std::vector<fleet::HostCpu> load_hosts(const std::vector<std::string>& paths) {
    std::vector<fleet::HostCpu> hosts;
    for (const auto& r : fleet::load_reports(paths)) {
        if (!r.report) input_failed(r.path, r.path + ": " + r.error);
        std::string why;
        auto h = fleet::host_cpu_from_report(*r.report, r.path, why);
        if (!h) throw DataError(r.path + ": " + why);
        hosts.push_back(std::move(*h));
    }
    return hosts;
}

int run_compare(const CompareOptions& o) {
    const bool json = o.format == "json";
    if (o.baseline) {
        if (o.reports.empty()) throw UsageError("compare --baseline: name at least one report");
        fleet::BaselineRun run;
        run.hosts = load_hosts(o.reports);
        run.result = fleet::baseline(run.hosts);
        std::cout << util::escape_bytes(json ? util::dump_json(fleet::baseline_json(run), 2) + "\n" : fleet::baseline_text(run));
        return run.result.usable() ? kExitReady : kExitNotReady;
    }
    if (o.reports.size() != 2) throw UsageError("compare: name exactly two reports (A B), or use --baseline for more");
    const auto hosts = load_hosts(o.reports);
    const auto r = fleet::compare_pair(hosts[0], hosts[1]);
    std::cout << util::escape_bytes(json ? util::dump_json(fleet::pair_json(r), 2) + "\n" : fleet::pair_text(r));
    return r.a_to_b && r.b_to_a ? kExitReady : kExitNotReady;
}

}  // namespace

Action setup_compare(CLI::App& app) {
    auto o = std::make_shared<CompareOptions>();
    auto* sub = app.add_subcommand("compare",
                                   "Live-migration compatibility of two hosts from their reports: features that differ and why, "
                                   "and the CPU both can run (libvirt, nova, Proxmox, KubeVirt).");
    sub->add_option("reports", o->reports, "Two JSON reports (`kvmready check --format json`) or bundles; with --baseline, any number")
        ->required();
    sub->add_flag("--baseline", o->baseline, "The CPU every named host can give its guests (what `fleet --baseline` prints)");
    sub->add_option("--format", o->format, "Output: text or json")->check(CLI::IsMember({"text", "json"}));
    sub->footer("Exit status: 0 compatible both ways (--baseline: a common named model exists), 1 not, "
                "64 usage, 65 a report is malformed or has no cpu section, 66 a report is missing or unreadable.");
    return [o] { return run_compare(*o); };
}

}  // namespace kvmready::cli
