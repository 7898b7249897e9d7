// What `kvmready check --full` keeps of a smoke run (smoke/) in Facts, for
// the check smoke.boot. Plain data owned by the core, so Facts depend on no
// layer above them; smoke::summarize fills it from a SmokeReport.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready {

struct SmokeFacts {
    bool ran = false;                 // false: not requested (no --full) or not possible
    std::string not_run_reason;
    bool passed = false;
    int exit_code = 0;                // as `kvmready smoke` would exit
    std::string verdict;
    std::string diagnosis;
    std::string accel_requested, accel_used;
    std::string uri;
    std::string failed_step;          // e.g. "c libvirt [kvm]"
    std::string failure;              // its failure class
    std::string failure_message;
    bool kvm_flavour_pvm = false;
    double total_ms = 0;
    std::vector<std::string> steps;   // "c libvirt [tcg] pass 1610 ms", in order
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SmokeFacts, ran, not_run_reason, passed, exit_code, verdict, diagnosis, accel_requested,
                                                accel_used, uri, failed_step, failure, failure_message, kvm_flavour_pvm, total_ms, steps)

}  // namespace kvmready
