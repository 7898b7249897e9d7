#include "checks/checks.hpp"

namespace kvmready {

const std::vector<CheckSpec>& registry() {
    static const std::vector<CheckSpec> r = [] {
        std::vector<CheckSpec> v;
        checks::register_cpu(v);
        checks::register_host(v);
        checks::register_kvm(v);
        checks::register_kvm_vmm(v);
        checks::register_virt(v);
        checks::register_net(v);
        checks::register_system(v);
        return v;
    }();
    return r;
}

}  // namespace kvmready
