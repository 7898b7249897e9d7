// One house for the system: outside the host layer (src/host) and the guest
// programs (src/guest), no product code opens files, forks, execs, signals,
// opens sockets, issues ioctls, loads libraries or calls libvirt, nor changes
// the filesystem through std::ofstream / std::filesystem. Fixes, smoke and
// bundles reach the system through host::Target and the host primitives
// (host/target.hpp, host/nofollow_fs.hpp, host/process.hpp,
// host/libvirt_client.hpp). This test reads the sources (comments and string
// literals stripped) and names every call that slipped through.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// System calls and libc functions that reach the OS directly.
const std::set<std::string>& raw_calls() {
    static const std::set<std::string> s = {
        "open",     "openat",   "openat2",  "creat",     "fork",      "vfork",       "clone",     "execv",   "execve",  "execvp",
        "execvpe",  "execl",    "execlp",   "execle",    "fexecve",   "posix_spawn", "posix_spawnp", "system", "popen",  "socket",
        "socketpair", "connect", "bind",    "kill",      "killpg",    "tgkill",      "ioctl",     "dlopen",  "dlsym",   "mkdtemp",
        "mkstemp",  "mkostemp", "unlink",   "unlinkat",  "remove",    "rename",      "renameat",  "renameat2", "mkdir", "mkdirat",
        "rmdir",    "chmod",    "fchmod",   "fchmodat",  "chown",     "fchown",      "fchownat",  "lchown",  "waitpid", "wait4",
        "waitid",   "pipe",     "pipe2",    "symlink",   "symlinkat", "link",        "linkat",    "truncate", "ftruncate", "mknod",
        "mount",    "umount2"};
    return s;
}

// std::filesystem functions that change the filesystem.
const std::set<std::string>& fs_writes() {
    static const std::set<std::string> s = {"remove",        "remove_all",     "create_directory", "create_directories",
                                            "rename",        "copy",           "copy_file",        "copy_symlink",
                                            "permissions",   "resize_file",    "create_symlink",   "create_directory_symlink",
                                            "create_hard_link", "last_write_time"};
    return s;
}

// Calls that cannot move, by file and why. Nothing else is allowed.
struct Allowed {
    const char* file;
    const char* call;
    const char* why;
};
const Allowed kAllowed[] = {
    {"src/util/dynlib.hpp", "dlopen", "the lazy loader itself (libarchive, libxml2; libvirt only through src/host/libvirt_api)"},
    {"src/util/dynlib.hpp", "dlsym", "the lazy loader itself"},
};

// The text with comments, string and character literals blanked (newlines
// kept, so line numbers still match).
std::string strip(const std::string& t) {
    std::string out;
    out.reserve(t.size());
    const size_t n = t.size();
    auto ident = [&](size_t i) { return std::isalnum(static_cast<unsigned char>(t[i])) || t[i] == '_'; };
    for (size_t i = 0; i < n;) {
        if (t.compare(i, 2, "//") == 0) {
            while (i < n && t[i] != '\n') ++i;
            continue;
        }
        if (t.compare(i, 2, "/*") == 0) {
            const size_t e = t.find("*/", i + 2);
            const size_t j = e == std::string::npos ? n : e + 2;
            out.append(static_cast<size_t>(std::count(t.begin() + static_cast<long>(i), t.begin() + static_cast<long>(j), '\n')), '\n');
            i = j;
            continue;
        }
        if (t.compare(i, 2, "R\"") == 0 && (i == 0 || !ident(i - 1))) {
            const size_t paren = t.find('(', i + 2);
            if (paren != std::string::npos) {
                const std::string end = ")" + t.substr(i + 2, paren - i - 2) + "\"";
                const size_t e = t.find(end, paren);
                const size_t j = e == std::string::npos ? n : e + end.size();
                out += "\"\"";
                out.append(static_cast<size_t>(std::count(t.begin() + static_cast<long>(i), t.begin() + static_cast<long>(j), '\n')), '\n');
                i = j;
                continue;
            }
        }
        if (t[i] == '"' || (t[i] == '\'' && !(i > 0 && std::isxdigit(static_cast<unsigned char>(t[i - 1]))))) {
            const char q = t[i];
            size_t j = i + 1;
            while (j < n && t[j] != q && t[j] != '\n') j += t[j] == '\\' ? 2 : 1;
            out += q;
            out += q;
            i = j + 1;
            continue;
        }
        out += t[i++];
    }
    return out;
}

struct Hit {
    int line;
    std::string call;
};

