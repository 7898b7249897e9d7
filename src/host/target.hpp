// The write side of the host layer. A Host answers what the system is; a
// Target is how kvmready changes it: every file written or removed, every
// procfs/sysfs value, device node permission, program run, signal, socket
// connect and libvirt call of fixes, smoke and bundles goes through one of
// these (or through the host primitives below it), so the code that changes
// the system has one place, and a test can swap in a RecordingTarget that
// only writes down what would have been done.
//
// Paths are as seen on the target: a target rooted at DIR (--root) reads and
// writes DIR/etc/... for "/etc/...", never following a symlink on the way.
// Runtime changes (values, nodes, programs, signals) are for the live system:
// the fix engine skips them under --root, and so the rooted target applies
// the root to their paths only to keep them inside it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/libvirt_session.hpp"
#include "host/nofollow_fs.hpp"
#include "host/process.hpp"

namespace kvmready::host {

// A file kvmready produces in pieces (a support bundle): written through
// fd(), then put in place by commit(); dropped when destroyed uncommitted.
// Errors are errno values; the caller words them.
class PendingWrite {
public:
    virtual ~PendingWrite() = default;
    // -1 when the file could not be created (error() says why).
    [[nodiscard]] virtual int fd() const = 0;
    [[nodiscard]] virtual int error() const = 0;
    [[nodiscard]] virtual const std::string& temp_path() const = 0;
    virtual int sync() = 0;
    // replace: else an existing file is kept (EEXIST).
    virtual int commit(bool replace) = 0;
    // After commit: the size of the file in place.
    virtual uint64_t size() = 0;
};

// A new file written in pieces (an unpacked bundle member): created with
// O_EXCL|O_NOFOLLOW, so a duplicate, or a name where a directory or symlink
// stands, is refused instead of overwritten or followed. Errors are errno.
class NewWrite {
public:
    virtual ~NewWrite() = default;
    // 0, or why the file could not be created.
    [[nodiscard]] virtual int error() const = 0;
    // All of data: 0 or errno.
    virtual int write(const char* data, size_t n) = 0;
};

class Target {
public:
    virtual ~Target() = default;

    // "" for the live system, else the directory everything is under.
    [[nodiscard]] virtual std::string root() const = 0;

    // ---- files (atomic, no symlink followed; see host/nofollow_fs.hpp)
    virtual std::optional<std::string> read_file(const std::string& path, FileMeta* meta = nullptr) = 0;
    virtual void write_file(const std::string& path, const std::string& content, const FileMeta& meta, const std::string& temp_name) = 0;
    virtual void remove_file(const std::string& path) = 0;
    virtual void remove_temp(const std::string& path, const std::string& temp_name) = 0;
    virtual bool exists(const std::string& path) = 0;
    // 0 when removed (or absent), else errno (ENOTEMPTY: kept).
    virtual int remove_empty_dir(const std::string& path) = 0;

    // ---- kernel values and device nodes
    virtual std::string read_value(const std::string& path) = 0;
    virtual void write_value(const std::string& path, const std::string& value) = 0;
    virtual FileMeta node_meta(const std::string& path) = 0;
    virtual void set_node_perms(const std::string& path, unsigned mode, uint32_t uid, uint32_t gid) = 0;

    // ---- processes, signals, sockets
    virtual RunResult run(const std::vector<std::string>& argv, int timeout_ms) = 0;
    // kill(2): 0 or errno.
    virtual int signal(pid_t pid, int sig) = 0;
    // A UNIX stream socket at path accepts a connection.
    virtual bool socket_answers(const std::string& path) = 0;
    // A process with stdout and stderr on pipes (host/process.hpp), which
    // the caller watches and ends (host::Child): QEMU under smoke.
    virtual Spawned spawn_piped(const std::vector<std::string>& argv) = 0;

    // ---- kvmready's own work files: temporary and run directories, disk
    // images, generated initramfs, bundles. Plain paths, never under the
    // root: they are kvmready's, made where the user or $TMPDIR said.
    // Semantics as the primitives of the same names in host/nofollow_fs.hpp.
    virtual std::optional<std::string> make_temp_dir(const std::string& parent, const std::string& prefix, int* err) = 0;
    virtual int make_dir(const std::string& path, unsigned mode) = 0;
    virtual void remove_tree(const std::string& path) = 0;
    virtual int remove_path(const std::string& path) = 0;
    virtual void copy_file(const std::string& from, const std::string& to, unsigned mode) = 0;
    virtual void create_empty_file(const std::string& path, unsigned mode) = 0;
    virtual void create_disk_image(const std::string& path, const std::string& head, size_t size) = 0;
    virtual bool replace_file(const std::string& path, const std::string& data, unsigned mode, std::string* error) = 0;
    virtual std::unique_ptr<PendingWrite> create_file(const std::string& path) = 0;
    // mkdir -p: 0 or errno (a file standing on the way: EEXIST/ENOTDIR).
    virtual int make_dirs(const std::string& path) = 0;
    virtual std::unique_ptr<NewWrite> create_new_file(const std::string& path) = 0;

