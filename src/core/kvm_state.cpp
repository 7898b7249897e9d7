#include "core/kvm_state.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "util/text.hpp"

namespace kvmready {

namespace {

using util::lower;

bool has(const std::string& hay, std::string_view needle) { return hay.find(needle) != std::string::npos; }

const ModuleInfo* module_named(const Facts& f, const std::string& name) {
    for (const auto& m : f.modules.present)
        if (m.name == name) return &m;
    return nullptr;
}

// Kernel messages that say why KVM is absent, as the kernel prints them
// (x86.c, svm.c, vmx.c, feat_ctl.c, kvm_pvm): lower-case fragments.
KvmAbsence classify(const std::string& l) {
    if ((has(l, "kvm-pvm") || has(l, "kvm_pvm")) && (has(l, "not binding") || has(l, "guest"))) return KvmAbsence::PvmGuest;
    if (has(l, "disabled by bios") || has(l, "disabled (by bios)") || has(l, "not enabled (by bios)")) return KvmAbsence::DisabledByFirmware;
    if (has(l, "no hardware support") || has(l, "svm not supported") || has(l, "vmx not supported") || has(l, "svm not available") ||
        has(l, "not amd or hygon") || has(l, "vmx not available"))
        return KvmAbsence::NoHardwareSupport;
    return KvmAbsence::None;
}

bool is_kvm_error(const host::KernelLogLine& line, const std::string& l) {
    // Errors and warnings of KVM itself (levels 0-4), not the IOMMU's or SEV's.
    // "kvm: unknown parameter 'x' ignored" is the module loader rejecting a
    // command-line option (kernel/params.c): noise, not a reason KVM failed.
    if (has(l, "unknown parameter")) return false;
    // Errors while running a guest ("kvm [pid]: vcpu0 ...", kvm_pvm's
    // "INTERNAL_ERROR in batch emul: rip=...") mean the module was bound and
    // ran a VM: they never explain why it did not bind.
    for (const char* runtime : {"vcpu", "rip=", "emul", "kvm [", "guest rip", "exit reason"})
        if (has(l, runtime)) return false;
    return line.level >= 0 && line.level <= 4 && (l.rfind("kvm", 0) == 0 || l.rfind("svm", 0) == 0 || l.rfind("vmx", 0) == 0);
}

struct HvId {
    const char* key;
    const char* name;
};

// CPUID leaf 0x40000000 signatures (NULs stripped).
HvId from_signature(const std::string& sig) {
    static const std::pair<const char*, HvId> kSigs[] = {
        {"KVMKVMKVM", {"kvm", "KVM"}},
        {"Linux KVM Hv", {"kvm", "KVM"}},
        {"Microsoft Hv", {"hyperv", "Microsoft Hyper-V"}},
        {"VMwareVMware", {"vmware", "VMware"}},
        {"XenVMMXenVMM", {"xen", "Xen"}},
        {"TCGTCGTCGTCG", {"tcg", "QEMU TCG"}},
        {"VBoxVBoxVBox", {"virtualbox", "VirtualBox"}},
        {"prl hyperv  ", {"parallels", "Parallels"}},
        {"bhyve bhyve ", {"bhyve", "bhyve"}},
        {"ACRNACRNACRN", {"acrn", "ACRN"}},
        {"QNXQVMBSQG", {"qnx", "QNX"}},
        {"EVMMEVMMEVMM", {"evmm", "Intel EVMM"}},
    };
    for (const auto& [s, id] : kSigs)
        if (sig == s) return id;
    return {"", ""};
}

// The names of arch/x86/kernel/cpu/hypervisor.c's detectors (and PVM's).
HvId from_kernel(const std::string& name) {
    const std::string l = lower(name);
    if (l == "kvm") return {"kvm", "KVM"};
    if (has(l, "hyper-v")) return {"hyperv", "Microsoft Hyper-V"};
    if (has(l, "vmware")) return {"vmware", "VMware"};
    if (has(l, "xen")) return {"xen", "Xen"};
    if (l == "acrn") return {"acrn", "ACRN"};
    if (l == "jailhouse") return {"jailhouse", "Jailhouse"};
    if (has(l, "bhyve")) return {"bhyve", "bhyve"};
    if (l == "pvm") return {"pvm", "PVM"};
    return {"", ""};
}

}  // namespace

KvmState kvm_state(const Facts& f) {
    KvmState s;
    s.core = module_named(f, "kvm");
    for (const char* name : {"kvm_intel", "kvm_amd", "kvm_pvm"})
        if (!s.flavour) s.flavour = module_named(f, name);
    if (!s.flavour)
        for (const auto& m : f.modules.present)
            if (m.name.rfind("kvm_", 0) == 0) {
                s.flavour = &m;
                break;
            }
    if (f.device.misc_read) s.registration = f.device.misc_minor ? KvmRegistration::Registered : KvmRegistration::NotRegistered;

    const auto& kl = f.kernel_log;
    if (!kl.read) {
        s.log_note = "the kernel log was not read (" + kl.reason + ")";
        return s;
    }
    if (!kl.log.available || !kl.log.error.empty()) {
        s.log_note = "the kernel log could not be read: " + (kl.log.error.empty() ? std::string("not recorded") : kl.log.error);
        return s;
    }
    s.log_read = true;
    std::vector<std::string> errors;
    for (const auto& line : kl.log.lines) {
        const std::string l = lower(line.text);
        const KvmAbsence a = classify(l);
        if (a != KvmAbsence::None) {
            // The first cause the kernel gave leads; later lines of the same
            // kind are kept as evidence too.
            if (s.absence == KvmAbsence::None) s.absence = a;
            if (a == s.absence) s.kernel_lines.push_back(line.text);
        } else if (is_kvm_error(line, l)) {
            errors.push_back(line.text);
        }
    }
    if (s.absence == KvmAbsence::None && !errors.empty()) {
        s.absence = KvmAbsence::OtherError;
        s.kernel_lines = errors;
    }
    if (s.kernel_lines.size() > 3) s.kernel_lines.resize(3);
    if (s.absence == KvmAbsence::None) s.log_note = "the kernel log says nothing about why";
    return s;
}

std::string quote_kernel(const std::vector<std::string>& lines) {
    if (lines.empty()) return "";
    std::string out = "kernel: ";
    for (size_t i = 0; i < lines.size(); ++i) out += (i ? "; \"" : "\"") + lines[i] + "\"";
    return out;
}

std::string absence_clause(const KvmState& s, const std::string& module) {
    const std::string quoted = quote_kernel(s.kernel_lines);
    const std::string q = quoted.empty() ? "" : " (" + quoted + ")";
    switch (s.absence) {
    case KvmAbsence::PvmGuest:
        return fmt::format("{} declined to bind: this kernel is itself a PVM guest{}", module, q);
    case KvmAbsence::NoHardwareSupport:
        return fmt::format("{} found no VT-x/AMD-V in the CPU{}", module, q);
    case KvmAbsence::DisabledByFirmware:
        return fmt::format("{} found virtualization disabled by the firmware{}", module, q);
    case KvmAbsence::OtherError:
        return fmt::format("{} failed{}", module, q);
    case KvmAbsence::None:
        break;
    }
    return fmt::format("{} did not bind, and {}", module, s.log_note);
}

OuterHypervisor outer_hypervisor(const Facts& f) {
    OuterHypervisor h;
    HvId by_sig{"", ""}, by_kernel{"", ""}, by_sys{"", ""};
    if (f.cpu.available && (f.cpu.source == "live" || f.cpu.source == "recorded")) {
        const auto d = cpuid::decode(f.cpu.dump);
        if (d.hypervisor && d.hypervisor_vendor) {
            h.cpuid_signature = *d.hypervisor_vendor;
            by_sig = from_signature(h.cpuid_signature);
        }
    }
    if (f.kernel_log.read)
        for (const auto& line : f.kernel_log.log.lines)
            if (line.text.rfind("Hypervisor detected: ", 0) == 0) {
                h.kernel_detected = line.text.substr(21);
                by_kernel = from_kernel(h.kernel_detected);
            }
    if (!f.hypervisor.sys_hypervisor_type.empty()) by_sys = from_kernel(f.hypervisor.sys_hypervisor_type);
    if (by_kernel.key[0]) {
        h.key = by_kernel.key, h.name = by_kernel.name, h.basis = "detected by the kernel";
    } else if (by_sig.key[0]) {
        h.key = by_sig.key, h.name = by_sig.name, h.basis = "CPUID signature \"" + h.cpuid_signature + "\"";
    } else if (by_sys.key[0]) {
        h.key = by_sys.key, h.name = by_sys.name, h.basis = "/sys/hypervisor/type";
    }
    if (by_sig.key[0] && by_kernel.key[0] && std::string(by_sig.key) != by_kernel.key)
        h.disagreements.push_back(fmt::format("CPUID signature \"{}\" names {} instead", h.cpuid_signature, by_sig.name));
    else if (!h.cpuid_signature.empty() && !by_sig.key[0] && by_kernel.key[0])
        h.disagreements.push_back(fmt::format("CPUID signature \"{}\" is not a known hypervisor's", h.cpuid_signature));
    return h;
}

NestedAdvice nested_advice(const OuterHypervisor& hv, const Facts& f) {
    const std::string& k = hv.key;
    if (k == "hyperv") {
        const auto pn = f.hypervisor.dmi.find("product_name");
        const bool vm = pn != f.hypervisor.dmi.end() && pn->second == "Virtual Machine";
        return {vm ? "This Hyper-V VM does not see VT-x/AMD-V: expose virtualization extensions to it on the Hyper-V host (with the "
                     "VM powered off)."
                   : "Hyper-V hides VT-x/AMD-V from this OS. If it is a Hyper-V VM, expose virtualization extensions on the "
                     "Hyper-V host (VM powered off); if this is Windows with Hyper-V/VBS/WSL2 on bare metal, the CPU has them but "
                     "only Hyper-V can use them.",
                {"Set-VMProcessor -VMName <vm> -ExposeVirtualizationExtensions $true"}};
    }
    if (k == "vmware")
        return {"Enable \"Expose hardware assisted virtualization to the guest OS\" for this VM (vhv.enable = \"TRUE\").", {}};
    if (k == "kvm")
        return {"This is a KVM guest without nested virtualization: on the outer host enable nested for kvm_intel/kvm_amd and give "
                "this VM the host CPU model (-cpu host, libvirt <cpu mode='host-passthrough'/>).",
                {"echo 'options kvm_intel nested=1' > /etc/modprobe.d/kvm-nested.conf   # on the outer host (kvm_amd on AMD)"}};
    if (k == "virtualbox")
        return {"Turn on nested VT-x/AMD-V for this VirtualBox VM (VM powered off).", {"VBoxManage modifyvm <vm> --nested-hw-virt on"}};
    if (k == "xen") return {"Enable nested HVM for this Xen guest (nestedhvm=1 in its configuration).", {}};
    if (k == "parallels")
        return {"Turn on nested virtualization for this Parallels VM (VM powered off).", {"prlctl set <vm> --nested-virt on"}};
    if (k == "tcg")
        return {"QEMU's TCG emulator cannot emulate VT-x; it does emulate AMD SVM (start the VM with -cpu EPYC or "
                "-cpu qemu64,+svm), or run the VM under KVM with nested virtualization.",
                {}};
    if (k == "pvm")
        return {"This VM is a PVM guest: PVM gives its guests no VT-x/AMD-V and kvm_pvm does not run inside a PVM guest, so no "
                "setting in this VM enables KVM. It needs a VM whose hypervisor exposes VT-x/AMD-V (nested virtualization) or "
                "bare metal; until then run guests under TCG.",
                {}};
    if (k == "bhyve")
        return {"bhyve has no setting that passes VT-x/AMD-V to its guests: KVM needs bare metal or a VM under a hypervisor with "
                "nested virtualization; until then run guests under TCG.",
                {}};
    if (!k.empty())
        return {fmt::format("No nested-virtualization setting is known for {}: KVM needs a VM whose hypervisor exposes VT-x/AMD-V, "
                            "or bare metal.",
                            hv.name),
                {}};
    return {"This is a virtual machine whose hypervisor does not expose VT-x/AMD-V: enable nested virtualization on the outer host "
            "for this VM.",
            {}};
}

}  // namespace kvmready
