// VirtFacts: QEMU, libvirt and storage, as plain data. probe_virt.cpp fills
// them (and says where each field comes from); the libvirt XML is parsed
// there, so the checks in checks/virt.cpp stay pure functions of these fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_optional.hpp"
#include "host/host.hpp"

namespace kvmready {

// A path as stat(2) and the ACL reader saw it (mirrors host::StatInfo and
// host::AclEntry, whose JSON form lives in facts.cpp).
struct VirtAcl {
    std::string tag;
    int64_t id = -1;
    unsigned perms = 0;
};

struct VirtPath {
    std::string path;
    bool exists = false;
    int error = 0;
    std::string type;              // "dir", "file", ...
    unsigned mode = 0;
    uint32_t uid = 0, gid = 0;
    std::optional<std::vector<VirtAcl>> acl;
};

struct QemuBinaryFacts {
    std::string arch;              // /proc/sys/kernel/arch (x86_64 when absent)
    std::vector<std::string> candidates;  // looked for, in order
    std::string path;              // the first that exists
    std::string version_from;      // "libvirt" (virConnectGetVersion for this emulator), "binary" (.rodata banner) or "--version"
    bool version_ran = false;      // `PATH --version` started (live) or was recorded
    int version_exit = -1;
    bool version_timed_out = false;
    std::string version;           // "7.2.22"
    std::string version_line;      // first line of the output
    std::string version_error;     // why no version: not started, not recorded, exit status
};

// libvirt runs QEMU as this user (qemu.conf user/group, else the build's
// default, which Debian and Fedora document in the commented lines).
struct QemuUserFacts {
    bool libvirt_qemu_driver = false;   // /etc/libvirt/qemu.conf exists
    std::string conf_path = "/etc/libvirt/qemu.conf";
    std::string user;
    std::string user_source;            // "qemu.conf", "qemu.conf default (commented)", "assumed"
    std::string group;
    std::string group_source;
    bool found = false;                 // user resolved in the user database
    std::string lookup_error;
    uint32_t uid = 0, gid = 0;          // gid: the configured group's (libvirt sets it), else the user's primary
    std::vector<uint32_t> gids;         // everything QEMU holds: configured group, primary group, supplementary groups
    std::vector<std::string> group_names;
};

// virConnectGetDomainCapabilities, parsed.
struct DomCapsFacts {
    bool present = false;               // libvirt answered with XML
    std::string error;                  // libvirt's error, or a parse error
    std::string path;                   // the emulator
    std::string domain;                 // "kvm" or "qemu"
    std::string machine;                // default machine type
    std::string arch;
    int max_vcpus = 0;
    std::vector<std::string> firmware;  // <os><enum name='firmware'>: efi, bios
    std::vector<std::string> loaders;   // OVMF code images
    bool secure_boot = false;           // loader enum secure offers "yes"
    std::vector<std::string> cpu_modes; // supported CPU modes (host-passthrough, host-model, maximum, custom)
    // <mode name='host-model'>: the named model libvirt would give a guest
    // asking for host-model, and the features it adds ("require") or
    // removes ("disable") (kvmready compare, the report's cpu section).
    std::string host_model;
    std::string host_model_vendor;
    std::vector<std::pair<std::string, std::string>> host_model_features;  // (policy, name)
};

struct VirtNetwork {
    std::string name;
    bool active = false, autostart = false, persistent = false;
    std::string bridge;                 // <bridge name=...>
    std::string forward_mode;           // "nat" for <forward/>, "" when isolated
    std::string forward_dev;            // <forward dev=...>
    std::vector<std::string> addresses; // "192.168.122.1/24"
    std::vector<std::pair<std::string, std::string>> dhcp_ranges;  // IPv4 <dhcp><range start end>
    bool bridge_checked = false;        // /sys/class/net/BRIDGE was looked at
    bool bridge_exists = false;
};

struct VirtPool {
    std::string name;
    bool active = false, autostart = false, persistent = false;
    int state = -1;
    uint64_t capacity = 0, allocation = 0, available = 0;
    std::string type;                   // dir, fs, logical, netfs, ...
    std::string target;                 // <target><path>
};

// A directory guests' disks live in: the pool's target and its ancestors.
struct StorageDirFacts {
    std::string path;
    std::string why;                    // "target of pool default", "libvirt's default images directory"
    std::vector<VirtPath> chain;        // "/" ... path
    bool usage_read = false;
    host::FsUsage usage;
    std::string fstype;                 // from /proc/self/mountinfo (longest matching mount point)
    std::string mount_point;
};

struct LibvirtFacts {
    bool queried = false;               // Host::libvirt was asked
    bool installed = false;             // a daemon binary or /etc/libvirt exists
    std::vector<std::string> daemon_binaries;   // found: /usr/sbin/libvirtd, /usr/sbin/virtqemud
    bool systemd = false;               // /run/systemd/system exists (hints)
    host::LibvirtSnapshot snapshot;     // as queried, without the XML bodies (parsed below)
    DomCapsFacts domcaps_kvm;
    DomCapsFacts domcaps_qemu;
    std::vector<std::string> machine_types;    // capabilities: machines for the host arch
    std::vector<std::string> guest_domain_types;  // capabilities: domain types offered for the host arch
    std::vector<VirtNetwork> networks;
    std::vector<VirtPool> pools;
};

struct VirtFacts {
    bool probed = false;
    std::string os_id;                  // /etc/os-release ID (+ ID_LIKE), for package-manager hints
    QemuBinaryFacts qemu;
    QemuUserFacts qemu_user;
    LibvirtFacts libvirt;
    StorageDirFacts pool_dir;           // the requested pool's target (empty when unknown)
    StorageDirFacts images_dir;         // pool target, else /var/lib/libvirt/images
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VirtAcl, tag, id, perms)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VirtPath, path, exists, error, type, mode, uid, gid, acl)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(QemuBinaryFacts, arch, candidates, path, version_from, version_ran, version_exit,
                                                version_timed_out, version, version_line, version_error)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(QemuUserFacts, libvirt_qemu_driver, conf_path, user, user_source, group, group_source,
                                                found, lookup_error, uid, gid, gids, group_names)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DomCapsFacts, present, error, path, domain, machine, arch, max_vcpus, firmware, loaders,
                                                secure_boot, cpu_modes, host_model, host_model_vendor, host_model_features)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VirtNetwork, name, active, autostart, persistent, bridge, forward_mode, forward_dev,
                                                addresses, dhcp_ranges, bridge_checked, bridge_exists)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VirtPool, name, active, autostart, persistent, state, capacity, allocation, available,
                                                type, target)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StorageDirFacts, path, why, chain, usage_read, usage, fstype, mount_point)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LibvirtFacts, queried, installed, daemon_binaries, systemd, snapshot, domcaps_kvm,
                                                domcaps_qemu, machine_types, guest_domain_types, networks, pools)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VirtFacts, probed, os_id, qemu, qemu_user, libvirt, pool_dir, images_dir)

// Parsers behind probe_virt, exposed for tests. XML goes through libxml2.
DomCapsFacts parse_domcaps(const std::string& xml);
// Machine types and domain types libvirt's capabilities offer for hvm guests of arch.
void parse_capabilities(const std::string& xml, const std::string& arch, std::vector<std::string>& machines,
                        std::vector<std::string>& domain_types);
void parse_network_xml(const std::string& xml, VirtNetwork& out);
void parse_pool_xml(const std::string& xml, VirtPool& out);
// user/group settings of qemu.conf: set values, else the commented defaults.
void parse_qemu_conf(const std::string& text, QemuUserFacts& out);
// "QEMU emulator version 7.2.22 (Debian ...)" -> "7.2.22"
std::string parse_qemu_version(const std::string& output);

}  // namespace kvmready
