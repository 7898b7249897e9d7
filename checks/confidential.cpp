// confidential.*: AMD SEV and Intel TDX, for guests whose memory the host
// cannot read. Only confidential guests need them, so both are optional.
#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "checks/kernel_cmdline.hpp"

namespace kvmready::checks {

namespace {

using Json = nlohmann::ordered_json;

std::string join_params(const ModuleInfo& m, std::initializer_list<const char*> names) {
    std::vector<std::string> parts;
    for (const char* n : names)
        if (auto it = m.parameters.find(n); it != m.parameters.end()) parts.push_back(fmt::format("{}={}", n, it->second));
    return fmt::format("{}", fmt::join(parts, ", "));
}

// Both judge the CPU first: without its CPUID they can say nothing.
bool cpuid_unavailable(const Facts& f, Finding& out) {
    if (f.cpu.available) return false;
    set(out, Status::Unknown, "CPUID not available: " + f.cpu.unavailable_reason);
    remedy(out, "Re-run on the host itself.", {"kvmready check confidential"}, "", "manual", false);
    return true;
}

void sev(const Facts& f, const Results&, Finding& out) {
    auto& ev = out.evidence;
    if (cpuid_unavailable(f, out)) return;
    const auto d = cpuid::decode(f.cpu.dump);
    ev["vendor"] = d.vendor;
    if (cpu_class(d.vendor) != CpuClass::Amd) {
        set(out, Status::Skip, fmt::format("not an AMD CPU ({}): SEV is AMD's memory encryption", d.vendor));
        return;
    }
    ev["cpuid_8000001f"] = d.mem_encryption;
    bool leaf = false;
    uint32_t max_guests = 0, min_sev_asid = 0;
    if (d.max_extended >= 0x8000001fu)
        if (auto l = f.cpu.dump.find(0x8000001fu)) {
            leaf = true;
            max_guests = l->ecx;
            min_sev_asid = l->edx;  // ASIDs below this are for SEV-ES/SNP guests only
            ev["encrypted_guests_max"] = max_guests;
            ev["sev_es_min_asid"] = min_sev_asid;
        }
    auto has = [&](const char* x) { return std::find(d.mem_encryption.begin(), d.mem_encryption.end(), x) != d.mem_encryption.end(); };
    if (!has("sev")) {
        set(out, Status::Skip,
            leaf ? "this CPU does not offer SEV (CPUID 8000001Fh has no SEV bit)"
                 : d.hypervisor ? "no SEV: this virtual machine's CPU has no CPUID leaf 8000001Fh (hypervisors hide SEV from guests)"
                                : "this CPU does not offer SEV (no CPUID leaf 8000001Fh)");
        return;
    }
    const auto args = kernel_args(f.kernel.cmdline);
    if (auto v = arg_value(args, "mem_encrypt")) ev["cmdline_mem_encrypt"] = *v;
    const auto& cf = f.system.confidential;
    ev["dev_sev"] = cf.dev_sev;
    if (f.system.cgroups.misc_capacity) ev["misc_capacity"] = *f.system.cgroups.misc_capacity;
    if (this_host_cpu(f) && f.cpu.cpuinfo_read) {
        ev["cpuinfo_sev"] = has_flag(f.cpu.cpuinfo_flags, "sev");
        if (!has_flag(f.cpu.cpuinfo_flags, "sev")) {
            set(out, Status::Warn,
                "the CPU offers SEV (CPUID 8000001Fh) but the kernel removed it from /proc/cpuinfo: the firmware has not "
                "enabled memory encryption (SYSCFG MemEncryptionModeEn)");
            remedy(out,
                   "Enable SME/SEV in the firmware setup (\"SMEE\", \"SEV-ES ASID Space Limit\", and \"SEV-SNP\" on Zen 3 and "
                   "later), then reboot.",
                   {}, "", "manual", true);
            return;
        }
    }
    const ModuleInfo* kvm_amd = find_module(f, "kvm_amd");
    if (!kvm_amd) {
        set(out, Status::Skip, "the CPU offers SEV, but kvm_amd is not loaded (see kvm.module)");
        return;
    }
    auto param = [&](const char* n) -> std::optional<std::string> {
        auto it = kvm_amd->parameters.find(n);
        if (it == kvm_amd->parameters.end()) return std::nullopt;
        return it->second;
    };
    Json params = Json::object();
    for (const char* n : {"sev", "sev_es", "sev_snp"})
        if (auto v = param(n)) params[n] = *v;
    ev["kvm_amd"] = params;
    if (!param("sev")) {
        set(out, Status::Warn, "the CPU offers SEV but this kernel's kvm_amd was built without it (no 'sev' parameter, CONFIG_KVM_AMD_SEV)");
        remedy(out, "Boot a kernel with CONFIG_KVM_AMD_SEV, such as Debian's linux-image-amd64 (the cloud kernel lacks it).",
               {package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})}, "", "manual", true);
        return;
    }
    if (!param_on(*param("sev"))) {
        std::string msg = fmt::format("the CPU offers SEV but kvm_amd has it off ({})", join_params(*kvm_amd, {"sev", "sev_es", "sev_snp"}));
        if (auto v = arg_value(args, "kvm_amd.sev"); v && !param_on(*v)) {
            set(out, Status::Warn, msg + ", as kvm_amd.sev=" + *v + " on the kernel command line asks");
            CmdlinePlan p = remove_kernel_arg(f.system.boot, "kvm_amd.sev=" + *v);
            remedy(out, p.text, p.commands, "", "manual", true);
            return;
        }
        if (!cf.dev_sev) {
            set(out, Status::Warn,
                msg + "; /dev/sev is missing too, so the PSP's SEV firmware did not initialise (ccp driver not loaded, or firmware "
                      "support off)");
            remedy(out, "Load the PSP driver and then kvm_amd with SEV (no VM may run while kvm_amd reloads); dmesg names a firmware failure.",
                   {"modprobe ccp", "modprobe -r kvm_amd && modprobe kvm_amd sev=1 sev_es=1", "dmesg | grep -i -e ccp -e sev"},
                   "", "manual", true);
            return;
        }
        set(out, Status::Warn, msg);
        remedy(out, "Enable it for kvm_amd persistently and reload the module while no VM runs.",
               {"echo 'options kvm_amd sev=1 sev_es=1' > /etc/modprobe.d/kvm-sev.conf", "modprobe -r kvm_amd && modprobe kvm_amd"},
               "", "manual", true);
        return;
    }
    if (!cf.dev_sev) {
        set(out, Status::Warn,
            fmt::format("kvm_amd has SEV on ({}) but /dev/sev is missing: QEMU and libvirt need it to launch encrypted guests",
                        join_params(*kvm_amd, {"sev", "sev_es", "sev_snp"})));
        remedy(out, "Load the PSP driver that provides /dev/sev.", {"modprobe ccp", "ls -l /dev/sev"}, "", "manual", true);
        return;
    }
    std::string extra;
    if (has("sev_es") && param("sev_es") && !param_on(*param("sev_es")) && leaf && min_sev_asid <= 1)
        extra += "; SEV-ES is off because the firmware left no ASIDs for it (CPUID 8000001Fh EDX=1: raise the SEV-ES ASID "
                 "space limit in the firmware setup)";
    if (has("sev_snp") && (!param("sev_snp") || !param_on(*param("sev_snp"))))
        extra += param("sev_snp") ? "; SEV-SNP is offered by the CPU but off in kvm_amd (needs SNP enabled in firmware)"
                                 : "; SEV-SNP is offered by the CPU but this kernel predates KVM's SNP host support (Linux 6.11)";
    set(out, Status::Pass,
        fmt::format("SEV is available for guests: kvm_amd {}, /dev/sev present{}{}", join_params(*kvm_amd, {"sev", "sev_es", "sev_snp"}),
                    leaf ? fmt::format(", up to {} encrypted guests", max_guests) : "", extra));
}

