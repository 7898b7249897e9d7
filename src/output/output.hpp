// Renderers: Report (+ the Facts it came from) to text or JSON. No probing,
// no judging here.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/runner.hpp"

namespace kvmready::output {

struct TextStyle {
    bool color = false;
    bool unicode = true;
    bool verbose = false;
    bool quiet = false;
};

// Decides color and symbols from --color=auto|always|never, NO_COLOR, the
// terminal and the locale.
TextStyle style_for(const std::string& color_flag, bool stdout_is_tty);

std::string render_text(const Report& r, const Facts& f, const TextStyle& s);
nlohmann::ordered_json render_json(const Report& r, const Facts& f);
nlohmann::ordered_json finding_json(const Finding& f);

}  // namespace kvmready::output
