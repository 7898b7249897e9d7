// DevicesFacts: the PCI devices of the host as passthrough (VFIO) sees them,
// read by probe_devices.cpp through the host's udev enumeration and sysfs
// attributes. Everything here is plain data, so a recording judges alike.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_optional.hpp"

namespace kvmready {

// The ACS extended capability of a port, decoded from its config space.
struct AcsInfo {
    bool config_read = false;      // the extended config space (4096 bytes) could be read (root only)
    bool present = false;          // the ACS capability exists
    uint16_t capability = 0;       // ACS Capability register
    uint16_t control = 0;          // ACS Control register
};

struct PciDevice {
    std::string bdf;               // 0000:01:00.0
    std::string vendor, device;    // "1af4", "1041" (lower-case hex)
    std::string class_code;        // "010802"
    std::string driver;            // bound driver, "" when none
    std::string driver_override;   // /sys/.../driver_override, "" when unset
    std::string parent;            // upstream bridge/port, "" on a root bus
    std::optional<int> iommu_group;
    bool is_pcie = false;          // has a PCI Express capability (a port's ACS matters)
    AcsInfo acs;
    std::optional<std::string> reset_method;  // reset_method file (kernel >= 5.15): "flr bus", "" none
    bool reset_file = false;                  // a reset attribute exists (the kernel can reset it somehow)
    std::optional<unsigned> sriov_totalvfs, sriov_numvfs;
    bool boot_vga = false;
    std::vector<std::string> block_devices;   // block devices on it (nvme0n1, vda, ...)
    std::vector<std::string> net_devices;     // network interfaces on it
    bool root_fs = false;          // holds the root filesystem (directly or under dm/md)
    bool default_route = false;    // carries a default route (directly or as a bridge/bond port)
};

// vfio, vfio_pci, vfio_iommu_type1: "loaded", "builtin", "loadable" or "absent".
struct DevicesFacts {
    bool probed = false;
    std::string enumeration;       // "libudev", "sysfs", "recorded"
    std::string error;             // why devices could not be enumerated
    std::vector<PciDevice> pci;    // in address order
    std::map<std::string, std::string> vfio_modules;
    // Interrupt remapping: true when /proc/interrupts shows remapped (IR-)
    // interrupt chips, false when it shows MSI ones that are not remapped.
    std::optional<bool> interrupt_remapping;
    std::optional<std::string> allow_unsafe_interrupts;  // vfio_iommu_type1 parameter, when loaded
    std::string root_device;       // block device of / ("nvme0n1p2", "dm-0")
    std::vector<std::string> default_route_interfaces;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AcsInfo, config_read, present, capability, control)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PciDevice, bdf, vendor, device, class_code, driver, driver_override, parent,
                                                iommu_group, is_pcie, acs, reset_method, reset_file, sriov_totalvfs, sriov_numvfs,
                                                boot_vga, block_devices, net_devices, root_fs, default_route)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DevicesFacts, probed, enumeration, error, pci, vfio_modules, interrupt_remapping,
                                                allow_unsafe_interrupts, root_device, default_route_interfaces)

}  // namespace kvmready
