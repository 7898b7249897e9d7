// SystemFacts: IOMMU, memory, control groups, confidential computing and the
// security modules, as probe_system.cpp reads them from /proc, /sys and /etc.
// Optional fields are nullopt when the file could not be read (absent from
// the host or from the recording), so checks can say "unknown" instead of
// guessing.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_optional.hpp"

namespace kvmready {

// One line of /proc/self/mountinfo that matters here.
struct MountEntry {
    std::string mountpoint;
    std::string fstype;
    std::string source;
    std::string super_options;   // e.g. "rw,cpu,cpuacct" for cgroup v1, "rw,pagesize=1G" for hugetlbfs
};

struct IommuUnit {
    std::string name;            // /sys/class/iommu/NAME: dmar0 (Intel), ivhd0 (AMD), ...
    std::string capability;      // intel-iommu/ecap or amd-iommu/features (hex), empty if unreadable
};

struct IommuFacts {
    bool acpi_tables_read = false;          // /sys/firmware/acpi/tables could be listed
    std::vector<std::string> acpi_tables;   // its table files (APIC, DMAR, FACP, ...)
    bool dmar = false;                      // ACPI DMAR: firmware describes Intel VT-d
    bool ivrs = false;                      // ACPI IVRS: firmware describes AMD-Vi
    std::vector<IommuUnit> units;           // /sys/class/iommu/*
    bool groups_dir = false;                // /sys/kernel/iommu_groups exists (kernel has the IOMMU API)
    int groups = 0;                         // /sys/kernel/iommu_groups/* (devices isolated by an IOMMU)
    std::map<std::string, int> domain_types;  // groups per default domain type ("DMA-FQ", "identity", ...)
    bool vfio = false;                      // /dev/vfio/vfio (vfio loaded)
    // Whether the running kernel can drive the IOMMU the firmware describes:
    // its build options from /boot/config-RELEASE, read only when DMAR/IVRS
    // exist and no group does (a kernel without the driver looks exactly like
    // one that has not enabled it). Keys CONFIG_INTEL_IOMMU, CONFIG_AMD_IOMMU,
    // CONFIG_IRQ_REMAP: "y", "m" or "n" (not set, or absent from the file).
    std::string kernel_config;              // the file read; "" when none was
    std::map<std::string, std::string> kernel_config_options;
};

// Where kernel arguments are configured, to name the exact commands.
struct BootFacts {
    bool grub_default_read = false;                    // /etc/default/grub
    std::optional<std::string> grub_cmdline_linux;     // its GRUB_CMDLINE_LINUX value
    std::optional<std::string> grub_cmdline_default;   // its GRUB_CMDLINE_LINUX_DEFAULT value
    bool update_grub = false;                          // /usr/sbin/update-grub (Debian, Ubuntu)
    bool grubby = false;                               // /usr/sbin/grubby (Fedora, RHEL)
    bool kernel_cmdline_file = false;                  // /etc/kernel/cmdline (systemd-boot, kernel-install)
};

struct HugePagePool {
    uint64_t size_kb = 0;                  // from the directory name hugepages-<size>kB
    std::optional<uint64_t> nr, free, resv, surplus;
};

struct MemoryFacts {
    bool meminfo_read = false;
    std::optional<uint64_t> mem_total_kb, mem_free_kb, mem_available_kb;
    std::optional<uint64_t> hugepagesize_kb;   // default huge page size (meminfo Hugepagesize)
    bool hugepages_dir = false;                // /sys/kernel/mm/hugepages exists
    std::vector<HugePagePool> pools;           // one per supported size, ascending
    std::optional<std::string> thp_enabled;    // /sys/kernel/mm/transparent_hugepage/enabled, raw
    std::optional<std::string> thp_defrag;     // .../defrag, raw
    std::optional<std::string> ksm_run;        // /sys/kernel/mm/ksm/run: 0 stopped, 1 running, 2 unmerging
    std::optional<uint64_t> ksm_pages_shared, ksm_pages_sharing, ksm_full_scans;
    std::optional<std::string> overcommit_memory;  // /proc/sys/vm/overcommit_memory: 0 heuristic, 1 always, 2 strict
    std::optional<uint64_t> overcommit_ratio;       // /proc/sys/vm/overcommit_ratio (percent of RAM, strict mode)
    std::optional<uint64_t> overcommit_kbytes;      // /proc/sys/vm/overcommit_kbytes (used instead when non-zero)
    std::optional<uint64_t> commit_limit_kb, committed_as_kb;  // CommitLimit, Committed_AS in /proc/meminfo
};

struct CgroupController {
    std::string name;
    int hierarchy = 0;        // 0: not bound to a v1 hierarchy (free for v2)
    int num_cgroups = 0;
    bool enabled = false;     // false: disabled at boot (cgroup_disable=)
};

struct CgroupFacts {
    bool proc_cgroups_read = false;
    std::vector<CgroupController> controllers;   // /proc/cgroups
    std::string v2_mountpoint;                   // the cgroup2 mount whose files were read
    std::optional<std::string> v2_controllers;   // <v2>/cgroup.controllers
    std::optional<std::string> v2_subtree_control;
    std::optional<std::string> misc_capacity;    // <v2>/misc.capacity (SEV/SEV-ES ASIDs)
    std::optional<std::string> self_cgroup;      // /proc/self/cgroup
};

struct ConfidentialFacts {
    bool dev_sev = false;        // /dev/sev: the PSP's SEV firmware interface (ccp driver)
    std::string dev_sev_type;
    bool sys_firmware_tdx = false;  // /sys/firmware/tdx
};

struct SecurityFacts {
    std::optional<std::string> lsm;                      // /sys/kernel/security/lsm
    // SELinux
    bool selinuxfs = false;                              // /sys/fs/selinux exists
    std::optional<std::string> selinux_enforce;          // "1" enforcing, "0" permissive
    bool selinux_policy_loaded = false;                  // /sys/fs/selinux/booleans has entries
    std::map<std::string, std::string> selinux_booleans; // virt_* booleans that exist: "current pending"
    std::optional<std::string> selinux_config_mode;      // SELINUX= in /etc/selinux/config
    std::optional<std::string> selinux_config_type;      // SELINUXTYPE=
    // AppArmor
    std::optional<std::string> apparmor_enabled;         // /sys/module/apparmor/parameters/enabled (Y/N)
    bool apparmor_profiles_read = false;                 // /sys/kernel/security/apparmor/profiles
    int apparmor_profiles_total = 0;
    std::vector<std::string> apparmor_libvirt_profiles;  // "name (mode)" lines of libvirt's profiles
    bool libvirtd_profile_file = false;                  // /etc/apparmor.d/usr.sbin.libvirtd
    bool virt_aa_helper_profile_file = false;            // /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper
    bool libvirtd_profile_disabled = false;              // /etc/apparmor.d/disable/usr.sbin.libvirtd
    bool libvirt_qemu_template = false;                  // /etc/apparmor.d/libvirt/TEMPLATE.qemu
    // libvirt's choice
    bool qemu_conf_read = false;                         // /etc/libvirt/qemu.conf (root-only on Debian)
    std::optional<std::string> qemu_security_driver;     // its security_driver setting, if uncommented
    // Where disk images usually live, to judge NFS/CIFS labelling.
    std::optional<MountEntry> images_mount;              // mount holding /var/lib/libvirt/images
};

struct SystemFacts {
    bool probed = false;
    bool mountinfo_read = false;
    std::vector<MountEntry> mounts;   // cgroup, cgroup2, hugetlbfs, securityfs, selinuxfs mounts
    IommuFacts iommu;
    BootFacts boot;
    MemoryFacts memory;
    CgroupFacts cgroups;
    ConfidentialFacts confidential;
    SecurityFacts security;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MountEntry, mountpoint, fstype, source, super_options)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(IommuUnit, name, capability)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(IommuFacts, acpi_tables_read, acpi_tables, dmar, ivrs, units, groups_dir,
                                                groups, domain_types, vfio, kernel_config, kernel_config_options)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BootFacts, grub_default_read, grub_cmdline_linux, grub_cmdline_default,
                                                update_grub, grubby, kernel_cmdline_file)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HugePagePool, size_kb, nr, free, resv, surplus)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MemoryFacts, meminfo_read, mem_total_kb, mem_free_kb, mem_available_kb,
                                                hugepagesize_kb, hugepages_dir, pools, thp_enabled, thp_defrag, ksm_run,
                                                ksm_pages_shared, ksm_pages_sharing, ksm_full_scans, overcommit_memory,
                                                overcommit_ratio, overcommit_kbytes, commit_limit_kb, committed_as_kb)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CgroupController, name, hierarchy, num_cgroups, enabled)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CgroupFacts, proc_cgroups_read, controllers, v2_mountpoint, v2_controllers,
                                                v2_subtree_control, misc_capacity, self_cgroup)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ConfidentialFacts, dev_sev, dev_sev_type, sys_firmware_tdx)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SecurityFacts, lsm, selinuxfs, selinux_enforce, selinux_policy_loaded,
                                                selinux_booleans, selinux_config_mode, selinux_config_type, apparmor_enabled,
                                                apparmor_profiles_read, apparmor_profiles_total, apparmor_libvirt_profiles,
                                                libvirtd_profile_file, virt_aa_helper_profile_file, libvirtd_profile_disabled,
                                                libvirt_qemu_template, qemu_conf_read, qemu_security_driver, images_mount)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SystemFacts, probed, mountinfo_read, mounts, iommu, boot, memory, cgroups,
                                                confidential, security)

}  // namespace kvmready
