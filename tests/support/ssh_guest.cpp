// See ssh_guest.hpp.
#include "support/ssh_guest.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "support/guest_vm.hpp"

namespace kvmready::testsupport {

namespace fs = std::filesystem;

// scripts/fetch-fleet-guest-root.sh's VERSION the tests need at least.
constexpr int kFleetGuestRootVersion = 5;

SshGuestEnv find_ssh_guest_env() {
    SshGuestEnv e;
    const fs::path kdir = guest_kernel_dir();
    e.vmlinuz = kdir / "vmlinuz";
    const fs::path root = fs::path(env_or("KVMREADY_CACHE", "/var/cache/kvmready")) / "fleet-guest" / "current";
    e.root_cpio = root / "root.cpio";
    if (auto q = find_in_path("qemu-system-x86_64")) e.qemu = *q;
    std::vector<std::string> missing;
    if (e.qemu.empty()) missing.emplace_back("qemu-system-x86_64 (apt-get install qemu-system-x86)");
    if (!fs::exists(e.vmlinuz)) missing.push_back(fmt::format("the guest kernel {} (run scripts/fetch-guest-kernel.sh)", e.vmlinuz.string()));
    if (!fs::exists(root / ".complete")) missing.push_back(fmt::format("the fleet guest root {} (run scripts/fetch-fleet-guest-root.sh)", root.string()));
    // The root is built for one kernel release: its modules must match.
    else if (fs::exists(kdir / "release") && read_text(root / "release") != read_text(kdir / "release"))
        missing.emplace_back("a fleet guest root for the current guest kernel (run scripts/fetch-fleet-guest-root.sh)");
    // Version 5 has what the bridge and .deb tests need (ifupdown, bridge-utils, python3-apt).
    else if (std::atoi(read_text(root / "version").c_str()) < kFleetGuestRootVersion)
        missing.push_back(fmt::format("a fleet guest root of version {} or later (run scripts/fetch-fleet-guest-root.sh)", kFleetGuestRootVersion));
    for (const char* tool : {"ssh", "ssh-keygen", "ansible-playbook"})
        if (!find_in_path(tool)) missing.push_back(fmt::format("{} (apt-get install openssh-client ansible-core)", tool));
    for (size_t i = 0; i < missing.size(); ++i) e.missing += (i ? "; " : "") + missing[i];
    return e;
}

int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

SshGuest::SshGuest(SshGuestSpec spec, const SshGuestEnv& env, const fs::path& dir, const fs::path& key, const std::string& pubkey_base64)
    : spec_(std::move(spec)), dir_(dir), key_(key), port_(free_loopback_port()) {
    fs::create_directories(dir_);
    // no_timer_check: a loaded machine's TCG is slow enough for the IO-APIC
    // timer check to panic the kernel.
    std::string append =
        fmt::format("console=ttyS0 panic=-1 quiet no_timer_check kvmready.hostname={} kvmready.key={}", spec_.name, pubkey_base64);
    if (!spec_.modules.empty()) append += " kvmready.modules=" + spec_.modules;
    if (spec_.kvm_group) append += " kvmready.kvm_group=1";
    const std::vector<std::string> argv{env.qemu.string(), "-accel", "tcg", "-cpu", spec_.cpu, "-m", "1024", "-smp", "1",
                                        "-kernel", env.vmlinuz.string(), "-initrd", env.root_cpio.string(), "-append", append,
                                        "-display", "none", "-vga", "none", "-monitor", "none", "-no-reboot",
                                        "-serial", "file:" + (dir_ / "console.log").string(),
                                        // User networking: the guest reaches nothing but QEMU's own
                                        // stack; only 127.0.0.1:PORT leads to its sshd.
                                        "-netdev", fmt::format("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{}-:22", port_),
                                        "-device", "virtio-net-pci,netdev=n0"};
    started_ = std::chrono::steady_clock::now();
    qemu_ = std::make_unique<Background>(argv, dir_ / "qemu.log");
}

std::string SshGuest::console() const { return read_text(dir_ / "console.log"); }

Captured SshGuest::ssh(const std::string& command, int timeout_ms) const {
    // run_captured does not search PATH.
    static const std::string ssh = find_in_path("ssh").value_or("/usr/bin/ssh");
    return run_captured({ssh, "-i", key_.string(), "-p", std::to_string(port_), "-o", "StrictHostKeyChecking=no", "-o",
                         "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
                         "ansible@127.0.0.1", command},
                        timeout_ms);
}

bool SshGuest::wait_ready(std::chrono::steady_clock::time_point deadline) {
    if (!qemu_->started()) {
        why_ = "QEMU did not start: " + read_text(dir_ / "qemu.log");
        return false;
    }
    bool sshd_up = false;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!qemu_->running()) {
            why_ = fmt::format("QEMU of {} exited: {}\nconsole:\n{}", spec_.name, read_text(dir_ / "qemu.log"), tail_lines(console(), 30));
            return false;
        }
        // The guest's init says when sshd starts; only then is SSH worth trying.
        if (!sshd_up) sshd_up = console().find("fleet-guest: sshd starting") != std::string::npos;
        if (sshd_up && ssh("true", 20000).exit_code == 0) {
            boot_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(sshd_up ? 500 : 200));
    }
    why_ = fmt::format("{} did not answer SSH on 127.0.0.1:{} in time; console:\n{}", spec_.name, port_, tail_lines(console(), 30));
    return false;
}

}  // namespace kvmready::testsupport
