// The PCI config space parser: whatever a recorded tree's sysfs `config`
// file holds (truncated, looping capability lists, all ones), decoded as the
// devices probe does. Seeds: the config spaces of a q35 guest's ports and
// devices, the sysfs config files in tests/bundles/devices-q35-iommu.tar.gz.
#include <cstdint>
#include <string_view>

#include "core/pci_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto c = kvmready::parse_pci_config(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)c;
    return 0;
}
