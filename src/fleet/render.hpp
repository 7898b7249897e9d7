// The fleet report's two forms: one self-contained HTML page (inline CSS, no
// script, no network resource; every string from a report escaped) and the
// same content as JSON for other tools.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "fleet/model.hpp"

namespace kvmready::fleet {

std::string render_html(const Fleet& f);
nlohmann::ordered_json render_fleet_json(const Fleet& f);

// "3h 20m", "2d 4h", "45s": an age for people.
std::string human_age(int64_t seconds);

}  // namespace kvmready::fleet
