// NetFacts: see probe_net.cpp for where each field comes from.
#pragma once

#include <nlohmann/json.hpp>

#include "core/json_optional.hpp"

namespace kvmready {

struct NetFacts {
    bool probed = false;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(NetFacts, probed)

}  // namespace kvmready
