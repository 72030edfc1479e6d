#!/usr/bin/env bash
# The longer learning experiment on the default small model (SmolLM2-135M-Instruct, CPU):
#   (a) GRPO with LoRA from the raw model,
#   (b) `recode sft` for a few hundred steps, then GRPO and DAPO from that adapter,
# each validating greedily on the same held-out prompts, then one HTML report per run and a
# summary table (validation ES* / exact match: SFT alone vs RL after SFT) on stdout.
# Takes about 2 hours on 2 cores (measured 2026-12-01: SFT 200 steps 27 min of steps; GRPO 60
# steps of 2 prompts x 8 rollouts ~35 s/step alone; DAPO 40 steps of 1 prompt x 8; plus ~2 min
# for each validation on all 72 held-out prompts).
# Outputs go to $1 (default runs/learning). Stages whose
# final checkpoint exists are skipped, so re-running after an interruption picks up where it
# stopped (a stage cut mid-way resumes from its latest checkpoint).
# Scale with LEARN_SFT_STEPS / LEARN_GRPO_STEPS / LEARN_DAPO_STEPS / LEARN_RAW_STEPS /
# LEARN_VAL_LIMIT.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
eval "$(scripts/setup.sh)"
export RECODE_VENV RECODE_SMOLLM2_GGUF RECODE_QWEN_TOKENIZER_DIR
out=${1:-runs/learning}
mkdir -p "$out"
data=${RECODE_DATA:-$root/../shared/data/recode/api_update.jsonl}
sft_steps=${LEARN_SFT_STEPS:-200}
grpo_steps=${LEARN_GRPO_STEPS:-60}
dapo_steps=${LEARN_DAPO_STEPS:-40}
raw_steps=${LEARN_RAW_STEPS:-10}
val_limit=${LEARN_VAL_LIMIT:-72}

step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ -z "${RECODE_BIN:-}" ]; then
  step "build (release)"
  cargo build --release --quiet -p recode-cli
fi
recode=${RECODE_BIN:-$root/target/release/recode}

step "data: clean and split (seed 42)"
"$recode" data clean "$data" "$out/clean.jsonl"
"$recode" data split "$out/clean.jsonl" --val 0.05 --seed 42 -o "$out"
train=$out/clean.train.jsonl
val=$out/clean.val.jsonl

small=(--set use_dora=false --set lora_r=16 --set lora_alpha=32 --set max_prompt_length=512)
# G = 8 rollouts per prompt (the paper's G), 192 new tokens: room for <think> + <answer>;
# temperature 0.7 keeps rollouts close to the greedy policy that validation measures.
rl=(--set num_generations=8 --set max_completion_length=192 --set temperature=0.7)
# 1 prompt x 8 rollouts per step, validating and saving every 10 steps.
one_prompt=(--set per_device_train_batch_size=4 --set gradient_accumulation_steps=2
  --set eval_steps=10 --set save_steps=10)

# run_stage NAME STEPS CMD...: runs CMD with --output $out/NAME, resuming a cut run, skipping a
# finished one.
run_stage() {
  local name=$1 steps=$2
  shift 2
  local dir=$out/$name
  if [ -d "$dir/checkpoint-$steps" ]; then
    step "$name: finished earlier (checkpoint-$steps), skipped"
    return
  fi
  local resume=()
  if compgen -G "$dir/checkpoint-*" > /dev/null; then
    resume=(--resume "$dir")
  fi
  step "$name: $steps steps"
  local t0=$SECONDS
  "$@" --output "$dir" "${resume[@]}" --quiet
  echo "$((SECONDS - t0))" > "$dir/wall_seconds"
  step "$name: done in $((SECONDS - t0)) s"
}

run_stage sft "$sft_steps" "$recode" sft --data "$train" --val-data "$val" --val-limit "$val_limit" \
  "${small[@]}" --set max_steps="$sft_steps" --set learning_rate=2e-4 \
  --set per_device_train_batch_size=1 --set gradient_accumulation_steps=2 \
  --set max_completion_length=256 --set save_steps=100 --set eval_steps=50
sft_ckpt=$out/sft/checkpoint-$sft_steps

# GRPO: 2 prompts x 8 rollouts per step, lr 3e-4, validation every 20 steps.
run_stage grpo-after-sft "$grpo_steps" "$recode" train --algo grpo --init-adapter "$sft_ckpt" \
  --data "$train" --val-data "$val" --val-limit "$val_limit" "${small[@]}" "${rl[@]}" \
  --set per_device_train_batch_size=8 --set gradient_accumulation_steps=2 \
  --set learning_rate=3e-4 --set eval_steps=20 --set save_steps=20 --set max_steps="$grpo_steps"

# DAPO: 1 prompt x 8 rollouts per kept group, up to 3 generation batches, lr 2e-4.
run_stage dapo-after-sft "$dapo_steps" "$recode" train --algo dapo --init-adapter "$sft_ckpt" \
  --data "$train" --val-data "$val" --val-limit "$val_limit" "${small[@]}" "${rl[@]}" \
  "${one_prompt[@]}" --set use_peft=true --set learning_rate=2e-4 --set overlong_buffer_len=64 \
  --set max_num_gen_batches=3 --set max_steps="$dapo_steps"

run_stage grpo-raw "$raw_steps" "$recode" train --algo grpo --data "$train" --val-data "$val" \
  --val-limit "$val_limit" "${small[@]}" "${rl[@]}" "${one_prompt[@]}" \
  --set learning_rate=1e-4 --set max_steps="$raw_steps"

step "reports"
for name in sft grpo-after-sft dapo-after-sft grpo-raw; do
  "$recode" report train "$out/$name" -o "$out/$name/report.html"
done
step "validation (greedy, $val_limit held-out prompts): first and last evaluation of each run"
"$recode" report runs "$out/sft" "$out/grpo-after-sft" "$out/dapo-after-sft" "$out/grpo-raw" \
  -o "$out/runs.html"
