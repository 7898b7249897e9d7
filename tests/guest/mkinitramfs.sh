#!/usr/bin/env bash
# mkinitramfs.sh [OPTIONS] OUT.cpio[.gz|.zst] KERNEL_MODULES_DIR BINARY [MODULE...]
#
# Builds the initramfs of a guest-kernel test: a newc cpio holding
#   /init                 the static init (tests/guest/init.c), from --init
#                         PATH or $KVMREADY_GUEST_INIT
#   /kvmready             BINARY, debug info stripped
#   its shared libraries  every one ldd lists, at the path ldd shows, and the
#                         dynamic loader (PT_INTERP)
#   /lib/modules/REL/     the requested MODULEs and everything they depend on
#                         (from KERNEL_MODULES_DIR/modules.dep), decompressed
#                         when shipped as .ko.xz/.ko.zst/.ko.gz, plus
#                         modules.dep, modules.order, modules.builtin*
#   /modules.list         absolute paths of those modules, dependencies first,
#                         each followed by its PARAMS (init loads them all)
#   /etc/passwd, /etc/group, /etc/nsswitch.conf
#                         root, nobody; groups root, kvm, nogroup
# laid out like a merged-/usr Debian (/lib, /lib64, /bin, /sbin are symlinks
# into /usr). KERNEL_MODULES_DIR is .../lib/modules/REL (REL = its basename).
# MODULE is a module name (kvm_amd or kvm-amd), optionally with parameters
# for init's finit_module: "kvm_amd:nested=0" ("kvm_amd:nested=0 npt=1" as one
# argument for several); built-in modules are skipped with a note, unknown
# ones are an error.
#
# Options:
#   --init PATH       the init executable (default $KVMREADY_GUEST_INIT)
#   --add SRC=DEST    also pack file SRC at DEST (repeatable); a dynamically
#                     linked ELF brings its libraries along too
#   --no-strip        keep debug info of BINARY
#   --pack-only MODULE
#                     pack MODULE and its dependencies under /lib/modules but
#                     do not list them in /modules.list (for modprobe in the
#                     guest); a dependency also named as MODULE is still loaded
#   --depmod          run depmod on the packed tree, so modules.dep and the
#                     .bin indexes modprobe reads list exactly what is packed
#
# The archive is compressed by OUT's extension: .gz (gzip -n), .zst, or none.
# Output is deterministic: sorted entries, fixed mtimes ($SOURCE_DATE_EPOCH,
# default 1), uid/gid 0, cpio --reproducible.
set -euo pipefail

die() { echo "mkinitramfs: error: $*" >&2; exit 1; }

