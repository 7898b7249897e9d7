// net.bridge for NetworkManager: nmcli commands that add the bridge and its
// port connection, moving the uplink's IP settings (run in a checkpoint).
#include "core/facts_config.hpp"
#include "fixes/bridge.hpp"
#include "fixes/bridge_text.hpp"

namespace kvmready::fix::bridge {

using namespace text;

// ---- NetworkManager -------------------------------------------------------------

NmPlan nm_commands(const Runner& run, const std::string& bridge, const std::string& uplink, const std::string& mac) {
    NmPlan p;
    auto out = [&](std::vector<std::string> argv) -> std::optional<std::string> {
        auto r = run(argv);
        if (!r.started || r.exit_code != 0) return std::nullopt;
        return r.out;
    };
    const std::string port = bridge + "-port-" + uplink;
    const auto queries = nm_queries(bridge, uplink);  // the bridge's connection, the port's, the uplink's device
    const bool have_bridge = out(queries[0]).has_value();
    const bool have_port = uplink.empty() || out(queries[1]).has_value();
    if (have_bridge && have_port) {
        p.done = true;
        return p;
    }
    std::vector<std::string> add = {"nmcli", "connection", "add", "type", "bridge", "con-name", bridge, "ifname", bridge,
                                    "bridge.stp", "no", "bridge.forward-delay", "0"};
    if (!uplink.empty()) {
        if (!mac.empty()) add.insert(add.end(), {"bridge.mac-address", mac});
        // The uplink's connection: its IP settings move to the bridge.
        auto conn = out(queries[2]);
        p.old_connection = conn ? trim(*conn) : "";
        if (!p.old_connection.empty()) {
            const auto& keys = kNmIpKeys;
            auto vals = out(nm_settings_query(p.old_connection));
            auto lines = vals ? split_lines(*vals) : std::vector<std::string>{};
            for (size_t i = 0; i < std::size(keys) && i < lines.size(); ++i) {
                std::string v = lines[i];
                // -g escapes ':' in values; nmcli takes ',' separated lists back.
                std::string un;
                for (size_t k = 0; k < v.size(); ++k) {
                    if (v[k] == '\\' && k + 1 < v.size()) ++k;
                    un += v[k];
                }
                if (!un.empty()) add.insert(add.end(), {keys[i], un});
            }
        } else {
            add.insert(add.end(), {"ipv4.method", "disabled", "ipv6.method", "ignore"});
        }
    } else {
        add.insert(add.end(), {"ipv4.method", "disabled", "ipv6.method", "ignore"});
    }
    if (!have_bridge) {
        p.apply.push_back(add);
        p.undo.insert(p.undo.begin(), {"nmcli", "connection", "delete", bridge});
    }
    if (!uplink.empty() && !have_port) {
        p.apply.push_back({"nmcli", "connection", "add", "type", "ethernet", "con-name", port, "ifname", uplink, "master", bridge,
                           "slave-type", "bridge"});
        p.undo.insert(p.undo.begin(), {"nmcli", "connection", "delete", port});
        if (!p.old_connection.empty()) {
            p.apply.push_back({"nmcli", "connection", "modify", p.old_connection, "connection.autoconnect", "no"});
            p.undo.insert(p.undo.begin(), {"nmcli", "connection", "up", p.old_connection});
            p.undo.insert(p.undo.begin(), {"nmcli", "connection", "modify", p.old_connection, "connection.autoconnect", "yes"});
        }
        p.apply.push_back({"nmcli", "connection", "up", port});
    }
    p.apply.push_back({"nmcli", "connection", "up", bridge});
    return p;
}

}  // namespace kvmready::fix::bridge
