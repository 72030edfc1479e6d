#!/usr/bin/env bash
# The learning run of issue 33, in stages that each fit a session, measured on a test split
# nobody tuned on:
#   split       clean the ReCode data; split it train / validation / test (seed 42), once
#   sft         `recode sft` LEARN_SFT_STEPS steps (validating on the validation split)
#   grpo        GRPO from the SFT adapter, LEARN_GRPO_STEPS steps (validation split)
#   dapo        DAPO from the SFT adapter, LEARN_DAPO_STEPS steps (validation split)
#   eval-test   greedy answers on the test split: base, SFT, GRPO-after-SFT, DAPO-after-SFT,
#               and copying the old code (scored without a model)
#   eval-arena  CodeUpdateArena pass@1 (dev part, sandboxed) of base, SFT and the RL run with
#               the best validation ES* (chosen on validation, never on test)
#   report      docs/results.md from the committed artifacts (`recode report results`)
# Usage: scripts/learning-stages.sh [STAGE|all]   (or LEARN_STAGE=STAGE; default all, in order)
#
# Big run directories (checkpoints) go outside the work tree: LEARN_RUN_DIR, default
# $RECODE_CACHE/runs/learning (RECODE_CACHE defaults to ~/.cache/recode). Small artifacts go to
# LEARN_RESULTS (default results/learning, committed): split.json, stages/<stage>.json (commands,
# expected and measured wall time), runs/<run>/ (config, metrics, last validation),
# test/<model>.jsonl (per-prompt test answers and scores), arena/<model>/ (results, summary).
# The report is written to LEARN_REPORT (default docs/results.md).
#
# Every stage prints its expected wall time first, is skipped when its outputs exist, and a
# training stage cut mid-way resumes from its latest checkpoint (`recode sft/train --resume`).
# Choices (learning rate, steps, temperature, reward weights) are made on the validation split;
# only eval-test reads the test split.
#
# Expected times come from measurements on 2 cores (release build). 2026-12-05 (see
# scripts/learning-run.sh): SFT 300 steps 60 min with four validations (12 s/step); greedy
# validation ~2-4 min per 72 prompts (~3 s/prompt at 256 new tokens). 2026-12-06, GRPO and DAPO
# side by side one thread each: GRPO 100 steps 93 min, DAPO 80 steps 71 min (56 and 53 s/step,
# validations included); eval-test 32 min for four models on 143 prompts; CodeUpdateArena
# ~7.6 s per problem and sample at 512 new tokens on one thread beside another job, execution
# included (358 problems: ~45 min a model; ~25 min on two threads).
#
# Scale with LEARN_SFT_STEPS (300) / LEARN_GRPO_STEPS (100) / LEARN_DAPO_STEPS (80) /
# LEARN_VAL_LIMIT (72) / LEARN_TEST_LIMIT (0 = the whole test split) / LEARN_ARENA_LIMIT (0 = all
# problems) / LEARN_ARENA_N (1, greedy; for more samples LEARN_ARENA_TEMPERATURE, default 0.8) /
# LEARN_TOKENS (256 new tokens in training and on test) / LEARN_ARENA_TOKENS (512); the split
# with LEARN_VAL_FRACTION (0.05) / LEARN_TEST_FRACTION (0.1) / LEARN_SEED (42); RL with
# LEARN_EDIT_WEIGHT (0.1) / LEARN_RL_LR (3e-5) / LEARN_RL_TEMPERATURE (0.7); checkpoints and
# validations every LEARN_SFT_EVERY (100) / LEARN_RL_EVERY (20) steps. RECODE_BIN=path skips
# the release build.
# Data: RECODE_DATA and RECODE_ARENA, else ../shared/data, else the hub (scripts/resolve-data.sh).
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

stage=${1:-${LEARN_STAGE:-all}}
stages=(split sft grpo dapo eval-test eval-arena report)
if [ "$stage" != all ] && [[ " ${stages[*]} " != *" $stage "* ]]; then
  echo "learning-stages: unknown stage '$stage' (one of: ${stages[*]}, all)" >&2
  exit 2