    // ---- libvirt (host/libvirt_session.hpp): the daemon the URI names,
    // whatever the root (a libvirt daemon is never under --root).
    // "" when open_libvirt can work, else why not (libvirt.so absent or too
    // old, kvmready built without libvirt's headers).
    virtual std::string libvirt_unavailable() = 0;
    // libvirt's event loop on a thread of its own, once per process; before
    // the open of a session that is to use the keepalive.
    virtual void start_libvirt_event_loop() = 0;
    // A read-write connection; nullptr with *error on failure. Can block for
    // ever on a hung daemon: open on a thread you can abandon.
    virtual std::unique_ptr<LibvirtSession> open_libvirt(const std::string& uri, LibvirtError* error) = 0;
};

// The live system (root "") or a directory tree (--root DIR).
std::shared_ptr<Target> make_target(const std::string& root);
// The live system, for code that takes a Target and defaults to it.
Target& live_target();

// Dry: reads pass through to the rooted/live target underneath (so a plan's
// view is real), changes are only written down, one line each, in order:
// "write /etc/x (12 bytes, 0644)", "run modprobe kvm_intel", ...
class RecordingTarget final : public Target {
public:
    explicit RecordingTarget(std::string root = "");
    [[nodiscard]] const std::vector<std::string>& changes() const { return changes_; }
    // What run() answers (default: started, exit 0, no output).
    RunResult run_result;

    [[nodiscard]] std::string root() const override { return root_; }
    std::optional<std::string> read_file(const std::string& path, FileMeta* meta) override;
    void write_file(const std::string& path, const std::string& content, const FileMeta& meta, const std::string& temp_name) override;
    void remove_file(const std::string& path) override;
    void remove_temp(const std::string& path, const std::string& temp_name) override;
    bool exists(const std::string& path) override;
    int remove_empty_dir(const std::string& path) override;
    std::string read_value(const std::string& path) override;
    void write_value(const std::string& path, const std::string& value) override;
    FileMeta node_meta(const std::string& path) override;
    void set_node_perms(const std::string& path, unsigned mode, uint32_t uid, uint32_t gid) override;
    RunResult run(const std::vector<std::string>& argv, int timeout_ms) override;
    int signal(pid_t pid, int sig) override;
    bool socket_answers(const std::string& path) override;
    // "spawn ARGV..."; answers not started (pid -1, error "recorded").
    Spawned spawn_piped(const std::vector<std::string>& argv) override;
    // "mkdtemp PARENT/PREFIXXXXXXX"; answers PARENT/PREFIXrecorded (not made).
    std::optional<std::string> make_temp_dir(const std::string& parent, const std::string& prefix, int* err) override;
    int make_dir(const std::string& path, unsigned mode) override;
    void remove_tree(const std::string& path) override;
    int remove_path(const std::string& path) override;
    void copy_file(const std::string& from, const std::string& to, unsigned mode) override;
    void create_empty_file(const std::string& path, unsigned mode) override;
    void create_disk_image(const std::string& path, const std::string& head, size_t size) override;
    bool replace_file(const std::string& path, const std::string& data, unsigned mode, std::string* error) override;
    // Written into memory; commit records "write PATH (N bytes)" and keeps
    // the bytes in written().
    std::unique_ptr<PendingWrite> create_file(const std::string& path) override;
    // "mkdir -p PATH".
    int make_dirs(const std::string& path) override;
    // "new PATH" when created; the bytes go to written(). A path already
    // written (a duplicate) answers EEXIST, as the live O_EXCL would.
    std::unique_ptr<NewWrite> create_new_file(const std::string& path) override;
    // Content of the files written whole (replace_file, committed
    // create_file, create_disk_image's head), by path.
    [[nodiscard]] const std::map<std::string, std::string>& written() const { return written_; }

    // libvirt (host/recording_libvirt.cpp). No daemon is asked: sessions
    // answer from libvirt_objects (empty at first, so lookups say "not
    // found"; a test may seed it), which the recorded changes update (a
    // define adds, a start activates, ...), so a plan's later steps see its
    // earlier ones, also across sessions. Each change is one line in
    // changes(), "libvirt VERB KIND NAME" ("libvirt define network
    // default"), and one call, with its XML, in libvirt_calls(). Volumes are
    // named POOL/VOLUME; a created domain never runs (its state: shut off).
    struct LibvirtModelObject {
        LibvirtKind kind = LibvirtKind::network;  // network or pool
        std::string name, xml;
        bool persistent = true, active = false, autostart = false;
    };
    struct LibvirtCall {
        std::string uri, verb, kind, name;
        std::string body;  // the XML the call carries, or an upload's bytes
    };
    std::vector<LibvirtModelObject> libvirt_objects;
    [[nodiscard]] const std::vector<LibvirtCall>& libvirt_calls() const { return libvirt_calls_; }
    // "": a recording needs no libvirt.so.
    std::string libvirt_unavailable() override { return ""; }
    void start_libvirt_event_loop() override {}
    std::unique_ptr<LibvirtSession> open_libvirt(const std::string& uri, LibvirtError* error) override;

private:
    friend class RecordedWrite;
    friend class RecordedNewWrite;
    friend class RecordedLibvirt;
    std::string root_;
    std::shared_ptr<Target> reads_;
    std::vector<std::string> changes_;
    std::map<std::string, std::string> written_;
    std::vector<LibvirtCall> libvirt_calls_;
};

// ---- primitives for kvmready's own processes ------------------------------------

// kill(2) of one process: 0 or errno.
int send_signal(pid_t pid, int sig);
// SIGKILL to this very process, now (the fix engine's interruption tests).
[[noreturn]] void kill_self();
// connect(2) to a UNIX stream socket succeeds (then closed at once).
bool unix_socket_answers(const std::string& path);

}  // namespace kvmready::host
