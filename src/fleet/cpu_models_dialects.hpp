// A named model with features to require and disable, printed the way each
// management layer takes it, to paste into its configuration.
#pragma once

#include <string>

#include "fleet/cpu_models.hpp"

namespace kvmready::fleet {

// <cpu mode='custom' match='exact'> with <model fallback='forbid'>, the
// vendor when known and one <feature policy='require|disable'> per change.
std::string libvirt_cpu_xml(const ModelFit& m, const std::string& vendor);
// nova.conf: [libvirt] cpu_mode=custom, cpu_models=, cpu_model_extra_flags=
// (libvirt names, lower case; '-' disables, as nova accepts since Wallaby).
std::string nova_conf(const ModelFit& m);
// A Proxmox VE VM option. Proxmox lets a VM's `flags=` name only a few
// flags; any other change needs a custom model in
// /etc/pve/virtual-guest/cpu-models.conf, printed first, named `name`.
std::string proxmox_cpu(const ModelFit& m, const std::string& name = "kvmready-baseline");
// KubeVirt VirtualMachine spec.domain.cpu (model and features with policy).
std::string kubevirt_cpu_yaml(const ModelFit& m);

// The flags Proxmox accepts in a VM's `cpu: MODEL,flags=` (qemu-server's
// PVE::QemuServer::CPUConfig).
bool proxmox_vm_flag(const std::string& qemu_name);

}  // namespace kvmready::fleet