fi
cache=${RECODE_CACHE:-$HOME/.cache/recode}
run=${LEARN_RUN_DIR:-$cache/runs/learning}
results=${LEARN_RESULTS:-$root/results/learning}
report_out=${LEARN_REPORT:-$root/docs/results.md}
mkdir -p "$run" "$results/stages"
run=$(cd "$run" && pwd)
results=$(cd "$results" && pwd)
case "$run/" in
  "$root"/*) echo "learning-stages: LEARN_RUN_DIR=$run is inside the work tree; keep run directories outside it" >&2
    exit 2 ;;
esac

sft_steps=${LEARN_SFT_STEPS:-300}
grpo_steps=${LEARN_GRPO_STEPS:-100}
dapo_steps=${LEARN_DAPO_STEPS:-80}
val_limit=${LEARN_VAL_LIMIT:-72}
test_limit=${LEARN_TEST_LIMIT:-0}
arena_limit=${LEARN_ARENA_LIMIT:-0}
arena_n=${LEARN_ARENA_N:-1}
# Greedy for one sample per problem, the benchmark's 0.8 for several.
if [ "$arena_n" = 1 ]; then arena_t=${LEARN_ARENA_TEMPERATURE:-0}; else arena_t=${LEARN_ARENA_TEMPERATURE:-0.8}; fi
tokens=${LEARN_TOKENS:-256}
arena_tokens=${LEARN_ARENA_TOKENS:-512}
val_fraction=${LEARN_VAL_FRACTION:-0.05}
test_fraction=${LEARN_TEST_FRACTION:-0.1}
seed=${LEARN_SEED:-42}
edit_weight=${LEARN_EDIT_WEIGHT:-0.1}
# Checkpoint and validate every N steps (a cut stage resumes from its last checkpoint).
sft_every=${LEARN_SFT_EVERY:-100}
rl_every=${LEARN_RL_EVERY:-20}
py=${RECODE_VENV:+$RECODE_VENV/bin/python}
py=${py:-python3}

say() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
# minutes SECONDS: a wall time for people.
minutes() { awk -v s="$1" 'BEGIN { if (s < 120) printf "%d s", s; else if (s < 5400) printf "%d min", (s + 30) / 60; else printf "%.1f h", s / 3600 }'; }

if [ -z "${RECODE_BIN:-}" ]; then
  say "build (release)"
  cargo build --release --quiet -p recode-cli
fi
recode=${RECODE_BIN:-$(recode_target_dir)/release/recode}

split_dir=$run/split
train=$split_dir/clean.train.jsonl
val=$split_dir/clean.val.jsonl
test=$split_dir/clean.test.jsonl
sft_adapter=$run/sft/checkpoint-$sft_steps
declare -A adapter=(
  [sft]=$sft_adapter
  [grpo-after-sft]=$run/grpo-after-sft/checkpoint-$grpo_steps
  [dapo-after-sft]=$run/dapo-after-sft/checkpoint-$dapo_steps
)

# Rows of the test split the test evaluation reads (LEARN_TEST_LIMIT, 0 = all).
test_rows() {
  local n
  n=$("$py" -c 'import json,sys; print(next(f["rows"] for f in json.load(open(sys.argv[1]))["files"] if f["part"] == "test"))' "$split_dir/split.json")
  if [ "$test_limit" -gt 0 ] && [ "$test_limit" -lt "$n" ]; then n=$test_limit; fi
  echo "$n"
}
# Problems of the arena file (its program-synthesis examples: several per update; 358 in the
# 91 updates of the dev part), the first LEARN_ARENA_LIMIT of them.
arena_problems() {
  local n
  n=$("$py" -c 'import json,sys; print(sum(len(json.loads(l).get("prog_syn_examples") or []) for l in open(sys.argv[1]) if l.strip()))' "$arena")
  if [ "$arena_limit" -gt 0 ] && [ "$arena_limit" -lt "$n" ]; then n=$arena_limit; fi
  echo "$n"
}

# expected STAGE: the stage's expected wall time in seconds, scaled from the measurements above.
expected() {
  local tok_scale="$tokens / 256"
  case $1 in
    split) echo 10 ;;
    sft) awk "BEGIN { print int($sft_steps * 12) }" ;;
    grpo) awk "BEGIN { print int($grpo_steps * 56 * $tok_scale) }" ;;
    dapo) awk "BEGIN { print int($dapo_steps * 53 * $tok_scale) }" ;;
    eval-test) awk "BEGIN { print int(4 * $(test_rows) * 3 * $tok_scale + 30) }" ;;
    eval-arena) awk "BEGIN { print int(3 * $(arena_problems) * $arena_n * 7.6 * $arena_tokens / 512) }" ;;
    report) echo 1 ;;
  esac
}

# Commands of the running stage, as recorded in stages/<stage>.json ($RUN for the run directory).
stage_commands=()
# cmd ARGS...: runs a command and records it.
cmd() {
  local shown="$*"
  shown=${shown//$recode/recode}
  shown=${shown//$run/\$RUN}
  shown=${shown//$root\//}
  stage_commands+=("$shown")
  "$@"
}

# begin STAGE / finish STAGE: prints the expected wall time, then records the measured one.
stage_t0=0
begin() {
  stage_commands=()
  stage_t0=$SECONDS
  running_stage=$1
  say "$1: expected wall time ~$(minutes "$(expected "$1")") (2 cores, release build)"
}
# An evaluation stage run before every model it covers exists (e.g. the test split while DAPO
# still trains) records "partial": true; its next run adds to that record's wall time and
# commands instead of replacing them.
stage_partial=0
finish() {
  local name=$1 wall=$((SECONDS - stage_t0)) partial=0
  if [ -f "$run/$name.partial_seconds" ]; then
    partial=$(cat "$run/$name.partial_seconds")
    rm -f "$run/$name.partial_seconds"
  fi
  wall=$((wall + partial))
  running_stage=""
  "$py" - "$results/stages/$name.json" "$name" "$(expected "$name")" "$wall" "$stage_partial" \
    "${stage_commands[@]}" <<'EOF'
import datetime, json, os, sys
path, stage, expected, wall, partial, *commands = sys.argv[1:]
wall = int(wall)
if os.path.exists(path):
    before = json.load(open(path))
    if before.get("partial"):
        wall += int(before.get("wall_seconds", 0))
        commands = before.get("commands", []) + commands
settings = {k: v for k, v in sorted(os.environ.items()) if k.startswith("LEARN_")}
record = {"stage": stage, "expected_seconds": int(expected), "wall_seconds": wall,
          "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
          "commands": commands, "settings": settings, "partial": partial == "1"}
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
EOF
  say "$name: done in $(minutes "$wall") (expected ~$(minutes "$(expected "$name")"))"
}

# A stage cut by the end of a session (TERM) keeps the time it had spent: its next run adds it.
running_stage=""
on_exit() {
  if [ -n "$running_stage" ]; then
    local spent=$((SECONDS - stage_t0)) before=0
    [ -f "$run/$running_stage.partial_seconds" ] && before=$(cat "$run/$running_stage.partial_seconds")
    echo $((before + spent)) > "$run/$running_stage.partial_seconds"
  fi
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

stage_split() {
  if [ -f "$split_dir/split.json" ] && [ -f "$results/split.json" ]; then
    say "split: done earlier ($split_dir), skipped"
    check_split
    return
  fi
  begin split
  cmd "$recode" data clean "$data" "$run/clean.jsonl"
  cmd "$recode" data split "$run/clean.jsonl" --val "$val_fraction" --test "$test_fraction" \
    --seed "$seed" -o "$split_dir"
  check_split
  cp "$split_dir/split.json" "$results/split.json"
  finish split
}

# The split in the run directory must be the one the committed results were made on.
check_split() {
  if [ -f "$results/split.json" ] && ! "$py" - "$results/split.json" "$split_dir/split.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
key = lambda m: [(f["part"], f["rows"], f["sha256"]) for f in m["files"]]
sys.exit(0 if key(a) == key(b) else 1)
EOF
  then
    echo "learning-stages: the split in $split_dir differs from the committed $results/split.json" >&2
    echo "  (other data, seed or fractions); the results would mix two splits. Stopping." >&2
    exit 1
  fi
}

need_split() {
  if [ ! -f "$train" ] || [ ! -f "$val" ] || [ ! -f "$test" ]; then
    echo "learning-stages: no split in $split_dir: run the split stage first" >&2
    exit 1
  fi
}

small=(--set use_dora=false --set lora_r=16 --set lora_alpha=32 --set max_prompt_length=512)
rl=(--set num_generations=8 --set "max_completion_length=$tokens"
  --set "temperature=${LEARN_RL_TEMPERATURE:-0.7}")
per_step=(--set per_device_train_batch_size=8 --set gradient_accumulation_steps=2
  --set "eval_steps=$rl_every" --set "save_steps=$rl_every")
recode_rl_after_sft "$sft_adapter" "$edit_weight"

# latest DIR PREFIX: the entry PREFIX<N>[.ext] of DIR with the largest N (none: empty).
latest() {
  { find "$1" -maxdepth 1 -name "$2*" 2>/dev/null || true; } \
    | sed -n "s|.*/$2\([0-9][0-9]*\)[^/]*\$|\1 &|p" | sort -n | tail -1 | cut -d' ' -f2-
}

