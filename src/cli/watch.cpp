// `kvmready watch`: stays running and keeps its verdict current. A host
// changes after boot (kvm_amd loads late, a bridge appears, a device is
// bound to vfio-pci), and a node labeller that asked once keeps yesterday's
// answer (KubeVirt #3354). watch listens to kernel uevents, re-judges what
// an event can change, rewrites its --output files atomically and logs each
// verdict change with the event behind it.
#include <csignal>
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "cli/output_args.hpp"
#include "cli/probe_cli.hpp"
#include "core/errors.hpp"
#include "fixes/fix.hpp"
#include "host/nofollow_fs.hpp"
#include "host/signal_fd.hpp"
#include "host/udev_monitor.hpp"
#include "watch/loop.hpp"

namespace kvmready::cli {

namespace {

struct WatchOptions {
    double interval = 300;
    std::vector<std::string> outputs;
    std::string format = "text";
    std::string source = "auto";
    int settle_ms = 100;
    ProbeCli probe;
};

int run_watch(const WatchOptions& o) {
    const std::vector<OutputTo> outputs = parse_outputs(o.outputs);
    check_output_paths(outputs);
    // Blocked before the probe starts its threads, so that every thread
    // leaves SIGTERM to the loop's signalfd.
    host::SignalFd signals({SIGTERM, SIGINT, SIGHUP});
    std::string error;
    auto events = host::open_udev_monitor(host::watched_subsystems(), o.source, &error);
    if (!events) throw ExitError(kExitUnavailable, fmt::format("cannot watch device events: {}", error));
    ProbeSource src = open_source(o.probe);
    std::vector<watch::OutputSpec> specs;
    for (const auto& out : outputs) specs.push_back({out.format, out.path});
    watch::JudgeIo io;
    io.probe = [&](const ProbeOptions& opt) {
        Facts f = probe(*src.host, opt);
        if (!o.probe.options.user.empty() && !f.access.user) throw UsageError(fmt::format("--user {}: no such user", o.probe.options.user));
        return f;
    };
    io.publish = [](const std::vector<host::OutputFile>& files) { host::publish_files(files); };
    io.unix_now = [] {
        return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
    io.changes = &std::cout;
    io.diagnostics = &std::cerr;
    io.json_lines = o.format == "json";
    watch::Judge judge(src.options, specs, fix::plannable_unaided, io);
    watch::LoopConfig cfg;
    cfg.interval = std::chrono::milliseconds(static_cast<int64_t>(o.interval * 1000));
    cfg.settle = std::chrono::milliseconds(o.settle_ms);
    cfg.max_delay = std::max(cfg.settle, std::chrono::milliseconds(500));
    std::cerr << fmt::format("kvmready watch: listening to {}; full run every {} s\n", events->description(), o.interval) << std::flush;
    const watch::LoopStats stats = watch::run_loop(*events, signals, judge, cfg);
    const host::ProcessUsage use = host::process_usage();
    std::cerr << fmt::format("kvmready watch: stopped by {} after {} uevents ({} relevant, {} overflows), {} runs, {} changes logged, "
                             "{} write failures; RSS {} KiB, CPU {:.2f} s\n",
                             sigabbrev_np(stats.signal) ? fmt::format("SIG{}", sigabbrev_np(stats.signal)) : std::to_string(stats.signal),
                             stats.events, stats.relevant, stats.lost_bursts, judge.runs(), judge.changes_logged(), judge.write_failures(),
                             use.rss_kib, use.cpu_seconds);
    return kExitReady;
}

}  // namespace

Action setup_watch(CLI::App& app) {
    auto o = std::make_shared<WatchOptions>();
    auto* sub = app.add_subcommand("watch",
                                   "Stay running: re-judge this host when devices change (kernel uevents: /dev/kvm, modules, interfaces, "
                                   "PCI/VFIO) and every --interval, rewrite the --output files, log each verdict change with its cause.");
    sub->add_option("--interval", o->interval, "Seconds between full runs besides the event-driven ones (default 300)")
        ->check(CLI::Range(0.1, 86400.0))
        ->type_name("S");
    sub->add_option("--output", o->outputs, "Keep the report in format FMT in the file PATH, rewritten atomically on every run (repeatable)")
        ->type_name("FMT:PATH");
    sub->add_option("--format", o->format, "How verdict changes are logged on stdout: text (one line each) or json (JSON lines)")
        ->check(CLI::IsMember({"text", "json"}))
        ->type_name("FMT");
    sub->add_option("--uevent-source", o->source,
                    "kernel (netlink, no udev daemon needed), udev (after the daemon's rules) or auto (udev when it runs)")
        ->check(CLI::IsMember({"auto", "kernel", "udev"}));
    sub->add_option("--settle", o->settle_ms, "Milliseconds without events that end a burst before re-judging (default 100)")
        ->check(CLI::Range(0, 10000))
        ->type_name("MS");
    add_probe_options(sub, o->probe, false);
    return [o] { return run_watch(*o); };
}

}  // namespace kvmready::cli
