#include "report/bundle.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "host/bounded_read.hpp"
#include "host/nofollow_fs.hpp"
#include "host/target.hpp"
#include "host/unique_fd.hpp"
#include "report/redact.hpp"
#include "util/dynlib.hpp"
#include "util/utf8.hpp"

namespace fs = std::filesystem;

namespace kvmready::report {

namespace {

// libarchive is loaded only by `report` and `check --from` (src/util/dynlib.hpp).
#define KVMREADY_ARCHIVE_FUNCTIONS(X) \
    X(archive_entry_filetype) \
    X(archive_entry_free) \
    X(archive_entry_hardlink) \
    X(archive_entry_new) \
    X(archive_entry_pathname) \
    X(archive_entry_set_filetype) \
    X(archive_entry_set_mtime) \
    X(archive_entry_set_pathname) \
    X(archive_entry_set_perm) \
    X(archive_entry_set_size) \
    X(archive_entry_size) \
    X(archive_error_string) \
    X(archive_read_data) \
    X(archive_read_free) \
    X(archive_read_new) \
    X(archive_read_next_header) \
    X(archive_read_open_fd) \
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

// A file of an unpacked bundle (the manifest): bounded, regular files only.
std::string slurp(const fs::path& p, const std::string& bundle) {
    host::BoundedRead r = host::read_path_bounded(p.string(), host::kMaxManifestBytes, O_NOFOLLOW);
    if (!r.data) throw DataError(host::describe_read_failure(r, fmt::format("{}: {}", bundle, p.filename().string()), host::kMaxManifestBytes));
    return std::move(*r.data);
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

// Only plain relative paths below the bundle's top directory; why not, or "".
std::string unsafe_name(const std::string& n, const BundleLimits& limits) {
    if (n.empty()) return "an empty name";
    if (n[0] == '/') return "an absolute name";
    if (n.size() > limits.name_bytes) return fmt::format("a name longer than {} bytes (--bundle-limit name_bytes=N)", limits.name_bytes);
    uint64_t depth = 0;
    std::stringstream ss(n);
    for (std::string part; std::getline(ss, part, '/');) {
        if (part == "..") return "a '..' component";
        if (part.size() > 255) return "a name component longer than 255 bytes";
        if (!part.empty() && part != ".") ++depth;
    }
    if (depth > limits.depth + 1) return fmt::format("deeper than {} directories (--bundle-limit depth=N)", limits.depth);
    return "";
}

}  // namespace

namespace {

struct BundleFiles {
    std::vector<std::string> dirs;
    std::vector<std::pair<std::string, std::string>> files;  // name in bundle -> content
};

// Read and redact everything first, so the manifest can list what was redacted.
BundleFiles collect(BundleContents& c) {
    Redactor red;
    if (c.redact) {
        for (const auto& h : c.hostnames) red.add_hostname(h);
        for (const auto& u : c.users) red.add_user(u);
    }
    BundleFiles b;
    const fs::path root(c.tree_dir);
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
        const std::string rel = fs::relative(it->path(), root).string();
        if (it->is_symlink()) continue;  // the recorder writes none; never follow one
        if (it->is_directory()) b.dirs.push_back(std::string(kBundleTop) + "/host/" + rel);
        else if (it->is_regular_file()) {
            host::BoundedRead r = host::read_path_bounded(it->path().string(), host::kMaxHostFileBytes, O_NOFOLLOW);
            if (!r.data) throw ExitError(kExitCantCreat, host::describe_read_failure(r, it->path().string(), host::kMaxHostFileBytes));
            std::string data = std::move(*r.data);
            b.files.emplace_back(std::string(kBundleTop) + "/host/" + rel, c.redact ? red.apply(data) : data);
        }
    }
    for (auto& [name, data] : c.extra_files) b.files.emplace_back(std::string(kBundleTop) + "/" + name, c.redact ? red.apply(data) : data);
    c.manifest["redacted"] = c.redact;
    c.manifest["redactions"] = c.redact ? red.summary() : nlohmann::ordered_json::object();
    if (c.redact) c.manifest = nlohmann::ordered_json::parse(red.apply(util::dump_json(c.manifest)));
    b.files.emplace_back(std::string(kBundleTop) + "/manifest.json", util::dump_json(c.manifest, 2) + "\n");
    std::sort(b.dirs.begin(), b.dirs.end());
    std::sort(b.files.begin(), b.files.end());
    return b;
}

// The archive, through the target: the live one writes OUT.partial-XXXXXX
// beside out and renames it into place; a recording one keeps the bytes.
void write_archive(const BundleFiles& b, host::PendingWrite& file, const std::string& out, bool force) {
    archive* a = la().archive_write_new();
    la().archive_write_add_filter_gzip(a);
    la().archive_write_set_format_pax_restricted(a);
    try {
        if (la().archive_write_open_fd(a, file.fd()) != ARCHIVE_OK) throw ExitError(kExitCantCreat, "cannot start bundle archive");
        add_entry(a, std::string(kBundleTop), "", true);
        add_entry(a, std::string(kBundleTop) + "/host", "", true);
        for (const auto& d : b.dirs) add_entry(a, d, "", true);
        for (const auto& [name, data] : b.files) add_entry(a, name, data, false);
        if (la().archive_write_close(a) != ARCHIVE_OK) throw ExitError(kExitCantCreat, "finishing bundle archive failed");
        la().archive_write_free(a);
        a = nullptr;
        if (const int e = file.sync()) throw ExitError(kExitCantCreat, fmt::format("fsync {}: {}", file.temp_path(), std::strerror(e)));
        // Without --force, never replace a file that appeared meanwhile.
        if (const int e = file.commit(force))
            throw ExitError(e == EEXIST ? kExitUsage : kExitCantCreat, fmt::format("cannot move bundle to {}: {}", out, std::strerror(e)));
    } catch (...) {
        if (a) la().archive_write_free(a);
        throw;
    }
}

}  // namespace

uint64_t write_bundle(BundleContents c, const std::string& out, bool force, host::Target& target) {
    if (!force && target.exists(out)) throw ExitError(kExitUsage, fmt::format("{} already exists; pass --force to replace it", out));
    const BundleFiles b = collect(c);
    const auto file = target.create_file(out);
    if (file->fd() < 0) throw ExitError(kExitCantCreat, fmt::format("cannot create {}: {}", file->temp_path(), std::strerror(file->error())));
    write_archive(b, *file, out, force);
    return file->size();
}

namespace {

// SIGINT/SIGTERM while a bundle is unpacked or judged: the extraction
// directory must not be left behind (a default-action signal would end the
// process before any destructor ran). The handler only records the signal;
// unpacking stops at the next block, and ~OpenedBundle removes the directory
// and then lets the signal end the process as it would have.
volatile std::sig_atomic_t g_interrupt = 0;
struct sigaction g_old_int {}, g_old_term {};
bool g_guarded = false;

extern "C" void on_interrupt(int sig) { g_interrupt = sig; }

void guard_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sa.sa_flags = SA_RESTART;  // libarchive's reads go on; the loop checks the flag
    sigemptyset(&sa.sa_mask);
    g_interrupt = 0;
    ::sigaction(SIGINT, &sa, &g_old_int);
    ::sigaction(SIGTERM, &sa, &g_old_term);
    g_guarded = true;
}

void throw_if_interrupted(const std::string& path) {
    if (const int sig = g_interrupt) {
        g_interrupt = 0;  // reported here, with the conventional 128+N code
        throw ExitError(128 + sig, fmt::format("{}: interrupted by signal {} while unpacking; nothing was left behind", path, sig));
    }
}

}  // namespace

