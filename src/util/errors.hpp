// Errors that map to documented exit codes (see man/kvmready.1, EXIT STATUS).
#pragma once

#include <stdexcept>
#include <string>

namespace kvmready {

enum ExitCode : int {
    kExitReady = 0,
    kExitNotReady = 1,
    kExitUndetermined = 3,
    kExitUsage = 64,
    kExitDataErr = 65,
    kExitNoInput = 66,
    kExitUnavailable = 69,
    kExitSoftware = 70,
    kExitCantCreat = 73,
    kExitTempFail = 75,   // another `kvmready fix` holds the lock
    kExitNoPerm = 77,
};

struct ExitError : std::runtime_error {
    int code;
    ExitError(int code_, const std::string& what) : std::runtime_error(what), code(code_) {}
};

// Malformed input data: a corrupt dump, a broken recorded host tree.
struct DataError : ExitError {
    explicit DataError(const std::string& what) : ExitError(kExitDataErr, what) {}
};

// An input path given on the command line does not exist or cannot be read.
struct NoInputError : ExitError {
    explicit NoInputError(const std::string& what) : ExitError(kExitNoInput, what) {}
};

struct UsageError : ExitError {
    explicit UsageError(const std::string& what) : ExitError(kExitUsage, what) {}
};

}  // namespace kvmready
