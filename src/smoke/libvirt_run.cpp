// Ladder step (c). The domain is transient and started with
// VIR_DOMAIN_START_AUTODESTROY, so even a kvmready killed with SIGKILL leaves
// no running guest: libvirt destroys it when the connection drops. The volume
// and the run directory are ours to remove. The serial console is a plain
// file in the run directory that the tool polls; libvirt relabels it (and the
// kernel) for its QEMU user, which is why both live in a private directory
// and never in /boot.
#include "smoke/libvirt_run.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "core/facts_virt.hpp"
#include "smoke/common.hpp"
#include "smoke/serial_protocol.hpp"

#ifdef KVMREADY_HAVE_LIBVIRT
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "util/dynlib.hpp"
#include "util/text.hpp"
#endif

namespace kvmready::smoke {

namespace {

namespace fs = std::filesystem;

using util::shell_quote;
using util::xml_escape;

// The shared protocol parser (smoke/serial_protocol.hpp), under the name this file uses.
using Marker = SerialReport;

std::optional<Marker> parse_marker(const std::string& line) { return parse_serial_line(line); }

std::string tail_of(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(s.size() - n); }

std::string read_tail(const std::string& path, size_t n) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return "";
    std::ostringstream ss;
    ss << in.rdbuf();
    return tail_of(ss.str(), n);
}

}  // namespace

#ifndef KVMREADY_HAVE_LIBVIRT

std::string libvirt_client_unavailable() { return "kvmready was built without libvirt's headers (libvirt-dev)"; }

SmokeStep run_libvirt(const LibvirtRunConfig& cfg, std::vector<std::string>*, std::vector<std::string>*) {
    SmokeStep s;
    s.id = cfg.step_id;
    s.name = cfg.step_name;
    s.accel = cfg.accel;
    s.failure = "prerequisite";
    s.message = libvirt_client_unavailable();
    return s;
}

#else