// Every raw OS call in (stripped) code: NAME( unqualified or ::NAME( (a
// member call obj.NAME( or ns::NAME( is someone else's function), std::
// rename/remove/system, std::ofstream/fstream, std::filesystem writes,
// libvirt's vir*( functions and its headers.
std::vector<Hit> scan(const std::string& code) {
    std::vector<Hit> hits;
    const size_t n = code.size();
    int line = 1;
    auto ident = [&](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    for (size_t i = 0; i < n;) {
        if (code[i] == '\n') {
            ++line;
            ++i;
            continue;
        }
        if (code[i] == '#') {
            const size_t e = code.find('\n', i);
            const std::string directive = code.substr(i, e == std::string::npos ? std::string::npos : e - i);
            if (directive.find("include") != std::string::npos && directive.find("<libvirt/") != std::string::npos)
                hits.push_back({line, "#include <libvirt/...>"});
            i = e == std::string::npos ? n : e;
            continue;
        }
        if (!ident(code[i]) || (i > 0 && ident(code[i - 1]))) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < n && ident(code[j])) ++j;
        const std::string word = code.substr(i, j - i);
        size_t k = j;
        while (k < n && (code[k] == ' ' || code[k] == '\t')) ++k;
        const bool call = k < n && code[k] == '(';
        // What qualifies it: "" (none), "::" (global), "ns" for ns::, "." or "->" for members.
        std::string qual;
        if (i >= 2 && code.compare(i - 2, 2, "::") == 0) {
            size_t q = i - 2;
            size_t s = q;
            while (s > 0 && ident(code[s - 1])) --s;
            qual = s == q ? "::" : code.substr(s, q - s);
        } else if (i >= 1 && code[i - 1] == '.') {
            qual = ".";
        } else if (i >= 2 && code.compare(i - 2, 2, "->") == 0) {
            qual = "->";
        }
        if (word == "ofstream" || (word == "fstream" && qual == "std")) hits.push_back({line, "std::" + word});
        else if (call && (qual.empty() || qual == "::") && raw_calls().count(word)) hits.push_back({line, word});
        else if (call && qual == "std" && (word == "rename" || word == "remove" || word == "system")) hits.push_back({line, "std::" + word});
        else if (call && (qual == "fs" || qual == "filesystem") && fs_writes().count(word)) hits.push_back({line, "std::filesystem::" + word});
        else if (call && word.size() > 3 && word.compare(0, 3, "vir") == 0 && std::isupper(static_cast<unsigned char>(word[3])))
            hits.push_back({line, word});
        i = j;
    }
    return hits;
}

fs::path project_root() { return fs::path(KVMREADY_SOURCE_DIR); }

TEST(Lint, ScannerFindsRawCallsAndIgnoresCommentsStringsAndMembers) {
    const std::string code =
        "int fd = ::open(p, O_RDONLY);\n"                      // 1
        "if (kill (pid, SIGTERM)) {}\n"                         // 2
        "std::ofstream f(path);\n"                              // 3
        "fs::remove_all(dir, ec);\n"                            // 4
        "virConnectPtr c = virConnectOpen(uri);\n"              // 5
        "#include <libvirt/libvirt.h>\n"                        // 6
        "// ::open(comment) and kill(1, 9)\n"                   // 7
        "auto s = \"fork() in a string\"; file.open(x);\n"      // 8
        "host::make_dir(d, 0711); conn->connect(u); f.kill(1);\n"  // 9
        "/* socket(\n unlink( */ std::rename(a, b);\n"          // 10-11
        "auto r = R\"(execv(x))\"; std::ifstream in(p);\n";     // 12
    const auto hits = scan(strip(code));
    std::vector<std::string> got;
    for (const auto& h : hits) got.push_back(std::to_string(h.line) + ":" + h.call);
    const std::vector<std::string> want = {"1:open", "2:kill", "3:std::ofstream", "4:std::filesystem::remove_all", "5:virConnectOpen",
                                           "6:#include <libvirt/...>", "11:std::rename"};
    EXPECT_EQ(got, want);
}

TEST(Lint, NoSystemCallsOutsideTheHostLayer) {
    const fs::path root = project_root();
    ASSERT_TRUE(fs::is_directory(root / "src" / "host")) << root;
    std::vector<std::string> found;
    size_t files = 0;
    for (const char* top : {"src", "checks", "fixes"}) {
        for (const auto& e : fs::recursive_directory_iterator(root / top)) {
            if (!e.is_regular_file()) continue;
            const std::string rel = fs::relative(e.path(), root).generic_string();
            if (rel.rfind("src/host/", 0) == 0 || rel.rfind("src/guest/", 0) == 0) continue;
            const std::string ext = e.path().extension().string();
            if (ext != ".cpp" && ext != ".hpp" && ext != ".h" && ext != ".cc") continue;
            ++files;
            std::ifstream in(e.path(), std::ios::binary);
            std::ostringstream ss;
            ss << in.rdbuf();
            for (const auto& h : scan(strip(ss.str()))) {
                const bool allowed = std::any_of(std::begin(kAllowed), std::end(kAllowed),
                                                 [&](const Allowed& a) { return rel == a.file && h.call == a.call; });
                if (!allowed) found.push_back(rel + ":" + std::to_string(h.line) + ": " + h.call);
            }
        }
    }
    EXPECT_GT(files, 50u) << "the source tree was not found under " << root;
    std::string list;
    for (const auto& f : found) list += "  " + f + "\n";
    EXPECT_TRUE(found.empty()) << found.size()
                               << " call(s) reach the system outside src/host; go through host::Target or a host primitive:\n"
                               << list;
}

}  // namespace
