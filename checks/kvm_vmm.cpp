// kvm.* beyond "it opens": what real VMMs ask KVM for before a guest runs.
// kvm.api stays the required ground truth; these checks say whether
// Firecracker, cloud-hypervisor and QEMU will start, which CPU features
// guests can get, and whether `-cpu host` survives vCPU creation. The facts
// are the raw answers of the ioctl pass (host/kvm_probe.cpp); all decoding
// happens here.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <optional>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "util/text.hpp"

namespace kvmready::checks {

namespace {

// ---------------------------------------------------------------------------
// Shared

// Common preamble: the VMM pass must have run. Returns false after setting
// the finding when it did not.
bool need_vmm_facts(const Facts& f, Finding& out) {
    const auto& k = f.kvm;
    if (!k.attempted) {
        set(out, Status::Unknown, "the /dev/kvm ioctl test did not run: " + k.not_attempted_reason);
        remedy(out, "Run kvmready on the host itself, as a user who may open /dev/kvm.", {"kvmready check kvm"}, "", "manual", false);
        return false;
    }
    if (!k.vmm_probed) {
        set(out, Status::Unknown,
            k.open_errno || k.api_version != 12 ? "/dev/kvm could not be queried (see kvm.api)"
                                                : "this recording predates kvmready's VMM-level KVM probe; record the host again");
        remedy(out, "Record the host with this kvmready version.", {"kvmready check --record DIR"}, "", "manual", false);
        return false;
    }
    return true;
}

// system_caps when the VMM pass ran; the older kvm.api map otherwise (it has
// vm_types and nested_state too, so old recordings still answer those).
std::optional<int> cap(const host::KvmProbe& k, const std::string& name) {
    if (auto it = k.system_caps.find(name); it != k.system_caps.end()) return it->second;
    if (auto it = k.capabilities.find(name); it != k.capabilities.end()) return it->second;
    return std::nullopt;
}

std::string upper_cap(const std::string& name) {
    std::string s = "KVM_CAP_" + name;
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return s;
}

using util::join;

// "a, b, c and 12 more"
std::string head_list(const std::vector<std::string>& v, size_t n) {
    if (v.size() <= n) return join(v, ", ");
    std::vector<std::string> h(v.begin(), v.begin() + static_cast<long>(n));
    return fmt::format("{} and {} more", join(h, ", "), v.size() - n);
}

// ---------------------------------------------------------------------------
// kvm.vmm-capabilities

struct VmmRequirement {
    const char* vmm;
    const char* source;            // where the list lives upstream
    std::vector<const char*> caps; // names as in KvmProbe::system_caps
};

// Lists read from the VMMs' sources (x86_64; each checks them with
// KVM_CHECK_EXTENSION on the /dev/kvm fd and refuses to start without one):
//  - Firecracker: src/vmm/src/arch/x86_64/kvm.rs, Kvm::DEFAULT_CAPABILITIES,
//    checked in src/vmm/src/vstate/kvm.rs Kvm::check_capabilities.
//  - cloud-hypervisor: hypervisor/src/kvm/x86_64/mod.rs,
//    check_required_kvm_extensions (called from vmm/src/vm.rs).
//  - QEMU: accel/kvm/kvm-all.c kvm_required_capabilites plus
//    target/i386/kvm/kvm.c kvm_arch_required_capabilities (current master;
//    older releases check a subset).
const std::vector<VmmRequirement>& vmm_requirements() {
    static const std::vector<VmmRequirement> r = {
        {"Firecracker", "src/vmm/src/arch/x86_64/kvm.rs",
         {"irqchip", "ioeventfd", "irqfd", "user_memory", "set_tss_addr", "pit2", "pit_state2", "adjust_clock", "debugregs",
          "mp_state", "vcpu_events", "xcrs", "xsave", "ext_cpuid"}},
        {"cloud-hypervisor", "hypervisor/src/kvm/x86_64/mod.rs",
         {"adjust_clock", "ext_cpuid", "get_tsc_khz", "immediate_exit", "ioeventfd", "irqchip", "irqfd", "irq_routing", "mp_state",
          "set_identity_map_addr", "set_tss_addr", "split_irqchip", "tsc_deadline_timer", "user_memory", "user_nmi", "vcpu_events",
          "xsave"}},
        {"QEMU", "accel/kvm/kvm-all.c, target/i386/kvm/kvm.c",
         {"user_memory", "destroy_memory_region_works", "join_memory_regions_works", "internal_error_data", "ioeventfd",
          "ioeventfd_any_length", "set_tss_addr", "ext_cpuid", "mp_state", "signal_msi", "irq_routing", "debugregs", "xsave",
          "vcpu_events", "x86_robust_singlestep", "mce", "adjust_clock", "set_identity_map_addr"}},
    };
    return r;
}

void vmm_capabilities(const Facts& f, const Results& r, Finding& out) {
    if (!need_vmm_facts(f, out)) return;
    const auto& k = f.kvm;
    auto& ev = out.evidence;
    const bool have_vm = !k.vm_caps.empty();
    std::vector<std::string> broken;       // "Firecracker (KVM_CAP_A, KVM_CAP_B)"
    std::vector<std::string> ok;
    for (const auto& req : vmm_requirements()) {
        std::vector<std::string> missing, vm_missing, unknown;
        for (const char* c : req.caps) {
            auto it = k.system_caps.find(c);
            if (it == k.system_caps.end()) {
                unknown.push_back(upper_cap(c));
                continue;
            }
            if (it->second <= 0) {
                missing.push_back(upper_cap(c));
                continue;
            }
            // The VMM's startup check passes on /dev/kvm, but the VM it
            // creates is what must have the capability.
            if (have_vm) {
                auto v = k.vm_caps.find(c);
                if (v != k.vm_caps.end() && v->second <= 0) vm_missing.push_back(upper_cap(c));
            }
        }
        nlohmann::ordered_json j;
        j["source"] = req.source;
        j["required"] = req.caps.size();
        j["missing"] = missing;
        if (!vm_missing.empty()) j["missing_on_vm_fd"] = vm_missing;
        if (!unknown.empty()) j["not_probed"] = unknown;
        ev["vmms"][req.vmm] = j;
        std::vector<std::string> all = missing;
        all.insert(all.end(), vm_missing.begin(), vm_missing.end());
        if (!all.empty()) broken.push_back(fmt::format("{} lacks {}", req.vmm, join(all, ", ")));
        else if (unknown.empty()) ok.push_back(req.vmm);
    }
    ev["vm_fd_checked"] = have_vm;
    // cloud-hypervisor enables KVM_CAP_X2APIC_API (and panics without it)
    // only for guests with APIC IDs above 254 (vmm/src/vm.rs).
    if (auto x = cap(k, "x2apic_api")) ev["x2apic_api"] = *x;
    if (!broken.empty()) {
        set(out, Status::Warn, fmt::format("{}: {} refuses to start on this KVM", join(broken, "; "), broken.size() == 1 ? "it" : "each"));
        remedy(out,
               is_pvm(r.derived()) ? "kvm_pvm implements a subset of KVM's API; these VMMs need kvm_intel or kvm_amd on a host with VT-x/AMD-V."
                         : "These capabilities come with the kernel's KVM: boot a newer distribution kernel (with kvm_intel/kvm_amd).",
               {}, "", "manual", true);
        return;
    }
    if (ok.size() != vmm_requirements().size()) {
        set(out, Status::Unknown, "some capabilities the VMMs require were not probed (recording from an older kvmready)");
        remedy(out, "Record the host again with this kvmready version.", {"kvmready check --record DIR"}, "", "manual", false);
        return;
    }
    set(out, Status::Pass, fmt::format("KVM offers every capability {} check for at startup{}",
                                       ok.size() > 1 ? join({ok.begin(), ok.end() - 1}, ", ") + " and " + ok.back() : join(ok, ", "),
                                       have_vm ? " (on /dev/kvm and on a VM)" : ""));
}

// ---------------------------------------------------------------------------
// kvm.guest-cpuid

enum Reg { EAX, EBX, ECX, EDX };

struct Feature {
    uint32_t leaf, subleaf;
    Reg reg;
    unsigned bit;
    const char* name;       // as in /proc/cpuinfo where the kernel names it
    const char* cpuinfo;    // cpuinfo flag for the host fallback, "" if none
    bool kvm_synthesised;   // KVM offers it whatever the host has (emulated or derived)
};

// Instruction-set and platform features a guest OS or its programs use, and
// that KVM passes through when the host has them (arch/x86/kvm/cpuid.c,
// kvm_set_cpu_caps). Left out on purpose: bits KVM never gives guests by
// design (monitor, ds, est, tm, ht, pdcm, perf/debug/power features), bits the
// guest OS sets itself (osxsave, ospke), nested VMX/SVM (kvm.nested), MPX
// (deprecated) and SGX.
const std::vector<Feature>& features() {
    static const std::vector<Feature> t = {
        // CPUID.1:EDX
        {1, 0, EDX, 0, "fpu", "fpu", false}, {1, 0, EDX, 1, "vme", "vme", false}, {1, 0, EDX, 2, "de", "de", false},
        {1, 0, EDX, 3, "pse", "pse", false}, {1, 0, EDX, 4, "tsc", "tsc", false}, {1, 0, EDX, 5, "msr", "msr", false},
        {1, 0, EDX, 6, "pae", "pae", false}, {1, 0, EDX, 7, "mce", "mce", false}, {1, 0, EDX, 8, "cx8", "cx8", false},
        {1, 0, EDX, 9, "apic", "apic", false}, {1, 0, EDX, 11, "sep", "sep", false}, {1, 0, EDX, 12, "mtrr", "mtrr", false},
        {1, 0, EDX, 13, "pge", "pge", false}, {1, 0, EDX, 14, "mca", "mca", false}, {1, 0, EDX, 15, "cmov", "cmov", false},
        {1, 0, EDX, 16, "pat", "pat", false}, {1, 0, EDX, 17, "pse36", "pse36", false}, {1, 0, EDX, 19, "clflush", "clflush", false},
        {1, 0, EDX, 23, "mmx", "mmx", false}, {1, 0, EDX, 24, "fxsr", "fxsr", false}, {1, 0, EDX, 25, "sse", "sse", false},
        {1, 0, EDX, 26, "sse2", "sse2", false}, {1, 0, EDX, 27, "ss", "ss", false},
        // CPUID.1:ECX
        {1, 0, ECX, 0, "sse3", "pni", false}, {1, 0, ECX, 1, "pclmulqdq", "pclmulqdq", false},
        {1, 0, ECX, 9, "ssse3", "ssse3", false}, {1, 0, ECX, 12, "fma", "fma", false}, {1, 0, ECX, 13, "cx16", "cx16", false},
        {1, 0, ECX, 17, "pcid", "pcid", false}, {1, 0, ECX, 19, "sse4_1", "sse4_1", false},
        {1, 0, ECX, 20, "sse4_2", "sse4_2", false}, {1, 0, ECX, 21, "x2apic", "x2apic", true},
        {1, 0, ECX, 22, "movbe", "movbe", false}, {1, 0, ECX, 23, "popcnt", "popcnt", false},
        {1, 0, ECX, 24, "tsc_deadline_timer", "tsc_deadline_timer", true}, {1, 0, ECX, 25, "aes", "aes", false},
        {1, 0, ECX, 26, "xsave", "xsave", false}, {1, 0, ECX, 28, "avx", "avx", false}, {1, 0, ECX, 29, "f16c", "f16c", false},
        {1, 0, ECX, 30, "rdrand", "rdrand", false},
        // CPUID.7.0:EBX
        {7, 0, EBX, 0, "fsgsbase", "fsgsbase", false}, {7, 0, EBX, 1, "tsc_adjust", "tsc_adjust", true},
        {7, 0, EBX, 3, "bmi1", "bmi1", false}, {7, 0, EBX, 4, "hle", "hle", false}, {7, 0, EBX, 5, "avx2", "avx2", false},
        {7, 0, EBX, 7, "smep", "smep", false}, {7, 0, EBX, 8, "bmi2", "bmi2", false}, {7, 0, EBX, 9, "erms", "erms", false},
        {7, 0, EBX, 10, "invpcid", "invpcid", false}, {7, 0, EBX, 11, "rtm", "rtm", false},
        {7, 0, EBX, 16, "avx512f", "avx512f", false}, {7, 0, EBX, 17, "avx512dq", "avx512dq", false},
        {7, 0, EBX, 18, "rdseed", "rdseed", false}, {7, 0, EBX, 19, "adx", "adx", false}, {7, 0, EBX, 20, "smap", "smap", false},
        {7, 0, EBX, 21, "avx512ifma", "avx512ifma", false}, {7, 0, EBX, 23, "clflushopt", "clflushopt", false},
        {7, 0, EBX, 24, "clwb", "clwb", false}, {7, 0, EBX, 26, "avx512pf", "avx512pf", false},
        {7, 0, EBX, 27, "avx512er", "avx512er", false}, {7, 0, EBX, 28, "avx512cd", "avx512cd", false},
        {7, 0, EBX, 29, "sha_ni", "sha_ni", false}, {7, 0, EBX, 30, "avx512bw", "avx512bw", false},
        {7, 0, EBX, 31, "avx512vl", "avx512vl", false},
        // CPUID.7.0:ECX
        {7, 0, ECX, 1, "avx512vbmi", "avx512vbmi", false}, {7, 0, ECX, 2, "umip", "umip", true},
        {7, 0, ECX, 3, "pku", "pku", false}, {7, 0, ECX, 5, "waitpkg", "waitpkg", false},
        {7, 0, ECX, 6, "avx512_vbmi2", "avx512_vbmi2", false}, {7, 0, ECX, 8, "gfni", "gfni", false},
        {7, 0, ECX, 9, "vaes", "vaes", false}, {7, 0, ECX, 10, "vpclmulqdq", "vpclmulqdq", false},
        {7, 0, ECX, 11, "avx512_vnni", "avx512_vnni", false}, {7, 0, ECX, 12, "avx512_bitalg", "avx512_bitalg", false},
        {7, 0, ECX, 14, "avx512_vpopcntdq", "avx512_vpopcntdq", false}, {7, 0, ECX, 16, "la57", "la57", false},
        {7, 0, ECX, 22, "rdpid", "rdpid", false}, {7, 0, ECX, 25, "cldemote", "cldemote", false},
        {7, 0, ECX, 27, "movdiri", "movdiri", false}, {7, 0, ECX, 28, "movdir64b", "movdir64b", false},
        // CPUID.7.0:EDX
        {7, 0, EDX, 2, "avx512_4vnniw", "avx512_4vnniw", false}, {7, 0, EDX, 3, "avx512_4fmaps", "avx512_4fmaps", false},
        {7, 0, EDX, 4, "fsrm", "fsrm", false}, {7, 0, EDX, 8, "avx512_vp2intersect", "avx512_vp2intersect", false},
        {7, 0, EDX, 10, "md_clear", "md_clear", false}, {7, 0, EDX, 14, "serialize", "serialize", false},
        {7, 0, EDX, 16, "tsxldtrk", "tsxldtrk", false}, {7, 0, EDX, 22, "amx_bf16", "amx_bf16", false},
        {7, 0, EDX, 23, "avx512_fp16", "avx512_fp16", false}, {7, 0, EDX, 24, "amx_tile", "amx_tile", false},
        {7, 0, EDX, 25, "amx_int8", "amx_int8", false}, {7, 0, EDX, 26, "spec_ctrl", "", true},
        {7, 0, EDX, 27, "intel_stibp", "", true}, {7, 0, EDX, 28, "flush_l1d", "flush_l1d", false},
        {7, 0, EDX, 29, "arch_capabilities", "arch_capabilities", true}, {7, 0, EDX, 31, "spec_ctrl_ssbd", "", true},
        // CPUID.7.1:EAX / EDX
        {7, 1, EAX, 4, "avx_vnni", "avx_vnni", false}, {7, 1, EAX, 5, "avx512_bf16", "avx512_bf16", false},
        {7, 1, EAX, 7, "cmpccxadd", "cmpccxadd", false}, {7, 1, EAX, 10, "fzrm", "fzrm", false},
        {7, 1, EAX, 11, "fsrs", "fsrs", false}, {7, 1, EAX, 12, "fsrc", "fsrc", false},
        {7, 1, EAX, 21, "amx_fp16", "amx_fp16", false}, {7, 1, EAX, 23, "avx_ifma", "avx_ifma", false},
        {7, 1, EDX, 4, "avx_vnni_int8", "avx_vnni_int8", false}, {7, 1, EDX, 5, "avx_ne_convert", "avx_ne_convert", false},
        // CPUID.0xD.1:EAX (XSAVE instructions)
        {0xd, 1, EAX, 0, "xsaveopt", "xsaveopt", false}, {0xd, 1, EAX, 1, "xsavec", "xsavec", false},
        {0xd, 1, EAX, 2, "xgetbv1", "xgetbv1", false}, {0xd, 1, EAX, 3, "xsaves", "xsaves", false},
        // CPUID.0x80000001:ECX
        {0x80000001, 0, ECX, 0, "lahf_lm", "lahf_lm", false}, {0x80000001, 0, ECX, 4, "cr8_legacy", "cr8_legacy", false},
        {0x80000001, 0, ECX, 5, "abm", "abm", false}, {0x80000001, 0, ECX, 6, "sse4a", "sse4a", false},
        {0x80000001, 0, ECX, 7, "misalignsse", "misalignsse", false},
        {0x80000001, 0, ECX, 8, "3dnowprefetch", "3dnowprefetch", false}, {0x80000001, 0, ECX, 11, "xop", "xop", false},
        {0x80000001, 0, ECX, 16, "fma4", "fma4", false}, {0x80000001, 0, ECX, 21, "tbm", "tbm", false},
        {0x80000001, 0, ECX, 22, "topoext", "topoext", false},
        // CPUID.0x80000001:EDX
        {0x80000001, 0, EDX, 11, "syscall", "syscall", false}, {0x80000001, 0, EDX, 20, "nx", "nx", false},
        {0x80000001, 0, EDX, 22, "mmxext", "mmxext", false}, {0x80000001, 0, EDX, 25, "fxsr_opt", "fxsr_opt", false},
        {0x80000001, 0, EDX, 26, "pdpe1gb", "pdpe1gb", false}, {0x80000001, 0, EDX, 27, "rdtscp", "rdtscp", false},
        {0x80000001, 0, EDX, 29, "lm", "lm", false}, {0x80000001, 0, EDX, 30, "3dnowext", "3dnowext", false},
        {0x80000001, 0, EDX, 31, "3dnow", "3dnow", false},
    };
    return t;
}

// x86-64 psABI micro-architecture levels (what distributions build for:
// RHEL 9 needs v2, RHEL 10 v3). "abm" is LZCNT; v3's OSXSAVE is the OS's.
const std::vector<std::pair<const char*, std::vector<const char*>>>& levels() {
    static const std::vector<std::pair<const char*, std::vector<const char*>>> l = {
        {"x86-64-v1", {"lm", "cmov", "cx8", "fpu", "fxsr", "mmx", "syscall", "sse", "sse2"}},
        {"x86-64-v2", {"sse3", "ssse3", "sse4_1", "sse4_2", "popcnt", "cx16", "lahf_lm"}},
        {"x86-64-v3", {"avx", "avx2", "bmi1", "bmi2", "fma", "f16c", "movbe", "abm", "xsave"}},
        {"x86-64-v4", {"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"}},
    };
    return l;
}

// User-state XSAVE components (XCR0 bits) by name; MPX (3, 4) left out as above.
constexpr std::pair<unsigned, const char*> kXsaveComponents[] = {
    {0, "x87"}, {1, "sse"}, {2, "avx"}, {5, "avx512_opmask"}, {6, "avx512_zmm_hi256"}, {7, "avx512_hi16_zmm"},
    {9, "pkru"}, {17, "amx_tilecfg"}, {18, "amx_tiledata"}, {19, "apx"},
};

uint32_t reg_of(uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx, Reg r) {
    switch (r) {
    case EAX: return eax;
    case EBX: return ebx;
    case ECX: return ecx;
    case EDX: return edx;
    }
    return 0;
}

const host::KvmCpuidEntry* supported_entry(const host::KvmProbe& k, uint32_t leaf, uint32_t sub) {
    for (const auto& e : k.supported_cpuid)
        if (e.function == leaf && e.index == sub) return &e;
    // Leaves without subleaves (flags lack KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
    // answer any subleaf.
    for (const auto& e : k.supported_cpuid)
        if (e.function == leaf && !(e.flags & 1)) return &e;
    return nullptr;
}

struct HostView {
    const cpuid::Dump& dump;
    const std::vector<std::string>* cpuinfo;  // fallback for leaves the live probe did not read
    uint32_t max_basic = 0, max_ext = 0;
    bool used_cpuinfo = false;

