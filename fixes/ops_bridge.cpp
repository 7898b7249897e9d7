// net.bridge ops: the code that changes the running network.
//
// bridge.link   creates the bridge and, with an uplink, moves the uplink's
//               addresses and routes to it in one `ip -batch`, under a
//               watchdog: a forked child in its own session that runs the
//               reverse batch unless this process confirms a connectivity
//               probe before the deadline. The child reverts at once when
//               this process dies (its end of the pipe closes), so a SIGKILL
//               mid-step leaves the host as it was.
// bridge.nm     the same under NetworkManager: nmcli commands inside a
//               checkpoint that NetworkManager itself rolls back unless it
//               is destroyed in time.
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "fixes/bridge.hpp"
#include "fixes/fixes.hpp"
#include "host/link_probe.hpp"
#include "host/nofollow_fs.hpp"
#include "host/process.hpp"
#include "host/target.hpp"
#include "host/watchdog.hpp"
#include "util/text.hpp"

namespace kvmready::fix {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace br = bridge;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

host::RunResult run(OpContext& ctx, const std::vector<std::string>& argv, int timeout_ms = 10000) { return ctx.sys().run(argv, timeout_ms); }

void log(OpContext& ctx, const std::string& s) {
    if (ctx.log) ctx.log(s);
}

std::string write_batch(const std::string& path, const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    host::write_file_durably(path, text, 0644);
    return path;
}

std::string step_file(const OpContext& ctx, const std::string& suffix) {
    return fmt::format("{}/step-{}-{}", ctx.run_dir.empty() ? "/tmp" : ctx.run_dir, ctx.step_index, suffix);
}

std::string find_program(const std::string& name) {
    for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
        const std::string p = std::string(dir) + "/" + name;
        if (::access(p.c_str(), X_OK) == 0) return p;
    }
    throw std::runtime_error(name + " not found (iproute2 is needed)");
}

// ---- bridge.link -------------------------------------------------------------

br::Runner runner(OpContext& ctx) {
    return [&ctx](const std::vector<std::string>& argv) { return run(ctx, argv); };
}

int arg_int(const Step& s, const char* key, int def) { return s.args.contains(key) && s.args[key].is_number() ? s.args[key].get<int>() : def; }

json link_prepare(const Step& step, OpContext& ctx) {
    const std::string bridge = step.args.value("bridge", "");
    const std::string uplink = step.args.value("uplink", "");
    if (bridge.empty()) throw std::runtime_error("bridge.link: no bridge name");
    const auto r = runner(ctx);
    const br::LinkState b = br::read_link(r, bridge);
    br::Move m;
    m.bridge = bridge;
    m.uplink = uplink;
    m.create_bridge = !b.exists;
    if (b.exists && b.kind != "bridge") throw std::runtime_error(fmt::format("{} exists and is not a bridge ({})", bridge, b.kind.empty() ? "a device" : b.kind));
    if (!uplink.empty()) {
        const br::LinkState u = br::read_link(r, uplink);
        if (!u.exists) throw std::runtime_error(fmt::format("the uplink {} does not exist", uplink));
        if (u.master == bridge) {
            m.uplink.clear();  // done already
        } else {
            if (!u.master.empty()) throw std::runtime_error(fmt::format("{} is already a port of {}", uplink, u.master));
            if (u.kind == "bridge") throw std::runtime_error(fmt::format("{} is itself a bridge", uplink));
            m.mac = u.mac;
            if (b.exists && b.mac != u.mac) m.bridge_old_mac = b.mac;
            if (b.exists && b.mac == u.mac) m.mac.clear();
            m.addrs = u.addrs;
            m.routes = u.routes;
        }
    }
    json undo = {{"move", m}, {"bridge_existed", b.exists}};
    undo["forward_file"] = write_batch(step_file(ctx, "bridge-forward.batch"), br::forward_batch(m));
    undo["reverse_file"] = write_batch(step_file(ctx, "bridge-reverse.batch"), br::reverse_batch(m));
    undo["watchdog_log"] = step_file(ctx, "bridge-watchdog.log");
    return undo;
}

