// The host layer: the only code that touches the operating system. Everything
// above it (probe, checks, output) sees a Host, so a directory tree recorded on
// another machine (--root, fixtures, support bundles) answers exactly like a
// live system.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cpuid/cpuid.hpp"
#include "host/kernel_log.hpp"
#include "host/kvm_probe.hpp"
#include "host/libvirt.hpp"
#include "host/process.hpp"
#include "host/udev_enum.hpp"

namespace kvmready::host {

struct StatInfo {
    bool exists = false;
    int error = 0;                 // errno of the failed stat when !exists
    std::string type;              // "char", "block", "dir", "file", "symlink", "other"
    unsigned major = 0, minor = 0; // device numbers for char/block
    unsigned mode = 0;             // permission bits (07777)
    uint32_t uid = 0, gid = 0;
};

// One POSIX ACL entry; tag is "user_obj", "user", "group_obj", "group", "mask", "other".
struct AclEntry {
    std::string tag;
    int64_t id = -1;               // uid/gid for "user"/"group", -1 otherwise
    unsigned perms = 0;            // rwx bits: 4 read, 2 write, 1 execute
};

struct Group {
    uint32_t gid = 0;
    std::string name;
};

struct User {
    std::string name;
    uint32_t uid = 0;
    uint32_t gid = 0;
    std::vector<Group> groups;     // from the group database (primary included)
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StatInfo, exists, error, type, major, minor, mode, uid, gid)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AclEntry, tag, id, perms)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Group, gid, name)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(User, name, uid, gid, groups)

struct FsUsage {
    bool ok = false;
    int error = 0;
    std::string fstype;            // statfs f_type magic as hex (names come from /proc/self/mountinfo)
    uint64_t total_bytes = 0, free_bytes = 0, avail_bytes = 0;  // avail: for unprivileged users
    bool read_only = false;
};

struct BinaryString {
    std::optional<std::string> value;
    std::string error;             // why not found (not ELF, not there, not recorded)
};

struct MsrValue {
    std::optional<uint64_t> value;
    std::string error;             // why it could not be read
};

// An interface address as `ip -j addr` prints it.
struct InterfaceAddress {
    std::string ifname;
    std::string family;            // "inet", "inet6"
    std::string local;
    int prefixlen = 0;
    std::string scope;             // "global", "link", "host", "site", "nowhere" or the number
};

struct InterfaceAddresses {
    // false: an offline tree recorded before kvmready read addresses itself;
    // the recorded `ip -j addr show type bridge` run answers instead.
    bool available = true;
    std::string kind;              // the link kind asked for ("bridge")
    std::string error;             // why they could not be read; "" when read
    std::vector<InterfaceAddress> addresses;
};

// The nf_tables ruleset (every family: iptables-nft's tables and nft's own),
// read over netlink and written in the schema of `nft -j list ruleset` for
// what decides forwarding: chains (hook, policy) and rules whose statements
// are interface, bridge and conntrack-state matches, verdicts, jumps and
// iptables-nft's compat matches decoded (conntrack/state, physdev, comment);
// other conditions appear by kind only, without their values (addresses).
struct NftRuleset {
    // false: an offline tree recorded before kvmready read nf_tables itself;
    // the recorded `iptables -S` and `nft -j list ruleset` runs answer instead.
    bool available = true;
    std::string error;             // why it could not be read; "" when read
    int error_code = 0;            // its errno (EPERM: needs CAP_NET_ADMIN)
    nlohmann::json ruleset;        // {"nftables": [{"chain": {...}}, {"rule": {...}}, ...]}
};

// Who a host is, across runs, renames and clones that kept their hostname:
// a kvmready-specific salted SHA-256 of the machine id, shortened. The id
// itself never leaves the host (bundles record only this hash), and the
// hash says nothing about other programs' uses of the id.
struct HostIdentity {
    std::string id;                // 16 hex digits; "" when no source was readable
    std::string source;            // the file it was derived from
    std::string error;             // why there is none ("" when id is set)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HostIdentity, id, source, error)

// The identity derived from the raw content of `source` (a machine-id or a
// DMI product UUID): nullopt when the value is empty, uninitialised or a
// firmware placeholder that many machines share.
std::optional<HostIdentity> identity_from(const std::string& source, const std::string& raw);

class Host {
public:
    virtual ~Host() = default;

    // "live" or "root:DIR".
    [[nodiscard]] virtual std::string source() const = 0;
    [[nodiscard]] virtual bool is_live() const = 0;

    // Paths are absolute paths as seen on the host being examined.
    [[nodiscard]] virtual std::optional<std::string> read_file(const std::string& path, int* err = nullptr) const = 0;
    [[nodiscard]] virtual std::vector<std::string> list_dir(const std::string& path) const = 0;
    // Files of a recorded tree that read_file refused because the tree is
    // malformed there (a FIFO or device node where a file belongs, a file
    // over the size cap), one message each naming the file. The caller turns
    // them into exit 65 after probing (probes run on threads and never throw).
    [[nodiscard]] virtual std::vector<std::string> refused_inputs() const { return {}; }
    [[nodiscard]] virtual StatInfo stat(const std::string& path) const = 0;
    // nullopt: no extended ACL (or ACLs unsupported); entries otherwise.
    [[nodiscard]] virtual std::optional<std::vector<AclEntry>> acl(const std::string& path) const = 0;
    // statfs(2) of the filesystem holding path (free space of storage pools).
    [[nodiscard]] virtual FsUsage fs_usage(const std::string& path) const = 0;