OpenedBundle::~OpenedBundle() {
    if (!tmp_.empty()) target_.remove_tree(tmp_);
    if (g_guarded) {
        ::sigaction(SIGINT, &g_old_int, nullptr);
        ::sigaction(SIGTERM, &g_old_term, nullptr);
        g_guarded = false;
        if (const int sig = g_interrupt) ::raise(sig);
    }
}

void set_bundle_limit(BundleLimits& limits, const std::string& name_eq_value) {
    const auto eq = name_eq_value.find('=');
    const std::string name = name_eq_value.substr(0, eq);
    uint64_t* field = name == "members"        ? &limits.members
                      : name == "bytes"        ? &limits.bytes
                      : name == "member_bytes" ? &limits.member_bytes
                      : name == "depth"        ? &limits.depth
                      : name == "name_bytes"   ? &limits.name_bytes
                      : name == "seconds"      ? &limits.seconds
                                               : nullptr;
    if (!field || eq == std::string::npos)
        throw UsageError(fmt::format("--bundle-limit {}: expected NAME=N with NAME one of members, bytes, member_bytes, depth, name_bytes, seconds",
                                     name_eq_value));
    const std::string v = name_eq_value.substr(eq + 1);
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || *end != '\0' || errno == ERANGE || n == 0)
        throw UsageError(fmt::format("--bundle-limit {}: '{}' is not a positive number", name_eq_value, v));
    *field = n;
}