# train_stage STAGE RUN STEPS CMD...: runs CMD --output $run/RUN (resuming a cut run, skipping a
# finished one), then copies its small artifacts to results/runs/RUN.
train_stage() {
  local name=$1 rname=$2 dir=$run/$2 steps=$3
  shift 3
  if [ -d "$dir/checkpoint-$steps" ]; then
    say "$name: finished earlier ($dir/checkpoint-$steps), skipped"
    [ -f "$results/runs/$rname/metrics.jsonl" ] || keep_run "$rname"
    return
  fi
  if [ -f "$results/stages/$name.json" ]; then
    say "$name: finished in an earlier run (results/.../stages/$name.json) whose checkpoints are not in $run; skipped (set LEARN_RUN_DIR to that run directory for the later stages)"
    return
  fi
  need_split
  begin "$name"
  local resume=()
  if compgen -G "$dir/checkpoint-*" > /dev/null; then
    resume=(--resume "$dir")
    say "$name: resuming from $(latest "$dir" checkpoint-)"
  fi
  cmd "$@" --output "$dir" "${resume[@]}" --quiet
  keep_run "$rname"
  finish "$name"
}

# keep_run RUN: copies a run's small artifacts (config, metrics, first and last validation on the
# validation split) to results/runs/RUN.
keep_run() {
  local dir=$run/$1 keep=$results/runs/$1 last
  mkdir -p "$keep"
  cp "$dir/config.toml" "$dir/metrics.jsonl" "$keep/"
  if [ -f "$dir/validation_start.json" ]; then cp "$dir/validation_start.json" "$keep/"; fi
  last=$(latest "$dir/validation" step-)
  if [ -n "$last" ]; then cp "$last" "$keep/validation-last.jsonl"; fi
}

