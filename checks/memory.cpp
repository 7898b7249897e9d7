// memory.*: huge page pools, transparent hugepages, KSM and the memory left
// for guests. They decide how well guests run, rarely whether they run.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "checks/kernel_cmdline.hpp"
#include "util/text.hpp"

namespace kvmready::checks {

namespace {

using Json = nlohmann::ordered_json;

// "512 MiB", "1.5 GiB", "64 KiB": what an admin reads at a glance.
std::string human_kb(uint64_t kb) {
    if (kb >= 1024ull * 1024) {
        double g = static_cast<double>(kb) / (1024.0 * 1024.0);
        return std::fabs(g - std::round(g)) < 0.05 ? fmt::format("{:.0f} GiB", std::round(g)) : fmt::format("{:.1f} GiB", g);
    }
    if (kb >= 1024) return fmt::format("{} MiB", (kb + 512) / 1024);
    return fmt::format("{} KiB", kb);
}

// Page sizes as the kernel and mount options spell them: "2M", "1G".
std::string size_arg(uint64_t kb) {
    if (kb % (1024 * 1024) == 0) return fmt::format("{}G", kb / (1024 * 1024));
    if (kb % 1024 == 0) return fmt::format("{}M", kb / 1024);
    return fmt::format("{}K", kb);
}

// "2M", "1G", "2048K", "2097152" -> kB.
std::optional<uint64_t> parse_size_kb(std::string s) {
    if (s.empty()) return std::nullopt;
    uint64_t mult_bytes = 1;
    char suffix = static_cast<char>(std::toupper(static_cast<unsigned char>(s.back())));
    if (suffix == 'K' || suffix == 'M' || suffix == 'G') {
        mult_bytes = suffix == 'K' ? 1024ull : suffix == 'M' ? 1024ull * 1024 : 1024ull * 1024 * 1024;
        s.pop_back();
    }
    if (s.empty() || !std::all_of(s.begin(), s.end(), ::isdigit)) return std::nullopt;
    return std::stoull(s) * mult_bytes / 1024;
}

// "always [madvise] never" -> "madvise".
std::string bracketed(const std::string& s) {
    auto a = s.find('['), b = s.find(']');
    if (a == std::string::npos || b == std::string::npos || b < a) return "";
    return s.substr(a + 1, b - a - 1);
}

// hugepages= counts the kernel was asked for at boot, per page size (kB).
std::map<uint64_t, uint64_t> requested_hugepages(const Facts& f) {
    std::map<uint64_t, uint64_t> req;
    const auto args = kernel_args(f.kernel.cmdline);
    std::optional<uint64_t> dflt = f.system.memory.hugepagesize_kb;
    if (auto d = arg_value(args, "default_hugepagesz")) dflt = parse_size_kb(*d);
    std::optional<uint64_t> cur;
    for (const auto& a : args) {
        if (a.key == "hugepagesz") cur = parse_size_kb(a.value);
        if (a.key != "hugepages") continue;
        uint64_t n = 0;
        // hugepages=N, or per NUMA node: hugepages=0:N,1:M
        if (a.value.find(':') != std::string::npos) {
            size_t pos = 0;
            while ((pos = a.value.find(':', pos)) != std::string::npos) {
                ++pos;
                n += std::strtoull(a.value.c_str() + pos, nullptr, 10);
            }
        } else {
            n = std::strtoull(a.value.c_str(), nullptr, 10);
        }
        if (auto size = cur ? cur : dflt) req[*size] = n;
    }
    return req;
}

// Page sizes (kB) some hugetlbfs mount serves, with its mount point.
std::map<uint64_t, std::string> hugetlbfs_sizes(const Facts& f) {
    std::map<uint64_t, std::string> out;
    for (const auto& m : f.system.mounts) {
        if (m.fstype != "hugetlbfs") continue;
        std::optional<uint64_t> size = f.system.memory.hugepagesize_kb;
        for (const auto& opt : util::words([&] {
                 std::string s = m.super_options;
                 std::replace(s.begin(), s.end(), ',', ' ');
                 return s;
             }()))
            if (opt.rfind("pagesize=", 0) == 0) size = parse_size_kb(opt.substr(9));
        if (size) out.emplace(*size, m.mountpoint);
    }
    return out;
}

void hugepages(const Facts& f, const Results&, Finding& out) {
    const auto& m = f.system.memory;
    auto& ev = out.evidence;
    if (!m.hugepages_dir && !m.hugepagesize_kb) {
        if (!m.meminfo_read) {
            set(out, Status::Unknown, "cannot tell: neither /proc/meminfo nor /sys/kernel/mm/hugepages could be read");
            remedy(out, "Run kvmready on the host itself.", {"grep -i huge /proc/meminfo"}, "", "manual", false);
            return;
        }
        set(out, Status::Warn, "this kernel has no huge page support (no Hugepagesize in /proc/meminfo, no /sys/kernel/mm/hugepages)");
        remedy(out, "Guests backed by huge pages (<memoryBacking><hugepages/>) need a kernel with CONFIG_HUGETLBFS, such as Debian's linux-image-amd64.",
               {package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})}, "", "manual", true);
        return;
    }
    if (m.hugepagesize_kb) ev["default_size"] = human_kb(*m.hugepagesize_kb);
    Json pools = Json::array();
    std::vector<std::string> sizes, reserved;
    for (const auto& p : m.pools) {
        Json j = {{"size", human_kb(p.size_kb)}, {"path", fmt::format("/sys/kernel/mm/hugepages/hugepages-{}kB", p.size_kb)}};
        j["nr"] = p.nr ? Json(*p.nr) : Json();
        j["free"] = p.free ? Json(*p.free) : Json();
        j["reserved"] = p.resv ? Json(*p.resv) : Json();
        j["surplus"] = p.surplus ? Json(*p.surplus) : Json();
        pools.push_back(j);
        sizes.push_back(human_kb(p.size_kb));
        if (p.nr.value_or(0) > 0)
            reserved.push_back(fmt::format("{} × {} ({} free)", *p.nr, human_kb(p.size_kb), p.free.value_or(0)));
    }
    ev["pools"] = pools;
    const auto mounts = hugetlbfs_sizes(f);
    Json mj = Json::object();
    for (const auto& [size, mp] : mounts) mj[mp] = human_kb(size);
    ev["hugetlbfs_mounts"] = mj;

