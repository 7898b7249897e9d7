// Writing files as root without being fooled by symlinks: every path is
// walked component by component from the target root with O_NOFOLLOW, so a
// symlink planted anywhere on the way (in /etc, or in a golden image under
// --root pointing out of it) makes the write fail instead of landing
// elsewhere. Files are replaced atomically: temp file in the same directory,
// fsync, rename, fsync of the directory.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace kvmready::fix {

struct FileMeta {
    unsigned mode = 0;
    uint32_t uid = 0, gid = 0;
};

// Content of root+path, not following symlinks in any component; nullopt if
// absent. Throws std::runtime_error on anything else (a symlink, EACCES).
std::optional<std::string> read_nofollow(const std::string& root, const std::string& path, FileMeta* meta = nullptr);

// Atomically replaces (or creates) root+path. Missing parent directories are
// created (0755 root:root). temp_name: the temp file's name in the same
// directory, so a journal can remove it after a crash.
void write_atomic(const std::string& root, const std::string& path, const std::string& content, const FileMeta& meta,
                  const std::string& temp_name);
// Removes root+path (absent is fine); never follows a symlink.
void remove_nofollow(const std::string& root, const std::string& path);
// Removes a leftover temp file next to path (absent is fine).
void remove_temp(const std::string& root, const std::string& path, const std::string& temp_name);

// Plain helpers for kvmready's own state directory (not a target path).
void write_file_durably(const std::string& path, const std::string& content, unsigned mode = 0600);
void append_durably(int fd, const std::string& line);

}  // namespace kvmready::fix