stage_sft() {
  train_stage sft sft "$sft_steps" "$recode" sft --data "$train" --val-data "$val" \
    --val-limit "$val_limit" "${small[@]}" --set max_steps="$sft_steps" \
    --set learning_rate=2e-4 --set per_device_train_batch_size=1 \
    --set gradient_accumulation_steps=2 --set "max_completion_length=$tokens" \
    --set "save_steps=$sft_every" --set "eval_steps=$sft_every"
}

need_sft() {
  if [ ! -d "$sft_adapter" ]; then
    echo "learning-stages: $1 starts from the SFT adapter $sft_adapter, which is missing: run the sft stage first" >&2
    exit 1
  fi
}

stage_grpo() {
  [ -d "$run/grpo-after-sft/checkpoint-$grpo_steps" ] || [ -f "$results/stages/grpo.json" ] || need_sft grpo
  # KL 0.04 to the SFT policy.
  train_stage grpo grpo-after-sft "$grpo_steps" "$recode" train --algo grpo --data "$train" \
    --val-data "$val" --val-limit "$val_limit" "${small[@]}" "${rl[@]}" "${per_step[@]}" \
    "${after_sft[@]}" --set beta=0.04 --set max_steps="$grpo_steps"
}

stage_dapo() {
  [ -d "$run/dapo-after-sft/checkpoint-$dapo_steps" ] || [ -f "$results/stages/dapo.json" ] || need_sft dapo
  # Dynamic sampling over up to 3 generation batches, overlong shaping over the last 32 tokens.
  train_stage dapo dapo-after-sft "$dapo_steps" "$recode" train --algo dapo --data "$train" \
    --val-data "$val" --val-limit "$val_limit" "${small[@]}" "${rl[@]}" "${per_step[@]}" \
    "${after_sft[@]}" --set use_peft=true --set overlong_buffer_len=32 \
    --set max_num_gen_batches=3 --set max_steps="$dapo_steps"
}

# Greedy answers of one model on the test split, scored as validation scores them (format, ES*,
# EM*, edit_es_star; exact match, truncation): the step-0 validation of a one-step `recode sft`
# run whose validation data is the test split (the training step after it is thrown away).
test_model() {
  local name=$1 out=$results/test/$1.jsonl dir=$run/test-eval/$1 init=()
  if [ -f "$out" ]; then
    say "eval-test: $name done earlier ($out), skipped"
    return
  fi
  if [ "$name" != base ]; then
    if [ ! -d "${adapter[$name]}" ]; then
      say "eval-test: $name not run yet (no ${adapter[$name]}), skipped"
      stage_partial=1
      return
    fi
    init=(--init-adapter "${adapter[$name]}")
  fi
  say "eval-test: $name on $(test_rows) test prompts"
  rm -rf "$dir"
  cmd "$recode" sft --data "$train" --val-data "$test" --val-limit "$(test_rows)" "${small[@]}" \
    "${init[@]}" --set max_steps=1 --set eval_on_start=true --set eval_steps=0 \
    --set save_steps=0 --set per_device_train_batch_size=1 --set gradient_accumulation_steps=1 \
    --set "max_completion_length=$tokens" \
    --set 'reward_funcs=["format","es_star","em_star","edit_es_star"]' \
    --set 'reward_weights=[1.0,1.0,1.0,0.1]' --output "$dir" --quiet
  mkdir -p "$results/test"
  cp "$dir/validation_start.json" "$results/test/$name.summary.json"
  cp "$dir/validation/step-0.jsonl" "$out"
}

