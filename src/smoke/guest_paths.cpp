#include "smoke/guest_paths.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace kvmready::smoke {

namespace {

bool is_regular_file(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string exe_dir() {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return {};
    std::string p(buf, static_cast<size_t>(n));
    const auto slash = p.rfind('/');
    return slash == std::string::npos ? std::string{} : p.substr(0, slash);
}

}  // namespace

std::string guest_file_path(const std::string& name, std::vector<std::string>* searched) {
    std::vector<std::string> dirs;
#ifdef KVMREADY_GUEST_DIR
    dirs.emplace_back(KVMREADY_GUEST_DIR);
#endif
    // Installed: PREFIX/lib/kvmready (architecture-dependent files, which
    // Debian policy keeps out of share/).
    if (const auto dir = exe_dir(); !dir.empty()) dirs.push_back(dir + "/../lib/kvmready");
    if (const char* env = std::getenv("KVMREADY_GUEST_DIR"); env && *env) dirs.emplace_back(env);
    for (const auto& d : dirs) {
        const std::string p = d + "/" + name;
        if (searched) searched->push_back(p);
        if (is_regular_file(p)) return p;
    }
    return {};
}

std::string builtin_guest_path(std::vector<std::string>* searched) {
    return guest_file_path("kvmready-guest.elf", searched);
}

std::string builtin_guest_multiboot_path(std::vector<std::string>* searched) {
    return guest_file_path("kvmready-guest-multiboot.elf", searched);
}

std::string init_path(std::vector<std::string>* searched) {
    return guest_file_path("kvmready-init", searched);
}

}  // namespace kvmready::smoke
