#include "watch/impact.hpp"

#include "core/probe.hpp"

namespace kvmready::watch {

namespace {

bool starts(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// kvm, kvm_intel, kvm_amd, kvm_pvm and irqbypass (kvm's dependency).
bool kvm_module(const std::string& m) { return m == "kvm" || starts(m, "kvm_") || starts(m, "kvm-") || m == "irqbypass"; }
bool vfio_module(const std::string& m) { return starts(m, "vfio"); }
// What net.tun, net.vhost-*, net.bridges and net.bridge-netfilter read.
bool net_module(const std::string& m) {
    return m == "tun" || starts(m, "vhost") || m == "bridge" || m == "br_netfilter" || m == "vsock";
}

Impact kvm_impact() {
    Impact i;
    i.kvm = true;
    // kvm.* and cpu.* (the firmware check reads what the module said).
    i.categories = {"kvm", "cpu"};
    return i;
}

Impact net_impact() {
    Impact i;
    // The net checks also read libvirt's networks (their bridges).
    i.areas = kAreaNet | kAreaVirt;
    i.categories = {"net"};
    return i;
}

Impact devices_impact() {
    Impact i;
    // iommu.* reads the system facts, devices.passthrough the PCI devices.
    i.areas = kAreaSystem | kAreaDevices;
    i.categories = {"iommu", "devices"};
    return i;
}

}  // namespace

Impact impact_of(const host::Uevent& e) {
    const std::string& sub = e.subsystem;
    const std::string name = e.sysname.empty() ? e.devname : e.sysname;
    if (sub == "net") return net_impact();
    if (sub == "misc") {
        // KVM announces every VM created and destroyed as a "change" of
        // /dev/kvm (CREATED=, COUNT=): that is no change of KVM itself, and
        // the ioctl test's own VM would otherwise re-trigger a run forever.
        if (name == "kvm") return e.action == "change" ? Impact{} : kvm_impact();
        if (name == "vfio") return devices_impact();
        if (name == "tun" || starts(name, "vhost")) return net_impact();
        return {};
    }
    if (sub == "module") {
        if (kvm_module(name)) return kvm_impact();
        if (vfio_module(name)) return devices_impact();
        if (net_module(name)) return net_impact();
        return {};
    }
    // IOMMU group nodes, PCI devices appearing or changing driver.
    if (sub == "vfio" || sub == "pci") return devices_impact();
    return {};
}

Impact everything() {
    Impact i;
    i.areas = kAreaAll;
    i.kvm = true;
    return i;
}

}  // namespace kvmready::watch