stage_eval_test() {
  need_split
  local models=(base sft grpo-after-sft dapo-after-sft) todo=0
  for m in "${models[@]}" copy; do [ -f "$results/test/$m.jsonl" ] || todo=1; done
  if [ $todo = 0 ]; then
    say "eval-test: every model done earlier, skipped"
    return
  fi
  begin eval-test
  for m in "${models[@]}"; do test_model "$m"; done
  if [ ! -f "$results/test/copy.jsonl" ]; then
    say "eval-test: copying the old code (no model)"
    "$py" - "$test" "$(test_rows)" "$run/test-eval/copy-input.jsonl" <<'EOF'
import json, sys
src, n, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [json.loads(l) for l in open(src) if l.strip()][:n]
with open(dst, "w") as f:
    for r in rows:
        old = r.get("old_code") or ""
        f.write(json.dumps({"completion": f" </think>\n<answer>\n```python\n{old}\n```\n</answer>",
                            "target": r.get("new_code") or "", "old_code": old}) + "\n")
EOF
    mkdir -p "$results/test"
    cmd "$recode" reward score --input "$run/test-eval/copy-input.jsonl" \
      --reward format,es_star,em_star,edit_es_star -o "$results/test/copy.jsonl"
  fi
  finish eval-test
}

# The RL run with the higher mean ES* in its last validation (validation split, never test).
best_rl() {
  "$py" - "$results/runs" <<'EOF'
import json, os, sys
best = []
for name in ("grpo-after-sft", "dapo-after-sft"):
    p = os.path.join(sys.argv[1], name, "validation-last.jsonl")
    if os.path.exists(p):
        rows = [json.loads(l) for l in open(p) if l.strip()]
        es = sum(r["reward_components"]["es_star"] for r in rows) / max(len(rows), 1)
        best.append((es, name))
if best:
    es, name = max(best)
    print(name, "(last validation ES* " + ", ".join(f"{n} {e:.4f}" for e, n in sorted(best, reverse=True)) + ")")
EOF
}

arena_model() {
  local name=$1 path=$2 out=$results/arena/$1 init=()
  if [ -f "$out/results.jsonl" ]; then
    say "eval-arena: $name done earlier ($out), skipped"
    return
  fi
  if [ -n "$path" ]; then
    if [ ! -d "$path" ]; then
      say "eval-arena: $name not run yet (no $path), skipped"
      stage_partial=1
      return
    fi
    init=(--adapter "$path")
  fi
  local limit=()
  [ "$arena_limit" -gt 0 ] && limit=(--limit "$arena_limit")
  say "eval-arena: $name on $(arena_problems) problems"
  cmd "$recode" eval run --bench codeupdatearena --data "$arena" "${init[@]}" -n "$arena_n" \
    --temperature "$arena_t" --max-new-tokens "$arena_tokens" "${limit[@]}" --output "$run/arena/$name"
  mkdir -p "$out"
  cp "$run/arena/$name/results.jsonl" "$run/arena/$name/summary.json" "$out/"
}

stage_eval_arena() {
  local best todo=0
  for m in base sft best-rl; do [ -f "$results/arena/$m/results.jsonl" ] || todo=1; done
  if [ $todo = 0 ]; then
    say "eval-arena: every model done earlier, skipped"
    return
  fi
  begin eval-arena
  arena_model base ""
  arena_model sft "$sft_adapter"
  best=$(best_rl)
  if [ -n "$best" ]; then
    mkdir -p "$results/arena"
    [ -f "$results/arena/best-rl.txt" ] || echo "$best" > "$results/arena/best-rl.txt"
    arena_model best-rl "${adapter[$(cut -d' ' -f1 "$results/arena/best-rl.txt")]}"
  else
    say "eval-arena: best RL not run yet (no RL validation in $results/runs)"
    stage_partial=1
  fi
  finish eval-arena
}

stage_report() {
  say "report: $report_out"
  # Paths inside the work tree are given relative to it, as a reader would type them.
  (cd "$root" && "$recode" report results "${results#"$root"/}" -o "${report_out#"$root"/}")
}

for s in "${stages[@]}"; do
  if [ "$stage" = all ] || [ "$stage" = "$s" ]; then
    "stage_${s//-/_}"
  fi
done
