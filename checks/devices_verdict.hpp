// Per-device passthrough verdicts (checks/devices_verdict.cpp): pure
// functions of DevicesFacts, shared by the devices.passthrough check and the
// devices.vfio-bind fix (which must refuse what the check calls unassignable).
#pragma once

#include <string>
#include <vector>

#include "core/facts.hpp"

namespace kvmready::checks {

struct DeviceVerdict {
    const PciDevice* device = nullptr;
    bool assignable = false;            // can be given to a guest (now or after binding)
    bool ready = false;                 // it and its whole group are bound to vfio-pci (or harmless)
    std::vector<const PciDevice*> group_endpoints;  // the other devices that must go with it
    std::vector<std::string> why;       // why not assignable
    std::vector<std::string> todo;      // what to do to assign it
    std::vector<std::string> notes;     // caveats (reset, SR-IOV, interrupt remapping)
    std::vector<std::string> host_uses; // "holds the root filesystem (nvme0n1p2)", ...
};

// A PCI-to-PCI bridge or port: goes with its group, is never a guest device.
bool is_bridge(const PciDevice& d);
// Bound to a driver that leaves its group usable by VFIO.
bool vfio_viable(const PciDevice& d);
// What the host loses with it ("" when nothing).
std::vector<std::string> host_uses(const PciDevice& d);
// The devices --device names: a BDF (domain optional) or VENDOR:DEVICE.
std::vector<const PciDevice*> match_devices(const DevicesFacts& d, const std::string& selector);
const PciDevice* find_device(const DevicesFacts& d, const std::string& bdf);
DeviceVerdict judge_device(const DevicesFacts& facts, const PciDevice& d);
// vendor:device of d, "1af4:1041".
std::string vendor_device(const PciDevice& d);

}  // namespace kvmready::checks