namespace {

#define KVMREADY_SMOKE_LIBVIRT_FUNCTIONS(X) \
    X(virInitialize) \
    X(virEventRegisterDefaultImpl) \
    X(virEventRunDefaultImpl) \
    X(virConnectSetKeepAlive) \
    X(virConnectIsAlive) \
    X(virSetErrorFunc) \
    X(virGetLastError) \
    X(virGetLastErrorMessage) \
    X(virConnectOpen) \
    X(virConnectClose) \
    X(virStoragePoolLookupByName) \
    X(virStoragePoolIsActive) \
    X(virStoragePoolFree) \
    X(virStorageVolCreateXML) \
    X(virStorageVolGetPath) \
    X(virStorageVolUpload) \
    X(virStorageVolDelete) \
    X(virStorageVolFree) \
    X(virStreamNew) \
    X(virStreamSend) \
    X(virStreamFinish) \
    X(virStreamAbort) \
    X(virStreamFree) \
    X(virNetworkLookupByName) \
    X(virNetworkIsActive) \
    X(virNetworkGetXMLDesc) \
    X(virNetworkUpdate) \
    X(virNetworkRef) \
    X(virNetworkFree) \
    X(virDomainCreateXML) \
    X(virDomainGetState) \
    X(virDomainDestroy) \
    X(virDomainFree)

struct SmokeLibvirtApi {
    KVMREADY_SMOKE_LIBVIRT_FUNCTIONS(KVMREADY_API_MEMBER)
};

const SmokeLibvirtApi* api_or_null(std::string* error) {
    return util::load_api<SmokeLibvirtApi>(
        "libvirt.so.0", "libvirt0",
        [](auto sym, SmokeLibvirtApi& api) { KVMREADY_SMOKE_LIBVIRT_FUNCTIONS(KVMREADY_API_RESOLVE) }, error);
}

const SmokeLibvirtApi& lv() {
    static const SmokeLibvirtApi* a = api_or_null(nullptr);
    return *a;
}

void quiet(void*, virErrorPtr) {}

std::string last_error() {
    const char* m = lv().virGetLastErrorMessage();
    return m ? m : "unknown libvirt error";
}

int last_code() {
    virErrorPtr e = lv().virGetLastError();
    return e ? e->code : 0;
}

bool denied(int code, const std::string& msg) {
    return code == VIR_ERR_AUTH_FAILED || code == VIR_ERR_AUTH_CANCELLED || code == VIR_ERR_OPERATION_DENIED ||
           code == VIR_ERR_ACCESS_DENIED || code == VIR_ERR_AUTH_UNAVAILABLE || msg.find("Permission denied") != std::string::npos;
}

// virConnectOpen blocks for ever on a daemon that accepts and never answers:
// open on a thread and abandon it at the deadline (the process _exit()s at
// the end of the command, so the abandoned thread never sees destructors).
struct OpenResult {
    virConnectPtr conn = nullptr;
    bool timed_out = false;
    int code = 0;
    std::string error;
};

OpenResult open_with_deadline(const std::string& uri, int timeout_ms) {
    struct Shared {
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
        bool abandoned = false;
        OpenResult r;
    };
    auto sh = std::make_shared<Shared>();
    std::thread([sh, uri] {
        virConnectPtr c = lv().virConnectOpen(uri.c_str());
        OpenResult r;
        r.conn = c;
        if (!c) {
            r.error = last_error();
            r.code = last_code();
        }
        std::lock_guard<std::mutex> g(sh->m);
        if (sh->abandoned) {
            if (c) lv().virConnectClose(c);
            return;
        }
        sh->r = r;
        sh->done = true;
        sh->cv.notify_all();
    }).detach();
    std::unique_lock<std::mutex> g(sh->m);
    if (!sh->cv.wait_for(g, std::chrono::milliseconds(timeout_ms), [&] { return sh->done; })) {
        sh->abandoned = true;
        OpenResult r;
        r.timed_out = true;
        r.error = fmt::format("the libvirt daemon at {} accepted the connection but did not answer within {} ms", uri, timeout_ms);
        return r;
    }
    return sh->r;
}

struct Expect {
    std::string nonce;
    std::string mac;
    bool linux_guest = false;
};

// Checks a stage's values against what the host set up.
void judge_stage(const Marker& m, const Expect& e, SmokeStage& st) {
    if (!m.ok) {
        st.status = "fail";
        st.detail = m.values.count("reason") ? m.values.at("reason") : "the guest reported a failure";
        return;
    }
    st.status = "pass";
    if (m.stage == "disk") {
        const auto it = m.values.find("nonce");
        if (it == m.values.end() || it->second != e.nonce) {
            st.status = "fail";
            st.detail = it == m.values.end() ? "the guest reported no nonce"
                                             : fmt::format("the guest read nonce {} but the host wrote {}", it->second, e.nonce);
        } else {
            st.detail = "read back the nonce the host wrote";
        }
    } else if (m.stage == "nic") {
        const auto it = m.values.find("mac");
        std::string mac = it == m.values.end() ? "" : it->second;
        for (auto& c : mac) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!mac.empty() && mac != e.mac) {
            st.status = "fail";
            st.detail = fmt::format("the guest's NIC has MAC {} but the host gave it {}", mac, e.mac);
        } else {
            st.detail = mac.empty() ? "virtio-net found" : "virtio-net found with the host's MAC";
        }
    } else if (m.stage == "net") {
        st.detail = fmt::format("ip {} gw {} rtt {} ms", m.values.count("ip") ? m.values.at("ip") : "?",
                                m.values.count("gw") ? m.values.at("gw") : "?", m.values.count("rtt_ms") ? m.values.at("rtt_ms") : "?");
    }
}

