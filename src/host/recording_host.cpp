#include "host/recording_host.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "util/errors.hpp"
#include "util/utf8.hpp"

namespace kvmready::host {

namespace {

// Empty directories do not survive git; this marker keeps them and the
// rooted host hides it from listings.
constexpr const char* kKeep = ".kvmready-keep";

void mkdirs(const std::string& root, const std::string& rel) {
    std::string cur = root;
    size_t pos = 0;
    while (pos < rel.size()) {
        size_t next = rel.find('/', pos);
        if (next == std::string::npos) next = rel.size();
        std::string part = rel.substr(pos, next - pos);
        pos = next + 1;
        if (part.empty() || part == "." ) continue;
        if (part == "..") throw ExitError(kExitSoftware, "refusing to record path with '..': " + rel);
        cur += "/" + part;
        if (::mkdir(cur.c_str(), 0755) < 0 && errno != EEXIST)
            throw ExitError(kExitSoftware, fmt::format("mkdir {}: {}", cur, std::strerror(errno)));
        struct stat st {};
        if (::lstat(cur.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
            throw ExitError(kExitSoftware, fmt::format("{} is not a directory (symlink?)", cur));
    }
}

void write_new(const std::string& path, const std::string& data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST) return;  // a path both listed and read
        throw ExitError(kExitSoftware, fmt::format("create {}: {}", path, std::strerror(errno)));
    }
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            throw ExitError(kExitSoftware, fmt::format("write {}: {}", path, std::strerror(e)));
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd) < 0 || ::close(fd) < 0) throw ExitError(kExitSoftware, fmt::format("close {}: {}", path, std::strerror(errno)));
}

std::string parent(const std::string& p) {
    auto s = p.rfind('/');
    return s == std::string::npos || s == 0 ? "" : p.substr(0, s);
}

nlohmann::json acl_json(const std::vector<AclEntry>& acl) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : acl) {
        nlohmann::json x = {{"tag", e.tag}, {"perms", e.perms}};
        if (e.id >= 0) x["id"] = e.id;
        a.push_back(x);
    }
    return a;
}

}  // namespace

std::optional<std::string> RecordingHost::read_file(const std::string& path, int* err) const {
    auto r = inner_.read_file(path, err);
    std::lock_guard lock(mu_);
    if (r) files_[path] = *r;
    return r;
}

std::vector<std::string> RecordingHost::list_dir(const std::string& path) const {
    auto r = inner_.list_dir(path);
    std::lock_guard lock(mu_);
    // Only the directory itself: entries the probe cares about are read or
    // listed in turn, and the rest would only add noise to a recording.
    if (!r.empty()) dirs_.insert(path);
    return r;
}

StatInfo RecordingHost::stat(const std::string& path) const {
    auto r = inner_.stat(path);
    std::lock_guard lock(mu_);
    if (r.exists) nodes_[path] = r;
    return r;
}

std::optional<std::vector<AclEntry>> RecordingHost::acl(const std::string& path) const {
    auto r = inner_.acl(path);
    std::lock_guard lock(mu_);
    if (r) acls_[path] = *r;
    return r;
}

cpuid::Dump RecordingHost::cpuid(CpuidScope) const {
    auto r = inner_.cpuid(CpuidScope::Full);  // a recording is a full dump
    std::lock_guard lock(mu_);
    cpuid_ = r;
    return r;
}

MsrValue RecordingHost::read_msr(unsigned cpu, uint32_t index) const {
    auto r = inner_.read_msr(cpu, index);
    std::lock_guard lock(mu_);
    if (cpu == 0) msrs_[index] = r;
    return r;
}

KvmProbe RecordingHost::probe_kvm(const std::string& dev) const {
    auto r = inner_.probe_kvm(dev);
    std::lock_guard lock(mu_);
    kvm_ = r;
    return r;
}

std::optional<User> RecordingHost::lookup_user(const std::string& name) const {
    {
        std::lock_guard lock(mu_);
        need_user_db_ = true;
    }
    return inner_.lookup_user(name);
}

std::optional<User> RecordingHost::current_user() const {
    auto r = inner_.current_user();
    std::lock_guard lock(mu_);
    need_user_db_ = true;
    if (r) current_user_ = r->name;
    return r;
}

std::optional<std::vector<uint32_t>> RecordingHost::process_groups() const {
    auto r = inner_.process_groups();
    std::lock_guard lock(mu_);
    process_groups_ = r;
    return r;
}

