#include "host/libvirt_client.hpp"

#include "host/libvirt_api.hpp"

#ifndef KVMREADY_HAVE_LIBVIRT

namespace kvmready::host {

// Built without libvirt's headers: nothing opens, and the reason says why.
std::string LibvirtConnection::unavailable() { return "kvmready was built without libvirt's headers (libvirt-dev)"; }
void LibvirtConnection::start_event_loop() {}
std::unique_ptr<LibvirtConnection> LibvirtConnection::open(const std::string&, LibvirtError* error) {
    if (error) error->message = unavailable();
    return nullptr;
}
LibvirtConnection::~LibvirtConnection() = default;
std::unique_ptr<LibvirtConnection> LibvirtConnection::open_read_only(const std::string& uri, LibvirtError* error) { return open(uri, error); }
std::string LibvirtConnection::hypervisor_type() { return ""; }
std::optional<unsigned long> LibvirtConnection::library_version() { return std::nullopt; }
std::optional<unsigned long> LibvirtConnection::hypervisor_version() { return std::nullopt; }
std::string LibvirtConnection::capabilities(std::string* error) {
    *error = unavailable();
    return "";
}
std::string LibvirtConnection::domain_capabilities(const std::string&, std::string* error) {
    *error = unavailable();
    return "";
}
std::vector<LibvirtNetwork> LibvirtConnection::list_networks(std::string* error) {
    *error = unavailable();
    return {};
}
std::vector<LibvirtPool> LibvirtConnection::list_pools(std::string* error) {
    *error = unavailable();
    return {};
}
void LibvirtConnection::set_keepalive(int, unsigned) {}
bool LibvirtConnection::alive() { return false; }
bool LibvirtConnection::failed() { return false; }
std::string LibvirtConnection::current_error() { return ""; }
LibvirtObject LibvirtConnection::lookup(LibvirtKind, const std::string&) { return {}; }
LibvirtObject LibvirtConnection::lookup_uuid(LibvirtKind, const std::string&) { return {}; }
LibvirtObject LibvirtConnection::define(LibvirtKind, const std::string&) { return {}; }
bool LibvirtConnection::start(const LibvirtObject&) { return false; }
bool LibvirtConnection::stop(const LibvirtObject&) { return false; }
bool LibvirtConnection::undefine(const LibvirtObject&) { return false; }
bool LibvirtConnection::set_autostart(const LibvirtObject&, bool) { return false; }
bool LibvirtConnection::active(const LibvirtObject&) { return false; }
bool LibvirtConnection::persistent(const LibvirtObject&) { return false; }
bool LibvirtConnection::autostart(const LibvirtObject&) { return false; }
std::string LibvirtConnection::xml(const LibvirtObject&) { return ""; }
bool LibvirtConnection::build_pool(const LibvirtObject&) { return false; }
bool LibvirtConnection::update_dhcp_host(const LibvirtObject&, bool, const std::string&) { return false; }
LibvirtObject LibvirtConnection::create_volume(const LibvirtObject&, const std::string&) { return {}; }
std::string LibvirtConnection::volume_path(const LibvirtObject&) { return ""; }
bool LibvirtConnection::upload(const LibvirtObject&, const std::string&) { return false; }
bool LibvirtConnection::delete_volume(const LibvirtObject&) { return false; }
std::optional<std::vector<std::pair<std::string, std::string>>> LibvirtConnection::active_domains() { return std::nullopt; }
LibvirtObject LibvirtConnection::create_domain(const std::string&, bool) { return {}; }
std::optional<DomainState> LibvirtConnection::domain_state(const LibvirtObject&) { return std::nullopt; }
bool LibvirtConnection::destroy_domain(const LibvirtObject&) { return false; }

}  // namespace kvmready::host

#else

#include <cstdlib>
#include <mutex>
#include <thread>

