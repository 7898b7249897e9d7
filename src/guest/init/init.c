/*
 * kvmready-init: PID 1 of the Linux smoke guest (`kvmready smoke --guest linux`).
 *
 * Runs inside the initramfs that src/smoke/initramfs.cpp generates and proves,
 * stage by stage, what the guest saw. Reports follow the serial protocol of
 * the smoke test (one line each, on /dev/ttyS0 = COM1):
 *
 *   KVMREADY boot ok entry=linux
 *   KVMREADY cpu ok vendor=... hypervisor=...
 *   KVMREADY disk ok nonce=<64 hex>          | KVMREADY disk fail reason=...
 *   KVMREADY nic ok mac=52:54:00:...         | KVMREADY nic fail reason=...
 *       (reason=no_virtio_disk / no_virtio_nic: the VM has no such device;
 *        reason=no_driver: it has one and the kernel does not drive it)
 *   KVMREADY net ok ip=A.B.C.D gw=A.B.C.D rtt_ms=N | KVMREADY net fail reason=...
 *   KVMREADY done ok
 *
 * Every line also carries t_ms=<milliseconds since the kernel started>, so
 * the host can split boot time from the guest's own stages. Anything else
 * this program prints starts with "kvmready-init:" and is ignored by the
 * host's parser (kept in the serial log tail for diagnosis).
 *
 * Every path ends in reboot(RB_POWER_OFF), including a failure and the
 * watchdog (kvmready.timeout=SECONDS, default 30), so a run never waits for
 * the host's timeout when the guest already knows the answer.
 *
 * Kernel command line options (all optional):
 *   kvmready.ip=A.B.C.D/NN kvmready.gw=A.B.C.D  static address instead of DHCP
 *   kvmready.dhcp_hint=A.B.C.D  a free address to ask the DHCP server for first
 *                            (skips dnsmasq's 3 s ping check; see dhcp_hint)
 *   kvmready.nonce=<64 hex>  also compare the nonce here (disk fail on mismatch)
 *   kvmready.timeout=SECONDS watchdog
 *   kvmready.debug=1         leave the kernel's console log level alone
 *
 * Modules: /modules.list holds absolute paths of .ko files, dependencies
 * first, one a line; each is loaded with finit_module(2).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- output ------------------------------------------------------------- */

static int serial_fd = -1;  /* /dev/ttyS0 */
static int console_too;     /* also write to fd 1 (the console is not ttyS0) */
static const char *stage = "boot";

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void writeall(int fd, const char *buf, size_t len) {
    while (fd >= 0 && len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* One write() per line: the host reads whole lines, and a line split across
 * writes could be interleaved with a kernel message. */
static void emit(const char *line, size_t len) {
    if (serial_fd >= 0) writeall(serial_fd, line, len);
    if (serial_fd < 0 || console_too) writeall(STDOUT_FILENO, line, len);
}

static void vprint_line(const char *prefix, const char *fmt, va_list ap, int stamp) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s", prefix);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    if (m < 0) return;
    n += m;
    if (n > (int)sizeof buf - 32) n = (int)sizeof buf - 32;
    if (stamp) n += snprintf(buf + n, sizeof buf - (size_t)n, " t_ms=%llu", (unsigned long long)now_ms());
    buf[n++] = '\n';
    emit(buf, (size_t)n);
}

/* A protocol line: "KVMREADY <fmt...> t_ms=N". */
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprint_line("KVMREADY ", fmt, ap, 1);
    va_end(ap);
}

/* A diagnostic line the host parser ignores. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprint_line("kvmready-init: ", fmt, ap, 1);
    va_end(ap);
}

static const char *errname(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static void power_off(void) __attribute__((noreturn));
static void power_off(void) {
    sync();
    reboot(RB_POWER_OFF);
    /* Power-off failed (no ACPI?): with panic=-1 and -no-reboot the panic
     * that follows init's exit still ends the run. */
    note("power-off failed: %s", errname(errno));
    _exit(1);
}

/* The last `lines` kernel messages: the console level is lowered while the
 * stages run, yet after a failure the driver's own complaint ("virtio_net:
 * probe of virtio1 failed", "Unknown symbol") is what explains it, and the
 * host keeps the serial tail in its report. */
