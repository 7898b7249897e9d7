#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "core/errors.hpp"
#include "host/libvirt.hpp"

namespace kvmready::cli {

cpuid::Dump load_cpuid_dump(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const int e = errno;
        throw NoInputError(fmt::format("{}: {}", path, std::strerror(e)));
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw NoInputError(fmt::format("{}: read error", path));
    try {
        return cpuid::parse(ss.str(), path);
    } catch (const cpuid::ParseError& e) {
        throw DataError(e.what());
    }
}

namespace {
std::string g_command_line;
}

const std::string& command_line() { return g_command_line; }

int run(int argc, char** argv) {
    for (int i = 0; i < argc; ++i) {
        std::string a = i == 0 ? "kvmready" : argv[i];
        if (a.find_first_of(" \t'\"") != std::string::npos) a = "'" + a + "'";
        g_command_line += (i ? " " : "") + a;
    }
    CLI::App app{"kvmready: can this Linux host run KVM virtual machines, and if not, why and how to fix it."};
    app.name("kvmready");
    app.set_version_flag("-V,--version", std::string("kvmready ") + KVMREADY_VERSION);
    app.require_subcommand(1);
    app.footer("Exit status: 0 ready, 1 not ready, 3 undetermined, 64 usage, 65 bad input data, 66 input missing, "
               "70 internal error, 75 another fix runs, 77 needs root. See kvmready(1).");
    std::vector<std::pair<CLI::App*, Action>> actions;
    Action check = setup_check(app);
    actions.emplace_back(app.get_subcommand("check"), check);
    actions.emplace_back(app.get_subcommand("explain"), setup_explain(app));
    actions.emplace_back(app.get_subcommand("cpuid"), setup_cpuid(app));
    actions.emplace_back(app.get_subcommand("report"), setup_report(app));
    actions.emplace_back(app.get_subcommand("smoke"), setup_smoke(app));
    actions.emplace_back(app.get_subcommand("fix"), setup_fix(app));
    if (argc < 2) {
        std::cerr << app.help() << "\nkvmready: a subcommand is required (try `kvmready check`)\n";
        return kExitUsage;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return kExitUsage;
    }
    try {
        for (auto& [sub, action] : actions) {
            if (!sub->parsed()) continue;
            const int code = action();
            // Everything the action owned is released by now; static
            // destructors (the registry, libvirt's globals) have nothing to
            // save, and a thread may still be blocked in libvirt on a hung
            // daemon, which must not watch them run.
            std::cout.flush();
            std::cerr.flush();
            if (std::cout.fail()) return kExitCantCreat;
            std::_Exit(code);
        }
        return kExitUsage;
    } catch (const ExitError& e) {
        std::cerr << "kvmready: " << e.what() << "\n";
        return e.code;
    } catch (const std::exception& e) {
        std::cerr << "kvmready: internal error: " << e.what() << "\n";
        return kExitSoftware;
    }
}

}  // namespace kvmready::cli
