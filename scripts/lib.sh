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
