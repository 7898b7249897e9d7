// Why not `qemu-system-x86_64 --version`: starting QEMU maps ~90 shared
// libraries and costs 12-15 ms here, more than every other check together.
// Its banner is a single string literal in .rodata (~1.8 MB of an 18 MB
// binary), which a chunked search finds in a fraction of a millisecond.
#include "host/elf_string.hpp"
#include "host/unique_fd.hpp"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace kvmready::host {

namespace {


bool pread_all(int fd, void* buf, size_t len, off_t off) {
    auto* p = static_cast<char*>(buf);
    while (len > 0) {
        const ssize_t n = ::pread(fd, p, len, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= static_cast<size_t>(n);
        off += n;
    }
    return true;
}

std::optional<std::string> fail(std::string* why, std::string reason) {
    if (why) *why = std::move(reason);
    return std::nullopt;
}

}  // namespace

std::optional<std::string> elf_rodata_string(const std::string& path, std::string_view prefix, std::string* why) {
    constexpr uint64_t kMaxSection = 64ull << 20;  // a sane .rodata; refuse absurd headers
    UniqueFd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY)};
    if (f.get() < 0) return fail(why, std::string("cannot open: ") + std::strerror(errno));
    Elf64_Ehdr eh{};
    if (!pread_all(f.get(), &eh, sizeof eh, 0) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 ||
        eh.e_shstrndx >= eh.e_shnum)
        return fail(why, "not a 64-bit ELF file with section headers");
    std::vector<Elf64_Shdr> sh(eh.e_shnum);
    if (!pread_all(f.get(), sh.data(), sh.size() * sizeof(Elf64_Shdr), static_cast<off_t>(eh.e_shoff)))
        return fail(why, "truncated section header table");
    const Elf64_Shdr& names = sh[eh.e_shstrndx];
    if (names.sh_size > kMaxSection) return fail(why, "section name table too large");
    std::string strtab(names.sh_size, '\0');
    if (!pread_all(f.get(), strtab.data(), strtab.size(), static_cast<off_t>(names.sh_offset)))
        return fail(why, "truncated section name table");
    for (const auto& s : sh) {
        if (s.sh_name >= strtab.size() || std::strcmp(strtab.c_str() + s.sh_name, ".rodata") != 0) continue;
        if (s.sh_type != SHT_PROGBITS || s.sh_size > kMaxSection) return fail(why, ".rodata is not plain data");
        // Chunks, not one 2 MB buffer: zero-filling and copying that cost
        // more than the search. Consecutive chunks overlap by the prefix
        // length so a match across a boundary is still seen.
        constexpr size_t kChunk = 128 * 1024;
        std::string buf(kChunk + prefix.size(), '\0');
        const uint64_t begin = s.sh_offset, stop = s.sh_offset + s.sh_size;
        for (uint64_t off = begin; off < stop;) {
            const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), stop - off));
            if (!pread_all(f.get(), buf.data(), want, static_cast<off_t>(off))) return fail(why, "truncated .rodata");
            const std::string_view chunk(buf.data(), want);
            if (const size_t at = chunk.find(prefix); at != std::string_view::npos) {
                std::string out;
                uint64_t pos = off + at;
                char piece[256];
                while (pos < stop && out.size() < 4096) {
                    const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof piece, stop - pos));
                    if (!pread_all(f.get(), piece, n, static_cast<off_t>(pos))) break;
                    const std::string_view v(piece, n);
                    const size_t nul = v.find('\0');
                    out.append(v.substr(0, nul));
                    if (nul != std::string_view::npos) break;
                    pos += n;
                }
                return out;
            }
            if (off + want >= stop) break;
            off += want - prefix.size();
        }
        return fail(why, "no string starting with \"" + std::string(prefix) + "\" in .rodata");
    }
    return fail(why, "no .rodata section");
}

}  // namespace kvmready::host
