#pragma once
// The initramfs of the Linux smoke guest (`kvmready smoke --guest linux`):
// a newc cpio holding the project's static init (src/guest/init/init.c) as
// /init, /dev/console, and the kernel modules the init must load to see its
// virtio disk and NIC, with /modules.list naming them in load order.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvmready::host {
class Target;
}

namespace kvmready::smoke {

// What the guest needs from its kernel: the virtio PCI transport, the disk
// and the NIC (plus whatever modules.dep says they depend on).
inline const std::vector<std::string>& linux_guest_modules() {
    static const std::vector<std::string> m = {"virtio_pci", "virtio_blk", "virtio_net"};
    return m;
}

struct InitramfsOptions {
    std::filesystem::path init;         // static executable, packed as /init
    std::filesystem::path modules_dir;  // <root>/lib/modules/<release>; empty: pack no modules
    std::vector<std::string> modules = linux_guest_modules();  // names, '-' or '_'
    host::Target* target = nullptr;     // what writes the archive (nullptr: the live system)
};

struct InitramfsResult {
    std::vector<std::string> packed;   // module names in load order, dependencies first
    std::vector<std::string> builtin;  // wanted modules listed in modules.builtin
    // Wanted modules found nowhere (no modules.dep, or not in it and not in
    // modules.builtin). Not an error here: the kernel may have them built in
    // without a modules.builtin to say so; the guest then reports exactly
    // which device it could not find.
    std::vector<std::string> missing;
    std::uintmax_t bytes = 0;          // size of the archive written
};

// Writes the archive to `out` (mode 0644: the hypervisor's user must read it;
// the caller puts it in its private per-run directory). The file appears
// complete or not at all. Compressed modules (.ko.xz, .ko.zst, .ko.gz) are
// packed decompressed: the kernel's finit_module() may lack the decompressor.
// On error: nullopt and a one-sentence *error; nothing is left at `out`.
std::optional<InitramfsResult> write_initramfs(const std::filesystem::path& out, const InitramfsOptions& opt,
                                               std::string* error);

// <root>/lib/modules/<release> or <root>/usr/lib/modules/<release>, the first
// that exists; empty when neither does (a kernel without installed modules).
std::filesystem::path modules_dir_for(std::string_view release, const std::filesystem::path& root = "/");

// The release ("6.1.0-56-cloud-amd64") an x86 bzImage was built as, from the
// version string its boot-protocol header points at (the first word of what
// `file` shows). Lets `--kernel PATH` find PATH's /lib/modules directory.
// nullopt (and *error) for anything that is not a bzImage with that string.
std::optional<std::string> kernel_release(const std::filesystem::path& image, std::string* error = nullptr);

}  // namespace kvmready::smoke
