/* kvmready's builtin smoke guest: proves on COM1, one protocol line per
 * stage (docs: /work/smoke-protocol.md, parser: src/smoke/serial_protocol),
 * that guest code runs, that its first virtio disk returns the nonce sector
 * the host wrote, and that a virtio NIC is present; then ends the VM.
 *
 * Runs in 32-bit protected mode with paging off and interrupts disabled:
 * every device is polled, so no IDT, PIC or APIC setup is needed.
 * Transports: legacy (transitional) virtio-pci found through configuration
 * mechanism #1 (ports 0xcf8/0xcfc) on `pc`, and virtio-mmio (versions 1 and
 * 2) on `microvm`, found from the `virtio_mmio.device=` entries QEMU appends
 * to the command line, else by probing microvm's fixed MMIO window. */

#include <stddef.h>
#include <stdint.h>

#include "hw.h"

#define GUEST_ENTRY_PVH 1
#define GUEST_ENTRY_MULTIBOOT 2

void triple_fault(void) __attribute__((noreturn));
void guest_main(uint32_t entry, uint32_t info);

/* ---- serial ---------------------------------------------------------- */

#define COM1 0x3f8

static void serial_init(void) {
    outb(COM1 + 1, 0x00);  /* no interrupts */
    outb(COM1 + 3, 0x80);  /* DLAB */
    outb(COM1 + 0, 0x01);  /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);  /* 8N1 */
    outb(COM1 + 2, 0xc7);  /* FIFO on, cleared */
    outb(COM1 + 4, 0x03);  /* DTR, RTS */
}

static void putc_serial(char c) {
    /* Bounded: a missing UART must not hang the guest. */
    for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); ++i) cpu_relax();
    outb(COM1, (uint8_t)c);
}

static void puts_serial(const char* s) {
    while (*s) putc_serial(*s++);
}

static void put_hex(uint32_t v, int digits) {
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; --i) putc_serial(hex[(v >> (i * 4)) & 0xf]);
}

static void put_dec(uint64_t v) {
    char buf[24];
    int n = 0;
    do {
        /* 64-bit division would need libgcc; values here fit 32 bits or are split. */
        uint32_t lo = (uint32_t)v;
        if (v >> 32) {
            uint64_t q = 0, r = 0;
            for (int b = 63; b >= 0; --b) {
                r = (r << 1) | ((v >> b) & 1);
                if (r >= 10) { r -= 10; q |= (uint64_t)1 << b; }
            }
            buf[n++] = (char)('0' + r);
            v = q;
        } else {
            buf[n++] = (char)('0' + lo % 10);
            v = lo / 10;
        }
    } while (v && n < (int)sizeof buf);
    while (n) putc_serial(buf[--n]);
}

/* Protocol values carry no spaces: anything outside [A-Za-z0-9._-] becomes '_'. */
static void put_token(const char* s, size_t max) {
    size_t n = 0;
    for (; n < max && s[n]; ++n) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
        putc_serial(ok ? c : '_');
    }
    if (n == 0) puts_serial("none");
}

static void line_begin(const char* stage, int ok) {
    puts_serial("KVMREADY ");
    puts_serial(stage);
    puts_serial(ok ? " ok" : " fail");
}

static void line_end(void) { putc_serial('\n'); }

/* ---- small helpers ----------------------------------------------------- */

static void* memzero(void* p, size_t n) {
    volatile uint8_t* b = p;
    for (size_t i = 0; i < n; ++i) b[i] = 0;
    return p;
}

static int starts_with(const char* s, const char* prefix) {
    while (*prefix)
        if (*s++ != *prefix++) return 0;
    return 1;
}

/* Accepts decimal or 0x-hex, with an optional K/M/G suffix (virtio_mmio
 * sizes); returns the position after the number. */