namespace kvmready::host {

namespace {

using vir::api;

LibvirtError capture_error() {
    LibvirtError e;
    e.message = vir::last_error();
    e.code = vir::last_code();
    e.not_found = e.code == VIR_ERR_NO_NETWORK || e.code == VIR_ERR_NO_STORAGE_POOL || e.code == VIR_ERR_NO_STORAGE_VOL ||
                  e.code == VIR_ERR_NO_DOMAIN;
    e.denied = e.code == VIR_ERR_AUTH_FAILED || e.code == VIR_ERR_AUTH_CANCELLED || e.code == VIR_ERR_OPERATION_DENIED ||
               e.code == VIR_ERR_ACCESS_DENIED || e.code == VIR_ERR_AUTH_UNAVAILABLE ||
               e.message.find("Permission denied") != std::string::npos;
    return e;
}

virConnectPtr conn(void* c) { return static_cast<virConnectPtr>(c); }
virNetworkPtr net(const LibvirtObject& o) { return static_cast<virNetworkPtr>(o.handle()); }
virStoragePoolPtr pool(const LibvirtObject& o) { return static_cast<virStoragePoolPtr>(o.handle()); }
virStorageVolPtr vol(const LibvirtObject& o) { return static_cast<virStorageVolPtr>(o.handle()); }
virDomainPtr dom(const LibvirtObject& o) { return static_cast<virDomainPtr>(o.handle()); }
bool is_net(const LibvirtObject& o) { return o.kind() == LibvirtKind::network; }

// How this client's objects are freed (LibvirtObject calls it).
void release(LibvirtKind kind, void* p) {
    switch (kind) {
        case LibvirtKind::network: api().virNetworkFree(static_cast<virNetworkPtr>(p)); break;
        case LibvirtKind::pool: api().virStoragePoolFree(static_cast<virStoragePoolPtr>(p)); break;
        case LibvirtKind::volume: api().virStorageVolFree(static_cast<virStorageVolPtr>(p)); break;
        case LibvirtKind::domain: api().virDomainFree(static_cast<virDomainPtr>(p)); break;
    }
}

}  // namespace

std::string LibvirtConnection::unavailable() {
    std::string err;
    vir::load(&err);
    return err;
}

void LibvirtConnection::start_event_loop() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (!vir::load(nullptr)) return;
        if (api().virEventRegisterDefaultImpl() == 0)
            std::thread([] {
                for (;;) api().virEventRunDefaultImpl();
            }).detach();
    });
}

std::unique_ptr<LibvirtConnection> LibvirtConnection::open(const std::string& uri, LibvirtError* error) {
    std::string why;
    if (!vir::load(&why)) {
        if (error) error->message = why;
        return nullptr;
    }
    virConnectPtr c = api().virConnectOpen(uri.c_str());
    if (!c) {
        if (error) *error = capture_error();
        return nullptr;
    }
    return std::unique_ptr<LibvirtConnection>(new LibvirtConnection(c));
}

std::unique_ptr<LibvirtConnection> LibvirtConnection::open_read_only(const std::string& uri, LibvirtError* error) {
    std::string why;
    if (!vir::load(&why)) {
        if (error) error->message = why;
        return nullptr;
    }
    virConnectPtr c = api().virConnectOpenReadOnly(uri.c_str());
    if (!c) {
        if (error) *error = capture_error();
        return nullptr;
    }
    return std::unique_ptr<LibvirtConnection>(new LibvirtConnection(c));
}

LibvirtConnection::~LibvirtConnection() {
    if (c_) api().virConnectClose(conn(c_));
}

std::string LibvirtConnection::hypervisor_type() {
    const char* t = api().virConnectGetType(conn(c_));
    return t ? t : "";
}

std::optional<unsigned long> LibvirtConnection::library_version() {
    unsigned long v = 0;
    if (api().virConnectGetLibVersion(conn(c_), &v) != 0) return std::nullopt;
    return v;
}

std::optional<unsigned long> LibvirtConnection::hypervisor_version() {
    unsigned long v = 0;
    if (api().virConnectGetVersion(conn(c_), &v) != 0) return std::nullopt;
    return v;
}

std::string LibvirtConnection::capabilities(std::string* error) {
    std::string xml = vir::take(api().virConnectGetCapabilities(conn(c_)));
    *error = xml.empty() ? vir::last_error() : "";
    return xml;
}

std::string LibvirtConnection::domain_capabilities(const std::string& virttype, std::string* error) {
    std::string xml = vir::take(api().virConnectGetDomainCapabilities(conn(c_), nullptr, nullptr, nullptr, virttype.c_str(), 0));
    *error = xml.empty() ? vir::last_error() : "";
    return xml;
}

std::vector<LibvirtNetwork> LibvirtConnection::list_networks(std::string* error) {
    std::vector<LibvirtNetwork> out;
    virNetworkPtr* nets = nullptr;
    const int n = api().virConnectListAllNetworks(conn(c_), &nets, 0);
    *error = n < 0 ? vir::last_error() : "";
    for (int i = 0; i < n; ++i) {
        LibvirtNetwork net;
        if (const char* name = api().virNetworkGetName(nets[i])) net.name = name;
        net.active = api().virNetworkIsActive(nets[i]) == 1;
        net.persistent = api().virNetworkIsPersistent(nets[i]) == 1;
        int autostart = 0;
        net.autostart = api().virNetworkGetAutostart(nets[i], &autostart) == 0 && autostart;
        net.xml = vir::take(api().virNetworkGetXMLDesc(nets[i], 0));
        out.push_back(std::move(net));
        api().virNetworkFree(nets[i]);
    }
    std::free(nets);
    return out;
}

