#include "report/bundle.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "report/redact.hpp"
#include "util/dynlib.hpp"

namespace fs = std::filesystem;

namespace kvmready::report {

namespace {

// libarchive is loaded only by `report` and `check --from` (src/util/dynlib.hpp).
#define KVMREADY_ARCHIVE_FUNCTIONS(X) \
    X(archive_entry_filetype) \
    X(archive_entry_free) \
    X(archive_entry_new) \
    X(archive_entry_pathname) \
    X(archive_entry_set_filetype) \
    X(archive_entry_set_mtime) \
    X(archive_entry_set_pathname) \
    X(archive_entry_set_perm) \
    X(archive_entry_set_size) \
    X(archive_entry_size) \
    X(archive_error_string) \
    X(archive_read_data_into_fd) \
    X(archive_read_free) \
    X(archive_read_new) \
    X(archive_read_next_header) \
    X(archive_read_open_filename) \
    X(archive_read_support_filter_all) \
    X(archive_read_support_format_tar) \
    X(archive_write_add_filter_gzip) \
    X(archive_write_close) \
    X(archive_write_data) \
    X(archive_write_free) \
    X(archive_write_header) \
    X(archive_write_new) \
    X(archive_write_open_fd) \
    X(archive_write_set_format_pax_restricted)

struct ArchiveApi {
    KVMREADY_ARCHIVE_FUNCTIONS(KVMREADY_API_MEMBER)
};

const ArchiveApi& la() {
    std::string error;
    const ArchiveApi* api = util::load_api<ArchiveApi>(
        "libarchive.so.13", "libarchive13",
        [](auto sym, ArchiveApi& api) { KVMREADY_ARCHIVE_FUNCTIONS(KVMREADY_API_RESOLVE) }, &error);
    if (!api) throw ExitError(kExitUnavailable, error);
    return *api;
}

constexpr uint64_t kMaxBundleBytes = 512ull << 20;  // refuse archive bombs
constexpr int kMaxEntries = 100000;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void add_entry(archive* a, const std::string& name, const std::string& data, bool dir) {
    archive_entry* e = la().archive_entry_new();
    la().archive_entry_set_pathname(e, name.c_str());
    la().archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
    la().archive_entry_set_perm(e, dir ? 0755 : 0644);
    la().archive_entry_set_size(e, dir ? 0 : static_cast<la_int64_t>(data.size()));
    la().archive_entry_set_mtime(e, 0, 0);  // reproducible bundles; the manifest carries the time
    if (la().archive_write_header(a, e) != ARCHIVE_OK) {
        const std::string err = la().archive_error_string(a) ? la().archive_error_string(a) : "?";
        la().archive_entry_free(e);
        throw ExitError(kExitCantCreat, "writing bundle: " + err);
    }
    if (!dir && !data.empty() && la().archive_write_data(a, data.data(), data.size()) < 0) {
        const std::string err = la().archive_error_string(a) ? la().archive_error_string(a) : "?";
        la().archive_entry_free(e);
        throw ExitError(kExitCantCreat, "writing bundle: " + err);
    }
    la().archive_entry_free(e);
}

// Only plain relative paths below the bundle's top directory.
bool safe_name(const std::string& n) {
    if (n.empty() || n[0] == '/') return false;
    std::stringstream ss(n);
    for (std::string part; std::getline(ss, part, '/');)
        if (part == "..") return false;
    return true;
}

}  // namespace

uint64_t write_bundle(BundleContents c, const std::string& out, bool force) {
    struct stat st {};
    if (!force && ::lstat(out.c_str(), &st) == 0)
        throw ExitError(kExitUsage, fmt::format("{} already exists; pass --force to replace it", out));
    Redactor red;
    if (c.redact) {
        for (const auto& h : c.hostnames) red.add_hostname(h);
        for (const auto& u : c.users) red.add_user(u);
    }
    // Read and redact everything first, so the manifest can list what was redacted.
    std::vector<std::pair<std::string, std::string>> files;
    std::vector<std::string> dirs;
    const fs::path root(c.tree_dir);
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
        const std::string rel = fs::relative(it->path(), root).string();
        if (it->is_symlink()) continue;  // the recorder writes none; never follow one
        if (it->is_directory()) dirs.push_back(std::string(kBundleTop) + "/host/" + rel);
        else if (it->is_regular_file()) {
            std::string data = slurp(it->path());
            files.emplace_back(std::string(kBundleTop) + "/host/" + rel, c.redact ? red.apply(data) : data);
        }
    }
    for (auto& [name, data] : c.extra_files) files.emplace_back(std::string(kBundleTop) + "/" + name, c.redact ? red.apply(data) : data);
    c.manifest["redacted"] = c.redact;
    c.manifest["redactions"] = c.redact ? red.summary() : nlohmann::ordered_json::object();
    if (c.redact) c.manifest = nlohmann::ordered_json::parse(red.apply(c.manifest.dump()));
    files.emplace_back(std::string(kBundleTop) + "/manifest.json", c.manifest.dump(2) + "\n");
    std::sort(dirs.begin(), dirs.end());
    std::sort(files.begin(), files.end());

