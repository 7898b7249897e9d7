// Writing files as root without being fooled by symlinks: every path is
// walked component by component from the target root with O_NOFOLLOW, so a
// symlink planted anywhere on the way (in /etc, or in a golden image under
// --root pointing out of it) makes the write fail instead of landing
// elsewhere. Files are replaced atomically: temp file in the same directory,
// fsync, rename, fsync of the directory.
//
// Also the other primitives the write side needs for files it owns or the
// kernel owns: kvmready's state directory (journal, lock, saved copies),
// procfs/sysfs values, device node permissions, temporary directories.
// The Target (host/target.hpp) is how fixes, smoke and bundles reach them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace kvmready::host {

struct FileMeta {
    unsigned mode = 0;
    uint32_t uid = 0, gid = 0;
};

// ---- files on a target (root "" = the live system) ---------------------------

// Content of root+path, not following symlinks in any component; nullopt if
// absent. Throws std::runtime_error on anything else (a symlink, EACCES).
std::optional<std::string> read_nofollow(const std::string& root, const std::string& path, FileMeta* meta = nullptr);
// What read_nofollow() would refuse, without reading the content: throws as
// it does for a symlink on the way or something else than a regular file;
// returns when the file is absent or may be read and replaced.
void check_nofollow(const std::string& root, const std::string& path);

// Atomically replaces (or creates) root+path. Missing parent directories are
// created (0755 root:root). temp_name: the temp file's name in the same
// directory, so a journal can remove it after a crash.
void write_atomic(const std::string& root, const std::string& path, const std::string& content, const FileMeta& meta,
                  const std::string& temp_name);
// Removes root+path (absent is fine); never follows a symlink.
void remove_nofollow(const std::string& root, const std::string& path);
// Removes a leftover temp file next to path (absent is fine).
void remove_temp(const std::string& root, const std::string& path, const std::string& temp_name);

// ---- plain paths (already under any root) --------------------------------------

// lstat(2) succeeds: something (a symlink too) is there.
bool exists_nofollow(const std::string& path);
// rmdir(2): 0 when removed, else its errno (ENOTEMPTY: kept).
int remove_empty_dir(const std::string& path);
// unlink(2): 0 or errno.
int remove_path(const std::string& path);
// Removes a directory tree (no symlink followed); errors ignored.
void remove_tree(const std::string& path);
// mkdir(2) then chmod to exactly mode (umask ignored): 0 or errno.
int make_dir(const std::string& path, unsigned mode);
// A new directory PARENT/PREFIXXXXXXX (mkdtemp, 0700): its path, or nullopt
// with *err set to errno.
std::optional<std::string> make_temp_dir(const std::string& parent, const std::string& prefix, int* err = nullptr);
// Copies a regular file, replacing `to`, and sets its mode. Throws.
void copy_file(const std::string& from, const std::string& to, unsigned mode);
// Creates (or truncates) an empty file with exactly `mode`. Throws.
void create_empty_file(const std::string& path, unsigned mode);
// chmod(2): 0 or errno.
int set_mode(const std::string& path, unsigned mode);
// Replaces path with data through a unique temp file next to it (mkstemp,
// chmod mode, rename); false with *error naming the file.
bool replace_file(const std::string& path, const std::string& data, unsigned mode, std::string* error);
// A new file (O_EXCL) holding `head` and then zeros up to size bytes (a
// sparse disk image). Throws.
void create_disk_image(const std::string& path, const std::string& head, size_t size);

// A file another process appends to (a guest's serial log): opened once,
// read_new() returns what was added since the last call.
class GrowingFile {
public:
    explicit GrowingFile(const std::string& path);  // not open when it cannot be opened
    ~GrowingFile();
    GrowingFile(const GrowingFile&) = delete;
    GrowingFile& operator=(const GrowingFile&) = delete;
    [[nodiscard]] bool is_open() const { return fd_ >= 0; }
    std::string read_new();

private:
    int fd_ = -1;
};

// create_directories: 0 or the error.
std::error_code make_dirs(const std::string& path);

