#include "cli/cli.hpp"

int main(int argc, char** argv) { return kvmready::cli::run(argc, argv); }