    // nullopt: cannot tell.
    std::optional<bool> has(const Feature& ft) {
        const bool ext = ft.leaf >= 0x80000000u;
        if ((ext ? max_ext : max_basic) < ft.leaf) return false;  // the CPU has no such leaf
        if (auto l = dump.find(ft.leaf, ft.subleaf)) return (reg_of(l->eax, l->ebx, l->ecx, l->edx, ft.reg) >> ft.bit) & 1;
        if (ft.leaf == 7 && ft.subleaf > 0) {
            // 7.n exists only up to 7.0:EAX.
            if (auto l0 = dump.find(7, 0); l0 && l0->eax < ft.subleaf) return false;
        }
        if (cpuinfo && *ft.cpuinfo) {
            used_cpuinfo = true;
            return std::find(cpuinfo->begin(), cpuinfo->end(), ft.cpuinfo) != cpuinfo->end();
        }
        return std::nullopt;
    }
};

std::string level_of(const std::vector<std::string>& have) {
    std::string got = "below x86-64-v1";
    for (const auto& [name, req] : levels()) {
        for (const char* r : req)
            if (std::find(have.begin(), have.end(), r) == have.end()) return got;
        got = name;
    }
    return got;
}

std::string leaf_key(const Feature& ft) {
    static const char* regs[] = {"EAX", "EBX", "ECX", "EDX"};
    if (ft.leaf == 7 || ft.leaf == 0xd) return fmt::format("CPUID.{:X}.{}:{}", ft.leaf, ft.subleaf, regs[ft.reg]);
    return fmt::format("CPUID.{:X}:{}", ft.leaf, regs[ft.reg]);
}

// Kernel parameters that hide CPU features from the host kernel and thereby
// from KVM's guests.
std::vector<std::string> hiding_params(const std::string& cmdline) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < cmdline.size()) {
        size_t end = cmdline.find(' ', pos);
        if (end == std::string::npos) end = cmdline.size();
        std::string w = cmdline.substr(pos, end - pos);
        if (w.rfind("clearcpuid=", 0) == 0 || w == "noxsave" || w == "noxsaveopt" || w == "noxsaves" || w == "nopku" ||
            w == "tsx=off" || w == "nosmep" || w == "nosmap" || w == "noinvpcid" || w == "nopcid")
            out.push_back(w);
        pos = end + 1;
    }
    return out;
}

