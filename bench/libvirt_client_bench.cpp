// kvmready's own client of libvirt's RPC protocol (src/host/libvirt_wire.cpp)
// against libvirt's client library (libvirt.so.0, dlopen()ed by
// src/host/libvirt_api.cpp), each taking the snapshot one `check` takes
// (query_libvirt: type, versions, capabilities, domain capabilities for kvm
// and qemu, networks, pools) from a real, private libvirtd started the way
// the tests start one (tests/support/libvirt_daemon.hpp: its own network and
// mount namespaces, stopped by PID at exit), with one network and two pools.
// Cold: the first query of a fresh process, loading libvirt.so included;
// warm: later queries. tests/libvirt_wire_test.cpp holds the wire client's
// snapshot equal to libvirt.so's field by field.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fresh_process.hpp"
#include "host/libvirt.hpp"
#include "support/libvirt_daemon.hpp"

namespace {

using namespace kvmready;
using host::LibvirtClient;
using testsupport::LibvirtDaemon;

constexpr int kTimeoutMs = 30000;

LibvirtClient client_named(const std::string& n) { return n == "library" ? LibvirtClient::library : LibvirtClient::wire; }

// The daemon, started by the first benchmark that needs it and stopped (by
// PID, namespace deleted) when the process exits. "" uri: why not in error.
struct Daemon {
    std::unique_ptr<LibvirtDaemon> d;
    std::string uri, error;
};

Daemon& daemon() {
    static Daemon s = [] {
        Daemon r;
        if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) {
            r.error = "no private libvirtd: " + why;
            return r;
        }
        LibvirtDaemon::Options o;
        // As Debian packages it: no authentication on the local sockets.
        o.config_append = {{"libvirtd.conf", "auth_unix_ro = \"none\"\nauth_unix_rw = \"none\"\nunix_sock_rw_perms = \"0700\"\n"}};
        r.d = std::make_unique<LibvirtDaemon>(o);
        try {
            r.d->start();
            for (std::vector<std::string> a :
                 {std::vector<std::string>{"net-define", "/usr/share/libvirt/networks/default.xml"}, {"net-start", "default"},
                  {"net-autostart", "default"}, {"pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images"},
                  {"pool-start", "default"}, {"pool-autostart", "default"},
                  {"pool-define-as", "spare", "dir", "--target", "/var/lib/libvirt"}}) {
                auto v = r.d->virsh(a);
                if (v.exit_code != 0) throw std::runtime_error("virsh " + a[0] + ": " + v.err + v.error);
            }
            r.uri = r.d->uri();
        } catch (const std::exception& e) {
            r.error = std::string("private libvirtd did not start: ") + e.what();
            r.d.reset();
        }
        return r;
    }();
    return s;
}

void warm(benchmark::State& st, LibvirtClient client) {
    const Daemon& d = daemon();
    if (d.uri.empty()) return st.SkipWithError(d.error.c_str());
    // The first query loads libvirt.so (library) and warms libvirtd's caches.
    const host::LibvirtSnapshot first = host::query_libvirt(d.uri, kTimeoutMs, client);
    if (!first.connected || first.networks.empty() || first.domcaps_qemu_xml.empty())
        return st.SkipWithError(("query failed: " + first.error).c_str());
    for (auto _ : st) benchmark::DoNotOptimize(host::query_libvirt(d.uri, kTimeoutMs, client));
    st.SetLabel(first.client);
}
void BM_LibvirtSnapshotWarm_Wire(benchmark::State& st) { warm(st, LibvirtClient::wire); }
void BM_LibvirtSnapshotWarm_Library(benchmark::State& st) { warm(st, LibvirtClient::library); }
BENCHMARK(BM_LibvirtSnapshotWarm_Wire)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LibvirtSnapshotWarm_Library)->UseRealTime()->Unit(benchmark::kMillisecond);

// One query, first thing in a fresh process.
double fresh_query(const std::vector<std::string>& args) {
    const auto t0 = std::chrono::steady_clock::now();
    const host::LibvirtSnapshot s = host::query_libvirt(args.at(1), kTimeoutMs, client_named(args.at(0)));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!s.connected || s.networks.empty()) {
        std::fprintf(stderr, "query failed: %s\n", s.error.c_str());
        return -1;
    }
    return secs;
}
const bench::RegisterFresh reg_query("libvirt-query", fresh_query);

void cold(benchmark::State& st, const char* client) {
    const Daemon& d = daemon();
    if (d.uri.empty()) return st.SkipWithError(d.error.c_str());
    bench::measure_fresh(st, "libvirt-query", {client, d.uri});
}
void BM_LibvirtSnapshotCold_Wire(benchmark::State& st) { cold(st, "wire"); }
void BM_LibvirtSnapshotCold_Library(benchmark::State& st) { cold(st, "library"); }
BENCHMARK(BM_LibvirtSnapshotCold_Wire)->UseManualTime()->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LibvirtSnapshotCold_Library)->UseManualTime()->Iterations(20)->Unit(benchmark::kMillisecond);

}  // namespace
