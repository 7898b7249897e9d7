// Result of the functional /dev/kvm test: open, API version, VM, vCPU, run a
// few bytes of real-mode guest code to HLT, and the capabilities.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace kvmready::host {

struct KvmProbe {
    bool attempted = false;
    std::string not_attempted_reason;
    int open_errno = 0;
    int api_version = -1;
    int create_vm_errno = 0;       // EBUSY: another hypervisor owns VT-x/SVM
    bool vm_created = false;
    int create_vcpu_errno = 0;
    bool vcpu_created = false;
    bool ran = false;              // KVM_RUN reached the guest's HLT
    std::string run_error;         // exit reason or errno text when !ran
    std::string guest_output;      // bytes the guest wrote to the I/O port
    double duration_ms = 0;
    std::map<std::string, int> capabilities;  // KVM_CHECK_EXTENSION results
};

// Missing keys keep their defaults, so older recordings still load.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KvmProbe, attempted, not_attempted_reason, open_errno, api_version,
                                                create_vm_errno, vm_created, create_vcpu_errno, vcpu_created, ran, run_error,
                                                guest_output, duration_ms, capabilities)

// Runs the real ioctl sequence against `dev`. Bounded in time: a guest that
// does not exit within timeout_ms is interrupted and reported.
KvmProbe run_kvm_probe(const std::string& dev, int timeout_ms = 2000);

}  // namespace kvmready::host