// XSAVE components: what a guest may enable in XCR0 (including AMX,
// which a VMM must first request) against what the host CPU supports.
struct XsaveComparison {
    std::optional<uint64_t> host_xcr0;  // none when CPUID leaf 0xD was not read
    uint64_t guest_xcr0 = 0;
    std::vector<std::string> missing;   // components the host has and guests may not enable
};

XsaveComparison compare_xsave(const Facts& f) {
    const auto& k = f.kvm;
    XsaveComparison x;
    if (auto d = f.cpu.dump.find(0xd, 0)) x.host_xcr0 = d->eax | (uint64_t{d->edx} << 32);
    if (k.xcomp_guest_supp_errno == 0) x.guest_xcr0 = k.xcomp_guest_supp;
    else if (const auto* e = supported_entry(k, 0xd, 0)) x.guest_xcr0 = e->eax | (uint64_t{e->edx} << 32);
    if (x.host_xcr0) {
        for (const auto& [bit, name] : kXsaveComponents)
            if ((*x.host_xcr0 >> bit & 1) && !(x.guest_xcr0 >> bit & 1)) x.missing.emplace_back(name);
    }
    return x;
}

void guest_cpuid(const Facts& f, const Results& r, Finding& out) {
    if (!need_vmm_facts(f, out)) return;
    const auto& k = f.kvm;
    auto& ev = out.evidence;
    if (k.supported_cpuid_errno != 0 || k.supported_cpuid.empty()) {
        set(out, Status::Unknown,
            "KVM_GET_SUPPORTED_CPUID failed: " + (k.supported_cpuid_errno ? errno_text(k.supported_cpuid_errno) : "no entries"));
        remedy(out, "The kernel log may say why.", {"dmesg | grep -i kvm | tail"}, "", "manual", true);
        return;
    }
    if (!cpuid_is_this_host(f)) {
        set(out, Status::Unknown, fmt::format("the CPU facts come from {}, not from this host, so they cannot be compared with what "
                                              "this host's KVM offers",
                                              f.cpu.source));
        remedy(out, "Run without --cpuid-dump to compare the host's own CPU.", {"kvmready check kvm.guest-cpuid"}, "", "manual", false);
        return;
    }
    if (!f.cpu.available && !f.cpu.cpuinfo_read) {
        set(out, Status::Unknown, "the host's CPUID was not read: " + f.cpu.unavailable_reason);
        remedy(out, "Record the host with its CPUID.", {"kvmready check --record DIR"}, "", "manual", false);
        return;
    }
    HostView host{f.cpu.dump, f.cpu.cpuinfo_read ? &f.cpu.cpuinfo_flags : nullptr};
    if (auto l = f.cpu.dump.find(0)) host.max_basic = l->eax;
    else host.max_basic = 0xffffffffu;  // unknown: let has() fall back
    if (auto l = f.cpu.dump.find(0x80000000)) host.max_ext = l->eax >= 0x80000000u ? l->eax : 0;
    else host.max_ext = 0xffffffffu;

    std::vector<std::string> host_have, guest_have, missing, not_compared;
    nlohmann::ordered_json by_leaf = nlohmann::ordered_json::object();
    for (const auto& ft : features()) {
        const auto* e = supported_entry(k, ft.leaf, ft.subleaf);
        const bool guest = e && ((reg_of(e->eax, e->ebx, e->ecx, e->edx, ft.reg) >> ft.bit) & 1);
        if (guest) guest_have.emplace_back(ft.name);
        const auto h = host.has(ft);
        if (!h) {
            if (!guest) not_compared.emplace_back(ft.name);
            continue;
        }
        if (*h) host_have.emplace_back(ft.name);
        if (*h && !guest) {
            missing.emplace_back(ft.name);
            by_leaf[leaf_key(ft)].push_back(ft.name);
        }
    }
    const std::string host_level = level_of(host_have), guest_level = level_of(guest_have);

    const auto [host_xcr0, guest_xcr0, xsave_missing] = compare_xsave(f);

    ev["host_level"] = host_level;
    ev["guest_level"] = guest_level;
    ev["missing"] = by_leaf;
    if (host_xcr0) {
        ev["xsave_host"] = hex(*host_xcr0);
        ev["xsave_guest"] = hex(guest_xcr0);
        ev["xsave_missing"] = xsave_missing;
    } else {
        ev["xsave_host"] = "not read (CPUID leaf 0xD is not in the host's CPUID data)";
    }
    ev["guest_features"] = guest_have.size();
    ev["host_features"] = host_have.size();
    ev["host_source"] = host.used_cpuinfo ? "CPUID, and /proc/cpuinfo for leaves not read" : "CPUID";
    if (!not_compared.empty()) ev["not_compared"] = not_compared;
    const auto params = hiding_params(f.kernel.cmdline);
    if (!params.empty()) ev["kernel_parameters"] = params;

    std::vector<std::string> all_missing = missing;
    for (const auto& x : xsave_missing) all_missing.push_back("xsave:" + x);
    if (all_missing.empty()) {
        set(out, Status::Pass, fmt::format("guests can get all {} host CPU features kvmready compares ({}{})", host_have.size(),
                                           guest_level, host_xcr0 ? ", all XSAVE components" : ""));
        return;
    }
    const bool level_drop = guest_level != host_level;
    if (!level_drop) {
        set(out, Status::Pass, fmt::format("guests get {} like the host; KVM does not offer {} host feature{}: {}", guest_level,
                                           all_missing.size(), all_missing.size() == 1 ? "" : "s", head_list(all_missing, 8)));
        return;
    }
    // Name the features that cost the levels, level by level: those are
    // what an OS build refuses to run without.
    std::vector<std::string> parts;
    size_t named = 0;
    for (const auto& [name, req] : levels()) {
        std::vector<std::string> lost;
        for (const char* r : req)
            if (std::find(missing.begin(), missing.end(), r) != missing.end()) lost.emplace_back(r);
        if (lost.empty()) continue;
        named += lost.size();
        parts.push_back(fmt::format("{} ({})", join(lost, ", "), std::string(name).substr(std::string(name).rfind('-') + 1)));
    }
    set(out, Status::Warn,
        fmt::format("guests get only {} on this {} CPU: KVM withholds {} of its features: {}{}", guest_level, host_level,
                    all_missing.size(), join(parts, "; "),
                    all_missing.size() > named ? fmt::format(" and {} more", all_missing.size() - named) : ""));
    if (is_pvm(r.derived())) {
        remedy(out,
               "kvm_pvm gives guests only the CPU features its software virtualization handles; guests built for x86-64-v2 or "
               "later (RHEL 9 and newer) need kvm_intel/kvm_amd on a host with VT-x/AMD-V.",
               {}, "", "manual", false);
    } else if (!params.empty()) {
        remedy(out, fmt::format("The kernel command line hides CPU features from the kernel and so from KVM ({}): remove it and reboot.",
                                join(params, " ")),
               {"grep -n GRUB_CMDLINE_LINUX /etc/default/grub", "update-grub"}, "", "manual", true);
    } else {
        remedy(out, "KVM withholds features this kernel cannot virtualize: a newer kernel may offer them; check dmesg for KVM messages.",
               {"dmesg | grep -i kvm | tail"}, "", "manual", true);
    }
}

