// Kernel device events (uevents) for `kvmready watch`: a libudev monitor on
// the kernel's netlink uevent source, which works without a udev daemon (as
// on containers and minimal hosts); the daemon's processed stream ("udev"
// source) only when one runs. Like the rest of the host layer the source is
// an interface: the watch loop sees a UeventSource, tests and replays give
// it ScriptedUevents, and RecordingUevents writes down what a live one saw.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/unique_fd.hpp"

namespace kvmready::host {

struct Uevent {
    std::string action;     // add, remove, change, move, bind, unbind, online, offline
    std::string subsystem;  // net, misc, vfio, pci, module, block, ...
    std::string sysname;    // br0, kvm, 0000:00:02.0, kvm_amd
    std::string devname;    // the node under /dev ("kvm", "vfio/12"), "" when none
    std::string devtype;    // bridge, wlan, partition, ...
    std::string driver;     // bound driver on bind events (vfio-pci)
    uint64_t seqnum = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Uevent, action, subsystem, sysname, devname, devtype, driver, seqnum)

// "net add br0": how an event is named in logs.
std::string describe(const Uevent& e);

class UeventSource {
public:
    virtual ~UeventSource() = default;
    // Readable (poll POLLIN) while events wait.
    [[nodiscard]] virtual int fd() const = 0;
    // Every event waiting now, without blocking, at most `max` of them (the
    // rest stay readable). `lost` is set when the kernel dropped events
    // (the socket's receive buffer overflowed): the caller must then assume
    // that anything may have changed.
    virtual std::vector<Uevent> read_pending(size_t max, bool* lost) = 0;
    // "kernel uevents (netlink) for net, misc, ...", for the start-up line.
    [[nodiscard]] virtual std::string description() const = 0;
};

// The subsystems whose events can change a verdict of kvmready's checks.
const std::vector<std::string>& watched_subsystems();

// A libudev monitor filtered to `subsystems` (empty: all). source "auto"
// takes "udev" when a udev daemon runs (/run/udev/control), else "kernel".
// nullptr with *error set when libudev cannot open one (no netlink, no
// permission).
std::unique_ptr<UeventSource> open_udev_monitor(const std::vector<std::string>& subsystems, const std::string& source,
                                                std::string* error);

// Events handed in by a test or read back from a recording; fd() is
// readable exactly while some are queued.
class ScriptedUevents final : public UeventSource {
public:
    ScriptedUevents();
    void push(const Uevent& e, bool lost_before = false);
    [[nodiscard]] int fd() const override { return read_end_.get(); }
    std::vector<Uevent> read_pending(size_t max, bool* lost) override;
    [[nodiscard]] std::string description() const override { return "scripted uevents"; }

private:
    void sync_readable();
    struct Queued {
        Uevent event;
        bool lost_before = false;
    };
    std::deque<Queued> queue_;
    UniqueFd read_end_, write_end_;
    bool signalled_ = false;
};

// Passes another source's events on and keeps a copy of each (bounded: the
// newest `keep` events), to be written as JSON lines and replayed.
class RecordingUevents final : public UeventSource {
public:
    RecordingUevents(UeventSource& inner, size_t keep) : inner_(inner), keep_(keep) {}
    [[nodiscard]] int fd() const override { return inner_.fd(); }
    std::vector<Uevent> read_pending(size_t max, bool* lost) override;
    [[nodiscard]] std::string description() const override { return inner_.description(); }
    [[nodiscard]] const std::deque<Uevent>& recorded() const { return recorded_; }

private:
    UeventSource& inner_;
    size_t keep_;
    std::deque<Uevent> recorded_;
};

// One JSON object per line, and back (throws std::runtime_error naming the line).
std::string uevents_to_json_lines(const std::deque<Uevent>& events);
std::vector<Uevent> uevents_from_json_lines(const std::string& text);

}  // namespace kvmready::host