static void dump_klog(int lines) {
    static char buf[16384];
    int n = klogctl(3 /* READ_ALL */, buf, sizeof buf - 1);
    if (n <= 0) return;
    buf[n] = '\0';
    static char *starts[1024];
    int count = 0;
    for (char *line = strtok(buf, "\n"); line && count < 1024; line = strtok(NULL, "\n")) starts[count++] = line;
    for (int i = count > lines ? count - lines : 0; i < count; i++) note("klog: %s", starts[i]);
}

/* "KVMREADY <stage> fail reason=<reason>[ extra]" and power off. */
static void fail(const char *reason, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail(const char *reason, const char *fmt, ...) {
    char extra[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        extra[0] = ' ';
        vsnprintf(extra + 1, sizeof extra - 1, fmt, ap);
        va_end(ap);
    }
    report("%s fail reason=%s%s", stage, reason, extra);
    dump_klog(12);
    power_off();
}

static void on_alarm(int sig) {
    (void)sig;
    /* Only async-signal-safe calls: a fixed-format line and reboot. */
    char buf[128];
    int n = snprintf(buf, sizeof buf, "KVMREADY %s fail reason=guest_timeout\n", stage);
    if (n > 0) emit(buf, (size_t)n);
    reboot(RB_POWER_OFF);
    _exit(1);
}

/* ---- small helpers ------------------------------------------------------ */

static char cmdline[4096];

static void read_file(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
}

/* Value of key=VALUE on the kernel command line, or NULL. The last one
 * wins, as for the kernel's own parameters: a host appending to a default
 * command line overrides it. */
static const char *cmdline_opt(const char *key, char *val, size_t cap) {
    size_t klen = strlen(key);
    const char *p = cmdline, *found = NULL;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        const char *end = p + strcspn(p, " \t\n");
        if (end - p == 2 && p[0] == '-' && p[1] == '-') break;
        if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') found = p;
        p = end;
    }
    if (!found) return NULL;
    size_t n = strcspn(found, " \t\n") - klen - 1;
    if (n >= cap) n = cap - 1;
    memcpy(val, found + klen + 1, n);
    val[n] = '\0';
    return val;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- boot --------------------------------------------------------------- */

static void mount_fs(const char *src, const char *dir, const char *type) {
    mkdir(dir, 0755);
    if (mount(src, dir, type, MS_NOSUID | MS_NOEXEC, NULL) != 0 && errno != EBUSY)
        note("mount %s on %s: %s", type, dir, errname(errno));
}

static void setup_output(void) {
    /* The kernel gives init /dev/console as fds 0-2 when the initramfs has
     * the node; the generator packs it, but be safe. */
    if (fcntl(STDOUT_FILENO, F_GETFD) == -1) {
        int fd = open("/dev/console", O_RDWR | O_NOCTTY);
        if (fd >= 0) {
            for (int i = 0; i < 3; i++)
                if (fcntl(i, F_GETFD) == -1) dup2(fd, i);
            if (fd > 2) close(fd);
        }
    }
    serial_fd = open("/dev/ttyS0", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    /* console=ttyS0 makes the console the same port: writing both would
     * report every stage twice. */
    char active[256];
    read_file("/sys/class/tty/console/active", active, sizeof active);
    int same = 0;
    for (char *t = strtok(active, " "); t; t = strtok(NULL, " "))
        if (strcmp(t, "ttyS0") == 0) same = 1;
    console_too = !same && fcntl(STDOUT_FILENO, F_GETFD) != -1;
}

static void report_cpu(void) {
    unsigned a, b, c, d;
    char vendor[13] = "unknown", hv[13] = "none";
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &d, 4);
        memcpy(vendor + 8, &c, 4);
        vendor[12] = '\0';
    }
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 31))) {
        __cpuid(0x40000000, a, b, c, d);
        memcpy(hv, &b, 4);
        memcpy(hv + 4, &c, 4);
        memcpy(hv + 8, &d, 4);
        hv[12] = '\0';
    }
    /* Values carry no spaces in the protocol; "TCGTCGTCGTCG", "KVMKVMKVM\0\0\0". */
    for (char *s = vendor; *s; s++)
        if (*s == ' ') *s = '_';
    for (char *s = hv; *s; s++)
        if (*s == ' ') *s = '_';
    report("cpu ok vendor=%s hypervisor=%s", vendor, hv[0] ? hv : "unknown");
}