// ---------------------------------------------------------------------------
// kvm.feature-msrs

std::string msr_name(uint32_t i) {
    switch (i) {
    case 0x8b: return "IA32_UCODE_REV";
    case 0x10a: return "IA32_ARCH_CAPABILITIES";
    case 0xcf: return "IA32_CORE_CAPABILITIES";
    case 0xce: return "MSR_PLATFORM_INFO";
    case 0x345: return "IA32_PERF_CAPABILITIES";
    case 0xc0011029: return "AMD64_DE_CFG";
    case 0x480: return "IA32_VMX_BASIC";
    case 0x481: return "IA32_VMX_PINBASED_CTLS";
    case 0x482: return "IA32_VMX_PROCBASED_CTLS";
    case 0x483: return "IA32_VMX_EXIT_CTLS";
    case 0x484: return "IA32_VMX_ENTRY_CTLS";
    case 0x485: return "IA32_VMX_MISC";
    case 0x486: return "IA32_VMX_CR0_FIXED0";
    case 0x487: return "IA32_VMX_CR0_FIXED1";
    case 0x488: return "IA32_VMX_CR4_FIXED0";
    case 0x489: return "IA32_VMX_CR4_FIXED1";
    case 0x48a: return "IA32_VMX_VMCS_ENUM";
    case 0x48b: return "IA32_VMX_PROCBASED_CTLS2";
    case 0x48c: return "IA32_VMX_EPT_VPID_CAP";
    case 0x48d: return "IA32_VMX_TRUE_PINBASED_CTLS";
    case 0x48e: return "IA32_VMX_TRUE_PROCBASED_CTLS";
    case 0x48f: return "IA32_VMX_TRUE_EXIT_CTLS";
    case 0x490: return "IA32_VMX_TRUE_ENTRY_CTLS";
    case 0x491: return "IA32_VMX_VMFUNC";
    case 0x492: return "IA32_VMX_PROCBASED_CTLS3";
    default: return "";
    }
}

