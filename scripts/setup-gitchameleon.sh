#!/usr/bin/env bash
# Set-up for GitChameleon 2.0 (idempotent; a second run takes seconds):
#  1. the system libraries some of its environments load at run time, from Debian/Ubuntu when
#     run as root with apt-get: libsndfile1 (soundfile, hence librosa: 42 problems) and
#     libspatialindex-dev (rtree, hence geopandas). Elsewhere they are named, and the problems
#     needing them are reported as env_incomplete;
#  2. the environments: `recode eval setup --bench gitchameleon "$@"` (cached under
#     $RECODE_CACHE/envs; built from PyPI; all 99 without --library, which takes about an hour
#     and tens of GB: the command prints its estimate first).
# Usage: scripts/setup-gitchameleon.sh [--library NAME[==VERSION],...] [--jobs N] [--data DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
log() { printf '[setup-gitchameleon] %s\n' "$*" >&2; }

need=()
ldconfig -p | grep -q 'libsndfile\.so' || need+=(libsndfile1)
ldconfig -p | grep -q 'libspatialindex' || need+=(libspatialindex-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need[*]} (apt-get)"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 \
      || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; }
  else
    log "missing system libraries: ${need[*]} (install them as root; their problems are env_incomplete until then)"
  fi
else
  log "system libraries present"
fi

recode_setup || exit $?
cargo build --quiet -p recode-cli
"$(recode_target_dir)/debug/recode" eval setup --bench gitchameleon "$@"
