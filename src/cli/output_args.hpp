// --output FMT:PATH as check and watch take it: parsed and judged before any
// probing, so that a typo costs nothing and nothing is written.
#pragma once

#include <string>
#include <vector>

#include "output/formats.hpp"

namespace kvmready::cli {

struct OutputTo {
    output::Format format;
    std::string path;
    std::string given;  // FMT:PATH as typed, for messages
};

// A malformed value, an unknown format or the same file twice is a usage
// error (UsageError, 64).
std::vector<OutputTo> parse_outputs(const std::vector<std::string>& raw);
// Then, after the other usage errors, a path that cannot take the file
// (missing directory, a directory, a symlink) cannot be created (73).
void check_output_paths(const std::vector<OutputTo>& outs);

}  // namespace kvmready::cli