std::string msr_label(uint32_t i) {
    const std::string n = msr_name(i);
    return n.empty() ? fmt::format("MSR {:#x}", i) : fmt::format("{} ({:#x})", n, i);
}

// Which feature MSRs QEMU writes at vCPU creation for `-cpu host`
// (target/i386/kvm/kvm.c kvm_init_msrs; its has_msr_* flags come from
// KVM_GET_MSR_INDEX_LIST): a refusal there is QEMU's "failed to set MSR"
// assertion.
bool qemu_writes(const host::KvmProbe& k, uint32_t idx) {
    auto listed = [&](uint32_t i) { return std::find(k.msr_index_list.begin(), k.msr_index_list.end(), i) != k.msr_index_list.end(); };
    if (idx == 0x10a || idx == 0xcf || idx == 0x345 || idx == 0x8b) return listed(idx);
    if (idx >= 0x480 && idx <= 0x492) {
        const auto* e = supported_entry(k, 1, 0);
        return e && (e->ecx >> 5 & 1);  // the guest CPU gets VMX (nested=1)
    }
    return false;
}

void feature_msrs(const Facts& f, const Results&, Finding& out) {
    if (!need_vmm_facts(f, out)) return;
    const auto& k = f.kvm;
    auto& ev = out.evidence;
    if (k.feature_msr_list_errno == ENOTTY && k.feature_msrs.empty()) {
        set(out, Status::Skip, "this KVM has no feature MSRs (KVM_CAP_GET_MSR_FEATURES, Linux 4.17); VMMs write none");
        return;
    }
    if (k.feature_msr_list_errno != 0) {
        set(out, Status::Unknown, "KVM_GET_MSR_FEATURE_INDEX_LIST failed: " + errno_text(k.feature_msr_list_errno));
        remedy(out, "The kernel log may say why.", {"dmesg | grep -i kvm | tail"}, "", "manual", true);
        return;
    }
    if (k.msr_vcpu_errno != 0) {
        set(out, Status::Unknown, "could not create a vCPU for the MSR round trip: " + errno_text(k.msr_vcpu_errno));
        remedy(out, "The kernel log may say why.", {"dmesg | grep -i kvm | tail"}, "", "manual", true);
        return;
    }
    if (k.set_cpuid_errno != 0) ev["set_cpuid2_error"] = errno_text(k.set_cpuid_errno);
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    std::vector<std::string> refused, refused_qemu, unreadable;
    const host::KvmFeatureMsr* first_qemu = nullptr;
    for (const auto& m : k.feature_msrs) {
        nlohmann::ordered_json r;
        r["msr"] = msr_label(m.index);
        const bool qemu = qemu_writes(k, m.index);
        if (!m.readable) {
            r["result"] = "KVM_GET_MSRS on /dev/kvm did not return it";
            unreadable.push_back(msr_label(m.index));
            rows.push_back(r);
            continue;
        }
        r["host_value"] = hex(m.value);
        if (m.set_result == 1) {
            r["result"] = m.readback_ok && m.readback != m.value ? "accepted, reads back " + hex(m.readback) : "accepted";
        } else {
            r["result"] = m.set_result == 0 ? "refused" : "KVM_SET_MSRS failed: " + errno_text(-m.set_result);
            if (m.refused_bits) r["refused_bits"] = hex(m.refused_bits);
            refused.push_back(msr_label(m.index));
            if (qemu) {
                refused_qemu.push_back(msr_label(m.index));
                if (!first_qemu) first_qemu = &m;
            }
        }
        r["qemu_cpu_host_writes_it"] = qemu;
        rows.push_back(r);
    }
    ev["feature_msrs"] = rows;
    if (refused.empty()) {
        std::vector<std::string> qemu;
        for (const auto& m : k.feature_msrs)
            if (m.readable && qemu_writes(k, m.index)) qemu.push_back(msr_label(m.index));
        set(out, Status::Pass,
            fmt::format("a vCPU accepts all {} feature MSRs with the host values KVM reports{}{}", k.feature_msrs.size() - unreadable.size(),
                        qemu.empty() ? "" : fmt::format(", so QEMU -cpu host will not fail writing {}", join(qemu, ", ")),
                        unreadable.empty() ? "" : fmt::format(" ({} unreadable: {})", unreadable.size(), join(unreadable, ", "))));
        return;
    }
    if (first_qemu) {
        set(out, Status::Warn,
            fmt::format("KVM reports {} = {} for the host but a vCPU refuses that value, so QEMU -cpu host (libvirt "
                        "host-passthrough) aborts at start with \"failed to set MSR {:#x} to {:#x}\"{}",
                        msr_label(first_qemu->index), hex(first_qemu->value), first_qemu->index, first_qemu->value,
                        refused.size() > 1 ? fmt::format(" (refused: {})", join(refused, ", ")) : ""));
    } else {
        set(out, Status::Warn,
            fmt::format("a vCPU refuses the host values KVM itself reports for {}: VMMs that copy them (snapshot restore, "
                        "host CPU models) fail",
                        join(refused, ", ")));
    }
    remedy(out,
           "Start guests with a named CPU model instead of the host's (QEMU -cpu <model>, libvirt <cpu mode='host-model'/> or "
           "custom), or boot a kernel whose KVM accepts its own values.",
           {"qemu-system-x86_64 -accel kvm -cpu help"}, "", "manual", false);
}

