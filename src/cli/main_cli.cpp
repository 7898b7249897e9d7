#include <poll.h>
#include <unistd.h>

#include <csignal>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "core/errors.hpp"
#include "host/bounded_read.hpp"
#include "host/libvirt.hpp"

namespace kvmready::cli {

cpuid::Dump load_cpuid_dump(const std::string& path) {
    // A FIFO, /dev/zero or a directory named here must not hang or mislead.
    const std::string text = host::read_input_file(path, host::kMaxCpuidDumpBytes, path);
    try {
        return cpuid::parse(text, path);
    } catch (const cpuid::ParseError& e) {
        throw DataError(e.what());
    }
}

namespace {
std::string g_command_line;
}

const std::string& command_line() { return g_command_line; }

namespace {
// stdout is a pipe whose reader has gone (`kvmready check | head -1`): the
// kernel flags the write end with POLLERR.
bool stdout_reader_gone() {
    pollfd p{STDOUT_FILENO, POLLOUT, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}
}  // namespace

int run(int argc, char** argv) {
    // A closed stdout (`| head`) or a daemon that hangs up (libvirt.so writes
    // to its socket) must end in EPIPE, not kill the process. Children get
    // SIGPIPE back at its default (host::spawn_piped, run_process).
    ::signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < argc; ++i) {
        std::string a = i == 0 ? "kvmready" : argv[i];
        if (a.find_first_of(" \t'\"") != std::string::npos) a = "'" + a + "'";
        g_command_line += (i ? " " : "") + a;
    }
    CLI::App app{"kvmready: can this Linux host run KVM virtual machines, and if not, why and how to fix it."};
    app.name("kvmready");
    app.set_version_flag("-V,--version", std::string("kvmready ") + KVMREADY_VERSION);
    app.require_subcommand(1);
    app.footer("Exit status: 0 ready, 1 not ready, 3 undetermined, 64 usage, 65 bad input data, 66 input missing, 69 watch cannot listen to device events, "
               "70 internal error, 73 an output file cannot be created, 75 another fix runs, 77 needs root; "
               "check --format nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; "
               "fleet: 0 every host ready and reported, 1 not, 66 no readable report. See kvmready(1), EXIT STATUS.");
    std::vector<std::pair<CLI::App*, Action>> actions;
    Action check = setup_check(app);
    actions.emplace_back(app.get_subcommand("check"), check);
    actions.emplace_back(app.get_subcommand("explain"), setup_explain(app));
    actions.emplace_back(app.get_subcommand("cpuid"), setup_cpuid(app));
    actions.emplace_back(app.get_subcommand("report"), setup_report(app));
    actions.emplace_back(app.get_subcommand("smoke"), setup_smoke(app));
    actions.emplace_back(app.get_subcommand("fix"), setup_fix(app));
    actions.emplace_back(app.get_subcommand("fleet"), setup_fleet(app));
    actions.emplace_back(app.get_subcommand("watch"), setup_watch(app));
    actions.emplace_back(app.get_subcommand("compare"), setup_compare(app));
    actions.emplace_back(app.get_subcommand("ansible-module"), setup_ansible_module(app));
    actions.emplace_back(app.get_subcommand("__doc-lists"), setup_doc_lists(app));
    actions.emplace_back(app.get_subcommand("__completion"), setup_completion(app));
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
        // CLI11's own print names neither the tool nor the subcommand
        // ("reports is required"): a script's log needs both.
        std::string where = "kvmready";
        for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
        std::cerr << where << ": " << e.what() << "\nRun `" << where << " --help` for its options.\n";
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
            if (std::cout.fail()) {
                // Whoever read the output stopped reading: that ends the run
                // quietly with its own verdict, not as a failure.
                if (stdout_reader_gone()) std::_Exit(code);
                std::cerr << "kvmready: cannot write the output: " << std::strerror(errno) << "\n";
                return kExitCantCreat;
            }
            std::_Exit(code);
        }
        return kExitUsage;
    } catch (const ExitError& e) {
        if (std::cout.fail() && stdout_reader_gone()) return e.code;
        std::cerr << "kvmready: " << e.what() << "\n";
        return e.code;
    } catch (const std::exception& e) {
        std::cerr << "kvmready: internal error: " << e.what() << "\n";
        return kExitSoftware;
    }
}

}  // namespace kvmready::cli
