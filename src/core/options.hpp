// What the user asked for, parsed once by the CLI (cli/options_cli.cpp) for
// check, fix, smoke and report: the shared target (user, libvirt URI,
// network, pool, bridge) once, the per-command extras beside it. The probe,
// the checks, the fix planners and the smoke run all read these fields; no
// layer copies them field by field.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready {

// The part that is judged: recorded in Facts (JSON "request"), since checks
// are pure and read it there, and replayed from bundles.
struct Request {
    std::string user;                 // --user: who should be able to use KVM and libvirt (empty: the invoking user)
    std::string connect_uri = "qemu:///system";  // --connect
    std::string network = "default";  // --network NAME
    bool network_given = false;
    std::string pool = "default";     // --pool NAME
    bool pool_given = false;
    std::string bridge;               // --bridge NAME (judged: must exist; fixed: create it)
    std::string device;               // --device BDF|VENDOR:DEVICE (check devices, fix devices.vfio-bind)
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Request, user, connect_uri, network, network_given, pool, pool_given, bridge, device)

// Everything `check`, `fix` and `report` take about the host: the request
// plus where the host is and what `fix` may change.
struct Options : Request {
    std::string root;                  // --root: read (check, report) or change (fix) the tree under this directory
    // `fix` only
    std::string subnet;                // --subnet A.B.C.D/N for a network kvmready defines
    std::string pool_path;             // --pool-path DIR
    std::string uplink;                // --uplink IFACE: enslave it to --bridge, moving its addresses
    std::optional<unsigned> hugepages; // --hugepages N (2 MiB pages)
    std::vector<std::string> only;     // --only FIX-ID,...
    std::vector<std::string> packages; // --packages PKG,...: pkg.virt-stack installs these instead of the distribution's stack
};

}  // namespace kvmready
