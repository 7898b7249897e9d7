// libvirt's client library, loaded once per process for every caller
// (the probe's query, smoke's guest, the fixes' networks and pools): one
// table of the functions kvmready calls, resolved from libvirt.so.0 with
// dlopen when first needed (util/dynlib.hpp says why it is not linked).
// Only src/host includes this; everything else opens a session through its
// Target (host/libvirt_session.hpp).
#pragma once

#ifdef KVMREADY_HAVE_LIBVIRT
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <string>

#include "util/dynlib.hpp"

namespace kvmready::host::vir {

#define KVMREADY_LIBVIRT_FUNCTIONS(X) \
    X(virInitialize) \
    X(virSetErrorFunc) \
    X(virGetLastError) \
    X(virGetLastErrorMessage) \
    X(virEventRegisterDefaultImpl) \
    X(virEventRunDefaultImpl) \
    X(virConnectOpen) \
    X(virConnectOpenReadOnly) \
    X(virConnectClose) \
    X(virConnectSetKeepAlive) \
    X(virConnectIsAlive) \
    X(virConnectGetType) \
    X(virConnectGetLibVersion) \
    X(virConnectGetVersion) \
    X(virConnectGetCapabilities) \
    X(virConnectGetDomainCapabilities) \
    X(virConnectListAllNetworks) \
    X(virConnectListAllStoragePools) \
    X(virConnectListAllDomains) \
    X(virNetworkLookupByName) \
    X(virNetworkLookupByUUIDString) \
    X(virNetworkDefineXML) \
    X(virNetworkCreate) \
    X(virNetworkDestroy) \
    X(virNetworkUndefine) \
    X(virNetworkSetAutostart) \
    X(virNetworkGetAutostart) \
    X(virNetworkIsActive) \
    X(virNetworkIsPersistent) \
    X(virNetworkGetName) \
    X(virNetworkGetXMLDesc) \
    X(virNetworkUpdate) \
    X(virNetworkFree) \
    X(virStoragePoolLookupByName) \
    X(virStoragePoolLookupByUUIDString) \
    X(virStoragePoolDefineXML) \
    X(virStoragePoolBuild) \
    X(virStoragePoolCreate) \
    X(virStoragePoolDestroy) \
    X(virStoragePoolUndefine) \
    X(virStoragePoolSetAutostart) \
    X(virStoragePoolGetAutostart) \
    X(virStoragePoolIsActive) \
    X(virStoragePoolIsPersistent) \
    X(virStoragePoolGetName) \
    X(virStoragePoolGetInfo) \
    X(virStoragePoolGetXMLDesc) \
    X(virStoragePoolFree) \
    X(virStorageVolCreateXML) \
    X(virStorageVolGetPath) \
    X(virStorageVolUpload) \
    X(virStorageVolDelete) \
    X(virStorageVolFree) \
    X(virStreamNew) \
    X(virStreamSend) \
    X(virStreamFinish) \
    X(virStreamAbort) \
    X(virStreamFree) \
    X(virDomainCreateXML) \
    X(virDomainGetState) \
    X(virDomainGetName) \
    X(virDomainGetXMLDesc) \
    X(virDomainDestroy) \
    X(virDomainFree)

struct Api {
    KVMREADY_LIBVIRT_FUNCTIONS(KVMREADY_API_MEMBER)
};

// Loaded once and never unloaded (an abandoned call may still run in it);
// libvirt initialised and told not to print every error to stderr.
// nullptr and *error when libvirt.so.0 is missing or too old.
const Api* load(std::string* error);
// Only after load() succeeded.
const Api& api();

// The calling thread's last libvirt error.
std::string last_error();
int last_code();
// A string libvirt allocated, freed.
std::string take(char* s);

}  // namespace kvmready::host::vir
#endif
