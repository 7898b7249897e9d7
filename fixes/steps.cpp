#include <algorithm>

#include <fmt/format.h>

#include "fixes/fix.hpp"
#include "util/text.hpp"

namespace kvmready::fix {

const char* to_string(Applicability a) {
    switch (a) {
        case Applicability::Automatic: return "automatic";
        case Applicability::Confirm: return "confirm";
        case Applicability::Manual: return "manual";
    }
    return "?";
}

std::vector<const Finding*> PlanInput::wanting(const std::string& fix_id) const {
    std::vector<const Finding*> out;
    for (const auto& f : report.findings)
        if (f.remediation.fix_id == fix_id && (f.status == Status::Fail || f.status == Status::Warn)) out.push_back(&f);
    return out;
}

std::optional<std::string> PlanInput::target_file(const std::string& path) const {
    const ConfigFile& f = facts.config.file(path);
    if (!f.error.empty()) throw std::runtime_error(f.error);
    return f.content;
}

Step write_file(const std::string& path, std::optional<std::string> before, std::string content, unsigned mode, uint32_t uid,
                uint32_t gid) {
    Step s;
    s.op = "file.write";
    s.summary = fmt::format("{} {}", before ? "update" : "create", path);
    s.args = {{"path", path}, {"content", std::move(content)}, {"mode", mode}, {"uid", uid}, {"gid", gid}};
    s.args["before"] = before ? nlohmann::json(*before) : nlohmann::json();
    return s;
}

Step remove_file(const std::string& path, std::string before) {
    Step s;
    s.op = "file.remove";
    s.summary = fmt::format("remove {}", path);
    s.commands = {{"rm", "--", path}};
    s.args = {{"path", path}, {"before", std::move(before)}};
    return s;
}

Step proc_write(const std::string& path, std::string value, std::string summary) {
    Step s;
    s.op = "proc.write";
    s.summary = std::move(summary);
    s.runtime = true;
    s.args = {{"path", path}, {"value", value}};
    // What an admin types: sysctl for /proc/sys, a redirect otherwise.
    if (path.rfind("/proc/sys/", 0) == 0) {
        std::string key = path.substr(10);
        std::replace(key.begin(), key.end(), '/', '.');
        s.commands = {{"sysctl", "-w", key + "=" + value}};
    } else {
        s.commands = {{"sh", "-c", fmt::format("echo {} > {}", value, path)}};
    }
    return s;
}

Step command(std::vector<std::string> argv, std::string summary, std::vector<std::string> undo_argv,
             std::vector<std::string> snapshots, bool runtime) {
    Step s;
    s.op = "command";
    s.summary = std::move(summary);
    s.runtime = runtime;
    s.commands = {argv};
    s.args = {{"argv", argv}, {"undo_argv", undo_argv}, {"snapshots", snapshots}};
    return s;
}

Step node_perms(const std::string& path, unsigned mode, const std::string& group, std::string summary) {
    Step s;
    s.op = "node.perms";
    s.summary = std::move(summary);
    s.runtime = true;
    s.commands = {{"chown", "root:" + group, path}, {"chmod", fmt::format("{:04o}", mode), path}};
    s.args = {{"path", path}, {"mode", mode}, {"group", group}};
    return s;
}

std::string quote_argv(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) out += (out.empty() ? "" : " ") + util::shell_quote(a);
    return out;
}

namespace {

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        size_t j = s.find('\n', i);
        if (j == std::string::npos) {
            out.push_back(s.substr(i) + "\n\\ No newline at end of file");
            break;
        }
        out.push_back(s.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

struct Edit {
    char kind;  // ' ', '-', '+'
    const std::string* line;
};

// Longest common subsequence by dynamic programming: configuration files are
// small, and a file too large for it is shown as one replacement hunk.
std::vector<Edit> edits(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    const size_t n = a.size(), m = b.size();
    std::vector<Edit> out;
    if (n * m > 4'000'000) {
        for (const auto& l : a) out.push_back({'-', &l});
        for (const auto& l : b) out.push_back({'+', &l});
        return out;
    }
    std::vector<std::vector<uint32_t>> L(n + 1, std::vector<uint32_t>(m + 1, 0));
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;) L[i][j] = a[i] == b[j] ? L[i + 1][j + 1] + 1 : std::max(L[i + 1][j], L[i][j + 1]);
    size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && a[i] == b[j]) {
            out.push_back({' ', &a[i]});
            ++i, ++j;
        } else if (i < n && (j == m || L[i + 1][j] >= L[i][j + 1])) {
            out.push_back({'-', &a[i++]});  // removals first, as diff -u prints them
        } else {
            out.push_back({'+', &b[j++]});
        }
    }
    return out;
}

}  // namespace

std::string unified_diff(const std::string& path, const std::optional<std::string>& a, const std::optional<std::string>& b) {
    const auto la = split_lines(a.value_or("")), lb = split_lines(b.value_or(""));
    const auto e = edits(la, lb);
    const std::string rel = path.starts_with("/") ? path : "/" + path;
    std::string out = fmt::format("--- {}\n+++ {}\n", a ? "a" + rel : std::string("/dev/null"), b ? "b" + rel : std::string("/dev/null"));
    constexpr size_t ctx = 3;
    size_t k = 0;
    while (k < e.size()) {
        // Find the next change, then extend the hunk while changes are
        // within 2*ctx lines of each other.
        size_t first = k;
        while (first < e.size() && e[first].kind == ' ') ++first;
        if (first == e.size()) break;
        size_t start = first >= ctx ? first - ctx : 0;
        size_t end = first;
        for (size_t p = first; p < e.size(); ++p) {
            if (e[p].kind != ' ') end = p + 1;
            else if (p - end >= 2 * ctx) break;
        }
        end = std::min(e.size(), end + ctx);
        size_t a0 = 0, b0 = 0;
        for (size_t p = 0; p < start; ++p) {
            if (e[p].kind != '+') ++a0;
            if (e[p].kind != '-') ++b0;
        }
        size_t ac = 0, bc = 0;
        std::string body;
        for (size_t p = start; p < end; ++p) {
            if (e[p].kind != '+') ++ac;
            if (e[p].kind != '-') ++bc;
            body += e[p].kind;
            body += *e[p].line;
            body += '\n';
        }
        out += fmt::format("@@ -{},{} +{},{} @@\n", ac ? a0 + 1 : a0, ac, bc ? b0 + 1 : b0, bc);
        out += body;
        k = end;
    }
    return out;
}

}  // namespace kvmready::fix
