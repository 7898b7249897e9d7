# Sourced by the scripts that fill kvmready's test cache (fetch-guest-kernel.sh,
# fetch-bootstrap-root.sh, fetch-fleet-guest-root.sh): their messages, and the
# cache directory each of them owns, locked so that one run at a time works in
# it. PROG names the script in messages; set it before sourcing.

die() { echo "$PROG: error: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

# open_cache DIR: creates DIR, sets CACHE to its resolved path and holds its
# lock (fd 9) until the script exits. A run killed half-way leaves a .tmp.*
# behind, which the next run, holding the lock, removes.
open_cache() {
  mkdir -p "$1" || die "cannot create cache directory $1"
  CACHE=$(cd "$1" && pwd -P)
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock"
    flock 9 || die "cannot lock $CACHE/.lock"
  fi
  rm -rf "$CACHE"/.tmp.*
}