namespace {

void check_manifest(const nlohmann::json& m, const std::string& path) {
    if (!m.is_object()) throw DataError(fmt::format("{}: manifest.json is not a JSON object", path));
    for (const char* key : {"format", "version", "created", "hostname", "command_line"})
        if (m.contains(key) && !m[key].is_string())
            throw DataError(fmt::format("{}: manifest.json: \"{}\" is not a string", path, key));
    if (m.contains("redacted") && !m["redacted"].is_boolean())
        throw DataError(fmt::format("{}: manifest.json: \"redacted\" is not true or false", path));
}

// Unpacks the archive at path into dir under limits; throws DataError naming
// the member at fault.
void unpack(const std::string& path, const std::string& dir, const BundleLimits& limits, host::Target& target) {
    const auto started = std::chrono::steady_clock::now();
    archive* a = la().archive_read_new();
    struct Closer {
        archive* a;
        ~Closer() { la().archive_read_free(a); }
    } closer{a};
    la().archive_read_support_filter_all(a);
    la().archive_read_support_format_tar(a);
    auto fail = [&](const std::string& why) { throw DataError(fmt::format("{}: not a readable kvmready bundle: {}", path, why)); };
    auto lib_error = [&](const char* fallback) { return std::string(la().archive_error_string(a) ? la().archive_error_string(a) : fallback); };
    // The archive itself: a FIFO or device would block or never end.
    int open_error = 0;
    unsigned mode = 0;
    const host::UniqueFd fd(host::open_regular_file(path, &open_error, &mode));
    if (!fd.ok() && open_error) throw NoInputError(fmt::format("--from {}: {}", path, std::strerror(open_error)));
    if (!fd.ok())
        throw NoInputError(fmt::format("--from {}: is {}, not a bundle file or directory", path, host::describe_file_type(mode)));
    if (la().archive_read_open_fd(a, fd.get(), 65536) != ARCHIVE_OK) fail(lib_error("cannot open"));
    uint64_t total = 0, entries = 0;
    std::vector<char> buf(65536);
    archive_entry* e = nullptr;
    for (;;) {
        throw_if_interrupted(path);
        if (std::chrono::steady_clock::now() - started > std::chrono::seconds(limits.seconds))
            fail(fmt::format("unpacking took longer than {} s (--bundle-limit seconds=N)", limits.seconds));
        int r = la().archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK) fail(lib_error("corrupt archive"));
        const std::string name = la().archive_entry_pathname(e) ? la().archive_entry_pathname(e) : "";
        if (++entries > limits.members) fail(fmt::format("more than {} members (--bundle-limit members=N)", limits.members));
        const std::string member = fmt::format("member '{}'", name.substr(0, 200));
        if (const std::string why = unsafe_name(name, limits); !why.empty()) fail(fmt::format("{} has {}", member, why));
        if (name.rfind(kBundleTop, 0) != 0 || (name.size() > std::strlen(kBundleTop) && name[std::strlen(kBundleTop)] != '/'))
            fail(fmt::format("unexpected {} (a kvmready bundle holds only {}/...)", member, kBundleTop));
        if (la().archive_entry_hardlink(e)) fail(fmt::format("{} is a hard link", member));
        const auto type = la().archive_entry_filetype(e);
        const fs::path dest = fs::path(dir) / name;
        if (type == AE_IFDIR) {
            if (const int err = target.make_dirs(dest.string()))
                fail(fmt::format("{}: cannot create the directory: {}", member, std::strerror(err)));
            continue;
        }
        if (type != AE_IFREG) fail(fmt::format("{} is not a regular file or directory", member));
        const auto size = la().archive_entry_size(e);
        if (size < 0 || static_cast<uint64_t>(size) > limits.member_bytes)
            fail(fmt::format("{} is larger than {} bytes (--bundle-limit member_bytes=N)", member, limits.member_bytes));
        if (const int err = target.make_dirs(dest.parent_path().string()))
            fail(fmt::format("{}: cannot create its directory: {}", member, std::strerror(err)));
        // O_EXCL|O_NOFOLLOW: a duplicate member, or one where a directory
        // already stands, is refused rather than overwritten or followed.
        const auto out = target.create_new_file(dest.string());
        if (out->error()) fail(fmt::format("{}: cannot extract: {}", member, std::strerror(out->error())));
        uint64_t written = 0;
        for (;;) {
            const la_ssize_t n = la().archive_read_data(a, buf.data(), buf.size());
            if (n < 0) fail(fmt::format("{}: {}", member, lib_error("truncated data")));
            if (n == 0) break;
            if (g_interrupt) throw_if_interrupted(path);
            written += static_cast<uint64_t>(n);
            total += static_cast<uint64_t>(n);
            if (written > limits.member_bytes || total > limits.bytes) {
                fail(written > limits.member_bytes
                         ? fmt::format("{} is larger than {} bytes (--bundle-limit member_bytes=N)", member, limits.member_bytes)
                         : fmt::format("larger than {} bytes unpacked (--bundle-limit bytes=N)", limits.bytes));
            }
            if (const int err = out->write(buf.data(), static_cast<size_t>(n)))
                throw ExitError(kExitCantCreat, fmt::format("{}: unpacking {} into {}: {}", path, member, dir, std::strerror(err)));
        }
    }
}

}  // namespace

