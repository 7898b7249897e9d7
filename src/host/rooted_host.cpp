// A host recorded as a directory tree: sysfs/procfs/etc files as they were,
// plus .kvmready/host.json for what a tree of plain files cannot hold (device
// nodes, MSR values, the ioctl test result, the user the recording ran as).
// All paths resolve with RESOLVE_IN_ROOT, so absolute symlinks inside a
// recorded tree (sysfs is full of them) never escape to the live machine.
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <mutex>
#include <system_error>

#include "util/errors.hpp"
#include "host/host.hpp"
#include "host/bounded_read.hpp"
#include "host/stat_util.hpp"

namespace kvmready::host {

namespace {

using nlohmann::json;

int open_in_root(int root, const std::string& path, uint64_t flags) {
    open_how how {};
    how.flags = flags | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    std::string rel = path;
    while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
    if (rel.empty()) rel = ".";
    for (;;) {
        long fd = ::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how);
        if (fd >= 0 || errno != EAGAIN) return static_cast<int>(fd);
    }
}

unsigned parse_mode(const json& v) {
    if (v.is_number_unsigned()) return v.get<unsigned>();
    return static_cast<unsigned>(std::stoul(v.get<std::string>(), nullptr, 8));
}

uint64_t parse_u64(const json& v) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    return std::stoull(v.get<std::string>(), nullptr, 0);
}

