// One function per fix (each in its own file under fixes/) and one per group
// of ops; fixes/registry.cpp lists them explicitly, in apply order.
#pragma once

#include "fixes/fix.hpp"

namespace kvmready::fix {

// fixes/packages.cpp
FixSpec fix_pkg_virt_stack();
// fixes/kvm.cpp
FixSpec fix_kvm_modules_load();
FixSpec fix_kvm_nested();
FixSpec fix_kvm_device_permissions();
FixSpec fix_user_groups();
// fixes/sysctl.cpp
FixSpec fix_net_ip_forward();
FixSpec fix_memory_hugepages();
// fixes/libvirt_daemon.cpp, fixes/libvirt_network.cpp, fixes/storage_pool.cpp
FixSpec fix_libvirt_daemon();
FixSpec fix_libvirt_network_default();
FixSpec fix_storage_pool_default();
// fixes/bridge.cpp
FixSpec fix_net_bridge();
// fixes/vfio_bind.cpp
FixSpec fix_devices_vfio_bind();

// Ops: fixes/ops_file.cpp (file.write, file.remove, proc.write, command, node.perms)
void register_file_ops();
// Ops: fixes/ops_libvirt.cpp (libvirt.network.*, libvirt.pool.*, daemon.start, systemd.enable-now)
void register_libvirt_ops();
// Ops: fixes/ops_bridge.cpp (bridge.link, bridge.nm)
void register_bridge_ops();
// Ops: fixes/ops_packages.cpp (packages.install)
void register_package_ops();
// Ops: fixes/vfio_ops.cpp (pci.driver)
void register_vfio_ops();

}  // namespace kvmready::fix
