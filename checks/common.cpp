#include "checks/common.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace kvmready::checks {

CpuClass cpu_class(const std::string& vendor) {
    if (vendor == "GenuineIntel" || vendor == "CentaurHauls" || vendor == "  Shanghai  ") return CpuClass::Intel;
    if (vendor == "AuthenticAMD" || vendor == "HygonGenuine") return CpuClass::Amd;
    return CpuClass::Unknown;
}

const char* vendor_module(CpuClass c) {
    switch (c) {
    case CpuClass::Intel: return "kvm_intel";
    case CpuClass::Amd: return "kvm_amd";
    case CpuClass::Unknown: return "";
    }
    return "";
}

const ModuleInfo* find_module(const Facts& f, const std::string& name) {
    for (const auto& m : f.modules.present)
        if (m.name == name) return &m;
    return nullptr;
}

const ModuleInfo* flavour_module(const Facts& f) {
    for (const char* name : {"kvm_intel", "kvm_amd", "kvm_pvm"})
        if (const auto* m = find_module(f, name)) return m;
    for (const auto& m : f.modules.present)
        if (m.name.rfind("kvm_", 0) == 0) return &m;
    return nullptr;
}

std::string describe_flavour(const std::string& module) {
    if (module == "kvm_intel") return "kvm_intel (Intel VT-x)";
    if (module == "kvm_amd") return "kvm_amd (AMD-V/SVM)";
    if (module == "kvm_pvm") return "kvm_pvm (PVM: software, pagetable-based virtualization without VT-x/AMD-V)";
    return module;
}

bool is_pvm(const Derived& d) {
    const KvmState& s = d.kvm;
    return s.flavour && s.flavour->name == "kvm_pvm" && s.flavour_bound();
}

bool has_flag(const std::vector<std::string>& flags, const char* name) {
    return std::find(flags.begin(), flags.end(), name) != flags.end();
}

bool cpuid_is_this_host(const Facts& f) { return f.cpu.source == "live" || f.cpu.source == "recorded"; }

bool this_host_cpu(const Facts& f) { return f.cpu.available && cpuid_is_this_host(f); }

bool param_on(const std::string& v) { return v == "Y" || v == "y" || v == "1"; }

const char* const kTcgMeanwhile =
    " Until then guests still run without KVM, under TCG: virt-install --virt-type qemu, or qemu-system-x86_64 -accel tcg.";

const char* const kPvmImplications =
    "PVM runs guests without VT-x/AMD-V: a guest must boot a PVM-enabled kernel (CONFIG_PVM_GUEST). "
    "Ordinary guests started with QEMU/libvirt -accel kvm fail or hang on this host; run them with TCG "
    "(-accel tcg, libvirt <domain type='qemu'>) or give them a PVM guest kernel";

// POSIX.1e access check for read+write, as the kernel does it.
AccessDecision decide_access(const DeviceFacts& d, const host::User& u, const std::vector<uint32_t>& gids) {
    constexpr unsigned kRw = 6;
    auto in_group = [&](uint32_t g) { return std::find(gids.begin(), gids.end(), g) != gids.end(); };
    if (u.uid == 0) return {true, "root bypasses file permissions"};
    const unsigned mode = d.stat.mode;
    if (u.uid == d.stat.uid) return {((mode >> 6) & kRw) == kRw, "the owner bits"};
    if (d.acl) {
        unsigned mask = 7;
        for (const auto& e : *d.acl)
            if (e.tag == "mask") mask = e.perms;
        for (const auto& e : *d.acl)
            if (e.tag == "user" && e.id == static_cast<int64_t>(u.uid))
                return {(e.perms & mask & kRw) == kRw, fmt::format("ACL entry user:{}", u.name)};
        bool group_matched = false;
        for (const auto& e : *d.acl) {
            const bool match = (e.tag == "group_obj" && in_group(d.stat.gid)) || (e.tag == "group" && e.id >= 0 && in_group(static_cast<uint32_t>(e.id)));
            if (!match) continue;
            group_matched = true;
            if ((e.perms & mask & kRw) == kRw) return {true, fmt::format("ACL group entry (gid {})", e.tag == "group" ? e.id : d.stat.gid)};
        }
        if (group_matched) return {false, "ACL group entries match but grant no read-write"};
        for (const auto& e : *d.acl)
            if (e.tag == "other") return {(e.perms & kRw) == kRw, "ACL other entry"};
    }
    if (in_group(d.stat.gid)) return {((mode >> 3) & kRw) == kRw, "the group bits"};
    return {(mode & kRw) == kRw, "the other bits"};
}

std::string package_install(const Facts& f, const PackageNames& p) {
    // Recordings made before the core read os-release have it only in the virt facts.
    const std::string os = " " + (f.kernel.os_id.empty() ? f.virt.os_id : f.kernel.os_id) + " ";
    auto has = [&](const char* id) { return os.find(std::string(" ") + id + " ") != std::string::npos; };
    if (has("fedora") || has("rhel") || has("centos") || has("rocky") || has("almalinux")) return fmt::format("dnf install {}", p.rhel);
    if (has("suse") || has("opensuse")) return fmt::format("zypper install {}", p.suse);
    if (has("arch")) return fmt::format("pacman -S {}", p.arch);
    return fmt::format("apt-get install {}", p.debian);
}

std::string hex(uint64_t v) { return fmt::format("0x{:x}", v); }

std::string mode_string(unsigned mode) { return fmt::format("{:04o}", mode); }

void set(Finding& f, Status s, std::string message) {
    f.status = s;
    f.message = std::move(message);
}

Status status(const Results& r, CheckId id) { return r.status(id.text); }

void remedy(Finding& f, std::string text, std::vector<std::string> commands, FixId fix, const char* applicability,
            bool requires_root) {
    f.remediation = Remediation{std::move(text), std::move(commands), fix.text, applicability, requires_root};
}

namespace {
const char* errno_name(int e) {
    switch (e) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBUSY: return "EBUSY";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    case ENODATA: return "ENODATA";
    default: return nullptr;
    }
}
}  // namespace

std::string errno_text(int e) {
    const char* n = errno_name(e);
    return fmt::format("{} ({})", std::strerror(e), n ? n : std::to_string(e));
}

}  // namespace kvmready::checks
