#!/usr/bin/env bash
# fetch-guest-kernel.sh [CACHE_DIR]
#
# Downloads (never installs) the Debian cloud kernel behind the
# linux-image-cloud-amd64 metapackage and unpacks it into a cache, for the
# guest-kernel tests (tests/guest_kernel_test.cpp and the others built on
# tests/support/guest_vm.hpp), which boot it under QEMU TCG and run kvmready
# inside it.
#
# Layout left behind:
#   CACHE/<package>_<version>/          dpkg-deb -x of the .deb
#       boot/vmlinuz-<release>
#       lib/modules/<release>/          with a modules.dep (generated: the
#                                       .deb does not ship one, postinst does)
#       vmlinuz -> boot/vmlinuz-<release>
#       release                         the kernel release, one line
#       .complete                       stamp written last
#   CACHE/current -> <package>_<version>
#
# So CACHE/current/vmlinuz and CACHE/current/lib/modules/$(cat
# CACHE/current/release) are stable paths.
#
# Default CACHE is ${KVMREADY_CACHE:-/var/cache/kvmready}/guest-kernel.
# KVMREADY_GUEST_KERNEL_META overrides the metapackage (e.g. linux-image-amd64).
# Idempotent: when the resolved version is already unpacked this only checks
# the symlink. Nothing outside CACHE is changed (no /boot, no dpkg state); the
# only other side effect is `apt-get update` when apt does not know the
# metapackage at all.
set -euo pipefail

META=${KVMREADY_GUEST_KERNEL_META:-linux-image-cloud-amd64}
CACHE=${1:-${KVMREADY_CACHE:-/var/cache/kvmready}/guest-kernel}

PROG=fetch-guest-kernel
# shellcheck source=scripts/cache-common.sh
. "$(dirname "$0")/cache-common.sh"

for tool in apt-cache apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: this script needs a Debian-based host"
done

open_cache "$CACHE"

# Is the current link already valid? Used as a fallback when apt cannot
# resolve anything (offline, no lists).
current_ok() {
  [[ -L "$CACHE/current" && -f "$CACHE/current/.complete" && -e "$CACHE/current/vmlinuz" ]]
}

# The candidate version of the metapackage depends on exactly one real image
# package and version: "Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)".
# One apt-cache call gives both (apt-cache is the slow part of a no-op run).
resolve() {
  apt-cache show --no-all-versions "$META" 2>/dev/null | awk '
    /^Depends:/ {
      sub(/^Depends:[ \t]*/, "")
      n = split($0, alts, /[,|]/)
      for (i = 1; i <= n; i++) {
        if (match(alts[i], /linux-image-[^ (]+/)) {
          name = substr(alts[i], RSTART, RLENGTH)
          ver = ""
          if (match(alts[i], /\(= *[^)]+\)/)) { ver = substr(alts[i], RSTART, RLENGTH); gsub(/[(=) ]/, "", ver) }
          print name, ver
          exit
        }
      }
    }'
}

read -r pkg ver < <(resolve || true) || true
if [[ -z "${pkg:-}" ]]; then
  log "apt does not know $META yet; running apt-get update"
  if ! apt-get update >&2; then
    if current_ok; then
      log "warning: apt-get update failed; keeping $(readlink "$CACHE/current")"
      exit 0
    fi
    die "apt-get update failed and no kernel is cached in $CACHE"
  fi
  read -r pkg ver < <(resolve || true) || true
fi
if [[ -z "${pkg:-}" ]]; then
  if current_ok; then
    log "warning: cannot resolve $META; keeping $(readlink "$CACHE/current")"
    exit 0
  fi
  die "cannot resolve $META to a linux-image package (is this Debian amd64 with main enabled?)"
fi
if [[ -z "${ver:-}" ]]; then
  ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }')
fi
[[ -n "$ver" && "$ver" != "(none)" ]] || die "apt has no candidate version for $pkg"

name="${pkg}_${ver}"
dest="$CACHE/$name"