bool td_guest(const Facts& f) {
    if (has_flag(f.cpu.cpuinfo_flags, "tdx_guest") && this_host_cpu(f)) return true;
    const auto d = cpuid::decode(f.cpu.dump);
    if (d.max_basic < 0x21) return false;
    auto l = f.cpu.dump.find(0x21);
    if (!l) return false;
    // "IntelTDX    " in EBX, EDX, ECX order, as leaf 0 spells the vendor.
    auto put = [](std::string& s, uint32_t r) {
        for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((r >> (8 * i)) & 0xff));
    };
    std::string sig;
    put(sig, l->ebx);
    put(sig, l->edx);
    put(sig, l->ecx);
    return sig == "IntelTDX    ";
}

void tdx(const Facts& f, const Results&, Finding& out) {
    auto& ev = out.evidence;
    if (cpuid_unavailable(f, out)) return;
    const auto d = cpuid::decode(f.cpu.dump);
    ev["vendor"] = d.vendor;
    if (cpu_class(d.vendor) != CpuClass::Intel || d.vendor != "GenuineIntel") {
        set(out, Status::Skip, fmt::format("not an Intel CPU ({}): TDX is Intel's", d.vendor));
        return;
    }
    ev["read"] = "kvm_intel parameters, /proc/cpuinfo flags, CPUID leaf 21h, /sys/firmware/tdx (the kernel log, where the TDX "
                 "module reports itself, is not read)";
    if (td_guest(f)) {
        ev["td_guest"] = true;
        set(out, Status::Skip, "this system is itself a TDX trust domain (CPUID leaf 21h \"IntelTDX    \"); it cannot host trust domains");
        return;
    }
    const bool platform = this_host_cpu(f) && has_flag(f.cpu.cpuinfo_flags, "tdx_host_platform");
    ev["cpuinfo_tdx_host_platform"] = platform;
    ev["sys_firmware_tdx"] = f.system.confidential.sys_firmware_tdx;
    const ModuleInfo* kvm_intel = find_module(f, "kvm_intel");
    if (!kvm_intel) {
        set(out, Status::Skip, "kvm_intel is not loaded (see kvm.module), so KVM's TDX support cannot be judged");
        return;
    }
    auto it = kvm_intel->parameters.find("tdx");
    if (it == kvm_intel->parameters.end()) {
        set(out, Status::Skip,
            fmt::format("kvm_intel has no 'tdx' parameter: this kernel{} predates KVM's TDX host support (Linux 6.16) or lacks "
                        "CONFIG_KVM_INTEL_TDX{}",
                        f.kernel.release.empty() ? "" : " (" + f.kernel.release + ")",
                        platform ? ", although the firmware has TDX on (tdx_host_platform)" : ""));
        if (platform) {
            out.status = Status::Warn;
            remedy(out, "Boot a kernel with KVM TDX host support (6.16 or later, CONFIG_KVM_INTEL_TDX).", {}, "", "manual", true);
        }
        return;
    }
    ev["kvm_intel_tdx"] = it->second;
    if (param_on(it->second)) {
        set(out, Status::Pass, fmt::format("TDX is enabled in KVM (kvm_intel tdx={}): trust domains can be created", it->second));
        return;
    }
    if (!platform) {
        set(out, Status::Skip,
            fmt::format("TDX is off (kvm_intel tdx={}) and the kernel found no TDX in the firmware (no tdx_host_platform flag); "
                        "only some Xeon processors (4th generation and later) have it",
                        it->second));
        return;
    }
    set(out, Status::Warn, fmt::format("the firmware has TDX on (tdx_host_platform) but KVM does not use it (kvm_intel tdx={})", it->second));
    remedy(out, "Enable TDX in kvm_intel persistently and reload it while no VM runs (or add kvm_intel.tdx=1 to the kernel command line).",
           {"echo 'options kvm_intel tdx=1' > /etc/modprobe.d/kvm-tdx.conf", "modprobe -r kvm_intel && modprobe kvm_intel"},
           "", "manual", true);
}

}  // namespace

