// One file per subcommand: each adds its options to the CLI11 tree and
// returns the action to run when it is chosen.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "cpuid/cpuid.hpp"

namespace kvmready::cli {

using Action = std::function<int()>;

Action setup_check(CLI::App& app);
Action setup_explain(CLI::App& app);
Action setup_cpuid(CLI::App& app);
Action setup_report(CLI::App& app);
Action setup_smoke(CLI::App& app);
Action setup_fix(CLI::App& app);
Action setup_fleet(CLI::App& app);
Action setup_watch(CLI::App& app);
Action setup_compare(CLI::App& app);
Action setup_ansible_module(CLI::App& app);  // kvmready as an Ansible module (cli/ansible_module.cpp)
Action setup_doc_lists(CLI::App& app);  // hidden: README/man lists from the registries
Action setup_completion(CLI::App& app);  // hidden: bash/zsh/fish completion from this tree

// The completion script for `shell` (bash, zsh, fish) of the subcommands
// and options registered in `app` so far.
std::string completion_script(const CLI::App& app, const std::string& shell);

// Reads and parses a CPUID dump file; throws NoInputError / DataError.
cpuid::Dump load_cpuid_dump(const std::string& path);

int run(int argc, char** argv);

// The command line as typed, for the support bundle's manifest.
const std::string& command_line();

}  // namespace kvmready::cli