std::optional<int> RecordingHost::try_open_rw(const std::string& path) const {
    auto r = inner_.try_open_rw(path);
    std::lock_guard lock(mu_);
    if (r) open_rw_[path] = *r;
    return r;
}

FsUsage RecordingHost::fs_usage(const std::string& path) const {
    auto r = inner_.fs_usage(path);
    std::lock_guard lock(mu_);
    fs_usage_[path] = r;
    return r;
}

RunResult RecordingHost::run(const std::vector<std::string>& argv, int timeout_ms) const {
    auto r = inner_.run(argv, timeout_ms);
    std::lock_guard lock(mu_);
    commands_.emplace_back(argv, r);
    return r;
}

BinaryString RecordingHost::binary_string(const std::string& path, const std::string& prefix) const {
    auto r = inner_.binary_string(path, prefix);
    std::lock_guard lock(mu_);
    binary_strings_[{path, prefix}] = r;
    return r;
}

LibvirtSnapshot RecordingHost::libvirt(const std::string& uri, int timeout_ms) const {
    auto r = inner_.libvirt(uri, timeout_ms);
    std::lock_guard lock(mu_);
    libvirt_ = r;
    return r;
}

std::unique_ptr<LibvirtPending> RecordingHost::start_libvirt(const std::string& uri, int timeout_ms) const {
    struct Recorded final : LibvirtPending {
        Recorded(const RecordingHost& r, std::unique_ptr<LibvirtPending> p) : rec(r), inner(std::move(p)) {}
        LibvirtSnapshot wait() override {
            auto s = inner->wait();
            std::lock_guard lock(rec.mu_);
            rec.libvirt_ = s;
            return s;
        }
        const RecordingHost& rec;
        std::unique_ptr<LibvirtPending> inner;
    };
    return std::make_unique<Recorded>(*this, inner_.start_libvirt(uri, timeout_ms));
}

InterfaceAddresses RecordingHost::interface_addresses(const std::string& kind) const {
    auto r = inner_.interface_addresses(kind);
    std::lock_guard lock(mu_);
    if (r.available) interface_addresses_ = r;
    return r;
}

NftRuleset RecordingHost::nftables() const {
    auto r = inner_.nftables();
    std::lock_guard lock(mu_);
    if (r.available) nftables_ = r;
    return r;
}

HostIdentity RecordingHost::identity() const {
    auto r = inner_.identity();
    std::lock_guard<std::mutex> lock(mu_);
    identity_ = r;
    return r;
}

KernelLog RecordingHost::kernel_log() const {
    auto r = inner_.kernel_log();
    std::lock_guard lock(mu_);
    if (r.available) kernel_log_ = r;
    return r;
}

UdevSnapshot RecordingHost::udev_devices() const {
    auto r = inner_.udev_devices();
    std::lock_guard lock(mu_);
    if (r.available) udev_ = r;
    return r;
}

void RecordingHost::write(const std::string& final_dir, const std::string& description) const {
    // Build the tree in a sibling temporary directory and rename it into
    // place, so an interrupted or failed recording never leaves half a tree.
    struct stat existing {};
    if (::lstat(final_dir.c_str(), &existing) == 0 && !(S_ISDIR(existing.st_mode) && ::rmdir(final_dir.c_str()) == 0))
        throw ExitError(kExitUsage, fmt::format("{} already exists; choose a new directory", final_dir));
    std::string tmpl = final_dir;
    while (tmpl.size() > 1 && tmpl.back() == '/') tmpl.pop_back();
    tmpl += ".partial-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw NoInputError(fmt::format("cannot create {}: {}", tmpl, std::strerror(errno)));
    const std::string dir = tmpl;
    try {
        write_tree(dir, description);
        ::chmod(dir.c_str(), 0755);
        if (::rename(dir.c_str(), final_dir.c_str()) < 0)
            throw ExitError(kExitSoftware, fmt::format("rename {} to {}: {}", dir, final_dir, std::strerror(errno)));
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        throw;
    }
}

