// One register_* function per check family; checks/registry.cpp lists them
// in display order (causes before effects).
#pragma once

#include <vector>

#include "core/check.hpp"

namespace kvmready::checks {

void register_cpu(std::vector<CheckSpec>& r);
void register_host(std::vector<CheckSpec>& r);
void register_kvm(std::vector<CheckSpec>& r);

}  // namespace kvmready::checks
