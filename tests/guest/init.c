/*
 * Minimal PID 1 for the guest-kernel tests (built with gcc -static).
 *
 * Boots a throwaway initramfs into a state where one command can run and
 * report, then powers the machine off. It never waits forever: every path
 * ends in reboot(RB_POWER_OFF).
 *
 *   1. mounts proc (/proc), sysfs (/sys), devtmpfs (/dev), tmpfs (/tmp, /run)
 *   2. loads the kernel modules listed in /modules.list, in order, with
 *      finit_module(2): one line per module, "PATH [PARAMS...]"; '#' starts
 *      a comment. Each result is printed as
 *        KVMREADY-GUEST-MODULE name=<name> result=ok
 *        KVMREADY-GUEST-MODULE name=<name> result=error errno=<ENAME> (<text>)
 *      and a failure does not stop the list.
 *   3. removes the paths named by kvmready.unlink= (below), each reported as
 *        KVMREADY-GUEST-UNLINK path=<path> result=ok
 *        KVMREADY-GUEST-UNLINK path=<path> result=error errno=<ENAME> (<text>)
 *   4. runs argv[1..] (the kernel hands init every word after "--" on its
 *      command line) with stdout and stderr captured, then prints
 *        KVMREADY-GUEST-BEGIN
 *        <stdout>
 *        KVMREADY-GUEST-END exit=<code> [signal=<n>] [timeout=1] elapsed_ms=<ms>
 *      followed by the stderr, if any, between KVMREADY-GUEST-STDERR-BEGIN and
 *      KVMREADY-GUEST-STDERR-END.
 *      Several commands separated by a ";;" word run one after the other,
 *      each with its own BEGIN/END block (and its own timeout), in order.
 *   5. powers off.
 *
 * Options read from /proc/cmdline (before "--"):
 *   kvmready.timeout=SECONDS  kill the command after this long (default 60)
 *   kvmready.dmesg=1          print the kernel log between
 *                             KVMREADY-GUEST-DMESG-BEGIN/END before power-off
 *   kvmready.uid=N, kvmready.gid=N
 *                             run the command with these ids (default root)
 *   kvmready.cgroup2=1        mount the unified cgroup hierarchy at
 *                             /sys/fs/cgroup, as systemd does on cgroup v2 hosts
 *   kvmready.securityfs=1     mount securityfs at /sys/kernel/security (where
 *                             AppArmor publishes its profiles and the LSM list)
 *   kvmready.unlink=PATH[,PATH...]
 *                             unlink(2) these after the modules loaded, before
 *                             the commands: a host whose device node was
 *                             removed (/dev/kvm with KVM registered), with no
 *                             shell in the initramfs to do it
 *   kvmready.late_wait=PATH   a host that changes under a running command
 *                             (`kvmready watch`): once the command has made
 *                             PATH, load the modules of /modules.late (same
 *                             format as /modules.list, reported the same way),
 *                             then wait until PATH is replaced (a new inode)
 *                             and stays unchanged for 2 s, print
 *                               KVMREADY-GUEST-LATE path=<p> result=changed first_ms=<ms> last_ms=<ms>
 *                             (ms after the modules loaded; result=unchanged
 *                             after 60 s) and SIGTERM the command
 *
 * The environment of the command is PATH, HOME=/root, TERM=dumb and
 * LANG=C.UTF-8, plus LD_LIBRARY_PATH when /etc/ld-library-path exists (one
 * line, written by mkinitramfs.sh).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUT_LIMIT (4u << 20) /* bytes kept of each captured stream */

static void writeall(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    writeall(STDOUT_FILENO, buf, (size_t)n);
}

static const char *errname(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void power_off(void) {
    sync();
    reboot(RB_POWER_OFF);
    /* Only reached if power-off failed: panic=-1 turns an init exit into a
     * reboot, which -no-reboot turns into a QEMU exit. */
    say("KVMREADY-GUEST-POWEROFF-FAILED errno=%s\n", errname(errno));
    _exit(1);
}

static void do_mount(const char *src, const char *dir, const char *type, unsigned long flags,
                     const char *data) {
    mkdir(dir, 0755);
    if (mount(src, dir, type, flags, data) != 0 && errno != EBUSY)
        say("KVMREADY-GUEST-MOUNT %s type=%s result=error errno=%s (%s)\n", dir, type,
            errname(errno), strerror(errno));
}

/* The kernel normally gives init /dev/console as fds 0-2; if the initramfs
 * had no /dev/console it gives nothing, so open it from devtmpfs. */
static void ensure_console(void) {
    if (fcntl(STDOUT_FILENO, F_GETFD) != -1 && fcntl(STDERR_FILENO, F_GETFD) != -1) return;
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0) return;
    for (int i = 0; i < 3; i++)
        if (fcntl(i, F_GETFD) == -1) dup2(fd, i);
    if (fd > 2) close(fd);
}

