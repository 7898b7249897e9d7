#include "host/bounded_read.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "util/errors.hpp"

namespace kvmready::host {

std::string describe_file_type(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISREG(mode)) return "a regular file";
    return "not a regular file";
}

BoundedRead read_fd_bounded(int fd, size_t cap, bool regular_only) {
    BoundedRead r;
    struct stat st {};
    if (::fstat(fd, &st) < 0) {
        r.error = errno;
        return r;
    }
    if (regular_only && !S_ISREG(st.st_mode)) {
        r.error = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        r.kind = describe_file_type(st.st_mode);
        return r;
    }
    // sysfs and procfs report size 0 or 4096 whatever they hold: read to the
    // end, but never past the cap.
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > cap) {
        r.error = EFBIG;
        return r;
    }
    std::string out;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            r.error = errno;
            return r;
        }
        if (n == 0) break;
        if (out.size() + static_cast<size_t>(n) > cap) {
            r.error = EFBIG;
            return r;
        }
        out.append(buf, static_cast<size_t>(n));
    }
    r.data = std::move(out);
    return r;
}

BoundedRead read_path_bounded(const std::string& path, size_t cap, int extra_flags) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | extra_flags);
    if (fd < 0) {
        BoundedRead r;
        r.error = errno;
        return r;
    }
    BoundedRead r = read_fd_bounded(fd, cap);
    ::close(fd);
    return r;
}

std::string describe_read_failure(const BoundedRead& r, const std::string& label, size_t cap) {
    if (r.error == EFBIG) return fmt::format("{}: larger than {} KiB, the limit for this kind of input", label, cap >> 10);
    if (!r.kind.empty()) return fmt::format("{}: is {}, not a regular file", label, r.kind);
    return fmt::format("{}: {}", label, std::strerror(r.error));
}

std::string read_input_file(const std::string& path, size_t cap, const std::string& label) {
    BoundedRead r = read_path_bounded(path, cap);
    if (r.data) return std::move(*r.data);
    const std::string why = describe_read_failure(r, label, cap);
    if (r.error == EFBIG) throw DataError(why);
    throw NoInputError(why);
}

}  // namespace kvmready::host
