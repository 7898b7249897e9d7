#pragma once
// Libraries that only some commands need (libvirt, libarchive, libxml2) are
// loaded with dlopen when first used instead of being linked: each linked
// library costs every run its mapping, relocations and initialisers (libarchive
// alone drags in nettle, lzma, zstd, xml2 and ICU, ~1 ms here), and `check`
// must stay within a few milliseconds. The function pointers keep the types
// of the library's own header, so calls are checked by the compiler as usual.
#include <dlfcn.h>

#include <mutex>
#include <string>

namespace kvmready::util {

// Loads `soname` once per process (never unloaded: callers may keep pointers)
// and fills an Api struct through `resolve(sym, api)`, where sym(name) returns
// the symbol or records what is missing. nullptr and *error on failure.
template <class Api, class Resolve>
const Api* load_api(const char* soname, const char* package, Resolve resolve, std::string* error) {
    static std::once_flag once;
    static Api api;
    static std::string err;
    std::call_once(once, [&] {
        void* h = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char* e = ::dlerror();
            err = std::string("cannot load ") + soname + " (Debian package " + package + "): " + (e ? e : "not found");
            return;
        }
        auto sym = [&](const char* name) -> void* {
            void* p = ::dlsym(h, name);
            if (!p && err.empty()) err = std::string(soname) + " lacks " + name + " (too old)";
            return p;
        };
        resolve(sym, api);
    });
    if (error) *error = err;
    return err.empty() ? &api : nullptr;
}

}  // namespace kvmready::util

// For an X-macro list of function names: one typed member per function, and
// the statement that resolves it inside a resolve(sym, api) callback.
#define KVMREADY_API_MEMBER(name) decltype(&::name) name = nullptr;
#define KVMREADY_API_RESOLVE(name) api.name = reinterpret_cast<decltype(api.name)>(sym(#name));
