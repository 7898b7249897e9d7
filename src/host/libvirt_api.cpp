#include "host/libvirt_api.hpp"

#ifdef KVMREADY_HAVE_LIBVIRT
#include <cstdlib>
#include <mutex>

namespace kvmready::host::vir {

namespace {

void quiet(void*, virErrorPtr) {}  // libvirt prints every error to stderr by default

}  // namespace

const Api* load(std::string* error) {
    const Api* a = util::load_api<Api>(
        "libvirt.so.0", "libvirt0", [](auto sym, Api& api) { KVMREADY_LIBVIRT_FUNCTIONS(KVMREADY_API_RESOLVE) }, error);
    if (!a) return nullptr;
    static std::once_flag init;
    std::call_once(init, [a] {
        a->virInitialize();
        a->virSetErrorFunc(nullptr, quiet);
    });
    return a;
}

const Api& api() {
    static const Api* a = load(nullptr);
    return *a;
}

std::string last_error() {
    const char* m = api().virGetLastErrorMessage();
    return m ? m : "unknown libvirt error";
}

int last_code() {
    virErrorPtr e = api().virGetLastError();
    return e ? e->code : 0;
}

std::string take(char* s) {
    std::string out = s ? s : "";
    std::free(s);
    return out;
}

}  // namespace kvmready::host::vir
#endif