std::unique_ptr<OpenedBundle> open_bundle(const std::string& path, const BundleLimits& limits, host::Target& target) {
    std::unique_ptr<OpenedBundle> b(new OpenedBundle(target));
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0) throw NoInputError(fmt::format("--from {}: {}", path, std::strerror(errno)));
    fs::path top;
    std::error_code ec;
    if (S_ISDIR(st.st_mode)) {
        top = fs::exists(fs::path(path) / kBundleTop / "manifest.json", ec) ? fs::path(path) / kBundleTop : fs::path(path);
    } else {
        guard_signals();  // before the directory exists: no window where a signal leaves it
        const char* tmpdir = std::getenv("TMPDIR");
        const std::string parent = tmpdir && *tmpdir ? tmpdir : "/tmp";
        int err = 0;
        auto made = target.make_temp_dir(parent, "kvmready-bundle-", &err);
        if (!made) throw ExitError(kExitCantCreat, fmt::format("mkdtemp {}/kvmready-bundle-XXXXXX: {}", parent, std::strerror(err)));
        b->tmp_ = *made;  // removed by ~OpenedBundle, also when unpack throws or a signal comes
        unpack(path, b->tmp_, limits, target);
        top = fs::path(b->tmp_) / kBundleTop;
    }
    const fs::path manifest = top / "manifest.json";
    struct stat ms {};
    if (::lstat(manifest.c_str(), &ms) < 0) throw DataError(fmt::format("{}: no {}/manifest.json: not a kvmready bundle", path, kBundleTop));
    try {
        b->manifest_ = nlohmann::json::parse(slurp(manifest, path));
    } catch (const nlohmann::json::exception& e) {
        throw DataError(fmt::format("{}: manifest.json is not valid JSON: {}", path, e.what()));
    }
    check_manifest(b->manifest_, path);
    if (b->manifest_.value("format", "") != kBundleFormat)
        throw DataError(fmt::format("{}: unknown bundle format '{}' (expected {})", path, b->manifest_.value("format", ""), kBundleFormat));
    b->host_tree_ = (top / "host").string();
    struct stat hs {};
    if (::lstat(b->host_tree_.c_str(), &hs) < 0 || !S_ISDIR(hs.st_mode)) throw DataError(fmt::format("{}: bundle has no host/ directory", path));
    return b;
}

}  // namespace kvmready::report