    std::vector<std::string> problems;
    std::vector<std::string> commands;
    std::string text;
    const auto req = requested_hugepages(f);
    if (!req.empty()) {
        Json rj = Json::object();
        for (const auto& [size, n] : req) rj[human_kb(size)] = n;
        ev["cmdline_requested"] = rj;
    }
    for (const auto& [size, n] : req) {
        auto it = std::find_if(m.pools.begin(), m.pools.end(), [&](const auto& p) { return p.size_kb == size; });
        if (it == m.pools.end()) {
            problems.push_back(fmt::format("the kernel command line asks for {} pages of {}, a size this CPU or kernel does not offer", n, human_kb(size)));
            continue;
        }
        if (it->nr && *it->nr < n) {
            problems.push_back(fmt::format("the kernel command line asks for {} × {} pages but only {} could be reserved at boot "
                                           "(not enough free memory)",
                                           n, human_kb(size), *it->nr));
            commands.push_back(fmt::format("sysctl -w vm.compact_memory=1 && echo {} > /sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages", n, size));
            text = "At boot the kernel found too little contiguous free memory for the pages asked for: ask for fewer (or add RAM), "
                   "or try to reserve the rest now after compacting memory; guests configured for more huge pages than exist fail "
                   "to start.";
        }
    }
    for (const auto& p : m.pools) {
        if (p.nr.value_or(0) == 0 || mounts.count(p.size_kb)) continue;
        problems.push_back(fmt::format("{} × {} pages are reserved but no hugetlbfs of that size is mounted, so QEMU/libvirt "
                                       "cannot use them",
                                       *p.nr, human_kb(p.size_kb)));
        const bool dflt = m.hugepagesize_kb && *m.hugepagesize_kb == p.size_kb;
        const std::string mp = dflt ? "/dev/hugepages" : "/dev/hugepages" + size_arg(p.size_kb);
        commands.push_back(dflt ? fmt::format("mkdir -p {0} && mount -t hugetlbfs hugetlbfs {0}", mp)
                                : fmt::format("mkdir -p {0} && mount -t hugetlbfs -o pagesize={1} hugetlbfs {0}", mp, size_arg(p.size_kb)));
        if (!text.empty()) text += " ";
        text += "Mount hugetlbfs for each page size in use (systemd mounts /dev/hugepages at boot; add an fstab line for other "
                "sizes); libvirt finds the mounts itself.";
    }
    if (!problems.empty()) {
        std::string msg = problems.front();
        for (size_t i = 1; i < problems.size(); ++i) msg += "; " + problems[i];
        set(out, Status::Warn, msg);
        remedy(out, text.empty() ? "Reserve only page sizes this CPU offers (see /sys/kernel/mm/hugepages)." : text, commands,
               ids::fix::memory_hugepages, "confirm", true);
        return;
    }
    if (reserved.empty()) {
        set(out, Status::Pass,
            fmt::format("no huge pages reserved (sizes offered: {}); guests use normal pages and transparent hugepages, which "
                        "suits most hosts",
                        sizes.empty() ? std::string("none listed") : fmt::format("{}", fmt::join(sizes, ", "))));
        return;
    }
    std::vector<std::string> mps;
    for (const auto& [size, mp] : mounts) mps.push_back(mp);
    set(out, Status::Pass,
        fmt::format("huge pages reserved for guests: {}; hugetlbfs mounted at {}", fmt::join(reserved, ", "), fmt::join(mps, ", ")));
}

