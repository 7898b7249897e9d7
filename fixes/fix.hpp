// Fixes as plans: a fix looks at Facts and the checks' findings and returns a
// Plan made of Steps. A Step is plain data (an op name and JSON arguments), so
// the same object is printed by the dry run, executed by --apply, written to
// the undo journal and reverted by --undo in a later process. The code that
// changes the system lives in ops (fixes/ops_*.cpp), a small fixed set of
// well-tested primitives; fixes only decide which primitives with which
// arguments, from the state they see.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/facts.hpp"
#include "core/ids.hpp"
#include "core/runner.hpp"
#include "host/host.hpp"
#include "host/target.hpp"

namespace kvmready::fix {

// rustc's applicability levels: automatic fixes run with --apply, confirm ones
// also need --yes (they restart or replace something), manual ones are only
// described (firmware setup, a reboot into another kernel).
enum class Applicability { Automatic, Confirm, Manual };
const char* to_string(Applicability a);

struct Step {
    std::string op;            // an op name: "file.write", "proc.write", "command", "node.perms", ...
    std::string summary;       // one line for people: "load kvm_intel now"
    // The exact commands an admin would type for the same change (shown in the
    // plan; `command` executes commands[0]).
    std::vector<std::vector<std::string>> commands;
    nlohmann::json args = nlohmann::json::object();  // the op's parameters
    bool runtime = false;      // changes the running system; not done with --root
};

struct Plan {
    std::string fix_id;
    std::string title;
    Applicability applicability = Applicability::Automatic;
    std::vector<std::string> repairs;  // ids of the failing/warning checks it answers
    std::string reason;                // why: the findings' messages, or the option asked for it
    std::vector<Step> steps;
    bool needs_reboot = false;
    bool needs_module_reload = false;
    bool needs_relogin = false;
    std::vector<std::string> notes;    // "nested takes effect at next boot: 2 VMs run"
    std::string manual;                // Manual: what a person must do
};

// What the user asked for, beyond the findings: the options every command
// shares (core/options.hpp), parsed once. The old name stays for the
// planners and ops that read `options.user`, `options.bridge`, ...
using FixOptions = Options;

// A planner sees only these: Facts (ConfigFacts holds the files, listings and
// runtime state the planners read), the findings and the options. It cannot
// probe, so a plan made from a recording is the plan made on the host.
struct PlanInput {
    const Facts& facts;
    const Report& report;              // the checks' findings, before any change
    const FixOptions& options;

    // Findings that name `fix_id` and are warn/fail (the usual trigger).
    [[nodiscard]] std::vector<const Finding*> wanting(const std::string& fix_id) const;
    // Content of a file a fix edits, as probed on the target (under --root
    // when given); nullopt when it does not exist. Throws when it must not be
    // edited in place (a symlink on the way).
    [[nodiscard]] std::optional<std::string> target_file(const std::string& path) const;
    [[nodiscard]] const ConfigFacts& config() const { return facts.config; }
    [[nodiscard]] bool offline() const { return !options.root.empty(); }
};

struct FixSpec {
    const char* id;
    const char* title;
    std::vector<CheckId> repairs;      // the checks this fix can repair (typed: ids::kvm_access, ...)
    const char* description;           // for `kvmready fix --list` and the man page
    // nullopt: nothing to do. Must be idempotent: after a successful apply the
    // same state yields nullopt. May throw std::runtime_error for a fix that
    // cannot be planned (the message is shown, nothing is applied).
    std::function<std::optional<Plan>(const PlanInput&)> plan;
    // The option without which a plain `kvmready fix` plans nothing for it
    // ("--bridge"); nullptr when findings alone trigger it. A check's next
    // step points at `kvmready fix` only for fixes that need none.
    const char* needs_option = nullptr;
};

// A fix a plain `kvmready fix` plans: it exists and needs no option of its own.
bool plannable_unaided(const std::string& id);

// The explicit list (fixes/registry.cpp), in apply order: modules before
// device permissions before groups before daemons before networks and pools.
const std::vector<FixSpec>& registry();
const FixSpec* find_fix(const std::string& id);

// ---- building steps (fixes/steps.cpp) ------------------------------------

// Write the whole file atomically (temp file, fsync, rename), never through a
// symlink; `before` is the content the plan saw (nullopt: absent), checked
// again at apply time.
Step write_file(const std::string& path, std::optional<std::string> before, std::string content, unsigned mode = 0644,
                uint32_t uid = 0, uint32_t gid = 0);
// Remove a file the plan saw with `before` content.
Step remove_file(const std::string& path, std::string before);
// Write a procfs/sysfs value now (undo writes back what was there).
Step proc_write(const std::string& path, std::string value, std::string summary);
// A program run with argv (never a shell). undo_argv: how to revert it when
// the snapshot files cannot be restored byte for byte (empty: irreversible).
// snapshots: files the program edits (/etc/group), saved before and
// restored on undo when nobody changed them since.
Step command(std::vector<std::string> argv, std::string summary, std::vector<std::string> undo_argv = {},
             std::vector<std::string> snapshots = {}, bool runtime = true);
// chown root:GROUP + chmod of a device node now (no symlinks); the group is
// looked up when the step runs (an earlier step may create it).
Step node_perms(const std::string& path, unsigned mode, const std::string& group, std::string summary);

// Shell-quoted argv for display ('...' only where needed).
std::string quote_argv(const std::vector<std::string>& argv);
// A unified diff (3 lines of context) of a -> b, labelled with path.
std::string unified_diff(const std::string& path, const std::optional<std::string>& a, const std::optional<std::string>& b);

// ---- ops (the code that changes the system) -------------------------------

struct OpContext {
    std::string root;        // "" live, else the target root
    // Everything an op changes goes through the target (host/target.hpp);
    // unset: the live system, or the directory `root` names.
    std::shared_ptr<host::Target> target;
    std::string run_dir;     // this run's journal directory
    std::string connect_uri;
    int step_index = 0;
    // Messages for the user (progress, what was skipped).
    std::function<void(const std::string&)> log;

    host::Target& sys() {
        if (!target) target = host::make_target(root);
        return *target;
    }
};

struct Op {
    // Captures what undo needs (saving originals under run_dir) before any
    // change; its result is journaled and fsynced before apply runs.
    std::function<nlohmann::json(const Step&, OpContext&)> prepare;
    // Makes the change; throws std::runtime_error with a clear message.
    std::function<void(const Step&, OpContext&, nlohmann::json& undo)> apply;
    // Reverts from the journaled undo record. Must be safe when apply never
    // ran or ran halfway (a run killed between prepare and done).
    std::function<void(const nlohmann::json& undo, OpContext&)> undo;
};

void register_op(const std::string& name, Op op);
// Registers every op group listed in fixes/registry.cpp on first use.
const Op* find_op(const std::string& name);
void register_builtin_ops();

// ---- the engine (fixes/engine.cpp) ----------------------------------------

struct PlanSet {
    std::vector<Plan> plans;        // automatic and confirm fixes with something to do
    std::vector<Plan> manual;       // what only a person can do (from findings without a fix)
    std::vector<std::string> errors;  // fixes that could not be planned: "ID: why"
};

// Every fix in registry order (filtered by options.only).
PlanSet make_plans(const Facts& facts, const Report& report, const FixOptions& options);

// Where runs are journaled: $KVMREADY_STATE_DIR, else ROOT/var/lib/kvmready/fix.
std::string state_dir(const std::string& root);

}  // namespace kvmready::fix
