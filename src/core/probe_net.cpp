#include "core/probe.hpp"

namespace kvmready {

void probe_net(const host::Host&, const ProbeOptions&, Facts& f) { f.net.probed = true; }

}  // namespace kvmready
