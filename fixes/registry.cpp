#include "fixes/fixes.hpp"

#include <mutex>

namespace kvmready::fix {

namespace {
FixSpec needing(FixSpec spec, const char* option) {
    spec.needs_option = option;
    return spec;
}
}  // namespace

const std::vector<FixSpec>& registry() {
    // Apply order matters: the module before /dev/kvm's permissions, groups
    // before daemons, the daemon before its networks and pools.
    static const std::vector<FixSpec> list = {
        fix_pkg_virt_stack(),  // first: the others configure what it installs
        fix_kvm_modules_load(),
        fix_kvm_nested(),
        fix_kvm_device_permissions(),
        fix_user_groups(),
        fix_net_ip_forward(),
        needing(fix_memory_hugepages(), "--hugepages"),
        fix_libvirt_daemon(),
        fix_libvirt_network_default(),
        fix_storage_pool_default(),
        needing(fix_net_bridge(), "--bridge"),
        needing(fix_devices_vfio_bind(), "--device"),
    };
    return list;
}

const FixSpec* find_fix(const std::string& id) {
    for (const auto& f : registry())
        if (id == f.id) return &f;
    return nullptr;
}

bool plannable_unaided(const std::string& id) {
    const FixSpec* f = find_fix(id);
    return f && !f->needs_option;
}

void register_builtin_ops() {
    static std::once_flag once;
    std::call_once(once, [] {
        register_file_ops();
        register_libvirt_ops();
        register_bridge_ops();
        register_package_ops();
        register_vfio_ops();
    });
}

}  // namespace kvmready::fix