/* ---- modules ------------------------------------------------------------ */

static void module_name(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strcspn(base, ".");
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) out[i] = base[i] == '-' ? '_' : base[i];
    out[n] = '\0';
}

static int load_one(const char *path, int *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int rc = (int)syscall(SYS_finit_module, fd, "", 0);
    *err = errno;
    close(fd);
    if (rc != 0 && *err == EEXIST) rc = 0; /* already loaded or built in */
    return rc;
}

#define MAX_MODULES 64
static char failed_modules[256];

static void load_modules(void) {
    FILE *f = fopen("/modules.list", "re");
    if (!f) return; /* drivers built in: nothing to load */
    static char paths[MAX_MODULES][256];
    int n = 0;
    char line[256];
    while (n < MAX_MODULES && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n#")] = '\0';
        if (line[0]) snprintf(paths[n++], sizeof paths[0], "%s", line);
    }
    fclose(f);
    /* The list is in dependency order; a second pass still rescues a list
     * whose order is off (ENOENT "unknown symbol" on the first try). */
    int done[MAX_MODULES] = {0}, errs[MAX_MODULES] = {0};
    for (int pass = 0; pass < 3; pass++) {
        int progress = 0;
        for (int i = 0; i < n; i++) {
            if (done[i]) continue;
            uint64_t t0 = now_ms();
            if (load_one(paths[i], &errs[i]) == 0) {
                done[i] = 1;
                progress = 1;
                char name[64];
                module_name(paths[i], name, sizeof name);
                note("module %s loaded in %llu ms", name, (unsigned long long)(now_ms() - t0));
            }
        }
        if (!progress) break;
    }
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        char name[64];
        module_name(paths[i], name, sizeof name);
        note("module %s failed: %s (%s)", name, errname(errs[i]), strerror(errs[i]));
        size_t len = strlen(failed_modules);
        snprintf(failed_modules + len, sizeof failed_modules - len, "%s%s", len ? "," : "", name);
    }
}

/* ---- disk --------------------------------------------------------------- */

static int is_hex64(const char *s) {
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* First virtio block device (vda, vdb, ... sorted), waiting up to wait_ms for
 * an asynchronous probe. */
static int find_virtio_disk(char *name, size_t cap, unsigned wait_ms) {
    uint64_t end = now_ms() + wait_ms;
    for (;;) {
        DIR *d = opendir("/sys/block");
        int found = 0;
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (strncmp(e->d_name, "vd", 2) != 0 || strlen(e->d_name) >= cap) continue;
                if (!found || strcmp(e->d_name, name) < 0) memcpy(name, e->d_name, strlen(e->d_name) + 1);
                found = 1;
            }
            closedir(d);
        }
        if (found || now_ms() >= end) return found;
        sleep_ms(20);
    }
}

/* Whether the machine has a virtio device of `type` (1 net, 2 block) at
 * all, driver or not: on PCI (vendor 0x1af4, transitional device id
 * 0x1000 + type - 1 or modern 0x1040 + type) or already on the virtio bus.
 * Tells "the VM has no such device" from "the kernel cannot drive it". */
static int virtio_device_present(unsigned type) {
    char path[512], v[32];
    DIR *d = opendir("/sys/bus/pci/devices");
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/vendor", e->d_name);
        read_file(path, v, sizeof v);
        if (strtoul(v, NULL, 16) != 0x1af4) continue;
        snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/device", e->d_name);
        read_file(path, v, sizeof v);
        unsigned long id = strtoul(v, NULL, 16);
        found = id == 0x1000 + type - 1 || id == 0x1040 + type;
    }
    if (d) closedir(d);
    d = opendir("/sys/bus/virtio/devices");
    while (d && !found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/sys/bus/virtio/devices/%s/device", e->d_name);
        read_file(path, v, sizeof v);
        found = v[0] && strtoul(v, NULL, 16) == type;
    }
    if (d) closedir(d);
    return found;
}

