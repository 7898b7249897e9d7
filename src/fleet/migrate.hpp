// Can a guest started on host A live-migrate to host B, and back? A guest
// keeps the CPU features it started with; the destination must give every
// one of them (and be of the same vendor). For each feature only one side
// gives, why the other lacks it.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fleet/baseline.hpp"
#include "fleet/host_cpu.hpp"

namespace kvmready::fleet {

// Why the side that lacks a feature lacks it.
enum class DiffReason {
    HardwareGeneration,   // its CPU lacks it and is another family/model
    FirmwareOrMicrocode,  // its CPU lacks it though of the same family/model
    KvmWithheld,          // its CPU has it, KVM (its kernel) does not give it to guests
    KvmEmulated,          // the other side's KVM offers it without the CPU having it
    MicrocodeMitigation,  // a speculation-control or CPU-bug bit: microcode, kernel mitigations
    QemuLibvirt,          // its CPU has it, libvirt/QEMU's host-model leaves it out
    Unknown,              // only CPU data on one side, nothing to tell
};
std::string to_string(DiffReason r);

struct FeatureDiff {
    std::string feature;
    bool on_a = false;                     // true: A gives it, B lacks it
    DiffReason reason = DiffReason::Unknown;
    std::string detail;                    // one sentence naming the host, CPU, kernel or versions
};

struct PairResult {
    HostCpu a, b;
    bool same_vendor = true;
    bool a_to_b = false, b_to_a = false;
    std::vector<FeatureDiff> diffs;        // sorted: A-only first, then by name
    BaselineRun common;                    // the two hosts' baseline
};

PairResult compare_pair(const HostCpu& a, const HostCpu& b);

// Is `name` a speculation-control / CPU-bug feature (microcode, mitigations)?
bool mitigation_feature(const std::string& name);

std::string pair_text(const PairResult& r);
nlohmann::ordered_json pair_json(const PairResult& r);

}  // namespace kvmready::fleet
