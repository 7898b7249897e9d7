// One libvirt connection as the code that changes libvirt sees it: the
// fixes' networks and pools, smoke's volume, DHCP reservation and transient
// guest. A Target hands it out (Target::open_libvirt, host/target.hpp): the
// live and rooted targets open libvirt.so (host::LibvirtConnection,
// host/libvirt_client.hpp), a RecordingTarget writes the changes down and
// answers from its own model. Plain C++ types only: nothing above the host
// layer sees libvirt's.
//
// Every call of a real session can block for ever on a hung daemon (the
// socket accepts, nobody answers): callers open and work on a thread they can
// abandon at their deadline, or turn the keepalive on (set_keepalive, with
// Target::start_libvirt_event_loop before the open) so blocked calls return.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvmready::host {

// Why the last call failed, as libvirt said it.
struct LibvirtError {
    std::string message;
    int code = 0;
    bool not_found = false;  // no such network / pool (a lookup's normal "absent")
    bool denied = false;     // authentication or access control said no
};

enum class LibvirtKind { network, pool, volume, domain };

// One looked-up or created object, freed on scope exit by the session kind
// that made it (release). Empty: none.
class LibvirtObject {
public:
    using Release = void (*)(LibvirtKind, void*);
    LibvirtObject() = default;
    LibvirtObject(LibvirtKind kind, void* handle, Release release) : kind_(kind), p_(handle), release_(release) {}
    ~LibvirtObject() { reset(); }
    LibvirtObject(LibvirtObject&& o) noexcept : kind_(o.kind_), p_(std::exchange(o.p_, nullptr)), release_(o.release_) {}
    LibvirtObject& operator=(LibvirtObject&& o) noexcept {
        if (this != &o) {
            reset();
            kind_ = o.kind_;
            p_ = std::exchange(o.p_, nullptr);
            release_ = o.release_;
        }
        return *this;
    }
    LibvirtObject(const LibvirtObject&) = delete;
    LibvirtObject& operator=(const LibvirtObject&) = delete;
    explicit operator bool() const { return p_ != nullptr; }
    [[nodiscard]] LibvirtKind kind() const { return kind_; }
    [[nodiscard]] void* handle() const { return p_; }

private:
    void reset() {
        if (p_ && release_) release_(kind_, p_);
        p_ = nullptr;
    }
    LibvirtKind kind_ = LibvirtKind::network;
    void* p_ = nullptr;
    Release release_ = nullptr;
};

enum class DomainState { running, paused, shutdown, shutoff, crashed, other };

class LibvirtSession {
public:
    virtual ~LibvirtSession() = default;

    // The error of the last call that failed (on this thread).
    [[nodiscard]] virtual const LibvirtError& error() const = 0;
    // libvirt's error message on this thread right now (every call resets
    // it, so after a call that succeeded: "no error").
    [[nodiscard]] virtual std::string current_error() = 0;

    // A daemon that stops answering closes the connection after about
    // interval*count seconds, and every blocked call returns.
    virtual void set_keepalive(int interval_s, unsigned count) = 0;
    virtual bool alive() = 0;

    // ---- networks and pools (kind network or pool)
    // Empty when absent (error().not_found) or the lookup failed.
    virtual LibvirtObject lookup(LibvirtKind kind, const std::string& name) = 0;
    virtual LibvirtObject lookup_uuid(LibvirtKind kind, const std::string& uuid) = 0;
    virtual LibvirtObject define(LibvirtKind kind, const std::string& xml) = 0;
    virtual bool start(const LibvirtObject& o) = 0;  // virNetworkCreate / virStoragePoolCreate
    virtual bool stop(const LibvirtObject& o) = 0;   // ...Destroy
    virtual bool undefine(const LibvirtObject& o) = 0;
    virtual bool set_autostart(const LibvirtObject& o, bool on) = 0;
    virtual bool active(const LibvirtObject& o) = 0;
    virtual bool persistent(const LibvirtObject& o) = 0;
    virtual bool autostart(const LibvirtObject& o) = 0;
    virtual std::string xml(const LibvirtObject& o) = 0;  // "" on failure
    virtual bool build_pool(const LibvirtObject& pool) = 0;
    // <host mac ip/> added to or deleted from a network's live DHCP section.
    virtual bool update_dhcp_host(const LibvirtObject& network, bool add, const std::string& host_xml) = 0;

    // ---- volumes
    virtual LibvirtObject create_volume(const LibvirtObject& pool, const std::string& xml) = 0;
    virtual std::string volume_path(const LibvirtObject& vol) = 0;
    // data written from offset 0 through a stream.
    virtual bool upload(const LibvirtObject& vol, const std::string& data) = 0;
    virtual bool delete_volume(const LibvirtObject& vol) = 0;

    // ---- domains
    // Running domains as (name, XML); nullopt when listing failed.
    virtual std::optional<std::vector<std::pair<std::string, std::string>>> active_domains() = 0;
    // A transient domain; autodestroy: libvirt destroys it when this
    // connection closes (also when kvmready is killed).
    virtual LibvirtObject create_domain(const std::string& xml, bool autodestroy) = 0;
    virtual std::optional<DomainState> domain_state(const LibvirtObject& dom) = 0;
    virtual bool destroy_domain(const LibvirtObject& dom) = 0;
};

}  // namespace kvmready::host