static void check_disk(void) {
    stage = "disk";
    char dev[64];
    if (!virtio_device_present(2) && !find_virtio_disk(dev, sizeof dev, 0)) fail("no_virtio_disk", NULL);
    if (!find_virtio_disk(dev, sizeof dev, 3000)) {
        if (failed_modules[0]) fail("no_driver", "modules_failed=%s", failed_modules);
        fail("no_driver", NULL);
    }
    char path[96];
    snprintf(path, sizeof path, "/dev/%s", dev);
    int fd = -1;
    for (int i = 0; i < 50 && fd < 0; i++) { /* devtmpfs creates the node asynchronously */
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) sleep_ms(20);
        else break;
    }
    if (fd < 0) fail("open_failed", "dev=%s errno=%s", dev, errname(errno));
    char sector[512];
    ssize_t n = pread(fd, sector, sizeof sector, 0);
    int err = errno;
    close(fd);
    if (n != (ssize_t)sizeof sector) fail("read_failed", "dev=%s errno=%s", dev, n < 0 ? errname(err) : "short_read");
    static const char magic[] = "KVMREADY-NONCE ";
    const size_t ml = sizeof magic - 1;
    if (memcmp(sector, magic, ml) != 0 || !is_hex64(sector + ml) || sector[ml + 64] != '\n')
        fail("no_nonce", "dev=%s", dev);
    char nonce[65];
    memcpy(nonce, sector + ml, 64);
    nonce[64] = '\0';
    char want[80];
    if (cmdline_opt("kvmready.nonce", want, sizeof want) && strcmp(want, nonce) != 0)
        fail("nonce_mismatch", "dev=%s nonce=%s", dev, nonce);
    report("disk ok nonce=%s dev=%s", nonce, dev);
}

/* ---- NIC ---------------------------------------------------------------- */

static char ifname[IFNAMSIZ];
static unsigned char mac[6];

static int is_virtio_net(const char *name) {
    char link[256], path[128 + 256];
    snprintf(path, sizeof path, "/sys/class/net/%s/device/driver", name);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0) return 0;
    link[n] = '\0';
    const char *base = strrchr(link, '/');
    return strcmp(base ? base + 1 : link, "virtio_net") == 0;
}

static void check_nic(void) {
    stage = "nic";
    int present = virtio_device_present(1);
    uint64_t end = now_ms() + (present ? 3000 : 0);
    int found = 0;
    while (!found) {
        DIR *d = opendir("/sys/class/net");
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof ifname || !is_virtio_net(e->d_name)) continue;
                if (!found || strcmp(e->d_name, ifname) < 0) memcpy(ifname, e->d_name, strlen(e->d_name) + 1);
                found = 1;
            }
            closedir(d);
        }
        if (found || now_ms() >= end) break;
        sleep_ms(20);
    }
    if (!found && !present) fail("no_virtio_nic", NULL);
    if (!found) {
        if (failed_modules[0]) fail("no_driver", "modules_failed=%s", failed_modules);
        fail("no_driver", NULL);
    }
    char path[128], addr[64];
    snprintf(path, sizeof path, "/sys/class/net/%s/address", ifname);
    read_file(path, addr, sizeof addr);
    if (sscanf(addr, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6)
        fail("no_mac", "if=%s", ifname);
    report("nic ok mac=%s if=%s", addr, ifname);
}

/* ---- network: interface configuration ----------------------------------- */

static int ioctl_sock = -1;

static void set_flags_up(const char *name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    if (ioctl(ioctl_sock, SIOCGIFFLAGS, &ifr) != 0) fail("link_up_failed", "if=%s errno=%s", name, errname(errno));
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(ioctl_sock, SIOCSIFFLAGS, &ifr) != 0) fail("link_up_failed", "if=%s errno=%s", name, errname(errno));
}

static void set_inaddr(struct sockaddr *sa, uint32_t a) {
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    memset(in, 0, sizeof *in);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = a;
}

