#include "core/derived.hpp"

namespace kvmready {

namespace {

// cgroup path fragments that container runtimes create for their payloads.
struct RuntimeMark {
    const char* fragment;
    const char* runtime;
};
constexpr RuntimeMark kRuntimeMarks[] = {
    {"/docker/", "docker"},       {"/docker-", "docker"},       {"/kubepods", "Kubernetes"}, {"/libpod-", "podman"},
    {"/lxc/", "LXC"},             {"/lxc.payload", "LXC"},      {"/containerd", "containerd"}, {"/machine.slice/", "systemd-nspawn"},
};

std::string runtime_from_cgroup(const std::string& cg) {
    for (const auto& m : kRuntimeMarks)
        if (cg.find(m.fragment) != std::string::npos) return m.runtime;
    return "";
}

}  // namespace

Container container_of(const HypervisorFacts& h) {
    Container c;
    if (!h.container_env.empty()) c.runtime = h.container_env, c.basis = "container= in PID 1's environment";
    else if (h.containerenv_file) c.runtime = "podman", c.basis = "/run/.containerenv";
    else if (auto rt = runtime_from_cgroup(h.pid1_cgroup); !rt.empty()) c.runtime = rt, c.basis = "PID 1's cgroup path";
    else if (h.dockerenv_file && h.root_fstype == "overlay") c.runtime = "docker", c.basis = "/.dockerenv and an overlay root filesystem";
    c.dockerenv_only = h.dockerenv_file && c.runtime.empty();
    return c;
}

Derived derive(const Facts& f) {
    return {kvm_state(f), outer_hypervisor(f), container_of(f.hypervisor)};
}

}  // namespace kvmready
