// The one way kvmready reads a file: never blocks, never reads without
// bound. Input comes from strangers (a customer's CPUID dump, a support
// bundle, a recorded host tree): a FIFO would block open() or read() forever,
// /dev/zero would never end, a device node could have side effects. So every
// file is opened O_NONBLOCK (a FIFO or device does not wait for a peer),
// checked with fstat to be a regular file, and read up to a cap per kind of
// input.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>

namespace kvmready::host {

// Caps per kind of input (documented in kvmready(1), LIMITS).
constexpr size_t kMaxHostFileBytes = 32u << 20;   // one sysfs/procfs/etc file, live or recorded
constexpr size_t kMaxCpuidDumpBytes = 16u << 20;  // a CPUID dump (cpuid --from, --cpuid-dump)
constexpr size_t kMaxJournalBytes = 64u << 20;    // one fix run's journal
constexpr size_t kMaxManifestBytes = 1u << 20;    // a bundle's manifest.json

struct BoundedRead {
    std::optional<std::string> data;  // set when read whole
    int error = 0;                    // errno: of open/read; EINVAL not a regular file; EFBIG over the cap
    std::string kind;                 // what it was when not a regular file ("a FIFO", "a directory", ...)
};

// "a FIFO", "a character device", "a directory", ... for messages.
std::string describe_file_type(mode_t mode);

// Reads an open descriptor to its end, at most cap bytes. regular_only:
// anything but a regular file is refused (EINVAL, kind says what it was).
BoundedRead read_fd_bounded(int fd, size_t cap, bool regular_only = true);

// Opens path (O_RDONLY|O_NONBLOCK|O_NOCTTY|O_CLOEXEC, plus extra_flags such
// as O_NOFOLLOW) and reads it as above.
BoundedRead read_path_bounded(const std::string& path, size_t cap, int extra_flags = 0);

// A whole input file named by the user or by an input (label: how to name it
// in messages, e.g. "--from dump.txt"). Throws NoInputError (66) when it is
// missing, unreadable or not a regular file, DataError (65) when larger than
// cap.
std::string read_input_file(const std::string& path, size_t cap, const std::string& label);

// The message for a failed BoundedRead of label.
std::string describe_read_failure(const BoundedRead& r, const std::string& label, size_t cap);

}  // namespace kvmready::host
