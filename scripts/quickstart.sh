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

step "rollouts: SmolLM2-135M continues 4 validation prompts, 4 samples each"
head -n 4 "$out/val.prompts.jsonl" > "$out/rollout.prompts.jsonl"
"$recode" generate --model "$RECODE_SMOLLM2_GGUF" --input "$out/rollout.prompts.jsonl" --raw \
  -n 4 --temperature 1.0 --max-new-tokens 192 --seed 1 --json > "$out/rollouts.jsonl"

step "rewards: format + EM* + ES* per rollout"
"$RECODE_VENV/bin/python" - "$out/rollout.prompts.jsonl" "$out/rollouts.jsonl" "$out/scored.input.jsonl" <<'PY'
import json, sys
prompts = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[3], "w") as out:
    for line in open(sys.argv[2]):
        r = json.loads(line)
        out.write(json.dumps({"completion": r["text"], "target": prompts[r["prompt_index"]]["target"]}) + "\n")
PY
"$recode" reward score --input "$out/scored.input.jsonl" > "$out/scored.jsonl"

step "training configuration (GRPO preset, paper settings)"
"$recode" train --algo grpo --print-config > "$out/grpo.toml"

step "evaluation: CodeUpdateArena harness on the reference solutions (sandboxed)"
"$recode" eval setup
"$recode" eval check-refs --bench codeupdatearena \
  --data "$root/../shared/data/codeupdatearena/arena-dev.jsonl" --limit 12 --json > "$out/check-refs.json"
tail -n 1 "$out/check-refs.json"
step "done: outputs in $out"
