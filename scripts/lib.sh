# shellcheck shell=bash
# Shell functions shared by the scripts (sourced, not run).

# recode_target_dir: the directory cargo builds into for this workspace, as cargo itself reports
# it (`cargo metadata`), so CARGO_TARGET_DIR and .cargo/config.toml are honoured. Parses the JSON
# with the dev venv's Python when scripts/setup.sh has run, else python3.
recode_target_dir() {
  local py=${RECODE_VENV:+$RECODE_VENV/bin/python}
  cargo metadata --format-version 1 --no-deps \
    | "${py:-python3}" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# recode_setup: runs scripts/setup.sh (idempotent, cached) from the workspace root and exports the
# environment it prints (RECODE_VENV, RECODE_SMOLLM2_GGUF, RECODE_QWEN_TOKENIZER_DIR). A plain
# `eval "$(scripts/setup.sh)"` would discard set-up's exit status: on failure this says so, naming
# the calling script, and returns that status.
recode_setup() {
  local env status
  env=$(scripts/setup.sh) || {
    status=$?
    echo "$(basename "$0"): set-up failed (scripts/setup.sh exit $status)" >&2
    return "$status"
  }
  eval "$env"
  export RECODE_VENV RECODE_SMOLLM2_GGUF RECODE_QWEN_TOKENIZER_DIR
}
