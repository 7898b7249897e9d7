// Options shared by the subcommands that probe a host (check, report), and
// where the facts come from: the live host, a recorded tree, or a bundle.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "core/options.hpp"
#include "core/probe.hpp"
#include "host/host.hpp"
#include "report/bundle.hpp"

namespace kvmready::cli {

struct ProbeCli {
    Options options;                         // user, URI, network, pool, bridge, root: parsed once, read by all
    std::string from, cpuid_dump;
    std::vector<std::string> bundle_limits;  // --bundle-limit NAME=N
};

// Help texts of the shared options: judging a host reads differently from
// fixing it. A null entry leaves that option out (smoke has no --user).
struct RequestHelp {
    const char* user;
    const char* connect;
    const char* network;
    const char* pool;
    const char* bridge;
};
extern const RequestHelp kJudgeHelp;  // check, report

// --user, --connect, --network, --pool, --bridge into one Request: the single
// place that parses them, for check, fix, smoke and report.
void add_request_options(CLI::App* sub, Request& r, const RequestHelp& help);
// --uplink and --pool-path as `fix` and `report` take them (UsageError otherwise).
void validate_uplink_and_pool_path(const Options& opt);

// The shared options with the judging help; with sources also --root,
// --from and --cpuid-dump (judging recorded data).
void add_probe_options(CLI::App* sub, ProbeCli& o, bool with_sources);

struct ProbeSource {
    std::unique_ptr<report::OpenedBundle> bundle;  // owns the extracted files, if any
    std::unique_ptr<host::Host> host;
    ProbeOptions options;
    std::string label;                             // replaces Facts::source for bundles
    std::string note;                              // who/when recorded, for the output
};

ProbeSource open_source(const ProbeCli& o);

// Facts from the source, with its label; --user must name a real user.
Facts probe_source(const ProbeSource& s, const host::Host& h, const ProbeCli& o);

}  // namespace kvmready::cli
