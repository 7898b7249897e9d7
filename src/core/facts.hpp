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
#include "core/facts_net.hpp"
#include "core/facts_system.hpp"
#include "core/facts_virt.hpp"
#include "cpuid/cpuid.hpp"
#include "host/host.hpp"
#include "host/kvm_probe.hpp"
#include "smoke/report.hpp"

namespace kvmready {

struct KernelFacts {
    std::string release;   // /proc/sys/kernel/osrelease
    std::string cmdline;   // /proc/cmdline
    std::string hostname;  // /proc/sys/kernel/hostname
    std::string os_id;     // /etc/os-release ID and ID_LIKE: which package manager hints name
};

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

struct MsrReading {
    std::optional<uint64_t> value;
    std::string error;
};

struct MsrFacts {
    std::string source;               // "live", "dump", "recorded"
    MsrReading feature_control;       // Intel IA32_FEATURE_CONTROL (0x3a)
    MsrReading vm_cr;                 // AMD VM_CR (0xc0010114)
};

struct ModuleInfo {
    std::string name;
    bool builtin = false;             // no /sys/module/NAME/initstate
    std::string initstate;            // "live", "coming", "going" for loadable ones
    std::map<std::string, std::string> parameters;
};

struct ModuleFacts {
    bool module_support = false;      // /proc/modules exists
    bool modules_disabled = false;    // /proc/sys/kernel/modules_disabled = 1
    std::vector<ModuleInfo> present;  // kvm* and irqbypass under /sys/module
    bool modules_dir_found = false;   // /lib/modules/RELEASE exists
    std::vector<std::string> installed;  // kvm* modules available to modprobe for this kernel
};

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

// The kernel log's virtualization lines, read only when a finding needs
// them (KVM absent or failing): reading costs milliseconds a healthy host
// should not pay.
struct KernelLogFacts {
    bool read = false;
    std::string reason;               // why it was read, or why not
    host::KernelLog log;
};

struct AccessFacts {
    std::string requested_user;       // --user NAME, empty for the invoking user
    bool is_current = true;
    std::optional<host::User> user;
    std::string lookup_error;
    std::optional<std::vector<uint32_t>> process_groups;  // current user, live
    std::optional<int> open_errno;    // real open(O_RDWR), current user, live
};

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

// What the user asked to be judged (checks are pure, so they read it here).
struct Request {
    std::string user;                 // --user
    std::string connect_uri = "qemu:///system";  // --connect
    std::string network = "default";  // --network
    bool network_given = false;
    std::string pool = "default";     // --pool
    bool pool_given = false;
    std::string bridge;               // --bridge (required to exist when given)
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Request, user, connect_uri, network, network_given, pool, pool_given, bridge)

struct Facts {
    int schema_version = 1;
    std::string source;               // "live", "root:DIR" or "bundle:FILE"
    std::string source_note;          // for recordings: who made it, when
    Request request;
    KernelFacts kernel;
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
    smoke::SmokeFacts smoke;          // `check --full` only: a guest booted through libvirt
    ConfigFacts config;               // what the fixes plan from (fix, report, --record only)
};

nlohmann::json facts_to_json(const Facts& f);
Facts facts_from_json(const nlohmann::json& j);

}  // namespace kvmready