static const char* parse_num(const char* s, uint64_t* out) {
    uint64_t v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        for (;; ++s) {
            char c = *s;
            if (c >= '0' && c <= '9') v = v * 16 + (uint64_t)(c - '0');
            else if (c >= 'a' && c <= 'f') v = v * 16 + (uint64_t)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v = v * 16 + (uint64_t)(c - 'A' + 10);
            else break;
        }
    } else {
        while (*s >= '0' && *s <= '9') v = v * 10 + (uint64_t)(*s++ - '0');
    }
    if (*s == 'K' || *s == 'k') { v <<= 10; ++s; }
    else if (*s == 'M' || *s == 'm') { v <<= 20; ++s; }
    else if (*s == 'G' || *s == 'g') { v <<= 30; ++s; }
    *out = v;
    return s;
}

/* ---- PCI configuration mechanism #1 ----------------------------------- */

static uint32_t pci_addr(int bus, int dev, int fn, int off) {
    return 0x80000000u | ((uint32_t)bus << 16) | ((uint32_t)dev << 11) | ((uint32_t)fn << 8) | (uint32_t)(off & 0xfc);
}
static uint32_t pci_read32(int bus, int dev, int fn, int off) {
    outl(0xcf8, pci_addr(bus, dev, fn, off));
    return inl(0xcfc);
}
static uint16_t pci_read16(int bus, int dev, int fn, int off) {
    outl(0xcf8, pci_addr(bus, dev, fn, off));
    return inw((uint16_t)(0xcfc + (off & 2)));
}
static uint8_t pci_read8(int bus, int dev, int fn, int off) {
    outl(0xcf8, pci_addr(bus, dev, fn, off));
    return inb((uint16_t)(0xcfc + (off & 3)));
}
static void pci_write16(int bus, int dev, int fn, int off, uint16_t v) {
    outl(0xcf8, pci_addr(bus, dev, fn, off));
    outw((uint16_t)(0xcfc + (off & 2)), v);
}
static void pci_write32(int bus, int dev, int fn, int off, uint32_t v) {
    outl(0xcf8, pci_addr(bus, dev, fn, off));
    outl(0xcfc, v);
}
static void pci_write8(int bus, int dev, int fn, int off, uint8_t v) {
    outl(0xcf8, pci_addr(bus, dev, fn, off));
    outb((uint16_t)(0xcfc + (off & 3)), v);
}

/* ---- virtio transports ------------------------------------------------- */

enum { VT_NONE = 0, VT_PCI_LEGACY, VT_MMIO };

struct vdev {
    int transport;
    int from_cmdline;  /* virtio-mmio address came from virtio_mmio.device= */
    uint16_t io;       /* legacy virtio-pci: I/O BAR 0 */
    uint32_t base;     /* virtio-mmio: register window */
    uint32_t version;  /* virtio-mmio: 1 legacy, 2 modern */
    int bus, dev, fn;  /* PCI location, for the report */
};

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2

#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8

/* Legacy virtio-pci register offsets (no MSI-X enabled: config at 20). */
#define VPCI_HOST_FEATURES 0
#define VPCI_GUEST_FEATURES 4
#define VPCI_QUEUE_PFN 8
#define VPCI_QUEUE_SIZE 12
#define VPCI_QUEUE_SEL 14
#define VPCI_QUEUE_NOTIFY 16
#define VPCI_STATUS 18
#define VPCI_CONFIG 20

