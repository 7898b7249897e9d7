#include <acl/libacl.h>
#include <cpuid.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "host/host.hpp"
#include "host/elf_string.hpp"
#include "host/bounded_read.hpp"
#include "host/stat_util.hpp"

namespace kvmready::host {

namespace {

std::vector<Group> groups_of(const passwd& pw) {
    int n = 64;
    std::vector<gid_t> gids(static_cast<size_t>(n));
    while (getgrouplist(pw.pw_name, pw.pw_gid, gids.data(), &n) < 0) gids.resize(static_cast<size_t>(n) + 16), n = static_cast<int>(gids.size());
    gids.resize(static_cast<size_t>(n));
    std::vector<Group> out;
    for (gid_t g : gids) {
        group grp {};
        group* res = nullptr;
        std::vector<char> buf(16384);
        std::string name;
        if (getgrgid_r(g, &grp, buf.data(), buf.size(), &res) == 0 && res) name = res->gr_name;
        out.push_back(Group{g, name});
    }
    return out;
}

std::optional<User> user_from(passwd* res) {
    if (!res) return std::nullopt;
    return User{res->pw_name, res->pw_uid, res->pw_gid, groups_of(*res)};
}

// Which leaves carry subleaves and how to know when they end.
void add_leaf(cpuid::Dump& d, uint32_t leaf, uint32_t sub) {
    cpuid::Leaf l;
    l.leaf = leaf;
    l.subleaf = sub;
    __cpuid_count(leaf, sub, l.eax, l.ebx, l.ecx, l.edx);
    d.leaves.push_back(l);
}

void add_leaf_with_subleaves(cpuid::Dump& d, uint32_t leaf) {
    constexpr uint32_t kMaxSub = 64;
    add_leaf(d, leaf, 0);
    const cpuid::Leaf first = d.leaves.back();
    switch (leaf) {
    case 0x4:
    case 0x8000001d:  // cache descriptors end with type 0
        for (uint32_t s = 1; s < kMaxSub && (d.leaves.back().eax & 0x1f) != 0; ++s) add_leaf(d, leaf, s);
        break;
    case 0xb:
    case 0x1f:  // topology levels end with level type 0
        for (uint32_t s = 1; s < kMaxSub && ((d.leaves.back().ecx >> 8) & 0xff) != 0; ++s) add_leaf(d, leaf, s);
        break;
    case 0x7:
    case 0x14:
    case 0x17:
    case 0x18:
    case 0x1d:
    case 0x20:  // subleaf 0 EAX = highest subleaf
        for (uint32_t s = 1; s <= std::min(first.eax, kMaxSub); ++s) add_leaf(d, leaf, s);
        break;
    case 0xd:
        for (uint32_t s = 1; s < 64; ++s) add_leaf(d, leaf, s);
        break;
    case 0xf:
    case 0x10:
    case 0x12:
        for (uint32_t s = 1; s < 4; ++s) add_leaf(d, leaf, s);
        break;
    default:
        break;
    }
}

class LiveHost final : public Host {
public:
    [[nodiscard]] std::string source() const override { return "live"; }
    [[nodiscard]] bool is_live() const override { return true; }

    [[nodiscard]] std::optional<std::string> read_file(const std::string& path, int* err = nullptr) const override {
        BoundedRead r = read_path_bounded(path, kMaxHostFileBytes);
        if (!r.data && err) *err = r.error;
        return std::move(r.data);
    }

    [[nodiscard]] std::vector<std::string> list_dir(const std::string& path) const override {
        std::vector<std::string> out;
        DIR* d = opendir(path.c_str());
        if (!d) return out;
        while (dirent* e = readdir(d)) {
            if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) out.emplace_back(e->d_name);
        }
        closedir(d);
        std::sort(out.begin(), out.end());
        return out;
    }

    [[nodiscard]] StatInfo stat(const std::string& path) const override {
        struct stat st {};
        if (::stat(path.c_str(), &st) < 0) return StatInfo{false, errno};
        return stat_info_from(st);
    }

