// `kvmready watch` for real, in a network namespace the test made: the
// binary runs there under `ip netns exec` (uevents of a namespace's
// interfaces reach only listeners in that namespace), the test creates and
// removes a bridge and a veth pair there, and the --output files must
// be rewritten within a second, the bridge's verdict change logged with the
// event behind it. SIGTERM mid-run ends it with 0 and no temporary file left.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/background.hpp"
#include "support/guest_vm.hpp"
#include "support/netns.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using kvmready::testsupport::TestNetns;
using Clock = std::chrono::steady_clock;

// No libvirt: a dead socket, so the net checks judge the namespace alone.
const std::string kNoLibvirt = "qemu:///system?socket=/nonexistent/kvmready-watch-test.sock";

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The file's identity: publish_files renames a new file into place, so a
// rewrite always shows as a new inode, even with the same bytes.
ino_t inode_of(const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Polls (no fixed sleep decides anything) until pred holds or the time is up.
bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pred();
}

std::string status_in(const fs::path& json_file, const std::string& id) {
    try {
        const auto j = nlohmann::json::parse(slurp(json_file));
        return kvmready::testsupport::status_of(kvmready::testsupport::find_check(j, id));
    } catch (const std::exception&) {
        return "";  // never half a file: publish_files renames; "" fails the caller
    }
}

class WatchNetns : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
        if (!kvmready::testsupport::find_in_path("ip")) GTEST_SKIP() << "iproute2's ip is not installed";
    }
};

TEST_F(WatchNetns, InterfacesChangeTheOutputsWithinASecondAndSigtermLeavesNothing) {
    TestNetns ns("watch");
    if (!ns.ok()) GTEST_SKIP() << "cannot create a network namespace here: " << ns.error();
    kvmready::testsupport::TempDir tmp("kvmready-watch");
    const fs::path out = tmp.path / "out", json = out / "kvmready.json", prom = out / "kvmready.prom", log = tmp.path / "watch.log";
    fs::create_directory(out);
    auto argv = ns.exec_argv({KVMREADY_BINARY, "watch", "--bridge", "brw0", "--connect", kNoLibvirt, "--output", "json:" + json.string(),
                              "--output", "prometheus:" + prom.string(), "--interval", "3600"});
    argv[0] = *kvmready::testsupport::find_in_path("ip");  // Background spawns without a PATH search
    kvmready::testsupport::Background watch(argv, log);
    ASSERT_TRUE(watch.started());
    ASSERT_TRUE(wait_for([&] { return fs::exists(json) && fs::exists(prom); }, std::chrono::seconds(60)))
        << "no outputs after the first run:\n" << slurp(log);
    // The monitor listens before the first run starts: an event from now on is seen.
    EXPECT_EQ(status_in(json, "net.bridges"), "fail") << slurp(log);

    auto changed_after = [&](const std::vector<std::string>& cmd, const std::function<bool()>& also) {
        const ino_t j0 = inode_of(json), p0 = inode_of(prom);
        const std::string err = ns.run(cmd);
        EXPECT_EQ(err, "");
        const auto t0 = Clock::now();
        const bool ok = wait_for([&] { return inode_of(json) != j0 && inode_of(prom) != p0 && also(); }, std::chrono::seconds(10));
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
        EXPECT_TRUE(ok) << "outputs not rewritten after " << ::testing::PrintToString(cmd) << ":\n" << slurp(log);
        EXPECT_LT(ms, 1000) << ::testing::PrintToString(cmd) << " took " << ms << " ms to reach the outputs";
        std::cout << "[ watch    ] " << ::testing::PrintToString(cmd) << ": outputs rewritten after " << ms << " ms" << std::endl;
        return ms;
    };
    // Up at once: bringing a link up raises no uevent, adding it does.
    changed_after({"ip", "link", "add", "name", "brw0", "up", "type", "bridge"}, [&] { return status_in(json, "net.bridges") != "fail"; });
    EXPECT_NE(status_in(json, "net.bridges"), "fail");
    EXPECT_NE(slurp(prom).find("net.bridges"), std::string::npos);
    // A veth pair (dummy is not built into every kernel) changes no
    // verdict, and the files are rewritten all the same: a monitoring system
    // sees a fresh run.
    changed_after({"ip", "link", "add", "vw0", "type", "veth", "peer", "name", "vw1"}, [] { return true; });
    changed_after({"ip", "link", "del", "vw0"}, [] { return true; });
    changed_after({"ip", "link", "del", "brw0"}, [&] { return status_in(json, "net.bridges") == "fail"; });

    const int code = watch.stop();
    EXPECT_EQ(code, 0) << slurp(log);
    const std::string text = slurp(log);
    EXPECT_NE(text.find("net.bridges: fail -> "), std::string::npos) << text;
    EXPECT_NE(text.find(" after net add brw0"), std::string::npos) << text;
    EXPECT_NE(text.find("-> fail after net remove brw0"), std::string::npos) << text;
    EXPECT_NE(text.find("stopped by SIGTERM"), std::string::npos) << text;
    // Nothing but the two outputs next to them: no .NAME.XXXXXX left.
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(out)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"kvmready.json", "kvmready.prom"}));
}

TEST_F(WatchNetns, BadOutputIsRefusedBeforeWatching) {
    kvmready::testsupport::TempDir tmp("kvmready-watch");
    const auto r = kvmready::host::run_process(
        {KVMREADY_BINARY, "watch", "--output", "json:" + (tmp.path / "missing-dir" / "x.json").string()}, 15000);
    EXPECT_EQ(r.exit_code, 73) << r.err;
    EXPECT_NE(r.err.find("missing-dir"), std::string::npos) << r.err;
    const auto u = kvmready::host::run_process({KVMREADY_BINARY, "watch", "--output", "yaml:/tmp/x"}, 15000);
    EXPECT_EQ(u.exit_code, 64) << u.err;
}

}  // namespace
