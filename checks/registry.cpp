#include "checks/checks.hpp"
#include "core/probe.hpp"

namespace kvmready {

const std::vector<CheckSpec>& registry() {
    static const std::vector<CheckSpec> r = [] {
        std::vector<CheckSpec> v;
        // Each file's checks read one facts area (net also reads libvirt's
        // networks), so the area is stamped here rather than in 45 specs.
        auto add = [&v](void (*reg)(std::vector<CheckSpec>&), unsigned areas) {
            const size_t first = v.size();
            reg(v);
            for (size_t i = first; i < v.size(); ++i) v[i].areas = areas;
        };
        add(checks::register_cpu, 0);
        add(checks::register_host, 0);
        add(checks::register_kvm, 0);
        add(checks::register_kvm_vmm, 0);
        add(checks::register_virt, kAreaVirt);
        add(checks::register_net, kAreaNet | kAreaVirt);
        add(checks::register_iommu, kAreaSystem);
        add(checks::register_memory, kAreaSystem);
        add(checks::register_cgroups, kAreaSystem);
        add(checks::register_confidential, kAreaSystem);
        add(checks::register_security, kAreaSystem);
        add(checks::register_devices, kAreaSystem | kAreaDevices);
        add(checks::register_smoke, 0);
        return v;
    }();
    return r;
}

}  // namespace kvmready
