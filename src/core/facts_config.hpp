// ConfigFacts: what the fixes plan from, beyond the checks' facts. The
// configuration files a fix edits (their content is the "before" of its diff),
// the files and directories that say how this host is set up (sysctl.d, the
// network stack's files, init scripts), and the runtime state a plan depends
// on (routes and addresses for a free subnet, PID 1, daemon pidfiles, the
// links of --bridge/--uplink). The probe collects them (src/core/probe_config.cpp)
// through the Host, so they are recorded by `check --record` and `report` and
// replayed from --root trees and bundles; planners read only these, never the
// host, so a plan made from a recording is the plan made live.
//
// Kept as the exact paths, listings and program outputs the planners look at:
// a lookup of something the probe did not collect is an internal error (it
// throws), never a silent "absent".
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/facts_packages.hpp"
#include "core/json_optional.hpp"
#include "host/process.hpp"

namespace kvmready {

struct ConfigFile {
    std::optional<std::string> content;  // nullopt: does not exist (or unreadable)
    // Why a fix must not edit it in place ("...: refusing to follow a symbolic
    // link"); only for the files fixes write. "" when it is safe.
    std::string error;
};

// A helper program's answer, as the planners use it.
struct CommandOutput {
    bool started = false;
    int exit_code = -1;
    std::string out;
};

struct ConfigFacts {
    bool probed = false;                                  // false: not asked for (check), or an older recording
    std::map<std::string, ConfigFile> files;              // absolute path -> content
    std::map<std::string, std::vector<std::string>> dirs;  // directory -> sorted names ([] when missing)
    std::map<std::string, std::string> types;             // path -> stat type ("dir", "file", ...; "" missing)
    std::map<std::string, CommandOutput> commands;        // argv joined by ' ' -> output
    PackageFacts packages;                                // package manager and installed packages (pkg.virt-stack)

    // Lookups; each throws std::runtime_error when the probe did not collect it.
    [[nodiscard]] const ConfigFile& file(const std::string& path) const;
    [[nodiscard]] const std::vector<std::string>& dir(const std::string& path) const;
    [[nodiscard]] const std::string& type(const std::string& path) const;
    [[nodiscard]] bool exists(const std::string& path) const { return !type(path).empty(); }
    [[nodiscard]] host::RunResult command(const std::vector<std::string>& argv) const;
    static std::string command_key(const std::vector<std::string>& argv);
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ConfigFile, content, error)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CommandOutput, started, exit_code, out)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ConfigFacts, probed, files, dirs, types, commands, packages)

// ---- shared by the probe and the fixes (one copy) --------------------------

// The libvirt daemons a fix may start, and where their binaries may live.
inline constexpr const char* kLibvirtDaemons[] = {"libvirtd", "virtlogd", "virtqemud", "virtnetworkd", "virtstoraged"};
inline constexpr const char* kSbinDirs[] = {"/usr/sbin/", "/usr/local/sbin/", "/sbin/", "/usr/bin/"};
// Directories of sysctl configuration the boot applies (with /etc/sysctl.conf).
inline constexpr const char* kSysctlDirs[] = {"/usr/lib/sysctl.d", "/etc/sysctl.d"};
// systemd-networkd's unit directories, in override order.
inline constexpr const char* kNetworkdDirs[] = {"/etc/systemd/network", "/run/systemd/network", "/usr/lib/systemd/network",
                                                "/lib/systemd/network"};
inline constexpr const char* kNetplanDirs[] = {"/etc/netplan", "/run/netplan", "/lib/netplan"};
// The settings of a NetworkManager connection that move to a bridge.
inline constexpr const char* kNmIpKeys[] = {"ipv4.method", "ipv4.addresses", "ipv4.gateway", "ipv4.dns", "ipv4.dns-search", "ipv4.routes",
                                            "ipv6.method", "ipv6.addresses", "ipv6.gateway", "ipv6.dns", "ipv6.dns-search", "ipv6.routes"};

// `ip -j` queries for one link: link, addresses, IPv4 and IPv6 routes.
std::vector<std::vector<std::string>> link_queries(const std::string& name);
// nmcli queries net.bridge makes for BRIDGE (and UPLINK); the settings of the
// uplink's connection are asked for once its name is known.
std::vector<std::vector<std::string>> nm_queries(const std::string& bridge, const std::string& uplink);
std::vector<std::string> nm_settings_query(const std::string& connection);

// ifupdown: /etc/network/interfaces and every file it sources, in order, read
// through read/list (the probe passes the host, the fix passes the facts).
using ReadText = std::function<std::optional<std::string>(const std::string&)>;
using ListDir = std::function<std::vector<std::string>(const std::string&)>;
std::vector<std::pair<std::string, std::string>> ifupdown_files(const ReadText& read, const ListDir& list);

// The PID in a daemon's pidfile text (nullopt: not a number, or PID 0/1).
std::optional<int> pidfile_pid(const std::string& text);

}  // namespace kvmready
