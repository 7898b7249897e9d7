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
void register_system(std::vector<CheckSpec>& r);    // iommu.*, memory.*, kernel.*, confidential.*, security.*
void register_smoke(std::vector<CheckSpec>& r);     // smoke.boot (kvmready check --full)

}  // namespace kvmready::checks
