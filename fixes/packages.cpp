// pkg.virt-stack: install the virtualization stack a bare OS lacks, with the
// host's own package manager (Facts::config.packages, core/facts_packages.hpp):
//  * QEMU when no system emulator was found (qemu.binary), libvirt when it is
//    not installed (libvirt.daemon), and the UEFI firmware with either;
//  * each as the family names it (stack_for below); only the packages the
//    host does not have are planned, so after an apply nothing is;
//  * --packages names the packages instead (a site's own stack, or a small
//    one in tests).
// The op (fixes/ops_packages.cpp) journals which packages the run really
// installed, dependencies included, and undo purges exactly those.
// bridge-utils is not here: net.bridge installs it where ifupdown needs it.
#include <algorithm>

#include <fmt/format.h>

#include "fixes/fixes.hpp"
#include "fixes/packages.hpp"
#include "util/text.hpp"

namespace kvmready::fix {

std::vector<StackPart> stack_for(const std::string& family, const std::string& arch) {
    const bool arm = arch == "aarch64";
    if (family == "apt")  // Debian and Ubuntu name the stack alike
        return {{"qemu", {arm ? "qemu-system-arm" : "qemu-system-x86", "qemu-utils"}},
                {"libvirt", {"libvirt-daemon-system", "dnsmasq-base"}},  // dnsmasq: the NAT network (a Recommends)
                {"firmware", {arm ? "qemu-efi-aarch64" : "ovmf"}}};
    if (family == "dnf" || family == "yum")
        return {{"qemu", {"qemu-kvm", "qemu-img"}}, {"libvirt", {"libvirt"}}, {"firmware", {arm ? "edk2-aarch64" : "edk2-ovmf"}}};
    return {};
}

std::vector<std::string> install_argv(const std::string& family, const std::vector<std::string>& packages) {
    std::vector<std::string> argv;
    if (family == "apt") argv = {"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends"};
    else argv = {family, "install", "-y"};
    argv.insert(argv.end(), packages.begin(), packages.end());
    return argv;
}

std::vector<std::string> update_argv() { return {"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update"}; }

namespace {

// Which parts of the stack the findings ask for: QEMU when no emulator was
// found, libvirt when it is not installed, the firmware with either.
std::vector<std::string> wanted_parts(const Facts& f) {
    if (!f.virt.probed) return {};
    std::vector<std::string> parts;
    if (f.virt.qemu.path.empty()) parts.emplace_back("qemu");
    if (!f.virt.libvirt.installed) parts.emplace_back("libvirt");
    if (!parts.empty()) parts.emplace_back("firmware");
    return parts;
}

std::string stack_reasons(const PlanInput& in) {
    std::string out;
    for (const auto& f : in.report.findings) {
        if (f.id != ids::qemu_binary.text && f.id != ids::libvirt_daemon.text) continue;
        if (f.status == Status::Pass) continue;
        out += (out.empty() ? "" : "; ") + f.id + ": " + f.message;
    }
    return out;
}

std::optional<Plan> plan_stack(const PlanInput& in) {
    if (in.offline()) return std::nullopt;  // the package manager changes the running system only
    const auto& pk = in.config().packages;
    if (!pk.probed || pk.family.empty()) return std::nullopt;
    std::vector<std::string> want;
    std::string why;
    if (!in.options.packages.empty()) {
        want = in.options.packages;
        why = "--packages " + util::join(in.options.packages, ",");
    } else {
        const auto parts = wanted_parts(in.facts);
        for (const auto& part : stack_for(pk.family, in.facts.virt.qemu.arch))
            if (std::find(parts.begin(), parts.end(), part.what) != parts.end()) want.insert(want.end(), part.packages.begin(), part.packages.end());
        why = stack_reasons(in);
    }
    std::vector<std::string> missing, present;
    for (const auto& p : want) {
        if (std::find(missing.begin(), missing.end(), p) != missing.end()) continue;
        (pk.known() && pk.has(p) ? present : missing).push_back(p);
    }
    if (missing.empty()) return std::nullopt;

    Plan p;
    p.fix_id = ids::fix::pkg_virt_stack.text;
    p.applicability = Applicability::Confirm;  // installs packages (and their maintainer scripts run)
    p.repairs = {ids::qemu_binary.text, ids::libvirt_daemon.text};
    p.reason = why.empty() ? "the virtualization stack is not installed" : why;
    Step s;
    s.op = "packages.install";
    s.summary = fmt::format("install {} with {}", util::join(missing, " "), pk.family);
    s.runtime = true;
    const bool update = pk.family == "apt" && !pk.lists_present;
    if (update) s.commands.push_back(update_argv());
    s.commands.push_back(install_argv(pk.family, missing));
    s.args = {{"family", pk.family}, {"packages", missing}, {"update", update}};
    p.steps.push_back(s);
    p.notes.push_back(fmt::format("package manager: {} ({})", pk.family, pk.family_from));
    if (!present.empty()) p.notes.push_back("installed already: " + util::join(present, " "));
    if (!pk.known()) p.notes.push_back(fmt::format("installed state unknown ({}); {} skips what is installed", pk.error, pk.family));
    if (update) p.notes.push_back("no package lists yet (/var/lib/apt/lists): apt-get update runs first");
    p.notes.push_back("undo purges exactly the packages this run installed (dependencies included), none that were there before");
    return p;
}

}  // namespace

FixSpec fix_pkg_virt_stack() {
    return {ids::fix::pkg_virt_stack.text, "Install the virtualization stack", {ids::qemu_binary, ids::libvirt_daemon},
            "Installs what the host lacks of QEMU, libvirt and the UEFI firmware with its package manager: apt "
            "(Debian, Ubuntu: qemu-system-x86 qemu-utils libvirt-daemon-system dnsmasq-base ovmf, --no-install-recommends) or "
            "dnf/yum (RHEL family: qemu-kvm qemu-img libvirt edk2-ovmf); --packages names other packages. The journal lists the "
            "packages the run installed, dependencies included; undo purges exactly those.",
            plan_stack};
}

}  // namespace kvmready::fix
