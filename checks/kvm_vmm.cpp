#include "checks/checks.hpp"
#include "checks/common.hpp"

namespace kvmready::checks {

void register_kvm_vmm(std::vector<CheckSpec>&) {}

}  // namespace kvmready::checks