void register_confidential(std::vector<CheckSpec>& r) {
    r.push_back({ids::confidential_sev, "AMD SEV encrypted guests", Level::Optional, {},
                 "CPUID 8000001Fh (SME, SEV, SEV-ES, SEV-SNP bits, encrypted guest count), the sev flag in /proc/cpuinfo (the "
                 "kernel clears it when firmware leaves memory encryption off), kvm_amd's sev, sev_es, sev_snp parameters, "
                 "/dev/sev, misc.capacity of the unified cgroup, mem_encrypt= and kvm_amd.sev= in /proc/cmdline.",
                 "SEV encrypts each guest's memory with its own key so the host cannot read it; it needs the CPU, the firmware "
                 "(SMEE and the ASID split), the PSP firmware (/dev/sev) and kvm_amd to agree. Only confidential guests need it.",
                 "Enable SME/SEV(-ES/-SNP) in the firmware setup, load ccp, and kvm_amd with sev=1 sev_es=1.",
                 sev});
    r.push_back({ids::confidential_tdx, "Intel TDX trust domains", Level::Optional, {},
                 "kvm_intel's tdx parameter, the tdx_host_platform and tdx_guest flags in /proc/cpuinfo, CPUID leaf 21h (a trust "
                 "domain sees \"IntelTDX    \"), /sys/firmware/tdx. The kernel log, where the TDX module reports its "
                 "initialisation, is not read.",
                 "TDX runs guests as trust domains whose memory and registers the host cannot read; it needs a TDX-capable Xeon, "
                 "TME-MK and TDX enabled in the firmware with the TDX module loaded, and a kernel whose kvm_intel has tdx=1 "
                 "(Linux 6.16+). Only confidential guests need it.",
                 "Enable TME, TME-MK and TDX in the firmware setup, boot Linux 6.16 or later, and load kvm_intel with tdx=1.",
                 tdx});
}

}  // namespace kvmready::checks
