// Runs the registry over Facts and derives the verdict.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/check.hpp"

namespace kvmready {

// Ready..NotReady judge the whole host (every check ran). A run of selected
// checks answers only for them: Passed..Failed, so that no consumer reads
// "ready" off a run that never asked whether KVM works. Undetermined serves both.
enum class Verdict { Ready, ReadyWithWarnings, NotReady, Undetermined, Passed, PassedWithWarnings, Failed };
const char* to_string(Verdict v);

struct Scope {
    bool whole_host = true;            // every check ran
    std::vector<std::string> selected; // the selectors as given (empty: all)
    bool kvm_checked = true;           // the ground truth check (kvm.api) was among the checks reported
};

struct Summary {
    int pass = 0, warn = 0, fail = 0, skip = 0, unknown = 0, error = 0;
    [[nodiscard]] int total() const { return pass + warn + fail + skip + unknown + error; }
};

struct Report {
    std::vector<Finding> findings;   // selected checks, registry order
    Summary summary;
    Scope scope;
    Verdict verdict = Verdict::Undetermined;
    std::string verdict_text;        // one sentence
    std::string next_step;           // one command or action, empty when ready
};

// What the layer above knows of `kvmready fix` (the core knows no fix): true
// when a plain `kvmready fix`, without options of the fix's own, plans this
// fix id. The next step then points at the plan. Empty: no fix is known, the
// next step names the remediation's own commands.
using FixPlannable = std::function<bool(const std::string& fix_id)>;

// selectors: check ids or categories; empty = all. Throws UsageError on an
// unknown selector.
Report run_checks(const Facts& facts, const std::vector<std::string>& selectors, const FixPlannable& plannable = {});

// ProbeArea bits the selected checks and everything they depend on read
// (kAreaAll when nothing is selected).
unsigned probe_areas_for(const std::vector<std::string>& selectors);
// The same over an explicit check list (tests exercise the runner with
// checks that throw or depend on each other).
Report run_checks(const Facts& facts, const std::vector<std::string>& selectors, const std::vector<CheckSpec>& checks,
                  const FixPlannable& plannable = {});

int exit_code_for(const Report& r, bool strict);

}  // namespace kvmready
