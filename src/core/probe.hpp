// Probe: turns a Host into Facts. The only place that knows where each fact
// lives on a Linux system; checks never see paths.
#pragma once

#include <optional>
#include <string>

#include "core/facts.hpp"
#include "host/host.hpp"

namespace kvmready {

struct ProbeOptions {
    std::string user;                      // --user NAME; empty = invoking user
    Request request;                       // what to judge (network, pool, bridge, URI)
    int libvirt_timeout_ms = 3000;
    std::optional<cpuid::Dump> cpuid_dump; // --cpuid-dump FILE, already parsed
    std::string cpuid_dump_name;
    bool kvm_api = true;                   // run the ioctl test
};

Facts probe(const host::Host& h, const ProbeOptions& opt);

// One probe per area, each in its own file (probe_<area>.cpp).
void probe_virt(const host::Host& h, const ProbeOptions& opt, Facts& f);   // slow: libvirt; runs on its own thread
void probe_net(const host::Host& h, const ProbeOptions& opt, Facts& f);
void probe_system(const host::Host& h, const ProbeOptions& opt, Facts& f);

// Helpers shared with tests: /proc/cpuinfo first stanza.
void parse_cpuinfo(const std::string& text, CpuFacts& out);

}  // namespace kvmready