    [[nodiscard]] std::optional<std::vector<AclEntry>> acl(const std::string& path) const override {
        acl_t a = acl_get_file(path.c_str(), ACL_TYPE_ACCESS);
        if (!a) return std::nullopt;
        std::optional<std::vector<AclEntry>> out;
        if (acl_equiv_mode(a, nullptr) != 0) {  // only report ACLs beyond the mode bits
            out.emplace();
            acl_entry_t e;
            for (int which = ACL_FIRST_ENTRY; acl_get_entry(a, which, &e) == 1; which = ACL_NEXT_ENTRY) {
                acl_tag_t tag;
                acl_permset_t ps;
                acl_get_tag_type(e, &tag);
                acl_get_permset(e, &ps);
                AclEntry ent;
                ent.perms = (acl_get_perm(ps, ACL_READ) ? 4u : 0u) | (acl_get_perm(ps, ACL_WRITE) ? 2u : 0u) |
                            (acl_get_perm(ps, ACL_EXECUTE) ? 1u : 0u);
                switch (tag) {
                case ACL_USER_OBJ: ent.tag = "user_obj"; break;
                case ACL_GROUP_OBJ: ent.tag = "group_obj"; break;
                case ACL_MASK: ent.tag = "mask"; break;
                case ACL_OTHER: ent.tag = "other"; break;
                case ACL_USER:
                case ACL_GROUP: {
                    ent.tag = tag == ACL_USER ? "user" : "group";
                    void* q = acl_get_qualifier(e);
                    if (q) {
                        ent.id = tag == ACL_USER ? static_cast<int64_t>(*static_cast<uid_t*>(q))
                                                 : static_cast<int64_t>(*static_cast<gid_t*>(q));
                        acl_free(q);
                    }
                    break;
                }
                default: ent.tag = "unknown"; break;
                }
                out->push_back(ent);
            }
        }
        acl_free(a);
        return out;
    }

    [[nodiscard]] FsUsage fs_usage(const std::string& path) const override {
        struct statfs sf {};
        FsUsage u;
        if (::statfs(path.c_str(), &sf) < 0) {
            u.error = errno;
            return u;
        }
        u.ok = true;
        u.fstype = fmt::format("0x{:x}", static_cast<unsigned long>(sf.f_type));
        u.total_bytes = static_cast<uint64_t>(sf.f_blocks) * sf.f_bsize;
        u.free_bytes = static_cast<uint64_t>(sf.f_bfree) * sf.f_bsize;
        u.avail_bytes = static_cast<uint64_t>(sf.f_bavail) * sf.f_bsize;
        u.read_only = sf.f_flags & ST_RDONLY;
        return u;
    }

    [[nodiscard]] cpuid::Dump cpuid(CpuidScope scope = CpuidScope::Full) const override {
        cpuid::Dump d;
        d.format = "live";
        d.logical_cpus = 1;
        uint32_t a, b, c, e;
        if (scope == CpuidScope::Essential) {
            // Exactly what cpuid::decode reads: vendor, signature and feature
            // bits, hypervisor signature, brand, SVM and memory-encryption leaves.
            __cpuid(0, a, b, c, e);
            add_leaf(d, 0, 0);
            if (a >= 1) add_leaf(d, 1, 0);
            // Structured extended features and XSAVE components: what
            // kvm.guest-cpuid compares with what KVM offers guests.
            if (a >= 7) {
                add_leaf(d, 7, 0);
                if (d.leaves.back().eax >= 1) add_leaf(d, 7, 1);
            }
            if (a >= 0xd) {
                add_leaf(d, 0xd, 0);
                add_leaf(d, 0xd, 1);
            }
            // The other leaves libvirt's cpu_map names features in (the
            // report's cpu section, kvmready compare).
            if (a >= 6) add_leaf(d, 6, 0);
            if (a >= 0x14) add_leaf(d, 0x14, 0);
            if (d.leaves.size() > 1 && (d.find(1)->ecx & (1u << 31))) add_leaf(d, 0x40000000, 0);
            __cpuid(0x80000000, a, b, c, e);
            add_leaf(d, 0x80000000, 0);
            if (a >= 0x80000001 && a <= 0x800000ff) {
                for (uint32_t l : {0x80000001u, 0x80000002u, 0x80000003u, 0x80000004u, 0x80000007u, 0x80000008u, 0x8000000au, 0x8000001fu})
                    if (l <= a) add_leaf(d, l, 0);
            }
            return d;
        }
        __cpuid(0, a, b, c, e);
        const uint32_t max_basic = std::min<uint32_t>(a, 0x40);  // guard against garbage maxima
        for (uint32_t l = 0; l <= max_basic; ++l) add_leaf_with_subleaves(d, l);
        __cpuid(1, a, b, c, e);
        if (c & (1u << 31)) {
            __cpuid(0x40000000, a, b, c, e);
            uint32_t max_hv = (a >= 0x40000000 && a <= 0x400000ff) ? a : 0x40000000;
            for (uint32_t l = 0x40000000; l <= max_hv; ++l) add_leaf(d, l, 0);
        }
        __cpuid(0x80000000, a, b, c, e);
        if (a >= 0x80000000 && a <= 0x800000ff) {
            for (uint32_t l = 0x80000000; l <= a; ++l) add_leaf_with_subleaves(d, l);
        }
        return d;
    }

