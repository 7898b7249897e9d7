// The newc writer is our own rather than libarchive's: the format is a fixed
// 110-byte ASCII header, the name and the data, each padded to 4 bytes, and
// the smoke guest needs nothing else (no compression: the archive is a few MB
// read once from the page cache, and gzip would cost more CPU in the guest
// than it saves in I/O). That keeps the Linux guest independent of
// libarchive; libarchive is only loaded (dlopen, see util/dynlib.hpp) when a
// kernel ships compressed modules, since it decodes xz, zstd and gzip alike.
#include "smoke/initramfs.hpp"

#include <archive.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "host/nofollow_fs.hpp"
#include "host/target.hpp"
#include "util/dynlib.hpp"

namespace kvmready::smoke {
namespace {

namespace fs = std::filesystem;

constexpr std::uintmax_t kMaxFileBytes = 64ull << 20;  // no module or init is near this

#define KVMREADY_INITRAMFS_ARCHIVE_FUNCTIONS(X) \
    X(archive_error_string)                     \
    X(archive_read_data)                        \
    X(archive_read_free)                        \
    X(archive_read_new)                         \
    X(archive_read_next_header)                 \
    X(archive_read_open_filename)               \
    X(archive_read_support_filter_all)          \
    X(archive_read_support_format_raw)

struct InitramfsArchiveApi {
    KVMREADY_INITRAMFS_ARCHIVE_FUNCTIONS(KVMREADY_API_MEMBER)
};

const InitramfsArchiveApi* archive_api(std::string* error) {
    return util::load_api<InitramfsArchiveApi>(
        "libarchive.so.13", "libarchive13",
        [](auto sym, InitramfsArchiveApi& api) { KVMREADY_INITRAMFS_ARCHIVE_FUNCTIONS(KVMREADY_API_RESOLVE) },
        error);
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The suffix a compressed module carries after ".ko", or "".
std::string_view compression_suffix(std::string_view path) {
    for (std::string_view s : {".xz", ".zst", ".gz"})
        if (ends_with(path, std::string(".ko") + std::string(s))) return s;
    return {};
}

// "kernel/drivers/net/virtio_net.ko.xz" -> "virtio_net" (module names use
// '_' where file names may use '-').
std::string module_name(std::string_view path) {
    auto slash = path.rfind('/');
    std::string base(slash == std::string_view::npos ? path : path.substr(slash + 1));
    base = base.substr(0, base.find('.'));
    std::replace(base.begin(), base.end(), '-', '_');
    return base;
}

bool read_plain(const fs::path& p, std::string& data, std::string* error) {
    std::error_code ec;
    auto size = fs::file_size(p, ec);
    if (ec) {
        *error = fmt::format("cannot read {}: {}", p.string(), ec.message());
        return false;
    }
    if (size > kMaxFileBytes) {
        *error = fmt::format("{} is {} bytes, more than any initramfs member should be", p.string(), size);
        return false;
    }
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (!in && !in.eof()) {
        *error = fmt::format("cannot read {}", p.string());
        return false;
    }
    data = std::move(ss).str();
    return true;
}

bool read_decompressed(const fs::path& p, std::string& data, std::string* error) {
    std::string load_error;
    const InitramfsArchiveApi* la = archive_api(&load_error);
    if (!la) {
        *error = fmt::format("{} is compressed and decompressing it needs libarchive: {}", p.string(), load_error);
        return false;
    }
    archive* a = la->archive_read_new();
    if (!a) {
        *error = "libarchive: out of memory";
        return false;
    }
    la->archive_read_support_filter_all(a);
    la->archive_read_support_format_raw(a);
    bool ok = false;
    archive_entry* entry = nullptr;
    if (la->archive_read_open_filename(a, p.c_str(), 1 << 16) == ARCHIVE_OK &&
        la->archive_read_next_header(a, &entry) == ARCHIVE_OK) {
        data.clear();
        char buf[1 << 16];
        for (;;) {
            la_ssize_t n = la->archive_read_data(a, buf, sizeof buf);
            if (n < 0) break;
            if (n == 0) {
                ok = true;
                break;
            }
            data.append(buf, static_cast<size_t>(n));
            if (data.size() > kMaxFileBytes) break;
        }
    }
    if (!ok) {
        const char* e = la->archive_error_string(a);
        *error = fmt::format("cannot decompress {}: {}", p.string(),
                             data.size() > kMaxFileBytes ? "larger than 64 MiB" : (e ? e : "unknown error"));
    }
    la->archive_read_free(a);
    return ok;
}

// One newc archive being assembled in memory (a few MB at most).
class Newc {
public:
    void dir(const std::string& name) { add(name, S_IFDIR | 0755, 2, "", 0, 0); }
    void file(const std::string& name, unsigned mode, const std::string& data) {
        add(name, S_IFREG | mode, 1, data, 0, 0);
    }
    void chr(const std::string& name, unsigned mode, unsigned major, unsigned minor) {
        add(name, S_IFCHR | mode, 1, "", major, minor);
    }
    // Every parent directory of `name` that is not in the archive yet.
    void parents(const std::string& name) {
        for (size_t pos = name.find('/'); pos != std::string::npos; pos = name.find('/', pos + 1)) {
            std::string d = name.substr(0, pos);
            if (dirs_.insert(d).second) dir(d);
        }
    }
    const std::string& finish() {
        add("TRAILER!!!", 0, 1, "", 0, 0);
        return out_;
    }

private:
    void add(const std::string& name, unsigned mode, unsigned nlink, const std::string& data, unsigned rmajor,
             unsigned rminor) {
        // Fixed owner (root) and mtime (0): the archive depends only on its
        // inputs, and the kernel makes everything root-owned anyway.
        out_ += fmt::format("070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
                            ++ino_, mode, 0, 0, nlink, 0, data.size(), 0, 0, rmajor, rminor, name.size() + 1, 0);
        out_ += name;
        out_ += '\0';
        pad();
        out_ += data;
        pad();
    }
    void pad() { out_.append((4 - out_.size() % 4) % 4, '\0'); }

    std::string out_;
    std::set<std::string> dirs_;
    unsigned ino_ = 0;
};

struct DepEntry {
    std::string path;               // as written in modules.dep (relative to the modules dir)
    std::vector<std::string> deps;  // names
};

// modules.dep: "kernel/a/b.ko: kernel/c.ko kernel/d.ko", each module before
// what it depends on. Keyed by module name.
std::map<std::string, DepEntry> parse_modules_dep(const std::string& text) {
    std::map<std::string, DepEntry> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        DepEntry e;
        e.path = line.substr(0, colon);
        std::istringstream rest(line.substr(colon + 1));
        std::string d;
        while (rest >> d) e.deps.push_back(module_name(d));
        out.emplace(module_name(e.path), std::move(e));
    }
    return out;
}

std::set<std::string> parse_builtin(const std::string& text) {
    std::set<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (!line.empty()) out.insert(module_name(line));
    return out;
}

}  // namespace

std::optional<std::string> kernel_release(const fs::path& image, std::string* error) {
    std::string local_error;
    if (!error) error = &local_error;
    std::ifstream in(image, std::ios::binary);
    if (!in) {
        *error = fmt::format("cannot read kernel image {}: {}", image.string(), std::strerror(errno));
        return std::nullopt;
    }
    // Linux boot protocol: "HdrS" at 0x202; at 0x20e a 16-bit pointer to the
    // NUL-terminated version string, relative to 0x200.
    unsigned char hdr[0x210];
    in.read(reinterpret_cast<char*>(hdr), sizeof hdr);
    if (in.gcount() != static_cast<std::streamsize>(sizeof hdr) || std::memcmp(hdr + 0x202, "HdrS", 4) != 0) {
        *error = fmt::format("{} is not an x86 Linux kernel image (no boot protocol header)", image.string());
        return std::nullopt;
    }
    unsigned ptr = hdr[0x20e] | (hdr[0x20f] << 8);
    char ver[256] = {};
    in.seekg(ptr + 0x200);
    in.read(ver, sizeof ver - 1);
    std::string release(ver, strnlen(ver, sizeof ver - 1));
    release = release.substr(0, release.find(' '));
    bool sane = ptr != 0 && !release.empty() && std::all_of(release.begin(), release.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == '+';
    });
    if (!sane) {
        *error = fmt::format("{} carries no kernel version string", image.string());
        return std::nullopt;
    }
    return release;
}

