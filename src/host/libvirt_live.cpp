// The live libvirt query. Every call into libvirt can block forever on a hung
// daemon (the socket accepts, nobody answers), so the query runs on its own
// thread and is abandoned at the deadline; main() then exits without running
// static destructors under that thread's feet (see libvirt_abandoned()).
#ifdef KVMREADY_HAVE_LIBVIRT
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "host/libvirt.hpp"

namespace kvmready::host {

namespace {

std::atomic<bool> g_abandoned{false};

void quiet(void*, virErrorPtr) {}  // libvirt prints every error to stderr by default

std::string last_error() {
    const char* m = virGetLastErrorMessage();
    return m ? m : "unknown libvirt error";
}

std::string take(char* s) {
    std::string out = s ? s : "";
    free(s);
    return out;
}

bool exists(const char* p) {
    struct stat st {};
    return ::stat(p, &st) == 0;
}

LibvirtSnapshot do_query(const std::string& uri) {
    LibvirtSnapshot s;
    s.uri = uri;
    s.attempted = true;
    virSetErrorFunc(nullptr, quiet);
    if (exists("/run/libvirt/virtqemud-sock")) s.daemon = "virtqemud";
    else if (exists("/run/libvirt/libvirt-sock")) s.daemon = "libvirtd";
    virConnectPtr c = virConnectOpenReadOnly(uri.c_str());
    if (!c) {
        s.error = last_error();
        return s;
    }
    s.connected = true;
    if (const char* t = virConnectGetType(c)) s.hypervisor_type = t;
    unsigned long v = 0;
    if (virConnectGetLibVersion(c, &v) == 0) s.library_version = v;
    if (virConnectGetVersion(c, &v) == 0) s.hypervisor_version = v;
    s.capabilities_xml = take(virConnectGetCapabilities(c));
    s.domcaps_kvm_xml = take(virConnectGetDomainCapabilities(c, nullptr, nullptr, nullptr, "kvm", 0));
    if (s.domcaps_kvm_xml.empty()) s.domcaps_kvm_error = last_error();
    s.domcaps_qemu_xml = take(virConnectGetDomainCapabilities(c, nullptr, nullptr, nullptr, "qemu", 0));
    virNetworkPtr* nets = nullptr;
    int n = virConnectListAllNetworks(c, &nets, 0);
    for (int i = 0; i < n; ++i) {
        LibvirtNetwork net;
        net.name = virNetworkGetName(nets[i]);
        net.active = virNetworkIsActive(nets[i]) == 1;
        net.persistent = virNetworkIsPersistent(nets[i]) == 1;
        int autostart = 0;
        net.autostart = virNetworkGetAutostart(nets[i], &autostart) == 0 && autostart;
        net.xml = take(virNetworkGetXMLDesc(nets[i], 0));
        s.networks.push_back(std::move(net));
        virNetworkFree(nets[i]);
    }
    free(nets);
    virStoragePoolPtr* pools = nullptr;
    n = virConnectListAllStoragePools(c, &pools, 0);
    for (int i = 0; i < n; ++i) {
        LibvirtPool p;
        p.name = virStoragePoolGetName(pools[i]);
        p.active = virStoragePoolIsActive(pools[i]) == 1;
        p.persistent = virStoragePoolIsPersistent(pools[i]) == 1;
        int autostart = 0;
        p.autostart = virStoragePoolGetAutostart(pools[i], &autostart) == 0 && autostart;
        virStoragePoolInfo info {};
        if (virStoragePoolGetInfo(pools[i], &info) == 0) {
            p.state = static_cast<int>(info.state);
            p.capacity = info.capacity;
            p.allocation = info.allocation;
            p.available = info.available;
        }
        p.xml = take(virStoragePoolGetXMLDesc(pools[i], 0));
        s.pools.push_back(std::move(p));
        virStoragePoolFree(pools[i]);
    }
    free(pools);
    virConnectClose(c);
    // Managing domains needs the read-write socket (root, group libvirt, or polkit).
    virConnectPtr rw = virConnectOpen(uri.c_str());
    if (rw) {
        s.read_write = true;
        virConnectClose(rw);
    } else {
        s.read_write_error = last_error();
    }
    return s;
}

struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    LibvirtSnapshot result;
};

}  // namespace

bool libvirt_abandoned() { return g_abandoned.load(); }

LibvirtSnapshot query_libvirt(const std::string& uri, int timeout_ms) {
    const auto start = std::chrono::steady_clock::now();
    auto pending = std::make_shared<Pending>();
    std::thread([pending, uri] {
        LibvirtSnapshot s = do_query(uri);
        std::lock_guard lock(pending->mu);
        pending->result = std::move(s);
        pending->done = true;
        pending->cv.notify_all();
    }).detach();
    std::unique_lock lock(pending->mu);
    const bool done = pending->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return pending->done; });
    LibvirtSnapshot s;
    if (done) {
        s = pending->result;
    } else {
        g_abandoned = true;
        s.uri = uri;
        s.attempted = true;
        s.timed_out = true;
        s.error = "no answer from the libvirt daemon within " + std::to_string(timeout_ms) +
                  " ms: it accepts connections but does not respond (hung, stopped, or overloaded)";
    }
    s.elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return s;
}

}  // namespace kvmready::host
#endif
