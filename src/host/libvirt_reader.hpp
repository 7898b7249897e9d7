// What the probe reads from a libvirt daemon, behind one interface with two
// implementations:
//
//   wire        kvmready's own client of libvirt's RPC protocol on the local
//               socket (host/libvirt_wire.hpp): nothing to load, pipelined;
//               declines what it does not handle (remote transports, SASL,
//               any reply it does not expect).
//   libvirt.so  libvirt's client library (host/libvirt_client.hpp): every
//               transport and authentication; ~8 ms to load.
//
// The probe picks one in one place (host/libvirt_live.cpp: the wire reader
// first, libvirt.so for whatever it declines) and runs the same reads on
// either (read_libvirt below), so the snapshot does not depend on which
// client answered except for its `client` field.
//
// Reading only. Changes (define, start, destroy networks, pools, volumes,
// domains) go through a target's libvirt session (Target::open_libvirt,
// host/libvirt_session.hpp), whose live one is libvirt.so alone: the wire
// client is read-only by design. Its correctness is held to libvirt.so by a
// test on the read calls it makes; a write path would need the same proof for
// every call, stream and event, and buys nothing (fixes and smoke load
// libvirt.so anyway, and their time goes to the daemon, not to loading).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/libvirt.hpp"

namespace kvmready::host {

using LibvirtClock = std::chrono::steady_clock;

// Reads are queued, then run(): each answer is handed to its callback as it
// arrives (the wire client pipelines them all; libvirt.so runs networks and
// pools on a thread beside the slow capability calls). A callback that is
// not called means the read did not answer (timed out or declined).
class LibvirtReader {
public:
    virtual ~LibvirtReader() = default;
    // The snapshot's `client`: "wire" or "libvirt.so".
    [[nodiscard]] virtual const char* client() const = 0;

    // The hypervisor type and the daemon's library version, together.
    virtual void version(std::function<void(std::string type, std::optional<uint64_t> library)> done) = 0;
    virtual void networks(std::function<void(std::vector<LibvirtNetwork>, std::string error)> done) = 0;
    virtual void pools(std::function<void(std::vector<LibvirtPool>, std::string error)> done) = 0;
    // virttype "kvm" or "qemu" (TCG).
    virtual void domain_capabilities(const std::string& virttype, std::function<void(std::string xml, std::string error)> done) = 0;
    virtual void capabilities(std::function<void(std::string xml, std::string error)> done) = 0;
    virtual void hypervisor_version(std::function<void(std::optional<uint64_t>)> done) = 0;

    enum class Status {
        answered,   // every read answered (errors included, as libvirt.so words them)
        timed_out,  // the deadline passed: what answered was delivered, the rest not
        declined,   // not this client's case (*reason set): ask libvirt.so
    };
    virtual Status run(LibvirtClock::time_point deadline, std::string* reason) = 0;
};

// Opening a reader: one connection, read-write when this user may have it
// (managing domains and domain capabilities need it), else read-only.
struct LibvirtReaderOpen {
    enum class Status {
        opened,       // reader set
        refused,      // the daemon said no (error: its words, read-only attempt)
        unavailable,  // libvirt.so cannot be used (error says why)
        timed_out,    // wire: the deadline passed while opening
        declined,     // wire: not its case (*reason set)
    };
    Status status = Status::refused;
    std::unique_ptr<LibvirtReader> reader;
    std::string client;            // "wire" or "libvirt.so"
    std::string error;
    std::string read_write_error;  // opened read-only: why not read-write
    double connect_ms = 0;
};

// kvmready's RPC client (host/libvirt_wire.cpp). connected_fd: a non-blocking
// connection to socket_path already made (by the peer check), or -1; owned
// (and closed) by the reader from here on.
LibvirtReaderOpen open_wire_reader(const std::string& uri, const std::string& socket_path, LibvirtClock::time_point deadline,
                                   std::string* reason, int connected_fd = -1);
// libvirt's client library (host/libvirt_reader.cpp). Blocks on a hung
// daemon: callers run it on a thread they can abandon.
LibvirtReaderOpen open_library_reader(const std::string& uri);

// How the live query publishes: the step's name and how it fills the snapshot.
using LibvirtPublish = std::function<void(const std::string& step, const std::function<void(LibvirtSnapshot&)>& fill)>;

// The probe's read, the same on either client: publishes "open", then (when
// opened) "read-write", "version", "networks", "pools", "domcaps-kvm",
// "domcaps-qemu", "capabilities", "hypervisor-version" as each answers, and
// closes the reader. A refused or unavailable open is answered (published);
// timed_out and declined publish nothing from the open on.
LibvirtReader::Status read_libvirt(LibvirtReaderOpen opened, const LibvirtPublish& publish, LibvirtClock::time_point deadline,
                                   std::string* reason);

}  // namespace kvmready::host
