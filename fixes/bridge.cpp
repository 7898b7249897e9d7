// net.bridge: create a Linux bridge (--bridge BR), optionally with a physical
// uplink (--uplink NIC) whose addresses and routes move to the bridge, at
// runtime and persistently for the network stack the host uses.
//
// Plan, in apply order:
//   1. (ifupdown without bridge support) install bridge-utils;
//   2. the runtime change: bridge.link (one `ip -batch` under a watchdog and
//      a connectivity probe, fixes/ops_bridge.cpp) or, under NetworkManager,
//      bridge.nm (nmcli inside a checkpoint);
//   3. the persistent files (file.write: diffs, atomic, byte-identical undo),
//      only reached when step 2 kept the host connected;
//   4. telling the stack (networkctl reload, netplan generate).
// Without --uplink no existing interface is touched. Recomputed from the
// current state on every run: nothing to do once the bridge exists (with the
// uplink as its port) and the configuration says so.
#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "fixes/bridge.hpp"
#include "fixes/fixes.hpp"

namespace kvmready::fix {

namespace {

namespace br = bridge;

bool valid_ifname(const std::string& n) {
    if (n.empty() || n.size() > 15 || n == "." || n == "..") return false;
    return std::all_of(n.begin(), n.end(), [](char c) { return c > ' ' && c != '/' && c != ':' && c != '\x7f'; });
}

br::Target target_of(const PlanInput& in) {
    br::Target t;
    t.live = !in.offline();
    t.read = [&in](const std::string& path) -> std::optional<std::string> {
        try {
            return in.target_file(path);
        } catch (const std::exception&) {
            // A symlinked directory (/lib -> usr/lib) or an unreadable file:
            // read it through the host layer instead (reading is harmless).
            int err = 0;
            return in.host.read_file(path, &err);
        }
    };
    const std::string root = in.options.root;
    t.list = [root](const std::string& dir) {
        std::vector<std::string> out;
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(root + dir, ec)) out.push_back(e.path().filename().string());
        std::sort(out.begin(), out.end());
        return out;
    };
    return t;
}

br::Runner runner_of(const PlanInput& in) {
    return [&in](const std::vector<std::string>& argv) { return in.host.run(argv, 5000); };
}

// Brings down bridges up when the check says so (no --bridge given).
std::optional<Plan> plan_bring_up(const PlanInput& in) {
    if (in.offline()) return std::nullopt;
    Plan p;
    for (const auto* f : in.wanting("net.bridge")) {
        (void)f;
        for (const auto& b : in.facts.net.bridges)
            if (b.admin_up && !*b.admin_up && !b.ports.empty()) {
                p.steps.push_back(command({"ip", "link", "set", "dev", b.name, "up"}, fmt::format("bring bridge {} up", b.name),
                                          {"ip", "link", "set", "dev", b.name, "down"}));
                p.repairs.push_back(f->id);
                p.reason = f->message;
            }
        break;
    }
    if (p.steps.empty()) return std::nullopt;
    p.fix_id = "net.bridge";
    p.title = "Bring the bridge up";
    p.notes.push_back("runtime only: the network configuration that created the bridge decides its state at boot");
    return p;
}

std::optional<Plan> plan_bridge(const PlanInput& in) {
    const std::string& bridge = in.options.bridge;
    const std::string& uplink = in.options.uplink;
    if (bridge.empty()) {
        if (!uplink.empty()) throw std::runtime_error("--uplink needs --bridge NAME (the bridge that takes it as its port)");
        return plan_bring_up(in);
    }
    if (!valid_ifname(bridge)) throw std::runtime_error(fmt::format("'{}' is not a valid interface name (1-15 characters, no '/', ':' or blanks)", bridge));
    if (!uplink.empty() && !valid_ifname(uplink)) throw std::runtime_error(fmt::format("'{}' is not a valid interface name", uplink));
    if (uplink == bridge) throw std::runtime_error("--uplink and --bridge name the same interface");

    Plan p;
    p.fix_id = "net.bridge";
    p.title = uplink.empty() ? fmt::format("Create bridge {}", bridge) : fmt::format("Create bridge {} with uplink {}", bridge, uplink);
    p.repairs = {"net.bridges"};
    for (const auto* f : in.wanting("net.bridge")) p.reason += (p.reason.empty() ? "" : "; ") + f->message;
    if (p.reason.empty()) p.reason = fmt::format("--bridge {}{} asked for it", bridge, uplink.empty() ? "" : " --uplink " + uplink);

    // Runtime state (live only).
    const br::Runner run = runner_of(in);
    br::LinkState b, u;
    bool runtime_needed = false;
    br::Move move;
    if (!in.offline()) {
        b = br::read_link(run, bridge);
        if (b.exists && b.kind != "bridge")
            throw std::runtime_error(fmt::format("{} exists and is not a bridge ({}): choose another name", bridge, b.kind.empty() ? "a device" : b.kind));
        if (!uplink.empty()) {
            u = br::read_link(run, uplink);
            if (!u.exists) throw std::runtime_error(fmt::format("the uplink {} does not exist here", uplink));
            if (!u.master.empty() && u.master != bridge)
                throw std::runtime_error(fmt::format("{} is already a port of {}: release it there first", uplink, u.master));
            if (u.kind == "bridge") throw std::runtime_error(fmt::format("{} is itself a bridge", uplink));
        }
        runtime_needed = !b.exists || !b.up || (!uplink.empty() && u.master != bridge);
        move.bridge = bridge;
        move.create_bridge = !b.exists;
        if (!uplink.empty() && u.master != bridge) {
            move.uplink = uplink;
            move.mac = b.exists && b.mac == u.mac ? "" : u.mac;
            move.bridge_old_mac = b.exists && !move.mac.empty() ? b.mac : "";
            move.addrs = u.addrs;
            move.routes = u.routes;
        }
    }
    const std::string mac = u.mac;  // "" offline: the bridge keeps the kernel's choice

    const br::Target t = target_of(in);
    const br::StackInfo stack = br::detect_stack(t, uplink);
    p.notes.push_back("network configuration: " + stack.evidence);

    std::vector<Step> persist_steps, after_steps, before_steps;
    std::optional<Step> runtime_step;
    bool persist_done = true;

    auto add_files = [&](const br::Persist& ps) {
        persist_done = ps.done;
        for (const auto& f : ps.files) persist_steps.push_back(write_file(f.path, f.before, f.content, 0644));
        for (const auto& n : ps.notes) p.notes.push_back(n);
    };

    switch (stack.stack) {
    case br::Stack::NetworkManager: {
        if (!stack.running || in.offline())
            throw std::runtime_error(fmt::format("{}: kvmready creates the bridge through nmcli, so NetworkManager must run", stack.evidence));
        const auto nm = br::nm_commands(run, bridge, uplink, mac);
        persist_done = nm.done;
        if (nm.done && !runtime_needed) return std::nullopt;
        Step s;
        s.op = "bridge.nm";
        s.runtime = true;
        s.summary = uplink.empty() ? fmt::format("create bridge {} as a NetworkManager connection", bridge)
                                   : fmt::format("create bridge {} and move {} (connection '{}') onto it, inside a NetworkManager checkpoint that "
                                                 "rolls back by itself after 30 s unless the connectivity probe passes",
                                                 bridge, uplink, nm.old_connection);
        s.commands = nm.apply;
        std::vector<std::vector<std::string>> apply = nm.apply, undo = nm.undo;
        s.args = {{"bridge", bridge}, {"uplink", uplink}, {"apply", apply}, {"undo", undo}, {"probe", br::probe_target(move)},
                  {"probe_ms", 5000}, {"rollback_s", 30}};
        runtime_step = s;
        runtime_needed = false;  // bridge.nm does both
        break;
    }
    case br::Stack::Networkd: {
        std::string up_file;
        if (!uplink.empty() && stack.running) {
            // networkd's own answer: which .network configured the uplink.
            if (auto idx = t.read("/sys/class/net/" + uplink + "/ifindex")) {
                std::string i = *idx;
                i.erase(std::remove_if(i.begin(), i.end(), [](char c) { return c == '\n' || c == ' '; }), i.end());
                if (auto st = t.read("/run/systemd/netif/links/" + i))
                    for (const auto& line : [&] {
                             std::vector<std::string> v;
                             std::string cur;
                             for (char c : *st) {
                                 if (c == '\n') {
                                     v.push_back(cur);
                                     cur.clear();
                                 } else cur += c;
                             }
                             return v;
                         }())
                        if (line.rfind("NETWORK_FILE=", 0) == 0) up_file = line.substr(13);
            }
        }
        add_files(br::networkd_config(t, bridge, uplink, mac, up_file));
        if (stack.running && !persist_done)
            after_steps.push_back(command({"networkctl", "reload"}, "make systemd-networkd read the new files"));
        break;
    }
    case br::Stack::Netplan:
        add_files(br::netplan_config(t, bridge, uplink, mac));
        if (!persist_done) {
            // Rendered for the next boot; the running state was changed (and
            // proven) by the ip batch already. `netplan try` is not used: it
            // cannot take back the edit of the uplink's own yaml file.
            after_steps.push_back(command({"netplan", "generate"}, "render the netplan configuration for the next boot"));
            if (stack.running && stack.evidence.find("networkd") != std::string::npos)
                after_steps.push_back(command({"networkctl", "reload"}, "make systemd-networkd read the rendered files"));
        }
        break;
    case br::Stack::Ifupdown:
        add_files(br::ifupdown_config(t, bridge, uplink, mac));
        if (!stack.bridge_support && !persist_done) {
            p.notes.push_back("ifupdown needs bridge-utils for bridge_ports (its /etc/network/if-pre-up.d/bridge hook is missing)");
            if (!in.offline())
                before_steps.push_back(command({"apt-get", "install", "-y", "--no-install-recommends", "bridge-utils"},
                                               "install bridge-utils (ifupdown's bridge_ports support)", {"apt-get", "remove", "-y", "bridge-utils"}));
            else
                p.notes.push_back("install bridge-utils in the image (not done with --root)");
        }
        if (stack.ifupdown2) p.notes.push_back("ifupdown2: the running state is changed by the ip batch below, not by ifreload; ifreload -a afterwards finds nothing to change");
        break;
    case br::Stack::None:
        p.notes.push_back(fmt::format("nothing would create {} at boot: the bridge lasts until the next reboot", bridge));
        break;
    }

    if (runtime_needed && !in.offline()) {
        Step s;
        s.op = "bridge.link";
        s.runtime = true;
        s.commands = br::batch_argv(br::forward_batch(move));
        s.args = {{"bridge", bridge}, {"uplink", move.uplink}, {"probe_ms", 5000}, {"watchdog_ms", 10000}};
        if (move.uplink.empty()) {
            s.summary = b.exists ? fmt::format("bring bridge {} up", bridge) : fmt::format("create bridge {} (STP off, no port: no existing interface is touched)", bridge);
        } else {
            const std::string target = br::probe_target(move);
            s.summary = fmt::format("move {}'s {} address{} and {} route{} to {} in one `ip -batch`, then probe {}; a detached watchdog runs the "
                                    "reverse batch unless the probe passes within 10 s (also if kvmready dies)",
                                    uplink, move.addrs.size(), move.addrs.size() == 1 ? "" : "es", move.routes.size(),
                                    move.routes.size() == 1 ? "" : "s", bridge, target.empty() ? bridge + "'s carrier" : target);
            if (target.empty()) p.notes.push_back(fmt::format("{} has no default route: the probe only waits for {} to come up", uplink, bridge));
        }
        runtime_step = s;
    }
    if (in.offline()) p.notes.push_back("--root: only files are written; the bridge is created at the target's next boot");

    if (!runtime_step && persist_done && before_steps.empty()) return std::nullopt;
    for (auto& s : before_steps) p.steps.push_back(std::move(s));
    if (runtime_step) p.steps.push_back(*runtime_step);
    for (auto& s : persist_steps) p.steps.push_back(std::move(s));
    for (auto& s : after_steps) p.steps.push_back(std::move(s));
    const bool moves = runtime_step && !uplink.empty();
    p.applicability = moves ? Applicability::Confirm : Applicability::Automatic;
    if (moves)
        p.notes.push_back(fmt::format("{}'s addresses and routes move to {}: connections through it pause for the move (milliseconds) and "
                                      "it rolls back by itself if {} loses connectivity",
                                      uplink, bridge, bridge));
    return p;
}

}  // namespace

FixSpec fix_net_bridge() {
    return {"net.bridge",
            "Linux bridge for guests",
            {"net.bridges"},
            "Creates the bridge named by --bridge (STP off), at runtime and in the configuration of the host's network stack "
            "(ifupdown, systemd-networkd, netplan or NetworkManager, detected). With --uplink NIC the NIC becomes its port and its addresses "
            "and routes move to the bridge in one step, under a connectivity probe and a watchdog that reverts the move if the host loses "
            "its network, even if kvmready dies; the configuration is written only after the probe passes. Without --uplink no existing "
            "interface is touched. Also brings down bridges with ports up.",
            plan_bridge};
}

}  // namespace kvmready::fix