    const fs::path target(out);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::string tmpl = (dir / (target.filename().string() + ".partial-XXXXXX")).string();
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) throw ExitError(kExitCantCreat, fmt::format("cannot create {}: {}", tmpl, std::strerror(errno)));
    ::fchmod(fd, 0600);  // a bundle describes a host: owner-only until the user shares it
    archive* a = la().archive_write_new();
    la().archive_write_add_filter_gzip(a);
    la().archive_write_set_format_pax_restricted(a);
    try {
        if (la().archive_write_open_fd(a, fd) != ARCHIVE_OK) throw ExitError(kExitCantCreat, "cannot start bundle archive");
        add_entry(a, std::string(kBundleTop), "", true);
        add_entry(a, std::string(kBundleTop) + "/host", "", true);
        for (const auto& d : dirs) add_entry(a, d, "", true);
        for (const auto& [name, data] : files) add_entry(a, name, data, false);
        if (la().archive_write_close(a) != ARCHIVE_OK) throw ExitError(kExitCantCreat, "finishing bundle archive failed");
        la().archive_write_free(a);
        a = nullptr;
        if (::fsync(fd) < 0) throw ExitError(kExitCantCreat, fmt::format("fsync {}: {}", tmpl, std::strerror(errno)));
        ::close(fd);
        fd = -1;
        // Without --force, never replace a file that appeared meanwhile.
        const int flags = force ? 0 : RENAME_NOREPLACE;
        if (::renameat2(AT_FDCWD, tmpl.c_str(), AT_FDCWD, out.c_str(), flags) < 0)
            throw ExitError(errno == EEXIST ? kExitUsage : kExitCantCreat,
                            fmt::format("cannot move bundle to {}: {}", out, std::strerror(errno)));
    } catch (...) {
        if (a) la().archive_write_free(a);
        if (fd >= 0) ::close(fd);
        ::unlink(tmpl.c_str());
        throw;
    }
    return fs::file_size(out);
}

OpenedBundle::~OpenedBundle() {
    if (!tmp_.empty()) {
        std::error_code ec;
        fs::remove_all(tmp_, ec);
    }
}

std::unique_ptr<OpenedBundle> open_bundle(const std::string& path) {
    std::unique_ptr<OpenedBundle> b(new OpenedBundle());
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0) throw NoInputError(fmt::format("--from {}: {}", path, std::strerror(errno)));
    fs::path top;
    if (S_ISDIR(st.st_mode)) {
        top = fs::exists(fs::path(path) / kBundleTop / "manifest.json") ? fs::path(path) / kBundleTop : fs::path(path);
    } else {
        char tmpl[] = "/tmp/kvmready-bundle-XXXXXX";
        if (!::mkdtemp(tmpl)) throw ExitError(kExitSoftware, fmt::format("mkdtemp: {}", std::strerror(errno)));
        b->tmp_ = tmpl;
        archive* a = la().archive_read_new();
        la().archive_read_support_filter_all(a);
        la().archive_read_support_format_tar(a);
        auto fail = [&](const std::string& why) {
            la().archive_read_free(a);
            throw DataError(fmt::format("{}: not a readable kvmready bundle: {}", path, why));
        };
        if (la().archive_read_open_filename(a, path.c_str(), 65536) != ARCHIVE_OK)
            fail(la().archive_error_string(a) ? la().archive_error_string(a) : "cannot open");
        uint64_t total = 0;
        int entries = 0;
        archive_entry* e = nullptr;
        for (;;) {
            int r = la().archive_read_next_header(a, &e);
            if (r == ARCHIVE_EOF) break;
            if (r != ARCHIVE_OK) fail(la().archive_error_string(a) ? la().archive_error_string(a) : "corrupt archive");
            const std::string name = la().archive_entry_pathname(e) ? la().archive_entry_pathname(e) : "";
            if (++entries > kMaxEntries) fail("too many entries");
            if (!safe_name(name) || name.rfind(kBundleTop, 0) != 0)
                fail(fmt::format("unexpected entry '{}' (a kvmready bundle holds only {}/...)", name, kBundleTop));
            const auto type = la().archive_entry_filetype(e);
            const fs::path dest = fs::path(b->tmp_) / name;
            if (type == AE_IFDIR) {
                fs::create_directories(dest);
                continue;
            }
            if (type != AE_IFREG) fail(fmt::format("entry '{}' is not a regular file or directory", name));
            total += static_cast<uint64_t>(la().archive_entry_size(e));
            if (total > kMaxBundleBytes) fail("larger than 512 MiB unpacked");
            fs::create_directories(dest.parent_path());
            int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (fd < 0) fail(fmt::format("cannot extract '{}': {}", name, std::strerror(errno)));
            r = la().archive_read_data_into_fd(a, fd);
            ::close(fd);
            if (r != ARCHIVE_OK) fail(la().archive_error_string(a) ? la().archive_error_string(a) : "truncated data");
        }
        la().archive_read_free(a);
        top = fs::path(b->tmp_) / kBundleTop;
    }
    const fs::path manifest = top / "manifest.json";
    if (!fs::exists(manifest)) throw DataError(fmt::format("{}: no {}/manifest.json: not a kvmready bundle", path, kBundleTop));
    try {
        b->manifest_ = nlohmann::json::parse(slurp(manifest));
    } catch (const nlohmann::json::exception& e) {
        throw DataError(fmt::format("{}: manifest.json is not valid JSON", path));
    }
    if (b->manifest_.value("format", "") != kBundleFormat)
        throw DataError(fmt::format("{}: unknown bundle format '{}' (expected {})", path, b->manifest_.value("format", ""), kBundleFormat));
    b->host_tree_ = (top / "host").string();
    if (!fs::is_directory(b->host_tree_)) throw DataError(fmt::format("{}: bundle has no host/ tree", path));
    return b;
}

}  // namespace kvmready::report
