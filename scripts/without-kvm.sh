#!/usr/bin/env bash
# Run a command as if this machine had KVM built in but no KVM device
# registered (the PVM-guest machines where kvm_pvm declines to bind):
#   scripts/without-kvm.sh ctest --output-on-failure -j2
#   scripts/without-kvm.sh build/kvmready check
# In a private mount namespace (nothing outside it changes), it hides what
# registration creates: the /dev/kvm node, the "232 kvm" line of /proc/misc,
# /sys/class/misc/kvm and /sys/dev/char/10:232. Everything the command starts
# (libvirtd, QEMU) sees the same, so libvirt offers no kvm domain type and
# QEMU -accel kvm fails, as on such a machine. The kernel log and
# /sys/module still tell the truth about this machine.
# Needs root (mount namespaces). On a machine without /dev/kvm it changes
# nothing that matters and simply runs the command.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/without-kvm.sh COMMAND [ARGS...]" >&2; exit 64; }
[ "$(id -u)" -eq 0 ] || { echo "without-kvm.sh: needs root (mount namespaces)" >&2; exit 77; }

if [ -z "${KVMREADY_WITHOUT_KVM_WORK:-}" ]; then
    # Outside: make the scratch directory, run the rest in a new mount
    # namespace, and remove the (then empty) directory afterwards. Never
    # rm -r it: inside the namespace it holds bind mounts of the real /dev.
    work=$(mktemp -d /tmp/kvmready-without-kvm.XXXXXX)
    rc=0
    KVMREADY_WITHOUT_KVM_WORK=$work unshare -m --propagation private "$0" "$@" || rc=$?
    rmdir "$work" 2>/dev/null || true
    exit $rc
fi
work=$KVMREADY_WITHOUT_KVM_WORK
unset KVMREADY_WITHOUT_KVM_WORK
# Scratch space that exists only in this namespace and vanishes with it.
mount -t tmpfs -o mode=0700 tmpfs "$work"

# A directory of symlinks (sysfs class/dev directories) without one entry,
# mounted over the original. The links are relative, so they still resolve.
hide_link() {
    local dir=$1 name=$2 copy
    [ -e "$dir/$name" ] || [ -L "$dir/$name" ] || return 0
    copy="$work/$(echo "$dir" | tr / _)"
    mkdir -p "$copy"
    cp -P "$dir"/* "$copy"/ 2>/dev/null || true
    rm -f "$copy/$name"
    mount --bind "$copy" "$dir"
}

if [ -e /dev/kvm ]; then
    # /dev is devtmpfs, one instance for the whole machine: a node cannot be
    # removed from it for this namespace alone. Put a tmpfs in its place that
    # holds every entry of the real /dev (bind-mounted) except kvm.
    mkdir "$work/dev"
    mount --bind /dev "$work/dev"
    mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
    for e in "$work"/dev/* "$work"/dev/.[!.]*; do
        [ -e "$e" ] || [ -L "$e" ] || continue
        name=${e##*/}
        [ "$name" = kvm ] && continue
        if [ -L "$e" ]; then
            cp -P "$e" "/dev/$name"
        elif [ -d "$e" ]; then
            mkdir "/dev/$name"
            mount --rbind "$e" "/dev/$name"
        else
            : >"/dev/$name"
            mount --bind "$e" "/dev/$name"
        fi
    done
fi

if grep -q '^ *232 kvm$' /proc/misc 2>/dev/null; then
    grep -v '^ *232 kvm$' /proc/misc >"$work/misc"
    mount --bind "$work/misc" /proc/misc
fi
hide_link /sys/class/misc kvm
hide_link /sys/dev/char 10:232

"$@"
