// Probe: turns a Host into Facts. The only place that knows where each fact
// lives on a Linux system; checks never see paths.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "core/facts.hpp"
#include "host/host.hpp"

namespace kvmready {

// Facts areas beyond the core (CPU, MSRs, modules, /dev/kvm, the ioctl test),
// which is always probed. `check kvm cpu` needs none of them, and skipping
// libvirt and QEMU keeps it at the cost of the core alone.
enum ProbeArea : unsigned { kAreaVirt = 1u, kAreaNet = 2u, kAreaSystem = 4u, kAreaDevices = 8u, kAreaAll = 15u };

struct MountTable;  // core/mountinfo.hpp

struct ProbeOptions {
    Request request;                       // what to judge (user, URI, network, pool, bridge)
    int libvirt_timeout_ms = 3000;
    std::optional<cpuid::Dump> cpuid_dump; // --cpuid-dump FILE, already parsed
    std::string cpuid_dump_name;
    bool kvm_api = true;                   // run the ioctl test
    unsigned areas = kAreaAll;             // ProbeArea bits
    // Read the kernel log even when no finding needs it (--record, report),
    // so a recording carries it; Facts still hold it only when needed, so
    // the live run and its replay judge alike.
    bool record_kernel_log = false;
    // Collect what the fixes plan from (ConfigFacts): fix, report, --record.
    bool config = false;
    std::string uplink;                    // fix --uplink: its link and configuration
    std::string pool_path;                 // fix --pool-path: whether it exists
    // The host's routes and addresses (a new libvirt network must not
    // overlap them): only for `fix` on the host itself. They identify the
    // host, so bundles and --record trees leave them out.
    bool config_addresses = false;
    // The host's mounts, read once by probe() for the areas of its
    // file-reading thread; unset, an area reads them itself.
    const MountTable* mounts = nullptr;
};

// Why the kernel log must be read for these facts ("" when no finding needs it).
std::string kernel_log_needed(const Facts& f);

Facts probe(const host::Host& h, const ProbeOptions& opt);

// One probe per area, each in its own file (probe_<area>.cpp).
void probe_virt(const host::Host& h, const ProbeOptions& opt, Facts& f);   // slow: libvirt; runs on its own thread
void probe_net(const host::Host& h, const ProbeOptions& opt, Facts& f);
void probe_system(const host::Host& h, const ProbeOptions& opt, Facts& f);
void probe_devices(const host::Host& h, const ProbeOptions& opt, Facts& f);  // PCI devices (probe_devices.cpp)
// ConfigFacts (probe_config.cpp); needs the virt facts (pools) probed first.
void probe_config(const host::Host& h, const ProbeOptions& opt, Facts& f);


// A file's content without surrounding whitespace; nullopt when unreadable.
std::optional<std::string> read_trimmed(const host::Host& h, const std::string& path);

// /proc/misc: registered misc devices, name -> minor; nullopt when unreadable.
std::optional<std::map<std::string, unsigned>> read_misc_devices(const host::Host& h);

// Helpers shared with tests: /proc/cpuinfo first stanza.
void parse_cpuinfo(const std::string& text, CpuFacts& out);

}  // namespace kvmready