void thp(const Facts& f, const Results&, Finding& out) {
    const auto& m = f.system.memory;
    auto& ev = out.evidence;
    if (!m.thp_enabled) {
        if (!m.meminfo_read) {
            set(out, Status::Unknown, "/sys/kernel/mm/transparent_hugepage/enabled could not be read");
            remedy(out, "Run kvmready on the host itself.", {"cat /sys/kernel/mm/transparent_hugepage/enabled"}, "", "manual", false);
            return;
        }
        set(out, Status::Warn, "this kernel has no transparent hugepages (no /sys/kernel/mm/transparent_hugepage): guest RAM is mapped with 4 KiB pages");
        remedy(out, "Use a kernel with CONFIG_TRANSPARENT_HUGEPAGE (Debian's linux-image-amd64), or reserve hugetlbfs pages for guests.",
               {package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})}, "", "manual", true);
        return;
    }
    const std::string mode = bracketed(*m.thp_enabled);
    const std::string defrag = m.thp_defrag ? bracketed(*m.thp_defrag) : "";
    ev["enabled"] = *m.thp_enabled;
    ev["mode"] = mode;
    if (m.thp_defrag) ev["defrag"] = *m.thp_defrag;
    if (mode == "always" || mode == "madvise") {
        set(out, Status::Pass,
            fmt::format("transparent hugepages: {} (QEMU madvise()s guest RAM, so it gets huge pages){}", mode,
                        defrag.empty() ? "" : fmt::format(", defrag: {}", defrag)));
        return;
    }
    if (mode == "never") {
        set(out, Status::Warn,
            "transparent hugepages are off (never): guest RAM is mapped with 4 KiB pages, which costs TLB misses in every guest "
            "unless it is backed by hugetlbfs pages");
        // hugepage_init() leaves THP off on machines under 512 MiB unless asked.
        const bool asked = arg_value(kernel_args(f.kernel.cmdline), "transparent_hugepage").has_value();
        if (m.mem_total_kb && *m.mem_total_kb < 512 * 1024 && !asked) {
            ev["reason"] = "the kernel disables THP by default on machines with less than 512 MiB of RAM";
            out.message += "; the kernel chose this itself because the machine has less than 512 MiB of RAM";
        }
        CmdlinePlan p = add_kernel_arg(f.system.boot, "transparent_hugepage=madvise");
        std::vector<std::string> cmds = {"echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"};
        cmds.insert(cmds.end(), p.commands.begin(), p.commands.end());
        remedy(out,
               "madvise gives huge pages only to programs that ask, as QEMU does for guest RAM: set it now, and on the kernel "
               "command line (transparent_hugepage=madvise) to keep it after a reboot.",
               cmds, "", "manual", true);
        return;
    }
    set(out, Status::Unknown, fmt::format("cannot read the transparent hugepage mode from \"{}\"", *m.thp_enabled));
    remedy(out, "Read it by hand.", {"cat /sys/kernel/mm/transparent_hugepage/enabled"}, "", "manual", false);
}

