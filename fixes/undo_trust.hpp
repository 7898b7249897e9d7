// What a journal may make `fix --undo` do: each undo record is held to the
// step it belongs to in the same journal (the "prepare" record's args, the
// plan as it was made) and to what kvmready's fixes can plan at all. The
// state directory's trust check (engine.cpp) keeps strangers out of the
// journal; this keeps a journal that is corrupt, or edited by hand, from
// steering a root undo anywhere else: a file, /proc/sys or /dev path other
// than the step's own, a saved copy outside the run's directory, an undo
// command other than the step's or of a program no fix uses as an inverse.
#pragma once

#include <string>
#include <vector>

namespace kvmready::fix {

struct RunInfo;

// Checks the undo records of `steps` (step numbers about to be undone) of
// `run`, before anything is touched; `root` is this invocation's target root
// ("" live). Throws DataError (65) naming JOURNAL:LINE and the reason on the
// first record that fails.
void check_undo_records(const RunInfo& run, const std::vector<int>& steps, const std::string& root);

// The programs an undo may run (argv[0]): the inverses kvmready's fixes plan
// (fixes/kvm.cpp, bridge.cpp, libvirt_daemon.cpp).
bool undo_program_allowed(const std::string& program);

}  // namespace kvmready::fix
