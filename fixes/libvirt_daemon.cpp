// libvirt.daemon: start the libvirt daemons and have them start at boot, the
// way this host starts services. Detected, not assumed:
//  * systemd is PID 1 (/run/systemd/system): `systemctl enable --now` of the
//    monolithic libvirtd or the modular daemons' sockets;
//  * sysvinit is PID 1 and the package's init scripts are installed: the
//    scripts now, update-rc.d for boot;
//  * anything else (a container's or sandbox's PID 1, like these machines):
//    `virtlogd -d` then `libvirtd -d` (or the modular daemons) directly, and
//    the plan says that nothing will start them at boot.
// Planned only when the libvirt.daemon check found no daemon listening on the
// local socket; a daemon that runs but hangs is for a person to look at.
#include <fmt/format.h>

#include "fixes/fixes.hpp"
#include "fixes/libvirt_fix.hpp"

namespace kvmready::fix {

namespace {

std::string names(const std::vector<lv::DaemonInfo>& ds) {
    std::string out;
    for (const auto& d : ds) out += (out.empty() ? "" : ", ") + d.name;
    return out;
}

std::optional<Plan> plan_daemon(const PlanInput& in) {
    if (in.offline()) return std::nullopt;
    if (in.wanting(ids::fix::libvirt_daemon.text).empty()) return std::nullopt;
    const auto& f = in.facts;
    const std::string uri = in.options.connect_uri;
    Plan p;
    p.fix_id = "libvirt.daemon";
    p.applicability = Applicability::Confirm;  // starts system services
    p.repairs = {ids::libvirt_daemon.text};
    p.reason = lv::reasons(in, p.fix_id);

    const auto init = lv::detect_init(f);
    auto daemons = lv::daemons_for(f, uri);
    std::vector<lv::DaemonInfo> installed, missing;
    for (const auto& d : daemons) (d.binary.empty() ? missing : installed).push_back(d);
    const bool modular = lv::modular_daemons(f);
    const std::string main = modular ? "virtqemud" : "libvirtd";
    if (std::none_of(installed.begin(), installed.end(), [&](const lv::DaemonInfo& d) { return d.name == main; }))
        throw std::runtime_error(fmt::format("{} is not installed (apt-get install libvirt-daemon-system)", main));
    if (!missing.empty()) p.notes.push_back(fmt::format("not installed, so not started: {}", names(missing)));

    if (init.kind == lv::InitSystem::Systemd) {
        std::vector<std::string> units;
        if (modular) units = {"virtqemud.socket", "virtnetworkd.socket", "virtstoraged.socket", "virtlogd.socket"};
        else units = {"libvirtd.service"};
        Step s;
        s.op = "systemd.enable-now";
        s.summary = fmt::format("start {} now and at boot (systemd)", modular ? "the modular libvirt daemons' sockets" : "libvirtd");
        s.runtime = true;
        std::vector<std::string> argv = {"systemctl", "enable", "--now"};
        argv.insert(argv.end(), units.begin(), units.end());
        s.commands = {argv};
        s.args = {{"units", units}};
        p.steps.push_back(s);
        p.notes.push_back(init.why);
        return p;
    }

    std::vector<lv::DaemonInfo> to_start;
    for (const auto& d : installed) {
        if (auto pid = lv::running_pid(in.config(), d)) {
            if (d.name == main)
                throw std::runtime_error(fmt::format("{} runs (PID {}) but nothing answers at {}: restart it (kill {} && {} -d) and read "
                                                     "/var/log/libvirt/{}.log",
                                                     d.name, *pid, uri, *pid, d.name, d.name));
            p.notes.push_back(fmt::format("{} runs already (PID {})", d.name, *pid));
            continue;
        }
        to_start.push_back(d);
    }

    if (init.kind == lv::InitSystem::Sysv) {
        for (const auto& d : to_start) {
            const std::string script = "/etc/init.d/" + d.name;
            if (!in.config().exists(script)) {
                p.notes.push_back(fmt::format("no {}: start {} yourself", script, d.name));
                continue;
            }
            p.steps.push_back(command({script, "start"}, fmt::format("start {} (init script)", d.name), {script, "stop"}));
        }
        for (const auto& d : installed) {
            const std::string script = "/etc/init.d/" + d.name;
            if (!in.config().exists(script)) continue;
            bool linked = false;
            for (const auto& e : in.config().dir("/etc/rc2.d"))
                if (e.size() > 3 && e[0] == 'S' && e.substr(3) == d.name) linked = true;
            if (!linked)
                p.steps.push_back(command({"update-rc.d", d.name, "defaults"}, fmt::format("start {} at boot (sysvinit links)", d.name),
                                          {"update-rc.d", "-f", d.name, "remove"}));
        }
        p.notes.push_back(init.why);
        return p;
    }

    for (const auto& d : to_start) {
        Step s;
        s.op = "daemon.start";
        s.summary = fmt::format("start {} ({} -d)", d.name, d.binary);
        s.runtime = true;
        s.commands = {{d.name, "-d"}};
        s.args = {{"name", d.name}, {"binary", d.binary}, {"pidfile", d.pidfile}, {"socket", d.socket}};
        p.steps.push_back(s);
    }
    std::vector<std::string> cmds;
    for (const auto& d : installed) cmds.push_back(d.name + " -d");
    std::string joined;
    for (const auto& c : cmds) joined += (joined.empty() ? "" : "; ") + c;
    p.notes.push_back(fmt::format("No init system manages services here ({}): kvmready starts the daemons now, but nothing will start "
                                  "them at boot; have whatever starts this machine's services run: {}",
                                  init.why, joined));
    if (p.steps.empty()) return std::nullopt;
    return p;
}

}  // namespace

FixSpec fix_libvirt_daemon() {
    return {ids::fix::libvirt_daemon.text, "Start the libvirt daemons", {ids::libvirt_daemon},
            "Starts virtlogd and libvirtd (or the modular virtqemud, virtnetworkd and virtstoraged) and has them start at boot: "
            "`systemctl enable --now` where systemd is PID 1, the init scripts and update-rc.d under sysvinit, else the daemons "
            "directly (`virtlogd -d`, `libvirtd -d`), saying that nothing will start them at boot. Undo stops only the daemons "
            "this run started, by PID.",
            plan_daemon};
}

}  // namespace kvmready::fix