// A random address of the network's first IPv4 DHCP range ("" when none).
std::string dhcp_hint(const VirtNetwork& n) {
    if (n.dhcp_ranges.empty()) return "";
    in_addr a{}, b{};
    if (::inet_pton(AF_INET, n.dhcp_ranges.front().first.c_str(), &a) != 1 ||
        ::inet_pton(AF_INET, n.dhcp_ranges.front().second.c_str(), &b) != 1)
        return "";
    const uint32_t lo = ntohl(a.s_addr), hi = ntohl(b.s_addr);
    if (hi < lo) return "";
    uint32_t r = 0;
    if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) r = static_cast<uint32_t>(::getpid());
    in_addr pick{};
    pick.s_addr = htonl(lo + r % (hi - lo + 1));
    char buf[INET_ADDRSTRLEN] = {};
    return ::inet_ntop(AF_INET, &pick, buf, sizeof buf) ? buf : "";
}

std::string domain_xml(const LibvirtRunConfig& cfg, const std::string& name, const std::string& dir, const std::string& vol,
                       const std::string& mac, bool has_initrd) {
    std::string os = fmt::format("<type arch='x86_64' machine='pc'>hvm</type><kernel>{}/guest</kernel>", xml_escape(dir));
    if (has_initrd) os += fmt::format("<initrd>{}/initrd</initrd>", xml_escape(dir));
    if (!cfg.cmdline.empty()) os += fmt::format("<cmdline>{}</cmdline>", xml_escape(cfg.cmdline));
    const std::string nic =
        cfg.bridge.empty()
            ? fmt::format("<interface type='network'><source network='{}'/><mac address='{}'/><model type='virtio'/></interface>",
                          xml_escape(cfg.network), mac)
            : fmt::format("<interface type='bridge'><source bridge='{}'/><mac address='{}'/><model type='virtio'/></interface>",
                          xml_escape(cfg.bridge), mac);
    // ACPI: without it libvirt passes -no-acpi and the guest cannot power off.
    // Every end of life destroys the transient domain, so a reset also ends the run.
    return fmt::format(
        "<domain type='{}'><name>{}</name><memory unit='MiB'>{}</memory><vcpu>1</vcpu><os>{}</os>"
        "<features><acpi/></features><on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot>"
        "<on_crash>destroy</on_crash><devices>"
        "<disk type='volume' device='disk'><driver name='qemu' type='raw'/><source pool='{}' volume='{}'/>"
        "<target dev='vda' bus='virtio'/></disk>{}"
        "<serial type='file'><source path='{}/serial.log'/><target port='0'/></serial>"
        "<memballoon model='none'/></devices></domain>",
        cfg.accel == "tcg" ? "qemu" : "kvm", name, cfg.memory_mib, os, xml_escape(cfg.pool), vol, nic, xml_escape(dir));
}

void copy_file(const std::string& from, const std::string& to) {
    std::error_code ec;
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot copy {} to {}: {}", from, to, ec.message()));
    ::chmod(to.c_str(), 0644);
}

}  // namespace

std::string libvirt_client_unavailable() {
    std::string err;
    api_or_null(&err);
    return err;
}