std::vector<LibvirtPool> LibvirtConnection::list_pools(std::string* error) {
    std::vector<LibvirtPool> out;
    virStoragePoolPtr* pools = nullptr;
    const int n = api().virConnectListAllStoragePools(conn(c_), &pools, 0);
    *error = n < 0 ? vir::last_error() : "";
    for (int i = 0; i < n; ++i) {
        LibvirtPool p;
        if (const char* name = api().virStoragePoolGetName(pools[i])) p.name = name;
        p.active = api().virStoragePoolIsActive(pools[i]) == 1;
        p.persistent = api().virStoragePoolIsPersistent(pools[i]) == 1;
        int autostart = 0;
        p.autostart = api().virStoragePoolGetAutostart(pools[i], &autostart) == 0 && autostart;
        virStoragePoolInfo info {};
        if (api().virStoragePoolGetInfo(pools[i], &info) == 0) {
            p.state = static_cast<int>(info.state);
            p.capacity = info.capacity;
            p.allocation = info.allocation;
            p.available = info.available;
        }
        p.xml = vir::take(api().virStoragePoolGetXMLDesc(pools[i], 0));
        out.push_back(std::move(p));
        api().virStoragePoolFree(pools[i]);
    }
    std::free(pools);
    return out;
}

bool LibvirtConnection::failed() {
    error_ = capture_error();
    return false;
}

std::string LibvirtConnection::current_error() { return vir::last_error(); }

void LibvirtConnection::set_keepalive(int interval_s, unsigned count) { api().virConnectSetKeepAlive(conn(c_), interval_s, count); }
bool LibvirtConnection::alive() { return api().virConnectIsAlive(conn(c_)) == 1; }

LibvirtObject LibvirtConnection::lookup(LibvirtKind kind, const std::string& name) {
    void* p = kind == LibvirtKind::network ? static_cast<void*>(api().virNetworkLookupByName(conn(c_), name.c_str()))
                                           : static_cast<void*>(api().virStoragePoolLookupByName(conn(c_), name.c_str()));
    if (!p) failed();
    return {kind, p, release};
}

LibvirtObject LibvirtConnection::lookup_uuid(LibvirtKind kind, const std::string& uuid) {
    void* p = kind == LibvirtKind::network ? static_cast<void*>(api().virNetworkLookupByUUIDString(conn(c_), uuid.c_str()))
                                           : static_cast<void*>(api().virStoragePoolLookupByUUIDString(conn(c_), uuid.c_str()));
    if (!p) failed();
    return {kind, p, release};
}

LibvirtObject LibvirtConnection::define(LibvirtKind kind, const std::string& xml) {
    void* p = kind == LibvirtKind::network ? static_cast<void*>(api().virNetworkDefineXML(conn(c_), xml.c_str()))
                                           : static_cast<void*>(api().virStoragePoolDefineXML(conn(c_), xml.c_str(), 0));
    if (!p) failed();
    return {kind, p, release};
}

bool LibvirtConnection::start(const LibvirtObject& o) {
    return (is_net(o) ? api().virNetworkCreate(net(o)) : api().virStoragePoolCreate(pool(o), 0)) == 0 || failed();
}

bool LibvirtConnection::stop(const LibvirtObject& o) {
    return (is_net(o) ? api().virNetworkDestroy(net(o)) : api().virStoragePoolDestroy(pool(o))) == 0 || failed();
}

bool LibvirtConnection::undefine(const LibvirtObject& o) {
    return (is_net(o) ? api().virNetworkUndefine(net(o)) : api().virStoragePoolUndefine(pool(o))) == 0 || failed();
}

bool LibvirtConnection::set_autostart(const LibvirtObject& o, bool on) {
    const int a = on ? 1 : 0;
    return (is_net(o) ? api().virNetworkSetAutostart(net(o), a) : api().virStoragePoolSetAutostart(pool(o), a)) == 0 || failed();
}

bool LibvirtConnection::active(const LibvirtObject& o) {
    return (is_net(o) ? api().virNetworkIsActive(net(o)) : api().virStoragePoolIsActive(pool(o))) == 1;
}

