// `kvmready watch`'s pure parts: which checks an event can change, how a
// burst is coalesced (by the time passed in, nothing sleeps), the scripted
// uevent source's poll-ability and the recording's round trip. The real
// loop runs in watch_netns_test.cpp and watch_guest_test.cpp.
#include <poll.h>

#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "core/probe.hpp"
#include "core/runner.hpp"
#include "watch/judge.hpp"
#include "host/udev_monitor.hpp"
#include "watch/batch.hpp"
#include "watch/impact.hpp"

namespace {

using kvmready::host::Uevent;
using namespace kvmready::watch;
using namespace std::chrono_literals;

Uevent ev(const std::string& sub, const std::string& action, const std::string& name) {
    Uevent e;
    e.subsystem = sub;
    e.action = action;
    e.sysname = name;
    return e;
}

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

TEST(WatchUnit, EventsMapToTheChecksTheyCanChange) {
    const Impact net = impact_of(ev("net", "add", "br0"));
    EXPECT_EQ(net.categories, std::set<std::string>{"net"});
    EXPECT_TRUE(net.areas & kvmready::kAreaNet);
    EXPECT_FALSE(net.kvm);  // an interface never re-runs the /dev/kvm ioctl test

    for (const auto& e : {ev("misc", "add", "kvm"), ev("module", "add", "kvm_amd"), ev("module", "remove", "kvm"),
                          ev("module", "add", "kvm_intel")}) {
        const Impact k = impact_of(e);
        EXPECT_TRUE(k.kvm) << kvmready::host::describe(e);
        EXPECT_TRUE(k.categories.count("kvm")) << kvmready::host::describe(e);
        EXPECT_EQ(k.areas, 0u) << "the core alone: " << kvmready::host::describe(e);
    }
    for (const auto& e : {ev("vfio", "add", "12"), ev("pci", "bind", "0000:00:02.0"), ev("module", "add", "vfio_pci"),
                          ev("misc", "add", "vfio")}) {
        const Impact d = impact_of(e);
        EXPECT_TRUE(d.areas & kvmready::kAreaSystem) << kvmready::host::describe(e);
        EXPECT_TRUE(d.areas & kvmready::kAreaDevices) << kvmready::host::describe(e);
        EXPECT_TRUE(d.categories.count("iommu")) << kvmready::host::describe(e);
        EXPECT_FALSE(d.kvm);
    }
    EXPECT_TRUE(impact_of(ev("misc", "add", "vhost-net")).categories.count("net"));
    EXPECT_TRUE(impact_of(ev("module", "add", "br_netfilter")).categories.count("net"));
    // VMs coming and going (KVM's own "change" events), and nothing a check reads.
    EXPECT_FALSE(impact_of(ev("misc", "change", "kvm")).relevant());
    EXPECT_FALSE(impact_of(ev("block", "add", "sda1")).relevant());
    EXPECT_FALSE(impact_of(ev("misc", "add", "rfkill")).relevant());
    EXPECT_FALSE(impact_of(ev("module", "add", "ext4")).relevant());
    EXPECT_FALSE(impact_of(ev("input", "add", "event3")).relevant());
}

TEST(WatchUnit, ABurstIsOneRunDueAfterTheQuietTime) {
    Batch b(100ms, 500ms);
    const auto t0 = Clock::time_point{} + 1h;
    EXPECT_FALSE(b.pending());
    EXPECT_EQ(b.due_in(t0), -1);
    b.add(impact_of(ev("net", "add", "d0")), "net add d0", t0);
    EXPECT_EQ(b.due_in(t0), 100);
    b.add(impact_of(ev("net", "add", "d1")), "net add d1", t0 + 60ms);
    EXPECT_EQ(b.due_in(t0 + 60ms), 100) << "a new event restarts the quiet time";
    EXPECT_EQ(b.due_in(t0 + 160ms), 0);
    EXPECT_EQ(b.events(), 2u);
}

TEST(WatchUnit, AStreamStillRunsAtTheLatestAfterMaxDelay) {
    Batch b(100ms, 500ms);
    const auto t0 = Clock::time_point{} + 1h;
    for (int i = 0; i < 50; ++i) b.add(impact_of(ev("net", "add", "d")), "net add d", t0 + i * 10ms);
    EXPECT_EQ(b.due_in(t0 + 490ms), 10) << "due 500 ms after the first event, not 100 ms after the last";
    EXPECT_EQ(b.due_in(t0 + 500ms), 0);
}

TEST(WatchUnit, CausesNameTheEventsOfTheCheckCategory) {
    Batch b(100ms, 500ms);
    const auto t = Clock::time_point{} + 1h;
    b.add(impact_of(ev("net", "add", "br0")), "net add br0", t);
    b.add(impact_of(ev("module", "add", "kvm_amd")), "module add kvm_amd", t);
    for (int i = 0; i < 5; ++i) b.add(impact_of(ev("net", "add", "tap" + std::to_string(i))), "net add tap" + std::to_string(i), t);
    EXPECT_EQ(b.cause_for("kvm"), "module add kvm_amd");
    EXPECT_EQ(b.cause_for("net"), "net add br0, net add tap0, net add tap1 and 3 more events");
    EXPECT_EQ(b.cause_for(""), "net add br0, module add kvm_amd, net add tap0 and 4 more events");
    const Impact i = b.impact();
    EXPECT_TRUE(i.kvm);
    EXPECT_TRUE(i.areas & kvmready::kAreaNet);
    b.clear();
    EXPECT_FALSE(b.pending());
    EXPECT_FALSE(b.impact().relevant());
}

TEST(WatchUnit, ScriptedSourceIsReadableExactlyWhileEventsWait) {
    kvmready::host::ScriptedUevents s;
    EXPECT_FALSE(readable(s.fd()));
    s.push(ev("net", "add", "a"));
    s.push(ev("net", "remove", "a"), true);
    EXPECT_TRUE(readable(s.fd()));
    bool lost = false;
    auto got = s.read_pending(1, &lost);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_FALSE(lost);
    EXPECT_TRUE(readable(s.fd())) << "one still waits";
    got = s.read_pending(10, &lost);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].action, "remove");
    EXPECT_TRUE(lost);
    EXPECT_FALSE(readable(s.fd()));
}

