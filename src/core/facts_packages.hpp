// PackageFacts: which package manager a host has and which packages are
// installed, for pkg.virt-stack (fixes/packages.cpp). Part of ConfigFacts, so
// it is probed for `fix`, `report` and `check --record`, recorded in bundles
// and replayed by `fix --from`: the plan for a customer's bare host is the
// plan made on it.
//
// The installed state comes from where each family keeps it:
//  * apt: /var/lib/dpkg/status, read through the Host (a file; no dpkg run);
//  * dnf/yum: the rpm database is a BerkeleyDB/SQLite file only rpm reads,
//    so `rpm -qa --qf '%{NAME}\n'` runs through the Host's process runner
//    (a recorded tree or bundle answers with the recorded run); without an
//    answer the state is unknown (source "") and says why.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready {

namespace host {
class Host;
}

struct PackageFacts {
    bool probed = false;
    std::string family;                  // "apt", "dnf", "yum"; "" when no known package manager
    std::string family_from;             // why: "os-release debian, /usr/bin/apt-get"
    std::vector<std::string> tools;      // package tools found (/usr/bin/apt-get, /usr/bin/dnf, ...)
    std::string source;                  // "dpkg-status", "rpm"; "" when the installed state is unknown
    std::string error;                   // why it is unknown
    std::vector<std::string> installed;  // installed package names, sorted, each once
    bool lists_present = false;          // apt: /var/lib/apt/lists holds package indexes (else apt-get update first)

    [[nodiscard]] bool known() const { return !source.empty(); }
    [[nodiscard]] bool has(const std::string& name) const;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PackageFacts, probed, family, family_from, tools, source, error, installed, lists_present)

// The rpm query the probe runs (and a recording must hold) for dnf/yum hosts.
std::vector<std::string> rpm_installed_query();

// Installed packages in dpkg's status file: stanzas whose Status is
// "install ok installed" (or any "... installed" state dpkg keeps files for).
std::vector<std::string> dpkg_installed(const std::string& status_text);

// Probes the family (os_id: /etc/os-release ID and ID_LIKE, as KernelFacts
// holds it) and the installed packages, through the Host.
PackageFacts probe_packages(const host::Host& h, const std::string& os_id);

}  // namespace kvmready
