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

// The target as probed (ConfigFacts): file contents (through symlinked
// directories such as /lib -> usr/lib too: reading is harmless, and every
// write checks its path again), sorted directory listings, program output.
br::Target target_of(const PlanInput& in) {
    br::Target t;
    t.live = !in.offline();
    const ConfigFacts& c = in.config();
    t.read = [&c](const std::string& path) { return c.file(path).content; };
    t.list = [&c](const std::string& dir) { return c.dir(dir); };
    return t;
}

br::Runner runner_of(const PlanInput& in) {
    return [&in](const std::vector<std::string>& argv) { return in.config().command(argv); };
}

// Brings down bridges up when the check says so (no --bridge given).
std::optional<Plan> plan_bring_up(const PlanInput& in) {
    if (in.offline()) return std::nullopt;
    Plan p;
    for (const auto* f : in.wanting(ids::fix::net_bridge.text)) {
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

// What the running system looks like (live only) and what the move would do.
struct Runtime {
    br::LinkState bridge, uplink;
    bool needed = false;
    br::Move move;
};

Runtime read_runtime(const PlanInput& in, const std::string& bridge, const std::string& uplink) {
    Runtime r;
    if (in.offline()) return r;
    const br::Runner run = runner_of(in);
    const br::LinkState& b = r.bridge = br::read_link(run, bridge);
    if (b.exists && b.kind != "bridge")
        throw std::runtime_error(fmt::format("{} exists and is not a bridge ({}): choose another name", bridge, b.kind.empty() ? "a device" : b.kind));
    if (!uplink.empty()) {
        const br::LinkState& u = r.uplink = br::read_link(run, uplink);
        if (!u.exists) throw std::runtime_error(fmt::format("the uplink {} does not exist here", uplink));
        if (!u.master.empty() && u.master != bridge)
            throw std::runtime_error(fmt::format("{} is already a port of {}: release it there first", uplink, u.master));
        if (u.kind == "bridge") throw std::runtime_error(fmt::format("{} is itself a bridge", uplink));
    }
    const br::LinkState& u = r.uplink;
    r.needed = !b.exists || !b.up || (!uplink.empty() && u.master != bridge);
    r.move.bridge = bridge;
    r.move.create_bridge = !b.exists;
    if (!uplink.empty() && u.master != bridge) {
        r.move.uplink = uplink;
        r.move.mac = b.exists && b.mac == u.mac ? "" : u.mac;
        r.move.bridge_old_mac = b.exists && !r.move.mac.empty() ? b.mac : "";
        r.move.addrs = u.addrs;
        r.move.routes = u.routes;
    }
    return r;
}

// The steps around the runtime change, for the stack that owns the configuration.
struct StackSteps {
    std::vector<Step> before, persist, after;
    std::optional<Step> runtime;  // bridge.nm: NetworkManager makes the runtime change itself
    bool persist_done = true;
};

// networkd's own answer: which .network configured the uplink.
std::string networkd_uplink_file(const br::Target& t, const std::string& uplink) {
    std::string up_file;
    auto idx = t.read("/sys/class/net/" + uplink + "/ifindex");
    if (!idx) return up_file;
    std::string i = *idx;
    i.erase(std::remove_if(i.begin(), i.end(), [](char c) { return c == '\n' || c == ' '; }), i.end());
    auto st = t.read("/run/systemd/netif/links/" + i);
    if (!st) return up_file;
    std::string cur;
    for (char c : *st) {
        if (c != '\n') {
            cur += c;
            continue;
        }
        if (cur.rfind("NETWORK_FILE=", 0) == 0) up_file = cur.substr(13);
        cur.clear();
    }
    return up_file;
}

Step nm_step(const br::NmPlan& nm, const std::string& bridge, const std::string& uplink, const br::Move& move) {
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
    return s;
}

// nullopt: NetworkManager has the bridge already and nothing runs to change.
std::optional<StackSteps> stack_steps(const PlanInput& in, const br::StackInfo& stack, Runtime& rt, Plan& p) {
    const std::string& bridge = in.options.bridge;
    const std::string& uplink = in.options.uplink;
    const std::string mac = rt.uplink.mac;  // "" offline: the bridge keeps the kernel's choice
    const br::Target t = target_of(in);
    StackSteps out;
    auto add_files = [&](const br::Persist& ps) {
        out.persist_done = ps.done;
        for (const auto& f : ps.files) out.persist.push_back(write_file(f.path, f.before, f.content, 0644));
        for (const auto& n : ps.notes) p.notes.push_back(n);
    };
    switch (stack.stack) {
    case br::Stack::NetworkManager: {
        if (!stack.running || in.offline())
            throw std::runtime_error(fmt::format("{}: kvmready creates the bridge through nmcli, so NetworkManager must run", stack.evidence));
        const auto nm = br::nm_commands(runner_of(in), bridge, uplink, mac);
        out.persist_done = nm.done;
        if (nm.done && !rt.needed) return std::nullopt;
        out.runtime = nm_step(nm, bridge, uplink, rt.move);
        rt.needed = false;  // bridge.nm does both
        break;
    }
    case br::Stack::Networkd: {
        const std::string up_file = !uplink.empty() && stack.running ? networkd_uplink_file(t, uplink) : "";
        add_files(br::networkd_config(t, bridge, uplink, mac, up_file));
        if (stack.running && !out.persist_done)
            out.after.push_back(command({"networkctl", "reload"}, "make systemd-networkd read the new files"));
        break;
    }
    case br::Stack::Netplan:
        add_files(br::netplan_config(t, bridge, uplink, mac));
        if (!out.persist_done) {
            // Rendered for the next boot; the running state was changed (and
            // proven) by the ip batch already. `netplan try` is not used: it
            // cannot take back the edit of the uplink's own yaml file.
            out.after.push_back(command({"netplan", "generate"}, "render the netplan configuration for the next boot"));
            if (stack.running && stack.evidence.find("networkd") != std::string::npos)
                out.after.push_back(command({"networkctl", "reload"}, "make systemd-networkd read the rendered files"));
        }
        break;
    case br::Stack::Ifupdown:
        add_files(br::ifupdown_config(t, bridge, uplink, mac));
        if (!stack.bridge_support && !out.persist_done) {
            p.notes.push_back("ifupdown needs bridge-utils for bridge_ports (its /etc/network/if-pre-up.d/bridge hook is missing)");
            if (!in.offline())
                out.before.push_back(command({"apt-get", "install", "-y", "--no-install-recommends", "bridge-utils"},
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
    return out;
}

// bridge.link: one `ip -batch` under a watchdog and a connectivity probe.
Step link_step(const Runtime& rt, const std::string& bridge, const std::string& uplink, Plan& p) {
    const br::Move& move = rt.move;
    Step s;
    s.op = "bridge.link";
    s.runtime = true;
    s.commands = br::batch_argv(br::forward_batch(move));
    s.args = {{"bridge", bridge}, {"uplink", move.uplink}, {"probe_ms", 5000}, {"watchdog_ms", 10000}};
    if (move.uplink.empty()) {
        s.summary = rt.bridge.exists ? fmt::format("bring bridge {} up", bridge)
                                     : fmt::format("create bridge {} (STP off, no port: no existing interface is touched)", bridge);
        return s;
    }
    const std::string target = br::probe_target(move);
    s.summary = fmt::format("move {}'s {} address{} and {} route{} to {} in one `ip -batch`, then probe {}; a detached watchdog runs the "
                            "reverse batch unless the probe passes within 10 s (also if kvmready dies)",
                            uplink, move.addrs.size(), move.addrs.size() == 1 ? "" : "es", move.routes.size(),
                            move.routes.size() == 1 ? "" : "s", bridge, target.empty() ? bridge + "'s carrier" : target);
    if (target.empty()) p.notes.push_back(fmt::format("{} has no default route: the probe only waits for {} to come up", uplink, bridge));
    return s;
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
    p.repairs = {ids::net_bridges.text};
    for (const auto* f : in.wanting(ids::fix::net_bridge.text)) p.reason += (p.reason.empty() ? "" : "; ") + f->message;
    if (p.reason.empty()) p.reason = fmt::format("--bridge {}{} asked for it", bridge, uplink.empty() ? "" : " --uplink " + uplink);

    Runtime rt = read_runtime(in, bridge, uplink);
    const br::StackInfo stack = br::detect_stack(target_of(in), uplink);
    p.notes.push_back("network configuration: " + stack.evidence);
    auto steps = stack_steps(in, stack, rt, p);
    if (!steps) return std::nullopt;
    std::optional<Step> runtime_step = steps->runtime;
    if (rt.needed && !in.offline()) runtime_step = link_step(rt, bridge, uplink, p);
    if (in.offline()) p.notes.push_back("--root: only files are written; the bridge is created at the target's next boot");

    if (!runtime_step && steps->persist_done && steps->before.empty()) return std::nullopt;
    for (auto& s : steps->before) p.steps.push_back(std::move(s));
    if (runtime_step) p.steps.push_back(*runtime_step);
    for (auto& s : steps->persist) p.steps.push_back(std::move(s));
    for (auto& s : steps->after) p.steps.push_back(std::move(s));
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
    return {ids::fix::net_bridge.text,
            "Linux bridge for guests",
            {ids::net_bridges},
            "Creates the bridge named by --bridge (STP off), at runtime and in the configuration of the host's network stack "
            "(ifupdown, systemd-networkd, netplan or NetworkManager, detected). With --uplink NIC the NIC becomes its port and its addresses "
            "and routes move to the bridge in one step, under a connectivity probe and a watchdog that reverts the move if the host loses "
            "its network, even if kvmready dies; the configuration is written only after the probe passes. Without --uplink no existing "
            "interface is touched. Also brings down bridges with ports up.",
            plan_bridge};
}

}  // namespace kvmready::fix