init=${KVMREADY_GUEST_INIT:-}
strip_debug=1
adds=()
pack_only=()
run_depmod=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --init) [[ $# -ge 2 ]] || die "--init needs a path"; init=$2; shift 2 ;;
    --init=*) init=${1#--init=}; shift ;;
    --add) [[ $# -ge 2 ]] || die "--add needs SRC=DEST"; adds+=("$2"); shift 2 ;;
    --add=*) adds+=("${1#--add=}"); shift ;;
    --no-strip) strip_debug=0; shift ;;
    --pack-only) [[ $# -ge 2 ]] || die "--pack-only needs a module"; pack_only+=("$2"); shift 2 ;;
    --pack-only=*) pack_only+=("${1#--pack-only=}"); shift ;;
    --depmod) run_depmod=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[[ $# -ge 3 ]] || die "usage: mkinitramfs.sh [--init PATH] OUT.cpio[.gz] KERNEL_MODULES_DIR BINARY [MODULE...]"
out=$1 moddir=$2 binary=$3
shift 3
modules=("$@")

[[ -n "$init" ]] || die "no init: pass --init PATH or set KVMREADY_GUEST_INIT"
[[ -f "$init" && -x "$init" ]] || die "init $init is not an executable file"
[[ -f "$binary" ]] || die "binary $binary does not exist"
[[ -d "$moddir" ]] || die "kernel modules dir $moddir does not exist (run scripts/fetch-guest-kernel.sh)"
moddir=$(cd "$moddir" && pwd -P)
rel=$(basename "$moddir")
if [[ $((${#modules[@]} + ${#pack_only[@]})) -gt 0 && ! -f "$moddir/modules.dep" ]]; then
  die "$moddir/modules.dep is missing (scripts/fetch-guest-kernel.sh generates it)"
fi
for t in cpio ldd; do command -v "$t" >/dev/null 2>&1 || die "'$t' not found"; done

stage=$(mktemp -d "${TMPDIR:-/tmp}/kvmready-initramfs.XXXXXX")
trap 'rm -rf "$stage" "${tmp_out:-}" "${tmp_out:+$tmp_out.cpio}"' EXIT

# Merged /usr skeleton.
mkdir -p "$stage"/usr/{bin,sbin,lib,lib64} "$stage"/{etc,dev,proc,sys,tmp,run,root}
ln -s usr/bin "$stage/bin"
ln -s usr/sbin "$stage/sbin"
ln -s usr/lib "$stage/lib"
ln -s usr/lib64 "$stage/lib64"
chmod 1777 "$stage/tmp"
chmod 0700 "$stage/root"

# Map an absolute guest path to its place in the stage, following the
# merged-/usr symlinks.
stage_path() {
  local p=$1
  case "$p" in
    /bin/*|/sbin/*|/lib/*|/lib64/*) p=/usr$p ;;
  esac
  printf '%s%s' "$stage" "$p"
}

put() { # SRC DEST [MODE]
  local dst
  dst=$(stage_path "$2")
  mkdir -p "$(dirname "$dst")"
  cp -L "$1" "$dst"
  chmod "${3:-0755}" "$dst"
}

std_lib_dirs=" /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib /usr/lib /lib64 /usr/lib64 "
extra_lib_dirs=()

# Pack the shared libraries and loader an ELF needs (nothing for static ones).
put_libs() {
  local file=$1 out line lib
  if ! out=$(LC_ALL=C ldd "$file" 2>&1); then
    case "$out" in
      *"not a dynamic executable"*|*"statically linked"*) return 0 ;;
      *) die "ldd $file failed: $out" ;;
    esac
  fi
  case "$out" in *"statically linked"*) return 0 ;; esac
  while IFS= read -r line; do
    lib=
    case "$line" in
      *"=> not found"*) die "$file needs ${line%% =>*} which ldd cannot find" ;;
      *"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
      [[:space:]]/*) lib=${line#"${line%%[![:space:]]*}"}; lib=${lib%% (*} ;;
    esac
    [[ -n "$lib" ]] || continue
    put "$lib" "$lib" 0755
    local d
    d=$(dirname "$lib")
    if [[ "$std_lib_dirs" != *" $d "* && " ${extra_lib_dirs[*]} " != *" $d "* ]]; then
      extra_lib_dirs+=("$d")
    fi
  done <<< "$out"
}

put "$init" /init 0755
put "$binary" /kvmready 0755
if [[ $strip_debug == 1 ]] && command -v strip >/dev/null 2>&1; then
  strip --strip-debug "$stage/kvmready" 2>/dev/null || true
fi
put_libs "$binary"
for a in "${adds[@]}"; do
  [[ "$a" == *=/* ]] || die "--add wants SRC=/ABSOLUTE/DEST, got $a"
  src=${a%%=*} dst=${a#*=}
  [[ -f "$src" ]] || die "--add: $src does not exist"
  put "$src" "$dst" 0755
  put_libs "$src"
done
if [[ ${#extra_lib_dirs[@]} -gt 0 ]]; then
  (IFS=:; echo "${extra_lib_dirs[*]}") > "$stage/etc/ld-library-path"
fi

# Kernel modules.
gmoddir=/lib/modules/$rel
: > "$stage/modules.list"
if [[ -d "$moddir" ]]; then
  for f in modules.dep modules.order modules.builtin modules.builtin.modinfo modules.softdep modules.alias; do
    [[ -f "$moddir/$f" ]] && put "$moddir/$f" "$gmoddir/$f" 0644
  done
fi
if [[ $((${#modules[@]} + ${#pack_only[@]})) -gt 0 ]]; then
  declare -A dep_line=()   # module name -> "path: dep dep ..."
  declare -A mod_path=()
  while IFS= read -r line; do
    p=${line%%:*}
    n=${p##*/}; n=${n%%.ko*}; n=${n//-/_}
    dep_line[$n]=${line#*:}
    mod_path[$n]=$p
  done < "$moddir/modules.dep"
  builtin_names=" "
  if [[ -f "$moddir/modules.builtin" ]]; then
    while IFS= read -r p; do
      n=${p##*/}; n=${n%%.ko*}; builtin_names+="${n//-/_} "
    done < "$moddir/modules.builtin"
  fi
  declare -A listed=() packed=()
  add_module() { # relative path from modules.dep, load (1) or pack only (0), params
    local p=$1 load=$2 params=${3:-} n guest_rel src
    n=${p##*/}; n=${n%%.ko*}; n=${n//-/_}
    guest_rel=${p%.xz}; guest_rel=${guest_rel%.zst}; guest_rel=${guest_rel%.gz}
    if [[ $load == 1 && -z "${listed[$n]:-}" ]]; then
      listed[$n]=1
      echo "$gmoddir/$guest_rel${params:+ $params}" >> "$stage/modules.list"
    fi
    [[ -z "${packed[$n]:-}" ]] || return 0
    packed[$n]=1
    src="$moddir/$p"
    [[ -f "$src" ]] || die "module file $src is missing"
    local dst
    dst=$(stage_path "$gmoddir/$guest_rel")
    mkdir -p "$(dirname "$dst")"
    case "$p" in
      *.ko) cp "$src" "$dst" ;;
      *.ko.xz) xz -dc "$src" > "$dst" ;;
      *.ko.zst) zstd -qdc "$src" > "$dst" ;;
      *.ko.gz) gzip -dc "$src" > "$dst" ;;
      *) die "unsupported module file $p" ;;
    esac
    chmod 0644 "$dst"
  }
  pack() { # MODULE[:PARAMS] load
    local m=${1%%:*} params= n deps i
    [[ "$1" != *:* ]] || params=${1#*:}
    n=${m//-/_}
    if [[ -z "${mod_path[$n]:-}" ]]; then
      if [[ "$builtin_names" == *" $n "* ]]; then
        echo "mkinitramfs: note: $m is built into kernel $rel; not packed" >&2
        return 0
      fi
      die "module $m not found in $moddir/modules.dep"
    fi
    # modules.dep lists the whole dependency closure, innermost last.
    read -r -a deps <<< "${dep_line[$n]}"
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do add_module "${deps[i]}" "$2"; done
    add_module "${mod_path[$n]}" "$2" "$params"
  }
  for m in "${modules[@]}"; do pack "$m" 1; done
  for m in "${pack_only[@]}"; do pack "$m" 0; done
fi
if [[ $run_depmod == 1 ]]; then
  depmod=$(command -v depmod || true)
  [[ -n "$depmod" ]] || for d in /usr/sbin /sbin; do [[ -x $d/depmod ]] && depmod=$d/depmod && break; done
  [[ -n "$depmod" ]] || die "--depmod: depmod not found (apt-get install kmod)"
  "$depmod" -b "$stage" "$rel" || die "depmod -b $stage $rel failed"
fi

# Users and groups: enough for getpwnam/getgrnam through nss_files.
cat > "$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat > "$stage/etc/group" <<'EOF'
root:x:0:
kvm:x:994:
nogroup:x:65534:
EOF
cat > "$stage/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files
EOF
chmod 0644 "$stage"/etc/{passwd,group,nsswitch.conf}

# Deterministic archive.
epoch=${SOURCE_DATE_EPOCH:-1}
find "$stage" -exec touch -h -d "@$epoch" {} +
tmp_out="$out.tmp.$$"
(
  cd "$stage"
  find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible
) > "$tmp_out.cpio" || die "cpio failed"
case "$out" in
  *.gz) gzip -n -6 < "$tmp_out.cpio" > "$tmp_out" ; rm -f "$tmp_out.cpio" ;;
  *.zst) zstd -q -19 --rm -o "$tmp_out" "$tmp_out.cpio" ;;
  *) mv "$tmp_out.cpio" "$tmp_out" ;;
esac
mv -f "$tmp_out" "$out"
