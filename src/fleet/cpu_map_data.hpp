// The files of libvirt's x86 cpu_map as they were at build time
// (cmake/cpu_map.cmake generates the definition).
#pragma once

#include <string_view>
#include <vector>

namespace kvmready::fleet {

struct CpuMapFile {
    std::string_view name;  // "x86_features.xml"
    std::string_view text;
};

// index.xml first when present, then x86_*.xml in name order; empty when the
// build machine had no cpu_map.
const std::vector<CpuMapFile>& cpu_map_files();

}  // namespace kvmready::fleet
