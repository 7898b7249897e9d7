// One re-judging of `kvmready watch`: re-probe the facts areas an event
// batch can change (keeping the others from the run before), run the checks
// over the merged facts, log every verdict that changed with the events
// behind it, and rewrite the outputs atomically. The checks are pure
// functions of the facts, so checks whose facts were kept answer exactly as
// before; only the probing (the I/O) is narrowed to what the events touched.
// The world (probe, file publishing, clock) is injected: tests drive it
// with a recorded host tree and scripted events.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/probe.hpp"
#include "core/runner.hpp"
#include "host/nofollow_fs.hpp"
#include "output/formats.hpp"
#include "watch/impact.hpp"

namespace kvmready::watch {

struct OutputSpec {
    output::Format format;
    std::string path;
};

struct JudgeIo {
    std::function<Facts(const ProbeOptions&)> probe;
    std::function<void(const std::vector<host::OutputFile>&)> publish;  // throws std::runtime_error
    std::function<int64_t()> unix_now;
    std::ostream* changes = nullptr;    // verdict changes, one line each
    std::ostream* diagnostics = nullptr;  // start-up, write errors
    bool json_lines = false;            // changes as JSON lines instead of text
};

// The cause of a change of a check of this category (Batch::cause_for).
using CauseOf = std::function<std::string(const std::string& category)>;

class Judge {
public:
    Judge(ProbeOptions base, std::vector<OutputSpec> outputs, FixPlannable plannable, JudgeIo io)
        : base_(std::move(base)), outputs_(std::move(outputs)), plannable_(std::move(plannable)), io_(std::move(io)) {}

    // The first run (and every run after lost events or at the interval)
    // probes everything, whatever `impact` says.
    void run(const Impact& impact, const CauseOf& cause);
    [[nodiscard]] const Report& report() const { return report_; }
    [[nodiscard]] size_t runs() const { return runs_; }
    [[nodiscard]] size_t changes_logged() const { return changes_logged_; }
    [[nodiscard]] size_t write_failures() const { return write_failures_; }

private:
    Facts merged_probe(const Impact& impact);
    void log_change(const std::string& id, const std::string& from, const std::string& to, const std::string& cause);
    void publish(const Report& r, const Facts& f, std::chrono::steady_clock::duration took);

    ProbeOptions base_;
    std::vector<OutputSpec> outputs_;
    FixPlannable plannable_;
    JudgeIo io_;
    std::optional<Facts> facts_;
    Report report_;
    size_t runs_ = 0, changes_logged_ = 0, write_failures_ = 0;
};

}  // namespace kvmready::watch
