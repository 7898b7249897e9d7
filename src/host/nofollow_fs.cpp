#include "host/nofollow_fs.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "host/bounded_read.hpp"
#include "host/unique_fd.hpp"

namespace kvmready::host {

namespace {

using Fd = UniqueFd;

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
    if (!dir.ok()) fail(root.empty() ? "/" : root, errno);
    std::string walked = root;
    for (const auto& c : parts) {
        walked += "/" + c;
        int fd = ::openat(dir.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
            if (::mkdirat(dir.get(), c.c_str(), 0755) != 0 && errno != EEXIST) fail(walked, errno);
            fd = ::openat(dir.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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

namespace {

// root+path opened read-only as read_nofollow() and check_nofollow() need it:
// no symlink in any component, a regular file. Nothing when absent.
std::optional<Fd> open_regular_nofollow(const std::string& root, const std::string& path, FileMeta* meta, off_t* size = nullptr) {
    std::string leaf;
    bool missing = false;
    Fd dir = open_parent(root, path, false, &leaf, &missing);
    if (missing) return std::nullopt;
    Fd f(::openat(dir.get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!f.ok()) {
        if (errno == ENOENT) return std::nullopt;
        fail(display(root, path), errno);
    }
    struct stat st{};
    if (::fstat(f.get(), &st) != 0) fail(display(root, path), errno);
    if (!S_ISREG(st.st_mode)) throw std::runtime_error(fmt::format("{}: not a regular file", display(root, path)));
    if (meta) *meta = FileMeta{static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid};
    if (size) *size = st.st_size;
    return f;
}

}  // namespace

std::optional<std::string> read_nofollow(const std::string& root, const std::string& path, FileMeta* meta) {
    std::optional<Fd> f = open_regular_nofollow(root, path, meta);
    if (!f) return std::nullopt;
    host::BoundedRead r = host::read_fd_bounded(f->get(), host::kMaxHostFileBytes);
    if (!r.data) {
        if (r.error == EFBIG) throw std::runtime_error(host::describe_read_failure(r, display(root, path), host::kMaxHostFileBytes));
        fail(display(root, path), r.error);
    }
    return std::move(*r.data);
}

void check_nofollow(const std::string& root, const std::string& path) {
    off_t size = 0;
    if (!open_regular_nofollow(root, path, nullptr, &size)) return;
    // As read_nofollow() would refuse it: over the cap (a regular file's size is exact).
    if (static_cast<uint64_t>(size) > host::kMaxHostFileBytes)
        throw std::runtime_error(host::describe_read_failure({std::nullopt, EFBIG, ""}, display(root, path), host::kMaxHostFileBytes));
}

void write_atomic(const std::string& root, const std::string& path, const std::string& content, const FileMeta& meta,
                  const std::string& temp_name) {
    std::string leaf;
    Fd dir = open_parent(root, path, true, &leaf, nullptr);
    const std::string what = display(root, path);
    // The target itself must not be a symlink either (rename would replace the
    // link, not write through it, but a link there means someone expects it).
    struct stat st{};
    if (::fstatat(dir.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        throw std::runtime_error(fmt::format("{}: is a symbolic link; refusing to replace it", what));
    ::unlinkat(dir.get(), temp_name.c_str(), 0);  // a leftover of a killed run
    Fd f(::openat(dir.get(), temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!f.ok()) fail(what, errno);
    try {
        write_all(f.get(), content, what);
        if (::fchown(f.get(), meta.uid, meta.gid) != 0 && geteuid() == 0) fail(what, errno);
        if (::fchmod(f.get(), meta.mode) != 0) fail(what, errno);
        if (::fsync(f.get()) != 0) fail(what, errno);
        f.reset();
        if (::renameat(dir.get(), temp_name.c_str(), dir.get(), leaf.c_str()) != 0) fail(what, errno);
    } catch (...) {
        ::unlinkat(dir.get(), temp_name.c_str(), 0);
        throw;
    }
    ::fsync(dir.get());
}

void remove_nofollow(const std::string& root, const std::string& path) {
    std::string leaf;
    bool missing = false;
    Fd dir = open_parent(root, path, false, &leaf, &missing);
    if (missing) return;
    if (::unlinkat(dir.get(), leaf.c_str(), 0) != 0 && errno != ENOENT) fail(display(root, path), errno);
    ::fsync(dir.get());
}

void remove_temp(const std::string& root, const std::string& path, const std::string& temp_name) {
    std::string leaf;
    bool missing = false;
    Fd dir = open_parent(root, path, false, &leaf, &missing);
    if (!missing) ::unlinkat(dir.get(), temp_name.c_str(), 0);
}

namespace {

// path made absolute against the working directory (getcwd has no symlinks)
// and lexically normal: with every symlink refused, that is the real path.
std::string absolute_output_path(const std::string& path) {
    if (path.empty()) throw std::runtime_error("empty path");
    if (path.back() == '/') throw std::runtime_error(fmt::format("{}: names a directory, not a file", path));
    std::filesystem::path p(path);
    if (p.is_relative()) p = std::filesystem::current_path() / p;
    return p.lexically_normal().string();
}

// Why the entry `leaf` in dir cannot be replaced by an output file, or "".
std::string leaf_problem(int dir, const std::string& leaf) {
    struct stat st{};
    if (::fstatat(dir, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? "" : std::strerror(errno);
    if (S_ISLNK(st.st_mode)) return "is a symbolic link; refusing to follow or replace it";
    if (S_ISDIR(st.st_mode)) return "is a directory";
    if (!S_ISREG(st.st_mode)) return "is not a regular file";
    return "";
}

struct Staged {
    std::string path, leaf, temp;
    Fd dir;
};

}  // namespace

std::string output_file_problem(const std::string& path) {
    try {
        const std::string abs = absolute_output_path(path);
        std::string leaf;
        bool missing = false;
        Fd dir = open_parent("", abs, false, &leaf, &missing);
        if (missing) return fmt::format("its directory {} does not exist", std::filesystem::path(abs).parent_path().string());
        if (std::string why = leaf_problem(dir.get(), leaf); !why.empty()) return why;
        if (::faccessat(dir.get(), ".", W_OK, AT_EACCESS) != 0) return fmt::format("cannot write in its directory: {}", std::strerror(errno));
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

void publish_files(const std::vector<OutputFile>& files) {
    std::vector<Staged> staged;
    static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::random_device rd;
    try {
        for (const auto& f : files) {
            Staged s;
            s.path = f.path;
            const std::string abs = absolute_output_path(f.path);
            bool missing = false;
            s.dir = open_parent("", abs, false, &s.leaf, &missing);
            if (missing) throw std::runtime_error(fmt::format("{}: its directory does not exist", f.path));
            if (std::string why = leaf_problem(s.dir.get(), s.leaf); !why.empty()) throw std::runtime_error(fmt::format("{}: {}", f.path, why));
            Fd out;
            for (int attempt = 0; attempt < 100 && !out.ok(); ++attempt) {
                s.temp = "." + s.leaf.substr(0, 200) + ".";
                for (int i = 0; i < 6; ++i) s.temp += kAlnum[rd() % (sizeof kAlnum - 1)];
                out = Fd(::openat(s.dir.get(), s.temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
                if (!out.ok() && errno != EEXIST) fail(f.path, errno);
            }
            if (!out.ok()) fail(f.path, EEXIST);
            staged.push_back(std::move(s));
            write_all(out.get(), f.content, f.path);
            if (::fchmod(out.get(), 0644) != 0) fail(f.path, errno);
            if (::fsync(out.get()) != 0) fail(f.path, errno);
        }
        for (auto& s : staged) {
            if (::renameat(s.dir.get(), s.temp.c_str(), s.dir.get(), s.leaf.c_str()) != 0) fail(s.path, errno);
            s.temp.clear();
        }
    } catch (...) {
        for (auto& s : staged)
            if (!s.temp.empty()) ::unlinkat(s.dir.get(), s.temp.c_str(), 0);
        throw;
    }
    for (auto& s : staged) ::fsync(s.dir.get());
}

void write_file_durably(const std::string& path, const std::string& content, unsigned mode) {
    const std::string tmp = path + ".tmp";
    Fd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!f.ok()) fail(tmp, errno);
    write_all(f.get(), content, tmp);
    if (::fsync(f.get()) != 0) fail(tmp, errno);
    f.reset();
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail(path, errno);
}

int make_private_dir(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return ec.value();
    ::chmod(dir.c_str(), 0700);
    return 0;
}

AppendFile::AppendFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), path);
}

AppendFile::~AppendFile() {
    if (fd_ >= 0) ::close(fd_);
}

void AppendFile::append(const std::string& line) {
    write_all(fd_, line, "journal");
    if (::fsync(fd_) != 0) fail("journal", errno);
}

int lock_file(const std::string& path, int* err, bool* held) {
    *held = false;
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        *err = errno;
        *held = true;
        ::close(fd);
        return -1;
    }
    return fd;
}

void unlock_file(int fd) {
    if (fd >= 0) ::close(fd);
}

bool exists_nofollow(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

int remove_empty_dir(const std::string& path) { return ::rmdir(path.c_str()) == 0 ? 0 : errno; }

int remove_path(const std::string& path) { return ::unlink(path.c_str()) == 0 ? 0 : errno; }

void remove_tree(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
}

int make_dir(const std::string& path, unsigned mode) {
    if (::mkdir(path.c_str(), mode) != 0) return errno;
    ::chmod(path.c_str(), mode);
    return 0;
}

std::optional<std::string> make_temp_dir(const std::string& parent, const std::string& prefix, int* err) {
    std::string tmpl = parent + "/" + prefix + "XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
        if (err) *err = errno;
        return std::nullopt;
    }
    return tmpl;
}

void copy_file(const std::string& from, const std::string& to, unsigned mode) {
    std::error_code ec;
    std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot copy {} to {}: {}", from, to, ec.message()));
    ::chmod(to.c_str(), mode);
}

void create_empty_file(const std::string& path, unsigned mode) {
    const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) throw std::runtime_error(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
    ::fchmod(fd, mode);
    ::close(fd);
}

int set_mode(const std::string& path, unsigned mode) { return ::chmod(path.c_str(), mode) == 0 ? 0 : errno; }

void create_disk_image(const std::string& path, const std::string& head, size_t size) {
    Fd f(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!f.ok()) throw std::runtime_error(fmt::format("cannot write {}", path));
    write_all(f.get(), head, path);
    if (size > head.size() && ::ftruncate(f.get(), static_cast<off_t>(size)) != 0) throw std::runtime_error(fmt::format("cannot write {}", path));
}

GrowingFile::GrowingFile(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}

GrowingFile::~GrowingFile() {
    if (fd_ >= 0) ::close(fd_);
}

std::string GrowingFile::read_new() {
    std::string out;
    if (fd_ < 0) return out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd_, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
}

std::string read_value(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(errno)));
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    const int e = errno;
    ::close(fd);
    if (n < 0) throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(e)));
    std::string v(buf, static_cast<size_t>(n));
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
    return v;
}

void write_value(const std::string& path, const std::string& value) {
    int fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(errno)));
    const std::string v = value + "\n";
    ssize_t n = ::write(fd, v.data(), v.size());
    const int e = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(v.size())) throw std::runtime_error(fmt::format("writing {} to {}: {}", value, path, std::strerror(e)));
}

FileMeta node_meta(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(errno)));
    return FileMeta{static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid};
}

void set_node_perms(const std::string& path, unsigned mode, uint32_t uid, uint32_t gid) {
    Fd fd(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.ok()) throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(errno)));
    struct stat st {};
    ::fstat(fd.get(), &st);
    if (S_ISLNK(st.st_mode)) throw std::runtime_error(fmt::format("{}: is a symbolic link; refusing", path));
    const std::string via = fmt::format("/proc/self/fd/{}", fd.get());
    int rc = ::fchownat(fd.get(), "", uid, gid, AT_EMPTY_PATH);
    if (rc == 0) rc = ::chmod(via.c_str(), mode);
    if (rc != 0) throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(errno)));
}

