// qemu.*, libvirt.*, storage.* and kvm.qemu-user-access: what a libvirt
// host needs beyond KVM itself. Everything libvirt-shaped reads the daemon's
// snapshot in f.virt.libvirt; when the daemon did not answer, these checks
// say so and point at libvirt.daemon instead of guessing.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "util/text.hpp"

namespace kvmready::checks {

namespace {

using Json = nlohmann::ordered_json;

constexpr uint64_t kGiB = 1024ull * 1024 * 1024;
constexpr uint64_t kPoolLowSpace = 10 * kGiB;
constexpr const char* kDefaultUri = "qemu:///system";
constexpr const char* kStockNetworkXml = "/usr/share/libvirt/networks/default.xml";
constexpr const char* kDefaultImages = "/var/lib/libvirt/images";

using util::join;

bool contains(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

std::string virsh(const Facts& f, const std::string& args) {
    const std::string& uri = f.request.connect_uri;
    return uri.empty() || uri == kDefaultUri ? "virsh " + args : "virsh -c " + util::shell_quote(uri) + " " + args;
}

std::string version_string(uint64_t v) { return fmt::format("{}.{}.{}", v / 1000000, (v / 1000) % 1000, v % 1000); }

std::string gib(uint64_t b) { return fmt::format("{:.1f} GiB", static_cast<double>(b) / kGiB); }

const host::LibvirtSnapshot& snap(const Facts& f) { return f.virt.libvirt.snapshot; }

std::string daemon_name(const Facts& f) {
    const auto& s = snap(f);
    if (!s.daemon.empty()) return s.daemon;
    for (const auto& b : f.virt.libvirt.daemon_binaries)
        if (b.find("virtqemud") != std::string::npos) return "virtqemud";
    return "libvirtd";
}

bool modular(const Facts& f) { return daemon_name(f) != "libvirtd"; }

// How to start the daemon here: systemd units when systemd runs, else by hand.
std::vector<std::string> start_commands(const Facts& f) {
    if (f.virt.libvirt.systemd) {
        if (modular(f)) return {"systemctl enable --now virtqemud.socket virtnetworkd.socket virtstoraged.socket virtlogd.socket"};
        return {"systemctl enable --now libvirtd"};
    }
    if (modular(f)) return {"virtlogd -d", "virtqemud -d", "virtnetworkd -d", "virtstoraged -d"};
    return {"virtlogd -d", "libvirtd -d"};
}

// libvirt asks polkit (over the system D-Bus) whether a user may connect;
// where neither runs, its errors say so and group membership alone cannot help.
// libvirt.so's words for a reply that is not its RPC protocol (garbage on
// the socket, a daemon of another version gone wrong): not a refusal.
bool protocol_garbage(const std::string& error) {
    for (const char* w : {"packet ", "RPC", "XDR", "unexpected program", "Unable to decode message"})
        if (error.find(w) != std::string::npos) return true;
    return false;
}

bool polkit_unavailable(const std::string& error) {
    return error.find("system bus") != std::string::npos || error.find("polkit") != std::string::npos ||
           error.find("Polkit") != std::string::npos;
}

void remedy_without_polkit(const Facts& f, Finding& out, const std::string& user) {
    const std::string conf = "/etc/libvirt/" + daemon_name(f) + ".conf";
    std::vector<std::string> cmds = {
        "printf 'unix_sock_group = \"libvirt\"\\nunix_sock_rw_perms = \"0770\"\\nauth_unix_ro = \"none\"\\nauth_unix_rw = \"none\"\\n' >> " +
        conf};
    if (!user.empty()) cmds.push_back(fmt::format("usermod -aG libvirt {}", user));
    cmds.push_back(f.virt.libvirt.systemd ? "systemctl restart " + daemon_name(f) : "kill $(cat /run/" + daemon_name(f) + ".pid) && " + daemon_name(f) + " -d");
    remedy(out,
           "libvirt asks polkit over D-Bus, and neither runs here: start them, or let the socket's group decide instead (members of "
           "group libvirt may manage, everyone may read).",
           cmds, "", "manual", true);
}

std::string install_command(const Facts& f, const std::string& what) {
    const bool x86 = f.virt.qemu.arch == "x86_64" || f.virt.qemu.arch.empty();
    if (what == "libvirt") return package_install(f, {"libvirt-daemon-system", "libvirt-daemon-kvm", "libvirt-daemon-qemu", "libvirt"});
    if (f.virt.qemu.arch == "aarch64") return package_install(f, {"qemu-system-arm", "qemu-kvm", "qemu", "qemu-base"});
    return package_install(f, {x86 ? "qemu-system-x86" : "qemu-system", "qemu-kvm", x86 ? "qemu-x86" : "qemu", "qemu-base"});
}

void daemon(const Facts& f, const Results&, Finding& out);

// For checks that need the daemon's answers: says unknown (with the reason)
// when libvirt.daemon could not get them. The runner already turns a failed
// or skipped libvirt.daemon into skip. The reason is libvirt.daemon's own
// message, judged again from the same Facts rather than read from its finding.
bool libvirt_unavailable(const Facts& f, const Results& r, Finding& out, const char* step = nullptr) {
    const auto& s = snap(f);
    if (!s.connected) {
        Finding d;
        daemon(f, r, d);
        set(out, Status::Unknown,
            fmt::format("libvirt did not answer, so this cannot be judged (see libvirt.daemon{})",
                        !d.message.empty() ? ": " + d.message : ""));
        remedy(out, "Make the libvirt daemon answer first (libvirt.daemon), then re-run.", {"kvmready check libvirt"}, "", "manual", false);
        return true;
    }
    if (step && contains(s.unanswered, step)) {
        set(out, Status::Unknown,
            fmt::format("libvirt answered the connection but not this question ({}) within {:.0f} ms", step, s.elapsed_ms));
        remedy(out, "Look at the daemon's log for what keeps it busy, then re-run.",
               {"tail -n 50 /var/log/libvirt/" + daemon_name(f) + ".log", "kvmready check libvirt"}, "", "manual", false);
        return true;
    }
    return false;
}

// ---- qemu.binary ----

void qemu_binary(const Facts& f, const Results&, Finding& out) {
    const auto& q = f.virt.qemu;
    auto& ev = out.evidence;
    if (!f.virt.probed) {
        set(out, Status::Unknown, "QEMU was not looked for (these facts come from a kvmready without the virt probe)");
        remedy(out, "Re-run kvmready on the host.", {"kvmready check qemu.binary"}, "", "manual", false);
        return;
    }
    ev["arch"] = q.arch;
    ev["looked_for"] = q.candidates;
    if (q.path.empty()) {
        set(out, Status::Warn, fmt::format("no QEMU system emulator for {} is installed (looked for {})", q.arch, join(q.candidates, ", ")));
        remedy(out, "Install QEMU; libvirt and most tools run guests through it.", {install_command(f, "qemu")}, "", "manual",
               true);
        return;
    }
    ev["path"] = q.path;
    if (!q.version_line.empty()) ev["version_output"] = q.version_line;
    if (!q.version.empty()) {
        ev["version"] = q.version;
        ev["version_from"] = q.version_from == "libvirt" ? "libvirt (virConnectGetVersion)"
                             : q.version_from == "binary" ? q.path + " (version banner in its .rodata)"
                                                          : q.path + " --version";
        set(out, Status::Pass, fmt::format("QEMU {} at {}", q.version, q.path));
        return;
    }
    if (!q.version_ran && f.source != "live") {
        // The binary's presence was recorded; its --version output was not.
        set(out, Status::Pass, fmt::format("QEMU is installed at {} (its version was not recorded)", q.path));
        return;
    }
    ev["error"] = q.version_error;
    set(out, Status::Warn, fmt::format("{} exists but `{} --version` failed: {}", q.path, q.path, q.version_error));
    remedy(out, "The emulator cannot start (missing libraries, wrong architecture); reinstall it.",
           {install_command(f, "qemu") + " --reinstall"}, "", "manual", true);
}

// ---- kvm.qemu-user-access ----

host::User qemu_user(const QemuUserFacts& q) {
    host::User u{q.user, q.uid, q.gid, {}};
    for (uint32_t g : q.gids) u.groups.push_back(host::Group{g, ""});
    return u;
}

void qemu_user_access(const Facts& f, const Results&, Finding& out) {
    const auto& q = f.virt.qemu_user;
    const auto& d = f.device;
    auto& ev = out.evidence;
    if (!f.virt.probed) {
        set(out, Status::Unknown, "libvirt's QEMU user was not looked up (facts without the virt probe)");
        remedy(out, "Re-run kvmready on the host.", {"kvmready check kvm.qemu-user-access"}, "", "manual", false);
        return;
    }
    if (!q.libvirt_qemu_driver) {
        set(out, Status::Skip, fmt::format("libvirt's QEMU driver is not installed ({} does not exist)", q.conf_path));
        return;
    }
    if (q.user.empty()) {
        set(out, Status::Unknown, "cannot tell which user libvirt runs QEMU as: " + q.user_source);
        remedy(out, "Run the check as root.", {"sudo kvmready check kvm.qemu-user-access"}, "", "manual", true);
        return;
    }
    ev["user"] = q.user;
    ev["user_from"] = q.user_source;
    ev["group"] = q.group;
    ev["group_from"] = q.group_source;
    if (!q.found) {
        set(out, Status::Fail, fmt::format("{} makes libvirt run QEMU as {}, but {}", q.conf_path, q.user, q.lookup_error));
        remedy(out, fmt::format("Set user and group in {} to an existing account (Debian: libvirt-qemu), then restart the daemon.", q.conf_path),
               {"grep -n -e '^user' -e '^group' " + q.conf_path}, "", "manual", true);
        return;
    }
    ev["uid"] = q.uid;
    ev["groups"] = q.group_names;
    ev["gids"] = q.gids;
    const std::string owner = d.owner_name.empty() ? std::to_string(d.stat.uid) : d.owner_name;
    const std::string grp = d.group_name.empty() ? std::to_string(d.stat.gid) : d.group_name;
    ev["device"] = fmt::format("{}:{} mode {}", owner, grp, mode_string(d.stat.mode));
    const host::User u = qemu_user(q);
    const AccessDecision a = decide_access(d, u, q.gids);
    ev["permission_basis"] = a.basis;
    const std::string who = fmt::format("{}:{}", q.user, q.group);
    if (a.allowed) {
        set(out, Status::Pass, fmt::format("libvirt runs QEMU as {}, which can open /dev/kvm read-write ({})", who, a.basis));
        return;
    }
    set(out, Status::Fail,
        fmt::format("libvirt runs QEMU as {} (groups {}), which cannot open /dev/kvm ({}:{} mode {}; {} apply): guests of type kvm fail "
                    "to start",
                    who, join(q.group_names, ","), owner, grp, mode_string(d.stat.mode), a.basis));
    const bool group_rw = ((d.stat.mode >> 3) & 6) == 6 && d.stat.gid != 0;
    const std::string restart = f.virt.libvirt.systemd ? "systemctl restart " + daemon_name(f) : "";
    if (group_rw) {
        std::vector<std::string> cmds = {fmt::format("usermod -aG {} {}", grp, q.user)};
        if (!restart.empty()) cmds.push_back(restart);
        remedy(out, fmt::format("Add {} to group {}; libvirt picks the groups up for each new QEMU process.", q.user, grp), cmds,
               ids::fix::user_groups, "confirm", true);
        return;
    }
    std::vector<std::string> cmds = {"groupadd -f -r kvm", "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm",
                                     "echo 'KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\"' > /etc/udev/rules.d/65-kvm.rules"};
    bool in_kvm = false;
    for (const auto& n : q.group_names) in_kvm |= n == "kvm";
    if (!in_kvm) cmds.push_back(fmt::format("usermod -aG kvm {}", q.user));
    remedy(out, "Give /dev/kvm to group kvm with mode 0660 now and at every boot (udev rule), as distributions do.", cmds,
           ids::fix::kvm_device_permissions, "confirm", true);
}

// ---- libvirt.daemon ----

void daemon(const Facts& f, const Results&, Finding& out) {
    const auto& l = f.virt.libvirt;
    const auto& s = l.snapshot;
    auto& ev = out.evidence;
    if (!f.virt.probed || !l.queried) {
        set(out, Status::Unknown, "libvirt was not asked (facts without the virt probe)");
        remedy(out, "Re-run kvmready on the host.", {"kvmready check libvirt"}, "", "manual", false);
        return;
    }
    const std::string uri = s.uri.empty() ? f.request.connect_uri : s.uri;
    ev["uri"] = uri;
    if (!l.daemon_binaries.empty()) ev["installed"] = l.daemon_binaries;
    if (!s.socket_path.empty()) ev["socket"] = s.socket_path;
    if (s.daemon_pid > 0) {
        ev["pid"] = s.daemon_pid;
        ev["process"] = s.daemon_comm;
        ev["state"] = s.daemon_state;
    }
    const bool default_uri = uri == kDefaultUri;
    if (!s.attempted) {
        if (!l.installed && default_uri) {
            set(out, Status::Skip, "libvirt is not installed (no libvirtd or virtqemud, no /etc/libvirt)");
            remedy(out, "Install libvirt to manage VMs with virsh, virt-manager or virt-install.", {install_command(f, "libvirt")},
                   "", "manual", true);
            return;
        }
        set(out, Status::Unknown, "libvirt was not asked: " + s.not_attempted_reason);
        remedy(out, "Run kvmready on the host itself, where the daemon can be asked.", {"kvmready check libvirt"}, "", "manual", false);
        return;
    }
    ev["elapsed_ms"] = std::round(s.elapsed_ms * 10) / 10;
    const std::string name = s.daemon.empty() ? "the libvirt daemon" : s.daemon;
    const std::string pid = s.daemon_pid > 0 ? fmt::format(" (PID {})", s.daemon_pid) : "";
    if (s.connected) {
        ev["daemon"] = s.daemon;
        ev["version"] = version_string(s.library_version);
        ev["driver"] = s.hypervisor_type;
        if (s.hypervisor_version) ev["qemu_version"] = version_string(s.hypervisor_version);
        if (!s.unanswered.empty()) ev["unanswered"] = s.unanswered;
        std::string msg = fmt::format("{} {} answers at {}{}", name, version_string(s.library_version), uri, pid);
        if (!s.unanswered.empty())
            msg += fmt::format(", but it was still busy with {} after {:.0f} ms", join(s.unanswered, ", "), s.elapsed_ms);
        set(out, Status::Pass, msg);
        return;
    }
    ev["error"] = s.error;
    if (s.timed_out) {
        if (s.daemon_state == "T" || s.daemon_state == "t") {
            set(out, Status::Fail,
                fmt::format("{}{} is stopped (process state {}: SIGSTOP or a debugger) and answers nothing at {}", name, pid,
                            s.daemon_state, uri));
            remedy(out, "Let it run again.", {fmt::format("kill -CONT {}", s.daemon_pid)}, "", "confirm", true);
            return;
        }
        set(out, Status::Fail,
            fmt::format("{}{} accepts connections at {} but did not answer within {:.0f} ms (hung or overloaded)", name, pid, uri,
                        s.elapsed_ms));
        std::vector<std::string> cmds = {"tail -n 50 /var/log/libvirt/" + daemon_name(f) + ".log"};
        if (l.systemd) cmds.push_back("systemctl restart " + daemon_name(f));
        else if (s.daemon_pid > 0) cmds.push_back(fmt::format("kill {} && {} -d", s.daemon_pid, daemon_name(f)));
        remedy(out, "Read its log for what it is stuck on, then restart it.", cmds, "", "confirm", true);
        return;
    }
    if (!s.socket_error.empty()) ev["socket_error"] = s.socket_error;
    if (s.socket_error.empty() && protocol_garbage(s.error)) {
        set(out, Status::Fail,
            fmt::format("{}{} at {} answered with something that is not the libvirt protocol (a protocol error from the daemon, "
                        "not a refusal): {}", name, pid, uri, s.error));
        remedy(out, "Something other than a working libvirt daemon answers on its socket: read the daemon's log, then restart it.",
               {"tail -n 50 /var/log/libvirt/" + daemon_name(f) + ".log"}, "", "confirm", true);
        return;
    }
    if (s.daemon_pid > 0 && s.socket_error.empty()) {
        // Something listens and answered: the daemon runs but turned this user away.
        const std::string who = f.access.user ? f.access.user->name : "this user";
        set(out, Status::Fail, fmt::format("{}{} runs but refused {}'s connection to {}: {}", name, pid, who, uri, s.error));
        if (polkit_unavailable(s.error)) {
            remedy_without_polkit(f, out, f.access.user && f.access.user->uid != 0 ? who : "");
        } else if (f.access.user && f.access.user->uid != 0) {
            remedy(out, "Add the user to group libvirt (the socket's group and Debian's polkit rule admit it), then log in again.",
                   {fmt::format("usermod -aG libvirt {}", who)}, ids::fix::user_groups, "confirm", true);
        } else {
            remedy(out, "The daemon's access settings (auth_unix_ro/auth_unix_rw, polkit) turn root away; read them.",
                   {"grep -n -e '^auth_unix' -e '^unix_sock' -e '^access_drivers' /etc/libvirt/" + daemon_name(f) + ".conf"}, "",
                   "manual", true);
        }
        return;
    }
    const bool local = !s.socket_path.empty();
    set(out, Status::Fail, fmt::format("no libvirt daemon answers at {}: {}", uri, s.error));
    if (!local) {
        remedy(out, "Check that the remote daemon runs and that this machine may reach it.", {virsh(f, "version")}, "", "manual", false);
        return;
    }
    remedy(out,
           l.systemd ? fmt::format("Start {} and enable it at boot.", daemon_name(f))
                     : fmt::format("No systemd here: start virtlogd and {} by hand (and from your init system at boot).", daemon_name(f)),
           start_commands(f), ids::fix::libvirt_daemon, "confirm", true);
}

// ---- libvirt.manage ----

void manage(const Facts& f, const Results& r, Finding& out) {
    if (libvirt_unavailable(f, r, out, "read-write")) return;
    const auto& s = snap(f);
    const auto& a = f.access;
    auto& ev = out.evidence;
    if (!a.user) {
        set(out, Status::Unknown, "cannot tell whose access to judge: " + a.lookup_error);
        remedy(out, "Name the user explicitly.", {"kvmready check --user <name> libvirt.manage"}, "", "manual", false);
        return;
    }
    const host::User& u = *a.user;
    ev["user"] = u.name;
    ev["uri"] = s.uri;
    std::vector<std::string> names;
    bool in_libvirt_db = false;
    uint32_t libvirt_gid = 0;
    for (const auto& g : u.groups) {
        names.push_back(g.name);
        if (g.name == "libvirt") {
            in_libvirt_db = true;
            libvirt_gid = g.gid;
        }
    }
    ev["groups"] = names;
    const std::string usermod = fmt::format("usermod -aG libvirt {}", u.name);
    if (a.is_current) {
        ev["read_write_connection"] = s.read_write ? "accepted" : s.read_write_error;
        if (s.read_write) {
            set(out, Status::Pass, fmt::format("{} may manage domains (a read-write connection to {} was accepted)", u.name, s.uri));
            return;
        }
        const bool session_lacks = a.process_groups && in_libvirt_db &&
                                   std::find(a.process_groups->begin(), a.process_groups->end(), libvirt_gid) == a.process_groups->end();
        if (session_lacks) {
            set(out, Status::Fail,
                fmt::format("{} is in group libvirt in the user database, but this login session started before that: the read-write "
                            "connection was refused ({})",
                            u.name, s.read_write_error));
            remedy(out, "Start a new login session, or use the group in this shell right away.", {"newgrp libvirt"}, "", "manual", false);
            return;
        }
        set(out, Status::Fail, fmt::format("{} may only read, not manage domains at {}: {}", u.name, s.uri, s.read_write_error));
        if (polkit_unavailable(s.read_write_error)) {
            remedy_without_polkit(f, out, u.uid == 0 ? "" : u.name);
            return;
        }
        if (u.uid == 0) {
            remedy(out, "root was refused: the daemon's access settings (auth_unix_rw, access_drivers) deny it.",
                   {"grep -n -e '^auth_unix_rw' -e '^access_drivers' -e '^unix_sock' /etc/libvirt/" + daemon_name(f) + ".conf"}, "",
                   "manual", true);
            return;
        }
        remedy(out, "Add the user to group libvirt (the socket's group and Debian's polkit rule grant it), then log in again.",
               {usermod}, ids::fix::user_groups, "confirm", true);
        return;
    }
    // Another user's access cannot be tried from here: judge by membership.
    if (u.uid == 0) {
        set(out, Status::Pass, fmt::format("{} is root, which may manage domains", u.name));
        return;
    }
    if (in_libvirt_db) {
        set(out, Status::Pass,
            fmt::format("{} is in group libvirt, which the socket's group and Debian's polkit rule allow to manage domains (judged by "
                        "membership: kvmready ran as another user)",
                        u.name));
        return;
    }
    set(out, Status::Fail, fmt::format("{} is not in group libvirt, so libvirt lets it only read, not manage domains", u.name));
    remedy(out, "Add the user to group libvirt, then log in again.", {usermod}, ids::fix::user_groups, "confirm", true);
}

// ---- libvirt.domcaps-kvm ----

// What kvm.qemu-user-access tells its users to do, judged again from the
// same Facts (only used where that check failed, so it ran and said this).
Remediation qemu_user_access_remedy(const Facts& f, const Results& r) {
    Finding a;
    qemu_user_access(f, r, a);
    return a.remediation;
}

std::string firmware_summary(const DomCapsFacts& d) {
    if (d.loaders.empty() && !contains(d.firmware, "efi")) return "BIOS only (no UEFI firmware: install ovmf for UEFI guests)";
    return fmt::format("UEFI ({} OVMF image{}{}) and BIOS", d.loaders.size(), d.loaders.size() == 1 ? "" : "s",
                       d.secure_boot ? ", Secure Boot" : "");
}

void domcaps_kvm(const Facts& f, const Results& r, Finding& out) {
    if (libvirt_unavailable(f, r, out)) return;
    const auto& l = f.virt.libvirt;
    const auto& s = l.snapshot;
    const auto& k = l.domcaps_kvm;
    const auto& tcg = l.domcaps_qemu;
    auto& ev = out.evidence;
    const Status access = status(r, ids::kvm_qemu_user_access);
    const Status api = status(r, ids::kvm_api);
    const bool pvm = is_pvm(r.derived());
    const std::string qemu_user = f.virt.qemu_user.user.empty() ? "its QEMU user" : f.virt.qemu_user.user;
    if (contains(s.unanswered, "domcaps-kvm")) {
        ev["unanswered"] = s.unanswered;
        set(out, Status::Unknown,
            fmt::format("libvirt did not return the KVM domain capabilities within {:.0f} ms", s.elapsed_ms));
        if (access == Status::Fail) {
            out.message += fmt::format(
                "; it re-probes QEMU on every such call while {} cannot open /dev/kvm (see kvm.qemu-user-access)", qemu_user);
            out.remediation = qemu_user_access_remedy(f, r);
            return;
        }
        remedy(out, "The daemon is probing QEMU (first start, or a stale cache); re-run in a minute, and read its log if it persists.",
               {"tail -n 50 /var/log/libvirt/" + daemon_name(f) + ".log"}, "", "manual", false);
        return;
    }
    if (!k.present && !s.read_write) {
        // virConnectGetDomainCapabilities is refused on read-only connections.
        ev["error"] = k.error;
        set(out, Status::Unknown,
            "libvirt tells domain capabilities only to users who may manage domains, and this one may not (see libvirt.manage)");
        remedy(out, "Run the check as root (or as a member of group libvirt).", {"sudo kvmready check libvirt.domcaps-kvm"}, "", "manual",
               false);
        return;
    }
    const bool tcg_ok = tcg.present;
    ev["tcg_fallback"] = tcg_ok;
    if (!k.present) {
        ev["error"] = k.error;
        const std::string tcg_note = tcg_ok ? fmt::format("; TCG guests (domain type qemu, machine {}) still run, without acceleration", tcg.machine)
                                            : "";
        if (api == Status::Pass) {
            set(out, Status::Warn, fmt::format("KVM works (kvm.api) but libvirt offers no KVM guests: {}{}", k.error, tcg_note));
            if (access == Status::Fail) {
                out.message += fmt::format(" (its QEMU user {} cannot open /dev/kvm: see kvm.qemu-user-access)", qemu_user);
                out.remediation = qemu_user_access_remedy(f, r);
                return;
            }
            std::vector<std::string> cmds = {virsh(f, "domcapabilities --virttype kvm")};
            cmds.push_back(l.systemd ? "systemctl restart " + daemon_name(f) : "tail -n 50 /var/log/libvirt/" + daemon_name(f) + ".log");
            remedy(out, "libvirt decides from QEMU's own probe; restart the daemon so it probes again, and read its log.", cmds, "",
                   "manual", true);
            return;
        }
        set(out, Status::Fail, fmt::format("libvirt offers no KVM guests: {} (KVM itself does not work here: see kvm.api){}", k.error, tcg_note));
        remedy(out, "Fix KVM first (kvm.*); until then use TCG guests.", {"virt-install --virt-type qemu ..."}, "", "manual", false);
        return;
    }
    ev["emulator"] = k.path;
    ev["machine"] = k.machine;
    if (!l.machine_types.empty()) ev["machine_types"] = l.machine_types;
    ev["firmware"] = k.firmware;
    ev["loaders"] = k.loaders;
    ev["secure_boot"] = k.secure_boot;
    ev["cpu_modes"] = k.cpu_modes;
    if (k.max_vcpus) ev["max_vcpus"] = k.max_vcpus;
    const std::string offered = fmt::format("libvirt offers KVM guests ({}, machine {}{}; {})", k.path, k.machine,
                                            l.machine_types.empty() ? "" : fmt::format(" of {} types", l.machine_types.size()),
                                            firmware_summary(k));
    if (api != Status::Pass && api != Status::Skip) {
        set(out, Status::Warn, offered + fmt::format(", but the KVM functional test says {} (see kvm.api)", to_string(api)));
        remedy(out, "Guests of type kvm will fail where kvm.api fails; fix that first, and until then run guests of type qemu (TCG).",
               {"kvmready explain kvm.api", "virt-install --virt-type qemu ..."}, "", "manual", false);
        return;
    }
    if (access == Status::Fail) {
        set(out, Status::Warn,
            offered + fmt::format(", but QEMU runs as {}, which cannot open /dev/kvm: they fail to start (see kvm.qemu-user-access)",
                                  qemu_user));
        out.remediation = qemu_user_access_remedy(f, r);
        return;
    }
    if (pvm) {
        set(out, Status::Warn,
            offered + ", but KVM here is PVM: ordinary guests of type kvm fail or hang; run them as type qemu (TCG)" +
                (tcg_ok ? fmt::format(", which libvirt offers (machine {})", tcg.machine) : ", which libvirt does not offer either"));
        remedy(out, std::string(kPvmImplications) + ".", {"virt-install --virt-type qemu ..."}, "", "manual", false);
        return;
    }
    set(out, Status::Pass, offered);
}

// ---- libvirt.network ----

const VirtNetwork* find_network(const Facts& f, const std::string& name) {
    for (const auto& n : f.virt.libvirt.networks)
        if (n.name == name) return &n;
    return nullptr;
}

void network(const Facts& f, const Results& r, Finding& out) {
    if (libvirt_unavailable(f, r, out, "networks")) return;
    const auto& l = f.virt.libvirt;
    const std::string& name = f.request.network;
    const bool is_default = name == "default";
    auto& ev = out.evidence;
    ev["network"] = name;
    std::vector<std::string> all;
    for (const auto& n : l.networks) all.push_back(n.name);
    ev["defined"] = all;
    if (!l.snapshot.networks_error.empty()) {
        set(out, Status::Fail, "libvirt's network driver did not answer: " + l.snapshot.networks_error);
        remedy(out, "Start the network driver (modular daemons: virtnetworkd).",
               {l.systemd ? "systemctl enable --now virtnetworkd.socket" : "virtnetworkd -d"}, "", "confirm", true);
        return;
    }
    const VirtNetwork* n = find_network(f, name);
    const FixId fix_id = is_default ? ids::fix::libvirt_network_default : ids::fix::none;
    if (!n) {
        std::string others = all.empty() ? "no network is defined" : "defined: " + join(all, ", ");
        if (!f.request.network_given && !all.empty()) others += "; pass --network NAME to judge one of them";
        set(out, Status::Fail, fmt::format("libvirt network {} is not defined ({})", name, others));
        if (is_default) {
            remedy(out, "Define libvirt's stock NAT network (virbr0, 192.168.122.0/24), start it and start it at boot.",
                   {virsh(f, std::string("net-define ") + kStockNetworkXml), virsh(f, "net-start default"), virsh(f, "net-autostart default")},
                   fix_id, "automatic", true);
        } else {
            remedy(out, fmt::format("Define network {} from its XML, then start it and start it at boot.", name),
                   {virsh(f, "net-define " + util::shell_quote(name) + ".xml"), virsh(f, "net-start " + util::shell_quote(name)), virsh(f, "net-autostart " + util::shell_quote(name))},
                   "", "manual", true);
        }
        return;
    }
    ev["active"] = n->active;
    ev["autostart"] = n->autostart;
    ev["persistent"] = n->persistent;
    ev["bridge"] = n->bridge;
    ev["forward"] = n->forward_mode.empty() ? "none (isolated)" : n->forward_mode;
    if (!n->addresses.empty()) ev["addresses"] = n->addresses;
    if (n->bridge_checked) ev["bridge_exists"] = n->bridge_exists;
    const std::string q = util::shell_quote(name);
    const std::string kind = n->forward_mode.empty() ? "isolated" : n->forward_mode == "nat" ? "NAT" : n->forward_mode;
    std::string where = n->bridge.empty() ? "" : " on bridge " + n->bridge;
    if (!n->addresses.empty()) where += " (" + join(n->addresses, ", ") + ")";
    if (!n->active) {
        std::vector<std::string> cmds = {virsh(f, "net-start " + q)};
        if (!n->autostart && n->persistent) cmds.push_back(virsh(f, "net-autostart " + q));
        set(out, Status::Fail,
            fmt::format("libvirt network {} is defined but not active{}: guests using it cannot start", name,
                        n->autostart ? "" : ", and does not start at boot"));
        remedy(out, fmt::format("Start network {}{}.", name, cmds.size() > 1 ? " and start it at boot" : ""), cmds, fix_id, "automatic", true);
        return;
    }
    if (n->bridge_checked && !n->bridge_exists) {
        set(out, Status::Fail, fmt::format("libvirt network {} is active but its bridge {} does not exist (deleted behind libvirt's back)", name,
                                           n->bridge));
        remedy(out, "Restart the network so libvirt re-creates the bridge.", {virsh(f, "net-destroy " + q), virsh(f, "net-start " + q)}, fix_id,
               "confirm", true);
        return;
    }
    if (!n->persistent) {
        set(out, Status::Warn, fmt::format("libvirt network {} is active ({}{}) but transient: it is gone after the daemon restarts", name,
                                           kind, where));
        remedy(out, "Make it persistent from its current definition, and start it at boot.",
               {virsh(f, "net-dumpxml " + q) + " > " + util::shell_quote("/tmp/" + name + ".xml"), virsh(f, "net-define " + util::shell_quote("/tmp/" + name + ".xml")),
                virsh(f, "net-autostart " + q)},
               fix_id, "confirm", true);
        return;
    }
    if (!n->autostart) {
        set(out, Status::Warn, fmt::format("libvirt network {} is active ({}{}) but does not start at boot", name, kind, where));
        remedy(out, "Start it at boot.", {virsh(f, "net-autostart " + q)}, fix_id, "automatic", true);
        return;
    }
    set(out, Status::Pass,
        fmt::format("libvirt network {} is active and starts at boot: {}{}{}", name, kind, where,
                    n->forward_mode.empty() ? "; its guests reach only each other and the host" : ""));
}

// ---- storage ----

// POSIX.1e permission check for an arbitrary rwx mask, as for /dev/kvm.
bool may(const VirtPath& p, const QemuUserFacts& q, unsigned want, std::string& basis) {
    auto in_group = [&](uint32_t g) { return std::find(q.gids.begin(), q.gids.end(), g) != q.gids.end(); };
    if (q.uid == 0) {
        basis = "root";
        return true;
    }
    if (q.uid == p.uid) {
        basis = "owner bits";
        return ((p.mode >> 6) & want) == want;
    }
    if (p.acl) {
        unsigned mask = 7;
        for (const auto& e : *p.acl)
            if (e.tag == "mask") mask = e.perms;
        for (const auto& e : *p.acl)
            if (e.tag == "user" && e.id == static_cast<int64_t>(q.uid)) {
                basis = "ACL user entry";
                return (e.perms & mask & want) == want;
            }
        bool matched = false;
        for (const auto& e : *p.acl) {
            const bool m = (e.tag == "group_obj" && in_group(p.gid)) || (e.tag == "group" && e.id >= 0 && in_group(static_cast<uint32_t>(e.id)));
            if (!m) continue;
            matched = true;
            if ((e.perms & mask & want) == want) {
                basis = "ACL group entry";
                return true;
            }
        }
        if (matched) {
            basis = "ACL group entries";
            return false;
        }
    }
    if (in_group(p.gid)) {
        basis = "group bits";
        return ((p.mode >> 3) & want) == want;
    }
    basis = "other bits";
    return (p.mode & want) == want;
}

// The first directory on the way to path that QEMU's user cannot search.
const VirtPath* blocking_dir(const StorageDirFacts& d, const QemuUserFacts& q, std::string& basis) {
    for (const auto& p : d.chain)
        if (p.exists && !may(p, q, 1, basis)) return &p;
    return nullptr;
}

std::string owner_mode(const VirtPath& p) { return fmt::format("mode {} uid {} gid {}", mode_string(p.mode), p.uid, p.gid); }

uint64_t free_for_qemu(const StorageDirFacts& d, const QemuUserFacts& q, uint64_t fallback) {
    if (!d.usage_read) return fallback;
    return q.found && q.uid == 0 ? d.usage.free_bytes : d.usage.avail_bytes;
}

void pool(const Facts& f, const Results& r, Finding& out) {
    if (libvirt_unavailable(f, r, out, "pools")) return;
    const auto& l = f.virt.libvirt;
    const auto& q = f.virt.qemu_user;
    const std::string& name = f.request.pool;
    const bool is_default = name == "default";
    auto& ev = out.evidence;
    ev["pool"] = name;
    std::vector<std::string> all;
    for (const auto& p : l.pools) all.push_back(p.name);
    ev["defined"] = all;
    if (!l.snapshot.pools_error.empty()) {
        set(out, Status::Fail, "libvirt's storage driver did not answer: " + l.snapshot.pools_error);
        remedy(out, "Start the storage driver (modular daemons: virtstoraged).",
               {l.systemd ? "systemctl enable --now virtstoraged.socket" : "virtstoraged -d"}, "", "confirm", true);
        return;
    }
    const VirtPool* p = nullptr;
    for (const auto& x : l.pools)
        if (x.name == name) p = &x;
    const FixId fix_id = is_default ? ids::fix::storage_pool_default : ids::fix::none;
    const std::string qn = util::shell_quote(name);
    if (!p) {
        std::string others = all.empty() ? "no pool is defined" : "defined: " + join(all, ", ");
        if (!f.request.pool_given && !all.empty()) others += "; pass --pool NAME to judge one of them";
        set(out, Status::Fail, fmt::format("libvirt storage pool {} is not defined ({}): virt-install and virt-manager have nowhere to put disks",
                                           name, others));
        remedy(out,
               fmt::format("Define a directory pool {} on {}, create it, start it and start it at boot.", name,
                           is_default ? kDefaultImages : "a directory of your choice"),
               {virsh(f, "pool-define-as " + qn + " dir --target " + (is_default ? std::string(kDefaultImages) : "/srv/" + name)),
                virsh(f, "pool-build " + qn), virsh(f, "pool-start " + qn), virsh(f, "pool-autostart " + qn)},
               fix_id, is_default ? "automatic" : "manual", true);
        return;
    }
    const auto& d = f.virt.pool_dir;
    ev["type"] = p->type;
    ev["target"] = p->target;
    ev["active"] = p->active;
    ev["autostart"] = p->autostart;
    ev["capacity"] = p->capacity;
    ev["available_libvirt"] = p->available;
    if (d.usage_read) {
        ev["fs_free"] = d.usage.free_bytes;
        ev["fs_avail_unprivileged"] = d.usage.avail_bytes;
    }
    if (!d.fstype.empty()) ev["fstype"] = d.fstype;
    const bool target_exists = !d.chain.empty() && d.chain.back().exists;
    ev["target_exists"] = target_exists;

    if (!p->active) {
        std::vector<std::string> cmds;
        if (!target_exists && (p->type == "dir" || p->type.empty())) cmds.push_back(virsh(f, "pool-build " + qn));
        cmds.push_back(virsh(f, "pool-start " + qn));
        if (!p->autostart) cmds.push_back(virsh(f, "pool-autostart " + qn));
        set(out, Status::Fail, fmt::format("libvirt storage pool {} ({}) is defined but not active{}", name, p->target,
                                           target_exists || d.chain.empty() ? "" : ", and its target does not exist"));
        remedy(out, "Start the pool (and start it at boot).", cmds, fix_id, "automatic", true);
        return;
    }
    if (!d.chain.empty() && !target_exists) {
        set(out, Status::Fail, fmt::format("libvirt storage pool {} is active but its target {} does not exist", name, p->target));
        remedy(out, "Re-create the directory and restart the pool.",
               {virsh(f, "pool-destroy " + qn), virsh(f, "pool-build " + qn), virsh(f, "pool-start " + qn)}, fix_id, "confirm", true);
        return;
    }
    // dir/fs/netfs pools hold plain files QEMU opens by path: its user must
    // be able to search every directory on the way.
    const bool file_pool = p->type == "dir" || p->type == "fs" || p->type == "netfs";
    if (file_pool && q.found && !d.chain.empty()) {
        std::string basis;
        if (const VirtPath* b = blocking_dir(d, q, basis)) {
            ev["blocked_at"] = b->path;
            ev["blocked_by"] = owner_mode(*b) + " (" + basis + ")";
            set(out, Status::Fail,
                fmt::format("QEMU runs as {}, which cannot reach the disks in pool {}: no search permission on {} ({}, {})", q.user, name,
                            b->path, owner_mode(*b), basis));
            remedy(out, fmt::format("Let others (or just {}) traverse {}.", q.user, b->path),
                   {"chmod o+x " + util::shell_quote(b->path)}, "", "confirm", true);
            return;
        }
    }
    const uint64_t free_b = free_for_qemu(d, q, p->available);
    ev["free_for_guests"] = free_b;
    std::vector<std::string> problems;
    std::vector<std::string> cmds;
    if (free_b < kPoolLowSpace)
        problems.push_back(fmt::format("only {} free on {} (under {})", gib(free_b), p->target, gib(kPoolLowSpace)));
    ev["persistent"] = p->persistent;
    if (!p->persistent) {
        // `virsh pool-create-as` makes a transient pool: libvirt refuses
        // pool-autostart on it ("internal error: pool has no config file"),
        // so it must be defined from its running XML first, as for networks.
        problems.push_back(
            "transient (created by pool-create-as or pool-create: it is gone when the daemon restarts and cannot start at boot)");
        const std::string file = util::shell_quote("/tmp/" + name + "-pool.xml");
        cmds = {virsh(f, "pool-dumpxml " + qn) + " > " + file, virsh(f, "pool-define " + file), virsh(f, "pool-autostart " + qn)};
    } else if (!p->autostart) {
        problems.push_back("does not start at boot");
        cmds.push_back(virsh(f, "pool-autostart " + qn));
    }
    if (!problems.empty()) {
        set(out, Status::Warn, fmt::format("libvirt storage pool {} ({}) is active but {}", name, p->target, join(problems, " and ")));
        if (!p->persistent) {
            remedy(out, "Make it persistent from its current definition, and start it at boot.", cmds, fix_id, "confirm", true);
        } else if (free_b < kPoolLowSpace) {
            remedy(out, "Free space on that filesystem or point the pool at a bigger one; a qcow2 disk that cannot grow pauses its guest.",
                   cmds.empty() ? std::vector<std::string>{virsh(f, "vol-list " + qn + " --details")} : cmds, cmds.empty() ? ids::fix::none : fix_id, "manual",
                   true);
        } else {
            remedy(out, "Start it at boot.", cmds, fix_id, "automatic", true);
        }
        return;
    }
    set(out, Status::Pass, fmt::format("libvirt storage pool {} ({}, {}) is active and starts at boot, {} free{}", name, p->type, p->target,
                                       gib(free_b), d.fstype.empty() ? "" : " on " + d.fstype));
}

void images_dir(const Facts& f, const Results&, Finding& out) {
    const auto& d = f.virt.images_dir;
    auto& ev = out.evidence;
    if (!f.virt.probed || d.chain.empty()) {
        set(out, Status::Unknown, "the images directory was not looked at (facts without the virt probe)");
        remedy(out, "Re-run kvmready on the host.", {"kvmready check storage.images-dir"}, "", "manual", false);
        return;
    }
    ev["path"] = d.path;
    ev["why"] = d.why;
    const bool exists = d.chain.back().exists;
    if (!exists && !f.virt.libvirt.installed && d.path == kDefaultImages) {
        set(out, Status::Skip, "libvirt is not installed, so it has no images directory");
        return;
    }
    if (!exists) {
        set(out, Status::Warn, fmt::format("{} ({}) does not exist", d.path, d.why));
        remedy(out, "Create it with libvirt's usual mode.", {"mkdir -p -m 0711 " + util::shell_quote(d.path)}, "", "automatic", true);
        return;
    }
    if (d.chain.back().type != "dir") {
        set(out, Status::Warn, fmt::format("{} ({}) is a {}, not a directory", d.path, d.why, d.chain.back().type));
        remedy(out, "Move it aside and create the directory.", {"mkdir -p -m 0711 " + util::shell_quote(d.path)}, "", "manual", true);
        return;
    }
    ev["fstype"] = d.fstype;
    ev["mount_point"] = d.mount_point;
    if (d.usage_read) {
        ev["total"] = d.usage.total_bytes;
        ev["free"] = d.usage.free_bytes;
        ev["avail_unprivileged"] = d.usage.avail_bytes;
        ev["read_only"] = d.usage.read_only;
    }
    const std::string fs = d.fstype.empty() ? "an unknown filesystem" : d.fstype;
    const std::string space = d.usage_read ? fmt::format(", {} free of {}", gib(d.usage.avail_bytes), gib(d.usage.total_bytes)) : "";
    if (d.usage_read && d.usage.read_only) {
        set(out, Status::Warn, fmt::format("{} is on a read-only {} (mounted at {})", d.path, fs, d.mount_point));
        remedy(out, "Put guest images on a writable filesystem.", {"findmnt -T " + util::shell_quote(d.path)}, "", "manual", false);
        return;
    }
    if (d.fstype == "tmpfs" || d.fstype == "ramfs") {
        set(out, Status::Warn,
            fmt::format("{} is on {} (mounted at {}{}): disk images live in RAM and vanish at reboot", d.path, d.fstype, d.mount_point, space));
        remedy(out, "Put guest images on a disk-backed filesystem.", {"findmnt -T " + util::shell_quote(d.path)}, "", "manual", false);
        return;
    }
    set(out, Status::Pass, fmt::format("{} is on {} (mounted at {}){}", d.path, fs, d.mount_point, space));
}

}  // namespace

// kvm.qemu-user-access comes first so that it follows the other kvm.* checks
// in the report.
void register_virt(std::vector<CheckSpec>& r) {
    r.push_back({ids::kvm_qemu_user_access, "libvirt's QEMU user may open /dev/kvm", Level::Recommended, {ids::kvm_device},
                 "user and group in /etc/libvirt/qemu.conf (else the defaults written, commented out, in that file), that user's groups "
                 "from /etc/passwd and /etc/group, and the mode, owner, group and ACL of /dev/kvm.",
                 "libvirt starts QEMU as an unprivileged user (libvirt-qemu on Debian, qemu on Fedora). If that user cannot open "
                 "/dev/kvm, guests of type kvm fail to start and the daemon re-probes QEMU on every capabilities call, even when root can "
                 "use KVM.",
                 "Give /dev/kvm to group kvm with mode 0660 (udev rule) and keep the QEMU user in group kvm.", qemu_user_access});
    r.push_back({ids::qemu_binary, "QEMU system emulator", Level::Recommended, {},
                 "stat of qemu-system-ARCH (/usr/bin, /usr/local/bin), /usr/libexec/qemu-kvm, /usr/bin/qemu-kvm, /usr/bin/kvm, in that "
                 "order; the version banner in the binary's .rodata, else `PATH --version` (2 s timeout); /proc/sys/kernel/arch; /etc/os-release for the install command.",
                 "KVM is only the kernel half: QEMU (directly, or under libvirt) is the program that runs the guests.",
                 "Install the distribution's QEMU package (Debian: qemu-system-x86).", qemu_binary});
    r.push_back({ids::libvirt_daemon, "libvirt daemon answers", Level::Recommended, {},
                 "A read-only connection to the --connect URI (default qemu:///system) with a 3 s deadline; the process behind the UNIX "
                 "socket (SO_PEERCRED, /proc/PID/comm and state); the daemon binaries present; /run/systemd/system for the hints.",
                 "virsh, virt-install, virt-manager, OpenStack and Cockpit manage VMs through this daemon (libvirtd, or virtqemud with "
                 "the modular daemons).",
                 "Start it: systemctl enable --now libvirtd, or without systemd virtlogd -d and libvirtd -d.", daemon});
    r.push_back({ids::libvirt_manage, "User may manage domains", Level::Recommended, {ids::libvirt_daemon},
                 "A read-write connection to the URI as the invoking user (for --user OTHER: membership in group libvirt).",
                 "Read-only connections may only look; defining and starting guests needs the read-write socket, which libvirt grants "
                 "to root, to group libvirt, or through polkit.",
                 "usermod -aG libvirt USER, then log in again.", manage});
    r.push_back({ids::libvirt_domcaps_kvm, "libvirt offers KVM guests", Level::Recommended, {ids::libvirt_daemon},
                 "virConnectGetDomainCapabilities for virttype kvm and qemu (TCG), virConnectGetCapabilities for the machine types; "
                 "the results of kvm.api and kvm.qemu-user-access.",
                 "libvirt decides from its own QEMU probe whether guests of type kvm can run; it may disagree with /dev/kvm (QEMU user "
                 "without access, stale cache) and knows which machine types and UEFI firmware QEMU offers.",
                 "Make /dev/kvm usable by the QEMU user; install ovmf for UEFI guests; with PVM or no KVM, use type qemu (TCG).",
                 domcaps_kvm});
    r.push_back({ids::libvirt_network, "libvirt network", Level::Recommended, {ids::libvirt_daemon},
                 "The network named by --network (default: default) from virConnectListAllNetworks: defined, active, autostart, "
                 "persistent, forward mode and bridge from its XML; /sys/class/net/BRIDGE.",
                 "Guests attach their NICs to a libvirt network; the stock NAT network 'default' (virbr0) is what virt-install and "
                 "virt-manager use unless told otherwise.",
                 "virsh net-define /usr/share/libvirt/networks/default.xml; virsh net-start default; virsh net-autostart default.", network});
    r.push_back({ids::storage_pool, "libvirt storage pool", Level::Recommended, {ids::libvirt_daemon},
                 "The pool named by --pool (default: default) from virConnectListAllStoragePools: active, autostart, type and target "
                 "from its XML; stat and ACL of the target and each parent directory against libvirt's QEMU user; statfs of the target.",
                 "virt-install and virt-manager create guest disks in the default pool; QEMU must reach the files as its own user, and a "
                 "full filesystem pauses guests whose disks grow.",
                 "virsh pool-define-as default dir --target /var/lib/libvirt/images; pool-build; pool-start; pool-autostart.", pool});
    r.push_back({ids::storage_images_dir, "Guest images directory", Level::Optional, {},
                 "The pool's target (else /var/lib/libvirt/images): stat, statfs, and its filesystem from /proc/self/mountinfo (the "
                 "longest matching mount point).",
                 "Where guest disks live decides their speed, durability and room: tmpfs loses them at reboot, a small root filesystem "
                 "fills up.",
                 "Keep images on a large, disk-backed filesystem.", images_dir});
}

}  // namespace kvmready::checks
