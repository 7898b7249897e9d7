// Built when libvirt's development files are absent: kvmready still runs,
// and the libvirt checks say why they cannot tell.
#include "host/libvirt.hpp"

#ifndef KVMREADY_HAVE_LIBVIRT
namespace kvmready::host {

bool libvirt_abandoned() { return false; }

LibvirtSnapshot query_libvirt(const std::string& uri, int) {
    LibvirtSnapshot s;
    s.uri = uri;
    s.not_attempted_reason = "kvmready was built without libvirt support (libvirt-dev missing at build time)";
    return s;
}

std::unique_ptr<LibvirtPending> start_libvirt_query(const std::string& uri, int timeout_ms) {
    struct Now final : LibvirtPending {
        LibvirtSnapshot s;
        LibvirtSnapshot wait() override { return s; }
    };
    auto p = std::make_unique<Now>();
    p->s = query_libvirt(uri, timeout_ms);
    return p;
}

}  // namespace kvmready::host
#endif