SmokeStep run_libvirt(const LibvirtRunConfig& cfg_in, std::vector<std::string>* kept, std::vector<std::string>* cleanup) {
    const auto t0 = Clock::now();
    LibvirtRunConfig cfg = cfg_in;  // the Linux guest's command line gains a DHCP hint below
    SmokeStep s;
    s.id = cfg.step_id;
    s.name = cfg.step_name;
    s.accel = cfg.accel;
    s.ran = true;
    auto fail = [&s](const std::string& cls, const std::string& msg) {
        if (s.failure.empty()) {
            s.failure = cls;
            s.message = msg;
        }
    };
    if (std::string e = libvirt_client_unavailable(); !e.empty()) {
        s.ran = false;
        fail("prerequisite", e);
        return s;
    }
    lv().virInitialize();
    lv().virSetErrorFunc(nullptr, quiet);
    // libvirt's keepalive needs its event loop: with it, a daemon that stops
    // answering mid-run (hung, SIGSTOPped) closes the connection after ~4 s
    // and every blocked call returns, instead of the run hanging forever.
    // The loop thread lives as long as the process.
    static std::once_flag event_loop;
    std::call_once(event_loop, [] {
        if (lv().virEventRegisterDefaultImpl() == 0)
            std::thread([] {
                for (;;) lv().virEventRunDefaultImpl();
            }).detach();
    });

    const std::string suffix = fmt::format("{}-{}", ::getpid(), random_hex(4));
    const std::string name = "kvmready-smoke-" + suffix;
    const std::string vol_name = name + ".raw";
    const std::string nonce = random_hex(32);
    const std::string mac_tail = random_hex(3);
    const std::string mac = fmt::format("52:54:00:{}:{}:{}", mac_tail.substr(0, 2), mac_tail.substr(2, 2), mac_tail.substr(4, 2));
    std::string parent = cfg.run_dir_parent;
    if (parent.empty()) {
        const char* t = std::getenv("TMPDIR");
        parent = t && *t ? t : "/var/tmp";
    }
    const std::string dir = parent + "/" + name;
    s.details["uri"] = cfg.uri;
    s.details["domain"] = name;
    s.details["pool"] = cfg.pool;
    s.details["volume"] = vol_name;
    if (cfg.bridge.empty()) s.details["network"] = cfg.network;
    else s.details["bridge"] = cfg.bridge;
    s.details["run_dir"] = dir;
    s.details["mac"] = mac;
    s.details["nonce"] = nonce;

    virConnectPtr conn = nullptr;
    virStoragePoolPtr pool = nullptr;
    virStorageVolPtr vol = nullptr;
    virDomainPtr dom = nullptr;
    bool dir_made = false;
    std::string vol_path;
    std::string serial;             // everything read so far
    bool domain_started = false;
    virNetworkPtr dhcp_net = nullptr;  // holds this run's DHCP reservation
    std::string dhcp_host;             // <host mac ip/> as added

    auto cancelled = [&] { return cfg.cancelled && cfg.cancelled(); };

    auto teardown = [&] {
        const auto td = Clock::now();
        std::string qemu_log = "/var/log/libvirt/qemu/" + name + ".log";
        if (!s.passed && domain_started) s.qemu_log_tail = read_tail(qemu_log, 2048);
        if (cfg.keep) {
            if (dom) lv().virDomainFree(dom);
            if (vol) lv().virStorageVolFree(vol);
            if (pool) lv().virStoragePoolFree(pool);
            // A kept domain must outlive the connection: it was started without AUTODESTROY.
            if (conn) lv().virConnectClose(conn);
            if (kept) {
                if (domain_started) kept->push_back("domain " + name);
                if (vol) kept->push_back("volume " + vol_name + " in pool " + cfg.pool);
                if (dir_made) kept->push_back("directory " + dir);
                if (dhcp_net) kept->push_back("DHCP reservation " + dhcp_host + " in network " + cfg.network + " (live only)");
            }
            if (cleanup) {
                const std::string virsh = "virsh -c " + shell_quote(cfg.uri);
                if (domain_started) cleanup->push_back(virsh + " destroy " + name);
                if (vol) cleanup->push_back(virsh + " vol-delete --pool " + shell_quote(cfg.pool) + " " + vol_name);
                if (dir_made) cleanup->push_back("rm -rf -- " + shell_quote(dir));
                if (domain_started) cleanup->push_back("rm -f -- " + qemu_log);
                if (dhcp_net)
                    cleanup->push_back(virsh + " net-update " + shell_quote(cfg.network) + " delete ip-dhcp-host " + shell_quote(dhcp_host) +
                                       " --live");
            }
            if (dhcp_net) lv().virNetworkFree(dhcp_net);
            s.split.teardown_ms = ms_since(td);
            return;
        }
        auto lap = [&, t = Clock::now()](const char* what) mutable {
            s.details["teardown"][what] = std::round(ms_since(t) * 10) / 10;
            t = Clock::now();
        };
        if (dom && s.passed) {
            // The guest powers off after `done`; letting QEMU exit on its own
            // is faster than virDomainDestroy's SIGTERM-and-poll.
            const auto until = Clock::now() + std::chrono::milliseconds(1500);
            int state = 0, reason = 0;
            while (Clock::now() < until && lv().virDomainGetState(dom, &state, &reason, 0) == 0 && state != VIR_DOMAIN_SHUTOFF)
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            lap("poweroff_wait_ms");
        }
        if (dom) {
            lv().virDomainDestroy(dom);  // fails harmlessly when the guest already powered off
            lv().virDomainFree(dom);
            lap("destroy_ms");
        }
        if (vol) {
            if (lv().virStorageVolDelete(vol, 0) < 0) {
                s.details["cleanup_error"] = fmt::format("volume {}: {}", vol_name, last_error());
                // A daemon that stopped answering cannot delete it; the file of
                // a local directory pool can still go (the pool forgets it at
                // its next refresh).
                if (!vol_path.empty() && ::unlink(vol_path.c_str()) == 0) s.details["volume_unlinked"] = vol_path;
            }
            lv().virStorageVolFree(vol);
            lap("volume_ms");
        }
        if (dhcp_net) {
            if (lv().virNetworkUpdate(dhcp_net, VIR_NETWORK_UPDATE_COMMAND_DELETE, VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, dhcp_host.c_str(),
                                      VIR_NETWORK_UPDATE_AFFECT_LIVE) < 0)
                s.details["cleanup_error"] = fmt::format("DHCP reservation {}: {}", dhcp_host, last_error());
            lv().virNetworkFree(dhcp_net);
            lap("dhcp_reservation_ms");
        }
        if (pool) lv().virStoragePoolFree(pool);
        if (conn) lv().virConnectClose(conn);
        lap("close_ms");
        if (dir_made) {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
        // libvirt keeps one QEMU log per domain name; ours are unique, so it is
        // litter once the run is over (removable only where we may: root, local).
        if (domain_started) ::unlink(qemu_log.c_str());
        s.split.teardown_ms = ms_since(td);
    };

    try {
        // --- connect, pool, network
        const OpenResult o = open_with_deadline(cfg.uri, 5000);
        if (!o.conn) {
            if (o.timed_out) fail("prerequisite", o.error);
            else if (denied(o.code, o.error))
                fail("not_permitted", fmt::format("libvirt refused the connection to {}: {} (run as root or as a member of group libvirt)",
                                                  cfg.uri, o.error));
            else fail("prerequisite", fmt::format("cannot connect to libvirt at {}: {} (is the libvirt daemon running?)", cfg.uri, o.error));
            s.elapsed_ms = ms_since(t0);
            return s;
        }
        conn = o.conn;
        lv().virConnectSetKeepAlive(conn, 1, 3);
        pool = lv().virStoragePoolLookupByName(conn, cfg.pool.c_str());
        if (!pool) {
            const int code = last_code();
            const std::string e = last_error();
            if (denied(code, e)) fail("not_permitted", fmt::format("libvirt refused to look up storage pool '{}': {}", cfg.pool, e));
            else
                fail("prerequisite", fmt::format("storage pool '{}' does not exist at {} (define one: virsh pool-define-as {} dir --target "
                                                 "/var/lib/libvirt/images; virsh pool-build {}; virsh pool-start {})",
                                                 cfg.pool, cfg.uri, cfg.pool, cfg.pool, cfg.pool));
            throw 0;
        }
        if (lv().virStoragePoolIsActive(pool) != 1) {
            fail("prerequisite", fmt::format("storage pool '{}' is not active (virsh -c {} pool-start {})", cfg.pool, cfg.uri, cfg.pool));
            throw 0;
        }
        if (cfg.bridge.empty()) {
            virNetworkPtr net = lv().virNetworkLookupByName(conn, cfg.network.c_str());
            if (!net) {
                fail("prerequisite", fmt::format("libvirt network '{}' does not exist at {}", cfg.network, cfg.uri));
                throw 0;
            }
            const int active = lv().virNetworkIsActive(net);
            if (cfg.linux_guest && active == 1) {
                // libvirt's dnsmasq pings a dynamic address for 3 s before it
                // offers it, most of the Linux guest's run. A reservation for
                // this run's MAC (live only, removed at teardown) is offered at
                // once. Without one, the guest asks for a hinted free address.
                char* xml = lv().virNetworkGetXMLDesc(net, 0);
                VirtNetwork vn;
                if (xml) parse_network_xml(xml, vn);
                std::free(xml);
                if (const std::string ip = dhcp_hint(vn); !ip.empty()) {
                    const std::string host = fmt::format("<host mac='{}' ip='{}'/>", mac, ip);
                    if (lv().virNetworkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, VIR_NETWORK_SECTION_IP_DHCP_HOST, -1,
                                              host.c_str(), VIR_NETWORK_UPDATE_AFFECT_LIVE) == 0) {
                        dhcp_host = host;
                        dhcp_net = net;
                        lv().virNetworkRef(net);
                        s.details["dhcp_reservation"] = ip;
                    } else {
                        s.details["dhcp_reservation_error"] = last_error();
                        cfg.cmdline += " kvmready.dhcp_hint=" + ip;
                    }
                }
            }
            lv().virNetworkFree(net);
            if (active != 1) {
                fail("prerequisite",
                     fmt::format("libvirt network '{}' is not active (virsh -c {} net-start {})", cfg.network, cfg.uri, cfg.network));
                throw 0;
            }
        }
        if (cancelled()) {
            fail("interrupted", "interrupted before the guest started");
            throw 0;
        }

        // --- run directory: only the daemon's QEMU user must traverse it.
        if (::mkdir(dir.c_str(), 0711) != 0) {
            const int e = errno;
            fail(e == EACCES || e == EPERM ? "not_permitted" : "prerequisite", fmt::format("cannot create {}: {}", dir, std::strerror(e)));
            throw 0;
        }
        dir_made = true;
        ::chmod(dir.c_str(), 0711);
        copy_file(cfg.kernel, dir + "/guest");
        if (!cfg.initrd.empty()) copy_file(cfg.initrd, dir + "/initrd");
        {
            // Pre-created so the log belongs to us and libvirt only relabels it.
            const int fd = ::open((dir + "/serial.log").c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0) throw std::runtime_error(fmt::format("cannot create {}/serial.log: {}", dir, std::strerror(errno)));
            ::fchmod(fd, 0644);
            ::close(fd);
        }

        // --- volume with the nonce in sector 0
        const std::string vol_xml = fmt::format(
            "<volume><name>{}</name><capacity unit='bytes'>1048576</capacity><allocation unit='bytes'>0</allocation>"
            "<target><format type='raw'/></target></volume>",
            vol_name);
        vol = lv().virStorageVolCreateXML(pool, vol_xml.c_str(), 0);
        if (!vol) {
            const int code = last_code();
            const std::string e = last_error();
            fail(denied(code, e) ? "not_permitted" : "prerequisite", fmt::format("cannot create a volume in pool '{}': {}", cfg.pool, e));
            throw 0;
        }
        if (char* p = lv().virStorageVolGetPath(vol)) {
            vol_path = p;
            std::free(p);
            s.details["volume_path"] = vol_path;
        }
        {
            std::string sector = "KVMREADY-NONCE " + nonce + "\n";
            sector.resize(512, '\0');
            virStreamPtr st = lv().virStreamNew(conn, 0);
            bool ok = st && lv().virStorageVolUpload(vol, st, 0, sector.size(), 0) == 0;
            size_t sent = 0;
            while (ok && sent < sector.size()) {
                const int n = lv().virStreamSend(st, sector.data() + sent, sector.size() - sent);
                if (n < 0) ok = false;
                else sent += static_cast<size_t>(n);
            }
            if (ok) ok = lv().virStreamFinish(st) == 0;
            const std::string e = ok ? "" : last_error();
            if (!ok && st) lv().virStreamAbort(st);
            if (st) lv().virStreamFree(st);
            if (!ok) {
                fail("prerequisite", fmt::format("cannot write the nonce into volume {}: {}", vol_name, e));
                throw 0;
            }
        }
        s.split.prepare_ms = ms_since(t0);

        // --- the domain
        const std::string xml = domain_xml(cfg, name, dir, vol_name, mac, !cfg.initrd.empty());
        const auto ts = Clock::now();
        dom = lv().virDomainCreateXML(conn, xml.c_str(), cfg.keep ? 0 : VIR_DOMAIN_START_AUTODESTROY);
        s.split.start_ms = ms_since(ts);
        if (!dom) {
            const int code = last_code();
            const std::string e = last_error();
            std::string cls = "start_failed";
            if (denied(code, e)) cls = "not_permitted";
            else if (e.find("emulator") != std::string::npos || e.find("no QEMU") != std::string::npos ||
                     e.find("Cannot find") != std::string::npos)
                cls = "prerequisite";
            fail(cls, fmt::format("libvirt could not start the {} guest: {}", cfg.accel == "tcg" ? "TCG (type qemu)" : "KVM", e));
            throw 0;
        }
        domain_started = true;
        const auto started = Clock::now();

        // --- watch the serial log
        const Expect expect{nonce, mac, cfg.linux_guest};
        int fd = ::open((dir + "/serial.log").c_str(), O_RDONLY | O_CLOEXEC);
        std::string pending;
        double first_marker_at = -1, last_at = 0;
        bool done = false, guest_failed = false, ended = false, paused = false;
        auto last_state_check = Clock::now() - std::chrono::seconds(1);
        for (;;) {
            if (fd >= 0) {
                char buf[4096];
                ssize_t n;
                while ((n = ::read(fd, buf, sizeof buf)) > 0) {
                    serial.append(buf, static_cast<size_t>(n));
                    pending.append(buf, static_cast<size_t>(n));
                }
            }
            size_t nl;
            while ((nl = pending.find('\n')) != std::string::npos) {
                const std::string line = pending.substr(0, nl);
                pending.erase(0, nl + 1);
                const auto m = parse_marker(line);
                if (!m) continue;
                SmokeStage st;
                st.name = m->stage;
                st.at_ms = ms_since(started);
                st.ms = st.at_ms - last_at;
                last_at = st.at_ms;
                st.values = m->values;
                if (first_marker_at < 0) first_marker_at = st.at_ms;
                judge_stage(*m, expect, st);
                s.last_stage = st.name;
                if (st.status == "fail") guest_failed = true;
                if (m->stage == "done" && m->ok) done = true;
                s.stages.push_back(st);
            }
            if (done || guest_failed) break;
            if (cancelled()) {
                fail("interrupted", s.last_stage.empty() ? "interrupted before the guest's first marker"
                                                         : "interrupted after stage " + s.last_stage);
                break;
            }
            const double now = ms_since(started);
            if (ms_since(last_state_check) >= 50) {
                last_state_check = Clock::now();
                int state = 0, reason = 0;
                const int got = lv().virDomainGetState(dom, &state, &reason, 0);
                if (got < 0 && !lv().virConnectIsAlive(conn)) {
                    // The keepalive gave up: the daemon is hung or gone; the
                    // domain dies with our connection once it recovers.
                    const std::string log = "/var/log/libvirt/qemu/" + name + ".log";
                    s.details["left_to_the_daemon"] = log;
                    fail("daemon_lost",
                         fmt::format("the libvirt daemon stopped answering {:.1f} s into the run ({}){}; when it recovers it destroys the "
                                     "domain (auto-destroy) and may write its log {} again (rm -f -- {})",
                                     ms_since(started) / 1000, last_error(),
                                     s.last_stage.empty() ? "" : "; last stage reached: " + s.last_stage, log, log));
                    break;
                }
                if (got < 0 || state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_SHUTDOWN || state == VIR_DOMAIN_CRASHED) {
                    ended = true;
                } else if (state == VIR_DOMAIN_PAUSED) {
                    paused = true;
                }
                if (ended || paused) {
                    // Whatever the guest wrote just before it stopped.
                    if (fd >= 0) {
                        char buf[4096];
                        ssize_t n;
                        while ((n = ::read(fd, buf, sizeof buf)) > 0) {
                            serial.append(buf, static_cast<size_t>(n));
                            pending.append(buf, static_cast<size_t>(n));
                        }
                        if (!pending.empty() && pending.back() != '\n') pending += '\n';
                    }
                    if (pending.find("KVMREADY ") != std::string::npos) continue;  // parse them first, decide next round
                    break;
                }
            }
            const bool no_marker = first_marker_at < 0;
            if (now >= cfg.timeout_ms || (no_marker && cfg.first_marker_ms > 0 && now >= cfg.first_marker_ms)) {
                if (serial.empty())
                    fail("no_serial_output", fmt::format("no serial output at all within {:.1f} s of the start", now / 1000));
                else if (no_marker)
                    fail("stalled_before_first_marker",
                         fmt::format("the console printed {} bytes but the guest's first marker never came within {:.1f} s", serial.size(),
                                     now / 1000));
                else
                    fail("timeout", fmt::format("timed out after {:.1f} s; last stage reached: {}", now / 1000, s.last_stage));
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (fd >= 0) ::close(fd);
        if (first_marker_at >= 0) {
            s.split.boot_ms = first_marker_at;
            s.split.stages_ms = last_at - first_marker_at;
        }
        if (paused || ended) {
            const std::string log = read_tail("/var/log/libvirt/qemu/" + name + ".log", 8192);
            if (log.find("KVM internal error") != std::string::npos || log.find("KVM: entry failed") != std::string::npos)
                fail("kvm_internal_error", "QEMU reported a KVM internal error and stopped the guest");
            else if (paused)
                fail(first_marker_at < 0 ? "stalled_before_first_marker" : "guest_failure",
                     "QEMU paused the guest (an emulation error or a crash)" +
                         (s.last_stage.empty() ? std::string(" before its first marker") : " after stage " + s.last_stage));
        }
        if (guest_failed) {
            const auto& st = s.stages.back();
            fail(st.name == "disk" && st.values.count("nonce") ? "wrong_nonce"
                 : st.name == "nic" && st.values.count("mac") && st.detail.find("MAC") != std::string::npos ? "wrong_mac"
                                                                                                            : "guest_failure",
                 fmt::format("stage {} failed: {}", st.name, st.detail));
        } else if (done) {
            std::vector<std::string> needed = {"boot", "disk", "nic"};
            if (cfg.linux_guest) needed.push_back("net");
            for (const auto& n : needed) {
                bool seen = false;
                for (const auto& st : s.stages) seen = seen || (st.name == n && st.status == "pass");
                if (!seen) {
                    fail("guest_failure", fmt::format("the guest said done without reporting stage {}", n));
                    SmokeStage miss;
                    miss.name = n;
                    miss.status = "not_reached";
                    s.stages.push_back(miss);
                }
            }
        } else if (ended && s.failure.empty()) {
            if (serial.empty()) fail("no_serial_output", "the guest stopped without any serial output");
            else if (first_marker_at < 0)
                fail("stalled_before_first_marker",
                     fmt::format("the guest stopped {:.1f} s after the start, before its first marker ({} bytes of console output)",
                                 ms_since(started) / 1000, serial.size()));
            else fail("guest_failure", "the guest stopped after stage " + s.last_stage + " without saying done");
        }
        s.passed = s.failure.empty() && done;
    } catch (int) {
        // a failure was recorded; fall through to teardown
    } catch (const std::exception& e) {
        fail("prerequisite", e.what());
    }
    if (!s.passed) s.serial_tail = tail_of(serial, 4096);
    if (s.passed)
        s.message = fmt::format("booted through libvirt ({}, domain type {}), read the nonce back and found the NIC{}", cfg.uri,
                                cfg.accel == "tcg" ? "qemu" : "kvm", cfg.linux_guest ? ", and reached the host over the network" : "");
    teardown();
    s.elapsed_ms = ms_since(t0);
    return s;
}

#endif  // KVMREADY_HAVE_LIBVIRT

}  // namespace kvmready::smoke
