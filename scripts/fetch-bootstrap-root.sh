#!/usr/bin/env bash
# fetch-bootstrap-root.sh [CACHE_DIR]
#
# Builds, once, the throwaway Debian root in which the bootstrap test
# (tests/fix_packages_apt_test.cpp) runs `kvmready fix` for pkg.virt-stack
# with the real apt-get and dpkg, without touching this machine's packages
# and without the network: a minbase bookworm made with mmdebstrap, holding a
# local apt repository (file: URI, no signature: [trusted=yes]) with the
# test's small stack and every dependency the root lacks.
#
# Layout left behind:
#   CACHE/root.tar       the root (uncompressed tar, device nodes included:
#                        extract it as root); inside it:
#       /srv/kvmready-repo/       *.deb and Packages (dpkg-scanpackages)
#       /etc/apt/sources.list     deb [trusted=yes] file:/srv/kvmready-repo ./
#       /var/lib/apt/lists/       empty: the fix's plan runs apt-get update first
#   CACHE/stack          the test stack's packages, one line (for --packages)
#   CACHE/preinstalled   a dependency of the stack installed in the root
#                        beforehand (undo must leave it installed)
#   CACHE/.complete      stamp with the layout VERSION, written last
#
# Default CACHE is ${KVMREADY_CACHE:-/var/cache/kvmready}/bootstrap-root.
# Needs root (mmdebstrap --mode=root, chroot) and the network, once; a valid
# cache is left alone. Nothing outside CACHE is changed.
set -euo pipefail

VERSION=1
SUITE=bookworm
MIRROR=${KVMREADY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Small enough to install in seconds, with dependencies of its own (qemu-utils
# brings glib, libaio, liburing, libfuse3, libnuma).
STACK="qemu-utils bridge-utils"
PREINSTALLED=libnuma1
CACHE=${1:-${KVMREADY_CACHE:-/var/cache/kvmready}/bootstrap-root}

PROG=fetch-bootstrap-root
# shellcheck source=scripts/cache-common.sh
. "$(dirname "$0")/cache-common.sh"

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap --mode=root)"
for tool in mmdebstrap dpkg-scanpackages chroot tar; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (apt-get install mmdebstrap dpkg-dev)"
done

open_cache "$CACHE"
if [ "$(cat "$CACHE/.complete" 2>/dev/null)" = "$VERSION" ] && [ -f "$CACHE/root.tar" ]; then
  log "up to date: $CACHE/root.tar"
  exit 0
fi
rm -rf "$CACHE"/.tmp.* "$CACHE/.complete"
tmp=$(mktemp -d "$CACHE/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The hooks run after the root is made and before mmdebstrap's cleanup (which
# empties the apt lists and the package cache): download the stack into the
# repository inside the root, index it, and point apt at it alone.
repo=/srv/kvmready-repo
log "building a $SUITE minbase root with $PREINSTALLED (mmdebstrap, a few minutes)"
mmdebstrap --variant=minbase --mode=root --include="$PREINSTALLED" \
  --customize-hook="mkdir -p \"\$1$repo/partial\"" \
  --customize-hook="chroot \"\$1\" apt-get install -y -qq --download-only --no-install-recommends -o Dir::Cache::archives=$repo $STACK" \
  --customize-hook="rm -rf \"\$1$repo/partial\" \"\$1$repo/lock\"" \
  --customize-hook="cd \"\$1$repo\" && dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null" \
  --customize-hook="echo 'deb [trusted=yes] file:$repo ./' > \"\$1/etc/apt/sources.list\"" \
  --customize-hook="rm -f \"\$1\"/etc/apt/sources.list.d/*" \
  "$SUITE" "$tmp/root.tar" "$MIRROR" >"$tmp/mmdebstrap.log" 2>&1 || { tail -n 30 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap failed"; }

debs=$(tar -tf "$tmp/root.tar" | grep -c "^\./srv/kvmready-repo/.*\.deb$" || true)
[ "$debs" -gt 0 ] || die "the repository in the root holds no .deb"
echo "$STACK" >"$CACHE/stack"
echo "$PREINSTALLED" >"$CACHE/preinstalled"
mv "$tmp/root.tar" "$CACHE/root.tar"
echo "$VERSION" >"$CACHE/.complete"
log "ready: $CACHE/root.tar ($debs packages in the local repository)"