/* ---- kernel command line ---------------------------------------------- */

static char cmdline[4096];

static const char *cmdline_opt(const char *key) {
    size_t klen = strlen(key);
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ' || *p == '\n' || *p == '\t') p++;
        if (!*p) break;
        const char *end = p;
        while (*end && *end != ' ' && *end != '\n' && *end != '\t') end++;
        if (end - p == 2 && p[0] == '-' && p[1] == '-') return NULL; /* init's own args */
        if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            static char val[256];
            size_t vlen = (size_t)(end - p) - klen - 1;
            if (vlen >= sizeof val) vlen = sizeof val - 1;
            memcpy(val, p + klen + 1, vlen);
            val[vlen] = '\0';
            return val;
        }
        p = end;
    }
    return NULL;
}

static long cmdline_num(const char *key, long dflt) {
    const char *v = cmdline_opt(key);
    if (!v || !*v) return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return *end ? dflt : n;
}

static void read_cmdline(void) {
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
    close(fd);
    cmdline[n > 0 ? n : 0] = '\0';
}

/* ---- modules ------------------------------------------------------------ */

static void module_name(const char *path, char *out, size_t outlen) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strcspn(base, ".");
    if (n >= outlen) n = outlen - 1;
    for (size_t i = 0; i < n; i++) out[i] = base[i] == '-' ? '_' : base[i];
    out[n] = '\0';
}

static void load_modules(const char *list) {
    FILE *f = fopen(list, "re");
    if (!f) {
        if (errno != ENOENT)
            say("KVMREADY-GUEST-MODULES list=%s result=error errno=%s\n", list, errname(errno));
        return;
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n#")] = '\0';
        char *path = line;
        while (*path == ' ' || *path == '\t') path++;
        if (!*path) continue;
        char *params = path + strcspn(path, " \t");
        if (*params) {
            *params++ = '\0';
            while (*params == ' ' || *params == '\t') params++;
        }
        char name[128];
        module_name(path, name, sizeof name);
        uint64_t t0 = now_ms();
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        int rc = -1, err = errno;
        if (fd >= 0) {
            rc = (int)syscall(SYS_finit_module, fd, params, 0);
            err = errno;
            close(fd);
        }
        if (rc == 0)
            say("KVMREADY-GUEST-MODULE name=%s result=ok elapsed_ms=%llu\n", name,
                (unsigned long long)(now_ms() - t0));
        else
            say("KVMREADY-GUEST-MODULE name=%s result=error errno=%s (%s)\n", name, errname(err),
                strerror(err));
    }
    fclose(f);
}

/* ---- removing files --------------------------------------------------- */

static void unlink_listed(void) {
    const char *v = cmdline_opt("kvmready.unlink");
    if (!v || !*v) return;
    char list[256];
    snprintf(list, sizeof list, "%s", v);
    char *save = NULL;
    for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (unlink(p) == 0)
            say("KVMREADY-GUEST-UNLINK path=%s result=ok\n", p);
        else
            say("KVMREADY-GUEST-UNLINK path=%s result=error errno=%s (%s)\n", p, errname(errno), strerror(errno));
    }
}

/* ---- running the command ------------------------------------------------ */

