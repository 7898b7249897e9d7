#include "cli/probe_cli.hpp"

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "core/errors.hpp"

namespace kvmready::cli {

const RequestHelp kJudgeHelp = {"Judge access for this user instead of the invoking one", "libvirt URI to judge (default qemu:///system)",
                                 "libvirt network guests will use (default: default)",
                                 "libvirt storage pool for guest disks (default: default)",
                                 "Linux bridge guests will be attached to; it must exist"};

void validate_uplink_and_pool_path(const Options& opt) {
    if (!opt.uplink.empty() && opt.bridge.empty()) throw UsageError("--uplink needs --bridge NAME");
    if (!opt.pool_path.empty() && !opt.pool_path.starts_with("/")) throw UsageError("--pool-path must be an absolute path");
}

void add_request_options(CLI::App* sub, Request& r, const RequestHelp& help) {
    if (help.user) sub->add_option("-u,--user", r.user, help.user);
    sub->add_option("-c,--connect", r.connect_uri, help.connect);
    sub->add_option("--network", r.network, help.network)->each([&r](const std::string&) { r.network_given = true; });
    sub->add_option("--pool", r.pool, help.pool)->each([&r](const std::string&) { r.pool_given = true; });
    sub->add_option("--bridge", r.bridge, help.bridge);
}

void add_probe_options(CLI::App* sub, ProbeCli& o, bool with_sources) {
    add_request_options(sub, o.options, kJudgeHelp);
    if (!with_sources) return;
    auto* root = sub->add_option("--root", o.options.root, "Read sysfs/procfs/dev facts from this directory tree instead of /");
    auto* from = sub->add_option("--from", o.from, "Judge a support bundle (kvmready report) instead of this host: FILE.tar.gz or its unpacked directory");
    root->excludes(from);
    sub->add_option("--bundle-limit", o.bundle_limits,
                    "Raise a limit on unpacking a --from bundle: members, bytes, member_bytes, depth, name_bytes or seconds=N (see kvmready(1), LIMITS)")
        ->type_name("NAME=N");
    sub->add_option("--cpuid-dump", o.cpuid_dump, "Use this CPUID dump (cpuid -r, AIDA64/InstLatX64, libcpuid, ...) as the CPU facts");
}

ProbeSource open_source(const ProbeCli& o) {
    ProbeSource s;
    s.options.request = o.options;  // the judged part of the options
    if (!o.cpuid_dump.empty()) {
        s.options.cpuid_dump = load_cpuid_dump(o.cpuid_dump);
        s.options.cpuid_dump_name = o.cpuid_dump;
    }
    if (!o.from.empty()) {
        report::BundleLimits limits;
        for (const auto& l : o.bundle_limits) report::set_bundle_limit(limits, l);
        s.bundle = report::open_bundle(o.from, limits);
        s.host = host::make_rooted_host(s.bundle->host_tree());
        s.label = "bundle:" + o.from;
        const auto& m = s.bundle->manifest();
        s.note = fmt::format("recorded by kvmready {} on {} ({}{})", m.value("version", "?"), m.value("created", "?"),
                             m.value("hostname", "?"), m.value("redacted", false) ? ", redacted" : "");
    } else if (!o.options.root.empty()) {
        s.host = host::make_rooted_host(o.options.root);
    } else {
        s.host = host::make_live_host();
    }
    return s;
}

Facts probe_source(const ProbeSource& s, const host::Host& h, const ProbeCli& o) {
    Facts facts = probe(h, s.options);
    // h may wrap s.host (report records through it): ask the source itself.
    if (auto refused = s.host->refused_inputs(); !refused.empty()) {
        std::string more = refused.size() > 1 ? fmt::format(" (and {} more)", refused.size() - 1) : "";
        throw DataError(fmt::format("malformed recorded host tree: {}{}", refused.front(), more));
    }
    if (!s.label.empty()) facts.source = s.label;
    facts.source_note = s.note;
    if (!o.options.user.empty() && !facts.access.user)
        throw UsageError(fmt::format("--user {}: no such user{}", o.options.user, h.is_live() ? "" : " in the recorded /etc/passwd"));
    return facts;
}

}  // namespace kvmready::cli