// A file a command produces (a support bundle): written to OUT.partial-XXXXXX
// (mkstemp, 0600) beside it, moved into place by commit(), removed when
// destroyed uncommitted. Errors: errno values, the caller words them.
class PendingFile {
public:
    explicit PendingFile(const std::string& out);
    ~PendingFile();
    PendingFile(const PendingFile&) = delete;
    PendingFile& operator=(const PendingFile&) = delete;
    // -1 when mkstemp failed (error() says why).
    [[nodiscard]] int fd() const { return fd_; }
    [[nodiscard]] int error() const { return error_; }
    [[nodiscard]] const std::string& temp_path() const { return tmp_; }
    // fsync: 0 or errno.
    int sync();
    // close, then rename over out (replace: else RENAME_NOREPLACE): 0 or errno.
    int commit(bool replace);

private:
    std::string out_, tmp_;
    int fd_ = -1;
    int error_ = 0;
    bool created_ = false, committed_ = false;
};

// Opens a file to read that must be a regular file, without blocking on a
// FIFO or a device: the fd, or -1 with *err (errno) or, for a file of
// another type, *err 0 and *mode its st_mode.
int open_regular_file(const std::string& path, int* err, unsigned* mode);

// A new file (O_CREAT|O_EXCL|O_NOFOLLOW, 0644) written in pieces: a
// duplicate, or one where a directory or symlink stands, is refused.
class NewFile {
public:
    explicit NewFile(const std::string& path);
    ~NewFile();
    NewFile(const NewFile&) = delete;
    NewFile& operator=(const NewFile&) = delete;
    [[nodiscard]] bool ok() const { return fd_ >= 0; }
    [[nodiscard]] int error() const { return error_; }
    // All of data: 0 or errno.
    int write(const char* data, size_t n);

private:
    int fd_ = -1;
    int error_ = 0;
};

// ---- files a run hands to other programs (check --output FMT:PATH) -------------

// A file for a monitoring agent or a scheduler to read (a Prometheus
// textfile, an NFD feature file) at a path the user named. Every component
// of the (absolute or cwd-relative) path is walked with O_NOFOLLOW, so a
// symlink anywhere on the way is refused, never followed; the file itself
// must be absent or a regular file.
struct OutputFile {
    std::string path;
    std::string content;
};
// "" when path can take such a file, else why not ("its directory ... does
// not exist", "is a directory", "is a symbolic link ..."): a check before any work.
std::string output_file_problem(const std::string& path);
// Writes every file, each to a dot-file beside it (.NAME.XXXXXX: NFD skips
// dot-files, node_exporter reads only *.prom), mode 0644 (read by agents
// running as other users), fsynced; only when all are written are they
// renamed into place and their directories fsynced. A reader sees the old
// file or the new one, never a part. Throws std::runtime_error naming the
// file; the temporary files are removed.
void publish_files(const std::vector<OutputFile>& files);

// A procfs/sysfs value (first 4 KiB, trailing newline and blanks dropped);
// throws naming the path.
std::string read_value(const std::string& path);
// Writes value + "\n" in one write(2); throws naming the path.
void write_value(const std::string& path, const std::string& value);
// Owner and mode of a device node (lstat); throws.
FileMeta node_meta(const std::string& path);
// chown + chmod of the node itself: O_PATH|O_NOFOLLOW pins it, a symlink is
// refused. Throws.
void set_node_perms(const std::string& path, unsigned mode, uint32_t uid, uint32_t gid);

// ---- kvmready's own state --------------------------------------------------------

// path.tmp written, fsynced and renamed over path.
void write_file_durably(const std::string& path, const std::string& content, unsigned mode = 0600);
// An existing directory is left alone (the caller judges it); a missing one
// is created with its parents and made 0700. 0 or errno.
int make_private_dir(const std::string& dir);

// An append-only file (the fix journal): opened O_APPEND|O_CREAT|O_NOFOLLOW
// 0600; each append is fsynced before it returns.
class AppendFile {
public:
    // Throws std::system_error naming path.
    explicit AppendFile(const std::string& path);
    ~AppendFile();
    AppendFile(const AppendFile&) = delete;
    AppendFile& operator=(const AppendFile&) = delete;
    // Throws std::runtime_error.
    void append(const std::string& line);

private:
    int fd_ = -1;
};

// An exclusive flock(2) on path (created 0600, no symlink followed), held
// until unlock_file: the fd, or -1 with *err and *held (the file opened but
// the lock could not be taken: another process holds it).
int lock_file(const std::string& path, int* err, bool* held);
void unlock_file(int fd);

}  // namespace kvmready::host
