#include "host/udev_monitor.hpp"

#include <fcntl.h>
#include <libudev.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace kvmready::host {

std::string describe(const Uevent& e) {
    std::string name = e.sysname.empty() ? e.devname : e.sysname;
    return fmt::format("{} {} {}", e.subsystem.empty() ? "?" : e.subsystem, e.action.empty() ? "?" : e.action, name.empty() ? "?" : name);
}

const std::vector<std::string>& watched_subsystems() {
    // net: bridges, taps, uplinks; misc: /dev/kvm (and /dev/vfio/vfio);
    // vfio: IOMMU group nodes; pci: devices appearing, drivers binding;
    // module: kvm, kvm_amd, vfio_pci loading (the module's kobject, even
    // when it registers no device).
    static const std::vector<std::string> s = {"net", "misc", "vfio", "pci", "module"};
    return s;
}

namespace {

std::string str(const char* s) { return s ? s : ""; }

class UdevMonitor final : public UeventSource {
public:
    UdevMonitor(udev* u, udev_monitor* m, std::string description) : udev_(u), mon_(m), description_(std::move(description)) {}
    ~UdevMonitor() override {
        udev_monitor_unref(mon_);
        udev_unref(udev_);
    }
    UdevMonitor(const UdevMonitor&) = delete;
    UdevMonitor& operator=(const UdevMonitor&) = delete;

    [[nodiscard]] int fd() const override { return udev_monitor_get_fd(mon_); }
    [[nodiscard]] std::string description() const override { return description_; }

    std::vector<Uevent> read_pending(size_t max, bool* lost) override {
        std::vector<Uevent> out;
        while (out.size() < max) {
            errno = 0;
            udev_device* d = udev_monitor_receive_device(mon_);
            if (!d) {
                // ENOBUFS: the kernel dropped events for this socket; the
                // next read goes on with the newer ones.
                if (errno == ENOBUFS) {
                    if (lost) *lost = true;
                    continue;
                }
                if (errno == EINTR) continue;
                break;  // EAGAIN: nothing more waits (or a message not passing the filter was last)
            }
            Uevent e;
            e.action = str(udev_device_get_action(d));
            e.subsystem = str(udev_device_get_subsystem(d));
            e.sysname = str(udev_device_get_sysname(d));
            e.devtype = str(udev_device_get_devtype(d));
            e.driver = str(udev_device_get_driver(d));
            e.seqnum = udev_device_get_seqnum(d);
            // The node name as the kernel announced it (DEVNAME=kvm,
            // vfio/12), not a /dev path built from it.
            e.devname = str(udev_device_get_property_value(d, "DEVNAME"));
            udev_device_unref(d);
            out.push_back(std::move(e));
        }
        return out;
    }

private:
    udev* udev_;
    udev_monitor* mon_;
    std::string description_;
};

}  // namespace

std::unique_ptr<UeventSource> open_udev_monitor(const std::vector<std::string>& subsystems, const std::string& source,
                                                std::string* error) {
    auto fail = [&](const std::string& what, int err) -> std::unique_ptr<UeventSource> {
        if (error) *error = err ? fmt::format("{}: {}", what, std::strerror(err)) : what;
        return nullptr;
    };
    std::string group = source;
    // Without a daemon the "udev" group never carries anything: libudev
    // would listen on a silent socket.
    if (group == "auto") group = ::access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel";
    if (group != "kernel" && group != "udev") return fail(fmt::format("unknown uevent source '{}' (kernel, udev or auto)", source), 0);
    udev* u = udev_new();
    if (!u) return fail("udev_new", errno);
    udev_monitor* m = udev_monitor_new_from_netlink(u, group.c_str());
    if (!m) {
        const int e = errno;
        udev_unref(u);
        return fail(fmt::format("cannot listen to {} uevents (netlink)", group), e);
    }
    for (const auto& s : subsystems) udev_monitor_filter_add_match_subsystem_devtype(m, s.c_str(), nullptr);
    // A burst (a thousand interfaces at once) must not overflow the socket;
    // raising the buffer past rmem_max needs CAP_NET_ADMIN and is best effort.
    udev_monitor_set_receive_buffer_size(m, 8 * 1024 * 1024);
    if (const int r = udev_monitor_enable_receiving(m); r < 0) {
        udev_monitor_unref(m);
        udev_unref(u);
        return fail(fmt::format("cannot listen to {} uevents (netlink)", group), -r);
    }
    // libudev's fd is non-blocking already; keep it out of children.
    const int fd = udev_monitor_get_fd(m);
    ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
    std::string subs;
    for (const auto& s : subsystems) subs += (subs.empty() ? "" : ", ") + s;
    return std::make_unique<UdevMonitor>(u, m, fmt::format("{} uevents (netlink) for {}", group, subs.empty() ? "every subsystem" : subs));
}

ScriptedUevents::ScriptedUevents() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
    read_end_.reset(p[0]);
    write_end_.reset(p[1]);
}

void ScriptedUevents::sync_readable() {
    // One byte in the pipe while the queue is not empty: poll sees exactly that.
    if (!queue_.empty() && !signalled_) {
        signalled_ = ::write(write_end_.get(), "e", 1) == 1;
    } else if (queue_.empty() && signalled_) {
        char c;
        signalled_ = ::read(read_end_.get(), &c, 1) != 1;
    }
}

void ScriptedUevents::push(const Uevent& e, bool lost_before) {
    queue_.push_back({e, lost_before});
    sync_readable();
}

std::vector<Uevent> ScriptedUevents::read_pending(size_t max, bool* lost) {
    std::vector<Uevent> out;
    while (!queue_.empty() && out.size() < max) {
        if (queue_.front().lost_before && lost) *lost = true;
        out.push_back(std::move(queue_.front().event));
        queue_.pop_front();
    }
    sync_readable();
    return out;
}

std::vector<Uevent> RecordingUevents::read_pending(size_t max, bool* lost) {
    std::vector<Uevent> out = inner_.read_pending(max, lost);
    for (const auto& e : out) {
        recorded_.push_back(e);
        if (recorded_.size() > keep_) recorded_.pop_front();
    }
    return out;
}

std::string uevents_to_json_lines(const std::deque<Uevent>& events) {
    std::string out;
    for (const auto& e : events) out += nlohmann::json(e).dump() + "\n";
    return out;
}

std::vector<Uevent> uevents_from_json_lines(const std::string& text) {
    std::vector<Uevent> out;
    std::istringstream in(text);
    int n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        if (line.empty()) continue;
        try {
            out.push_back(nlohmann::json::parse(line).get<Uevent>());
        } catch (const nlohmann::json::exception& e) {
            throw std::runtime_error(fmt::format("line {}: not a uevent: {}", n, e.what()));
        }
    }
    return out;
}

}  // namespace kvmready::host
