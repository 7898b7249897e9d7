// fmt's non-template code, compiled once here instead of in every unit.
//
// With FMT_HEADER_ONLY every unit that calls fmt::format compiles and
// optimises fmt's whole formatting engine (format-inl.h: vformat, the
// Dragonbox float tables, ...): about a third of the build's CPU time.
// Debian ships libfmt only as a shared library, and linking it would load
// libfmt.so and libstdc++.so at every start (see CMakeLists.txt), so the tool
// compiles the part of fmt that its src/format.cc would, into kvmready_lib.
// This unit is kept out of the unity batches and the precompiled header.
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {

template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;

#ifndef FMT_STATIC_THOUSANDS_SEPARATOR
template FMT_API locale_ref::locale_ref(const std::locale& loc);
template FMT_API auto locale_ref::get<std::locale>() const -> std::locale;
#endif

template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
template FMT_API void buffer<char>::append(const char*, const char*);
template FMT_API void vformat_to(buffer<char>&, string_view, basic_format_args<FMT_BUFFER_CONTEXT(char)>,
                                 locale_ref);

// format.h declares these extern for wchar_t too.
template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<wchar_t>;
template FMT_API auto decimal_point_impl(locale_ref) -> wchar_t;
template FMT_API void buffer<wchar_t>::append(const wchar_t*, const wchar_t*);

}  // namespace detail
FMT_END_NAMESPACE
