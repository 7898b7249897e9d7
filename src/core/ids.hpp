// Check and fix ids as typed constants. A CheckId and a FixId are distinct
// types, so a fix id cannot be handed where a check id is expected (a
// dependency, a status lookup) nor a check id where a fix id is (a
// remediation). tests/xref_test.cpp holds that every constant here is
// registered and every registered id has a constant.
#pragma once

#include <cstddef>

namespace kvmready {

// A check's id ("kvm.api"). Converts to const char* for CheckSpec and the
// Results lookups, which take ids as text.
struct CheckId {
    const char* text;
    constexpr explicit CheckId(const char* t) : text(t) {}
    constexpr operator const char*() const { return text; }  // NOLINT: implicit on purpose
};

// A fix's id ("user.groups"), or none. Never converts to text implicitly, so
// it cannot stand in for a check id; "" (and only "") reads as "no fix".
struct FixId {
    const char* text;
    constexpr explicit FixId(const char* t) : text(t) {}
    template <std::size_t N>
        requires(N == 1)
    consteval FixId(const char (&empty)[N]) : text(empty) {}  // NOLINT: remedy(..., "", ...) means no fix
};

namespace ids {

// ---- checks (registry order) ----
inline constexpr CheckId cpu_virt_extensions{"cpu.virt-extensions"};
inline constexpr CheckId cpu_firmware_enabled{"cpu.firmware-enabled"};
inline constexpr CheckId cpu_ept_npt{"cpu.ept-npt"};
inline constexpr CheckId host_hypervisor{"host.hypervisor"};
inline constexpr CheckId kvm_module{"kvm.module"};
inline constexpr CheckId kvm_device{"kvm.device"};
inline constexpr CheckId kvm_access{"kvm.access"};
inline constexpr CheckId kvm_api{"kvm.api"};
inline constexpr CheckId kvm_nested{"kvm.nested"};
inline constexpr CheckId kvm_vmm_capabilities{"kvm.vmm-capabilities"};
inline constexpr CheckId kvm_guest_cpuid{"kvm.guest-cpuid"};
inline constexpr CheckId kvm_feature_msrs{"kvm.feature-msrs"};
inline constexpr CheckId kvm_vm_types{"kvm.vm-types"};
inline constexpr CheckId kvm_nested_state{"kvm.nested-state"};
inline constexpr CheckId kvm_qemu_user_access{"kvm.qemu-user-access"};
inline constexpr CheckId qemu_binary{"qemu.binary"};
inline constexpr CheckId libvirt_daemon{"libvirt.daemon"};
inline constexpr CheckId libvirt_manage{"libvirt.manage"};
inline constexpr CheckId libvirt_domcaps_kvm{"libvirt.domcaps-kvm"};
inline constexpr CheckId libvirt_network{"libvirt.network"};
inline constexpr CheckId storage_pool{"storage.pool"};
inline constexpr CheckId storage_images_dir{"storage.images-dir"};
inline constexpr CheckId net_tun{"net.tun"};
inline constexpr CheckId net_vhost_net{"net.vhost-net"};
inline constexpr CheckId net_vhost_vsock{"net.vhost-vsock"};
inline constexpr CheckId net_bridges{"net.bridges"};
inline constexpr CheckId net_ip_forward{"net.ip-forward"};
inline constexpr CheckId net_bridge_netfilter{"net.bridge-netfilter"};
inline constexpr CheckId net_firewall{"net.firewall"};
inline constexpr CheckId iommu_enabled{"iommu.enabled"};
inline constexpr CheckId memory_hugepages{"memory.hugepages"};
inline constexpr CheckId memory_thp{"memory.thp"};
inline constexpr CheckId memory_ksm{"memory.ksm"};
inline constexpr CheckId memory_available{"memory.available"};
inline constexpr CheckId memory_overcommit{"memory.overcommit"};
inline constexpr CheckId kernel_cgroups{"kernel.cgroups"};
inline constexpr CheckId confidential_sev{"confidential.sev"};
inline constexpr CheckId confidential_tdx{"confidential.tdx"};
inline constexpr CheckId security_selinux{"security.selinux"};
inline constexpr CheckId security_apparmor{"security.apparmor"};
inline constexpr CheckId devices_passthrough{"devices.passthrough"};
inline constexpr CheckId smoke_boot{"smoke.boot"};

namespace fix {

// ---- fixes (fixes/registry.cpp order) ----
// No fix: a remediation only people can carry out.
inline constexpr FixId none{""};
inline constexpr FixId pkg_virt_stack{"pkg.virt-stack"};
inline constexpr FixId kvm_modules_load{"kvm.modules-load"};
inline constexpr FixId kvm_nested{"kvm.nested"};
inline constexpr FixId kvm_device_permissions{"kvm.device-permissions"};
inline constexpr FixId user_groups{"user.groups"};
inline constexpr FixId net_ip_forward{"net.ip-forward"};
inline constexpr FixId memory_hugepages{"memory.hugepages"};
inline constexpr FixId libvirt_daemon{"libvirt.daemon"};
inline constexpr FixId libvirt_network_default{"libvirt.network-default"};
inline constexpr FixId storage_pool_default{"storage.pool-default"};
inline constexpr FixId net_bridge{"net.bridge"};
inline constexpr FixId devices_vfio_bind{"devices.vfio-bind"};

}  // namespace fix

// Every constant, for the test that holds them to the registries.
inline constexpr CheckId kAllChecks[] = {
    cpu_virt_extensions,
    cpu_firmware_enabled,
    cpu_ept_npt,
    host_hypervisor,
    kvm_module,
    kvm_device,
    kvm_access,
    kvm_api,
    kvm_nested,
    kvm_vmm_capabilities,
    kvm_guest_cpuid,
    kvm_feature_msrs,
    kvm_vm_types,
    kvm_nested_state,
    kvm_qemu_user_access,
    qemu_binary,
    libvirt_daemon,
    libvirt_manage,
    libvirt_domcaps_kvm,
    libvirt_network,
    storage_pool,
    storage_images_dir,
    net_tun,
    net_vhost_net,
    net_vhost_vsock,
    net_bridges,
    net_ip_forward,
    net_bridge_netfilter,
    net_firewall,
    iommu_enabled,
    memory_hugepages,
    memory_thp,
    memory_ksm,
    memory_available,
    memory_overcommit,
    kernel_cgroups,
    confidential_sev,
    confidential_tdx,
    security_selinux,
    security_apparmor,
    devices_passthrough,
    smoke_boot,
};
inline constexpr FixId kAllFixes[] = {
    fix::pkg_virt_stack,
    fix::kvm_modules_load,
    fix::kvm_nested,
    fix::kvm_device_permissions,
    fix::user_groups,
    fix::net_ip_forward,
    fix::memory_hugepages,
    fix::libvirt_daemon,
    fix::libvirt_network_default,
    fix::storage_pool_default,
    fix::net_bridge,
    fix::devices_vfio_bind,
};

}  // namespace ids

}  // namespace kvmready
