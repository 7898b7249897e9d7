// Facts: everything the probe learned about a host, as plain data. Checks are
// pure functions of Facts, and Facts serialise to JSON and back, so a
// recording from one machine can be judged on another.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/json_optional.hpp"
#include "core/facts_config.hpp"
#include "core/facts_devices.hpp"
#include "core/facts_net.hpp"
#include "core/facts_smoke.hpp"
#include "core/facts_system.hpp"
#include "core/facts_virt.hpp"
#include "core/options.hpp"
#include "cpuid/cpuid.hpp"
#include "host/host.hpp"
#include "host/kvm_probe.hpp"

namespace kvmready {

struct KernelFacts {
    std::string release;   // /proc/sys/kernel/osrelease
    std::string cmdline;   // /proc/cmdline
    std::string hostname;  // /proc/sys/kernel/hostname
    std::string os_id;     // /etc/os-release ID and ID_LIKE: which package manager hints name
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KernelFacts, release, cmdline, hostname, os_id)


struct CpuFacts {
    std::string source;               // "live", "dump:FILE", "recorded", "none"
    bool available = false;
    std::string unavailable_reason;
    cpuid::Dump dump;                 // serialised as `cpuid -r` text
    // /proc/cpuinfo: what the kernel decided to show, evidence only.
    bool cpuinfo_read = false;
    std::string cpuinfo_vendor;
    std::string cpuinfo_model_name;
    std::vector<std::string> cpuinfo_flags;
    bool cpuinfo_has_vmx_flags_line = false;
    std::vector<std::string> cpuinfo_vmx_flags;
};
// Custom: the dump travels as `cpuid -r` text (cpuid_r, dump_format), the rest field by field.
void to_json(nlohmann::json& j, const CpuFacts& c);
void from_json(const nlohmann::json& j, CpuFacts& c);


struct MsrReading {
    std::optional<uint64_t> value;
    std::string error;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MsrReading, value, error)


struct MsrFacts {
    std::string source;               // "live", "dump", "recorded"
    MsrReading feature_control;       // Intel IA32_FEATURE_CONTROL (0x3a)
    MsrReading vm_cr;                 // AMD VM_CR (0xc0010114)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MsrFacts, source, feature_control, vm_cr)


struct ModuleInfo {
    std::string name;
    bool builtin = false;             // no /sys/module/NAME/initstate
    std::string initstate;            // "live", "coming", "going" for loadable ones
    std::map<std::string, std::string> parameters;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ModuleInfo, name, builtin, initstate, parameters)


struct ModuleFacts {
    bool module_support = false;      // /proc/modules exists
    bool modules_disabled = false;    // /proc/sys/kernel/modules_disabled = 1
    std::vector<ModuleInfo> present;  // kvm* and irqbypass under /sys/module
    bool modules_dir_found = false;   // /lib/modules/RELEASE exists
    std::vector<std::string> installed;  // kvm* modules available to modprobe for this kernel
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ModuleFacts, module_support, modules_disabled, present, modules_dir_found, installed)


struct DeviceFacts {
    std::string path = "/dev/kvm";
    host::StatInfo stat;
    std::optional<std::vector<host::AclEntry>> acl;
    std::string owner_name;
    std::string group_name;
    // /proc/misc lists the misc devices drivers registered: "232 kvm" once a
    // vendor/flavour module bound. Without it a node made by hand gives ENXIO.
    bool misc_read = false;
    std::optional<unsigned> misc_minor;
    std::string dev_fstype;           // what /dev is: devtmpfs makes nodes itself, a tmpfs does not
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DeviceFacts, path, stat, acl, owner_name, group_name, misc_read, misc_minor, dev_fstype)


// The kernel log's virtualization lines, read only when a finding needs
// them (KVM absent or failing): reading costs milliseconds a healthy host
// should not pay.
struct KernelLogFacts {
    bool read = false;
    std::string reason;               // why it was read, or why not
    host::KernelLog log;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KernelLogFacts, read, reason, log)


struct AccessFacts {
    std::string requested_user;       // --user NAME, empty for the invoking user
    bool is_current = true;
    std::optional<host::User> user;
    std::string lookup_error;
    std::optional<std::vector<uint32_t>> process_groups;  // current user, live
    std::optional<int> open_errno;    // real open(O_RDWR), current user, live
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AccessFacts, requested_user, is_current, user, lookup_error, process_groups, open_errno)


struct HypervisorFacts {
    std::map<std::string, std::string> dmi;  // sys_vendor, product_name, bios_vendor, ...
    std::string sys_hypervisor_type;         // /sys/hypervisor/type (Xen)
    std::string container_env;               // container= in PID 1's environment
    bool containerenv_file = false;          // /run/.containerenv (podman)
    bool dockerenv_file = false;             // /.dockerenv (weak: images carry it)
    std::string pid1_cgroup;                 // /proc/1/cgroup
    std::string root_fstype;                 // fs type of / from /proc/self/mountinfo
    bool wsl = false;                        // Microsoft kernel (WSL2)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HypervisorFacts, dmi, sys_hypervisor_type, container_env, containerenv_file, dockerenv_file,
                                                pid1_cgroup, root_fstype, wsl)


// Request (what the user asked to be judged): core/options.hpp.

struct Facts {
    int schema_version = 1;
    std::string source;               // "live", "root:DIR" or "bundle:FILE"
    std::string source_note;          // for recordings: who made it, when
    Request request;
    KernelFacts kernel;
    host::HostIdentity identity;      // the hash a fleet report tells hosts apart by
    CpuFacts cpu;
    MsrFacts msr;
    ModuleFacts modules;
    DeviceFacts device;
    AccessFacts access;
    host::KvmProbe kvm;
    HypervisorFacts hypervisor;
    KernelLogFacts kernel_log;
    VirtFacts virt;                   // QEMU, libvirt, storage
    NetFacts net;
    SystemFacts system;               // IOMMU, memory, cgroups, confidential, security
    DevicesFacts devices;             // PCI devices for passthrough (check devices)
    SmokeFacts smoke;                 // `check --full` only: a guest booted through libvirt
    ConfigFacts config;               // what the fixes plan from (fix, report, --record only)
};

// source_note is not serialised: the bundle's manifest carries it.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Facts, schema_version, source, kernel, identity, cpu, msr, modules, device, access, kvm, hypervisor,
                                                kernel_log, request, virt, net, system, devices, smoke, config)

// The serialisation above, by name (bundles, --record, tests).
nlohmann::json facts_to_json(const Facts& f);
Facts facts_from_json(const nlohmann::json& j);

}  // namespace kvmready
