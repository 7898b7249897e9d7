// Applying plans with an undo journal, undoing runs, listing them.
//
// The journal is one JSON object per line, appended with fsync
// (STATE/runs/RUN-ID/journal.jsonl), next to copies of every original a step
// replaced. A step is journaled ("prepare", with what undo needs) before it
// changes anything and marked "done" after, so a run killed at any point
// leaves a journal that says exactly which steps may have happened: the next
// --apply reverts those half-done steps and carries the run on; --undo
// reverts every prepared step (undo is safe for steps that never ran).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fixes/fix.hpp"
#include "fixes/journal_read.hpp"

namespace kvmready::fix {

struct RunInfo {
    std::string id;
    std::string dir;
    nlohmann::json header;        // the "run" record
    std::vector<JournalEntry> entries;
    // complete, failed, interrupted, undone, undo-incomplete
    [[nodiscard]] std::string status() const;
    [[nodiscard]] std::vector<std::string> fixes() const;
    [[nodiscard]] int steps_done() const;
};

// Runs under the state dir, oldest first. A journal cut mid-line (a kill
// during a write) loses only that line.
std::vector<RunInfo> list_runs(const std::string& state);

// Exclusive lock on STATE/lock for the life of the object; throws
// ExitError(75) when another fix holds it.
class StateLock {
public:
    explicit StateLock(const std::string& state);
    ~StateLock();
    StateLock(const StateLock&) = delete;
    StateLock& operator=(const StateLock&) = delete;

private:
    int fd_ = -1;
};

struct StepReport {
    std::string fix_id;
    std::string summary;
    std::string status;  // done, failed, not-done, skipped
    std::string detail;
};

struct ApplyResult {
    std::string run_id;
    std::string run_dir;
    bool ok = true;
    bool resumed = false;
    std::vector<std::string> reverted_half_done;  // steps of an interrupted run put back first
    std::vector<StepReport> steps;
};

// Opens (or resumes) a run and applies `plans` in order; stops at the first
// failing step and reports every step as done / failed / not-done.
ApplyResult apply_plans(const std::string& state, const std::vector<Plan>& plans, const FixOptions& options,
                        const std::vector<std::string>& argv, const std::function<void(const std::string&)>& log);

// The interrupted run that apply_plans would resume, if any.
std::optional<RunInfo> interrupted_run(const std::string& state);

// Before planning: puts back the half-done steps (prepared, never marked
// done) of an interrupted run, so the plan sees a state where every journaled
// step either happened or did not. Returns their summaries; throws
// ExitError when one cannot be put back.
std::vector<std::string> revert_half_done(const std::string& state, const std::vector<std::string>& argv,
                                          const std::function<void(const std::string&)>& log, const std::string& root);

struct UndoResult {
    std::string run_id;
    bool ok = true;
    std::vector<StepReport> steps;
};

// Reverts a run (the newest one not yet undone when id is empty).
// root: this invocation's --root ("" live); a run recorded for another root is refused.
UndoResult undo_run(const std::string& state, const std::string& id, const std::function<void(const std::string&)>& log,
                    const std::string& root);

}  // namespace kvmready::fix