// ---------------------------------------------------------------------------
// kvm.vm-types

constexpr const char* kVmTypeNames[] = {"default", "sw_protected", "sev", "sev_es", "sev_snp", "tdx"};

void vm_types(const Facts& f, const Results&, Finding& out) {
    const auto& k = f.kvm;
    if (!k.attempted) {
        set(out, Status::Unknown, "the /dev/kvm ioctl test did not run: " + k.not_attempted_reason);
        remedy(out, "Run kvmready on the host itself.", {"kvmready check kvm"}, "", "manual", false);
        return;
    }
    auto& ev = out.evidence;
    const auto v = cap(k, "vm_types");
    if (!v) {
        set(out, Status::Unknown, "KVM_CAP_VM_TYPES was not probed");
        remedy(out, "Record the host again with this kvmready version.", {"kvmready check --record DIR"}, "", "manual", false);
        return;
    }
    ev["kvm_cap_vm_types"] = *v;
    std::vector<std::string> types;
    if (*v > 0) {
        for (unsigned b = 0; b < 32; ++b) {
            if (!(static_cast<uint32_t>(*v) >> b & 1)) continue;
            types.push_back(b < std::size(kVmTypeNames) ? kVmTypeNames[b] : fmt::format("type {}", b));
        }
    }
    ev["vm_types"] = types;
    // What the CPU itself offers for confidential guests (AMD; TDX is not
    // visible in CPUID of the host).
    std::vector<std::string> cpu_mem;
    if (f.cpu.available) cpu_mem = cpuid::decode(f.cpu.dump).mem_encryption;
    if (!cpu_mem.empty()) ev["cpu_memory_encryption"] = cpu_mem;
    const auto* amd = find_module(f, "kvm_amd");
    if (amd)
        for (const char* p : {"sev", "sev_es", "sev_snp"})
            if (auto it = amd->parameters.find(p); it != amd->parameters.end()) ev[std::string("kvm_amd.") + p] = it->second;
    auto has_type = [&](const char* t) { return std::find(types.begin(), types.end(), t) != types.end(); };
    auto cpu_has = [&](const char* t) { return std::find(cpu_mem.begin(), cpu_mem.end(), t) != cpu_mem.end(); };
    if (*v <= 0) {
        set(out, Status::Pass,
            "this kernel does not report KVM_CAP_VM_TYPES (older than the VM-type API): it creates default VMs, and SEV/SEV-ES "
            "if any through the older memory-encryption ioctls");
        return;
    }
    std::vector<std::string> unused;
    if (cpu_has("sev_snp") && !has_type("sev_snp")) unused.push_back("SEV-SNP");
    if (cpu_has("sev_es") && !has_type("sev_es")) unused.push_back("SEV-ES");
    if (cpu_has("sev") && !has_type("sev")) unused.push_back("SEV");
    if (!unused.empty()) {
        set(out, Status::Warn,
            fmt::format("the CPU offers {} but KVM creates only {} VMs: confidential guests of that kind cannot start", join(unused, ", "),
                        join(types, ", ")));
        remedy(out, "Enable SEV in the firmware and in kvm_amd; confidential.sev names the missing step.",
               {"kvmready check confidential.sev"}, "", "manual", true);
        return;
    }
    const bool confidential = has_type("sev") || has_type("sev_es") || has_type("sev_snp") || has_type("tdx");
    set(out, Status::Pass, fmt::format("KVM creates {} VMs{}", join(types, ", "), confidential ? "" : " (no confidential-computing VM types)"));
}