TEST(WatchUnit, RecordingKeepsTheNewestEventsAndReplays) {
    kvmready::host::ScriptedUevents s;
    kvmready::host::RecordingUevents rec(s, 2);
    for (const char* n : {"a", "b", "c"}) s.push(ev("net", "add", n));
    bool lost = false;
    EXPECT_EQ(rec.read_pending(10, &lost).size(), 3u);
    ASSERT_EQ(rec.recorded().size(), 2u) << "bounded: memory stays flat over a long run";
    const std::string lines = kvmready::host::uevents_to_json_lines(rec.recorded());
    const auto back = kvmready::host::uevents_from_json_lines(lines);
    ASSERT_EQ(back.size(), 2u);
    EXPECT_EQ(back[0].sysname, "b");
    EXPECT_EQ(kvmready::host::describe(back[1]), "net add c");
    EXPECT_THROW(kvmready::host::uevents_from_json_lines("{\"action\": 3}\n"), std::runtime_error);
}

// The Judge with its world injected: a probe that answers prepared Facts
// and writes down what it was asked, a publisher that keeps the files.
struct JudgeRig {
    std::vector<kvmready::ProbeOptions> asked;
    std::vector<kvmready::Facts> answers;
    std::vector<std::vector<kvmready::host::OutputFile>> published;
    bool fail_publish = false;
    std::ostringstream changes, diagnostics;

    kvmready::watch::Judge make() {
        JudgeIo io;
        io.probe = [this](const kvmready::ProbeOptions& o) {
            asked.push_back(o);
            kvmready::Facts f = answers.at(asked.size() - 1);
            if (!o.kvm_api) f.kvm = {};  // as probe() leaves it: not attempted
            return f;
        };
        io.publish = [this](const std::vector<kvmready::host::OutputFile>& files) {
            if (fail_publish) throw std::runtime_error("disk full");
            published.push_back(files);
        };
        io.unix_now = [] { return int64_t{0}; };
        io.changes = &changes;
        io.diagnostics = &diagnostics;
        return kvmready::watch::Judge(kvmready::ProbeOptions{},
                                      {{kvmready::output::Format::Json, "/o/k.json"}, {kvmready::output::Format::Prometheus, "/o/k.prom"}},
                                      {}, io);
    }
};

std::string status_of(const kvmready::Report& r, const std::string& id) {
    for (const auto& f : r.findings)
        if (f.id == id) return kvmready::to_string(f.status);
    return "";
}

