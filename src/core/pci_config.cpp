#include "core/pci_config.hpp"

namespace kvmready {

namespace {

constexpr size_t kStandardSize = 0x40;     // header every reader gets
constexpr size_t kExtendedStart = 0x100;   // PCIe extended capabilities
constexpr uint8_t kCapPcie = 0x10;
constexpr uint16_t kExtCapAcs = 0x000d;

uint16_t u16(std::string_view b, size_t off) {
    return static_cast<uint16_t>(static_cast<uint8_t>(b[off]) | (static_cast<uint8_t>(b[off + 1]) << 8));
}

uint32_t u32(std::string_view b, size_t off) { return u16(b, off) | (static_cast<uint32_t>(u16(b, off + 2)) << 16); }

}  // namespace

PciConfig parse_pci_config(std::string_view b) {
    PciConfig c;
    if (b.size() < kStandardSize) return c;
    // Standard capabilities: a list from 0x34 when Status bit 4 says there is
    // one. Bounded walk: a corrupt list may loop.
    if (u16(b, 0x06) & 0x10) {
        size_t ptr = static_cast<uint8_t>(b[0x34]) & 0xfc;
        for (int i = 0; i < 48 && ptr >= kStandardSize && ptr + 2 <= b.size(); ++i) {
            if (static_cast<uint8_t>(b[ptr]) == kCapPcie) c.is_pcie = true;
            ptr = static_cast<uint8_t>(b[ptr + 1]) & 0xfc;
        }
    }
    if (b.size() < kExtendedStart + 4) return c;
    c.acs.config_read = true;
    size_t off = kExtendedStart;
    // At most one capability per dword of the extended space.
    for (int i = 0; i < 960 && off + 4 <= b.size(); ++i) {
        const uint32_t hdr = u32(b, off);
        if (hdr == 0 || hdr == 0xffffffffu) break;
        if ((hdr & 0xffff) == kExtCapAcs && off + 8 <= b.size()) {
            c.acs.present = true;
            c.acs.capability = u16(b, off + 4);
            c.acs.control = u16(b, off + 6);
            break;
        }
        const size_t next = (hdr >> 20) & 0xffc;
        if (next < kExtendedStart) break;
        off = next;
    }
    return c;
}

}  // namespace kvmready