void ksm(const Facts& f, const Results&, Finding& out) {
    const auto& m = f.system.memory;
    auto& ev = out.evidence;
    if (!m.ksm_run) {
        if (!m.meminfo_read) {
            set(out, Status::Unknown, "/sys/kernel/mm/ksm/run could not be read");
            remedy(out, "Run kvmready on the host itself.", {"cat /sys/kernel/mm/ksm/run"}, "", "manual", false);
            return;
        }
        set(out, Status::Skip, "this kernel has no KSM (no /sys/kernel/mm/ksm): guests' identical pages are never merged");
        return;
    }
    ev["run"] = *m.ksm_run;
    if (m.ksm_pages_shared) ev["pages_shared"] = *m.ksm_pages_shared;
    if (m.ksm_pages_sharing) ev["pages_sharing"] = *m.ksm_pages_sharing;
    if (m.ksm_full_scans) ev["full_scans"] = *m.ksm_full_scans;
    if (*m.ksm_run == "1") {
        const uint64_t saved_kb = m.ksm_pages_sharing.value_or(0) * 4;
        ev["saved"] = human_kb(saved_kb);
        if (m.ksm_pages_sharing.value_or(0) == 0) {
            set(out, Status::Pass,
                fmt::format("KSM is running (run=1) but has merged nothing yet ({} full scans): no running guest has identical "
                            "pages to share",
                            m.ksm_full_scans.value_or(0)));
            return;
        }
        set(out, Status::Pass,
            fmt::format("KSM is merging identical guest pages (run=1): {} pages shared, saving about {}", m.ksm_pages_sharing.value_or(0),
                        human_kb(saved_kb)));
        return;
    }
    if (*m.ksm_run == "0") {
        set(out, Status::Pass,
            "KSM is off (run=0): identical guest pages are not merged, which costs memory on dense hosts but no CPU and no "
            "cross-guest page-sharing side channel");
        return;
    }
    if (*m.ksm_run == "2") {
        set(out, Status::Pass, "KSM is stopped and unmerging the pages it shared (run=2)");
        return;
    }
    set(out, Status::Unknown, fmt::format("unexpected value \"{}\" in /sys/kernel/mm/ksm/run", *m.ksm_run));
    remedy(out, "Read it by hand.", {"cat /sys/kernel/mm/ksm/run"}, "", "manual", false);
}

constexpr uint64_t kLowMemoryKb = 1024 * 1024;  // 1 GiB: one small guest plus QEMU's own overhead

void available(const Facts& f, const Results&, Finding& out) {
    const auto& m = f.system.memory;
    auto& ev = out.evidence;
    if (!m.meminfo_read || !m.mem_total_kb) {
        set(out, Status::Unknown, "/proc/meminfo could not be read, so free memory is unknown");
        remedy(out, "Run kvmready on the host itself.", {"free -h"}, "", "manual", false);
        return;
    }
    // MemAvailable (Linux 3.14+) is the kernel's own estimate; MemFree alone
    // undercounts reclaimable cache, so say which one was used.
    const bool estimated = !m.mem_available_kb;
    const uint64_t avail = m.mem_available_kb.value_or(m.mem_free_kb.value_or(0));
    uint64_t huge_free = 0, huge_total = 0;
    for (const auto& p : m.pools) {
        huge_free += p.free.value_or(0) * p.size_kb;
        huge_total += p.nr.value_or(0) * p.size_kb;
    }
    ev["mem_total"] = human_kb(*m.mem_total_kb);
    ev["mem_available"] = human_kb(avail);
    ev["basis"] = estimated ? "MemFree (no MemAvailable in /proc/meminfo)" : "MemAvailable";
    ev["mem_available_kb"] = avail;
    if (huge_total) {
        ev["hugepages_total"] = human_kb(huge_total);
        ev["hugepages_free"] = human_kb(huge_free);
    }
    ev["threshold"] = human_kb(kLowMemoryKb);
    const std::string huge_note =
        huge_free ? fmt::format("; another {} sits in free huge pages that only hugepage-backed guests can use", human_kb(huge_free)) : "";
    if (avail < kLowMemoryKb) {
        set(out, Status::Warn,
            fmt::format("only {} of {} RAM is available for guests{}, less than {}{}", human_kb(avail), human_kb(*m.mem_total_kb),
                        estimated ? " (MemFree)" : "", human_kb(kLowMemoryKb), huge_note));
        std::vector<std::string> cmds = {"ps -eo pid,rss,comm --sort=-rss | head"};
        std::string text = "A guest needs its whole RAM size plus QEMU's overhead (~100-200 MiB): stop what holds memory or add RAM.";
        if (huge_free) {
            text += " Free huge pages can be returned to the system by shrinking their pool.";
            for (const auto& p : m.pools)
                if (p.free.value_or(0) > 0)
                    cmds.push_back(fmt::format("echo {} > /sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages",
                                               p.nr.value_or(0) - p.free.value_or(0), p.size_kb));
        }
        remedy(out, text, cmds, "", "manual", true);
        return;
    }
    set(out, Status::Pass,
        fmt::format("{} of {} RAM is available for guests{}{}", human_kb(avail), human_kb(*m.mem_total_kb), estimated ? " (MemFree)" : "",
                    huge_note));
}