void link_apply(const Step& step, OpContext& ctx, json& undo) {
    const br::Move m = undo.at("move").get<br::Move>();
    const std::string fwd = undo.at("forward_file"), rev = undo.at("reverse_file");
    if (m.uplink.empty()) {
        if (!m.create_bridge && host::link_operstate(m.bridge) != "down") {
            // Exists and up (or a port's carrier decides): make sure it is up.
            auto r = run(ctx, {"ip", "link", "set", "dev", m.bridge, "up"});
            if (!r.started || r.exit_code != 0) throw std::runtime_error("ip link set " + m.bridge + " up: " + r.err + r.error);
            return;
        }
        auto r = run(ctx, {"ip", "-batch", fwd});
        if (!r.started || r.exit_code != 0) {
            (void)run(ctx, {"ip", "-force", "-batch", rev});
            throw std::runtime_error(fmt::format("creating {} failed: {}{}", m.bridge, r.err, r.error));
        }
        log(ctx, fmt::format("created bridge {} (no port: no existing interface touched)", m.bridge));
        return;
    }

    const int probe_ms = arg_int(step, "probe_ms", 5000);
    const int deadline_ms = arg_int(step, "watchdog_ms", probe_ms + 5000);
    const std::string target = step.args.value("probe", std::string()).empty() ? br::probe_target(m) : step.args.value("probe", std::string());
    host::Watchdog w = host::start_watchdog({find_program("ip"), "-force", "-batch", rev}, deadline_ms, undo.value("watchdog_log", step_file(ctx, "bridge-watchdog.log")));
    log(ctx, fmt::format("watchdog {} armed: it reverts {} -> {} within {} ms unless the probe passes", w.pid, m.uplink, m.bridge, deadline_ms));
    if (const char* hold = std::getenv("KVMREADY_TEST_BRIDGE_HOLD_MS")) {
        // Tests only: a window to kill kvmready between arming and moving.
        std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(hold)));
    }
    const auto t0 = Clock::now();
    auto r = run(ctx, {"ip", "-batch", fwd});
    const double batch_ms = ms_since(t0);
    if (!r.started || r.exit_code != 0) {
        const auto t1 = Clock::now();
        const int code = host::finish_watchdog(w, 'r');
        throw std::runtime_error(fmt::format("moving {} to {} failed ({}{}); rolled back in {:.0f} ms{}", m.uplink, m.bridge, util::trim(r.err), r.error,
                                             ms_since(t1), code == host::kWatchdogRevertedOk ? "" : " (the reverse batch reported errors)"));
    }
    log(ctx, fmt::format("moved {} address{} and {} route{} from {} to {} in {:.1f} ms; probing {}", m.addrs.size(), m.addrs.size() == 1 ? "" : "es",
                         m.routes.size(), m.routes.size() == 1 ? "" : "s", m.uplink, m.bridge, batch_ms, target.empty() ? m.bridge + "'s carrier" : target));
    const host::LinkProbe pr = host::probe_link(m.bridge, target, probe_ms);
    undo["batch_ms"] = batch_ms;
    undo["probe_ms"] = pr.ms;
    if (!pr.ok) {
        const auto t1 = Clock::now();
        const int code = host::finish_watchdog(w, 'r');
        throw std::runtime_error(fmt::format("connectivity lost: {}; rolled back ({} back on {}) in {:.0f} ms{}", pr.how, m.uplink, m.uplink,
                                             ms_since(t1), code == host::kWatchdogRevertedOk ? "" : " (the reverse batch reported errors)"));
    }
    const int code = host::finish_watchdog(w, 'c');
    if (code != host::kWatchdogConfirmed)
        throw std::runtime_error(fmt::format("the watchdog rolled the move back at its {} ms deadline before the probe's answer reached it ({})",
                                             deadline_ms, pr.how));
    log(ctx, fmt::format("connectivity kept: {} ({:.0f} ms after the move, {:.0f} ms after it started)", pr.how, pr.ms, batch_ms + pr.ms));
}