static char *read_line_file(const char *path) {
    static char val[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    ssize_t n = read(fd, val, sizeof val - 1);
    close(fd);
    if (n <= 0) return NULL;
    val[n] = '\0';
    val[strcspn(val, "\n")] = '\0';
    return val;
}

/* Console log level handling: the current level is the first field of
 * /proc/sys/kernel/printk; klogctl(SYSLOG_ACTION_CONSOLE_LEVEL) sets it. */
static int quiet_console(void) {
    int level = -1;
    const char *v = read_line_file("/proc/sys/kernel/printk");
    if (v) level = atoi(v);
    klogctl(8 /* SYSLOG_ACTION_CONSOLE_LEVEL */, NULL, 1);
    return level;
}

static void restore_console(int level) {
    if (level > 0) klogctl(8 /* SYSLOG_ACTION_CONSOLE_LEVEL */, NULL, level);
}

struct buf {
    char *data;
    size_t len, cap;
    int truncated;
};

static void buf_add(struct buf *b, const char *p, size_t n) {
    if (b->len + n > OUT_LIMIT) {
        n = OUT_LIMIT - b->len;
        b->truncated = 1;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->truncated = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* kvmready.late_wait= (see the top): advanced from run_command's loop. */
static struct {
    int state; /* 0 waiting for the file, 1 modules loaded, 2 done */
    char path[256];
    ino_t ino;
    uint64_t loaded, first, last;
} late = {2, "", 0, 0, 0, 0};

static void late_setup(void) {
    const char *v = cmdline_opt("kvmready.late_wait");
    if (!v || !*v) return;
    snprintf(late.path, sizeof late.path, "%s", v);
    late.state = 0;
}

static void late_tick(pid_t pid) {
    struct stat st;
    if (late.state == 2) return;
    int have = stat(late.path, &st) == 0;
    uint64_t now = now_ms();
    if (late.state == 0) {
        if (!have) return;
        late.ino = st.st_ino;
        load_modules("/modules.late");
        late.loaded = now_ms();
        late.state = 1;
        return;
    }
    if (have && st.st_ino != late.ino) {
        late.ino = st.st_ino;
        if (!late.first) late.first = now;
        late.last = now;
    }
    int settled = late.first && now - late.last >= 2000;
    if (settled || now - late.loaded >= 60000) {
        say("KVMREADY-GUEST-LATE path=%s result=%s first_ms=%llu last_ms=%llu\n", late.path, late.first ? "changed" : "unchanged",
            (unsigned long long)(late.first ? late.first - late.loaded : 0), (unsigned long long)(late.last ? late.last - late.loaded : 0));
        kill(pid, SIGTERM);
        late.state = 2;
    }
}

static void run_command(char **argv, long timeout_s) {
    int outp[2], errp[2];
    if (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        say("KVMREADY-GUEST-BEGIN\nKVMREADY-GUEST-END exit=-1 error=pipe:%s\n", errname(errno));
        return;
    }
    char ldpath[1100] = "";
    const char *lp = read_line_file("/etc/ld-library-path");
    if (lp && *lp) snprintf(ldpath, sizeof ldpath, "LD_LIBRARY_PATH=%s", lp);
    char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME=/root", "TERM=dumb", "LANG=C.UTF-8", ldpath[0] ? ldpath : NULL, NULL};
    long uid = cmdline_num("kvmready.uid", 0), gid = cmdline_num("kvmready.gid", 0);

    uint64_t t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        say("KVMREADY-GUEST-BEGIN\nKVMREADY-GUEST-END exit=-1 error=fork:%s\n", errname(errno));
        return;
    }
    if (pid == 0) {
        setsid();
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull >= 0 ? devnull : STDIN_FILENO, STDIN_FILENO);
        dup2(outp[1], STDOUT_FILENO);
        dup2(errp[1], STDERR_FILENO);
        if (chdir("/root") != 0) (void)chdir("/");
        if (gid != 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0)) {
            dprintf(STDERR_FILENO, "init: setgid(%ld): %s\n", gid, strerror(errno));
            _exit(126);
        }
        if (uid != 0 && setuid((uid_t)uid) != 0) {
            dprintf(STDERR_FILENO, "init: setuid(%ld): %s\n", uid, strerror(errno));
            _exit(126);
        }
        execve(argv[0], argv, envp);
        dprintf(STDERR_FILENO, "init: exec %s: %s (%s)\n", argv[0], strerror(errno), errname(errno));
        _exit(127);
    }
    close(outp[1]);
    close(errp[1]);

    struct buf out = {0}, err = {0};
    struct pollfd fds[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
    int open_fds = 2, timed_out = 0, status = 0, reaped = 0;
    uint64_t deadline = t0 + (uint64_t)timeout_s * 1000u;
    char chunk[65536];
    /* Read until both pipes hit EOF (the command and anything it left behind
     * closed them) and the child is reaped, or until the deadline. */
    while (!timed_out && (open_fds > 0 || !reaped)) {
        uint64_t now = now_ms();
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        uint64_t left = deadline - now;
        uint64_t step = late.state == 2 ? 200 : 10; /* late_wait measures milliseconds */
        int wait_ms = open_fds > 0 ? (int)(left > step ? step : left) : 50;
        if (open_fds > 0) {
            int n = poll(fds, 2, wait_ms);
            if (n < 0 && errno != EINTR) break;
            for (int i = 0; i < 2; i++) {
                if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                ssize_t r = read(fds[i].fd, chunk, sizeof chunk);
                if (r > 0) {
                    buf_add(i == 0 ? &out : &err, chunk, (size_t)r);
                } else if (r == 0 || errno != EINTR) {
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    open_fds--;
                }
            }
        } else {
            usleep((useconds_t)wait_ms * 1000u);
        }
        if (!reaped) late_tick(pid);
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) reaped = 1;
        }
        /* Orphans of the command are re-parented to us: reap them too. */
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (reaped && open_fds > 0 && now_ms() + 2000 < deadline) {
            /* The command exited; give stragglers holding the pipes a short
             * grace period rather than the whole timeout. */
            deadline = now_ms() + 2000;
        }
    }
    if (timed_out || !reaped) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        if (!reaped && waitpid(pid, &status, 0) == pid) reaped = 1;
    }
    uint64_t elapsed = now_ms() - t0;
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0) close(fds[i].fd);

    /* Keep asynchronous kernel messages off the console while the block is
     * printed, so the captured output stays contiguous. */
    int old_level = quiet_console();

    say("KVMREADY-GUEST-BEGIN\n");
    if (out.len) writeall(STDOUT_FILENO, out.data, out.len);
    if (out.len && out.data[out.len - 1] != '\n') say("\n");
    char tail[160];
    int n = 0;
    if (reaped && WIFEXITED(status))
        n = snprintf(tail, sizeof tail, "exit=%d", WEXITSTATUS(status));
    else if (reaped && WIFSIGNALED(status))
        n = snprintf(tail, sizeof tail, "exit=%d signal=%d", 128 + WTERMSIG(status), WTERMSIG(status));
    else
        n = snprintf(tail, sizeof tail, "exit=-1");
    if (timed_out) n += snprintf(tail + n, sizeof tail - (size_t)n, " timeout=1");
    if (out.truncated) n += snprintf(tail + n, sizeof tail - (size_t)n, " truncated=1");
    say("KVMREADY-GUEST-END %s elapsed_ms=%llu\n", tail, (unsigned long long)elapsed);
    if (err.len) {
        say("KVMREADY-GUEST-STDERR-BEGIN\n");
        writeall(STDOUT_FILENO, err.data, err.len);
        if (err.data[err.len - 1] != '\n') say("\n");
        say("KVMREADY-GUEST-STDERR-END\n");
    }
    restore_console(old_level);
    free(out.data);
    free(err.data);
}

