#!/usr/bin/env bash
# The main job on the default small model, from a fresh machine:
# set-up → data (stats, clean, split) → SFT warm start → GRPO (rollouts, rewards, updates)
# → evaluation on CodeUpdateArena (sandboxed unit tests, pass@k) → HTML reports.
# Outputs go to $1 (default runs/quickstart). Sized to finish in minutes on a 2-core CPU;
# scale with QUICKSTART_SFT_STEPS / QUICKSTART_RL_STEPS / QUICKSTART_EVAL_PROBLEMS.
# Data: RECODE_DATA (ReCode training data) and RECODE_ARENA (CodeUpdateArena), else
# ../shared/data beside the checkout, else the public hub datasets downloaded once into the
# cache (scripts/resolve-data.sh); resolved first, so a missing data set fails in seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/resolve-data.sh
. "$root/scripts/resolve-data.sh"
recode_resolve_data recode arena
data=$RECODE_DATA
arena=$RECODE_ARENA
cd "$root"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
recode_setup || exit $?
out=${1:-runs/quickstart}
mkdir -p "$out"
sft_steps=${QUICKSTART_SFT_STEPS:-8}
rl_steps=${QUICKSTART_RL_STEPS:-2}
eval_problems=${QUICKSTART_EVAL_PROBLEMS:-4}

step() { printf '\n==> %s\n' "$*" >&2; }

step "build (release)"
cargo build --release --quiet -p recode-cli
recode=$(recode_target_dir)/release/recode

step "data: validate, clean, split"
"$recode" data stats "$data"
"$recode" data clean "$data" "$out/clean.jsonl"
"$recode" data split "$out/clean.jsonl" --val 0.05 --seed 42 -o "$out"

# Small-model settings: LoRA r=16 (the paper's DoRA r=64 is the preset default), short
# completions, a handful of held-out prompts for greedy validation.
small="--set use_dora=false --set lora_r=16 --set lora_alpha=32 --set max_prompt_length=512"

step "SFT warm start: $sft_steps steps on the ReCode answer format (SmolLM2-135M, LoRA)"
# shellcheck disable=SC2086
"$recode" sft --data "$out/clean.train.jsonl" --val-data "$out/clean.val.jsonl" --val-limit 2 \
  --output "$out/sft" $small --set max_steps="$sft_steps" --set learning_rate=3e-4 \
  --set per_device_train_batch_size=1 --set gradient_accumulation_steps=2 \
  --set max_completion_length=256 --set save_steps="$sft_steps" --set eval_steps="$sft_steps"
sft_ckpt=$out/sft/checkpoint-$sft_steps

step "GRPO from the SFT adapter: $rl_steps steps, 1 prompt x 4 rollouts, reward = format + ES*"
# shellcheck disable=SC2086
"$recode" train --algo grpo --init-adapter "$sft_ckpt" --data "$out/clean.train.jsonl" \
  --val-data "$out/clean.val.jsonl" --val-limit 2 --output "$out/grpo" $small \
  --set max_steps="$rl_steps" --set num_generations=4 --set per_device_train_batch_size=2 \
  --set gradient_accumulation_steps=2 --set max_completion_length=96 --set learning_rate=2e-5 \
  --set save_steps="$rl_steps" --set eval_steps="$rl_steps"
rl_ckpt=$out/grpo/checkpoint-$rl_steps

step "evaluation virtualenv (benchmark pins) and CodeUpdateArena harness check"
"$recode" eval setup
"$recode" eval check-refs --bench codeupdatearena --data "$arena" --limit 12 --json \
  > "$out/check-refs.json"
tail -n 1 "$out/check-refs.json"

step "evaluation: base vs trained on $eval_problems CodeUpdateArena problems (n=2, sandboxed)"
for which in base trained; do
  adapter=()
  [ "$which" = trained ] && adapter=(--adapter "$rl_ckpt")
  "$recode" eval run --bench codeupdatearena --data "$arena" --limit "$eval_problems" -n 2 \
    --max-new-tokens 256 --seed 7 "${adapter[@]}" --output "$out/eval-$which"
done

step "reports"
"$recode" report train "$out/sft" -o "$out/sft/report.html"
"$recode" report train "$out/grpo" -o "$out/grpo/report.html"
"$recode" report compare "$out/eval-base" "$out/eval-trained" -o "$out/eval-compare.html"
step "done: outputs in $out (open $out/grpo/report.html and $out/eval-compare.html)"
