// The package probe (core/facts_packages.hpp): the package manager family
// from /etc/os-release and the tools present, and the installed packages from
// dpkg's status file (apt) or an rpm query (dnf/yum), all through the Host.
#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "core/facts_packages.hpp"
#include "host/host.hpp"
#include "util/text.hpp"

namespace kvmready {

bool PackageFacts::has(const std::string& name) const { return std::binary_search(installed.begin(), installed.end(), name); }

std::vector<std::string> rpm_installed_query() { return {"rpm", "-qa", "--qf", "%{NAME}\\n"}; }

std::vector<std::string> dpkg_installed(const std::string& status_text) {
    std::vector<std::string> out;
    std::string name, status;
    auto flush = [&] {
        // "install ok installed", "hold ok installed": unpacked and configured.
        // half-installed, config-files (removed, not purged) and the like are not.
        if (!name.empty() && status.size() >= 10 && status.ends_with(" installed")) out.push_back(name);
        name.clear();
        status.clear();
    };
    std::istringstream in(status_text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) {
            flush();
            continue;
        }
        if (line.rfind("Package:", 0) == 0) name = util::trim(line.substr(8));
        else if (line.rfind("Status:", 0) == 0) status = util::trim(line.substr(7));
    }
    flush();
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());  // Multi-Arch: one name per architecture
    return out;
}

namespace {

bool is_file(const host::Host& h, const std::string& path) {
    const auto st = h.stat(path);
    return st.exists && (st.type == "file" || st.type == "symlink");  // RHEL: /usr/bin/dnf -> dnf-3
}

// The family: os-release says which distribution this is, the tools say
// which manager it really has (a Debian-like with apt-get removed has none).
void detect_family(const host::Host& h, const std::string& os_id, PackageFacts& p) {
    const std::string os = " " + os_id + " ";
    auto is = [&](const char* id) { return os.find(std::string(" ") + id + " ") != std::string::npos; };
    for (const char* t : {"/usr/bin/apt-get", "/usr/bin/dpkg", "/usr/bin/dnf", "/usr/bin/yum", "/usr/bin/rpm"})
        if (is_file(h, t)) p.tools.push_back(t);
    auto tool = [&](const char* t) { return std::find(p.tools.begin(), p.tools.end(), t) != p.tools.end(); };
    const std::string from = os_id.empty() ? std::string("no os-release ID") : "os-release " + os_id;
    if ((is("debian") || is("ubuntu")) && tool("/usr/bin/apt-get")) {
        p.family = "apt";
        p.family_from = from + ", /usr/bin/apt-get";
    } else if ((is("rhel") || is("fedora") || is("centos") || is("rocky") || is("almalinux")) && (tool("/usr/bin/dnf") || tool("/usr/bin/yum"))) {
        p.family = tool("/usr/bin/dnf") ? "dnf" : "yum";
        p.family_from = from + ", /usr/bin/" + p.family;
    } else {
        p.family_from = from + (p.tools.empty() ? ", no apt-get, dnf or yum" : ": not a distribution kvmready installs packages on");
    }
}

void installed_apt(const host::Host& h, PackageFacts& p) {
    int err = 0;
    const auto text = h.read_file("/var/lib/dpkg/status", &err);
    if (!text) {
        p.error = fmt::format("/var/lib/dpkg/status cannot be read (errno {})", err);
        return;
    }
    p.installed = dpkg_installed(*text);
    p.source = "dpkg-status";
    for (const auto& n : h.list_dir("/var/lib/apt/lists"))
        if (n.ends_with("_Packages") || n.ends_with("_Packages.lz4") || n.ends_with("_Packages.gz") || n.ends_with("_Packages.xz"))
            p.lists_present = true;
}

void installed_rpm(const host::Host& h, PackageFacts& p) {
    const auto r = h.run(rpm_installed_query(), 30000);
    if (!r.started || r.exit_code != 0) {
        p.error = fmt::format("rpm -qa did not answer ({}): the installed state is unknown",
                              !r.started ? r.error : fmt::format("exit {}: {}", r.exit_code, util::trim(r.err)));
        return;
    }
    p.installed = util::words(r.out);
    std::sort(p.installed.begin(), p.installed.end());
    p.installed.erase(std::unique(p.installed.begin(), p.installed.end()), p.installed.end());
    p.source = "rpm";
}

}  // namespace

PackageFacts probe_packages(const host::Host& h, const std::string& os_id) {
    PackageFacts p;
    p.probed = true;
    detect_family(h, os_id, p);
    if (p.family == "apt") installed_apt(h, p);
    else if (!p.family.empty()) installed_rpm(h, p);
    return p;
}

}  // namespace kvmready
