// Ops that change libvirt and its daemons:
//
//   libvirt.network.define / .start / .autostart / .restart
//   libvirt.pool.define / .build / .start / .autostart
//   daemon.start          (a libvirt daemon started directly: NAME -d)
//   systemd.enable-now    (systemctl enable --now UNITS)
//
// Every op looks at the live state again when it runs (the plan may be
// minutes old, or the daemon was down when it was made) and does only what is
// still missing. prepare() records what undo needs before anything changes;
// undo() is safe when apply never ran, ran halfway or failed:
//  * a network or pool kvmready defines gets a UUID chosen in prepare(), so
//    undo removes exactly that object, never one someone else defined under
//    the same name;
//  * start/autostart undo only revert what was not so before;
//  * a started daemon is stopped by PID, and only when that PID still is that
//    daemon started at the recorded time (the PID is also written to the run
//    directory at once, for a run killed before the step was marked done).
//
// libvirt is reached through a session the op's target opens
// (ctx.sys().open_libvirt, host/libvirt_session.hpp: libvirt.so, loaded on
// first use, or a RecordingTarget's record). Every call can block for
// ever on a hung daemon (the socket accepts, nobody answers), so each op's
// libvirt work runs on its own thread with deadlines: 5 s to connect (a
// stopped daemon is reported within seconds and nothing is changed), 30 s for
// the work. An abandoned thread never goes on to change anything after its
// connection was given up, and main() leaves with _Exit (see main_cli.cpp).
// No keepalive: it needs libvirt's event loop, which smoke owns in-process.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "fixes/fix.hpp"
#include "fixes/fixes.hpp"
#include "fixes/libvirt_fix.hpp"
#include "host/libvirt_session.hpp"
#include "host/nofollow_fs.hpp"
#include "host/target.hpp"