fs::path modules_dir_for(std::string_view release, const fs::path& root) {
    if (release.empty() || release.find('/') != std::string_view::npos || release == "." || release == "..")
        return {};
    for (const char* base : {"lib/modules", "usr/lib/modules"}) {
        fs::path p = root / base / std::string(release);
        std::error_code ec;
        if (fs::is_directory(p, ec)) return p;
    }
    return {};
}

std::optional<InitramfsResult> write_initramfs(const fs::path& out, const InitramfsOptions& opt,
                                               std::string* error) {
    std::string local_error;
    if (!error) error = &local_error;
    InitramfsResult res;
    Newc cpio;

    std::string init;
    if (opt.init.empty()) {
        *error = "no guest init given (build target kvmready_init)";
        return std::nullopt;
    }
    if (!read_plain(opt.init, init, error)) return std::nullopt;
    if (init.size() < 4 || init.compare(0, 4, "\x7f" "ELF") != 0) {
        *error = fmt::format("{} is not an ELF executable", opt.init.string());
        return std::nullopt;
    }
    cpio.file("init", 0755, init);
    // The kernel opens /dev/console for init before anything is mounted.
    cpio.dir("dev");
    cpio.chr("dev/console", 0600, 5, 1);
    cpio.dir("proc");
    cpio.dir("sys");

    std::string list;
    if (!opt.modules_dir.empty()) {
        std::string dep_text, builtin_text;
        std::error_code ec;
        const fs::path dep_file = opt.modules_dir / "modules.dep";
        bool have_dep = fs::exists(dep_file, ec);
        if (have_dep && !read_plain(dep_file, dep_text, error)) return std::nullopt;
        if (fs::exists(opt.modules_dir / "modules.builtin", ec) &&
            !read_plain(opt.modules_dir / "modules.builtin", builtin_text, error))
            return std::nullopt;
        const auto deps = parse_modules_dep(dep_text);
        const auto builtin = parse_builtin(builtin_text);
        const std::string release = opt.modules_dir.filename().string();
        const std::string prefix = "lib/modules/" + (release.empty() ? std::string("unknown") : release) + "/";

        std::set<std::string> visited;
        // Depth first, dependencies before the module: the order the init's
        // finit_module() calls must follow.
        std::function<bool(const std::string&)> visit = [&](const std::string& name) -> bool {
            if (!visited.insert(name).second) return true;
            auto it = deps.find(name);
            if (it == deps.end()) {
                // A dependency missing from modules.dep is a broken install.
                *error = fmt::format("{} names module {} but has no entry for it", dep_file.string(), name);
                return false;
            }
            for (auto d = it->second.deps.rbegin(); d != it->second.deps.rend(); ++d)
                if (!visit(*d)) return false;
            fs::path src = it->second.path;
            std::string rel = src.is_absolute() ? src.filename().string() : it->second.path;
            if (src.is_relative()) src = opt.modules_dir / src;
            std::string data;
            std::string_view comp = compression_suffix(rel);
            if (!comp.empty()) {
                if (!read_decompressed(src, data, error)) return false;
                rel.resize(rel.size() - comp.size());
            } else if (!read_plain(src, data, error)) {
                return false;
            }
            cpio.parents(prefix + rel);
            cpio.file(prefix + rel, 0644, data);
            list += "/" + prefix + rel + "\n";
            res.packed.push_back(name);
            return true;
        };
        for (const auto& wanted : opt.modules) {
            std::string name = module_name(wanted);
            if (deps.count(name)) {
                if (!visit(name)) return std::nullopt;
            } else if (builtin.count(name)) {
                res.builtin.push_back(name);
            } else {
                res.missing.push_back(name);
            }
        }
    }
    if (!list.empty()) cpio.file("modules.list", 0644, list);

    const std::string& data = cpio.finish();
    host::Target& sys = opt.target ? *opt.target : host::live_target();
    if (!sys.replace_file(out.string(), data, 0644, error)) return std::nullopt;
    res.bytes = data.size();
    return res;
}

}  // namespace kvmready::smoke
