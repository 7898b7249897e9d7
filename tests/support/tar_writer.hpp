// Hostile archives for the bundle tests, written with libarchive directly
// (the tool itself dlopen()s it). One copy for every test file.
#pragma once

#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

namespace kvmready::testsupport {

// (name, content, AE_IF* type): a symlink's content is its target; with
// hardlinks, a regular file whose content is "LINK:target" is a hard link.
using TarEntries = std::vector<std::tuple<std::string, std::string, int>>;

// Writes a .tar.gz (pax) with the entries in order; a test failure if it cannot.
void make_tar(const std::filesystem::path& out, const TarEntries& entries, bool hardlinks = false);

}  // namespace kvmready::testsupport
