// Result of the functional /dev/kvm test: open, API version, VM, vCPU, run a
// few bytes of real-mode guest code to HLT, and the capabilities. The same
// pass also collects what real VMMs ask KVM for before they start a guest
// (capability lists, the CPUID KVM can give guests, feature MSRs and whether
// a vCPU accepts them); checks/kvm_vmm.cpp judges it. Values are kept raw so
// a recording replays exactly.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::host {

// One entry of KVM_GET_SUPPORTED_CPUID (struct kvm_cpuid_entry2).
struct KvmCpuidEntry {
    uint32_t function = 0, index = 0, flags = 0;
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// A feature MSR (KVM_GET_MSR_FEATURE_INDEX_LIST): the value KVM reports for
// the host, and what a vCPU did when a VMM wrote that value back.
struct KvmFeatureMsr {
    uint32_t index = 0;
    bool readable = false;         // KVM_GET_MSRS on /dev/kvm returned it
    uint64_t value = 0;
    bool set_tried = false;
    int set_result = 0;            // KVM_SET_MSRS on a vCPU: 1 accepted, 0 refused, -errno
    bool readback_ok = false;
    uint64_t readback = 0;         // KVM_GET_MSRS on the vCPU afterwards
    uint64_t refused_bits = 0;     // bits of value that the vCPU refuses even alone (only when refused)
};

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

    // What VMMs need. `vmm_probed` is false in recordings made before this
    // pass existed (and when /dev/kvm did not open or spoke another API).
    bool vmm_probed = false;
    double vmm_probe_ms = 0;                    // time spent on everything below
    std::map<std::string, int> system_caps;     // KVM_CHECK_EXTENSION on /dev/kvm
    std::map<std::string, int> vm_caps;         // the same on the VM fd (KVM_CAP_CHECK_EXTENSION_VM)
    int supported_cpuid_errno = 0;
    std::vector<KvmCpuidEntry> supported_cpuid;
    // KVM_GET_DEVICE_ATTR(KVM_X86_XCOMP_GUEST_SUPP): XSAVE components a guest
    // may get, including those a process must first request (AMX).
    int xcomp_guest_supp_errno = 0;
    uint64_t xcomp_guest_supp = 0;
    int msr_index_list_errno = 0;
    std::vector<uint32_t> msr_index_list;       // KVM_GET_MSR_INDEX_LIST (QEMU's has_msr_* come from it)
    int feature_msr_list_errno = 0;
    std::vector<KvmFeatureMsr> feature_msrs;
    // The feature-MSR round trip runs on a second vCPU given the supported
    // CPUID first, in the order QEMU and Firecracker use.
    int msr_vcpu_errno = 0;
    int set_cpuid_errno = 0;
};

// Missing keys keep their defaults, so older recordings still load.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KvmCpuidEntry, function, index, flags, eax, ebx, ecx, edx)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KvmFeatureMsr, index, readable, value, set_tried, set_result, readback_ok, readback,
                                                refused_bits)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KvmProbe, attempted, not_attempted_reason, open_errno, api_version,
                                                create_vm_errno, vm_created, create_vcpu_errno, vcpu_created, ran, run_error,
                                                guest_output, duration_ms, capabilities, vmm_probed, vmm_probe_ms, system_caps,
                                                vm_caps, supported_cpuid_errno, supported_cpuid, xcomp_guest_supp_errno,
                                                xcomp_guest_supp, msr_index_list_errno, msr_index_list, feature_msr_list_errno,
                                                feature_msrs, msr_vcpu_errno, set_cpuid_errno)

// Runs the real ioctl sequence against `dev`. Bounded in time: a guest that
// does not exit within timeout_ms is interrupted and reported.
KvmProbe run_kvm_probe(const std::string& dev, int timeout_ms = 2000);

// KVM_CHECK_EXTENSION numbers by the names used in system_caps/vm_caps
// (exported so tests can ask the kernel directly and compare).
struct KvmCapName {
    const char* name;
    int cap;
};
const std::vector<KvmCapName>& kvm_vmm_cap_names();

}  // namespace kvmready::host
