#include "watch/judge.hpp"

#include <fmt/format.h>

#include "util/utf8.hpp"

namespace kvmready::watch {

Facts Judge::merged_probe(const Impact& impact) {
    ProbeOptions opt = base_;
    const bool full = !facts_;
    opt.areas = full ? kAreaAll : impact.areas;
    opt.kvm_api = full || impact.kvm;
    Facts f = io_.probe(opt);
    if (full) return f;
    // What this run did not read is what the last run read: nothing the
    // events can have changed.
    if (!(opt.areas & kAreaVirt)) f.virt = facts_->virt;
    if (!(opt.areas & kAreaNet)) f.net = facts_->net;
    if (!(opt.areas & kAreaSystem)) f.system = facts_->system;
    if (!(opt.areas & kAreaDevices)) f.devices = facts_->devices;
    if (!opt.kvm_api) {
        f.kvm = facts_->kvm;
        f.kernel_log = facts_->kernel_log;
    }
    return f;
}

void Judge::log_change(const std::string& id, const std::string& from, const std::string& to, const std::string& cause) {
    ++changes_logged_;
    if (!io_.changes) return;
    const std::string when = output::rfc3339_utc(io_.unix_now());
    if (io_.json_lines) {
        nlohmann::ordered_json j = {{"time", when}, {"id", id}, {"from", from}, {"to", to}, {"cause", cause}};
        *io_.changes << util::dump_json(j, -1) << "\n";
    } else {
        *io_.changes << fmt::format("{} {}: {} -> {} after {}\n", when, id, from, to, cause);
    }
    io_.changes->flush();
}

void Judge::publish(const Report& r, const Facts& f, std::chrono::steady_clock::duration took) {
    if (outputs_.empty()) return;
    output::RunInfo run;
    run.finished_unix = io_.unix_now();
    run.duration_seconds = std::chrono::duration<double>(took).count();
    const auto style = output::style_for("auto", false);  // no colour in files
    run.text.color = style.color;
    run.text.unicode = style.unicode;
    std::vector<host::OutputFile> files;
    files.reserve(outputs_.size());
    for (const auto& o : outputs_) files.push_back({o.path, output::render(o.format, r, f, run)});
    try {
        io_.publish(files);
    } catch (const std::runtime_error& e) {
        // A full disk must not end the watch: the next run writes again.
        ++write_failures_;
        if (io_.diagnostics) *io_.diagnostics << fmt::format("kvmready watch: cannot write --output: {}\n", e.what()) << std::flush;
    }
}

void Judge::run(const Impact& impact, const CauseOf& cause) {
    const auto started = std::chrono::steady_clock::now();
    const bool first = !facts_;
    Facts f = merged_probe(impact);
    Report r = run_checks(f, {}, plannable_);
    if (!first) {
        // Registry order both times: a finding's place is its identity.
        std::map<std::string, Status> before;
        for (const auto& x : report_.findings) before[x.id] = x.status;
        for (const auto& x : r.findings) {
            const auto it = before.find(x.id);
            if (it != before.end() && it->second != x.status) log_change(x.id, to_string(it->second), to_string(x.status), cause(x.category));
        }
        if (r.verdict != report_.verdict) log_change("verdict", to_string(report_.verdict), to_string(r.verdict), cause(""));
    }
    if (first && io_.diagnostics)
        *io_.diagnostics << fmt::format("kvmready watch: at start: {}: {}\n", to_string(r.verdict), r.verdict_text) << std::flush;
    publish(r, f, std::chrono::steady_clock::now() - started);
    facts_ = std::move(f);
    report_ = std::move(r);
    ++runs_;
}

}  // namespace kvmready::watch
