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

# recode_rl_after_sft ADAPTER WEIGHT: sets the array `after_sft`, the learning runs' RL-after-SFT
# recipe: start from the SFT adapter ADAPTER, lr LEARN_RL_LR (default 3e-5) constant after the
# warm-up, reward format + ES* + EM* + WEIGHT * edit_es_star (WEIGHT 0 leaves the edit score out).
recode_rl_after_sft() {
  after_sft=(--init-adapter "$1" --set eval_on_start=false
    --set "learning_rate=${LEARN_RL_LR:-3e-5}" --set lr_scheduler_type=constant)
  if [ "$2" != 0 ]; then
    after_sft+=(--set 'reward_funcs=["format","es_star","em_star","edit_es_star"]'
      --set "reward_weights=[1.0,1.0,1.0,$2]")
  else
    after_sft+=(--set 'reward_funcs=["format","es_star","em_star"]')
  fi
}
