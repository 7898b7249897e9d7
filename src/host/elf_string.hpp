#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace kvmready::host {

// The NUL-terminated string that starts with `prefix` in an ELF executable's
// .rodata (QEMU's "QEMU emulator version 7.2.22 (...)" banner), read without
// running the program. nullopt when the file is not a 64-bit ELF, has no
// .rodata, or the string is not there; *why says which.
std::optional<std::string> elf_rodata_string(const std::string& path, std::string_view prefix, std::string* why = nullptr);

}  // namespace kvmready::host