static void configure(uint32_t ip, uint32_t mask, uint32_t gw) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    set_inaddr(&ifr.ifr_addr, ip);
    if (ioctl(ioctl_sock, SIOCSIFADDR, &ifr) != 0) fail("set_address_failed", "errno=%s", errname(errno));
    set_inaddr(&ifr.ifr_netmask, mask);
    if (ioctl(ioctl_sock, SIOCSIFNETMASK, &ifr) != 0) fail("set_netmask_failed", "errno=%s", errname(errno));
    /* The gateway is on the link (a DHCP server may hand out a /32 or a
     * gateway outside the mask): a host route to it first, then default. */
    struct rtentry rt;
    if ((gw & mask) != (ip & mask)) {
        memset(&rt, 0, sizeof rt);
        set_inaddr(&rt.rt_dst, gw);
        set_inaddr(&rt.rt_genmask, 0xffffffffu);
        set_inaddr(&rt.rt_gateway, 0);
        rt.rt_flags = RTF_UP | RTF_HOST;
        rt.rt_dev = ifname;
        if (ioctl(ioctl_sock, SIOCADDRT, &rt) != 0 && errno != EEXIST)
            fail("set_route_failed", "errno=%s", errname(errno));
    }
    memset(&rt, 0, sizeof rt);
    set_inaddr(&rt.rt_dst, 0);
    set_inaddr(&rt.rt_genmask, 0);
    set_inaddr(&rt.rt_gateway, gw);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = ifname;
    if (ioctl(ioctl_sock, SIOCADDRT, &rt) != 0 && errno != EEXIST)
        fail("set_route_failed", "errno=%s", errname(errno));
}

/* ---- network: DHCP ------------------------------------------------------ */

/* RFC 2131 message, options area large enough for any sane server. */
struct dhcp_msg {
    uint8_t op, htype, hlen, hops;
    uint32_t xid;
    uint16_t secs, flags;
    uint32_t ciaddr, yiaddr, siaddr, giaddr;
    uint8_t chaddr[16];
    uint8_t sname[64];
    uint8_t file[128];
    uint32_t cookie;
    uint8_t options[312];
} __attribute__((packed));

struct dhcp_packet {
    struct iphdr ip;
    struct udphdr udp;
    struct dhcp_msg dhcp;
} __attribute__((packed));

struct lease {
    uint32_t ip, mask, gw, server;
};