/* virtio-mmio register offsets. */
#define VMMIO_MAGIC 0x000
#define VMMIO_VERSION 0x004
#define VMMIO_DEVICE_ID 0x008
#define VMMIO_DEV_FEATURES 0x010
#define VMMIO_DEV_FEATURES_SEL 0x014
#define VMMIO_DRV_FEATURES 0x020
#define VMMIO_DRV_FEATURES_SEL 0x024
#define VMMIO_GUEST_PAGE_SIZE 0x028
#define VMMIO_QUEUE_SEL 0x030
#define VMMIO_QUEUE_NUM_MAX 0x034
#define VMMIO_QUEUE_NUM 0x038
#define VMMIO_QUEUE_ALIGN 0x03c
#define VMMIO_QUEUE_PFN 0x040
#define VMMIO_QUEUE_READY 0x044
#define VMMIO_QUEUE_NOTIFY 0x050
#define VMMIO_STATUS 0x070
#define VMMIO_QUEUE_DESC_LO 0x080
#define VMMIO_QUEUE_DESC_HI 0x084
#define VMMIO_QUEUE_AVAIL_LO 0x090
#define VMMIO_QUEUE_AVAIL_HI 0x094
#define VMMIO_QUEUE_USED_LO 0x0a0
#define VMMIO_QUEUE_USED_HI 0x0a4
#define VMMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC 0x74726976u /* "virt" */

static uint8_t vd_get_status(const struct vdev* d) {
    if (d->transport == VT_PCI_LEGACY) return inb((uint16_t)(d->io + VPCI_STATUS));
    return (uint8_t)mmio_read32(d->base + VMMIO_STATUS);
}

static void vd_set_status(const struct vdev* d, uint8_t s) {
    if (d->transport == VT_PCI_LEGACY) outb((uint16_t)(d->io + VPCI_STATUS), s);
    else mmio_write32(d->base + VMMIO_STATUS, s);
}

static uint32_t vd_features(const struct vdev* d, int word) {
    if (d->transport == VT_PCI_LEGACY) return word == 0 ? inl((uint16_t)(d->io + VPCI_HOST_FEATURES)) : 0;
    mmio_write32(d->base + VMMIO_DEV_FEATURES_SEL, (uint32_t)word);
    return mmio_read32(d->base + VMMIO_DEV_FEATURES);
}

/* Modern devices require VIRTIO_F_VERSION_1 (bit 32) and the FEATURES_OK
 * handshake; legacy ones know neither. Returns 0 when the device refuses. */
