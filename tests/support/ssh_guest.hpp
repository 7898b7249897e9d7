// Long-lived guests reached over real SSH, for the Ansible fleet test
// (tests/ansible_fleet_test.cpp): Debian's cloud kernel under QEMU TCG with
// the Debian root of scripts/fetch-fleet-guest-root.sh as its initramfs
// (sshd, python3, sudo; no kvmready), QEMU user networking with port 22
// forwarded to 127.0.0.1:PORT only (nothing leaves loopback). The guest's
// /init takes its differences on the kernel command line: the modules to
// load, whether user `ansible` is in group kvm, and the per-run public key.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/background.hpp"
#include "support/spawn.hpp"

namespace kvmready::testsupport {

struct SshGuestSpec {
    std::string name;     // hostname and inventory name
    std::string cpu;      // QEMU -cpu
    std::string modules;  // kvmready.modules=: "kvm_amd:nested=1" (comma-separated, ':' before parameters)
    bool kvm_group = false;
};

// What the fleet guests need on this machine; `missing` says what is not
// there (the test skips with it).
struct SshGuestEnv {
    std::filesystem::path vmlinuz, root_cpio, qemu;
    std::string missing;
};
SshGuestEnv find_ssh_guest_env();

// A loopback TCP port nobody listens on right now (QEMU binds it next).
int free_loopback_port();

class SshGuest {
public:
    SshGuest(SshGuestSpec spec, const SshGuestEnv& env, const std::filesystem::path& dir, const std::filesystem::path& key,
             const std::string& pubkey_base64);
    SshGuest(const SshGuest&) = delete;
    SshGuest& operator=(const SshGuest&) = delete;

    // True once sshd answers with the key (QEMU exited, or the deadline
    // passed: false, and why() says so with the console's tail).
    bool wait_ready(std::chrono::steady_clock::time_point deadline);
    // A command line run by the guest's shell as user ansible.
    [[nodiscard]] Captured ssh(const std::string& command, int timeout_ms = 60000) const;

    [[nodiscard]] const SshGuestSpec& spec() const { return spec_; }
    [[nodiscard]] int port() const { return port_; }
    [[nodiscard]] const std::string& why() const { return why_; }
    [[nodiscard]] std::string console() const;
    [[nodiscard]] double boot_seconds() const { return boot_seconds_; }

private:
    SshGuestSpec spec_;
    std::filesystem::path dir_, key_;
    int port_ = 0;
    std::unique_ptr<Background> qemu_;
    std::string why_;
    std::chrono::steady_clock::time_point started_;
    double boot_seconds_ = 0;
};

}  // namespace kvmready::testsupport