static void dump_dmesg(void) {
    int size = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
    if (size <= 0) size = 1 << 20;
    char *b = malloc((size_t)size);
    if (!b) return;
    int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, b, size);
    int old_level = quiet_console();
    say("KVMREADY-GUEST-DMESG-BEGIN\n");
    if (n > 0) writeall(STDOUT_FILENO, b, (size_t)n);
    if (n > 0 && b[n - 1] != '\n') say("\n");
    say("KVMREADY-GUEST-DMESG-END\n");
    restore_console(old_level);
    free(b);
}

int main(int argc, char **argv) {
    /* Mount /dev first: it may be where the console comes from. */
    do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    ensure_console();
    say("KVMREADY-GUEST-INIT pid=%d\n", (int)getpid());
    if (getpid() != 1) say("KVMREADY-GUEST-INIT warning: not running as PID 1\n");

    do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    do_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    mkdir("/root", 0700);
    read_cmdline();
    /* Optional mounts (after the command line is known), for recordings of
     * the host areas that live in these filesystems. */
    if (cmdline_num("kvmready.cgroup2", 0) != 0)
        do_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (cmdline_num("kvmready.securityfs", 0) != 0)
        do_mount("securityfs", "/sys/kernel/security", "securityfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

    /* A wayward SIGPIPE or SIGCHLD must not kill PID 1. */
    signal(SIGPIPE, SIG_IGN);

    load_modules("/modules.list");
    unlink_listed();
    late_setup();

    if (argc > 1) {
        long timeout_s = cmdline_num("kvmready.timeout", 60);
        if (timeout_s <= 0) timeout_s = 60;
        /* "A ;; B": run A, then B (argv is ours to cut into pieces). */
        for (int start = 1; start < argc;) {
            int end = start;
            while (end < argc && strcmp(argv[end], ";;") != 0) end++;
            argv[end] = NULL; /* argv[argc] is NULL already */
            if (end > start) run_command(argv + start, timeout_s);
            start = end + 1;
        }
    } else {
        say("KVMREADY-GUEST-BEGIN\nKVMREADY-GUEST-END exit=-1 error=no-command\n");
    }
    if (cmdline_num("kvmready.dmesg", 0) != 0) dump_dmesg();
    say("KVMREADY-GUEST-POWEROFF\n");
    power_off();
    return 0;
}