// ---------------------------------------------------------------------------
// kvm.nested-state

void nested_state(const Facts& f, const Results&, Finding& out) {
    const auto& k = f.kvm;
    if (!k.attempted) {
        set(out, Status::Unknown, "the /dev/kvm ioctl test did not run: " + k.not_attempted_reason);
        remedy(out, "Run kvmready on the host itself.", {"kvmready check kvm"}, "", "manual", false);
        return;
    }
    const auto v = cap(k, "nested_state");
    if (!v) {
        set(out, Status::Unknown, "KVM_CAP_NESTED_STATE was not probed");
        remedy(out, "Record the host again with this kvmready version.", {"kvmready check --record DIR"}, "", "manual", false);
        return;
    }
    auto& ev = out.evidence;
    ev["kvm_cap_nested_state"] = *v;
    const ModuleInfo* m = flavour_module(f);
    std::optional<bool> nested_on;
    if (m) {
        ev["module"] = m->name;
        if (auto it = m->parameters.find("nested"); it != m->parameters.end()) {
            ev["nested"] = it->second;
            nested_on = it->second == "Y" || it->second == "1";
        }
    }
    if (*v > 0) {
        set(out, Status::Pass,
            fmt::format("KVM saves and restores nested-guest state (up to {} bytes per vCPU): VMs running their own guests can be "
                        "live-migrated and snapshotted{}",
                        *v, nested_on && !*nested_on ? ", once nesting is enabled (kvm.nested)" : ""));
        return;
    }
    set(out, Status::Warn,
        fmt::format("KVM cannot save nested-guest state (KVM_CAP_NESTED_STATE is 0{}): a VM that runs its own guests cannot be "
                    "live-migrated or snapshotted while they run",
                    m ? " with " + m->name : ""));
    remedy(out,
           m && m->name == "kvm_pvm" ? "kvm_pvm has no nested-state support; hosts that must migrate nested setups need kvm_intel/kvm_amd."
                                     : "Nested state needs kvm_intel or kvm_amd on Linux 4.19 or later; stop nested guests before migrating.",
           {}, "", "manual", false);
}

}  // namespace