bool replace_file(const std::string& out, const std::string& data, unsigned mode, std::string* error) {
    std::string tmpl = out + ".tmp.XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    int fd = ::mkstemp(buf.data());
    if (fd < 0) {
        *error = fmt::format("cannot create a file next to {}: {}", out, std::strerror(errno));
        return false;
    }
    std::string tmp = buf.data();
    const char* p = data.data();
    size_t left = data.size();
    int err = 0;
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            err = errno;
            break;
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    if (!err && ::fchmod(fd, mode) != 0) err = errno;
    if (::close(fd) != 0 && !err) err = errno;
    if (!err && ::rename(tmp.c_str(), out.c_str()) != 0) err = errno;
    if (err) {
        ::unlink(tmp.c_str());
        *error = fmt::format("cannot write {}: {}", out, std::strerror(err));
        return false;
    }
    return true;
}

std::error_code make_dirs(const std::string& path) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    return ec;
}

PendingFile::PendingFile(const std::string& out) : out_(out) {
    const std::filesystem::path target(out);
    const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
    tmp_ = (dir / (target.filename().string() + ".partial-XXXXXX")).string();
    fd_ = ::mkstemp(tmp_.data());
    if (fd_ < 0) {
        error_ = errno;
        return;
    }
    created_ = true;
    ::fchmod(fd_, 0600);  // a bundle describes a host: owner-only until the user shares it
}

PendingFile::~PendingFile() {
    if (fd_ >= 0) ::close(fd_);
    if (created_ && !committed_) ::unlink(tmp_.c_str());
}

int PendingFile::sync() { return ::fsync(fd_) == 0 ? 0 : errno; }

int PendingFile::commit(bool replace) {
    ::close(fd_);
    fd_ = -1;
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, out_.c_str(), replace ? 0 : RENAME_NOREPLACE) < 0) return errno;
    committed_ = true;
    return 0;
}

int open_regular_file(const std::string& path, int* err, unsigned* mode) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd.ok()) {
        *err = errno;
        return -1;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode)) {
        *err = 0;
        *mode = st.st_mode;
        return -1;
    }
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    return fd.release();
}

NewFile::NewFile(const std::string& path) : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) {
    if (fd_ < 0) error_ = errno;
}

NewFile::~NewFile() {
    if (fd_ >= 0) ::close(fd_);
}

int NewFile::write(const char* data, size_t n) {
    for (size_t off = 0; off < n;) {
        const ssize_t w = ::write(fd_, data + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        off += static_cast<size_t>(w);
    }
    return 0;
}

}  // namespace kvmready::host
