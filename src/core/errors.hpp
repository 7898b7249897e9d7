// The exit-code errors live in util/ (the host layer throws them too, and
// may not include the core); this name stays for the layers above.
#pragma once

#include "util/errors.hpp"
