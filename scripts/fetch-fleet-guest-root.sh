#!/usr/bin/env bash
# fetch-fleet-guest-root.sh [CACHE_DIR]
#
# Builds (with mmdebstrap, from Debian's mirror) the root file system of the
# Ansible fleet test's guests (tests/ansible_fleet_test.cpp): a small Debian 12
# with openssh-server, python3 (what Ansible's own modules -- setup, copy,
# fetch -- need on a managed host) and python3-apt (ansible.builtin.apt, the
# role's .deb install), sudo, iproute2 and kmod, ifupdown with bridge-utils
# (eth0 is configured from /etc/network/interfaces, as on a Debian server,
# so the net.bridge fix has a real network configuration to edit), plus the
# guest kernel's KVM, virtio-net and bridge modules, packed as one
# uncompressed newc cpio the cloud kernel unpacks as its root (-initrd; no
# disk, no root mount).
# kvmready itself is NOT in it: the collection's role installs it; the
# libraries its package Recommends (libarchive13 for bundles, libxml2) are,
# as on a typical host (the guests have no package mirror).
#
# Its /init (below) is a tiny shell init: mounts, loads the modules named on
# the kernel command line (kvmready.modules=kvm_amd:nested=1,...), brings up
# eth0 for QEMU user networking with `ifup eth0` (its static stanza in
# /etc/network/interfaces: QEMU's user network has no DHCP we rely on), creates the user `ansible` (passwordless
# sudo; in group kvm only with kvmready.kvm_group=1) with the public key
# given as kvmready.key=<base64 of an ssh-ed25519 key> (per test run), and
# runs sshd in the foreground.
#
# Layout left behind:
#   CACHE/<kernel release>-v<N>/root.cpio     and .complete (written last),
#                                             release, version (N)
#   CACHE/current -> <kernel release>-v<N>
# Default CACHE is ${KVMREADY_CACHE:-/var/cache/kvmready}/fleet-guest; needs
# scripts/fetch-guest-kernel.sh's cache first. Idempotent; needs root.
set -euo pipefail

VERSION=5
CACHE=${1:-${KVMREADY_CACHE:-/var/cache/kvmready}/fleet-guest}
KERNEL=${KVMREADY_GUEST_KERNEL:-${KVMREADY_CACHE:-/var/cache/kvmready}/guest-kernel/current}

PROG=fetch-fleet-guest-root
# shellcheck source=scripts/cache-common.sh
. "$(dirname "$0")/cache-common.sh"

for tool in mmdebstrap cpio depmod; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (apt-get install mmdebstrap cpio kmod)"
done
[[ -f "$KERNEL/release" ]] || die "no guest kernel at $KERNEL (run scripts/fetch-guest-kernel.sh first)"
rel=$(cat "$KERNEL/release")
moddir="$KERNEL/lib/modules/$rel"

open_cache "$CACHE"

name="$rel-v$VERSION"
dest="$CACHE/$name"
if [[ ! -f "$dest/.complete" ]]; then
  tmp=$(mktemp -d "$CACHE/.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  root="$tmp/root"
  log "building the guest root with mmdebstrap (bookworm, minbase)"
  # No documentation, manuals or locales: the root lives in guest RAM, and
  # unpacking it is most of a boot under TCG. Full perl (pulled in by a
  # dependency; adduser and debconf need only perl-base) and the iconv
  # modules go too.
  mmdebstrap --variant=minbase --quiet \
    --include=openssh-server,python3,python3-apt,sudo,iproute2,kmod,adduser,libarchive13,libxml2,ifupdown,bridge-utils \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" groupadd --system kvm' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/cache/debconf/*-old' \
    --customize-hook='rm -rf "$1"/usr/lib/x86_64-linux-gnu/perl "$1"/usr/share/perl "$1"/usr/bin/perl5.*.* "$1"/usr/lib/x86_64-linux-gnu/libperl.so.* "$1"/usr/lib/x86_64-linux-gnu/gconv' \
    bookworm "$root" http://deb.debian.org/debian >&2 || die "mmdebstrap failed"

  # ifupdown's configuration, as Debian's installer writes it for a static
  # address; the net.bridge fix moves eth0's stanza to a bridge and back.
  cat > "$root/etc/network/interfaces" <<'EOF'
# The loopback network interface
auto lo
iface lo inet loopback

source /etc/network/interfaces.d/*

# QEMU user networking (scripts/fetch-fleet-guest-root.sh)
auto eth0
iface eth0 inet static
	address 10.0.2.15/24
	gateway 10.0.2.2
EOF

  # The guest kernel's modules the guests load: KVM, virtio-net and the
  # bridge (the net.bridge fix through Ansible), with
  # their dependencies (closure from modules.dep), decompressed.
  gmod="$root/usr/lib/modules/$rel"
  mkdir -p "$gmod"
  for f in modules.builtin modules.builtin.modinfo modules.order; do
    [[ -f "$moddir/$f" ]] && cp "$moddir/$f" "$gmod/"
  done
  want=" kvm kvm_amd kvm_intel virtio_net virtio_pci virtio_pci_legacy_dev virtio_pci_modern_dev bridge "
  while IFS= read -r line; do
    p=${line%%:*}; n=${p##*/}; n=${n%%.ko*}; n=${n//-/_}
    [[ "$want" == *" $n "* ]] || continue
    for m in $p ${line#*:}; do
      out="$gmod/${m%.xz}"; out=${out%.zst}
      [[ -f "$out" ]] && continue
      mkdir -p "$(dirname "$out")"
      case "$m" in
        *.ko) cp "$moddir/$m" "$out" ;;
        *.ko.xz) xz -dc "$moddir/$m" > "$out" ;;
        *.ko.zst) zstd -qdc "$moddir/$m" > "$out" ;;
        *) die "unsupported module file $m" ;;
      esac
    done
  done < "$moddir/modules.dep"
  depmod -b "$root" "$rel" || die "depmod failed"

  cat > "$root/init" <<'EOF'
