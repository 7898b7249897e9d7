// pkg.virt-stack's shared pieces: the stack per package manager family and
// the package manager's command lines (fixes/packages.cpp), used by the
// planner, its op (fixes/ops_packages.cpp) and the tests.
#pragma once

#include <string>
#include <vector>

namespace kvmready::fix {

// One part of the stack ("qemu", "libvirt", "firmware") as a family names it.
struct StackPart {
    std::string what;
    std::vector<std::string> packages;
};

// The stack for "apt", "dnf" or "yum" on arch (/proc/sys/kernel/arch); empty
// for another family.
std::vector<StackPart> stack_for(const std::string& family, const std::string& arch);

// `env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends PKG...`,
// `dnf install -y PKG...` (or yum).
std::vector<std::string> install_argv(const std::string& family, const std::vector<std::string>& packages);
// `env DEBIAN_FRONTEND=noninteractive apt-get update`.
std::vector<std::string> update_argv();

}  // namespace kvmready::fix
