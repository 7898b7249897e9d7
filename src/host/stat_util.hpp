#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <sys/sysmacros.h>

#include "host/host.hpp"

namespace kvmready::host {

inline StatInfo stat_info_from(const struct stat& st) {
    StatInfo s;
    s.exists = true;
    if (S_ISCHR(st.st_mode)) s.type = "char";
    else if (S_ISBLK(st.st_mode)) s.type = "block";
    else if (S_ISDIR(st.st_mode)) s.type = "dir";
    else if (S_ISREG(st.st_mode)) s.type = "file";
    else if (S_ISLNK(st.st_mode)) s.type = "symlink";
    else s.type = "other";
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        s.major = major(st.st_rdev);
        s.minor = minor(st.st_rdev);
    }
    s.mode = st.st_mode & 07777;
    s.uid = st.st_uid;
    s.gid = st.st_gid;
    return s;
}

}  // namespace kvmready::host
