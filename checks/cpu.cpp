// cpu.*: what the processor offers, from CPUID itself (not /proc/cpuinfo,
// which the kernel filters) and the firmware lock MSRs.
#include <algorithm>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"

namespace kvmready::checks {

namespace {

// "under PVM (CPUID signature ... names bhyve, but the kernel detected PVM)".
std::string under(const OuterHypervisor& hv) {
    if (hv.key.empty()) return hv.cpuid_signature.empty() ? "" : " (hypervisor \"" + hv.cpuid_signature + "\")";
    std::string basis = hv.basis;
    for (const auto& dis : hv.disagreements) basis += "; " + dis;
    return " under " + hv.name + " (" + basis + ")";
}

void virt_extensions(const Facts& f, const Results& r, Finding& out) {
    if (!f.cpu.available) {
        set(out, Status::Unknown, "CPUID not available: " + f.cpu.unavailable_reason);
        remedy(out, "Re-run on the host itself, or pass a CPUID dump with --cpuid-dump FILE.", {"cpuid -r -1 > cpuid.txt"},
               "", "manual", false);
        return;
    }
    const auto d = cpuid::decode(f.cpu.dump);
    const CpuClass cls = cpu_class(d.vendor);
    auto& ev = out.evidence;
    ev["source"] = f.cpu.source;
    ev["vendor"] = d.vendor;
    ev["brand"] = d.brand;
    ev["vmx"] = d.vmx;
    ev["svm"] = d.svm;
    ev["hypervisor_bit"] = d.hypervisor;
    ev["hypervisor_vendor"] = d.hypervisor_vendor ? nlohmann::ordered_json(*d.hypervisor_vendor) : nlohmann::ordered_json();
    if (f.cpu.cpuinfo_read && cpuid_is_this_host(f)) {
        ev["cpuinfo_vmx"] = has_flag(f.cpu.cpuinfo_flags, "vmx");
        ev["cpuinfo_svm"] = has_flag(f.cpu.cpuinfo_flags, "svm");
    }
    if (d.vmx || d.svm) {
        const bool vmx = d.vmx && cls != CpuClass::Amd;
        std::string msg = vmx ? "Intel VT-x (VMX) is present in CPUID" : "AMD-V (SVM) is present in CPUID";
        if (d.svm && !d.svm_features.empty()) {
            std::string feats;
            for (const auto& s : d.svm_features) feats += (feats.empty() ? "" : " ") + s;
            ev["svm_features"] = d.svm_features;
            msg += " (" + feats + ")";
        }
        set(out, Status::Pass, msg);
        return;
    }
    const std::string expected = cls == CpuClass::Amd ? "AMD-V (SVM)" : cls == CpuClass::Intel ? "VT-x (VMX)" : "VT-x or AMD-V";
    if (f.kvm.ran) {
        const auto* m = flavour_module(f);
        const std::string fl = m ? describe_flavour(m->name) : "a KVM module";
        set(out, Status::Warn, fmt::format("no {} in CPUID, yet KVM works here through {}", expected, fl));
        if (is_pvm(r.derived())) {
            ev["kvm_flavour"] = "pvm";
            remedy(out, std::string(kPvmImplications) + ".",
                   {"qemu-system-x86_64 -accel tcg ...   # ordinary guests", "virt-install --virt-type qemu ...   # libvirt"},
                   "", "manual", false);
        } else {
            remedy(out, "KVM works without the CPU flag; guests may lack hardware-assisted features.", {}, "", "manual", false);
        }
        return;
    }
    if (is_pvm(r.derived())) {
        // kvm_pvm needs no VT-x/AMD-V at all: the missing flag is not the cause
        // when the ioctl test could not run (a user without access to /dev/kvm);
        // kvm.access and kvm.api say what is.
        ev["kvm_flavour"] = "pvm";
        set(out, Status::Warn,
            fmt::format("no {} in CPUID, but this kernel provides KVM through {}, which does not need it; the functional test "
                        "(kvm.api) could not run to confirm it",
                        expected, describe_flavour("kvm_pvm")));
        remedy(out, std::string(kPvmImplications) + ".",
               {"qemu-system-x86_64 -accel tcg ...   # ordinary guests", "virt-install --virt-type qemu ...   # libvirt"}, "", "manual",
               false);
        return;
    }
    if (d.hypervisor) {
        OuterHypervisor hv = r.derived().outer;
        const KvmState& ks = r.derived().kvm;
        set(out, Status::Fail,
            fmt::format("no {} in CPUID: this is a virtual machine{} that does not pass virtualization extensions through", expected,
                        under(hv)));
        // A software flavour that needs no VT-x/AMD-V is present but did not bind: say why, in the kernel's words.
        if (ks.flavour && ks.flavour->name == "kvm_pvm" && !ks.flavour_bound()) {
            out.message += "; " + absence_clause(ks, "kvm_pvm, which would not need them,");
            if (ks.absence == KvmAbsence::PvmGuest) hv.key = "pvm";
        }
        const auto adv = nested_advice(hv, f);
        remedy(out, adv.text + kTcgMeanwhile, adv.commands, "", "manual", false);
        return;
    }
    set(out, Status::Fail, fmt::format("no {} in CPUID: this CPU lacks hardware virtualization, or firmware hides it", expected));
    remedy(out,
           "Check the CPU model's specifications; if it supports " + expected +
               ", enable it in the firmware setup (Intel Virtualization Technology / SVM Mode) and power-cycle.",
           {}, "", "manual", false);
}

void firmware_enabled(const Facts& f, const Results& r, Finding& out) {
    if (!f.cpu.available) {
        set(out, Status::Unknown, "CPUID not available, so the vendor's MSR is unknown");
        return;
    }
    const auto d = cpuid::decode(f.cpu.dump);
    const CpuClass cls = cpu_class(d.vendor);
    auto& ev = out.evidence;
    ev["msr_source"] = f.msr.source;
    if (!d.vmx && !d.svm) {
        set(out, Status::Skip,
            status(r, ids::cpu_virt_extensions) == Status::Warn ? "no VT-x/AMD-V to enable (KVM here does not use them)"
                                                             : "no VT-x/AMD-V in CPUID to enable");
        return;
    }
    const bool intel = d.vmx && cls != CpuClass::Amd;
    const MsrReading& reading = intel ? f.msr.feature_control : f.msr.vm_cr;
    ev["msr"] = intel ? "IA32_FEATURE_CONTROL (0x3a)" : "VM_CR (0xc0010114)";
    if (reading.value) {
        const uint64_t v = *reading.value;
        ev["value"] = hex(v);
        if (intel) {
            const bool locked = v & 1, outside_smx = v & 4;
            ev["locked"] = locked;
            ev["vmx_outside_smx"] = outside_smx;
            if (locked && !outside_smx) {
                set(out, Status::Fail, fmt::format("VT-x is disabled and locked by the firmware (IA32_FEATURE_CONTROL={})", hex(v)));
                remedy(out,
                       "Enable \"Intel Virtualization Technology\" (VT-x) in the firmware setup, save, and power-cycle "
                       "(a warm reboot may keep the lock).",
                       {}, "", "manual", false);
            } else if (locked) {
                set(out, Status::Pass, fmt::format("VT-x is enabled and locked by the firmware (IA32_FEATURE_CONTROL={})", hex(v)));
            } else {
                set(out, Status::Pass,
                    fmt::format("IA32_FEATURE_CONTROL is unlocked ({}): kvm_intel enables VT-x itself when it loads", hex(v)));
            }
        } else {
            const bool svmdis = v & (1u << 4), lock = v & (1u << 3);
            ev["svmdis"] = svmdis;
            ev["locked"] = lock;
            if (svmdis) {
                set(out, Status::Fail, fmt::format("AMD-V (SVM) is disabled by the firmware (VM_CR={}, SVMDIS set)", hex(v)));
                remedy(out, "Enable \"SVM Mode\" in the firmware setup, save, and power-cycle.", {}, "", "manual", false);
            } else {
                set(out, Status::Pass, fmt::format("AMD-V (SVM) is enabled by the firmware (VM_CR={})", hex(v)));
            }
        }
        return;
    }
    ev["msr_error"] = reading.error;
    // Kernels since 5.6 clear `vmx` in /proc/cpuinfo when firmware locked
    // VT-x off; that is evidence from this host, but only when the CPUID
    // is this host's too.
    if (intel && f.cpu.cpuinfo_read && cpuid_is_this_host(f) && !has_flag(f.cpu.cpuinfo_flags, "vmx") &&
        !has_flag(f.cpu.cpuinfo_flags, "hypervisor")) {
        ev["basis"] = "CPUID has VMX but the kernel removed vmx from /proc/cpuinfo";
        set(out, Status::Fail, "VT-x is present in CPUID but the kernel reports it unusable: most likely disabled by the firmware");
        remedy(out, "Enable \"Intel Virtualization Technology\" in the firmware setup and power-cycle; `dmesg | grep -i vmx` shows "
                    "the kernel's reason.",
               {"dmesg | grep -i -e vmx -e 'disabled by bios'"}, "", "manual", true);
        return;
    }
    // Conversely, `vmx` plus a "vmx flags" line (kernels >= 5.8) appear only
    // when the firmware left VT-x usable.
    if (intel && f.cpu.cpuinfo_read && cpuid_is_this_host(f) && has_flag(f.cpu.cpuinfo_flags, "vmx") &&
        f.cpu.cpuinfo_has_vmx_flags_line) {
        ev["basis"] = "the kernel lists vmx and its \"vmx flags\" in /proc/cpuinfo, which it only does when VT-x is usable";
        set(out, Status::Pass, "VT-x is usable: the kernel enabled it (the firmware lock MSR itself is not readable here)");
        return;
    }
    set(out, Status::Unknown, "cannot read the firmware lock MSR: " + reading.error);
    remedy(out, "Run as root with the msr driver loaded to read it.", {"sudo modprobe msr && sudo kvmready check cpu.firmware-enabled"},
           "", "manual", true);
}

void ept_npt(const Facts& f, const Results&, Finding& out) {
    if (!f.cpu.available) {
        set(out, Status::Unknown, "CPUID not available");
        return;
    }
    const auto d = cpuid::decode(f.cpu.dump);
    if (d.svm) {
        const bool npt = std::find(d.svm_features.begin(), d.svm_features.end(), "npt") != d.svm_features.end();
        out.evidence["npt"] = npt;
        if (npt) set(out, Status::Pass, "AMD nested page tables (NPT/RVI) are available");
        else {
            set(out, Status::Warn, "no nested page tables (NPT): KVM falls back to slow shadow paging");
            remedy(out, "Guests run, but memory-heavy workloads will be slow; a CPU with NPT (any AMD since Barcelona) avoids it.",
                   {}, "", "manual", false);
        }
        return;
    }
    if (d.vmx) {
        // VMX sub-features live in MSRs; the kernel publishes them as
        // "vmx flags" in /proc/cpuinfo (5.8+).
        if (!f.cpu.cpuinfo_has_vmx_flags_line || !cpuid_is_this_host(f)) {
            set(out, Status::Unknown, "EPT support is published by kernels >= 5.8 as \"vmx flags\" in /proc/cpuinfo; not available here");
            return;
        }
        const bool ept = has_flag(f.cpu.cpuinfo_vmx_flags, "ept");
        const bool ug = has_flag(f.cpu.cpuinfo_vmx_flags, "unrestricted_guest");
        out.evidence["ept"] = ept;
        out.evidence["unrestricted_guest"] = ug;
        if (ept) set(out, Status::Pass, ug ? "EPT and unrestricted guest are available" : "EPT is available");
        else {
            set(out, Status::Warn, "no EPT: KVM falls back to slow shadow paging");
            remedy(out, "Guests run, but memory-heavy workloads will be slow; if EPT is disabled via kvm_intel ept=0, re-enable it.",
                   {"cat /sys/module/kvm_intel/parameters/ept"}, "", "manual", false);
        }
        return;
    }
    set(out, Status::Skip, "no VT-x/AMD-V in CPUID, so no EPT/NPT either");
}

}  // namespace

void register_cpu(std::vector<CheckSpec>& r) {
    r.push_back({ids::cpu_virt_extensions, "Hardware virtualization (VT-x / AMD-V) in CPUID", Level::Required, {},
                 "CPUID leaf 1 ECX bit 5 (VMX) and leaf 0x80000001 ECX bit 2 (SVM) of the live CPU or of --cpuid-dump; "
                 "the hypervisor bit (leaf 1 ECX bit 31) and signature (leaf 0x40000000); /proc/cpuinfo flags as evidence.",
                 "KVM's kvm_intel and kvm_amd modules need VT-x or AMD-V. /proc/cpuinfo is filtered by the kernel, so the "
                 "bit is read from CPUID itself. A host without them can still run KVM through a software flavour such as "
                 "kvm_pvm: then the functional test (kvm.api) decides, and this check warns what that means for guests.",
                 "Enable VT-x/AMD-V in the firmware setup; inside a VM, enable nested virtualization on the outer host.",
                 virt_extensions});
    r.push_back({ids::cpu_firmware_enabled, "Firmware has not locked virtualization off", Level::Recommended, {ids::cpu_virt_extensions},
                 "MSR IA32_FEATURE_CONTROL (0x3a: bit 0 lock, bit 2 VMX outside SMX) on Intel, VM_CR (0xc0010114: bit 4 "
                 "SVMDIS) on AMD, through /dev/cpu/0/msr (root, msr driver) or from a dump's MSR section; otherwise the "
                 "kernel's /proc/cpuinfo as evidence.",
                 "CPUs report VT-x/AMD-V in CPUID even when the firmware disabled it; the lock MSR is what decides "
                 "whether kvm_intel/kvm_amd can load (\"disabled by bios\").",
                 "Enable Intel Virtualization Technology / SVM Mode in the firmware setup and power-cycle.", firmware_enabled});
    r.push_back({ids::cpu_ept_npt, "Hardware-assisted paging (EPT / NPT)", Level::Recommended,
                 {ids::cpu_virt_extensions, ids::cpu_firmware_enabled},
                 "\"vmx flags\" in /proc/cpuinfo (ept, unrestricted_guest) on Intel; CPUID 0x8000000A EDX bit 0 (NPT) on AMD.",
                 "Without second-level address translation KVM uses shadow page tables, which costs guests a lot of "
                 "performance on memory-intensive work.",
                 "Use a CPU with EPT/NPT; make sure kvm_intel is not loaded with ept=0.", ept_npt});
}

}  // namespace kvmready::checks
