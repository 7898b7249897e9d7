// Record-and-replay: a Host decorator that remembers every answer the inner
// host gave, and writes them out as a host tree that make_rooted_host() reads
// back. A customer's recording becomes a test fixture unchanged.
#pragma once

#include <map>
#include <mutex>
#include <memory>
#include <set>
#include <string>

#include "host/host.hpp"

namespace kvmready::host {

class RecordingHost final : public Host {
public:
    explicit RecordingHost(const Host& inner) : inner_(inner) {}

    [[nodiscard]] std::string source() const override { return inner_.source(); }
    [[nodiscard]] bool is_live() const override { return inner_.is_live(); }
    [[nodiscard]] std::optional<std::string> read_file(const std::string& path, int* err = nullptr) const override;
    [[nodiscard]] std::vector<std::string> list_dir(const std::string& path) const override;
    [[nodiscard]] StatInfo stat(const std::string& path) const override;
    [[nodiscard]] std::optional<std::vector<AclEntry>> acl(const std::string& path) const override;
    [[nodiscard]] FsUsage fs_usage(const std::string& path) const override;
    [[nodiscard]] cpuid::Dump cpuid(CpuidScope scope = CpuidScope::Full) const override;
    [[nodiscard]] MsrValue read_msr(unsigned cpu, uint32_t index) const override;
    [[nodiscard]] KvmProbe probe_kvm(const std::string& dev) const override;
    [[nodiscard]] std::optional<User> lookup_user(const std::string& name) const override;
    [[nodiscard]] std::optional<User> current_user() const override;
    [[nodiscard]] std::optional<std::vector<uint32_t>> process_groups() const override;
    [[nodiscard]] std::optional<int> try_open_rw(const std::string& path) const override;
    [[nodiscard]] RunResult run(const std::vector<std::string>& argv, int timeout_ms) const override;
    [[nodiscard]] BinaryString binary_string(const std::string& path, const std::string& prefix) const override;
    [[nodiscard]] LibvirtSnapshot libvirt(const std::string& uri, int timeout_ms) const override;
    [[nodiscard]] std::unique_ptr<LibvirtPending> start_libvirt(const std::string& uri, int timeout_ms) const override;
    [[nodiscard]] InterfaceAddresses interface_addresses(const std::string& kind) const override;
    [[nodiscard]] NftRuleset nftables() const override;
    [[nodiscard]] KernelLog kernel_log() const override;
    // The inner host's answer, recorded as such: the id it came from is not.
    [[nodiscard]] HostIdentity identity() const override;
    [[nodiscard]] UdevSnapshot udev_devices() const override;

    // Writes the tree into `dir`, which must not exist or be empty. Files are
    // created exclusively, never through symlinks. Throws ExitError.
    void write(const std::string& dir, const std::string& description) const;

private:
    void write_tree(const std::string& dir, const std::string& description) const;

    const Host& inner_;
    // Probes run on two threads (the ioctl test beside the file reads).
    mutable std::mutex mu_;
    mutable std::map<std::string, std::string> files_;
    mutable std::set<std::string> dirs_;
    mutable std::map<std::string, StatInfo> nodes_;
    mutable std::map<std::string, std::vector<AclEntry>> acls_;
    mutable std::optional<cpuid::Dump> cpuid_;
    mutable std::map<uint32_t, MsrValue> msrs_;
    mutable std::optional<KvmProbe> kvm_;
    mutable std::string current_user_;
    mutable std::optional<std::vector<uint32_t>> process_groups_;
    mutable std::map<std::string, int> open_rw_;
    mutable std::vector<std::pair<std::vector<std::string>, RunResult>> commands_;
    mutable std::map<std::pair<std::string, std::string>, BinaryString> binary_strings_;
    mutable std::optional<LibvirtSnapshot> libvirt_;
    mutable std::map<std::string, FsUsage> fs_usage_;
    mutable std::optional<InterfaceAddresses> interface_addresses_;
    mutable std::optional<NftRuleset> nftables_;
    mutable std::optional<KernelLog> kernel_log_;
    mutable std::optional<HostIdentity> identity_;
    mutable std::optional<UdevSnapshot> udev_;
    mutable bool need_user_db_ = false;
};

}  // namespace kvmready::host
