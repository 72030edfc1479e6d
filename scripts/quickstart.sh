#!/usr/bin/env bash
# The main job on the default small model, from a fresh machine:
# set-up → data (stats, clean, split, prompts) → rollouts with SmolLM2-135M → rewards →
# training → evaluation. Outputs go to $1 (default runs/quickstart).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
eval "$(scripts/setup.sh)"
out=${1:-runs/quickstart}
mkdir -p "$out"
data=${RECODE_DATA:-$root/../shared/data/recode/api_update.jsonl}

step() { printf '\n==> %s\n' "$*" >&2; }

step "build (release)"
cargo build --release --quiet -p recode-cli
recode=$root/target/release/recode

step "data: validate, clean, split"
"$recode" data stats "$data"
"$recode" data clean "$data" "$out/clean.jsonl"
"$recode" data split "$out/clean.jsonl" --val 0.05 --seed 42 -o "$out"
"$recode" data render "$out/clean.val.jsonl" -o "$out/val.prompts.jsonl"

if [ -x scripts/quickstart-stages.sh ]; then
  scripts/quickstart-stages.sh "$recode" "$out"
fi
step "done: outputs in $out"
