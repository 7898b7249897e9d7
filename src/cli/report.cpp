#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "cli/probe_cli.hpp"
#include "core/errors.hpp"
#include "core/runner.hpp"
#include "fixes/fix.hpp"
#include "host/nofollow_fs.hpp"
#include "host/recording_host.hpp"
#include "output/output.hpp"
#include "report/bundle.hpp"
#include "util/utf8.hpp"

namespace fs = std::filesystem;

namespace kvmready::cli {

namespace {

struct ReportOptions {
    std::string out;
    bool no_redact = false;
    bool force = false;
    ProbeCli probe;
    std::string command_line;
};

std::string utc_now() {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm {};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// People's accounts (uid >= 1000, not nobody) are personal data; system
// accounts (root, libvirt-qemu) are needed verbatim to judge access.
std::vector<std::string> human_users(const host::Host& h) {
    std::vector<std::string> out;
    std::istringstream in(h.read_file("/etc/passwd").value_or(""));
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> f;
        std::stringstream ss(line);
        for (std::string x; std::getline(ss, x, ':');) f.push_back(x);
        if (f.size() < 3) continue;
        try {
            const unsigned long uid = std::stoul(f[2]);
            if (uid >= 1000 && uid != 65534) out.push_back(f[0]);
        } catch (const std::exception&) {
        }
    }
    return out;
}

class TempDir {
public:
    TempDir() {
        auto made = host::make_temp_dir("/tmp", "kvmready-report-");
        if (!made) throw ExitError(kExitCantCreat, "cannot create a temporary directory");
        path_ = *made;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() { host::remove_tree(path_); }
    [[nodiscard]] const std::string& path() const { return path_; }
private:
    std::string path_;
};

int run_report(const ReportOptions& o) {
    validate_uplink_and_pool_path(o.probe.options);
    ProbeSource src = open_source(o.probe);
    src.options.record_kernel_log = true;
    src.options.config = true;  // a bundle carries what `fix --from` plans from
    src.options.uplink = o.probe.options.uplink;
    src.options.pool_path = o.probe.options.pool_path;
    host::RecordingHost recorder(*src.host);
    Facts facts = probe_source(src, recorder, o.probe);
    Report report = run_checks(facts, {}, fix::plannable_unaided);
    const std::string out = o.out.empty() ? fmt::format("kvmready-report-{}.tar.gz", utc_now()) : o.out;
    if (!o.force && fs::exists(fs::symlink_status(out)))
        throw ExitError(kExitUsage, fmt::format("{} already exists; pass --force to replace it", out));

    TempDir tmp;
    const std::string tree = tmp.path() + "/host";
    const std::string who = facts.access.user ? facts.access.user->name : "?";
    recorder.write(tree, fmt::format("recorded by kvmready {} for a support bundle (kernel {}, as {})", KVMREADY_VERSION,
                                     facts.kernel.release, who));
    report::BundleContents c;
    c.tree_dir = tree;
    c.redact = !o.no_redact;
    c.hostnames = {facts.kernel.hostname};
    c.users = human_users(recorder);
    if (facts.access.user && facts.access.user->uid != 0) c.users.push_back(facts.access.user->name);
    output::TextStyle plain;
    plain.unicode = false;
    c.extra_files = {{"facts.json", util::dump_json(facts_to_json(facts), 2) + "\n"},
                     {"check.json", util::dump_json(output::render_json(report, facts), 2) + "\n"},
                     {"check.txt", output::render_text(report, facts, plain)}};
    c.manifest = {{"format", report::kBundleFormat},
                  {"tool", "kvmready"},
                  {"version", KVMREADY_VERSION},
                  {"created", utc_now()},
                  {"hostname", facts.kernel.hostname},
                  {"kernel", facts.kernel.release},
                  {"command_line", o.command_line},
                  {"verdict", to_string(report.verdict)},
                  {"contents",
                   {{"host/", "the recorded host tree: replay with `kvmready check --from THIS-BUNDLE`"},
                    {"facts.json", "the facts the checks used"},
                    {"check.json", "the results as `kvmready check --json` printed them"},
                    {"check.txt", "the results as text"}}}};
    const uint64_t bytes = report::write_bundle(std::move(c), out, o.force);
    std::cout << fmt::format("Wrote {} ({:.1f} KiB){}.\n", out, static_cast<double>(bytes) / 1024.0,
                             o.no_redact ? ", NOT redacted" : ", redacted (see manifest.json)");
    std::cout << fmt::format("Verdict recorded: {} — {}\n", to_string(report.verdict), report.verdict_text);
    std::cout << fmt::format("Replay anywhere: kvmready check --from {}\n", out);
    return kExitReady;
}

}  // namespace

Action setup_report(CLI::App& app) {
    auto o = std::make_shared<ReportOptions>();
    auto* sub = app.add_subcommand("report", "Write a support bundle (.tar.gz) that `kvmready check --from` re-analyses offline.");
    sub->add_option("-o,--output", o->out, "Bundle file (default kvmready-report-TIME.tar.gz in the current directory)");
    sub->add_flag("--no-redact", o->no_redact, "Keep hostnames, IP/MAC addresses, UUIDs and user names as they are");
    sub->add_flag("--force", o->force, "Replace an existing output file");
    add_probe_options(sub, o->probe, false);
    // A recorded tree (a customer's --record) bundled and redacted like a live host.
    // What `fix --from BUNDLE --bridge B --uplink IF` / `--pool-path DIR` then plans from.
    sub->add_option("--uplink", o->probe.options.uplink, "Also record what moving this interface to --bridge would change (for fix --from)");
    sub->add_option("--pool-path", o->probe.options.pool_path, "Also record this pool directory (for fix --from)");
    sub->add_option("--root", o->probe.options.root, "Bundle this recorded host tree (kvmready check --record) instead of this host");
    return [o] {
        o->command_line = command_line();
        return run_report(*o);
    };
}

}  // namespace kvmready::cli
