#include "checks/checks.hpp"
#include "checks/common.hpp"

namespace kvmready::checks {

void register_net(std::vector<CheckSpec>&) {}

}  // namespace kvmready::checks
