// Ladder step (c). The domain is transient and started with
// VIR_DOMAIN_START_AUTODESTROY, so even a kvmready killed with SIGKILL leaves
// no running guest: libvirt destroys it when the connection drops. The volume
// and the run directory are ours to remove. The serial console is a plain
// file in the run directory that the tool polls; libvirt relabels it (and the
// kernel) for its QEMU user, which is why both live in a private directory
// and never in /boot.
//
// libvirt is reached through a session the target opens (host::Target::
// open_libvirt, host/libvirt_session.hpp), the run directory through the
// target too, and the serial log is read through host/nofollow_fs.hpp.
#include "smoke/libvirt_run.hpp"

#include <arpa/inet.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "core/facts_virt.hpp"
#include "host/libvirt_session.hpp"
#include "host/nofollow_fs.hpp"
#include "smoke/common.hpp"
#include "smoke/serial_protocol.hpp"
#include "util/text.hpp"

namespace kvmready::smoke {

namespace {

using host::DomainState;
using host::LibvirtSession;
using host::LibvirtKind;
using host::LibvirtObject;
using util::shell_quote;
using util::xml_escape;

// The shared protocol parser (smoke/serial_protocol.hpp), under the name this file uses.
using Marker = SerialReport;

std::optional<Marker> parse_marker(const std::string& line) { return parse_serial_line(line); }

std::string read_tail(const std::string& path, size_t n) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return "";
    std::ostringstream ss;
    ss << in.rdbuf();
    return tail_of(ss.str(), n);
}

// virConnectOpen blocks for ever on a daemon that accepts and never answers:
// open on a thread and abandon it at the deadline (the process _exit()s at
// the end of the command, so the abandoned thread never sees destructors,
// nor the end of the target it opens through).
struct OpenResult {
    std::unique_ptr<LibvirtSession> conn;
    bool timed_out = false;
    host::LibvirtError error;
};

OpenResult open_with_deadline(host::Target& sys, const std::string& uri, int timeout_ms) {
    struct Shared {
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
        bool abandoned = false;
        OpenResult r;
    };
    auto sh = std::make_shared<Shared>();
    std::thread([sh, &sys, uri] {
        OpenResult r;
        r.conn = sys.open_libvirt(uri, &r.error);
        std::lock_guard<std::mutex> g(sh->m);
        if (sh->abandoned) return;  // r.conn closes
        sh->r = std::move(r);
        sh->done = true;
        sh->cv.notify_all();
    }).detach();
    std::unique_lock<std::mutex> g(sh->m);
    if (!sh->cv.wait_for(g, std::chrono::milliseconds(timeout_ms), [&] { return sh->done; })) {
        sh->abandoned = true;
        OpenResult r;
        r.timed_out = true;
        r.error.message = fmt::format("the libvirt daemon at {} accepted the connection but did not answer within {} ms", uri, timeout_ms);
        return r;
    }
    return std::move(sh->r);
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

// Not a C++ exception: a failure already recorded in the step; the run goes
// straight to teardown.
struct Stop {};

// One run through libvirt: what it made (so teardown removes exactly that)
// and what the guest reported.
class LibvirtRun {
public:
    LibvirtRun(const LibvirtRunConfig& cfg, std::vector<std::string>* kept, std::vector<std::string>* cleanup)
        : cfg_(cfg), kept_(kept), cleanup_(cleanup), t0_(Clock::now()) {}

    SmokeStep run();

private:
    host::Target& sys() const { return cfg_.target ? *cfg_.target : host::live_target(); }
    void fail(const std::string& cls, const std::string& msg) {
        if (s_.failure.empty()) {
            s_.failure = cls;
            s_.message = msg;
        }
    }
    [[noreturn]] void stop(const std::string& cls, const std::string& msg) {
        fail(cls, msg);
        throw Stop{};
    }
    bool cancelled() const { return cfg_.cancelled && cfg_.cancelled(); }
    std::string qemu_log() const { return "/var/log/libvirt/qemu/" + name_ + ".log"; }

    void name_things();
    bool open_connection();
    void check_pool();
    void check_network();
    void reserve_dhcp(LibvirtObject net);
    void make_run_dir();
    void make_volume();
    void start_domain();
    void watch();
    void drain_serial();
    bool parse_markers();
    enum class Watch { go_on, stop, reparse };
    Watch check_domain();
    bool past_deadline();
    void judge();
    void teardown();
    void teardown_kept();

    LibvirtRunConfig cfg_;  // the Linux guest's command line gains a DHCP hint
    std::vector<std::string>* kept_;
    std::vector<std::string>* cleanup_;
    Clock::time_point t0_;
    SmokeStep s_;
    std::string name_, vol_name_, nonce_, mac_, dir_;

    std::unique_ptr<LibvirtSession> conn_;
    LibvirtObject pool_, vol_, dom_;
    LibvirtObject dhcp_net_;   // holds this run's DHCP reservation
    std::string dhcp_host_;    // <host mac ip/> as added
    bool dir_made_ = false;
    bool domain_started_ = false;
    std::string vol_path_;

    // The serial console and what the guest said on it.
    std::unique_ptr<host::GrowingFile> console_;
    std::string serial_;       // everything read so far
    std::string pending_;      // not yet parsed
    Clock::time_point started_;
    double first_marker_at_ = -1, last_at_ = 0;
    bool done_ = false, guest_failed_ = false, ended_ = false, paused_ = false;
};

void LibvirtRun::name_things() {
    const std::string suffix = fmt::format("{}-{}", ::getpid(), random_hex(4));
    name_ = "kvmready-smoke-" + suffix;
    vol_name_ = name_ + ".raw";
    nonce_ = random_hex(32);
    const std::string mac_tail = random_hex(3);
    mac_ = fmt::format("52:54:00:{}:{}:{}", mac_tail.substr(0, 2), mac_tail.substr(2, 2), mac_tail.substr(4, 2));
    std::string parent = cfg_.run_dir_parent;
    if (parent.empty()) {
        const char* t = std::getenv("TMPDIR");
        parent = t && *t ? t : "/var/tmp";
    }
    dir_ = parent + "/" + name_;
    s_.details["uri"] = cfg_.uri;
    s_.details["domain"] = name_;
    s_.details["pool"] = cfg_.pool;
    s_.details["volume"] = vol_name_;
    if (cfg_.bridge.empty()) s_.details["network"] = cfg_.network;
    else s_.details["bridge"] = cfg_.bridge;
    s_.details["run_dir"] = dir_;
    s_.details["mac"] = mac_;
    s_.details["nonce"] = nonce_;
}

// False when the daemon could not be reached (nothing to tear down).
bool LibvirtRun::open_connection() {
    OpenResult o = open_with_deadline(sys(), cfg_.uri, 5000);
    if (o.conn) {
        conn_ = std::move(o.conn);
        conn_->set_keepalive(1, 3);
        return true;
    }
    if (o.timed_out) fail("prerequisite", o.error.message);
    else if (o.error.denied)
        fail("not_permitted", fmt::format("libvirt refused the connection to {}: {} (run as root or as a member of group libvirt)", cfg_.uri,
                                          o.error.message));
    else fail("prerequisite", fmt::format("cannot connect to libvirt at {}: {} (is the libvirt daemon running?)", cfg_.uri, o.error.message));
    return false;
}

void LibvirtRun::check_pool() {
    pool_ = conn_->lookup(LibvirtKind::pool, cfg_.pool);
    if (!pool_) {
        const auto& e = conn_->error();
        if (e.denied) stop("not_permitted", fmt::format("libvirt refused to look up storage pool '{}': {}", cfg_.pool, e.message));
        stop("prerequisite", fmt::format("storage pool '{}' does not exist at {} (define one: virsh pool-define-as {} dir --target "
                                         "/var/lib/libvirt/images; virsh pool-build {}; virsh pool-start {})",
                                         cfg_.pool, cfg_.uri, cfg_.pool, cfg_.pool, cfg_.pool));
    }
    if (!conn_->active(pool_))
        stop("prerequisite", fmt::format("storage pool '{}' is not active (virsh -c {} pool-start {})", cfg_.pool, cfg_.uri, cfg_.pool));
}

void LibvirtRun::check_network() {
    if (!cfg_.bridge.empty()) return;
    LibvirtObject net = conn_->lookup(LibvirtKind::network, cfg_.network);
    if (!net) stop("prerequisite", fmt::format("libvirt network '{}' does not exist at {}", cfg_.network, cfg_.uri));
    const bool active = conn_->active(net);
    if (cfg_.linux_guest && active) reserve_dhcp(std::move(net));
    if (!active)
        stop("prerequisite", fmt::format("libvirt network '{}' is not active (virsh -c {} net-start {})", cfg_.network, cfg_.uri, cfg_.network));
}

// libvirt's dnsmasq pings a dynamic address for 3 s before it offers it,
// most of the Linux guest's run. A reservation for this run's MAC (live
// only, removed at teardown) is offered at once. Without one, the guest
// asks for a hinted free address.
void LibvirtRun::reserve_dhcp(LibvirtObject net) {
    const std::string xml = conn_->xml(net);
    VirtNetwork vn;
    if (!xml.empty()) parse_network_xml(xml, vn);
    const std::string ip = dhcp_hint(vn);
    if (ip.empty()) return;
    const std::string host = fmt::format("<host mac='{}' ip='{}'/>", mac_, ip);
    if (conn_->update_dhcp_host(net, true, host)) {
        dhcp_host_ = host;
        dhcp_net_ = std::move(net);
        s_.details["dhcp_reservation"] = ip;
    } else {
        s_.details["dhcp_reservation_error"] = conn_->error().message;
        cfg_.cmdline += " kvmready.dhcp_hint=" + ip;
    }
}

// Only the daemon's QEMU user must traverse the run directory.
void LibvirtRun::make_run_dir() {
    if (const int e = sys().make_dir(dir_, 0711))
        stop(e == EACCES || e == EPERM ? "not_permitted" : "prerequisite", fmt::format("cannot create {}: {}", dir_, std::strerror(e)));
    dir_made_ = true;
    sys().copy_file(cfg_.kernel, dir_ + "/guest", 0644);
    if (!cfg_.initrd.empty()) sys().copy_file(cfg_.initrd, dir_ + "/initrd", 0644);
    // Pre-created so the log belongs to us and libvirt only relabels it.
    sys().create_empty_file(dir_ + "/serial.log", 0644);
}

// A 1 MiB volume with the nonce in sector 0.
void LibvirtRun::make_volume() {
    const std::string vol_xml = fmt::format(
        "<volume><name>{}</name><capacity unit='bytes'>1048576</capacity><allocation unit='bytes'>0</allocation>"
        "<target><format type='raw'/></target></volume>",
        vol_name_);
    vol_ = conn_->create_volume(pool_, vol_xml);
    if (!vol_) {
        const auto& e = conn_->error();
        stop(e.denied ? "not_permitted" : "prerequisite", fmt::format("cannot create a volume in pool '{}': {}", cfg_.pool, e.message));
    }
    vol_path_ = conn_->volume_path(vol_);
    if (!vol_path_.empty()) s_.details["volume_path"] = vol_path_;
    std::string sector = "KVMREADY-NONCE " + nonce_ + "\n";
    sector.resize(512, '\0');
    if (!conn_->upload(vol_, sector))
        stop("prerequisite", fmt::format("cannot write the nonce into volume {}: {}", vol_name_, conn_->error().message));
}

void LibvirtRun::start_domain() {
    const std::string xml = domain_xml(cfg_, name_, dir_, vol_name_, mac_, !cfg_.initrd.empty());
    const auto ts = Clock::now();
    dom_ = conn_->create_domain(xml, !cfg_.keep);
    s_.split.start_ms = ms_since(ts);
    if (!dom_) {
        const auto& e = conn_->error();
        std::string cls = "start_failed";
        if (e.denied) cls = "not_permitted";
        else if (e.message.find("emulator") != std::string::npos || e.message.find("no QEMU") != std::string::npos ||
                 e.message.find("Cannot find") != std::string::npos)
            cls = "prerequisite";
        stop(cls, fmt::format("libvirt could not start the {} guest: {}", cfg_.accel == "tcg" ? "TCG (type qemu)" : "KVM", e.message));
    }
    domain_started_ = true;
    started_ = Clock::now();
}

void LibvirtRun::drain_serial() {
    if (!console_->is_open()) return;
    const std::string got = console_->read_new();
    serial_ += got;
    pending_ += got;
}

// Parses the complete lines read so far; true once the guest said done or
// reported a failed stage.
bool LibvirtRun::parse_markers() {
    const Expect expect{nonce_, mac_, cfg_.linux_guest};
    size_t nl;
    while ((nl = pending_.find('\n')) != std::string::npos) {
        const std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        const auto m = parse_marker(line);
        if (!m) continue;
        SmokeStage st;
        st.name = m->stage;
        st.at_ms = ms_since(started_);
        st.ms = st.at_ms - last_at_;
        last_at_ = st.at_ms;
        st.values = m->values;
        if (first_marker_at_ < 0) first_marker_at_ = st.at_ms;
        judge_stage(*m, expect, st);
        s_.last_stage = st.name;
        if (st.status == "fail") guest_failed_ = true;
        if (m->stage == "done" && m->ok) done_ = true;
        s_.stages.push_back(st);
    }
    return done_ || guest_failed_;
}

// stop: the daemon is gone, or the domain stopped (ended_/paused_) and every
// line it wrote is parsed; reparse: it stopped, with lines still to parse.
LibvirtRun::Watch LibvirtRun::check_domain() {
    const auto state = conn_->domain_state(dom_);
    if (!state && !conn_->alive()) {
        // The keepalive gave up: the daemon is hung or gone; the domain dies
        // with our connection once it recovers.
        const std::string log = qemu_log();
        s_.details["left_to_the_daemon"] = log;
        fail("daemon_lost", fmt::format("the libvirt daemon stopped answering {:.1f} s into the run ({}){}; when it recovers it destroys the "
                                        "domain (auto-destroy) and may write its log {} again (rm -f -- {})",
                                        ms_since(started_) / 1000, conn_->current_error(),
                                        s_.last_stage.empty() ? "" : "; last stage reached: " + s_.last_stage, log, log));
        return Watch::stop;
    }
    if (!state || *state == DomainState::shutoff || *state == DomainState::shutdown || *state == DomainState::crashed) ended_ = true;
    else if (*state == DomainState::paused) paused_ = true;
    if (!ended_ && !paused_) return Watch::go_on;
    // Whatever the guest wrote just before it stopped.
    if (console_->is_open()) {
        drain_serial();
        if (!pending_.empty() && pending_.back() != '\n') pending_ += '\n';
    }
    return pending_.find("KVMREADY ") == std::string::npos ? Watch::stop : Watch::reparse;  // parse them first, decide next round
}

bool LibvirtRun::past_deadline() {
    const double now = ms_since(started_);
    const bool no_marker = first_marker_at_ < 0;
    if (!(now >= cfg_.timeout_ms || (no_marker && cfg_.first_marker_ms > 0 && now >= cfg_.first_marker_ms))) return false;
    if (serial_.empty()) fail("no_serial_output", fmt::format("no serial output at all within {:.1f} s of the start", now / 1000));
    else if (no_marker)
        fail("stalled_before_first_marker",
             fmt::format("the console printed {} bytes but the guest's first marker never came within {:.1f} s", serial_.size(), now / 1000));
    else fail("timeout", fmt::format("timed out after {:.1f} s; last stage reached: {}", now / 1000, s_.last_stage));
    return true;
}

// Polls the serial log and the domain until the guest is done, fails, stops,
// or the deadline passes.
void LibvirtRun::watch() {
    console_ = std::make_unique<host::GrowingFile>(dir_ + "/serial.log");
    auto last_state_check = Clock::now() - std::chrono::seconds(1);
    for (;;) {
        drain_serial();
        if (parse_markers()) break;
        if (cancelled()) {
            fail("interrupted", s_.last_stage.empty() ? "interrupted before the guest's first marker" : "interrupted after stage " + s_.last_stage);
            break;
        }
        if (ms_since(last_state_check) >= 50) {
            last_state_check = Clock::now();
            const Watch w = check_domain();
            if (w == Watch::stop) break;
            if (w == Watch::reparse) continue;
        }
        if (past_deadline()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    console_.reset();
    if (first_marker_at_ >= 0) {
        s_.split.boot_ms = first_marker_at_;
        s_.split.stages_ms = last_at_ - first_marker_at_;
    }
}

// What the run's end means, once watching stopped.
void LibvirtRun::judge() {
    if (paused_ || ended_) {
        const std::string log = read_tail(qemu_log(), 8192);
        if (log.find("KVM internal error") != std::string::npos || log.find("KVM: entry failed") != std::string::npos)
            fail("kvm_internal_error", "QEMU reported a KVM internal error and stopped the guest");
        else if (paused_)
            fail(first_marker_at_ < 0 ? "stalled_before_first_marker" : "guest_failure",
                 "QEMU paused the guest (an emulation error or a crash)" +
                     (s_.last_stage.empty() ? std::string(" before its first marker") : " after stage " + s_.last_stage));
    }
    if (guest_failed_) {
        const auto& st = s_.stages.back();
        fail(st.name == "disk" && st.values.count("nonce") ? "wrong_nonce"
             : st.name == "nic" && st.values.count("mac") && st.detail.find("MAC") != std::string::npos ? "wrong_mac"
                                                                                                        : "guest_failure",
             fmt::format("stage {} failed: {}", st.name, st.detail));
    } else if (done_) {
        std::vector<std::string> needed = {"boot", "disk", "nic"};
        if (cfg_.linux_guest) needed.push_back("net");
        for (const auto& n : needed) {
            bool seen = false;
            for (const auto& st : s_.stages) seen = seen || (st.name == n && st.status == "pass");
            if (!seen) {
                fail("guest_failure", fmt::format("the guest said done without reporting stage {}", n));
                SmokeStage miss;
                miss.name = n;
                miss.status = "not_reached";
                s_.stages.push_back(miss);
            }
        }
    } else if (ended_ && s_.failure.empty()) {
        if (serial_.empty()) fail("no_serial_output", "the guest stopped without any serial output");
        else if (first_marker_at_ < 0)
            fail("stalled_before_first_marker", fmt::format("the guest stopped {:.1f} s after the start, before its first marker ({} bytes of "
                                                            "console output)",
                                                            ms_since(started_) / 1000, serial_.size()));
        else fail("guest_failure", "the guest stopped after stage " + s_.last_stage + " without saying done");
    }
    s_.passed = s_.failure.empty() && done_;
}

// --keep: everything stays, and the step says how to remove it.
void LibvirtRun::teardown_kept() {
    const bool had_vol = static_cast<bool>(vol_), had_dhcp = static_cast<bool>(dhcp_net_);
    dom_ = {};
    vol_ = {};
    pool_ = {};
    // A kept domain must outlive the connection: it was started without AUTODESTROY.
    conn_.reset();
    if (kept_) {
        if (domain_started_) kept_->push_back("domain " + name_);
        if (had_vol) kept_->push_back("volume " + vol_name_ + " in pool " + cfg_.pool);
        if (dir_made_) kept_->push_back("directory " + dir_);
        if (had_dhcp) kept_->push_back("DHCP reservation " + dhcp_host_ + " in network " + cfg_.network + " (live only)");
    }
    if (cleanup_) {
        const std::string virsh = "virsh -c " + shell_quote(cfg_.uri);
        if (domain_started_) cleanup_->push_back(virsh + " destroy " + name_);
        if (had_vol) cleanup_->push_back(virsh + " vol-delete --pool " + shell_quote(cfg_.pool) + " " + vol_name_);
        if (dir_made_) cleanup_->push_back("rm -rf -- " + shell_quote(dir_));
        if (domain_started_) cleanup_->push_back("rm -f -- " + qemu_log());
        if (had_dhcp)
            cleanup_->push_back(virsh + " net-update " + shell_quote(cfg_.network) + " delete ip-dhcp-host " + shell_quote(dhcp_host_) +
                                " --live");
    }
    dhcp_net_ = {};
}

void LibvirtRun::teardown() {
    const auto td = Clock::now();
    if (!s_.passed && domain_started_) s_.qemu_log_tail = read_tail(qemu_log(), 2048);
    if (cfg_.keep) {
        teardown_kept();
        s_.split.teardown_ms = ms_since(td);
        return;
    }
    auto lap = [&, t = Clock::now()](const char* what) mutable {
        s_.details["teardown"][what] = std::round(ms_since(t) * 10) / 10;
        t = Clock::now();
    };
    if (dom_ && s_.passed) {
        // The guest powers off after `done`; letting QEMU exit on its own
        // is faster than virDomainDestroy's SIGTERM-and-poll.
        const auto until = Clock::now() + std::chrono::milliseconds(1500);
        while (Clock::now() < until) {
            const auto state = conn_->domain_state(dom_);
            if (!state || *state == DomainState::shutoff) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        lap("poweroff_wait_ms");
    }
    if (dom_) {
        conn_->destroy_domain(dom_);  // fails harmlessly when the guest already powered off
        dom_ = {};
        lap("destroy_ms");
    }
    if (vol_) {
        if (!conn_->delete_volume(vol_)) {
            s_.details["cleanup_error"] = fmt::format("volume {}: {}", vol_name_, conn_->error().message);
            // A daemon that stopped answering cannot delete it; the file of
            // a local directory pool can still go (the pool forgets it at
            // its next refresh).
            if (!vol_path_.empty() && sys().remove_path(vol_path_) == 0) s_.details["volume_unlinked"] = vol_path_;
        }
        vol_ = {};
        lap("volume_ms");
    }
    if (dhcp_net_) {
        if (!conn_->update_dhcp_host(dhcp_net_, false, dhcp_host_))
            s_.details["cleanup_error"] = fmt::format("DHCP reservation {}: {}", dhcp_host_, conn_->error().message);
        dhcp_net_ = {};
        lap("dhcp_reservation_ms");
    }
    pool_ = {};
    conn_.reset();
    lap("close_ms");
    if (dir_made_) sys().remove_tree(dir_);
    // libvirt keeps one QEMU log per domain name; ours are unique, so it is
    // litter once the run is over (removable only where we may: root, local).
    if (domain_started_) (void)sys().remove_path(qemu_log());
    s_.split.teardown_ms = ms_since(td);
}

SmokeStep LibvirtRun::run() {
    s_.id = cfg_.step_id;
    s_.name = cfg_.step_name;
    s_.accel = cfg_.accel;
    s_.ran = true;
    if (std::string e = sys().libvirt_unavailable(); !e.empty()) {
        s_.ran = false;
        fail("prerequisite", e);
        return s_;
    }
    // libvirt's keepalive needs its event loop: with it, a daemon that stops
    // answering mid-run (hung, SIGSTOPped) closes the connection after ~4 s
    // and every blocked call returns, instead of the run hanging forever.
    sys().start_libvirt_event_loop();
    name_things();
    if (!open_connection()) {
        s_.elapsed_ms = ms_since(t0_);
        return s_;
    }
    try {
        check_pool();
        check_network();
        if (cancelled()) stop("interrupted", "interrupted before the guest started");
        make_run_dir();
        make_volume();
        s_.split.prepare_ms = ms_since(t0_);
        start_domain();
        watch();
        judge();
    } catch (const Stop&) {
        // a failure was recorded; fall through to teardown
    } catch (const std::exception& e) {
        fail("prerequisite", e.what());
    }
    if (!s_.passed) s_.serial_tail = tail_of(serial_, 4096);
    if (s_.passed)
        s_.message = fmt::format("booted through libvirt ({}, domain type {}), read the nonce back and found the NIC{}", cfg_.uri,
                                 cfg_.accel == "tcg" ? "qemu" : "kvm", cfg_.linux_guest ? ", and reached the host over the network" : "");
    teardown();
    s_.elapsed_ms = ms_since(t0_);
    return s_;
}

}  // namespace

std::string libvirt_client_unavailable() { return host::live_target().libvirt_unavailable(); }

SmokeStep run_libvirt(const LibvirtRunConfig& cfg, std::vector<std::string>* kept, std::vector<std::string>* cleanup) {
    return LibvirtRun(cfg, kept, cleanup).run();
}

}  // namespace kvmready::smoke