    // CPUID of the host: live instruction, or a recorded dump. Each CPUID
    // traps to the hypervisor in a VM (~10 us here), so checks ask only for
    // the leaves they decode; dumps and recordings ask for everything.
    enum class CpuidScope { Essential, Full };
    [[nodiscard]] virtual cpuid::Dump cpuid(CpuidScope scope = CpuidScope::Full) const = 0;
    [[nodiscard]] virtual MsrValue read_msr(unsigned cpu, uint32_t index) const = 0;

    // The /dev/kvm functional test. Offline hosts return what was recorded,
    // or a result with attempted=false and a reason.
    [[nodiscard]] virtual KvmProbe probe_kvm(const std::string& dev) const = 0;

    [[nodiscard]] virtual std::optional<User> lookup_user(const std::string& name) const = 0;
    [[nodiscard]] virtual std::optional<User> current_user() const = 0;
    // Groups the running process really holds (live only): differs from the
    // database right after `usermod -aG` until the next login.
    [[nodiscard]] virtual std::optional<std::vector<uint32_t>> process_groups() const = 0;
    // errno of open(path, O_RDWR) by this process; nullopt offline.
    [[nodiscard]] virtual std::optional<int> try_open_rw(const std::string& path) const = 0;

    // A helper program's output (iptables -S, qemu --version); offline: what
    // was recorded for the same argv.
    [[nodiscard]] virtual RunResult run(const std::vector<std::string>& argv, int timeout_ms) const = 0;
    // A string literal starting with prefix in an ELF program's .rodata (a
    // version banner, without running the program); offline: as recorded.
    [[nodiscard]] virtual BinaryString binary_string(const std::string& path, const std::string& prefix) const = 0;
    [[nodiscard]] virtual LibvirtSnapshot libvirt(const std::string& uri, int timeout_ms) const = 0;
    // libvirt() started now and answered by wait(): the daemon works while
    // the caller does. Offline hosts answer at once.
    [[nodiscard]] virtual std::unique_ptr<LibvirtPending> start_libvirt(const std::string& uri, int timeout_ms) const {
        struct Deferred final : LibvirtPending {
            Deferred(const Host& h, std::string u, int t) : host(h), uri(std::move(u)), timeout_ms(t) {}
            LibvirtSnapshot wait() override { return host.libvirt(uri, timeout_ms); }
            const Host& host;
            std::string uri;
            int timeout_ms;
        };
        return std::make_unique<Deferred>(*this, uri, timeout_ms);
    }
    // Addresses of the interfaces of one link kind (rtnetlink); offline: as recorded.
    [[nodiscard]] virtual InterfaceAddresses interface_addresses(const std::string& kind) const = 0;
    // The firewall's ruleset (nf_tables netlink); offline: as recorded.
    [[nodiscard]] virtual NftRuleset nftables() const = 0;
    // The kernel log's lines about virtualization (bounded, never blocks);
    // offline: as recorded.
    [[nodiscard]] virtual KernelLog kernel_log() const = 0;
    // The host's identity (host_identity.cpp): /etc/machine-id, else
    // /var/lib/dbus/machine-id, else the DMI product UUID, read through
    // read_file. A recording keeps only the result, never the id.
    [[nodiscard]] virtual HostIdentity identity() const;
    // PCI, block and net devices (host/udev_enum.hpp): libudev live, as
    // recorded offline; a tree recorded without them, from its sysfs files.
    [[nodiscard]] virtual UdevSnapshot udev_devices() const { return enumerate_sysfs(*this); }
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(InterfaceAddress, ifname, family, local, prefixlen, scope)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(InterfaceAddresses, kind, error, addresses)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(NftRuleset, error, error_code, ruleset)

// The live readers behind LiveHost (src/host/net_read.cpp, nftables.cpp).
InterfaceAddresses read_interface_addresses(const std::string& kind);
NftRuleset read_nftables();

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FsUsage, ok, error, fstype, total_bytes, free_bytes, avail_bytes, read_only)

std::unique_ptr<Host> make_live_host();
// Throws std::system_error(ENOENT) when dir does not exist.
std::unique_ptr<Host> make_rooted_host(const std::string& dir);

// Parse /etc/passwd and /etc/group text (used by rooted hosts and tests).
std::optional<User> lookup_user_in_db(const std::string& passwd, const std::string& group, const std::string& name);
std::optional<User> lookup_uid_in_db(const std::string& passwd, const std::string& group, uint32_t uid);

}  // namespace kvmready::host
