// What the libvirt daemon says, as one snapshot: recorded hosts and support
// bundles carry it, so the libvirt checks re-run offline.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::host {

struct LibvirtNetwork {
    std::string name;
    bool active = false;
    bool autostart = false;
    bool persistent = false;
    std::string xml;                 // virNetworkGetXMLDesc
};

struct LibvirtPool {
    std::string name;
    bool active = false;
    bool autostart = false;
    bool persistent = false;
    int state = -1;                  // virStoragePoolState
    uint64_t capacity = 0, allocation = 0, available = 0;
    std::string xml;                 // virStoragePoolGetXMLDesc
};

struct LibvirtSnapshot {
    std::string uri;
    bool attempted = false;
    std::string not_attempted_reason;
    bool connected = false;          // a connection (read-write or read-only) worked
    bool read_write = false;         // a read-write connection worked (may manage domains)
    std::string read_write_error;
    std::string error;               // why the connection failed
    bool timed_out = false;          // the deadline passed before every call answered (see unanswered)
    double elapsed_ms = 0;
    std::string daemon;              // "libvirtd", "virtqemud" or "" (the process behind the socket, else the socket's name)
    std::string hypervisor_type;     // virConnectGetType
    uint64_t library_version = 0;    // virConnectGetLibVersion (daemon side), 1000000*major+1000*minor+release
    uint64_t hypervisor_version = 0; // virConnectGetVersion (QEMU)
    std::string capabilities_xml;
    std::string domcaps_kvm_xml;     // virConnectGetDomainCapabilities(virttype "kvm")
    std::string domcaps_kvm_error;
    std::string domcaps_qemu_xml;    // the TCG fallback
    std::vector<LibvirtNetwork> networks;
    std::vector<LibvirtPool> pools;
    // Who listens on the local socket the URI leads to (SO_PEERCRED), found
    // before libvirt is asked anything: names a stopped or hung daemon.
    std::string socket_path;
    std::string socket_error;        // connect(2) to socket_path failed: strerror
    int daemon_pid = 0;
    std::string daemon_comm;         // /proc/PID/comm
    std::string daemon_state;        // /proc/PID/stat state: R, S, D, T (stopped), t (traced), Z
    std::string domcaps_qemu_error;
    std::string capabilities_error;
    std::string networks_error, pools_error;
    // Calls that had not answered when the deadline passed, in query order;
    // everything before them is filled in.
    std::vector<std::string> unanswered;
    double connect_ms = 0;           // opening the connection (read-write, else read-only)
    // Who asked: "wire" (kvmready's own client of libvirt's RPC protocol,
    // local sockets with auth none) or "libvirt.so" (libvirt's client library).
    std::string client;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LibvirtNetwork, name, active, autostart, persistent, xml)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LibvirtPool, name, active, autostart, persistent, state, capacity, allocation,
                                                available, xml)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LibvirtSnapshot, uri, attempted, not_attempted_reason, connected, read_write,
                                                read_write_error, error, timed_out, elapsed_ms, daemon, hypervisor_type,
                                                library_version, hypervisor_version, capabilities_xml, domcaps_kvm_xml,
                                                domcaps_kvm_error, domcaps_qemu_xml, networks, pools, socket_path, socket_error,
                                                daemon_pid, daemon_comm, daemon_state, domcaps_qemu_error, capabilities_error,
                                                networks_error, pools_error, unanswered, connect_ms, client)

// The local UNIX socket a libvirt URI connects to ("" for remote transports
// and session URIs): socket= wins, else virtqemud's socket when it exists,
// else libvirtd's. exists(path) is asked about the modular socket.
std::string libvirt_socket_for(const std::string& uri, bool (*exists)(const std::string&));

// Live query with a hard deadline: a dead daemon fails fast, a hung one
// (SIGSTOPped, deadlocked) is abandoned after timeout_ms; calls that answered
// before the deadline are kept.
LibvirtSnapshot query_libvirt(const std::string& uri, int timeout_ms);

// The same query in two halves: started now (on its own thread), its answer
// taken later, so the caller works while the daemon does. The deadline
// counts from the start.
class LibvirtPending {
public:
    virtual ~LibvirtPending() = default;
    virtual LibvirtSnapshot wait() = 0;
};
std::unique_ptr<LibvirtPending> start_libvirt_query(const std::string& uri, int timeout_ms);

// Which client query_libvirt uses: automatic = the wire client where it
// applies, libvirt.so for the rest. The others exist for tests that compare
// the two (wire: no fallback; a declined query says why in `error`).
enum class LibvirtClient { automatic, wire, library };
LibvirtSnapshot query_libvirt(const std::string& uri, int timeout_ms, LibvirtClient client);

// True once a query was abandoned on a hung daemon: its thread may still sit
// inside libvirt, so the process must leave with _Exit, not exit.
bool libvirt_abandoned();

}  // namespace kvmready::host
