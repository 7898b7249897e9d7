// kvmready's one libvirt client for changing things: the fixes' networks and
// pools, smoke's volume, DHCP reservation and transient guest. It uses the
// same library table as the probe's query (host/libvirt_api.hpp: libvirt.so
// loaded once, on first use), and keeps libvirt's types out of everything
// above the host layer. The probe reads through host::LibvirtReader
// (host/libvirt_reader.hpp), whose libvirt.so implementation is this class's
// read calls; the other implementation, the wire client, only reads.
//
// Every call can block for ever on a hung daemon (the socket accepts, nobody
// answers): callers open and work on a thread they can abandon at their
// deadline, or turn the keepalive on (set_keepalive) so blocked calls return.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "host/libvirt.hpp"

namespace kvmready::host {

// Why the last call failed, as libvirt said it.
struct LibvirtError {
    std::string message;
    int code = 0;
    bool not_found = false;  // no such network / pool (a lookup's normal "absent")
    bool denied = false;     // authentication or access control said no
};

enum class LibvirtKind { network, pool, volume, domain };

// One looked-up or created object, freed on scope exit. Empty: none.
class LibvirtObject {
public:
    LibvirtObject() = default;
    LibvirtObject(LibvirtKind kind, void* handle) : kind_(kind), p_(handle) {}
    ~LibvirtObject();
    LibvirtObject(LibvirtObject&& o) noexcept : kind_(o.kind_), p_(std::exchange(o.p_, nullptr)) {}
    LibvirtObject& operator=(LibvirtObject&& o) noexcept;
    LibvirtObject(const LibvirtObject&) = delete;
    LibvirtObject& operator=(const LibvirtObject&) = delete;
    explicit operator bool() const { return p_ != nullptr; }
    [[nodiscard]] LibvirtKind kind() const { return kind_; }
    [[nodiscard]] void* handle() const { return p_; }

private:
    LibvirtKind kind_ = LibvirtKind::network;
    void* p_ = nullptr;
};

enum class DomainState { running, paused, shutdown, shutoff, crashed, other };

class LibvirtConnection {
public:
    // "" when libvirt's client library can be used, else why not (not
    // installed, too old, or kvmready built without libvirt's headers).
    static std::string unavailable();
    // libvirt's default event loop on a thread of its own, once per process
    // (the keepalive needs it).
    static void start_event_loop();
    // A read-write connection (virConnectOpen). Blocks: see above.
    // nullptr with *error on failure.
    static std::unique_ptr<LibvirtConnection> open(const std::string& uri, LibvirtError* error);

    // A read-only connection (virConnectOpenReadOnly), for who may not manage.
    static std::unique_ptr<LibvirtConnection> open_read_only(const std::string& uri, LibvirtError* error);

    ~LibvirtConnection();
    LibvirtConnection(const LibvirtConnection&) = delete;
    LibvirtConnection& operator=(const LibvirtConnection&) = delete;

    // The error of the last call that failed (on this thread).
    [[nodiscard]] const LibvirtError& error() const { return error_; }
    // libvirt's error message on this thread right now (every call resets
    // it, so after a call that succeeded: "no error").
    [[nodiscard]] static std::string current_error();

    // A daemon that stops answering closes the connection after about
    // interval*count seconds, and every blocked call returns.
    void set_keepalive(int interval_s, unsigned count);
    bool alive();

    // ---- what the probe reads (src/host/libvirt_live.cpp). These leave
    // error() alone and say why in *error ("" when answered): the probe
    // calls them from two threads on one connection.
    std::string hypervisor_type();
    std::optional<unsigned long> library_version();
    std::optional<unsigned long> hypervisor_version();
    std::string capabilities(std::string* error);
    std::string domain_capabilities(const std::string& virttype, std::string* error);
    std::vector<LibvirtNetwork> list_networks(std::string* error);
    std::vector<LibvirtPool> list_pools(std::string* error);

    // ---- networks and pools (kind network or pool)
    // Empty when absent (error().not_found) or the lookup failed.
    LibvirtObject lookup(LibvirtKind kind, const std::string& name);
    LibvirtObject lookup_uuid(LibvirtKind kind, const std::string& uuid);
    LibvirtObject define(LibvirtKind kind, const std::string& xml);
    bool start(const LibvirtObject& o);      // virNetworkCreate / virStoragePoolCreate
    bool stop(const LibvirtObject& o);       // ...Destroy
    bool undefine(const LibvirtObject& o);
    bool set_autostart(const LibvirtObject& o, bool on);
    bool active(const LibvirtObject& o);
    bool persistent(const LibvirtObject& o);
    bool autostart(const LibvirtObject& o);
    std::string xml(const LibvirtObject& o); // "" on failure
    bool build_pool(const LibvirtObject& pool);
    // <host mac ip/> added to or deleted from a network's live DHCP section.
    bool update_dhcp_host(const LibvirtObject& network, bool add, const std::string& host_xml);

    // ---- volumes
    LibvirtObject create_volume(const LibvirtObject& pool, const std::string& xml);
    std::string volume_path(const LibvirtObject& vol);
    // data written from offset 0 through a stream.
    bool upload(const LibvirtObject& vol, const std::string& data);
    bool delete_volume(const LibvirtObject& vol);

    // ---- domains
    // Running domains as (name, XML); nullopt when listing failed.
    std::optional<std::vector<std::pair<std::string, std::string>>> active_domains();
    // A transient domain; autodestroy: libvirt destroys it when this
    // connection closes (also when kvmready is killed).
    LibvirtObject create_domain(const std::string& xml, bool autodestroy);
    std::optional<DomainState> domain_state(const LibvirtObject& dom);
    bool destroy_domain(const LibvirtObject& dom);

private:
    explicit LibvirtConnection(void* conn) : c_(conn) {}
    bool failed();  // records the error; returns false
    LibvirtError error_;
    void* c_;
};

}  // namespace kvmready::host
