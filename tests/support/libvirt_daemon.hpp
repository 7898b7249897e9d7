// A private, real libvirt for tests: virtlogd and libvirtd started by the test
// itself (no systemd needed), as its direct children, stopped by PID.
//
// Isolation, without touching this machine's own libvirt, interfaces or
// firewall:
//  * a network namespace of its own (`ip netns add`), so virbr0, dnsmasq and
//    libvirt's NAT rules exist only there;
//  * a mount namespace shared by everything the harness starts, in which
//    /etc/libvirt (a copy of the host's, without its networks, pools and
//    domains), /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
//    /var/log/libvirt are bind mounts of a temporary directory, /run is a
//    private tmpfs and /sys shows the namespace's network devices;
//  * optionally a private /dev/kvm node (mode 0660, group kvm, the way
//    Debian's udev rule leaves it) so libvirt's QEMU user can open KVM even
//    on a machine whose own node is 0600 root:root.
//
// The daemon's socket is a plain file in the temporary directory, so clients
// outside the namespaces reach it with uri() (qemu:///system?socket=...); a
// program that should see the host exactly as the daemon does (its bridges,
// its /dev/kvm, /run/libvirt) runs through run_inside().
//
// Cleanup is by PID: the daemons, and every process left in the network
// namespace (dnsmasq, QEMU capability probes), are killed, then the namespace
// and the directory are removed. Children get PR_SET_PDEATHSIG so a crashed
// test does not leave daemons behind, and start() first removes what an
// earlier, killed test process left (namespaces and directories named after
// a PID that no longer runs).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "host/process.hpp"

namespace kvmready::testsupport {

class LibvirtDaemon {
public:
    struct Options {
        // Give the daemons' mount namespace its own /dev/kvm (0660 root:kvm).
        bool private_kvm_node = true;
        // Before start() returns, ask for capabilities once: libvirt probes
        // every QEMU binary on the first such call (~8 s here), later calls
        // are answered from its cache. Instances of one test process share
        // that cache while their /dev/kvm is the same node.
        bool warm_up = true;
        int start_timeout_ms = 10000;
        // Text appended to files under the private /etc/libvirt before the
        // daemons start, e.g. {"libvirtd.conf", "auth_unix_rw = \"none\"\n"}.
        std::vector<std::pair<std::string, std::string>> config_append;
        // Directories of this machine that programs in the namespaces may
        // write without touching the real ones (/etc/sysctl.d for a fix under
        // test): each gets a private copy, bind-mounted over it in the mount
        // namespace. They must exist. private_path() names the copy.
        std::vector<std::string> private_dirs;
    };

    // Empty when this machine can run the harness, else why not (for GTEST_SKIP).
    static std::string unavailable_reason();

    LibvirtDaemon();
    explicit LibvirtDaemon(Options o);
    ~LibvirtDaemon();
    LibvirtDaemon(const LibvirtDaemon&) = delete;
    LibvirtDaemon& operator=(const LibvirtDaemon&) = delete;

    // Throws std::runtime_error (with the daemon's own log) when it does not come up.
    void start();
    // SIGTERM to libvirtd and virtlogd, SIGKILL after 3 s; then every process
    // left in the namespace. Safe to call twice.
    void stop();
    // SIGKILL libvirtd only: its socket file stays behind, nobody listens (a crashed daemon).
    void kill_libvirtd();
    // SIGSTOP / SIGCONT libvirtd (a hung daemon: connections queue, nothing answers).
    void pause();
    void resume();

    [[nodiscard]] pid_t libvirtd_pid() const { return libvirtd_; }
    [[nodiscard]] pid_t virtlogd_pid() const { return virtlogd_; }
    // A process in the daemons' namespaces (for nsenter -t PID -m -n).
    [[nodiscard]] pid_t namespace_pid() const { return holder_; }
    [[nodiscard]] const std::string& base_dir() const { return base_; }
    [[nodiscard]] const std::string& netns() const { return netns_; }
    [[nodiscard]] std::string socket_path() const { return base_ + "/run/libvirt-sock"; }
    [[nodiscard]] std::string uri() const { return "qemu:///system?socket=" + socket_path(); }
    // libvirtd's log (stderr and /var/log/libvirt/libvirtd.log), for failure messages.
    [[nodiscard]] std::string log_tail(size_t max_bytes = 4000) const;
    // The private copy standing in for one of Options::private_dirs ("" if not one).
    [[nodiscard]] std::string private_path(const std::string& dir) const;

    // `virsh -c uri() ARGS...`, from outside the namespaces.
    host::RunResult virsh(const std::vector<std::string>& args, int timeout_ms = 20000) const;
    // The NAT network `default` and the dir pool `default` (at
    // /var/lib/libvirt/images, private to the daemon), defined and started
    // unless they are already: what `kvmready smoke` uses. "" or what failed.
    std::string ensure_default_network_and_pool() const;
    // argv in the daemons' network and mount namespaces (PATH is searched).
    // as_user: run as that user (its primary group and supplementary groups,
    // plus extra_groups: a session that holds a group the database does not list).
    host::RunResult run_inside(const std::vector<std::string>& argv, int timeout_ms, const std::string& as_user = "",
                               const std::vector<gid_t>& extra_groups = {}) const;

private:
    pid_t spawn_inside(const std::vector<std::string>& argv, int out_fd, int err_fd, bool holder, uid_t uid, gid_t gid,
                       const std::vector<gid_t>& groups) const;
    void prepare_dirs();
    void wait_for_socket();
    void sweep_namespace();

    Options opt_;
    std::string base_;
    std::string netns_;
    std::string cache_dir_;
    std::string kvm_node_;
    pid_t holder_ = -1;      // keeps the mount namespace alive (sleep infinity)
    pid_t virtlogd_ = -1;
    pid_t libvirtd_ = -1;
    bool paused_ = false;
    bool netns_created_ = false;
};

// Splits a copy-pasteable shell command as kvmready prints it (words,
// '...' and "..." quoting, backslash escapes) into argv; nullopt-like empty
// vector for anything needing a real shell (pipes, redirections, &&, $).
std::vector<std::string> split_command(const std::string& cmd);

}  // namespace kvmready::testsupport
