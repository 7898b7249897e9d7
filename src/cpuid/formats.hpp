// One parser per CPUID dump format, and the line tests parse() uses to tell
// the line-oriented formats apart (parse.cpp). Internal to src/cpuid: each
// throws ParseError naming the file and line, as parse() documents.
#pragma once

#include <string>
#include <string_view>

#include "cpuid/cpuid.hpp"

namespace kvmready::cpuid::detail {

// Line-oriented reports (formats_text.cpp).
Dump parse_cpuid_r(std::string_view text, const std::string& name);
Dump parse_aida(std::string_view text, const std::string& name);
Dump parse_libcpuid_raw(std::string_view text, const std::string& name);
Dump parse_hwloc(std::string_view text, const std::string& name);
Dump parse_fuchsia(std::string_view text, const std::string& name);
Dump parse_icbook(std::string_view text, const std::string& name);

// A line (leading blanks trimmed) only that format has.
bool looks_like_cpuid_r_line(std::string_view t);
bool looks_like_aida_line(std::string_view t);
bool looks_like_libcpuid_line(std::string_view t);
bool looks_like_hwloc_line(std::string_view t);
bool is_icbook_header(std::string_view t);

// Documents (formats_xml_json.cpp).
Dump parse_rjcp_xml(std::string_view text, const std::string& name);
Dump parse_firecracker(std::string_view text, const std::string& name);

}  // namespace kvmready::cpuid::detail