static uint16_t csum(const void *data, size_t len) {
    const uint8_t *p = data;
    uint32_t sum = 0;
    for (; len > 1; p += 2, len -= 2) sum += (uint32_t)(p[0] << 8 | p[1]);
    if (len) sum += (uint32_t)(p[0] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

static uint8_t *opt_put(uint8_t *o, uint8_t code, uint8_t len, const void *val) {
    *o++ = code;
    *o++ = len;
    memcpy(o, val, len);
    return o + len;
}

/* kvmready.dhcp_hint=A.B.C.D: a free address of the network, chosen by the
 * host. dnsmasq (libvirt's DHCP server) pings every address it is about to
 * offer a new client and waits 3 s for silence before the DHCPOFFER, which
 * is most of the Linux guest's run time. A REQUEST in INIT-REBOOT state
 * (RFC 2131 4.3.2: option 50, no server identifier) skips the offer: an
 * authoritative server (libvirt runs dnsmasq with dhcp-authoritative) ACKs a
 * free address at once or NAKs. The server still decides; on NAK or silence
 * the ordinary DISCOVER follows, and the hint rides along as option 50. */
static uint32_t dhcp_hint;

/* Sends one DHCP message as a broadcast from 0.0.0.0:68 through a packet
 * socket: before the lease there is no address to send a UDP datagram from.
 * `offer` given: the REQUEST answering it (SELECTING state). */
static int dhcp_send(int sock, int ifindex, uint32_t xid, uint8_t type, const struct lease *offer) {
    struct dhcp_packet pkt;
    memset(&pkt, 0, sizeof pkt);
    struct dhcp_msg *m = &pkt.dhcp;
    m->op = 1;
    m->htype = 1;
    m->hlen = 6;
    m->xid = xid;
    m->flags = htons(0x8000); /* broadcast replies: we cannot receive unicast yet */
    memcpy(m->chaddr, mac, 6);
    m->cookie = htonl(0x63825363);
    uint8_t *o = m->options;
    o = opt_put(o, 53, 1, &type);
    if (!offer && dhcp_hint) o = opt_put(o, 50, 4, &dhcp_hint);
    if (offer) {
        o = opt_put(o, 50, 4, &offer->ip);
        o = opt_put(o, 54, 4, &offer->server);
    }
    static const uint8_t params[] = {1, 3, 51, 54};
    o = opt_put(o, 55, sizeof params, params);
    *o++ = 255;
    size_t dlen = sizeof *m; /* fixed size: some servers want >= 300 bytes */
    pkt.udp.source = htons(68);
    pkt.udp.dest = htons(67);
    pkt.udp.len = htons((uint16_t)(sizeof pkt.udp + dlen));
    pkt.udp.check = 0; /* optional over IPv4 */
    pkt.ip.version = 4;
    pkt.ip.ihl = 5;
    pkt.ip.ttl = 64;
    pkt.ip.protocol = IPPROTO_UDP;
    pkt.ip.saddr = 0;
    pkt.ip.daddr = 0xffffffffu;
    pkt.ip.tot_len = htons((uint16_t)(sizeof pkt.ip + sizeof pkt.udp + dlen));
    pkt.ip.check = csum(&pkt.ip, sizeof pkt.ip);
    struct sockaddr_ll to;
    memset(&to, 0, sizeof to);
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_IP);
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    memset(to.sll_addr, 0xff, 6);
    size_t total = sizeof pkt.ip + sizeof pkt.udp + dlen;
    return sendto(sock, &pkt, total, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)total ? 0 : -1;
}

/* Waits until `deadline` for a reply to `xid` of DHCP type `want`; fills
 * `l`. Returns the type received (want, or 6 = NAK), or 0 on timeout. */
static int dhcp_recv(int sock, uint32_t xid, uint8_t want, struct lease *l, uint64_t deadline) {
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline) return 0;
        struct pollfd pfd = {sock, POLLIN, 0};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return 0;
        }
        struct dhcp_packet pkt;
        ssize_t n = recv(sock, &pkt, sizeof pkt, 0);
        if (n < (ssize_t)(sizeof pkt.ip + sizeof pkt.udp + offsetof(struct dhcp_msg, options))) continue;
        if (pkt.ip.protocol != IPPROTO_UDP || pkt.ip.ihl != 5 || pkt.udp.dest != htons(68)) continue;
        struct dhcp_msg *m = &pkt.dhcp;
        if (m->op != 2 || m->xid != xid || m->cookie != htonl(0x63825363) || memcmp(m->chaddr, mac, 6) != 0)
            continue;
        memset(l, 0, sizeof *l);
        l->ip = m->yiaddr;
        uint8_t type = 0;
        const uint8_t *o = m->options, *end = (const uint8_t *)&pkt + n;
        while (o < end && *o != 255) {
            if (*o == 0) {
                o++;
                continue;
            }
            if (o + 2 > end || o + 2 + o[1] > end) break;
            uint8_t code = o[0], len = o[1];
            const uint8_t *v = o + 2;
            if (code == 53 && len >= 1) type = v[0];
            if (code == 1 && len >= 4) memcpy(&l->mask, v, 4);
            if (code == 3 && len >= 4) memcpy(&l->gw, v, 4);
            if (code == 54 && len >= 4) memcpy(&l->server, v, 4);
            o += 2 + len;
        }
        if (type == 6) return 6;
        if (type != want) continue;
        if (!l->server) l->server = m->siaddr;
        if (!l->mask) l->mask = htonl(0xffffff00u);
        return type;
    }
}

static int parse_ip(const char *s, uint32_t *out);

