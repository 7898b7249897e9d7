// /proc/self/mountinfo: one parser for every probe that asks which
// filesystem holds a path (/, /dev, libvirt's images, a pool's target) or
// which mounts exist (cgroups, hugetlbfs, securityfs). probe()'s file-reading
// thread reads it once for the areas it runs; the virt area, on its own
// thread, and an area probed on its own read their own (ProbeOptions::mounts
// unset).
#pragma once

#include <string>
#include <vector>

#include "core/facts_system.hpp"

namespace kvmready {

namespace host {
class Host;
}

struct Mount {
    std::string devnum;  // the filesystem's device, "8:1"
    MountEntry entry;    // mount point, type, source, super options (unescaped)
};

struct MountTable {
    bool read = false;  // mountinfo could be read
    std::vector<Mount> mounts;  // in mountinfo order: later mounts shadow earlier ones
};

// Lines with too few fields or no "-" separator are skipped.
std::vector<Mount> parse_mountinfo(const std::string& text);
MountTable read_mount_table(const host::Host& h);

// The mount in effect at `path`: the deepest mount point covering it, the
// last of equal ones. nullptr when none covers it.
const Mount* mount_covering(const std::vector<Mount>& mounts, const std::string& path);

// The table probe() read (`given`), else one read now into `own`.
inline const MountTable& given_or_read(const MountTable* given, const host::Host& h, MountTable& own) {
    if (given) return *given;
    own = read_mount_table(h);
    return own;
}

}  // namespace kvmready