bool LibvirtConnection::persistent(const LibvirtObject& o) {
    return (is_net(o) ? api().virNetworkIsPersistent(net(o)) : api().virStoragePoolIsPersistent(pool(o))) == 1;
}

bool LibvirtConnection::autostart(const LibvirtObject& o) {
    int a = 0;
    return (is_net(o) ? api().virNetworkGetAutostart(net(o), &a) : api().virStoragePoolGetAutostart(pool(o), &a)) == 0 && a == 1;
}

std::string LibvirtConnection::xml(const LibvirtObject& o) {
    return vir::take(is_net(o) ? api().virNetworkGetXMLDesc(net(o), 0) : api().virStoragePoolGetXMLDesc(pool(o), 0));
}

bool LibvirtConnection::build_pool(const LibvirtObject& p) { return api().virStoragePoolBuild(pool(p), 0) == 0 || failed(); }

bool LibvirtConnection::update_dhcp_host(const LibvirtObject& n, bool add, const std::string& host_xml) {
    return api().virNetworkUpdate(net(n), add ? VIR_NETWORK_UPDATE_COMMAND_ADD_LAST : VIR_NETWORK_UPDATE_COMMAND_DELETE,
                                  VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host_xml.c_str(), VIR_NETWORK_UPDATE_AFFECT_LIVE) == 0 ||
           failed();
}

LibvirtObject LibvirtConnection::create_volume(const LibvirtObject& p, const std::string& xml) {
    virStorageVolPtr v = api().virStorageVolCreateXML(pool(p), xml.c_str(), 0);
    if (!v) failed();
    return {LibvirtKind::volume, v, release};
}

std::string LibvirtConnection::volume_path(const LibvirtObject& v) { return vir::take(api().virStorageVolGetPath(vol(v))); }

bool LibvirtConnection::upload(const LibvirtObject& v, const std::string& data) {
    virStreamPtr st = api().virStreamNew(conn(c_), 0);
    bool ok = st && api().virStorageVolUpload(vol(v), st, 0, data.size(), 0) == 0;
    size_t sent = 0;
    while (ok && sent < data.size()) {
        const int n = api().virStreamSend(st, data.data() + sent, data.size() - sent);
        if (n < 0) ok = false;
        else sent += static_cast<size_t>(n);
    }
    if (ok) ok = api().virStreamFinish(st) == 0;
    if (!ok) failed();
    if (!ok && st) api().virStreamAbort(st);
    if (st) api().virStreamFree(st);
    return ok;
}

bool LibvirtConnection::delete_volume(const LibvirtObject& v) { return api().virStorageVolDelete(vol(v), 0) == 0 || failed(); }

std::optional<std::vector<std::pair<std::string, std::string>>> LibvirtConnection::active_domains() {
    virDomainPtr* doms = nullptr;
    const int n = api().virConnectListAllDomains(conn(c_), &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        failed();
        return std::nullopt;
    }
    std::vector<std::pair<std::string, std::string>> out;
    for (int i = 0; i < n; ++i) {
        const char* name = api().virDomainGetName(doms[i]);
        out.emplace_back(name ? name : "?", vir::take(api().virDomainGetXMLDesc(doms[i], 0)));
        api().virDomainFree(doms[i]);
    }
    std::free(doms);
    return out;
}

LibvirtObject LibvirtConnection::create_domain(const std::string& xml, bool autodestroy) {
    virDomainPtr d = api().virDomainCreateXML(conn(c_), xml.c_str(), autodestroy ? VIR_DOMAIN_START_AUTODESTROY : 0);
    if (!d) failed();
    return {LibvirtKind::domain, d, release};
}

std::optional<DomainState> LibvirtConnection::domain_state(const LibvirtObject& d) {
    int state = 0, reason = 0;
    if (api().virDomainGetState(dom(d), &state, &reason, 0) < 0) {
        failed();
        return std::nullopt;
    }
    switch (state) {
        case VIR_DOMAIN_RUNNING: return DomainState::running;
        case VIR_DOMAIN_PAUSED: return DomainState::paused;
        case VIR_DOMAIN_SHUTDOWN: return DomainState::shutdown;
        case VIR_DOMAIN_SHUTOFF: return DomainState::shutoff;
        case VIR_DOMAIN_CRASHED: return DomainState::crashed;
        default: return DomainState::other;
    }
}

bool LibvirtConnection::destroy_domain(const LibvirtObject& d) { return api().virDomainDestroy(dom(d)) == 0 || failed(); }

}  // namespace kvmready::host
#endif
