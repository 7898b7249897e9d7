// Which checks a device event can change: `kvmready watch` re-probes only
// the facts areas behind them (the core for /dev/kvm and the kvm modules,
// net for interfaces, system for IOMMU groups and PCI devices) instead of
// the whole host on every interface a container runtime adds.
#pragma once

#include <set>
#include <string>

#include "host/udev_monitor.hpp"

namespace kvmready::watch {

struct Impact {
    unsigned areas = 0;                // ProbeArea bits beyond the core to re-read
    bool kvm = false;                  // /dev/kvm or a kvm module: the core's KVM ioctl test again
    std::set<std::string> categories;  // check categories whose verdicts it can change

    [[nodiscard]] bool relevant() const { return kvm || areas != 0 || !categories.empty(); }
    void merge(const Impact& o) {
        areas |= o.areas;
        kvm = kvm || o.kvm;
        categories.insert(o.categories.begin(), o.categories.end());
    }
};

// Nothing for events no check depends on (a disk partition, a USB mouse).
Impact impact_of(const host::Uevent& e);

// Everything: the periodic full run, lost events.
Impact everything();

}  // namespace kvmready::watch