void RecordingHost::write_tree(const std::string& dir, const std::string& description) const {
    if (need_user_db_) {
        // Replays resolve users from the tree's own databases.
        (void)read_file("/etc/passwd");
        (void)read_file("/etc/group");
    }
    std::lock_guard lock(mu_);
    for (const auto& [path, data] : files_) {
        mkdirs(dir, parent(path));
        write_new(dir + path, data);
    }
    for (const auto& d : dirs_) {
        if (files_.count(d)) continue;
        mkdirs(dir, d);
    }
    nlohmann::json nodes = nlohmann::json::object();
    for (const auto& [path, st] : nodes_) {
        if (files_.count(path)) continue;
        if (st.type == "dir") {
            mkdirs(dir, path);
            continue;
        }
        if (st.type == "file") {
            mkdirs(dir, parent(path));
            write_new(dir + path, "");
            continue;
        }
        nlohmann::json n = {{"type", st.type}, {"major", st.major}, {"minor", st.minor}, {"mode", fmt::format("{:04o}", st.mode)},
                            {"uid", st.uid}, {"gid", st.gid}};
        if (auto a = acls_.find(path); a != acls_.end()) n["acl"] = acl_json(a->second);
        nodes[path] = n;
    }
    // Mark every leaf directory (listed, or only stat'ed) so that git keeps it.
    std::set<std::string> leaf_candidates(dirs_.begin(), dirs_.end());
    for (const auto& [path, st] : nodes_)
        if (st.type == "dir") leaf_candidates.insert(path);
    for (const auto& d : leaf_candidates) {
        bool has_child = false;
        for (const auto& [p, _] : files_) has_child |= p.rfind(d + "/", 0) == 0;
        for (const auto& o : leaf_candidates) has_child |= o.rfind(d + "/", 0) == 0;
        if (!has_child && !files_.count(d)) write_new(dir + d + "/" + kKeep, "");
    }
    nlohmann::json j = {{"format", "kvmready-host-tree/1"}, {"description", description}, {"nodes", nodes}};
    nlohmann::json msr = {{"values", nlohmann::json::object()}, {"errors", nlohmann::json::object()}};
    for (const auto& [idx, v] : msrs_) {
        const std::string key = fmt::format("0x{:x}", idx);
        if (v.value) msr["values"][key] = fmt::format("0x{:x}", *v.value);
        else msr["errors"][key] = v.error;
    }
    j["msr"] = msr;
    if (kvm_) j["kvm_probe"] = *kvm_;
    if (!current_user_.empty()) j["current_user"] = current_user_;
    if (process_groups_) j["process_groups"] = *process_groups_;
    if (!open_rw_.empty()) j["open_rw_errno"] = open_rw_;
    if (!fs_usage_.empty()) j["fs_usage"] = fs_usage_;
    if (interface_addresses_) j["interface_addresses"] = *interface_addresses_;
    if (nftables_) j["nftables"] = *nftables_;
    if (kernel_log_) j["kernel_log"] = *kernel_log_;
    if (identity_) j["identity"] = *identity_;
    if (udev_) j["udev"] = *udev_;
    if (!commands_.empty()) {
        nlohmann::json cmds = nlohmann::json::array();
        for (const auto& [argv, res] : commands_) cmds.push_back({{"argv", argv}, {"result", res}});
        j["commands"] = cmds;
    }
    if (!binary_strings_.empty()) {
        nlohmann::json bs = nlohmann::json::array();
        for (const auto& [key, b] : binary_strings_)
            bs.push_back({{"path", key.first}, {"prefix", key.second}, {"value", b.value ? nlohmann::json(*b.value) : nlohmann::json()},
                          {"error", b.error}});
        j["binary_strings"] = bs;
    }
    mkdirs(dir, "/.kvmready");
    if (libvirt_) {
        // The snapshot for replay, and the XML as files people can read.
        mkdirs(dir, "/.kvmready/libvirt");
        write_new(dir + "/.kvmready/libvirt/snapshot.json", util::dump_json(nlohmann::json(*libvirt_), 2) + "\n");
        auto put = [&](const std::string& name, const std::string& xml) {
            if (!xml.empty()) write_new(dir + "/.kvmready/libvirt/" + name, xml);
        };
        put("capabilities.xml", libvirt_->capabilities_xml);
        put("domcaps-kvm.xml", libvirt_->domcaps_kvm_xml);
        put("domcaps-qemu.xml", libvirt_->domcaps_qemu_xml);
        for (const auto& n : libvirt_->networks) put("network-" + n.name + ".xml", n.xml);
        for (const auto& p : libvirt_->pools) put("pool-" + p.name + ".xml", p.xml);
    }
    if (cpuid_ && !cpuid_->leaves.empty()) {
        write_new(dir + "/.kvmready/cpuid.txt", cpuid::to_cpuid_r(*cpuid_));
        j["cpuid_file"] = "cpuid.txt";
    }
    write_new(dir + "/.kvmready/host.json", util::dump_json(j, 2) + "\n");
}

}  // namespace kvmready::host
