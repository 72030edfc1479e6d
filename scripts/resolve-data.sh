#!/usr/bin/env bash
# Where the scripts' data sets come from: one resolution, sourced by quickstart.sh and
# learning-run.sh (and runnable: `scripts/resolve-data.sh recode arena` prints one path a line).
#
# For each data set, the first of:
#   1. its variable (RECODE_DATA, RECODE_ARENA): a local file, used as given (set but missing
#      is an error, never a silent fallback);
#   2. the copy in ../shared/data beside the checkout ($RECODE_SHARED overrides the folder);
#   3. the copy downloaded earlier into $RECODE_CACHE/data/<hub id>/ (default ~/.cache/recode);
#   4. the data set's public Hugging Face id, downloaded once into (3) from $HF_ENDPOINT
#      (default https://huggingface.co). Offline this fails in seconds: the hub gets
#      $RECODE_HUB_CONNECT_TIMEOUT s (default 5) to accept a connection and twice that to answer
#      a first one-byte request; the download is abandoned when slower than 1 KiB/s for 20 s.
# When a data set is not reachable, one message names the variables to set and what was tried.
#
# Data sets (name: variable, file in ../shared/data, hub dataset id, file in the hub dataset):
#   recode: RECODE_DATA, recode/api_update.jsonl, zjunlp/ReCode-Train-Data, recode-train-data.jsonl
#   arena:  RECODE_ARENA, codeupdatearena/arena-dev.jsonl, leo-liuzy/CodeUpdateArena,
#           arena-ungrouped.jsonl (the whole benchmark, one line per example; recode groups it)

# recode_data_set NAME: sets ds_var, ds_what, ds_shared, ds_hub_id, ds_hub_file for NAME.
recode_data_set() {
  case $1 in
    recode)
      ds_var=RECODE_DATA ds_what="ReCode training data" ds_shared=recode/api_update.jsonl
      ds_hub_id=zjunlp/ReCode-Train-Data ds_hub_file=recode-train-data.jsonl ;;
    arena)
      ds_var=RECODE_ARENA ds_what="CodeUpdateArena" ds_shared=codeupdatearena/arena-dev.jsonl
      ds_hub_id=leo-liuzy/CodeUpdateArena ds_hub_file=arena-ungrouped.jsonl ;;
    *)
      echo "resolve-data: unknown data set '$1' (known: recode arena)" >&2
      return 2 ;;
  esac
}

# recode_hub_fetch ID FILE DEST: downloads FILE of hub dataset ID to DEST (atomically); on
# failure prints the URL and curl's reason on stdout and returns non-zero. A first request for
# one byte, limited to $RECODE_HUB_CONNECT_TIMEOUT s to connect and twice that in all, tells an
# unreachable or silent hub (or a missing file) within seconds; the download itself is abandoned
# when slower than 1 KiB/s for 20 s.
recode_hub_fetch() {
  local url=${HF_ENDPOINT:-https://huggingface.co} connect=${RECODE_HUB_CONNECT_TIMEOUT:-5}
  url=${url%/}/datasets/$1/resolve/main/$2
  if ! command -v curl > /dev/null; then
    echo "$url: curl not found"
    return 1
  fi
  local part=$3.partial.$$ err
  if err=$(curl -fsSL --connect-timeout "$connect" --max-time $((2 * connect)) -r 0-0 \
    -o /dev/null "$url" 2>&1) && mkdir -p "$(dirname "$3")" \
    && err=$(curl -fsSL --connect-timeout "$connect" --speed-limit 1024 --speed-time 20 \
      -o "$part" "$url" 2>&1) && [ -s "$part" ]; then
    mv -f "$part" "$3"
    return 0
  fi
  rm -f "$part"
  echo "$url: ${err:-empty file}"
  return 1
}

# recode_resolve_data NAME...: exports each data set's variable as an absolute path; returns
# non-zero after one message on stderr when any of them cannot be found or fetched.
recode_resolve_data() {
  local here shared cache name tried=() missing=() vars=() reason
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  shared=${RECODE_SHARED:-$here/../shared}
  cache=${RECODE_CACHE:-$HOME/.cache/recode}/data
  for name in "$@"; do
    recode_data_set "$name" || return
    local given=${!ds_var:-} cached=$cache/$ds_hub_id/$ds_hub_file
    if [ -n "$given" ]; then
      if [ ! -f "$given" ]; then
        echo "resolve-data: $ds_var=$given: no such file ($ds_what)" >&2
        return 1
      fi
      # Absolute, so that it still holds after the scripts change directory.
      export "$ds_var=$(cd "$(dirname "$given")" && pwd)/$(basename "$given")"
    elif [ -f "$shared/data/$ds_shared" ]; then
      export "$ds_var=$shared/data/$ds_shared"
    elif [ -s "$cached" ]; then
      export "$ds_var=$cached"
    else
      echo "resolve-data: $ds_what: fetching hub dataset $ds_hub_id (kept in $cache)" >&2
      if reason=$(recode_hub_fetch "$ds_hub_id" "$ds_hub_file" "$cached"); then
        export "$ds_var=$cached"
      else
        missing+=("$ds_what") vars+=("$ds_var")
        tried+=("$ds_var unset; $shared/data/$ds_shared absent; no earlier download in"
"    $cache/$ds_hub_id; hub dataset $ds_hub_id: $reason")
      fi
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    {
      echo "resolve-data: no copy found or fetched of: $(recode_join ', ' "${missing[@]}")."
      echo "  Set $(recode_join ' and ' "${vars[@]}") to local files (README, section Data), or"
      echo "  RECODE_SHARED to a folder holding data/, or make the Hugging Face hub reachable"
      echo "  (HF_ENDPOINT=${HF_ENDPOINT:-https://huggingface.co}). Tried:"
      printf '  - %s\n%s\n' "${tried[@]}"
    } >&2
    return 1
  fi
}

# recode_join SEP WORD...: the words joined by SEP.
recode_join() {
  local sep=$1 out=$2
  shift 2
  for w in "$@"; do out+=$sep$w; done
  printf '%s' "$out"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# -gt 0 ] || set -- recode arena
  recode_resolve_data "$@"
  for name in "$@"; do
    recode_data_set "$name"
    echo "${!ds_var}"
  done
fi
