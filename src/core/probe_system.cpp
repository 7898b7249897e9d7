#include "core/probe.hpp"

namespace kvmready {

void probe_system(const host::Host&, const ProbeOptions&, Facts& f) { f.system.probed = true; }

}  // namespace kvmready
