#include "output/formats.hpp"

#include <ctime>

#include <fmt/chrono.h>

#include "core/errors.hpp"
#include "util/utf8.hpp"

namespace kvmready::output {

const std::vector<FormatSpec>& formats() {
    static const std::vector<FormatSpec> all = {
        {"text", Format::Text, "the report for people (the default)"},
        {"json", Format::Json, "one JSON object (schema in kvmready(1))"},
        {"prometheus", Format::Prometheus, "node_exporter textfile-collector metrics (kvmready_*)"},
        {"nagios", Format::Nagios, "a monitoring plugin's output and exit code (Nagios, Icinga, NRPE)"},
        {"junit", Format::Junit, "JUnit XML: one testsuite per category, one testcase per check"},
        {"nfd", Format::Nfd, "a Kubernetes Node Feature Discovery feature file (features.d)"},
    };
    return all;
}

std::vector<std::string> format_names() {
    std::vector<std::string> names;
    for (const auto& f : formats()) names.emplace_back(f.name);
    return names;
}

std::optional<Format> format_named(const std::string& name) {
    for (const auto& f : formats())
        if (name == f.name) return f.format;
    return std::nullopt;
}

const char* name_of(Format fmt) {
    for (const auto& f : formats())
        if (f.format == fmt) return f.name;
    return "text";
}

std::string rfc3339_utc(int64_t unix_seconds) {
    return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<std::time_t>(unix_seconds)));
}

std::string render(Format fmt, const Report& r, const Facts& f, const RunInfo& run) {
    switch (fmt) {
    case Format::Text: return util::escape_bytes(render_text(r, f, run.text));
    case Format::Json: return util::dump_json(render_json(r, f, run), 2) + "\n";
    case Format::Prometheus: return render_prometheus(r, f, run);
    case Format::Nagios: return render_nagios(r, f, run);
    case Format::Junit: return render_junit(r, f, run);
    case Format::Nfd: return render_nfd(r, f, run);
    }
    return {};
}

int exit_code(Format stdout_format, const Report& r, bool strict) {
    if (stdout_format == Format::Nagios) return static_cast<int>(nagios_state(r));
    return exit_code_for(r, strict);
}

}  // namespace kvmready::output
