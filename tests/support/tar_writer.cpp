#include "support/tar_writer.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <sys/sysmacros.h>

#include <gtest/gtest.h>

namespace kvmready::testsupport {

void make_tar(const std::filesystem::path& out, const TarEntries& entries, bool hardlinks) {
    archive* a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    ASSERT_EQ(archive_write_open_filename(a, out.c_str()), ARCHIVE_OK);
    for (const auto& [name, data, type] : entries) {
        archive_entry* e = archive_entry_new();
        archive_entry_set_pathname(e, name.c_str());
        archive_entry_set_filetype(e, static_cast<unsigned>(type));
        archive_entry_set_perm(e, 0644);
        if (type == AE_IFLNK) archive_entry_set_symlink(e, data.c_str());
        if (type == AE_IFCHR) archive_entry_set_rdev(e, makedev(1, 5));  // /dev/zero's numbers
        const bool link = hardlinks && type == AE_IFREG && data.rfind("LINK:", 0) == 0;
        if (link) archive_entry_set_hardlink(e, data.substr(5).c_str());
        archive_entry_set_size(e, type == AE_IFREG && !link ? static_cast<la_int64_t>(data.size()) : 0);
        archive_write_header(a, e);
        if (type == AE_IFREG && !link) archive_write_data(a, data.data(), data.size());
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

}  // namespace kvmready::testsupport
