// PCI configuration space, as sysfs' `config` file gives it (64 bytes to
// unprivileged readers, 256 or 4096 to root): the capabilities that decide
// passthrough. A parser of untrusted bytes (a recorded tree may hold
// anything), fuzzed by fuzz/fuzz_pci_config.cpp.
#pragma once

#include <string_view>

#include "core/facts_devices.hpp"

namespace kvmready {

struct PciConfig {
    bool is_pcie = false;  // a PCI Express capability in the standard list
    AcsInfo acs;           // the ACS extended capability (config_read: the extended space was there)
};

PciConfig parse_pci_config(std::string_view bytes);

// ACS Control bits the kernel requires on a port for the devices below it
// to get IOMMU groups of their own (pci_acs_enabled: Source Validation,
// P2P Request Redirect, P2P Completion Redirect, Upstream Forwarding).
inline constexpr uint16_t kAcsRequired = 0x1 | 0x4 | 0x8 | 0x10;

}  // namespace kvmready