class RootedHost final : public Host {
public:
    explicit RootedHost(std::string dir) : dir_(std::move(dir)) {
        root_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root_ < 0) {
            int e = errno;
            if (e == ENOENT || e == ENOTDIR) throw NoInputError("--root " + dir_ + ": no such directory");
            throw NoInputError("--root " + dir_ + ": " + std::strerror(e));
        }
        load_sidecar();
        if (!refused_.empty()) throw DataError(refused_.front());
    }
    RootedHost(const RootedHost&) = delete;
    RootedHost& operator=(const RootedHost&) = delete;
    ~RootedHost() override { ::close(root_); }

    [[nodiscard]] std::string source() const override { return "root:" + dir_; }
    [[nodiscard]] bool is_live() const override { return false; }

    [[nodiscard]] std::optional<std::string> read_file(const std::string& path, int* err = nullptr) const override {
        int fd = open_in_root(root_, path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
            if (err) *err = errno;
            return std::nullopt;
        }
        BoundedRead r = read_fd_bounded(fd, kMaxHostFileBytes);
        ::close(fd);
        if (r.data) return std::move(r.data);
        if (err) *err = r.error;
        // A recorded tree holds regular files only: a FIFO or device node in
        // its place (or a file past the cap) makes the whole tree malformed.
        if ((!r.kind.empty() && r.error != EISDIR) || r.error == EFBIG) refuse(describe_read_failure(r, dir_ + path, kMaxHostFileBytes));
        return std::nullopt;
    }

    [[nodiscard]] std::vector<std::string> refused_inputs() const override {
        std::lock_guard<std::mutex> lock(refused_mutex_);
        return refused_;
    }

    [[nodiscard]] std::vector<std::string> list_dir(const std::string& path) const override {
        std::vector<std::string> out;
        int fd = open_in_root(root_, path, O_RDONLY | O_DIRECTORY);
        if (fd < 0) return out;
        DIR* d = fdopendir(fd);
        if (!d) {
            ::close(fd);
            return out;
        }
        while (dirent* e = readdir(d)) {
            if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0 && std::strcmp(e->d_name, ".kvmready-keep") != 0)
                out.emplace_back(e->d_name);
        }
        closedir(d);
        std::sort(out.begin(), out.end());
        return out;
    }

    [[nodiscard]] StatInfo stat(const std::string& path) const override {
        if (auto it = nodes_.find(path); it != nodes_.end()) return it->second.st;
        int fd = open_in_root(root_, path, O_PATH);
        if (fd < 0) return StatInfo{false, errno};
        struct stat st {};
        int rc = ::fstat(fd, &st);
        int e = errno;
        ::close(fd);
        if (rc < 0) return StatInfo{false, e};
        return stat_info_from(st);
    }

    [[nodiscard]] std::optional<std::vector<AclEntry>> acl(const std::string& path) const override {
        if (auto it = nodes_.find(path); it != nodes_.end()) return it->second.acl;
        return std::nullopt;
    }

    [[nodiscard]] FsUsage fs_usage(const std::string& path) const override {
        if (auto it = fs_usage_.find(path); it != fs_usage_.end()) return it->second;
        FsUsage u;
        u.error = ENODATA;
        return u;
    }

    [[nodiscard]] cpuid::Dump cpuid(CpuidScope = CpuidScope::Full) const override { return cpuid_; }

    [[nodiscard]] MsrValue read_msr(unsigned cpu, uint32_t index) const override {
        if (cpu != 0) return {std::nullopt, "only CPU 0 MSRs are recorded"};
        if (auto it = msrs_.find(index); it != msrs_.end()) return {it->second, ""};
        if (auto it = msr_errors_.find(index); it != msr_errors_.end()) return {std::nullopt, it->second};
        if (!msr_error_.empty()) return {std::nullopt, msr_error_};
        return {std::nullopt, "MSR not recorded in " + dir_ + "/.kvmready/host.json"};
    }

    [[nodiscard]] KvmProbe probe_kvm(const std::string&) const override {
        if (kvm_probe_) return *kvm_probe_;
        KvmProbe p;
        p.not_attempted_reason = "recorded host tree has no ioctl result (the functional test only runs live)";
        return p;
    }

    [[nodiscard]] std::optional<User> lookup_user(const std::string& name) const override {
        return lookup_user_in_db(read_file("/etc/passwd").value_or(""), read_file("/etc/group").value_or(""), name);
    }

    [[nodiscard]] std::optional<User> current_user() const override {
        if (current_user_.empty()) return std::nullopt;
        return lookup_user(current_user_);
    }

    [[nodiscard]] std::optional<std::vector<uint32_t>> process_groups() const override { return process_groups_; }

    [[nodiscard]] std::optional<int> try_open_rw(const std::string& path) const override {
        if (auto it = open_rw_.find(path); it != open_rw_.end()) return it->second;
        return std::nullopt;
    }

    [[nodiscard]] RunResult run(const std::vector<std::string>& argv, int) const override {
        if (auto it = commands_.find(argv); it != commands_.end()) return it->second;
        RunResult r;
        r.error = "not recorded in this host tree";
        return r;
    }

    [[nodiscard]] BinaryString binary_string(const std::string& path, const std::string& prefix) const override {
        if (auto it = binary_strings_.find({path, prefix}); it != binary_strings_.end()) return it->second;
        return BinaryString{std::nullopt, "not recorded in this host tree"};
    }

    [[nodiscard]] LibvirtSnapshot libvirt(const std::string& uri, int) const override {
        if (libvirt_ && (uri.empty() || libvirt_->uri == uri)) return *libvirt_;
        LibvirtSnapshot s;
        s.uri = uri;
        s.not_attempted_reason = libvirt_ ? "the recording queried " + libvirt_->uri + ", not " + uri
                                          : "the recorded host tree has no libvirt snapshot";
        return s;
    }

    [[nodiscard]] InterfaceAddresses interface_addresses(const std::string& kind) const override {
        if (interface_addresses_ && interface_addresses_->kind == kind) return *interface_addresses_;
        InterfaceAddresses a;
        a.available = false;
        a.kind = kind;
        a.error = "not recorded in this host tree";
        return a;
    }

    [[nodiscard]] NftRuleset nftables() const override {
        if (nftables_) return *nftables_;
        NftRuleset r;
        r.available = false;
        r.error = "not recorded in this host tree";
        return r;
    }

    [[nodiscard]] UdevSnapshot udev_devices() const override {
        if (!udev_) return enumerate_sysfs(*this);
        UdevSnapshot r = *udev_;
        r.source = "recorded";
        return r;
    }

    [[nodiscard]] KernelLog kernel_log() const override {
        if (kernel_log_) return *kernel_log_;
        KernelLog r;
        r.available = false;
        r.source = "recorded";
        r.error = "not recorded in this host tree";
        return r;
    }

    // As recorded (.kvmready/host.json); a tree without it (a fixture made
    // by hand) answers from its own etc/machine-id like a live host.
    [[nodiscard]] HostIdentity identity() const override { return identity_ ? *identity_ : Host::identity(); }