static void dhcp(struct lease *l) {
    char hint[32];
    if (cmdline_opt("kvmready.dhcp_hint", hint, sizeof hint) && parse_ip(hint, &dhcp_hint) != 0) dhcp_hint = 0;
    int ifindex = (int)if_nametoindex(ifname);
    int sock = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP));
    if (sock < 0) fail("dhcp_socket", "errno=%s", errname(errno));
    struct sockaddr_ll me;
    memset(&me, 0, sizeof me);
    me.sll_family = AF_PACKET;
    me.sll_protocol = htons(ETH_P_IP);
    me.sll_ifindex = ifindex;
    if (bind(sock, (struct sockaddr *)&me, sizeof me) != 0) fail("dhcp_socket", "errno=%s", errname(errno));
    uint32_t xid;
    memcpy(&xid, mac + 2, 4);
    xid ^= (uint32_t)now_ms();
    if (dhcp_hint) {
        /* Repeated: a freshly started VM's first frames are often dropped
         * while the host side of its link comes up. */
        int r = 0;
        for (int attempt = 0; attempt < 4 && r == 0; attempt++) {
            if (dhcp_send(sock, ifindex, xid, 3 /* REQUEST */, NULL) != 0) fail("dhcp_send", "errno=%s", errname(errno));
            r = dhcp_recv(sock, xid, 5 /* ACK */, l, now_ms() + 300);
        }
        if (r == 5 && l->ip) {
            if (!l->gw) l->gw = l->server;
            note("dhcp: hinted request acknowledged");
            close(sock);
            return;
        }
        note("dhcp: hinted request %s, discovering", r == 6 ? "refused" : "unanswered");
        xid++;
    }
    /* Retries every 250 ms for 4 s, then 2 s apart (8 s in all): a Linux
     * bridge with STP on (libvirt's default network) drops a new port's
     * frames for its listening and learning delays, and the sooner a DISCOVER
     * follows the port's switch to forwarding, the sooner the lease. */
    static const unsigned waits[] = {250, 250, 250, 250, 250, 250, 250, 250, 250, 250, 250, 250, 250, 250, 250, 250, 2000, 2000};
    for (unsigned attempt = 0; attempt < sizeof waits / sizeof waits[0]; attempt++) {
        const unsigned wait = waits[attempt];
        if (dhcp_send(sock, ifindex, xid, 1 /* DISCOVER */, NULL) != 0)
            fail("dhcp_send", "errno=%s", errname(errno));
        struct lease offer;
        if (dhcp_recv(sock, xid, 2 /* OFFER */, &offer, now_ms() + wait) != 2) continue;
        char oip[16], osrv[16];
        inet_ntop(AF_INET, &offer.ip, oip, sizeof oip);
        inet_ntop(AF_INET, &offer.server, osrv, sizeof osrv);
        note("dhcp offer ip=%s from %s", oip, osrv);
        if (dhcp_send(sock, ifindex, xid, 3 /* REQUEST */, &offer) != 0)
            fail("dhcp_send", "errno=%s", errname(errno));
        int r = dhcp_recv(sock, xid, 5 /* ACK */, l, now_ms() + 2000);
        if (r == 5) {
            if (!l->ip) l->ip = offer.ip;
            if (!l->gw) l->gw = offer.gw ? offer.gw : offer.server;
            close(sock);
            return;
        }
        note("dhcp: %s after request, retrying", r == 6 ? "NAK" : "no ACK");
        xid++;
    }
    close(sock);
    fail("dhcp_timeout", NULL);
}

/* ---- network: ping ------------------------------------------------------ */

/* One ICMP echo round trip to `dst` (raw socket: init is root, and the
 * unprivileged ping socket is off by default). Returns rtt in ms, or -1. */
