// Where the smoke test's guest files are: the builtin bare-metal guest
// (src/guest/builtin) and the Linux guest's static init (src/guest/init).
// Looked up, in order, in the build tree that compiled this binary, in the
// install tree next to it (<prefix>/bin/kvmready -> <prefix>/share/kvmready/),
// and in the directory named by the KVMREADY_GUEST_DIR environment variable.
#pragma once

#include <string>
#include <vector>

namespace kvmready::smoke {

// The first existing regular file `name` in the places above, or "" when it
// is nowhere; `searched` (optional) receives every path tried, for the
// "not found" message.
std::string guest_file_path(const std::string& name, std::vector<std::string>* searched = nullptr);

// kvmready-guest.elf: booted by QEMU through its PVH note.
std::string builtin_guest_path(std::vector<std::string>* searched = nullptr);

// kvmready-guest-multiboot.elf: the same guest with a multiboot v1 header
// (QEMU prefers multiboot when an image has both, hence a second file).
std::string builtin_guest_multiboot_path(std::vector<std::string>* searched = nullptr);

// kvmready-init: the Linux guest's /init.
std::string init_path(std::vector<std::string>* searched = nullptr);

}  // namespace kvmready::smoke