namespace kvmready::fix {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void say(OpContext& ctx, const std::string& m) {
    if (ctx.log) ctx.log(m);
}

[[maybe_unused]] std::string uri_of(const OpContext& ctx) { return ctx.connect_uri.empty() ? "qemu:///system" : ctx.connect_uri; }

int env_ms(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    const int n = std::atoi(v);
    return n > 0 ? n : fallback;
}

std::string arg(const Step& s, const char* key) { return s.args.value(key, std::string()); }
std::string rec(const Json& u, const char* key) { return u.value(key, std::string()); }

#ifdef KVMREADY_HAVE_LIBVIRT

using host::LibvirtSession;
using host::LibvirtKind;
using host::LibvirtObject;

std::string uuid_in(const std::string& xml) {
    const auto a = xml.find("<uuid>");
    const auto b = xml.find("</uuid>");
    return a == std::string::npos || b == std::string::npos || b < a ? "" : xml.substr(a + 6, b - a - 6);
}

// Running guests with an interface on network `name`.
std::vector<std::string> guests_on_network(LibvirtSession& c, const std::string& name) {
    std::vector<std::string> out;
    auto doms = c.active_domains();
    if (!doms) throw std::runtime_error("listing running guests: " + c.error().message);
    const std::string a = "network='" + lv::xml_escape(name) + "'", b = "network=\"" + lv::xml_escape(name) + "\"";
    for (const auto& [dn, xml] : *doms)
        if (xml.find(a) != std::string::npos || xml.find(b) != std::string::npos) out.push_back(dn);
    return out;
}

// A network and a storage pool share one lifecycle (define, start,
// autostart, and back) through different calls; the client picks them.
struct Kind {
    const char* noun;   // "network", "pool"
    const char* virsh;  // "net", "pool"
    LibvirtKind kind;
    // Running guests stopping it would cut off (nullptr: stopping is harmless).
    std::vector<std::string> (*users)(LibvirtSession&, const std::string&);
};

const Kind& network_kind() {
    static const Kind k = {"network", "net", LibvirtKind::network, guests_on_network};
    return k;
}

const Kind& pool_kind() {
    // Stopping a directory pool leaves its files alone, and running guests
    // keep their open disks.
    static const Kind k = {"pool", "pool", LibvirtKind::pool, nullptr};
    return k;
}

// An empty object when there is no such object; throws on any other error.
LibvirtObject by_name(const Kind& k, LibvirtSession& c, const std::string& name) {
    LibvirtObject o = c.lookup(k.kind, name);
    if (!o && !c.error().not_found) throw std::runtime_error(fmt::format("looking up {} {}: {}", k.noun, name, c.error().message));
    return o;
}

LibvirtObject by_uuid(const Kind& k, LibvirtSession& c, const std::string& uuid) {
    if (uuid.empty()) return {};
    LibvirtObject o = c.lookup_uuid(k.kind, uuid);
    if (!o && !c.error().not_found) throw std::runtime_error(fmt::format("looking up {} {}: {}", k.noun, uuid, c.error().message));
    return o;
}

LibvirtObject must_exist(const Kind& k, LibvirtSession& c, const std::string& name) {
    LibvirtObject o = by_name(k, c, name);
    if (!o) throw std::runtime_error(fmt::format("{} {} is not defined", k.noun, name));
    return o;
}

using Work = std::function<Json(LibvirtSession&)>;

// Runs work(session) on its own thread with the deadlines described at the
// top; the thread holds the target, so an abandoned one outlives nothing it uses.
Json with_libvirt(OpContext& ctx, const std::string& what, Work work) {
    const std::string uri = uri_of(ctx);
    ctx.sys();  // sets ctx.target
    std::shared_ptr<host::Target> target = ctx.target;
    if (std::string err = target->libvirt_unavailable(); !err.empty()) throw std::runtime_error(err + ": not done: " + what);
    struct Shared {
        std::mutex m;
        std::condition_variable cv;
        int phase = 0;  // 0 connecting, 1 working, 2 finished
        bool abandoned = false;
        Json result;
        std::string error;
    };
    auto sh = std::make_shared<Shared>();
    std::thread([sh, uri, target, work = std::move(work)] {
        host::LibvirtError open_error;
        std::unique_ptr<LibvirtSession> c = target->open_libvirt(uri, &open_error);
        if (!c) {
            std::lock_guard<std::mutex> g(sh->m);
            sh->error = fmt::format("cannot connect to libvirt at {}: {}", uri, open_error.message);
            sh->phase = 2;
            sh->cv.notify_all();
            return;
        }
        {
            std::lock_guard<std::mutex> g(sh->m);
            if (sh->abandoned) return;  // reported as not done: must stay so (c closes)
            sh->phase = 1;
            sh->cv.notify_all();
        }
        Json r;
        std::string e;
        try {
            r = work(*c);
        } catch (const std::exception& ex) {
            e = ex.what();
        }
        c.reset();
        std::lock_guard<std::mutex> g(sh->m);
        sh->result = std::move(r);
        sh->error = std::move(e);
        sh->phase = 2;
        sh->cv.notify_all();
    }).detach();
    const int connect_ms = env_ms("KVMREADY_FIX_LIBVIRT_CONNECT_MS", 5000);
    const int work_ms = env_ms("KVMREADY_FIX_LIBVIRT_WORK_MS", 30000);
    std::unique_lock<std::mutex> g(sh->m);
    if (!sh->cv.wait_for(g, std::chrono::milliseconds(connect_ms), [&] { return sh->phase >= 1; })) {
        sh->abandoned = true;
        throw std::runtime_error(fmt::format("the libvirt daemon at {} accepted the connection but did not answer within {:.0f} s "
                                             "(hung or stopped): not done: {}",
                                             uri, connect_ms / 1000.0, what));
    }
    if (!sh->cv.wait_for(g, std::chrono::milliseconds(work_ms), [&] { return sh->phase == 2; })) {
        sh->abandoned = true;
        throw std::runtime_error(fmt::format("the libvirt daemon at {} stopped answering while {} (no reply within {:.0f} s): it may "
                                             "or may not have happened; the next --apply or --undo looks again",
                                             uri, what, work_ms / 1000.0));
    }
    if (!sh->error.empty()) throw std::runtime_error(sh->error);
    return sh->result;
}

// libvirt.{network,pool}.define: the XML with a UUID chosen in prepare(), so
// undo removes exactly what this run defined. An active transient object is
// made persistent from its running definition instead (undo: transient again).
Op define_op(const Kind& k) {
    Op op;
    op.prepare = [&k](const Step& s, OpContext& ctx) {
        const std::string name = arg(s, "name");
        Json now = with_libvirt(ctx, fmt::format("looking up {} {}", k.noun, name), [&k, name](LibvirtSession& c) {
            LibvirtObject o = by_name(k, c, name);
            if (!o) return Json{{"exists", false}};
            return Json{{"exists", true}, {"persistent", c.persistent(o)}, {"old_uuid", uuid_in(c.xml(o))}};
        });
        return Json{{"name", name},
                    {"uuid", lv::random_uuid()},
                    {"existed", now.value("exists", false)},
                    {"was_persistent", now.value("persistent", false)},
                    {"old_uuid", now.value("old_uuid", "")}};
    };
    op.apply = [&k](const Step& s, OpContext& ctx, Json& u) {
        const std::string name = arg(s, "name"), xml = lv::with_uuid(arg(s, "xml"), rec(u, "uuid"));
        Json r = with_libvirt(ctx, fmt::format("defining {} {}", k.noun, name), [&k, name, xml](LibvirtSession& c) {
            LibvirtObject o = by_name(k, c, name);
            if (o && c.persistent(o)) return Json{{"action", "none"}};
            // Active but transient: keep it exactly as it runs, persistently.
            const std::string use = o ? c.xml(o) : xml;
            LibvirtObject d = c.define(k.kind, use);
            if (!d) throw std::runtime_error(fmt::format("{} {} {}: {}", o ? "making persistent" : "defining", k.noun, name, c.error().message));
            return Json{{"action", o ? "made-persistent" : "defined"}};
        });
        u["action"] = r.value("action", "");
        if (u["action"] == "none") say(ctx, fmt::format("{} {} is already defined", k.noun, name));
    };
    op.undo = [&k](const Json& u, OpContext& ctx) {
        const std::string name = rec(u, "name");
        if (u.value("existed", false) && u.value("was_persistent", false)) return;  // it was there before: not ours
        const bool made_persistent = u.value("existed", false);
        const std::string uuid = made_persistent ? rec(u, "old_uuid") : rec(u, "uuid");
        Json r = with_libvirt(ctx, fmt::format("undefining {} {}", k.noun, name), [&k, name, uuid, made_persistent](LibvirtSession& c) {
            LibvirtObject o = by_uuid(k, c, uuid);
            if (!o || !c.persistent(o)) return Json{{"action", "none"}};
            if (!made_persistent && c.active(o))
                throw std::runtime_error(fmt::format("{} {} is active, so it is left defined (stop it first: virsh {}-destroy {})", k.noun,
                                                     name, k.virsh, name));
            if (!c.undefine(o)) throw std::runtime_error(fmt::format("undefining {} {}: {}", k.noun, name, c.error().message));
            return Json{{"action", made_persistent ? "transient-again" : "undefined"}};
        });
        if (r.value("action", "") == "none") say(ctx, fmt::format("{} {} as this run defined it is gone already", k.noun, name));
    };
    return op;
}

// libvirt.{network,pool}.start; undo stops it only if it was not active
// before (and, for a network, no running guest uses it).
Op start_op(const Kind& k) {
    Op op;
    op.prepare = [&k](const Step& s, OpContext& ctx) {
        const std::string name = arg(s, "name");
        Json r = with_libvirt(ctx, fmt::format("looking up {} {}", k.noun, name), [&k, name](LibvirtSession& c) {
            LibvirtObject o = by_name(k, c, name);
            return Json{{"active", o && c.active(o)}};
        });
        return Json{{"name", name}, {"was_active", r.value("active", false)}};
    };
    op.apply = [&k](const Step& s, OpContext& ctx, Json& u) {
        const std::string name = arg(s, "name");
        Json r = with_libvirt(ctx, fmt::format("starting {} {}", k.noun, name), [&k, name](LibvirtSession& c) {
            LibvirtObject o = must_exist(k, c, name);
            if (c.active(o)) return Json{{"action", "none"}};
            if (!c.start(o)) throw std::runtime_error(fmt::format("starting {} {}: {}", k.noun, name, c.error().message));
            return Json{{"action", "started"}};
        });
        u["action"] = r.value("action", "");
        if (u["action"] == "none") say(ctx, fmt::format("{} {} is already active", k.noun, name));
    };
    op.undo = [&k](const Json& u, OpContext& ctx) {
        if (u.value("was_active", false)) return;
        const std::string name = rec(u, "name");
        with_libvirt(ctx, fmt::format("stopping {} {}", k.noun, name), [&k, name](LibvirtSession& c) {
            LibvirtObject o = by_name(k, c, name);
            if (!o || !c.active(o)) return Json();
            if (k.users) {
                std::string list;
                for (const auto& g : k.users(c, name)) list += (list.empty() ? "" : ", ") + g;
                if (!list.empty())
                    throw std::runtime_error(
                        fmt::format("{} {} is left running: guests use it ({}); stop them and undo again", k.noun, name, list));
            }
            if (!c.stop(o)) throw std::runtime_error(fmt::format("stopping {} {}: {}", k.noun, name, c.error().message));
            return Json();
        });
    };
    return op;
}

// libvirt.{network,pool}.autostart; undo clears it only if it was not set before.
Op autostart_op(const Kind& k) {
    Op op;
    op.prepare = [&k](const Step& s, OpContext& ctx) {
        const std::string name = arg(s, "name");
        Json r = with_libvirt(ctx, fmt::format("looking up {} {}", k.noun, name), [&k, name](LibvirtSession& c) {
            LibvirtObject o = by_name(k, c, name);
            return Json{{"autostart", o && c.autostart(o)}};
        });
        return Json{{"name", name}, {"was_autostart", r.value("autostart", false)}};
    };
    op.apply = [&k](const Step& s, OpContext& ctx, Json& u) {
        const std::string name = arg(s, "name");
        Json r = with_libvirt(ctx, fmt::format("marking {} {} to start at boot", k.noun, name), [&k, name](LibvirtSession& c) {
            LibvirtObject o = must_exist(k, c, name);
            if (c.autostart(o)) return Json{{"action", "none"}};
            if (!c.set_autostart(o, true)) throw std::runtime_error(fmt::format("autostart for {} {}: {}", k.noun, name, c.error().message));
            return Json{{"action", "set"}};
        });
        u["action"] = r.value("action", "");
    };
    op.undo = [&k](const Json& u, OpContext& ctx) {
        if (u.value("was_autostart", false)) return;
        const std::string name = rec(u, "name");
        with_libvirt(ctx, fmt::format("clearing autostart of {} {}", k.noun, name), [&k, name](LibvirtSession& c) {
            LibvirtObject o = by_name(k, c, name);
            if (!o || !c.persistent(o) || !c.autostart(o)) return Json();
            if (!c.set_autostart(o, false))
                throw std::runtime_error(fmt::format("clearing autostart of {} {}: {}", k.noun, name, c.error().message));
            return Json();
        });
    };
    return op;
}

// An active network whose bridge was deleted behind libvirt's back: stop and
// start it so libvirt re-creates the bridge. Nothing to undo.
Op network_restart() {
    Op op;
    op.prepare = [](const Step& s, OpContext&) { return Json{{"name", arg(s, "name")}}; };
    op.apply = [](const Step& s, OpContext& ctx, Json&) {
        const std::string name = arg(s, "name");
        with_libvirt(ctx, "restarting network " + name, [name](LibvirtSession& c) {
            const Kind& k = network_kind();
            LibvirtObject o = must_exist(k, c, name);
            if (c.active(o) && !c.stop(o)) throw std::runtime_error(fmt::format("stopping network {}: {}", name, c.error().message));
            if (!c.start(o))
                throw std::runtime_error(fmt::format("starting network {} again: {} (it is now stopped)", name, c.error().message));
            return Json();
        });
    };
    op.undo = [](const Json& u, OpContext& ctx) { say(ctx, fmt::format("restarting network {} is not undone", rec(u, "name"))); };
    return op;
}

bool is_dir(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists_nofollow(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}

// The pool's directory and the ancestors that do not exist yet, outermost first.
std::vector<std::string> missing_dirs(const std::string& path) {
    std::vector<std::string> out;
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    while (p.size() > 1 && !exists_nofollow(p)) {
        out.insert(out.begin(), p);
        const auto slash = p.rfind('/');
        if (slash == std::string::npos) break;
        p = slash == 0 ? "/" : p.substr(0, slash);
    }
    return out;
}

// libvirt.pool.build: libvirt creates the directory (and missing parents);
// undo removes those this step created, innermost first, only while empty.
Op pool_build() {
    Op op;
    op.prepare = [](const Step& s, OpContext&) {
        const std::string path = arg(s, "path");
        // Only for a daemon on this machine does kvmready see its directories.
        const bool local = s.args.value("local", true);
        return Json{{"name", arg(s, "name")}, {"path", path}, {"local", local}, {"created", local ? missing_dirs(path) : std::vector<std::string>{}}};
    };
    op.apply = [](const Step& s, OpContext& ctx, Json& u) {
        const std::string name = arg(s, "name"), path = arg(s, "path");
        if (s.args.value("local", true) && is_dir(path)) {
            say(ctx, fmt::format("{} exists already: nothing to build", path));
            u["action"] = "none";
            return;
        }
        with_libvirt(ctx, "building pool " + name, [name](LibvirtSession& c) {
            LibvirtObject o = must_exist(pool_kind(), c, name);
            if (!c.build_pool(o)) throw std::runtime_error(fmt::format("building pool {}: {}", name, c.error().message));
            return Json();
        });
        u["action"] = "built";
    };
    op.undo = [](const Json& u, OpContext& ctx) {
        // rmdir never removes content, nor follows a symlink.
        auto created = u.value("created", std::vector<std::string>{});
        for (auto it = created.rbegin(); it != created.rend(); ++it) {
            const int e = ctx.sys().remove_empty_dir(*it);
            if (e == 0) continue;
            if (e == ENOTEMPTY || e == EEXIST) {
                say(ctx, fmt::format("{} is left in place: it has content now", *it));
                return;
            }
            throw std::runtime_error(fmt::format("removing {}: {}", *it, std::strerror(e)));
        }
    };
    return op;
}

void register_libvirt_object_ops() {
    register_op("libvirt.network.define", define_op(network_kind()));
    register_op("libvirt.network.start", start_op(network_kind()));
    register_op("libvirt.network.autostart", autostart_op(network_kind()));
    register_op("libvirt.network.restart", network_restart());
    register_op("libvirt.pool.define", define_op(pool_kind()));
    register_op("libvirt.pool.build", pool_build());
    register_op("libvirt.pool.start", start_op(pool_kind()));
    register_op("libvirt.pool.autostart", autostart_op(pool_kind()));
}

#else

// Built without libvirt's headers: the ops exist (a journal may name them)
// and say why they cannot run.
void register_libvirt_object_ops() {
    Op op;
    const char* why = "kvmready was built without libvirt's headers (libvirt-dev)";
    op.prepare = [why](const Step&, OpContext&) -> Json { throw std::runtime_error(why); };
    op.apply = [why](const Step&, OpContext&, Json&) { throw std::runtime_error(why); };
    op.undo = [why](const Json&, OpContext&) { throw std::runtime_error(why); };
    for (const char* name : {"libvirt.network.define", "libvirt.network.start", "libvirt.network.autostart", "libvirt.network.restart",
                             "libvirt.pool.define", "libvirt.pool.build", "libvirt.pool.start", "libvirt.pool.autostart"})
        register_op(name, op);
}

#endif

// ---- daemons -------------------------------------------------------------------

std::string read_small(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string trimmed(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
}

// /proc/PID/stat: state and start time (clock ticks after boot); nullopt when gone.
struct ProcInfo {
    char state = '?';
    unsigned long long start = 0;
    std::string comm;
};

std::optional<ProcInfo> proc_info(int pid) {
    if (pid <= 1) return std::nullopt;
    const std::string stat = read_small(fmt::format("/proc/{}/stat", pid));
    const auto p = stat.rfind(')');
    if (p == std::string::npos || p + 2 >= stat.size()) return std::nullopt;
    ProcInfo i;
    i.state = stat[p + 2];
    std::istringstream rest(stat.substr(p + 2));
    std::string field;
    for (int n = 3; n <= 22 && rest >> field; ++n)
        if (n == 22) i.start = std::strtoull(field.c_str(), nullptr, 10);
    i.comm = trimmed(read_small(fmt::format("/proc/{}/comm", pid)));
    if (i.state == 'Z' || i.state == 'X') return std::nullopt;
    return i;
}

int pid_in(const std::string& pidfile) {
    try {
        return std::stoi(trimmed(read_small(pidfile)));
    } catch (...) {
        return 0;
    }
}

// The daemon's PID when its pidfile names a live process of that name.
int running(const std::string& name, const std::string& pidfile) {
    const int pid = pid_in(pidfile);
    auto i = proc_info(pid);
    return i && i->comm == name.substr(0, 15) ? pid : 0;
}

std::string pid_note_path(const OpContext& ctx) { return fmt::format("{}/step-{}-daemon.json", ctx.run_dir, ctx.step_index); }

Op daemon_start() {
    Op op;
    op.prepare = [](const Step& s, OpContext&) {
        const std::string name = arg(s, "name"), pidfile = arg(s, "pidfile");
        const int pid = running(name, pidfile);
        return Json{{"name", name}, {"pidfile", pidfile}, {"was_running", pid > 0}, {"pid_before", pid}};
    };
    op.apply = [](const Step& s, OpContext& ctx, Json& u) {
        const std::string name = arg(s, "name"), bin = arg(s, "binary"), pidfile = arg(s, "pidfile"), sock = arg(s, "socket");
        if (const int pid = running(name, pidfile)) {
            say(ctx, fmt::format("{} already runs (PID {})", name, pid));
            u["action"] = "none";
            return;
        }
        const auto t0 = Clock::now();
        // NAME -d forks into the background once it is set up and returns;
        // the daemon's own stdio goes to /dev/null (its log: /var/log/libvirt).
        auto r = ctx.sys().run({bin, "-d"}, 60000);
        if (!r.started) throw std::runtime_error(fmt::format("cannot run {}: {}", bin, r.error));
        if (r.exit_code != 0)
            throw std::runtime_error(fmt::format("{} -d failed (exit status {}){}{}", bin, r.exit_code, r.err.empty() ? "" : ": ",
                                                 trimmed(r.err)));
        const int wait_ms = env_ms("KVMREADY_FIX_DAEMON_WAIT_MS", 20000);
        int pid = 0;
        while (Clock::now() - t0 < std::chrono::milliseconds(wait_ms)) {
            if (!pid && (pid = running(name, pidfile))) {
                auto i = proc_info(pid);
                u["pid"] = pid;
                u["start"] = i ? i->start : 0;
                // Durable at once: a run killed before this step is marked
                // done still knows which process to stop.
                host::write_file_durably(pid_note_path(ctx), Json{{"pid", pid}, {"start", u["start"]}, {"name", name}}.dump() + "\n");
            }
            if (pid && (sock.empty() || ctx.sys().socket_answers(sock))) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        if (!pid) throw std::runtime_error(fmt::format("{} -d returned but no {} process is named in {}", bin, name, pidfile));
        if (!sock.empty() && !ctx.sys().socket_answers(sock))
            throw std::runtime_error(fmt::format("{} runs (PID {}) but does not listen at {} after {} s: read /var/log/libvirt/{}.log", name,
                                                 pid, sock, wait_ms / 1000, name));
        u["action"] = "started";
        say(ctx, fmt::format("{} started (PID {}) in {:.0f} ms", name, pid,
                             std::chrono::duration<double, std::milli>(Clock::now() - t0).count()));
    };
    op.undo = [](const Json& u, OpContext& ctx) {
        if (u.value("was_running", false)) return;
        const std::string name = rec(u, "name");
        int pid = u.value("pid", 0);
        unsigned long long start = u.value("start", 0ULL);
        if (!pid) {
            auto note = Json::parse(read_small(pid_note_path(ctx)), nullptr, false);
            if (note.is_object()) {
                pid = note.value("pid", 0);
                start = note.value("start", 0ULL);
            }
        }
        if (!pid) {
            say(ctx, fmt::format("{} was not started by this run", name));
            return;
        }
        auto i = proc_info(pid);
        if (!i || i->comm != name.substr(0, 15) || (start && i->start != start)) {
            say(ctx, fmt::format("{} (PID {}) has stopped already", name, pid));
            return;
        }
        if (const int e = ctx.sys().signal(pid, SIGTERM); e != 0 && e != ESRCH)
            throw std::runtime_error(fmt::format("kill {} ({}): {}", pid, name, std::strerror(e)));
        const auto t0 = Clock::now();
        while (Clock::now() - t0 < std::chrono::seconds(10)) {
            auto now = proc_info(pid);
            if (!now || now->start != i->start) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        (void)ctx.sys().signal(pid, SIGKILL);
        say(ctx, fmt::format("{} (PID {}) ignored SIGTERM for 10 s: killed", name, pid));
    };
    return op;
}

// systemctl enable --now UNITS; undo disables what was not enabled and stops
// what was not active before.
Op systemd_enable_now() {
    Op op;
    op.prepare = [](const Step& s, OpContext& ctx) {
        const std::string sc = s.args.value("systemctl", std::string("systemctl"));
        Json units = Json::array();
        for (const auto& unit : s.args.value("units", std::vector<std::string>{})) {
            auto e = ctx.sys().run({sc, "is-enabled", unit}, 10000);
            auto a = ctx.sys().run({sc, "is-active", unit}, 10000);
            units.push_back({{"unit", unit}, {"enabled", trimmed(e.out)}, {"active", trimmed(a.out)}});
        }
        return Json{{"systemctl", sc}, {"units", units}};
    };
    op.apply = [](const Step& s, OpContext& ctx, Json&) {
        std::vector<std::string> argv = {s.args.value("systemctl", std::string("systemctl")), "enable", "--now"};
        for (const auto& u : s.args.value("units", std::vector<std::string>{})) argv.push_back(u);
        auto r = ctx.sys().run(argv, 120000);
        if (r.exit_code != 0)
            throw std::runtime_error(fmt::format("{} failed ({}): {}", quote_argv(argv),
                                                 r.timed_out ? "timed out" : r.started ? fmt::format("exit status {}", r.exit_code) : r.error,
                                                 trimmed(r.err)));
    };
    op.undo = [](const Json& u, OpContext& ctx) {
        const std::string sc = rec(u, "systemctl");
        std::vector<std::string> disable = {sc, "disable"}, stop = {sc, "stop"};
        for (const auto& x : u.value("units", Json::array())) {
            const std::string e = x.value("enabled", ""), a = x.value("active", "");
            if (e != "enabled" && e != "enabled-runtime" && e != "static" && e != "indirect" && e != "alias")
                disable.push_back(x.value("unit", ""));
            if (a != "active" && a != "activating" && a != "reloading") stop.push_back(x.value("unit", ""));
        }
        for (const auto& argv : {stop, disable}) {
            if (argv.size() == 2) continue;
            auto r = ctx.sys().run(argv, 120000);
            if (r.exit_code != 0) throw std::runtime_error(fmt::format("{} failed: {}{}", quote_argv(argv), trimmed(r.err), r.error));
        }
    };
    return op;
}

}  // namespace

void register_libvirt_ops() {
    register_libvirt_object_ops();
    register_op("daemon.start", daemon_start());
    register_op("systemd.enable-now", systemd_enable_now());
}

}  // namespace kvmready::fix