void link_undo(const json& undo, OpContext& ctx) {
    if (!undo.contains("move")) return;
    const br::Move m = undo.at("move").get<br::Move>();
    const auto r = runner(ctx);
    const br::LinkState b = br::read_link(r, m.bridge);
    if (!b.exists) {
        log(ctx, fmt::format("{} is gone already", m.bridge));
        if (!m.uplink.empty()) (void)run(ctx, {"ip", "link", "set", "dev", m.uplink, "up"});
        return;
    }
    if (!m.uplink.empty()) {
        const br::LinkState u = br::read_link(r, m.uplink);
        if (u.master == m.bridge) {
            const std::string rev = undo.value("reverse_file", std::string());
            std::string file = rev;
            if (rev.empty() || ::access(rev.c_str(), R_OK) != 0) file = write_batch(step_file(ctx, "bridge-undo.batch"), br::reverse_batch(m));
            auto res = run(ctx, {"ip", "-force", "-batch", file});
            log(ctx, fmt::format("moved {}'s addresses and routes back from {}{}", m.uplink, m.bridge,
                                 res.exit_code == 0 ? "" : " (some lines failed: " + res.err + ")"));
            return;
        }
        log(ctx, fmt::format("{} is not a port of {} (the watchdog reverted the move, or someone else did)", m.uplink, m.bridge));
    }
    if (m.create_bridge) {
        auto res = run(ctx, {"ip", "link", "del", "dev", m.bridge});
        if (!res.started || res.exit_code != 0) throw std::runtime_error("ip link del " + m.bridge + ": " + res.err + res.error);
        log(ctx, "removed bridge " + m.bridge);
    }
}

// ---- bridge.nm -----------------------------------------------------------------

std::vector<std::vector<std::string>> argvs(const json& j) {
    std::vector<std::vector<std::string>> out;
    for (const auto& a : j) out.push_back(a.get<std::vector<std::string>>());
    return out;
}

const std::vector<std::string> kNmBus = {"busctl", "call", "org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager",
                                         "org.freedesktop.NetworkManager"};

json nm_prepare(const Step& step, OpContext&) { return {{"undo", step.args.value("undo", json::array())}, {"bridge", step.args.value("bridge", "")}}; }

void nm_apply(const Step& step, OpContext& ctx, json&) {
    const int rollback_s = arg_int(step, "rollback_s", 30);
    const int probe_ms = arg_int(step, "probe_ms", 5000);
    // Checkpoint over all devices; NetworkManager rolls back by itself after
    // rollback_s unless destroyed, deleting the connections made since
    // (flags: DELETE_NEW_CONNECTIONS | DISCONNECT_NEW_DEVICES).
    auto create = kNmBus;
    create.insert(create.end(), {"CheckpointCreate", "aouu", "0", std::to_string(rollback_s), "6"});
    auto c = run(ctx, create);
    if (!c.started || c.exit_code != 0) throw std::runtime_error("NetworkManager checkpoint: " + c.err + c.error);
    std::string cp;
    if (auto q = c.out.find('"'); q != std::string::npos) cp = c.out.substr(q + 1, c.out.find('"', q + 1) - q - 1);
    if (cp.empty()) throw std::runtime_error("NetworkManager checkpoint: no path in " + c.out);
    auto rollback = [&](const std::string& why) {
        auto rb = kNmBus;
        rb.insert(rb.end(), {"CheckpointRollback", "o", cp});
        (void)run(ctx, rb, 60000);
        throw std::runtime_error(why + "; NetworkManager rolled back to checkpoint " + cp);
    };
    const auto t0 = Clock::now();
    for (const auto& a : argvs(step.args.value("apply", json::array()))) {
        auto r = run(ctx, a, 60000);
        if (!r.started || r.exit_code != 0) rollback(quote_argv(a) + " failed: " + r.err + r.error);
    }
    const std::string bridge = step.args.value("bridge", "");
    const std::string target = step.args.value("probe", "");
    const host::LinkProbe pr = host::probe_link(bridge, target, probe_ms);
    if (!pr.ok) rollback("connectivity lost: " + pr.how);
    auto d = kNmBus;
    d.insert(d.end(), {"CheckpointDestroy", "o", cp});
    auto dr = run(ctx, d);
    if (!dr.started || dr.exit_code != 0) rollback("could not confirm the checkpoint in time: " + dr.err);
    log(ctx, fmt::format("connectivity kept: {} ({:.0f} ms after the first nmcli command)", pr.how, ms_since(t0)));
}

void nm_undo(const json& undo, OpContext& ctx) {
    for (const auto& a : argvs(undo.value("undo", json::array()))) {
        auto r = run(ctx, a, 60000);
        log(ctx, quote_argv(a) + (r.exit_code == 0 ? "" : ": " + r.err));
    }
}

}  // namespace

void register_bridge_ops() {
    register_op("bridge.link", Op{link_prepare, link_apply, link_undo});
    register_op("bridge.nm", Op{nm_prepare, nm_apply, nm_undo});
}

}  // namespace kvmready::fix
