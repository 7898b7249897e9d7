// security.*: SELinux and AppArmor confining each guest's QEMU (sVirt).
// Optional: guests run without them, only less isolated.
#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "checks/kernel_cmdline.hpp"
#include "util/text.hpp"

namespace kvmready::checks {

namespace {

using Json = nlohmann::ordered_json;

bool security_driver_none(const SecurityFacts& s) {
    return s.qemu_security_driver && s.qemu_security_driver->find("\"none\"") != std::string::npos;
}

void driver_none(Finding& out, const std::string& lsm) {
    set(out, Status::Warn,
        fmt::format("{} is active, but /etc/libvirt/qemu.conf sets security_driver = \"none\", so libvirt does not confine "
                    "guests with it: a compromised QEMU can reach every other guest's disks",
                    lsm));
    remedy(out,
           fmt::format("Remove that line so libvirt uses {} again (it labels images and confines each guest), then restart libvirt; "
                       "if a guest then fails on a denial, fix the label or boolean the denial names instead.",
                       lsm),
           {"sed -i 's/^security_driver *= *\"none\"/#&/' /etc/libvirt/qemu.conf", "systemctl restart libvirtd"},
           "", "manual", true);
}

void selinux(const Facts& f, const Results&, Finding& out) {
    const auto& s = f.system.security;
    auto& ev = out.evidence;
    if (s.lsm) ev["lsm"] = *s.lsm;
    if (s.selinux_config_mode) ev["config_mode"] = *s.selinux_config_mode;
    if (s.selinux_config_type) ev["config_type"] = *s.selinux_config_type;
    const bool lsm_says = s.lsm && util::has_word(*s.lsm, "selinux", ',');
    if (!s.selinuxfs) {
        if (lsm_says) {
            set(out, Status::Unknown, "SELinux is an active LSM but /sys/fs/selinux is not mounted, so its mode cannot be read");
            remedy(out, "Mount selinuxfs.", {"mount -t selinuxfs selinuxfs /sys/fs/selinux"}, "", "confirm", true);
            return;
        }
        set(out, Status::Skip,
            fmt::format("SELinux is not active (no /sys/fs/selinux){}{}", s.lsm ? "; active LSMs: " + *s.lsm : "",
                        s.selinux_config_mode ? fmt::format("; /etc/selinux/config says SELINUX={}", *s.selinux_config_mode) : ""));
        return;
    }
    ev["enforce"] = s.selinux_enforce ? Json(*s.selinux_enforce) : Json();
    ev["policy_loaded"] = s.selinux_policy_loaded;
    Json b = Json::object();
    for (const auto& [k, v] : s.selinux_booleans) b[k] = v;
    ev["booleans"] = b;
    if (s.images_mount) ev["images_filesystem"] = fmt::format("{} ({} on {})", s.images_mount->fstype, s.images_mount->source, s.images_mount->mountpoint);
    if (s.qemu_security_driver) ev["qemu_conf_security_driver"] = *s.qemu_security_driver;
    if (!s.selinux_enforce) {
        set(out, Status::Unknown, "/sys/fs/selinux exists but its enforce file could not be read");
        remedy(out, "Read the mode with the SELinux tools.", {"getenforce"}, "", "manual", false);
        return;
    }
    if (!s.selinux_policy_loaded) {
        set(out, Status::Warn,
            "SELinux is enabled in the kernel but no policy is loaded: libvirt's sVirt labelling does nothing until one is");
        remedy(out, "Install and load a policy (Fedora/RHEL: selinux-policy-targeted; Debian: selinux-policy-default and "
                    "selinux-activate), then reboot so every file is labelled.",
               {"sestatus"}, "", "manual", true);
        return;
    }
    if (security_driver_none(s)) {
        driver_none(out, "SELinux");
        return;
    }
    if (*s.selinux_enforce != "1") {
        set(out, Status::Warn,
            "SELinux is permissive: libvirt still labels each guest (svirt_t with its own MCS category) and its images, but "
            "denials are only logged, so one guest's QEMU is not kept from another's disks");
        remedy(out, "Look at what would be denied, fix those labels or booleans, then enforce now and at boot.",
               {"ausearch -m avc -ts recent", "setenforce 1", "sed -i 's/^SELINUX=.*/SELINUX=enforcing/' /etc/selinux/config"},
               "", "manual", true);
        return;
    }
    // Images on network filesystems carry no per-file labels; a boolean
    // lets svirt_t use them.
    if (s.images_mount) {
        const std::string& fs = s.images_mount->fstype;
        const char* boolean = fs.rfind("nfs", 0) == 0                 ? "virt_use_nfs"
                              : fs == "cifs" || fs == "smb3"          ? "virt_use_samba"
                              : fs.rfind("fuse", 0) == 0              ? "virt_use_fusefs"
                                                                      : nullptr;
        if (boolean) {
            auto it = s.selinux_booleans.find(boolean);
            const bool on = it != s.selinux_booleans.end() && !it->second.empty() && it->second[0] == '1';
            if (!on) {
                set(out, Status::Warn,
                    fmt::format("SELinux is enforcing and /var/lib/libvirt/images is on {} ({}), but {} is {}: guests "
                                "cannot open images there (files on {} have no per-file labels)",
                                fs, s.images_mount->source, boolean, it == s.selinux_booleans.end() ? "not in the policy" : "off", fs));
                remedy(out, fmt::format("Let confined guests use {} images (persistently).", fs), {fmt::format("setsebool -P {} 1", boolean)},
                       "", "manual", true);
                return;
            }
        }
    }
    if (s.selinux_config_mode && *s.selinux_config_mode != "enforcing") {
        set(out, Status::Warn,
            fmt::format("SELinux is enforcing now, but /etc/selinux/config says SELINUX={}, so the next boot will not enforce "
                        "and guests lose sVirt's isolation",
                        *s.selinux_config_mode));
        remedy(out, "Make the boot-time mode match.", {"sed -i 's/^SELINUX=.*/SELINUX=enforcing/' /etc/selinux/config"},
               "", "manual", true);
        return;
    }
    set(out, Status::Pass,
        fmt::format("SELinux is enforcing{}: libvirt runs each guest as svirt_t with its own MCS category and labels its images "
                    "svirt_image_t, so a guest cannot open another's disks (images outside /var/lib/libvirt/images need the "
                    "virt_image_t label)",
                    s.selinux_config_type ? " (" + *s.selinux_config_type + " policy)" : ""));
}

struct Profile {
    std::string name, mode;
};

std::vector<Profile> parse_profiles(const std::vector<std::string>& lines) {
    std::vector<Profile> out;
    for (const auto& l : lines) {
        auto open = l.rfind(" (");
        if (open == std::string::npos || l.back() != ')') out.push_back({l, ""});
        else out.push_back({l.substr(0, open), l.substr(open + 2, l.size() - open - 3)});
    }
    return out;
}

void apparmor(const Facts& f, const Results&, Finding& out) {
    const auto& s = f.system.security;
    auto& ev = out.evidence;
    if (s.lsm) ev["lsm"] = *s.lsm;
    if (!s.apparmor_enabled) {
        set(out, Status::Skip, "AppArmor is not active (no /sys/module/apparmor/parameters/enabled)");
        return;
    }
    ev["enabled"] = *s.apparmor_enabled;
    if (!param_on(*s.apparmor_enabled) || (s.lsm && !util::has_word(*s.lsm, "apparmor", ','))) {
        set(out, Status::Skip,
            fmt::format("AppArmor is built into the kernel but not active{}", s.lsm ? " (active LSMs: " + *s.lsm + ")" : " (enabled=N)"));
        return;
    }
    if (!s.apparmor_profiles_read) {
        set(out, Status::Unknown,
            "AppArmor is enabled but /sys/kernel/security/apparmor/profiles could not be read (securityfs not mounted, or not root)");
        remedy(out, "Read the loaded profiles as root.", {"mount -t securityfs securityfs /sys/kernel/security", "aa-status"}, "", "manual", true);
        return;
    }
    const auto profiles = parse_profiles(s.apparmor_libvirt_profiles);
    const Profile* daemon = nullptr;
    const Profile* helper = nullptr;
    int guests = 0;
    for (const auto& p : profiles) {
        if (p.name == "libvirtd" || p.name == "/usr/sbin/libvirtd" || p.name == "virtqemud" || p.name == "/usr/sbin/virtqemud") {
            if (!daemon) daemon = &p;
        } else if (p.name == "virt-aa-helper" || p.name.find("/libvirt/virt-aa-helper") != std::string::npos) {
            helper = &p;
        } else if (p.name.rfind("libvirt-", 0) == 0 && p.name.find("//") == std::string::npos) {
            ++guests;
        }
    }
    ev["profiles_loaded"] = s.apparmor_profiles_total;
    ev["libvirt_profiles"] = s.apparmor_libvirt_profiles;
    ev["guest_profiles"] = guests;
    ev["profile_files"] = {{"/etc/apparmor.d/usr.sbin.libvirtd", s.libvirtd_profile_file},
                           {"/etc/apparmor.d/usr.lib.libvirt.virt-aa-helper", s.virt_aa_helper_profile_file},
                           {"/etc/apparmor.d/libvirt/TEMPLATE.qemu", s.libvirt_qemu_template}};
    if (s.libvirtd_profile_disabled) ev["disabled_link"] = "/etc/apparmor.d/disable/usr.sbin.libvirtd";
    if (s.qemu_security_driver) ev["qemu_conf_security_driver"] = *s.qemu_security_driver;

    const std::vector<std::string> reload = {
        "apparmor_parser -r /etc/apparmor.d/usr.sbin.libvirtd /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper",
        "systemctl restart libvirtd"};
    if (!daemon) {
        if (s.libvirtd_profile_disabled) {
            set(out, Status::Warn,
                "libvirtd's AppArmor profile is disabled (/etc/apparmor.d/disable/usr.sbin.libvirtd): libvirt turns its "
                "AppArmor driver off when its daemon is unconfined, so guests run without per-guest profiles");
            std::vector<std::string> cmds = {"rm /etc/apparmor.d/disable/usr.sbin.libvirtd"};
            cmds.insert(cmds.end(), reload.begin(), reload.end());
            remedy(out, "Re-enable the profile and restart libvirt; if a guest then hits a denial, allow that path in "
                        "/etc/apparmor.d/local/abstractions/libvirt-qemu instead.",
                   cmds, "", "manual", true);
            return;
        }
        if (s.libvirtd_profile_file) {
            set(out, Status::Warn,
                "libvirt's AppArmor profiles are installed but not loaded: libvirt turns its AppArmor driver off when its daemon "
                "is unconfined, so guests run without per-guest profiles");
            remedy(out, "Load the profiles and restart libvirt.", reload, "", "manual", true);
            return;
        }
        set(out, Status::Skip,
            fmt::format("AppArmor is enabled ({} profiles loaded) but libvirt's profiles are not installed, so there is no "
                        "libvirt confinement to judge",
                        s.apparmor_profiles_total));
        return;
    }
    ev["daemon_profile"] = daemon->name + " (" + daemon->mode + ")";
    if (helper) ev["helper_profile"] = helper->name + " (" + helper->mode + ")";
    if (security_driver_none(s)) {
        driver_none(out, "AppArmor");
        return;
    }
    if (daemon->mode == "complain") {
        set(out, Status::Warn,
            fmt::format("{}'s AppArmor profile is in complain mode, and libvirt then loads guests' profiles in complain mode "
                        "too: denials are logged, not enforced",
                        daemon->name));
        remedy(out, "Put libvirt's profiles back in enforce mode (aa-enforce is in apparmor-utils) and restart libvirt.",
               {"aa-enforce /etc/apparmor.d/usr.sbin.libvirtd /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper", "systemctl restart libvirtd"},
               "", "manual", true);
        return;
    }
    if (!helper) {
        set(out, Status::Warn,
            fmt::format("{} is confined ({}) but virt-aa-helper's profile is not loaded: it writes each guest's profile, and "
                        "unconfined it is refused by the libvirtd profile's rules",
                        daemon->name, daemon->mode));
        remedy(out, "Load virt-aa-helper's profile.", {"apparmor_parser -r /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper"},
               "", "manual", true);
        return;
    }
    if (!s.libvirt_qemu_template) {
        set(out, Status::Warn,
            "libvirt's daemon profile is loaded but /etc/apparmor.d/libvirt/TEMPLATE.qemu is missing: libvirt's AppArmor driver "
            "needs it to create guest profiles and stays off without it");
        remedy(out, "Reinstall libvirt's AppArmor files.", {"apt-get install --reinstall libvirt-daemon-system"}, "",
               "manual", true);
        return;
    }
    set(out, Status::Pass,
        fmt::format("AppArmor confines libvirt: {} ({}), virt-aa-helper ({}); each guest gets a libvirt-<uuid> profile allowing "
                    "only its own disks ({} loaded now); see them with aa-status",
                    daemon->name, daemon->mode, helper->mode, guests));
}

}  // namespace

void register_security(std::vector<CheckSpec>& r) {
    r.push_back({ids::security_selinux, "SELinux and libvirt (sVirt)", Level::Optional, {},
                 "/sys/fs/selinux/enforce, /sys/fs/selinux/booleans (virt_use_nfs, virt_use_samba, virt_use_fusefs, "
                 "virt_use_usb, virt_use_sanlock, virt_use_execmem, virt_sandbox_use_all_caps), /etc/selinux/config, "
                 "/sys/kernel/security/lsm, security_driver in /etc/libvirt/qemu.conf, the filesystem of /var/lib/libvirt/images.",
                 "With SELinux, libvirt (sVirt) runs each guest's QEMU as svirt_t with a unique MCS category and labels its disk "
                 "images to match, so a compromised guest cannot touch other guests' disks. Images on NFS/CIFS have no per-file "
                 "labels and need a boolean (virt_use_nfs, virt_use_samba); images elsewhere need the virt_image_t label. "
                 "Turning SELinux off removes that isolation; label or set the boolean instead.",
                 "setsebool -P virt_use_nfs 1 for NFS images; semanage fcontext -a -t virt_image_t '/srv/vms(/.*)?' && "
                 "restorecon -R /srv/vms for a custom image directory; ausearch -m avc to see denials.",
                 selinux});
    r.push_back({ids::security_apparmor, "AppArmor and libvirt", Level::Optional, {},
                 "/sys/module/apparmor/parameters/enabled, /sys/kernel/security/apparmor/profiles (libvirtd, virt-aa-helper, "
                 "libvirt-<uuid> and their modes), /etc/apparmor.d/usr.sbin.libvirtd, usr.lib.libvirt.virt-aa-helper, "
                 "libvirt/TEMPLATE.qemu, disable/usr.sbin.libvirtd, /sys/kernel/security/lsm, security_driver in "
                 "/etc/libvirt/qemu.conf.",
                 "On AppArmor hosts (Debian, Ubuntu, SUSE) libvirt confines each guest with a libvirt-<uuid> profile that "
                 "virt-aa-helper generates from the guest's XML, allowing only its own disks. libvirt only does this when "
                 "libvirtd itself runs confined. A disk path outside the usual places is denied until it is listed in "
                 "/etc/apparmor.d/local/abstractions/libvirt-qemu; disabling the profile removes the isolation instead.",
                 "apparmor_parser -r /etc/apparmor.d/usr.sbin.libvirtd /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper; "
                 "aa-status to see modes.",
                 apparmor});
}

}  // namespace kvmready::checks