if [[ ! -f "$dest/.complete" ]]; then
  tmp=$(mktemp -d "$CACHE/.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "downloading $pkg $ver"
  # apt-get download drops privileges to _apt when it can; a private,
  # world-writable-for-the-duration directory avoids the "unsandboxed" warning.
  chmod 0777 "$tmp"
  (cd "$tmp" && apt-get download -q "$pkg=$ver" >&2) \
    || die "apt-get download $pkg=$ver failed"
  deb=$(find "$tmp" -maxdepth 1 -name '*.deb' -print -quit)
  [[ -n "$deb" ]] || die "apt-get download produced no .deb"
  log "unpacking $(basename "$deb")"
  mkdir "$tmp/root"
  dpkg-deb -x "$deb" "$tmp/root" || die "dpkg-deb -x failed"

  # Debian ships modules under /lib/modules (older) or /usr/lib/modules
  # (merged /usr); normalise to lib/modules.
  if [[ ! -d "$tmp/root/lib/modules" && -d "$tmp/root/usr/lib/modules" ]]; then
    mkdir -p "$tmp/root/lib"
    ln -s ../usr/lib/modules "$tmp/root/lib/modules"
  fi
  mapfile -t rels < <(find "$tmp/root/lib/modules/" -mindepth 1 -maxdepth 1 -type d -printf '%f\n')
  [[ ${#rels[@]} -eq 1 ]] || die "expected one kernel release in the package, found: ${rels[*]:-none}"
  rel=${rels[0]}
  kimg="$tmp/root/boot/vmlinuz-$rel"
  [[ -f "$kimg" ]] || die "package has no boot/vmlinuz-$rel"
  moddir="$tmp/root/lib/modules/$rel"

  # The .deb carries no modules.dep (its postinst runs depmod). Generate it:
  # with depmod when the host has kmod, else from each module's own
  # .modinfo "depends=" list (what modpost derived from the same symbols).
  if [[ ! -s "$moddir/modules.dep" ]]; then
    if command -v depmod >/dev/null 2>&1 && depmod -b "$tmp/root" "$rel" 2>/dev/null \
        && [[ -s "$moddir/modules.dep" ]]; then
      log "generated modules.dep with depmod"
    else
      log "generating modules.dep from module metadata"
      command -v perl >/dev/null 2>&1 || die "need depmod (kmod) or perl to build modules.dep"
      (cd "$moddir" && find kernel -type f \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) \
          | LC_ALL=C sort | perl -e '
        use strict; use warnings;
        my (%path, %deps);
        sub modname { my $b = $_[0]; $b =~ s{.*/}{}; $b =~ s{\.ko(\.(xz|zst|gz))?$}{}; $b =~ tr/-/_/; return $b; }
        while (my $f = <STDIN>) {
          chomp $f;
          my $data;
          if ($f =~ /\.ko$/) {
            open(my $fh, "<:raw", $f) or die "$f: $!"; local $/; $data = <$fh>; close $fh;
          } else {
            my @cmd = $f =~ /\.xz$/ ? ("xz", "-dc", $f) : $f =~ /\.zst$/ ? ("zstd", "-qdc", $f) : ("gzip", "-dc", $f);
            open(my $fh, "-|", @cmd) or die "@cmd: $!"; binmode $fh; local $/; $data = <$fh>; close $fh or die "@cmd failed";
          }
          my $n = modname($f);
          $path{$n} = $f;
          my @d;
          while ($data =~ /\0depends=([^\0]*)\0/g) { push @d, grep { length } split /,/, $1; }
          $deps{$n} = [ map { tr/-/_/r } @d ];
        }
        # Full transitive closure, in depmod order: a module before what it
        # depends on (loaders read the list right to left).
        for my $n (sort { $path{$a} cmp $path{$b} } keys %path) {
          my (@out, %seen);
          my $visit; $visit = sub {
            for my $d (@{ $deps{$_[0]} }) {
              next if $seen{$d}++;
              die "unknown dependency $d of $_[0]\n" unless exists $path{$d};
              $visit->($d);
              unshift @out, $path{$d};
            }
          };
          $visit->($n);
          print "$path{$n}:", (map { " $_" } @out), "\n";
        }
      ' > "$moddir/modules.dep.tmp") || die "could not generate modules.dep"
      mv "$moddir/modules.dep.tmp" "$moddir/modules.dep"
    fi
  fi

  ln -s "boot/vmlinuz-$rel" "$tmp/root/vmlinuz"
  echo "$rel" > "$tmp/root/release"
  echo "$pkg $ver" > "$tmp/root/package"
  touch "$tmp/root/.complete"
  rm -rf "$dest"
  mv "$tmp/root" "$dest"
  rm -rf "$tmp"
  trap - EXIT
fi

# Atomically repoint current.
if [[ "$(readlink "$CACHE/current" 2>/dev/null || true)" != "$name" ]]; then
  ln -sfn "$name" "$CACHE/.current.new"
  mv -T "$CACHE/.current.new" "$CACHE/current"
fi

# Older unpacked kernels are of no further use: keep the cache bounded.
for old in "$CACHE"/linux-image-*; do
  [[ -d "$old" && "$(basename "$old")" != "$name" ]] || continue
  log "removing superseded $(basename "$old")"
  rm -rf "$old"
done

log "kernel $(cat "$CACHE/current/release") ($pkg $ver) ready:"
echo "$CACHE/current/vmlinuz"
echo "$CACHE/current/lib/modules/$(cat "$CACHE/current/release")"
