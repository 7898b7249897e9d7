#include "cli/output_args.hpp"

#include <filesystem>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "host/nofollow_fs.hpp"
#include "util/text.hpp"

namespace kvmready::cli {

std::vector<OutputTo> parse_outputs(const std::vector<std::string>& raw) {
    std::vector<OutputTo> outs;
    std::vector<std::pair<std::string, std::string>> seen;  // normal absolute path, as given
    const std::string names = util::join(output::format_names(), ", ");
    for (const auto& v : raw) {
        const auto colon = v.find(':');
        if (colon == std::string::npos) throw UsageError(fmt::format("--output {}: expected FMT:PATH, FMT one of {}", v, names));
        const std::string name = v.substr(0, colon), path = v.substr(colon + 1);
        const auto f = output::format_named(name);
        if (!f) throw UsageError(fmt::format("--output {}: unknown format '{}' (one of {})", v, name, names));
        if (path.empty()) throw UsageError(fmt::format("--output {}: no file named after '{}:'", v, name));
        const std::string key = std::filesystem::absolute(path).lexically_normal().string();
        for (const auto& [k, given] : seen)
            if (k == key) throw UsageError(fmt::format("--output {}: the same file as --output {}", v, given));
        seen.emplace_back(key, v);
        outs.push_back({*f, path, v});
    }
    return outs;
}

void check_output_paths(const std::vector<OutputTo>& outs) {
    for (const auto& o : outs)
        if (const std::string why = host::output_file_problem(o.path); !why.empty())
            throw ExitError(kExitCantCreat, fmt::format("--output {}: {}", o.given, why));
}

}  // namespace kvmready::cli
