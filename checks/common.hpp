// Small helpers shared by the checks: CPU vendor classes and the KVM flavour
// (which vendor module provides KVM on this host).
#pragma once

#include <string>

#include "core/check.hpp"
#include "core/ids.hpp"
#include "core/kvm_state.hpp"

namespace kvmready::checks {

enum class CpuClass { Intel, Amd, Unknown };

// Zhaoxin ("  Shanghai  ", "CentaurHauls") implements VMX and uses kvm_intel;
// Hygon implements SVM and uses kvm_amd.
CpuClass cpu_class(const std::string& vendor);
const char* vendor_module(CpuClass c);       // "kvm_intel", "kvm_amd", or ""

const ModuleInfo* find_module(const Facts& f, const std::string& name);
// The vendor/flavour module that provides KVM here (kvm_intel, kvm_amd,
// kvm_pvm, ...), or nullptr.
const ModuleInfo* flavour_module(const Facts& f);
// Human description of a flavour module, e.g. "kvm_pvm (PVM: software, pagetable-based)".
std::string describe_flavour(const std::string& module);
// KVM here comes from kvm_pvm, and kvm_pvm bound (registered /dev/kvm).
bool is_pvm(const Derived& d);
// What still works where KVM cannot (TCG guests), a sentence to append to a
// remediation's text: it is a workaround, not the fix, so never a command.
extern const char* const kTcgMeanwhile;
extern const char* const kPvmImplications;

// Would user u (holding group ids gids) get read+write on the device
// described by d? POSIX.1e order: root, owner, ACL named user, groups, other.
struct AccessDecision {
    bool allowed = false;
    std::string basis;             // which rule decided, for messages and evidence
};
AccessDecision decide_access(const DeviceFacts& d, const host::User& u, const std::vector<uint32_t>& gids);

// The host's own package manager installing the package of that name in
// its family (/etc/os-release ID and ID_LIKE): apt-get, dnf, zypper, pacman.
struct PackageNames {
    const char* debian;
    const char* rhel;
    const char* suse;
    const char* arch;
};
std::string package_install(const Facts& f, const PackageNames& p);

bool has_flag(const std::vector<std::string>& flags, const char* name);
// CPUID of this very host (live or recorded with it), as opposed to a dump a
// customer sent: only then may /proc/cpuinfo of this host be compared to it.
bool cpuid_is_this_host(const Facts& f);
// ... and CPUID was read at all.
bool this_host_cpu(const Facts& f);
// A kernel module's boolean parameter as sysfs spells it: Y, y or 1.
bool param_on(const std::string& v);

// The status of a check that ran before this one (a status dependency).
Status status(const Results& r, CheckId id);

std::string hex(uint64_t v);
std::string mode_string(unsigned mode);  // "0660"
// "Permission denied (EACCES)": strerror and the errno name an admin greps for.
std::string errno_text(int e);
void set(Finding& f, Status s, std::string message);
// fix: the `kvmready fix` that carries this out, or "" (ids::fix::none).
void remedy(Finding& f, std::string text, std::vector<std::string> commands, FixId fix,
            const char* applicability, bool requires_root);

}  // namespace kvmready::checks
