#include "core/probe.hpp"

namespace kvmready {

void probe_virt(const host::Host&, const ProbeOptions&, Facts& f) { f.virt.probed = true; }

}  // namespace kvmready
