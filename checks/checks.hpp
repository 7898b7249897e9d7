// One register_* function per check family; checks/registry.cpp lists them
// in display order (causes before effects).
#pragma once

#include <vector>

#include "core/check.hpp"

namespace kvmready::checks {

void register_cpu(std::vector<CheckSpec>& r);
void register_host(std::vector<CheckSpec>& r);
void register_kvm(std::vector<CheckSpec>& r);
void register_kvm_vmm(std::vector<CheckSpec>& r);   // kvm.* that real VMMs need
void register_virt(std::vector<CheckSpec>& r);      // qemu.*, libvirt.*, storage.*
void register_net(std::vector<CheckSpec>& r);       // net.*
void register_iommu(std::vector<CheckSpec>& r);         // iommu.*
void register_memory(std::vector<CheckSpec>& r);        // memory.*
void register_cgroups(std::vector<CheckSpec>& r);       // kernel.cgroups
void register_confidential(std::vector<CheckSpec>& r);  // confidential.*
void register_security(std::vector<CheckSpec>& r);      // security.*
void register_devices(std::vector<CheckSpec>& r);       // devices.passthrough
void register_smoke(std::vector<CheckSpec>& r);     // smoke.boot (kvmready check --full)

}  // namespace kvmready::checks
