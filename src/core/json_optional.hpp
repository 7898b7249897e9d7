// std::optional <-> JSON null, which nlohmann 3.11 does not provide itself.
#pragma once

#include <optional>

#include <nlohmann/json.hpp>

NLOHMANN_JSON_NAMESPACE_BEGIN
template <typename T>
struct adl_serializer<std::optional<T>> {
    static void to_json(json& j, const std::optional<T>& o) {
        if (o) j = *o;
        else j = nullptr;
    }
    static void from_json(const json& j, std::optional<T>& o) {
        if (j.is_null()) o.reset();
        else o = j.get<T>();
    }
};
NLOHMANN_JSON_NAMESPACE_END