TEST(WatchUnit, JudgeReprobesOnlyWhatTheEventChangesAndLogsTheCause) {
    JudgeRig rig;
    kvmready::Facts without, with;
    with.device.stat.exists = true;
    with.device.stat.type = "char";
    with.device.stat.major = 10;
    with.device.stat.minor = 232;
    with.device.stat.mode = 0660;
    rig.answers = {without, without, with};
    auto judge = rig.make();
    const auto cause = [](const std::string& cat) { return cat == "kvm" ? std::string("misc add kvm") : std::string("start"); };

    judge.run(everything(), cause);
    ASSERT_EQ(rig.asked.size(), 1u);
    EXPECT_EQ(rig.asked[0].areas, unsigned{kvmready::kAreaAll}) << "the first run reads everything";
    EXPECT_TRUE(rig.asked[0].kvm_api);
    EXPECT_EQ(rig.changes.str(), "") << "the first run has nothing to compare with";
    EXPECT_NE(rig.diagnostics.str().find("at start: "), std::string::npos);
    ASSERT_EQ(rig.published.size(), 1u);
    ASSERT_EQ(rig.published[0].size(), 2u);
    EXPECT_EQ(rig.published[0][0].path, "/o/k.json");
    EXPECT_NE(rig.published[0][1].content.find("kvmready_check_status"), std::string::npos);

    judge.run(impact_of(ev("net", "add", "br0")), cause);
    EXPECT_EQ(rig.asked[1].areas, unsigned{kvmready::kAreaNet | kvmready::kAreaVirt});
    EXPECT_FALSE(rig.asked[1].kvm_api) << "an interface does not re-run the ioctl test";
    EXPECT_EQ(rig.changes.str(), "") << "same facts, same verdicts";

    judge.run(impact_of(ev("misc", "add", "kvm")), cause);
    EXPECT_EQ(rig.asked[2].areas, 0u);
    EXPECT_TRUE(rig.asked[2].kvm_api);
    const std::string before = status_of(kvmready::run_checks(without, {}), "kvm.device");
    const std::string after = status_of(judge.report(), "kvm.device");
    ASSERT_NE(before, after) << "the prepared facts must change kvm.device";
    EXPECT_NE(rig.changes.str().find("1970-01-01T00:00:00Z kvm.device: " + before + " -> " + after + " after misc add kvm\n"),
              std::string::npos)
        << rig.changes.str();
    EXPECT_EQ(judge.runs(), 3u);
    EXPECT_EQ(rig.published.size(), 3u) << "every run rewrites the outputs";
}

// What a run does not re-probe is the last run's: a kvm event must not leave
// devices.passthrough judging an empty device list (it said "unknown").
TEST(WatchUnit, JudgeKeepsTheDevicesAKvmEventDoesNotReprobe) {
    JudgeRig rig;
    kvmready::Facts full;
    full.devices.probed = true;
    full.devices.enumeration = "libudev";
    kvmready::PciDevice nic;
    nic.bdf = "0000:00:03.0";
    nic.vendor = "1af4";
    nic.device = "1000";
    nic.class_code = "020000";
    nic.driver = "virtio-pci";
    full.devices.pci.push_back(nic);
    rig.answers = {full, kvmready::Facts{}};  // the second probe reads no device area
    auto judge = rig.make();
    const auto cause = [](const std::string&) { return std::string("module add irqbypass"); };
    judge.run(everything(), cause);
    const std::string first = status_of(judge.report(), "devices.passthrough");
    ASSERT_FALSE(first.empty());
    judge.run(impact_of(ev("module", "add", "irqbypass")), cause);
    EXPECT_FALSE(rig.asked[1].areas & kvmready::kAreaDevices);
    EXPECT_EQ(status_of(judge.report(), "devices.passthrough"), first);
    EXPECT_EQ(rig.changes.str().find("devices.passthrough"), std::string::npos) << rig.changes.str();
}

TEST(WatchUnit, JudgeKeepsGoingWhenAnOutputCannotBeWritten) {
    JudgeRig rig;
    rig.answers = {kvmready::Facts{}, kvmready::Facts{}};
    rig.fail_publish = true;
    auto judge = rig.make();
    judge.run(everything(), [](const std::string&) { return std::string("start"); });
    EXPECT_EQ(judge.write_failures(), 1u);
    EXPECT_NE(rig.diagnostics.str().find("cannot write --output: disk full"), std::string::npos) << rig.diagnostics.str();
    rig.fail_publish = false;
    judge.run(everything(), [](const std::string&) { return std::string("periodic full run"); });
    EXPECT_EQ(rig.published.size(), 1u) << "the next run writes again";
}

}  // namespace
