#include "fixes/safe_fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "host/bounded_read.hpp"

namespace kvmready::fix {

namespace {

struct Fd {
    int fd = -1;
    explicit Fd(int f = -1) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd = o.fd;
            o.fd = -1;
        }
        return *this;
    }
    ~Fd() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

[[noreturn]] void fail(const std::string& what, int e) {
    if (e == ELOOP || e == ENOTDIR)
        throw std::runtime_error(fmt::format("{}: refusing to follow a symbolic link (or a non-directory) on the way", what));
    throw std::runtime_error(fmt::format("{}: {}", what, std::strerror(e)));
}

std::vector<std::string> components(const std::string& path) {
    if (path.empty() || path[0] != '/') throw std::runtime_error(fmt::format("{}: not an absolute path", path));
    std::vector<std::string> parts;
    size_t i = 1;
    while (i <= path.size()) {
        size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        std::string c = path.substr(i, j - i);
        if (c == "..") throw std::runtime_error(fmt::format("{}: '..' is not allowed", path));
        if (!c.empty() && c != ".") parts.push_back(c);
        i = j + 1;
    }
    if (parts.empty()) throw std::runtime_error(fmt::format("{}: names no file", path));
    return parts;
}

std::string display(const std::string& root, const std::string& path) { return root.empty() ? path : root + path; }

// The directory holding path's last component, opened without following
// symlinks from the root down; nullopt-like Fd(-1) with *missing when a
// component does not exist and create is false.
Fd open_parent(const std::string& root, const std::string& path, bool create, std::string* leaf, bool* missing) {
    auto parts = components(path);
    *leaf = parts.back();
    parts.pop_back();
    Fd dir(::open(root.empty() ? "/" : root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.fd < 0) fail(root.empty() ? "/" : root, errno);
    std::string walked = root;
    for (const auto& c : parts) {
        walked += "/" + c;
        int fd = ::openat(dir.fd, c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
            if (::mkdirat(dir.fd, c.c_str(), 0755) != 0 && errno != EEXIST) fail(walked, errno);
            fd = ::openat(dir.fd, c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
            if (errno == ENOENT && missing) {
                *missing = true;
                return Fd();
            }
            fail(walked, errno);
        }
        dir = Fd(fd);
    }
    return dir;
}

void write_all(int fd, const std::string& data, const std::string& what) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail(what, errno);
        }
        off += static_cast<size_t>(n);
    }
}

}  // namespace

std::optional<std::string> read_nofollow(const std::string& root, const std::string& path, FileMeta* meta) {
    std::string leaf;
    bool missing = false;
    Fd dir = open_parent(root, path, false, &leaf, &missing);
    if (missing) return std::nullopt;
    Fd f(::openat(dir.fd, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (f.fd < 0) {
        if (errno == ENOENT) return std::nullopt;
        fail(display(root, path), errno);
    }
    struct stat st{};
    if (::fstat(f.fd, &st) != 0) fail(display(root, path), errno);
    if (!S_ISREG(st.st_mode)) throw std::runtime_error(fmt::format("{}: not a regular file", display(root, path)));
    if (meta) *meta = FileMeta{static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid};
    host::BoundedRead r = host::read_fd_bounded(f.fd, host::kMaxHostFileBytes);
    if (!r.data) {
        if (r.error == EFBIG) throw std::runtime_error(host::describe_read_failure(r, display(root, path), host::kMaxHostFileBytes));
        fail(display(root, path), r.error);
    }
    return std::move(*r.data);
}

void write_atomic(const std::string& root, const std::string& path, const std::string& content, const FileMeta& meta,
                  const std::string& temp_name) {
    std::string leaf;
    Fd dir = open_parent(root, path, true, &leaf, nullptr);
    const std::string what = display(root, path);
    // The target itself must not be a symlink either (rename would replace the
    // link, not write through it, but a link there means someone expects it).
    struct stat st{};
    if (::fstatat(dir.fd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        throw std::runtime_error(fmt::format("{}: is a symbolic link; refusing to replace it", what));
    ::unlinkat(dir.fd, temp_name.c_str(), 0);  // a leftover of a killed run
    Fd f(::openat(dir.fd, temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (f.fd < 0) fail(what, errno);
    try {
        write_all(f.fd, content, what);
        if (::fchown(f.fd, meta.uid, meta.gid) != 0 && geteuid() == 0) fail(what, errno);
        if (::fchmod(f.fd, meta.mode) != 0) fail(what, errno);
        if (::fsync(f.fd) != 0) fail(what, errno);
        f.reset();
        if (::renameat(dir.fd, temp_name.c_str(), dir.fd, leaf.c_str()) != 0) fail(what, errno);
    } catch (...) {
        ::unlinkat(dir.fd, temp_name.c_str(), 0);
        throw;
    }
    ::fsync(dir.fd);
}

void remove_nofollow(const std::string& root, const std::string& path) {
    std::string leaf;
    bool missing = false;
    Fd dir = open_parent(root, path, false, &leaf, &missing);
    if (missing) return;
    if (::unlinkat(dir.fd, leaf.c_str(), 0) != 0 && errno != ENOENT) fail(display(root, path), errno);
    ::fsync(dir.fd);
}

void remove_temp(const std::string& root, const std::string& path, const std::string& temp_name) {
    std::string leaf;
    bool missing = false;
    Fd dir = open_parent(root, path, false, &leaf, &missing);
    if (!missing) ::unlinkat(dir.fd, temp_name.c_str(), 0);
}

void write_file_durably(const std::string& path, const std::string& content, unsigned mode) {
    const std::string tmp = path + ".tmp";
    Fd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode));
    if (f.fd < 0) fail(tmp, errno);
    write_all(f.fd, content, tmp);
    if (::fsync(f.fd) != 0) fail(tmp, errno);
    f.reset();
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail(path, errno);
}

void append_durably(int fd, const std::string& line) {
    write_all(fd, line, "journal");
    if (::fsync(fd) != 0) fail("journal", errno);
}

}  // namespace kvmready::fix