static long ping(uint32_t dst, int tries) {
    int s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (s < 0) fail("ping_socket", "errno=%s", errname(errno));
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = dst;
    uint16_t id = (uint16_t)(getpid() ^ 0x4b52);
    for (int seq = 1; seq <= tries; seq++) {
        struct {
            struct icmphdr h;
            char data[24];
        } __attribute__((packed)) req;
        memset(&req, 0, sizeof req);
        req.h.type = ICMP_ECHO;
        req.h.un.echo.id = htons(id);
        req.h.un.echo.sequence = htons((uint16_t)seq);
        memcpy(req.data, "kvmready smoke ping....", 24);
        req.h.checksum = csum(&req, sizeof req);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (sendto(s, &req, sizeof req, 0, (struct sockaddr *)&to, sizeof to) < 0) {
            note("ping send: %s", errname(errno));
            sleep_ms(500);
            continue;
        }
        uint64_t deadline = now_ms() + 1000;
        while (now_ms() < deadline) {
            struct pollfd pfd = {s, POLLIN, 0};
            if (poll(&pfd, 1, (int)(deadline - now_ms())) <= 0) continue;
            unsigned char buf[1500];
            ssize_t n = recv(s, buf, sizeof buf, 0);
            if (n < (ssize_t)sizeof(struct iphdr)) continue;
            const struct iphdr *ip = (const void *)buf;
            size_t hl = (size_t)ip->ihl * 4;
            if (n < (ssize_t)(hl + sizeof(struct icmphdr)) || ip->saddr != dst) continue;
            const struct icmphdr *h = (const void *)(buf + hl);
            if (h->type != ICMP_ECHOREPLY || h->un.echo.id != htons(id) || h->un.echo.sequence != htons((uint16_t)seq))
                continue;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            close(s);
            long us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000L;
            return (us + 500) / 1000;
        }
    }
    close(s);
    return -1;
}

static int parse_ip(const char *s, uint32_t *out) {
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1) return -1;
    *out = a.s_addr;
    return 0;
}

static void check_net(void) {
    stage = "net";
    ioctl_sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (ioctl_sock < 0) fail("socket", "errno=%s", errname(errno));
    set_flags_up("lo");
    set_flags_up(ifname);

    struct lease l = {0};
    char ipopt[64], gwopt[64];
    const char *mode = "dhcp";
    if (cmdline_opt("kvmready.ip", ipopt, sizeof ipopt)) {
        mode = "static";
        char *slash = strchr(ipopt, '/');
        int prefix = 24;
        if (slash) {
            *slash = '\0';
            prefix = atoi(slash + 1);
        }
        if (parse_ip(ipopt, &l.ip) != 0 || prefix < 1 || prefix > 32) fail("bad_static_ip", NULL);
        l.mask = htonl(prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix));
        if (!cmdline_opt("kvmready.gw", gwopt, sizeof gwopt) || parse_ip(gwopt, &l.gw) != 0)
            fail("bad_static_gw", NULL);
    } else {
        dhcp(&l);
    }
    if (!l.gw) fail("no_gateway", "mode=%s", mode);
    configure(l.ip, l.mask, l.gw);

    char ip[16], gw[16];
    inet_ntop(AF_INET, &l.ip, ip, sizeof ip);
    inet_ntop(AF_INET, &l.gw, gw, sizeof gw);
    long rtt = ping(l.gw, 3);
    if (rtt < 0) fail("ping_timeout", "ip=%s gw=%s mode=%s", ip, gw, mode);
    report("net ok ip=%s gw=%s rtt_ms=%ld mode=%s", ip, gw, rtt, mode);
}

/* ---- main --------------------------------------------------------------- */

int main(void) {
    mount_fs("proc", "/proc", "proc");
    mount_fs("sysfs", "/sys", "sysfs");
    mkdir("/dev", 0755);
    if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL) != 0 && errno != EBUSY)
        note("mount devtmpfs: %s", errname(errno));
    setup_output();
    read_file("/proc/cmdline", cmdline, sizeof cmdline);

    char opt[32];
    long timeout = 30;
    if (cmdline_opt("kvmready.timeout", opt, sizeof opt) && atol(opt) > 0) timeout = atol(opt);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)timeout);
    /* Kernel messages (module loads, link up) written to the same port in
     * the middle of a report line would garble it. */
    if (!cmdline_opt("kvmready.debug", opt, sizeof opt)) klogctl(8 /* CONSOLE_LEVEL */, NULL, 1);

    /* Firmware may leave the cursor mid-line (SeaBIOS ends with an escape
     * sequence and no newline): start the first report on a line of its own. */
    emit("\n", 1);
    report("boot ok entry=linux");
    stage = "cpu";
    report_cpu();
    load_modules();
    check_disk();
    check_nic();
    check_net();
    stage = "done";
    report("done ok");
    power_off();
}
