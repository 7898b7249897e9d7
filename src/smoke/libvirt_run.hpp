// Ladder step (c): the guest booted through libvirt, with a throwaway volume
// holding a nonce and a NIC on a libvirt network or a bridge. Everything it
// creates carries the PID and a random suffix and is removed before it
// returns (unless keep), also when `cancelled()` turns true mid-run.
#pragma once

#include <functional>
#include <string>

#include "host/target.hpp"
#include "smoke/report.hpp"

namespace kvmready::smoke {

struct LibvirtRunConfig {
    std::string uri = "qemu:///system";
    std::string accel = "kvm";        // "kvm" (domain type kvm) or "tcg" (type qemu)
    std::string network = "default";  // ignored when bridge is set
    std::string bridge;
    std::string pool = "default";
    std::string kernel;               // guest file to boot (copied into the run dir)
    std::string initrd;               // optional, copied too
    std::string cmdline;              // kernel command line
    bool linux_guest = false;         // the `net` stage is required too
    int memory_mib = 64;
    int timeout_ms = 30000;           // whole boot: start -> `done`
    int first_marker_ms = 0;          // >0: give up earlier when nothing arrived by then
    bool keep = false;
    std::string run_dir_parent;       // default: $TMPDIR or /var/tmp
    std::string step_id = "c";
    std::string step_name = "libvirt";
    std::function<bool()> cancelled;  // polled often; true = stop and clean up
    // What the run directory and its files go through (nullptr: the live
    // system). So do its libvirt calls: the volume, the DHCP reservation and
    // the guest (Target::open_libvirt, host/libvirt_session.hpp).
    host::Target* target = nullptr;
};

// Never throws for failures of the host (they are in the step); the step's
// failure says "prerequisite" (exit 69) or "not_permitted" (77) when the run
// could not even start. kept/cleanup receive what --keep left behind.
SmokeStep run_libvirt(const LibvirtRunConfig& cfg, std::vector<std::string>* kept = nullptr,
                      std::vector<std::string>* cleanup = nullptr);

// libvirt's client library is absent (libvirt0 not installed): the reason, or empty.
std::string libvirt_client_unavailable();

}  // namespace kvmready::smoke
