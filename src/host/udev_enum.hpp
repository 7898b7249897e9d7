// Device enumeration: the PCI devices with their udev properties and their
// place in the PCI tree, and the block and network devices with the PCI
// device they sit on (what a root filesystem or a default route depends
// on). Through libudev where a udev daemon keeps its database; where none
// does, libudev would only read sysfs, so sysfs is read directly, the same
// data at less than half the cost. The snapshot is plain data: a
// recording keeps it, and a recorded tree without one is enumerated from
// its sysfs files (enumerate_sysfs).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::host {

class Host;

struct UdevDevice {
    std::string subsystem;   // "pci", "block", "net"
    std::string sysname;     // "0000:01:00.0", "nvme0n1p1", "eth0"
    std::string syspath;     // "/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0"
    std::string devtype;     // block: "disk" or "partition"
    std::string devnum;      // block: "259:1"
    std::string driver;      // pci: the bound driver, "" when none
    // pci: the upstream PCI device (a bridge or port), "" on a root bus;
    // block and net: the nearest PCI device above it, "" when none (virtual).
    std::string pci_parent;
    std::map<std::string, std::string> properties;  // pci: udev's properties (PCI_ID, PCI_CLASS, ...)
};

struct UdevSnapshot {
    bool available = true;
    std::string source;      // "libudev", "sysfs", "recorded"
    std::string error;       // why devices could not be enumerated; "" when they were
    std::vector<UdevDevice> devices;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(UdevDevice, subsystem, sysname, syspath, devtype, devnum, driver, pci_parent, properties)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(UdevSnapshot, available, source, error, devices)

// "0000:01:00.0": a PCI address as sysfs names devices (domain 4-8 hex digits).
bool is_pci_address(const std::string& s);
// The last component of a sysfs path that is a PCI address: the PCI device
// a block or network device sits on, "" when none (a virtual device). Of a
// PCI device's parent directory: its upstream bridge or port.
std::string pci_device_in_path(const std::string& path);
// The live system: through libudev where a udev database exists, else
// from sysfs as libudev would read it (enumerate_sysfs_live).
UdevSnapshot enumerate_live();
// The live system through libudev.
UdevSnapshot enumerate_udev();
// The live system from sysfs: PCI devices with their uevent properties,
// block and network devices with the PCI device they sit on.
UdevSnapshot enumerate_sysfs_live();
// From a host's sysfs files alone: /sys/bus/pci/devices/*/uevent and the
// PCI functions each bridge's directory holds; no block or net devices.
UdevSnapshot enumerate_sysfs(const Host& h);

}  // namespace kvmready::host