// vm.overcommit_memory=2 (strict accounting) counts every guest's whole RAM
// against CommitLimit when QEMU maps it (MAP_NORESERVE is ignored in that
// mode), so a guest larger than the room left fails to start with "cannot set
// up guest memory ... Cannot allocate memory", however much RAM is free.
void overcommit(const Facts& f, const Results&, Finding& out) {
    const auto& m = f.system.memory;
    auto& ev = out.evidence;
    if (!m.overcommit_memory) {
        set(out, Status::Unknown, "/proc/sys/vm/overcommit_memory could not be read, so the memory accounting mode is unknown");
        remedy(out, "Run kvmready on the host itself.", {"sysctl vm.overcommit_memory"}, "", "manual", false);
        return;
    }
    const std::string& mode = *m.overcommit_memory;
    ev["overcommit_memory"] = mode;
    if (mode == "0" || mode == "1") {
        set(out, Status::Pass,
            mode == "0" ? "heuristic overcommit (vm.overcommit_memory=0): guest RAM is committed as guests use it"
                        : "overcommit always allowed (vm.overcommit_memory=1): guest RAM is committed as guests use it");
        return;
    }
    if (mode != "2") {
        set(out, Status::Unknown, fmt::format("unexpected value \"{}\" in /proc/sys/vm/overcommit_memory", mode));
        remedy(out, "Read it by hand.", {"sysctl vm.overcommit_memory"}, "", "manual", false);
        return;
    }
    const std::vector<std::string> cmds = {"sysctl -w vm.overcommit_memory=0",
                                           "echo vm.overcommit_memory=0 > /etc/sysctl.d/90-overcommit.conf"};
    const std::string text =
        "Strict accounting counts each guest's whole RAM when it starts: go back to the kernel's default heuristic mode "
        "(and keep it across reboots), or raise vm.overcommit_ratio / add swap to widen the limit.";
    if (m.overcommit_kbytes.value_or(0) > 0) ev["overcommit_kbytes"] = *m.overcommit_kbytes;
    else if (m.overcommit_ratio) ev["overcommit_ratio"] = *m.overcommit_ratio;
    if (!m.commit_limit_kb || !m.committed_as_kb) {
        set(out, Status::Warn,
            "strict overcommit (vm.overcommit_memory=2): every guest's whole RAM counts against the commit limit, and "
            "/proc/meminfo did not say how much of it is left");
        remedy(out, text, cmds, "", "manual", true);
        return;
    }
    const uint64_t room = *m.commit_limit_kb > *m.committed_as_kb ? *m.commit_limit_kb - *m.committed_as_kb : 0;
    ev["commit_limit"] = human_kb(*m.commit_limit_kb);
    ev["committed"] = human_kb(*m.committed_as_kb);
    ev["room_kb"] = room;
    ev["threshold"] = human_kb(kLowMemoryKb);
    if (room < kLowMemoryKb) {
        set(out, Status::Warn,
            fmt::format("strict overcommit (vm.overcommit_memory=2): only {} of the {} commit limit is left ({} committed), so "
                        "a guest with more RAM than that cannot start (QEMU: \"cannot set up guest memory\")",
                        human_kb(room), human_kb(*m.commit_limit_kb), human_kb(*m.committed_as_kb)));
        remedy(out, text, cmds, "", "manual", true);
        return;
    }
    set(out, Status::Pass,
        fmt::format("strict overcommit (vm.overcommit_memory=2): {} of the {} commit limit is left; guests with more RAM "
                    "than that will not start",
                    human_kb(room), human_kb(*m.commit_limit_kb)));
}

}  // namespace

