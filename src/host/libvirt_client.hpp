// kvmready's libvirt.so client: the real LibvirtSession (host/libvirt_session.hpp)
// the live and rooted targets hand out for changing things (the fixes'
// networks and pools, smoke's volume, DHCP reservation and transient guest),
// plus the reads of the probe's library path. It uses the same library table
// as the probe's query (host/libvirt_api.hpp: libvirt.so loaded once, on
// first use), and keeps libvirt's types out of everything above the host
// layer. The probe reads through host::LibvirtReader
// (host/libvirt_reader.hpp), whose libvirt.so implementation is this class's
// read calls; the other implementation, the wire client, only reads. Only
// src/host names this class: everything else opens a session through its
// Target.
//
// Every call can block for ever on a hung daemon: see libvirt_session.hpp.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "host/libvirt.hpp"
#include "host/libvirt_session.hpp"

namespace kvmready::host {

class LibvirtConnection final : public LibvirtSession {
public:
    // "" when libvirt's client library can be used, else why not (not
    // installed, too old, or kvmready built without libvirt's headers).
    static std::string unavailable();
    // libvirt's default event loop on a thread of its own, once per process
    // (the keepalive needs it).
    static void start_event_loop();
    // A read-write connection (virConnectOpen). Blocks: see above. Outside
    // this class, through Target::open_libvirt.
    // nullptr with *error on failure.
    static std::unique_ptr<LibvirtConnection> open(const std::string& uri, LibvirtError* error);

    // A read-only connection (virConnectOpenReadOnly), for who may not manage.
    static std::unique_ptr<LibvirtConnection> open_read_only(const std::string& uri, LibvirtError* error);

    ~LibvirtConnection() override;
    LibvirtConnection(const LibvirtConnection&) = delete;
    LibvirtConnection& operator=(const LibvirtConnection&) = delete;

    // ---- what the probe reads (src/host/libvirt_reader.cpp). These leave
    // error() alone and say why in *error ("" when answered): the probe
    // calls them from two threads on one connection.
    std::string hypervisor_type();
    std::optional<unsigned long> library_version();
    std::optional<unsigned long> hypervisor_version();
    std::string capabilities(std::string* error);
    std::string domain_capabilities(const std::string& virttype, std::string* error);
    std::vector<LibvirtNetwork> list_networks(std::string* error);
    std::vector<LibvirtPool> list_pools(std::string* error);

    // ---- the session (host/libvirt_session.hpp says what each does)
    [[nodiscard]] const LibvirtError& error() const override { return error_; }
    [[nodiscard]] std::string current_error() override;
    void set_keepalive(int interval_s, unsigned count) override;
    bool alive() override;
    LibvirtObject lookup(LibvirtKind kind, const std::string& name) override;
    LibvirtObject lookup_uuid(LibvirtKind kind, const std::string& uuid) override;
    LibvirtObject define(LibvirtKind kind, const std::string& xml) override;
    bool start(const LibvirtObject& o) override;
    bool stop(const LibvirtObject& o) override;
    bool undefine(const LibvirtObject& o) override;
    bool set_autostart(const LibvirtObject& o, bool on) override;
    bool active(const LibvirtObject& o) override;
    bool persistent(const LibvirtObject& o) override;
    bool autostart(const LibvirtObject& o) override;
    std::string xml(const LibvirtObject& o) override;
    bool build_pool(const LibvirtObject& pool) override;
    bool update_dhcp_host(const LibvirtObject& network, bool add, const std::string& host_xml) override;
    LibvirtObject create_volume(const LibvirtObject& pool, const std::string& xml) override;
    std::string volume_path(const LibvirtObject& vol) override;
    bool upload(const LibvirtObject& vol, const std::string& data) override;
    bool delete_volume(const LibvirtObject& vol) override;
    std::optional<std::vector<std::pair<std::string, std::string>>> active_domains() override;
    LibvirtObject create_domain(const std::string& xml, bool autodestroy) override;
    std::optional<DomainState> domain_state(const LibvirtObject& dom) override;
    bool destroy_domain(const LibvirtObject& dom) override;

private:
    explicit LibvirtConnection(void* conn) : c_(conn) {}
    bool failed();  // records the error; returns false
    LibvirtError error_;
    void* c_;
};

}  // namespace kvmready::host