private:
    struct Node {
        StatInfo st;
        std::optional<std::vector<AclEntry>> acl;
    };

    void load_sidecar() {
        const std::string name = dir_ + "/.kvmready/host.json";
        auto text = read_file("/.kvmready/host.json");
        if (!text) {
            msr_error_ = "recorded host tree has no MSR values";
            return;
        }
        json j;
        try {
            j = json::parse(*text);
        } catch (const json::parse_error& e) {
            // Drop the library's "[json.exception.parse_error.101] " prefix.
            std::string what = e.what();
            if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
            throw DataError(name + ": not valid JSON: " + what);
        }
        try {
            const json nodes = j.value("nodes", json::object());  // named: range-for would drop a temporary
            for (const auto& [path, n] : nodes.items()) {
                Node node;
                node.st.exists = n.value("exists", true);
                node.st.error = node.st.exists ? 0 : ENOENT;
                node.st.type = n.value("type", "char");
                node.st.major = n.value("major", 0u);
                node.st.minor = n.value("minor", 0u);
                node.st.mode = n.contains("mode") ? parse_mode(n["mode"]) : 0;
                node.st.uid = n.value("uid", 0u);
                node.st.gid = n.value("gid", 0u);
                if (n.contains("acl")) {
                    node.acl.emplace();
                    for (const auto& a : n["acl"])
                        node.acl->push_back(AclEntry{a.at("tag").get<std::string>(), a.value("id", int64_t{-1}),
                                                     a.at("perms").get<unsigned>()});
                }
                nodes_[path] = node;
            }
            const json msr = j.value("msr", json::object());
            msr_error_ = msr.value("error", "");
            const json values = msr.value("values", json::object());
            const json errors = msr.value("errors", json::object());
            const json open_rw = j.value("open_rw_errno", json::object());
            for (const auto& [k, v] : values.items())
                msrs_[static_cast<uint32_t>(std::stoul(k, nullptr, 0))] = parse_u64(v);
            for (const auto& [k, v] : errors.items())
                msr_errors_[static_cast<uint32_t>(std::stoul(k, nullptr, 0))] = v.get<std::string>();
            if (j.contains("kvm_probe")) kvm_probe_ = j["kvm_probe"].get<KvmProbe>();
            current_user_ = j.value("current_user", "");
            if (j.contains("process_groups")) process_groups_ = j["process_groups"].get<std::vector<uint32_t>>();
            for (const auto& [k, v] : open_rw.items()) open_rw_[k] = v.get<int>();
            const json fs_usage = j.value("fs_usage", json::object());
            for (const auto& [k, v] : fs_usage.items()) fs_usage_[k] = v.get<FsUsage>();
            if (j.contains("commands"))
                for (const auto& c : j["commands"]) commands_[c.at("argv").get<std::vector<std::string>>()] = c.at("result").get<RunResult>();
            if (j.contains("interface_addresses")) interface_addresses_ = j["interface_addresses"].get<InterfaceAddresses>();
            if (j.contains("nftables")) nftables_ = j["nftables"].get<NftRuleset>();
            if (j.contains("kernel_log")) kernel_log_ = j["kernel_log"].get<KernelLog>();
            if (j.contains("identity")) identity_ = j["identity"].get<HostIdentity>();
            if (j.contains("udev")) udev_ = j["udev"].get<UdevSnapshot>();
            for (const auto& b : j.value("binary_strings", json::array())) {
                BinaryString v;
                if (b.contains("value") && !b["value"].is_null()) v.value = b["value"].get<std::string>();
                v.error = b.value("error", "");
                binary_strings_[{b.at("path").get<std::string>(), b.at("prefix").get<std::string>()}] = v;
            }
        } catch (const json::exception& e) {
            throw DataError(name + ": unexpected content: " + e.what());
        } catch (const std::logic_error& e) {
            throw DataError(name + ": bad number: " + e.what());
        }
        if (auto lv = read_file("/.kvmready/libvirt/snapshot.json")) {
            try {
                libvirt_ = json::parse(*lv).get<LibvirtSnapshot>();
            } catch (const json::exception& e) {
                throw DataError(dir_ + "/.kvmready/libvirt/snapshot.json: " + e.what());
            }
        }
        if (auto f = j.value("cpuid_file", std::string{}); !f.empty()) {
            const std::string rel = "/.kvmready/" + f;
            auto dump = read_file(rel);
            if (!dump) throw DataError(name + ": cpuid_file " + f + " is missing");
            try {
                cpuid_ = cpuid::parse(*dump, dir_ + rel);
            } catch (const cpuid::ParseError& e) {
                throw DataError(std::string(e.what()));
            }
        }
    }

    // Probes read from several threads; nothing may throw there.
    void refuse(const std::string& why) const {
        std::lock_guard<std::mutex> lock(refused_mutex_);
        if (std::find(refused_.begin(), refused_.end(), why) == refused_.end()) refused_.push_back(why);
    }

    std::string dir_;
    int root_ = -1;
    mutable std::mutex refused_mutex_;
    mutable std::vector<std::string> refused_;
    std::map<std::string, Node> nodes_;
    std::map<uint32_t, uint64_t> msrs_;
    std::map<uint32_t, std::string> msr_errors_;
    std::string msr_error_;
    std::optional<KvmProbe> kvm_probe_;
    std::string current_user_;
    std::optional<std::vector<uint32_t>> process_groups_;
    std::map<std::string, int> open_rw_;
    std::map<std::vector<std::string>, RunResult> commands_;
    std::map<std::pair<std::string, std::string>, BinaryString> binary_strings_;
    std::map<std::string, FsUsage> fs_usage_;
    std::optional<LibvirtSnapshot> libvirt_;
    std::optional<InterfaceAddresses> interface_addresses_;
    std::optional<NftRuleset> nftables_;
    std::optional<KernelLog> kernel_log_;
    std::optional<HostIdentity> identity_;
    std::optional<UdevSnapshot> udev_;
    cpuid::Dump cpuid_;
};

}  // namespace

std::unique_ptr<Host> make_rooted_host(const std::string& dir) { return std::make_unique<RootedHost>(dir); }

}  // namespace kvmready::host
