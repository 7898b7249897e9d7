// Derived facts several checks need, computed in one place from Facts:
// whether a KVM module really bound (registered /dev/kvm's misc device),
// why not in the kernel's own words, and which hypervisor this machine runs
// under. Checks quote these; none of them re-derives them.
#pragma once

#include <string>
#include <vector>

#include "core/facts.hpp"

namespace kvmready {

// Did a vendor/flavour module register KVM's misc device ("232 kvm" in
// /proc/misc)? Unknown when /proc/misc was not read (older recordings).
enum class KvmRegistration { Registered, NotRegistered, Unknown };

// Why KVM is absent, as the kernel logged it.
enum class KvmAbsence {
    None,                // nothing in the log says KVM failed
    PvmGuest,            // kvm_pvm declined: this kernel is itself a PVM guest
    NoHardwareSupport,   // the vendor module found no VT-x/AMD-V
    DisabledByFirmware,  // "disabled by bios", SVMDIS
    OtherError,          // KVM logged an error of another kind (quoted)
};

struct KvmState {
    const ModuleInfo* core = nullptr;     // kvm
    const ModuleInfo* flavour = nullptr;  // kvm_intel, kvm_amd, kvm_pvm, ... present in /sys/module
    KvmRegistration registration = KvmRegistration::Unknown;
    KvmAbsence absence = KvmAbsence::None;
    std::vector<std::string> kernel_lines;  // the log lines that say why, verbatim
    bool log_read = false;                  // the kernel log was read and is usable
    std::string log_note;                   // why it was not, when not

    // A present flavour module that did not register the device did not bind
    // (built-in modules stay in /sys/module even when their init failed).
    [[nodiscard]] bool flavour_bound() const { return flavour && registration != KvmRegistration::NotRegistered; }
    // The log names a cause that holds whether or not a module is loaded now
    // (no VT-x, firmware, PVM guest). An error of another kind only explains
    // a module that is present but unbound: once unloaded, an old error from
    // an earlier load says nothing about why nothing is loaded now.
    [[nodiscard]] bool standing_cause() const { return absence != KvmAbsence::None && absence != KvmAbsence::OtherError; }
};

KvmState kvm_state(const Facts& f);

// `kernel: "line"; "line"` for messages, "" when there are none.
std::string quote_kernel(const std::vector<std::string>& lines);
// One clause on why the flavour/vendor module did not bind, with the kernel's
// words when it logged them: "kvm_pvm declined to bind: this kernel is itself
// a PVM guest (kernel: "...")".
std::string absence_clause(const KvmState& s, const std::string& module);

// The hypervisor this machine runs under, by every source that names one.
// The kernel's own detection (arch/x86/kernel/cpu/hypervisor.c) is preferred:
// it knows hypervisors that reuse another's CPUID signature.
struct OuterHypervisor {
    std::string key;              // "kvm", "hyperv", "vmware", "xen", "tcg", "virtualbox", "parallels", "bhyve", "pvm", ...; "" none/unknown
    std::string name;             // "KVM", "Microsoft Hyper-V", ...
    std::string basis;            // which source named it
    std::string cpuid_signature;  // leaf 0x40000000 (this host's CPUID only)
    std::string kernel_detected;  // "Hypervisor detected: X" in the kernel log
    std::vector<std::string> disagreements;  // sources naming different hypervisors
};
OuterHypervisor outer_hypervisor(const Facts& f);

// Where to enable nested virtualization for a VM under this hypervisor: the
// real setting, or a text saying none exists.
struct NestedAdvice {
    std::string text;
    std::vector<std::string> commands;
};
NestedAdvice nested_advice(const OuterHypervisor& hv, const Facts& f);

}  // namespace kvmready
