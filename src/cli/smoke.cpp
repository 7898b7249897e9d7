#include <unistd.h>

#include <iostream>

#include "cli/cli.hpp"
#include "cli/probe_cli.hpp"
#include "core/errors.hpp"
#include "smoke/smoke.hpp"
#include "util/utf8.hpp"

namespace kvmready::cli {

namespace {

struct SmokeCli {
    smoke::SmokeOptions opt;
    bool json = false;
    std::string color = "auto";
};

int run_smoke_cli(const SmokeCli& c) {
    smoke::install_signal_handlers();
    const smoke::SmokeReport r = smoke::run_smoke(c.opt);
    if (c.json) {
        std::cout << util::dump_json(smoke::to_json(r), 2) << "\n";
    } else {
        const char* nc = std::getenv("NO_COLOR");
        const bool color = c.color == "always" || (c.color == "auto" && isatty(STDOUT_FILENO) == 1 && !(nc && *nc));
        std::cout << smoke::render_text(r, color);
    }
    std::cout.flush();
    return r.exit_code;
}

}  // namespace

Action setup_smoke(CLI::App& app) {
    auto c = std::make_shared<SmokeCli>();
    auto& o = c->opt;
    auto* sub = app.add_subcommand("smoke", "Boot a throwaway VM through libvirt and prove disk, NIC and (Linux guest) network end to end.");
    add_request_options(sub, o,
                        {nullptr, "libvirt URI (default qemu:///system)", "libvirt network for the guest's NIC (default: default)",
                         "storage pool for the throwaway volume (default: default)",
                         "attach the NIC to this Linux bridge instead of a libvirt network"});
    sub->get_option("--network")->excludes("--bridge");
    sub->add_option("--accel", o.accel, "kvm, tcg or auto (default: KVM when it works, else TCG with a diagnosis)")
        ->check(CLI::IsMember({"kvm", "tcg", "auto"}));
    sub->add_option("--guest", o.guest, "builtin (tiny bare-metal guest) or linux")->check(CLI::IsMember({"builtin", "linux"}));
    sub->add_option("--kernel", o.kernel, "boot this kernel/guest file instead of the default");
    sub->add_option("--initrd", o.initrd, "use this initramfs instead of the generated one");
    sub->add_option("--append", o.append, "extra kernel command line");
    sub->add_option("--timeout", o.timeout_s, "seconds the guest gets to report every stage (default 30)");
    sub->add_flag("--keep", o.keep, "leave the domain, volume and files for debugging and print how to remove them");
    sub->add_flag("--json", c->json, "print one JSON object (schema in kvmready(1), SMOKE)");
    sub->add_option("--color", c->color, "auto, always or never")->check(CLI::IsMember({"auto", "always", "never"}));
    return [c] { return run_smoke_cli(*c); };
}

}  // namespace kvmready::cli
