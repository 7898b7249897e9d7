#include "checks/kernel_cmdline.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "util/text.hpp"

namespace kvmready::checks {

namespace {

bool grub_has(const BootFacts& b, const std::string& arg) {
    for (const auto* v : {&b.grub_cmdline_linux, &b.grub_cmdline_default})
        if (*v && util::has_word(**v, arg)) return true;
    return false;
}

std::string regenerate_grub(const BootFacts& b) {
    return b.update_grub || !b.grubby ? "update-grub" : "grub2-mkconfig -o /boot/grub2/grub.cfg";
}

}  // namespace

// The kernel's own words; init's arguments after "--" are not kernel parameters.
std::vector<KernelArg> kernel_args(const std::string& cmdline) {
    std::vector<KernelArg> out;
    std::string cur;
    bool quoted = false;
    auto flush = [&] {
        if (cur.empty()) return;
        KernelArg a;
        auto eq = cur.find('=');
        a.key = cur.substr(0, eq);
        if (eq != std::string::npos) {
            a.value = cur.substr(eq + 1);
            a.has_value = true;
        }
        std::replace(a.key.begin(), a.key.end(), '-', '_');
        out.push_back(std::move(a));
        cur.clear();
    };
    for (char c : cmdline) {
        if (c == '"') quoted = !quoted;
        else if (std::isspace(static_cast<unsigned char>(c)) && !quoted) {
            if (cur == "--") return out;
            flush();
        } else cur.push_back(c);
    }
    if (cur != "--") flush();
    return out;
}

std::optional<std::string> arg_value(const std::vector<KernelArg>& args, const std::string& key) {
    std::optional<std::string> v;
    for (const auto& a : args)
        if (a.key == key) v = a.value;  // the last one wins
    return v;
}

CmdlinePlan add_kernel_arg(const BootFacts& b, const std::string& arg) {
    if (b.grubby)
        return {fmt::format("Add {} to every installed kernel's boot entry with grubby, then reboot.", arg),
                {fmt::format("grubby --update-kernel=ALL --args=\"{}\"", arg)}};
    if (b.grub_default_read && grub_has(b, arg))
        return {fmt::format("{} is already in /etc/default/grub but not in the running kernel's command line: regenerate "
                            "grub.cfg and reboot.",
                            arg),
                {regenerate_grub(b)}};
    if (b.kernel_cmdline_file && !b.grub_default_read)
        return {fmt::format("Append {} to /etc/kernel/cmdline (systemd-boot), regenerate the boot entries, then reboot.", arg),
                {fmt::format("sed -i '1s/$/ {}/' /etc/kernel/cmdline", arg), "kernel-install add \"$(uname -r)\" \"/boot/vmlinuz-$(uname -r)\""}};
    std::string edit = !b.grub_default_read || b.grub_cmdline_linux
                           ? fmt::format("sed -i 's/^GRUB_CMDLINE_LINUX=\"/&{} /' /etc/default/grub", arg)
                           : fmt::format("echo 'GRUB_CMDLINE_LINUX=\"{}\"' >> /etc/default/grub", arg);
    return {fmt::format("Add {} to GRUB_CMDLINE_LINUX in /etc/default/grub, regenerate grub.cfg, then reboot.", arg),
            {edit, regenerate_grub(b)}};
}

CmdlinePlan remove_kernel_arg(const BootFacts& b, const std::string& arg) {
    if (b.grubby)
        return {fmt::format("Remove {} from every installed kernel's boot entry with grubby, then reboot.", arg),
                {fmt::format("grubby --update-kernel=ALL --remove-args=\"{}\"", arg)}};
    return {fmt::format("Remove {} from the kernel command line (GRUB_CMDLINE_LINUX* in /etc/default/grub or a file in "
                        "/etc/default/grub.d/), regenerate grub.cfg, then reboot.",
                        arg),
            {fmt::format("sed -i 's/ *{}//' /etc/default/grub", arg), regenerate_grub(b)}};
}

}  // namespace kvmready::checks