#!/bin/sh
# Fleet test guest init (scripts/fetch-fleet-guest-root.sh). PID 1.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run/sshd /tmp && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run && mkdir -p /run/sshd
chmod 1777 /tmp
name=$(sed -n 's/.*kvmready.hostname=\([^ ]*\).*/\1/p' /proc/cmdline)
hostname "${name:-guest}"
# No DNS here (QEMU's user network is restricted): sudo and sshd resolve the
# host's own name from /etc/hosts, and nothing else.
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "${name:-guest}" > /etc/hosts
: > /etc/resolv.conf
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    kvmready.modules=*) mods=${arg#kvmready.modules=} ;;
    kvmready.key=*) key=${arg#kvmready.key=} ;;
    kvmready.kvm_group=1) kvm_group=1 ;;
  esac
done
echo "fleet-guest: init at $(cut -d' ' -f1 /proc/uptime) s"
modprobe virtio_pci
modprobe virtio_net
for m in $(echo "${mods:-}" | tr ',' ' '); do
  modprobe "${m%%:*}" $(echo "$m" | sed -n 's/^[^:]*://p' | tr ':' ' ') \
    && echo "fleet-guest: loaded $m" || echo "fleet-guest: could not load $m"
done
# udev is not running: /dev/kvm as Debian's udev rules make it.
[ -e /dev/kvm ] && chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
# ifupdown's state lives in /run/network (a tmpfs here, as under systemd).
mkdir -p /run/network
ifup lo
ifup eth0 || echo "fleet-guest: ifup eth0 failed"
useradd -m -s /bin/bash ansible
[ -n "${kvm_group:-}" ] && adduser ansible kvm >/dev/null
echo 'ansible ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/ansible
mkdir -p -m 0700 /home/ansible/.ssh
echo "ssh-ed25519 $key ansible" > /home/ansible/.ssh/authorized_keys
chown -R ansible:ansible /home/ansible/.ssh
echo "fleet-guest: sshd starting at $(cut -d' ' -f1 /proc/uptime) s"
exec /usr/sbin/sshd -D -e -o UseDNS=no -o PasswordAuthentication=no
EOF
  chmod 0755 "$root/init"
  log "packing root.cpio"
  mkdir "$tmp/out"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) \
    > "$tmp/out/root.cpio" || die "cpio failed"
  echo "$rel" > "$tmp/out/release"
  # What the tests check before booting it (tests/support/ssh_guest.cpp).
  echo "$VERSION" > "$tmp/out/version"
  touch "$tmp/out/.complete"
  rm -rf "$dest"
  mv "$tmp/out" "$dest"
  rm -rf "$tmp"
  trap - EXIT
fi
if [[ "$(readlink "$CACHE/current" 2>/dev/null || true)" != "$name" ]]; then
  ln -sfn "$name" "$CACHE/.current.new"
  mv -T "$CACHE/.current.new" "$CACHE/current"
fi
for old in "$CACHE"/*-v*; do
  [[ -d "$old" && "$(basename "$old")" != "$name" ]] || continue
  rm -rf "$old"
done
log "guest root ready: $CACHE/current/root.cpio ($(du -h "$CACHE/current/root.cpio" | cut -f1))"
