// The kernel command line as the checks read it (/proc/cmdline) and change it
// (through the boot loader this host uses: grubby, GRUB, systemd-boot).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/facts.hpp"

namespace kvmready::checks {

struct KernelArg {
    std::string key, value;
    bool has_value = false;
};

// The kernel's own words, '-' in keys read as '_'; init's arguments after
// "--" are not kernel parameters.
std::vector<KernelArg> kernel_args(const std::string& cmdline);
// The value of the last key=value (the kernel lets the last one win).
std::optional<std::string> arg_value(const std::vector<KernelArg>& args, const std::string& key);

// A remediation that changes the kernel command line: the text to show and
// the commands for this host's boot loader.
struct CmdlinePlan {
    std::string text;
    std::vector<std::string> commands;
};
CmdlinePlan add_kernel_arg(const BootFacts& b, const std::string& arg);
CmdlinePlan remove_kernel_arg(const BootFacts& b, const std::string& arg);

}  // namespace kvmready::checks
