// One house for the system: outside the host layer (src/host) and the guest
// programs (src/guest), no product code opens files, forks, execs, signals,
// opens sockets, issues ioctls, loads libraries or calls libvirt, nor changes
// the filesystem through std::ofstream / std::filesystem. Fixes, smoke and
// bundles reach the system through host::Target and the host primitives
// (host/target.hpp, host/nofollow_fs.hpp, host/process.hpp), libvirt through
// the session their target opens (host/libvirt_session.hpp): libvirt's
// clients (host::LibvirtConnection, host::LibvirtReader and their headers)
// are the host layer's own. This test reads the sources (comments and string
// literals stripped) and names every call that slipped through.
//
// It also holds the size rules of the product sources (src/, checks/,
// fixes/): no file over 900 lines, no function over 120 (see
// long_functions() for how functions are found).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
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

// The host layer's libvirt clients: what only src/host may name or include.
const std::set<std::string>& libvirt_clients() {
    static const std::set<std::string> s = {"LibvirtConnection", "LibvirtReader"};
    return s;
}
const char* const kLibvirtClientHeaders[] = {"host/libvirt_client.hpp", "host/libvirt_api.hpp", "host/libvirt_reader.hpp",
                                             "host/libvirt_wire.hpp"};

// The text with comments, string and character literals blanked (newlines
// kept, so line numbers still match); the file named by an #include "..."
// stays.
std::string strip(const std::string& t) {
    std::string out;
    out.reserve(t.size());
    const size_t n = t.size();
    auto ident = [&](size_t i) { return std::isalnum(static_cast<unsigned char>(t[i])) || t[i] == '_'; };
    for (size_t i = 0; i < n;) {
        if (t[i] == '#') {
            const size_t k = t.find_first_not_of(" \t", i + 1);
            const size_t open = k != std::string::npos && t.compare(k, 7, "include") == 0 ? t.find_first_of("\"<\n", k + 7) : std::string::npos;
            const size_t close = open != std::string::npos && t[open] != '\n' ? t.find(t[open] == '"' ? '"' : '>', open + 1) : std::string::npos;
            if (close != std::string::npos) {
                out.append(t, i, close + 1 - i);
                i = close + 1;
                continue;
            }
        }
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
            for (const char* h : kLibvirtClientHeaders)
                if (directive.find("include") != std::string::npos && directive.find(std::string("\"") + h + "\"") != std::string::npos)
                    hits.push_back({line, std::string("#include \"") + h + "\""});
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
        else if (libvirt_clients().count(word)) hits.push_back({line, "host::" + word});
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

std::string read_source(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Every product source file (src/, checks/, fixes/), relative to the root.
std::vector<std::string> product_sources() {
    std::vector<std::string> out;
    const fs::path root = project_root();
    for (const char* top : {"src", "checks", "fixes"})
        for (const auto& e : fs::recursive_directory_iterator(root / top)) {
            if (!e.is_regular_file()) continue;
            const std::string ext = e.path().extension().string();
            if (ext == ".cpp" || ext == ".hpp" || ext == ".h" || ext == ".cc") out.push_back(fs::relative(e.path(), root).generic_string());
        }
    std::sort(out.begin(), out.end());
    return out;
}

struct Function {
    std::string name;
    int first_line, last_line;  // the signature's first line, the closing brace's
    [[nodiscard]] int lines() const { return last_line - first_line + 1; }
};

// The end of the brace block opening at `open` (the index of its '}').
size_t block_end(const std::string& code, size_t open) {
    int depth = 0;
    for (size_t j = open; j < code.size(); ++j) {
        if (code[j] == '{') ++depth;
        else if (code[j] == '}' && --depth == 0) return j;
    }
    return code.size() - 1;
}

// Whether a head has an '=' outside parentheses and brackets that is not part
// of an operator's name or a comparison: `const auto x = [] {`, `T v = {`.
bool assigns(const std::string& head) {
    int depth = 0;
    for (size_t k = 0; k < head.size(); ++k) {
        const char c = head[k];
        if (c == '(' || c == '[') ++depth;
        else if (c == ')' || c == ']') --depth;
        else if (c == '=' && depth == 0) {
            const char before = k > 0 ? head[k - 1] : ' ', after = k + 1 < head.size() ? head[k + 1] : ' ';
            if (after == '=' || before == '=' || before == '!' || before == '<' || before == '>') continue;
            if (head.find("operator") != std::string::npos && head.rfind("operator", k) != std::string::npos &&
                head.find('(', head.rfind("operator", k)) > k)
                continue;
            return true;
        }
    }
    return false;
}

// Function definitions at namespace and class scope in stripped code (see
// strip()), by brace matching. Heuristics, good enough for this code base:
// preprocessor lines are ignored; a '{' whose head (the text since the last
// ';', '{' or '}' of the enclosing scope) starts with `namespace` or
// `extern ""` opens a namespace, with class/struct/union (and no '(') a class
// body, both scanned further; a head with '(' that is not an enum and has no
// '=' of its own (a variable's initializer, a lambda assigned at namespace
// scope) opens a function body, whose lines are counted from the head's
// first line to the closing brace, lambdas and local classes inside
// included; any other block is skipped whole. A constructor whose member
// initializers use braces (`: a_{x} {`) is not recognised.
std::vector<Function> long_functions(const std::string& stripped, int limit) {
    std::string code = stripped;
    // Blank preprocessor lines (and their continuations), keeping newlines.
    for (size_t i = 0; i < code.size();) {
        const size_t e = std::min(code.find('\n', i), code.size());
        const size_t first = code.find_first_not_of(" \t", i);
        if (first < e && code[first] == '#') {
            size_t j = i;
            while (true) {
                const size_t le = std::min(code.find('\n', j), code.size());
                const bool cont = le > j && code[le - 1] == '\\';
                for (size_t k = j; k < le; ++k) code[k] = ' ';
                if (!cont || le == code.size()) {
                    i = le + 1;
                    break;
                }
                j = le + 1;
            }
            continue;
        }
        i = e + 1;
    }
    auto line_of = [&](size_t pos) { return 1 + static_cast<int>(std::count(code.begin(), code.begin() + static_cast<long>(pos), '\n')); };
    static const std::regex template_prefix(R"(^\s*template\s*<[^{};]*?>\s*)");
    static const std::regex scope(R"(^(inline\s+)?namespace\b|^extern\s*""\s*$)");
    static const std::regex type(R"(^(class|struct|union)\b)");
    static const std::regex enumeration(R"(^enum\b)");
    static const std::regex name(R"(([~\w:]*operator\s*[^\s(]+|[~\w:]+)\s*\()");
    std::vector<Function> out;
    size_t head_start = 0;
    for (size_t i = 0; i < code.size(); ++i) {
        const char c = code[i];
        if (c == ';' || c == '}') {
            head_start = i + 1;
            continue;
        }
        if (c != '{') continue;
        std::string head = code.substr(head_start, i - head_start);
        const size_t first = head.find_first_not_of(" \t\n");
        const size_t head_line_pos = first == std::string::npos ? i : head_start + first;
        head = std::regex_replace(head.substr(first == std::string::npos ? head.size() : first), template_prefix, "");
        if (std::regex_search(head, scope) || (std::regex_search(head, type) && head.find('(') == std::string::npos)) {
            head_start = i + 1;
            continue;
        }
        const size_t end = block_end(code, i);
        if (head.find('(') != std::string::npos && !std::regex_search(head, enumeration) && !assigns(head)) {
            Function f{"?", line_of(head_line_pos), line_of(end)};
            std::smatch m;
            if (std::regex_search(head, m, name)) f.name = m[1];
            if (f.lines() > limit) out.push_back(f);
        }
        i = end;
        head_start = end + 1;
    }
    return out;
}

constexpr int kMaxFileLines = 900;
constexpr int kMaxFunctionLines = 120;

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
        "auto r = R\"(execv(x))\"; std::ifstream in(p);\n"      // 12
        "#include \"host/libvirt_client.hpp\"\n"               // 13
        "#include \"host/libvirt_session.hpp\" // host/libvirt_api.hpp\n"  // 14
        "auto c = host::LibvirtConnection::open(u, &e);\n"      // 15
        "std::unique_ptr<LibvirtSession> s = t.open_libvirt(u, &e);\n";  // 16
    const auto hits = scan(strip(code));
    std::vector<std::string> got;
    for (const auto& h : hits) got.push_back(std::to_string(h.line) + ":" + h.call);
    const std::vector<std::string> want = {"1:open",
                                           "2:kill",
                                           "3:std::ofstream",
                                           "4:std::filesystem::remove_all",
                                           "5:virConnectOpen",
                                           "6:#include <libvirt/...>",
                                           "11:std::rename",
                                           "13:#include \"host/libvirt_client.hpp\"",
                                           "15:host::LibvirtConnection"};
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

TEST(Lint, FunctionScannerFindsDefinitionsAtNamespaceAndClassScope) {
    std::string body;
    for (int i = 0; i < 5; ++i) body += "    x += 1;\n";
    const std::string code =
        "#include <x>\n"                                                   // 1
        "namespace a {\n"                                                  // 2
        "int long_one(int x) {\n" + body + "    return x;\n}\n" +          // 3-10
        "const auto lambda = [](int x) {\n" + body + "};\n" +              // 11-17
        "struct S {\n"                                                     // 18
        "    int member(int x) const {\n" + body + "        return x;\n    }\n" +  // 19-26
        "    int v{3};\n"                                                  // 27
        "};\n"                                                             // 28
        "enum class E { A, B };\n"                                         // 29
        "bool operator==(const S&, const S&) {\n" + body + "}\n" +         // 30-36
        "int short_one() { return 1; }\n"                                  // 37
        "}  // namespace a\n";
    std::vector<std::string> got;
    for (const auto& f : long_functions(strip(code), 5))
        got.push_back(f.name + ":" + std::to_string(f.first_line) + "-" + std::to_string(f.last_line));
    const std::vector<std::string> want = {"long_one:3-10", "member:19-26", "operator==:30-36"};
    EXPECT_EQ(got, want);
}

// Files and functions a newcomer can hold: no product source file over 900
// lines, no function over 120 (issue "One house", point 6).
TEST(Lint, NoLongFilesOrFunctions) {
    const fs::path root = project_root();
    const auto files = product_sources();
    EXPECT_GT(files.size(), 50u) << "the source tree was not found under " << root;
    std::vector<std::string> found;
    for (const auto& rel : files) {
        const std::string text = read_source(root / rel);
        const auto lines = std::count(text.begin(), text.end(), '\n') + (text.empty() || text.back() == '\n' ? 0 : 1);
        if (lines > kMaxFileLines) found.push_back(rel + ": " + std::to_string(lines) + " lines (at most " + std::to_string(kMaxFileLines) + ")");
        for (const auto& f : long_functions(strip(text), kMaxFunctionLines)) {
            found.push_back(rel + ":" + std::to_string(f.first_line) + ": " + f.name + " is " + std::to_string(f.lines()) +
                            " lines (at most " + std::to_string(kMaxFunctionLines) + ")");
        }
    }
    std::string list;
    for (const auto& f : found) list += "  " + f + "\n";
    EXPECT_TRUE(found.empty()) << "split these into cohesive files and functions:\n" << list;
}

}  // namespace