    [[nodiscard]] MsrValue read_msr(unsigned cpu, uint32_t index) const override {
        std::string path = "/dev/cpu/" + std::to_string(cpu) + "/msr";
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == ENOENT || e == ENXIO || e == ENODEV)
                return {std::nullopt, path + " does not exist (msr driver not available: modprobe msr)"};
            if (e == EACCES || e == EPERM) return {std::nullopt, "reading " + path + " needs root (CAP_SYS_RAWIO)"};
            return {std::nullopt, "open " + path + ": " + std::strerror(e)};
        }
        uint64_t v = 0;
        ssize_t n = ::pread(fd, &v, sizeof v, static_cast<off_t>(index));
        int e = errno;
        ::close(fd);
        if (n != static_cast<ssize_t>(sizeof v)) {
            if (n < 0 && e == EIO) return {std::nullopt, "the CPU (or hypervisor) refused the read: MSR not implemented"};
            return {std::nullopt, std::string("pread ") + path + ": " + (n < 0 ? std::strerror(e) : "short read")};
        }
        return {v, ""};
    }

    [[nodiscard]] KvmProbe probe_kvm(const std::string& dev) const override { return run_kvm_probe(dev); }

    [[nodiscard]] std::optional<User> lookup_user(const std::string& name) const override {
        passwd pw {};
        passwd* res = nullptr;
        std::vector<char> buf(16384);
        if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res) != 0) return std::nullopt;
        return user_from(res);
    }

    [[nodiscard]] std::optional<User> current_user() const override {
        passwd pw {};
        passwd* res = nullptr;
        std::vector<char> buf(16384);
        if (getpwuid_r(geteuid(), &pw, buf.data(), buf.size(), &res) != 0 || !res)
            return User{std::to_string(geteuid()), geteuid(), getegid(), {}};
        return user_from(res);
    }

    [[nodiscard]] std::optional<std::vector<uint32_t>> process_groups() const override {
        int n = getgroups(0, nullptr);
        std::vector<gid_t> g(static_cast<size_t>(std::max(n, 0)));
        n = getgroups(static_cast<int>(g.size()), g.data());
        std::vector<uint32_t> out(g.begin(), g.begin() + std::max(n, 0));
        if (std::find(out.begin(), out.end(), getegid()) == out.end()) out.push_back(getegid());
        return out;
    }

    [[nodiscard]] std::optional<int> try_open_rw(const std::string& path) const override {
        int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) return errno;
        ::close(fd);
        return 0;
    }

    [[nodiscard]] RunResult run(const std::vector<std::string>& argv, int timeout_ms) const override {
        return run_process(argv, timeout_ms);
    }

    [[nodiscard]] BinaryString binary_string(const std::string& path, const std::string& prefix) const override {
        BinaryString b;
        b.value = elf_rodata_string(path, prefix, &b.error);
        return b;
    }

    [[nodiscard]] LibvirtSnapshot libvirt(const std::string& uri, int timeout_ms) const override {
        return query_libvirt(uri, timeout_ms);
    }

    [[nodiscard]] std::unique_ptr<LibvirtPending> start_libvirt(const std::string& uri, int timeout_ms) const override {
        return start_libvirt_query(uri, timeout_ms);
    }

    [[nodiscard]] InterfaceAddresses interface_addresses(const std::string& kind) const override {
        return read_interface_addresses(kind);
    }

    [[nodiscard]] NftRuleset nftables() const override { return read_nftables(); }
    [[nodiscard]] KernelLog kernel_log() const override { return read_kernel_log(); }
    [[nodiscard]] UdevSnapshot udev_devices() const override { return enumerate_live(); }
};

}  // namespace

std::unique_ptr<Host> make_live_host() { return std::make_unique<LiveHost>(); }

}  // namespace kvmready::host
