// The check and fix lists of README.md and man/kvmready.1, generated from the
// registries, so adding a check or a fix is one registry line: `cmake --build
// build --target docs` rewrites the marked sections (cmake/docs.cmake runs
// the hidden `kvmready __doc-lists`), and tests/docs_test.cpp fails when the
// committed text drifts from what is generated here.
#pragma once

#include <string>

namespace kvmready::cli {

// README.md: `<!-- BEGIN checks -->` ... `<!-- END checks -->` and the same
// for `fixes`; man/kvmready.1: `.\" BEGIN checks` ... `.\" END checks` and
// `fixes`. Returns the document with those sections regenerated; throws
// DataError naming the marker when one is missing.
std::string regenerate_readme(const std::string& text);
std::string regenerate_man(const std::string& text);

}  // namespace kvmready::cli