void register_kvm_vmm(std::vector<CheckSpec>& r) {
    r.push_back({ids::kvm_vmm_capabilities, "KVM capabilities Firecracker, cloud-hypervisor and QEMU require", Level::Recommended,
                 {ids::kvm_api},
                 "KVM_CHECK_EXTENSION on /dev/kvm and on a freshly created VM (KVM_CAP_CHECK_EXTENSION_VM) for every capability "
                 "in the VMMs' startup lists (Firecracker src/vmm/src/arch/x86_64/kvm.rs, cloud-hypervisor "
                 "hypervisor/src/kvm/x86_64/mod.rs, QEMU accel/kvm/kvm-all.c and target/i386/kvm/kvm.c).",
                 "Each VMM refuses to start when one capability of its list is missing, long after \"/dev/kvm opens\" said yes. "
                 "Recommended, not required: KVM itself works (kvm.api), only the named VMMs do not.",
                 "Use a kernel whose KVM (kvm_intel/kvm_amd) has the capabilities; flavours like kvm_pvm implement fewer.",
                 vmm_capabilities});
    r.push_back({ids::kvm_guest_cpuid, "CPU features guests can get", Level::Recommended, {ids::kvm_api},
                 "KVM_GET_SUPPORTED_CPUID and KVM_GET_DEVICE_ATTR(KVM_X86_XCOMP_GUEST_SUPP) on /dev/kvm, compared bit by bit "
                 "with the host's own CPUID (leaves 1, 7, 0xD, 0x80000001; /proc/cpuinfo flags for leaves a live run does not "
                 "read) and the kernel command line.",
                 "A guest can only use CPU features KVM offers; missing SSE4.2/POPCNT or AVX2 makes guests built for x86-64-v2 "
                 "or v3 (RHEL 9, RHEL 10) refuse to boot and others run slower. Recommended: it warns only when guests drop to "
                 "a lower x86-64 level than the host; smaller gaps are listed in a pass.",
                 "Remove feature-hiding kernel parameters (clearcpuid=, noxsave), use a newer kernel, or a VT-x/AMD-V host "
                 "instead of a software KVM flavour.",
                 guest_cpuid});
    r.push_back({ids::kvm_feature_msrs, "Feature MSRs survive a vCPU round trip", Level::Recommended, {ids::kvm_api},
                 "KVM_GET_MSR_FEATURE_INDEX_LIST and KVM_GET_MSRS on /dev/kvm (the host values KVM reports, e.g. "
                 "IA32_ARCH_CAPABILITIES 0x10a), then on a second vCPU given the supported CPUID (KVM_SET_CPUID2) KVM_SET_MSRS "
                 "of each value and KVM_GET_MSRS back; KVM_GET_MSR_INDEX_LIST tells which of them QEMU writes.",
                 "QEMU -cpu host (libvirt host-passthrough) writes these values at vCPU creation and aborts with \"failed to set "
                 "MSR 0x10a\" when KVM refuses its own numbers, a known failure of nested and broken KVM setups. Recommended: "
                 "named CPU models still work.",
                 "Use a named CPU model instead of host passthrough, or a kernel whose KVM accepts its own values.",
                 feature_msrs});
    r.push_back({ids::kvm_vm_types, "VM types KVM can create", Level::Optional, {ids::kvm_api},
                 "KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES) bitmask (default, sw_protected, sev, sev_es, sev_snp, tdx), the CPU's "
                 "memory-encryption CPUID leaf 0x8000001F and kvm_amd's sev* parameters.",
                 "Confidential guests (SEV, SEV-ES, SEV-SNP, TDX) need their VM type; a CPU that has SEV while KVM lacks the "
                 "type means firmware or kvm_amd settings. Optional: ordinary guests need only the default type.",
                 "Enable SEV/TDX in the firmware and kvm_amd/kvm_intel, on a kernel that supports the type.", vm_types});
    r.push_back({ids::kvm_nested_state, "Nested guests can be migrated", Level::Optional, {ids::kvm_api},
                 "KVM_CHECK_EXTENSION(KVM_CAP_NESTED_STATE) (the maximum size of KVM_GET_NESTED_STATE) and the vendor module's "
                 "nested parameter.",
                 "Without nested state KVM cannot save a vCPU that is running a nested guest, so VMs that host their own VMs "
                 "cannot be live-migrated or snapshotted. Optional: only nested setups care.",
                 "Use kvm_intel/kvm_amd (Linux 4.19+); stop nested guests before migrating.", nested_state});
}

}  // namespace kvmready::checks