void register_memory(std::vector<CheckSpec>& r) {
    r.push_back({ids::memory_hugepages, "Huge page pools", Level::Optional, {},
                 "/sys/kernel/mm/hugepages/hugepages-*/{nr,free,resv,surplus}_hugepages, Hugepagesize in /proc/meminfo, "
                 "hugetlbfs mounts in /proc/self/mountinfo, hugepagesz=/hugepages=/default_hugepagesz= in /proc/cmdline.",
                 "Guests backed by persistent huge pages (libvirt <memoryBacking><hugepages/>) get fewer TLB misses and memory "
                 "that cannot be swapped or fragmented; QEMU uses them through a hugetlbfs mount of the same page size. Most "
                 "hosts need none (transparent hugepages cover the common case).",
                 "Reserve pages with vm.nr_hugepages (sysctl) or on the kernel command line (hugepagesz=1G hugepages=N for 1 GiB "
                 "pages) and mount hugetlbfs for each size.",
                 hugepages});
    r.push_back({ids::memory_thp, "Transparent hugepages", Level::Optional, {},
                 "/sys/kernel/mm/transparent_hugepage/enabled and defrag (the mode in brackets is the selected one).",
                 "QEMU marks guest RAM with madvise(MADV_HUGEPAGE); with THP at always or madvise guests get 2 MiB pages without "
                 "any configuration, with never every guest runs on 4 KiB pages.",
                 "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled; transparent_hugepage=madvise on the kernel command "
                 "line to keep it.",
                 thp});
    r.push_back({ids::memory_ksm, "Kernel same-page merging", Level::Optional, {},
                 "/sys/kernel/mm/ksm/run, pages_shared, pages_sharing, full_scans.",
                 "KSM merges identical pages across guests (QEMU marks guest RAM mergeable), which fits more similar guests in "
                 "RAM at some CPU cost; merged pages are a known cross-guest side channel, so it is off by default on many "
                 "distributions. Informational.",
                 "echo 1 > /sys/kernel/mm/ksm/run to start merging (ksmtuned can manage it), echo 2 to stop and unmerge.",
                 ksm});
    r.push_back({ids::memory_available, "Memory available for guests", Level::Recommended, {},
                 "MemTotal, MemAvailable (MemFree on kernels without it) from /proc/meminfo, and free huge pages.",
                 "A guest needs its whole RAM size plus QEMU's overhead; with under 1 GiB available even a small guest fails to "
                 "start or pushes the host into swapping or the OOM killer. Memory in huge page pools is not available to guests "
                 "that do not use huge pages.",
                 "Stop what uses the memory, shrink unused huge page pools, or add RAM.",
                 available});
    r.push_back({ids::memory_overcommit, "Memory accounting lets guests start", Level::Recommended, {},
                 "/proc/sys/vm/overcommit_memory (and overcommit_ratio, overcommit_kbytes in strict mode), CommitLimit and "
                 "Committed_AS from /proc/meminfo.",
                 "With strict accounting (vm.overcommit_memory=2) the kernel counts a guest's whole RAM when QEMU maps it, so "
                 "a guest larger than the room left under CommitLimit fails to start with \"Cannot allocate memory\" however "
                 "much RAM is free; the default heuristic mode commits guest RAM as it is used.",
                 "sysctl -w vm.overcommit_memory=0 and a file in /etc/sysctl.d to keep it; or raise vm.overcommit_ratio or add swap.",
                 overcommit});
}

}  // namespace kvmready::checks
