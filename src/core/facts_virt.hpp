// VirtFacts: see probe_virt.cpp for where each field comes from.
#pragma once

#include <nlohmann/json.hpp>

#include "core/json_optional.hpp"

namespace kvmready {

struct VirtFacts {
    bool probed = false;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VirtFacts, probed)

}  // namespace kvmready