static int vd_negotiate(const struct vdev* d, uint32_t wanted_lo) {
    uint32_t lo = vd_features(d, 0) & wanted_lo;
    if (d->transport == VT_PCI_LEGACY) {
        outl((uint16_t)(d->io + VPCI_GUEST_FEATURES), lo);
        return 1;
    }
    mmio_write32(d->base + VMMIO_DRV_FEATURES_SEL, 0);
    mmio_write32(d->base + VMMIO_DRV_FEATURES, lo);
    if (d->version == 1) return 1;
    if (!(vd_features(d, 1) & 1)) return 0;
    mmio_write32(d->base + VMMIO_DRV_FEATURES_SEL, 1);
    mmio_write32(d->base + VMMIO_DRV_FEATURES, 1);
    vd_set_status(d, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    return (vd_get_status(d) & ST_FEATURES_OK) != 0;
}

static uint8_t vd_config8(const struct vdev* d, uint32_t off) {
    if (d->transport == VT_PCI_LEGACY) return inb((uint16_t)(d->io + VPCI_CONFIG + off));
    return mmio_read8(d->base + VMMIO_CONFIG + off);
}

/* ---- split virtqueue ---------------------------------------------------- */

#define VQ_MAX 256
#define VQ_ALIGN 4096
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct vq {
    uint32_t num;
    volatile struct vring_desc* desc;
    volatile uint16_t* avail;  /* flags, idx, ring[num] */
    volatile uint16_t* used;   /* flags, idx, then {u32 id, u32 len}[num] */
};

/* Legacy layout (fixed by the spec for PFN-based transports): descriptors,
 * then the available ring, then the used ring on the next 4 KiB boundary.
 * 256 entries need 10 KiB. */
static uint8_t vq_memory[16384] __attribute__((aligned(VQ_ALIGN)));

static int vq_setup(const struct vdev* d, struct vq* q, uint16_t index) {
    uint32_t num;
    if (d->transport == VT_PCI_LEGACY) {
        outw((uint16_t)(d->io + VPCI_QUEUE_SEL), index);
        num = inw((uint16_t)(d->io + VPCI_QUEUE_SIZE));
    } else {
        mmio_write32(d->base + VMMIO_QUEUE_SEL, index);
        num = mmio_read32(d->base + VMMIO_QUEUE_NUM_MAX);
        if (num > VQ_MAX) num = VQ_MAX;
    }
    if (num == 0 || num > VQ_MAX) return 0;
    memzero(vq_memory, sizeof vq_memory);
    uint32_t base = (uint32_t)(uintptr_t)vq_memory;
    uint32_t avail = base + 16 * num;
    uint32_t used = (avail + 6 + 2 * num + VQ_ALIGN - 1) & ~(uint32_t)(VQ_ALIGN - 1);
    q->num = num;
    q->desc = (volatile struct vring_desc*)(uintptr_t)base;
    q->avail = (volatile uint16_t*)(uintptr_t)avail;
    q->used = (volatile uint16_t*)(uintptr_t)used;
    if (d->transport == VT_PCI_LEGACY) {
        outl((uint16_t)(d->io + VPCI_QUEUE_PFN), base / VQ_ALIGN);
    } else if (d->version == 1) {
        mmio_write32(d->base + VMMIO_GUEST_PAGE_SIZE, VQ_ALIGN);
        mmio_write32(d->base + VMMIO_QUEUE_NUM, num);
        mmio_write32(d->base + VMMIO_QUEUE_ALIGN, VQ_ALIGN);
        mmio_write32(d->base + VMMIO_QUEUE_PFN, base / VQ_ALIGN);
    } else {
        mmio_write32(d->base + VMMIO_QUEUE_NUM, num);
        mmio_write32(d->base + VMMIO_QUEUE_DESC_LO, base);
        mmio_write32(d->base + VMMIO_QUEUE_DESC_HI, 0);
        mmio_write32(d->base + VMMIO_QUEUE_AVAIL_LO, avail);
        mmio_write32(d->base + VMMIO_QUEUE_AVAIL_HI, 0);
        mmio_write32(d->base + VMMIO_QUEUE_USED_LO, used);
        mmio_write32(d->base + VMMIO_QUEUE_USED_HI, 0);
        mmio_write32(d->base + VMMIO_QUEUE_READY, 1);
    }
    return 1;
}

static void vq_notify(const struct vdev* d, uint16_t index) {
    if (d->transport == VT_PCI_LEGACY) outw((uint16_t)(d->io + VPCI_QUEUE_NOTIFY), index);
    else mmio_write32(d->base + VMMIO_QUEUE_NOTIFY, index);
}

/* ---- device discovery --------------------------------------------------- */

struct devices {
    struct vdev blk, net;
    int pci_present;
    int modern_pci_blk, modern_pci_net;  /* seen but not usable (no legacy BAR) */
    uint16_t acpi_pm_base;               /* PIIX4 / ICH9 PM I/O base, 0 if none */
    int acpi_ged;                        /* ACPI tables exist: microvm has its GED */
};

static void consider_mmio(struct devices* ds, uint32_t base, int from_cmdline) {
    if (mmio_read32(base + VMMIO_MAGIC) != VIRTIO_MMIO_MAGIC) return;
    uint32_t id = mmio_read32(base + VMMIO_DEVICE_ID);
    struct vdev* slot = id == VIRTIO_ID_BLOCK ? &ds->blk : id == VIRTIO_ID_NET ? &ds->net : NULL;
    if (!slot || slot->transport != VT_NONE) return;
    slot->transport = VT_MMIO;
    slot->base = base;
    slot->version = mmio_read32(base + VMMIO_VERSION);
    slot->from_cmdline = from_cmdline;
}

static void find_mmio_from_cmdline(struct devices* ds, const char* cmdline) {
    static const char key[] = "virtio_mmio.device=";
    for (const char* p = cmdline; p && *p; ++p) {
        if (!starts_with(p, key) || (p != cmdline && p[-1] != ' ')) continue;
        uint64_t size = 0, addr = 0;
        const char* q = parse_num(p + sizeof key - 1, &size);
        if (*q != '@') continue;
        parse_num(q + 1, &addr);
        if (addr == 0 || addr >> 32) continue;
        consider_mmio(ds, (uint32_t)addr, 1);
    }
}

static void find_pci(struct devices* ds) {
    if (pci_read32(0, 0, 0, 0) == 0xffffffffu) return;
    ds->pci_present = 1;
    for (int bus = 0; bus < 4; ++bus) {
        for (int dev = 0; dev < 32; ++dev) {
            int fns = 1;
            for (int fn = 0; fn < fns; ++fn) {
                uint32_t id = pci_read32(bus, dev, fn, 0);
                if ((id & 0xffff) == 0xffff) continue;
                if (fn == 0 && (pci_read8(bus, dev, 0, 0x0e) & 0x80)) fns = 8;
                uint16_t vendor = (uint16_t)id, device = (uint16_t)(id >> 16);
                if (vendor == 0x8086 && device == 0x7113) {
                    /* PIIX4 PM (pc): PMBA at 0x40, I/O enable in PMREGMISC. */
                    uint16_t base = pci_read16(bus, dev, fn, 0x40) & 0xffc0;
                    if (!base) { base = 0x600; pci_write32(bus, dev, fn, 0x40, base | 1); }
                    pci_write8(bus, dev, fn, 0x80, pci_read8(bus, dev, fn, 0x80) | 1);
                    ds->acpi_pm_base = base;
                } else if (vendor == 0x8086 && device == 0x2918) {
                    /* ICH9 LPC (q35): PMBASE at 0x40, ACPI_EN in ACPI_CNTL. */
                    uint16_t base = pci_read16(bus, dev, fn, 0x40) & 0xff80;
                    if (!base) { base = 0x600; pci_write32(bus, dev, fn, 0x40, base | 1); }
                    pci_write8(bus, dev, fn, 0x44, pci_read8(bus, dev, fn, 0x44) | 0x80);
                    ds->acpi_pm_base = base;
                }
                if (vendor != 0x1af4) continue;
                int type = 0, modern = 0;
                if (device >= 0x1000 && device <= 0x103f) type = pci_read16(bus, dev, fn, 0x2e);
                else if (device >= 0x1040 && device <= 0x107f) { type = device - 0x1040; modern = 1; }
                struct vdev* slot = type == VIRTIO_ID_BLOCK ? &ds->blk : type == VIRTIO_ID_NET ? &ds->net : NULL;
                if (!slot || slot->transport != VT_NONE) continue;
                uint32_t bar0 = pci_read32(bus, dev, fn, 0x10);
                if (modern || !(bar0 & 1)) {
                    if (type == VIRTIO_ID_BLOCK) ds->modern_pci_blk = 1;
                    else ds->modern_pci_net = 1;
                    continue;
                }
                /* I/O decoding and bus mastering: the device DMAs into our rings. */
                pci_write16(bus, dev, fn, 0x04, pci_read16(bus, dev, fn, 0x04) | 0x5);
                slot->transport = VT_PCI_LEGACY;
                slot->io = (uint16_t)(bar0 & 0xfffc);
                slot->bus = bus;
                slot->dev = dev;
                slot->fn = fn;
            }
        }
    }
}

/* microvm's virtio-mmio window (QEMU: VIRTIO_MMIO_BASE, 512-byte slots).
 * Only probed without a PCI host bridge: on `pc` these addresses can be a
 * PCI BAR. */
#define MICROVM_VIRTIO_BASE 0xfeb00000u
#define MICROVM_VIRTIO_SLOTS 24

static void find_mmio_by_probe(struct devices* ds) {
    for (uint32_t i = 0; i < MICROVM_VIRTIO_SLOTS; ++i) consider_mmio(ds, MICROVM_VIRTIO_BASE + i * 512, 0);
}

static void put_transport(const struct vdev* d) {
    if (d->transport == VT_PCI_LEGACY) {
        puts_serial(" transport=pci-legacy pci=");
        put_hex((uint32_t)d->bus, 2);
        putc_serial(':');
        put_hex((uint32_t)d->dev, 2);
        putc_serial('.');
        put_hex((uint32_t)d->fn, 1);
    } else {
        puts_serial(d->version == 1 ? " transport=mmio-v1 mmio=0x" : " transport=mmio-v2 mmio=0x");
        put_hex(d->base, 8);
        puts_serial(d->from_cmdline ? " found=cmdline" : " found=probe");
    }
}

/* ---- stages ------------------------------------------------------------- */

static void stage_cpu(void) {
    uint32_t r[4];
    char vendor[13];
    cpuid(0, r);
    ((uint32_t*)vendor)[0] = r[1];
    ((uint32_t*)vendor)[1] = r[3];
    ((uint32_t*)vendor)[2] = r[2];
    vendor[12] = 0;
    cpuid(1, r);
    int hv = (r[2] >> 31) & 1;
    char hyp[13] = {0};
    if (hv) {
        cpuid(0x40000000, r);
        ((uint32_t*)hyp)[0] = r[1];
        ((uint32_t*)hyp)[1] = r[2];
        ((uint32_t*)hyp)[2] = r[3];
        hyp[12] = 0;
    }
    line_begin("cpu", 1);
    puts_serial(" vendor=");
    put_token(vendor, 12);
    puts_serial(" hypervisor=");
    put_token(hv ? hyp : "", 12);
    line_end();
}

struct blk_req_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static struct {
    struct blk_req_header hdr;
    uint8_t data[512];
    volatile uint8_t status;
} blk_req __attribute__((aligned(16)));

/* Polls are bounded in TSC cycles: no timer is set up, and an iteration
 * count means nothing when PAUSE costs microseconds (it exits to the
 * hypervisor on some KVM flavours). 4e9 cycles is 1-4 s on anything real;
 * the host's own timeout is what normally ends a stuck run. */
#define POLL_TSC_LIMIT 4000000000ull

static int is_hex_lower(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static int stage_disk(const struct devices* ds) {
    const struct vdev* d = &ds->blk;
    if (d->transport == VT_NONE) {
        line_begin("disk", 0);
        puts_serial(ds->modern_pci_blk ? " reason=modern-only-virtio-pci" : " reason=no-virtio-blk-device");
        line_end();
        return 0;
    }
    vd_set_status(d, 0);
    vd_set_status(d, ST_ACK);
    vd_set_status(d, ST_ACK | ST_DRIVER);
    struct vq q;
    const char* why = 0;
    if (!vd_negotiate(d, 0)) why = "features-refused";
    else if (!vq_setup(d, &q, 0)) why = "no-queue";
    if (why) {
        line_begin("disk", 0);
        puts_serial(" reason=");
        puts_serial(why);
        put_transport(d);
        line_end();
        return 0;
    }
    vd_set_status(d, ST_ACK | ST_DRIVER | ST_DRIVER_OK | (d->transport == VT_MMIO && d->version == 2 ? ST_FEATURES_OK : 0));

    uint64_t capacity = 0;
    for (int i = 7; i >= 0; --i) capacity = (capacity << 8) | vd_config8(d, (uint32_t)i);

    memzero(&blk_req, sizeof blk_req);
    blk_req.hdr.type = 0; /* VIRTIO_BLK_T_IN */
    blk_req.hdr.sector = 0;
    blk_req.status = 0xff;
    q.desc[0].addr = (uint32_t)(uintptr_t)&blk_req.hdr;
    q.desc[0].len = sizeof blk_req.hdr;
    q.desc[0].flags = VRING_DESC_F_NEXT;
    q.desc[0].next = 1;
    q.desc[1].addr = (uint32_t)(uintptr_t)blk_req.data;
    q.desc[1].len = sizeof blk_req.data;
    q.desc[1].flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE;
    q.desc[1].next = 2;
    q.desc[2].addr = (uint32_t)(uintptr_t)&blk_req.status;
    q.desc[2].len = 1;
    q.desc[2].flags = VRING_DESC_F_WRITE;
    q.desc[2].next = 0;
    q.avail[2] = 0;  /* ring[0] = head descriptor */
    barrier();
    q.avail[1] = 1;  /* idx */
    barrier();
    vq_notify(d, 0);
    const uint64_t poll_start = rdtsc();
    while (q.used[1] == 0 && rdtsc() - poll_start < POLL_TSC_LIMIT) cpu_relax();
    barrier();

    if (q.used[1] == 0 || blk_req.status != 0) {
        line_begin("disk", 0);
        if (q.used[1] == 0) puts_serial(" reason=read-timeout");
        else { puts_serial(" reason=io-error status="); put_dec(blk_req.status); }
        put_transport(d);
        line_end();
        return 0;
    }
    /* Sector 0: "KVMREADY-NONCE " + 64 lowercase hex + "\n". */
    static const char magic[] = "KVMREADY-NONCE ";
    int ok = starts_with((const char*)blk_req.data, magic) && blk_req.data[15 + 64] == '\n';
    for (int i = 0; ok && i < 64; ++i) ok = is_hex_lower(blk_req.data[15 + i]);
    line_begin("disk", ok);
    if (ok) {
        puts_serial(" nonce=");
        for (int i = 0; i < 64; ++i) putc_serial((char)blk_req.data[15 + i]);
    } else {
        puts_serial(" reason=no-nonce-in-sector-0");
    }
    puts_serial(" sectors=");
    put_dec(capacity);
    put_transport(d);
    line_end();
    return ok;
}

#define VIRTIO_NET_F_MAC (1u << 5)
#define VIRTIO_NET_F_STATUS (1u << 16)

static int stage_nic(const struct devices* ds) {
    const struct vdev* d = &ds->net;
    if (d->transport == VT_NONE) {
        line_begin("nic", 0);
        puts_serial(ds->modern_pci_net ? " reason=modern-only-virtio-pci" : " reason=no-virtio-net-device");
        line_end();
        return 0;
    }
    vd_set_status(d, 0);
    vd_set_status(d, ST_ACK);
    vd_set_status(d, ST_ACK | ST_DRIVER);
    uint32_t offered = vd_features(d, 0);
    int ok = vd_negotiate(d, VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS);
    if (!ok || !(offered & VIRTIO_NET_F_MAC)) {
        line_begin("nic", 0);
        puts_serial(ok ? " reason=no-mac-feature" : " reason=features-refused");
        put_transport(d);
        line_end();
        vd_set_status(d, 0);
        return 0;
    }
    line_begin("nic", 1);
    puts_serial(" mac=");
    for (uint32_t i = 0; i < 6; ++i) {
        if (i) putc_serial(':');
        put_hex(vd_config8(d, i), 2);
    }
    if (offered & VIRTIO_NET_F_STATUS) {
        /* Config bytes 6-7, little-endian; bit 0 = link up. */
        puts_serial((vd_config8(d, 6) & 1) ? " link=up" : " link=down");
    }
    put_transport(d);
    line_end();
    /* Leave the NIC quiet: no queues were set up, nothing should run. */
    vd_set_status(d, 0);
    return 1;
}

/* ---- power off ---------------------------------------------------------- */

#define MICROVM_GED_SLEEP_CTL 0xfea00200u

static void __attribute__((noreturn)) power_off(const struct devices* ds) {
    int tried = 0;
    if (ds->acpi_pm_base) {
        /* PM1a_CNT = base + 4; QEMU's DSDT declares _S5 as SLP_TYP 0. */
        outw((uint16_t)(ds->acpi_pm_base + 4), 1u << 13);
        tried = 1;
    } else if (!ds->pci_present && ds->acpi_ged) {
        /* microvm's hardware-reduced ACPI: GED sleep control, SLP_TYP 5 +
         * SLP_EN, byte access only. */
        *(volatile uint8_t*)(uintptr_t)MICROVM_GED_SLEEP_CTL = (5u << 2) | (1u << 5);
        tried = 1;
    }
    /* QEMU acts on the request from its main loop, a moment later. Kept
     * short: PAUSE exits to the hypervisor on some KVM flavours (~3 us each
     * under kvm_pvm). */
    if (tried)
        for (volatile int i = 0; i < 100000; ++i) cpu_relax();
    /* No ACPI (libvirt without <acpi/> passes -no-acpi: no PIIX4 PM at all):
     * ask the chipset for a reset, which -no-reboot / on_reboot=destroy turn
     * into the end of the VM. PIIX3 and ICH9 reset control at 0xcf9 first,
     * then the i8042 pulse. Both are device emulation in QEMU, unlike the
     * triple fault, which kvm_pvm cannot deliver (KVM internal error, VM
     * paused). */
    if (ds->pci_present) {
        outb(0xcf9, 0x02);
        outb(0xcf9, 0x06);
        for (volatile int i = 0; i < 100000; ++i) cpu_relax();
    }
    for (int i = 0; i < 100000 && (inb(0x64) & 0x02); ++i) cpu_relax();
    outb(0x64, 0xfe);
    for (volatile int i = 0; i < 100000; ++i) cpu_relax();
    triple_fault();
}

/* ACPI present at all? The PVH start_info names the RSDP; otherwise the
 * spec's legacy search area (BIOS read-only memory, 16-byte aligned). */
static int have_rsdp(uint32_t rsdp_paddr) {
    if (rsdp_paddr) return starts_with((const char*)(uintptr_t)rsdp_paddr, "RSD PTR ");
    for (uint32_t p = 0xe0000; p < 0x100000; p += 16)
        if (starts_with((const char*)(uintptr_t)p, "RSD PTR ")) return 1;
    return 0;
}

/* ---- main ----------------------------------------------------------------- */

#define HVM_START_MAGIC 0x336ec578u

void guest_main(uint32_t entry, uint32_t info) {
    serial_init();
    line_begin("boot", 1);
    puts_serial(entry == GUEST_ENTRY_PVH ? " entry=pvh" : " entry=multiboot");
    line_end();

    stage_cpu();

    const char* cmdline = 0;
    uint32_t rsdp = 0;
    if (entry == GUEST_ENTRY_PVH && info && mmio_read32(info) == HVM_START_MAGIC) {
        /* struct hvm_start_info: cmdline_paddr (u64) at 24, rsdp_paddr (u64) at 32. */
        uint32_t lo = mmio_read32(info + 24), hi = mmio_read32(info + 28);
        if (!hi && lo) cmdline = (const char*)(uintptr_t)lo;
        if (!mmio_read32(info + 36)) rsdp = mmio_read32(info + 32);
    } else if (entry == GUEST_ENTRY_MULTIBOOT && info && (mmio_read32(info) & (1u << 2))) {
        cmdline = (const char*)(uintptr_t)mmio_read32(info + 16);
    }

    static struct devices ds;
    memzero(&ds, sizeof ds);
    find_pci(&ds);
    ds.acpi_ged = !ds.pci_present && have_rsdp(rsdp);
    find_mmio_from_cmdline(&ds, cmdline);
    if (!ds.pci_present && (ds.blk.transport == VT_NONE || ds.net.transport == VT_NONE)) find_mmio_by_probe(&ds);

    int disk_ok = stage_disk(&ds);
    int nic_ok = stage_nic(&ds);
    if (disk_ok && nic_ok) {
        line_begin("done", 1);
    } else {
        line_begin("done", 0);
        puts_serial(disk_ok ? " failed=nic" : nic_ok ? " failed=disk" : " failed=disk,nic");
    }
    line_end();
    power_off(&ds);
}
