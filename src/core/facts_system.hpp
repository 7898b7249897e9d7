// SystemFacts: see probe_system.cpp for where each field comes from.
#pragma once

#include <nlohmann/json.hpp>

#include "core/json_optional.hpp"

namespace kvmready {

struct SystemFacts {
    bool probed = false;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SystemFacts, probed)

}  // namespace kvmready
