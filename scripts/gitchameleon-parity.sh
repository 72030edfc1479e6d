#!/usr/bin/env bash
# Parity of recode's GitChameleon scoring with the benchmark's own harness (outside CI).
# Runs the ground truth of the selected problems twice, in the same environments:
#  1. recode eval check-refs --bench gitchameleon (sandboxed exec jobs);
#  2. the harness's run_eval.py (mrcabbage972/GitChameleonBenchmark, a checkout or a mirror's
#     `git archive` holding gitchameleon/*.py), unsandboxed, from a Python 3.9 venv with pandas,
#     tqdm and pydantic (made once in $RECODE_CACHE/venv-gc-harness), its env_dir made of links
#     gcham_venv_<key> -> recode's environments;
# then prints every problem whose hidden verdict differs, and the totals. It builds nothing
# (`recode eval setup --bench gitchameleon` first); problems without an environment fail in the
# harness and are env_incomplete in recode. An OUT_DIR already
# holding recode.jsonl and recode-check.txt (check-refs --out/--json) reuses them.
# Usage: scripts/gitchameleon-parity.sh HARNESS_DIR NAME[==VERSION],... [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
harness=$(cd "$1" && pwd)
selection=$2
out=${3:-$(mktemp -d)}
mkdir -p "$out"
cd "$root"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
log() { printf '[gitchameleon-parity] %s\n' "$*" >&2; }
[ -f "$harness/gitchameleon/run_eval.py" ] || { echo "no gitchameleon/run_eval.py under $harness" >&2; exit 2; }

recode_setup || exit $?
cache=${RECODE_CACHE:-$HOME/.cache/recode}
data=${RECODE_SHARED:-$root/../shared}/data/gitchameleon
cargo build --quiet -p recode-cli
recode="$(recode_target_dir)/debug/recode"

hv=$cache/venv-gc-harness
if [ ! -x "$hv/bin/python" ]; then
  py39=$("$RECODE_VENV/bin/python" -c 'import glob,os; c=sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9.*/bin/python"))); print(c[-1] if c else "python3.9")')
  log "creating the harness's venv with $py39"
  "$py39" -m venv "$hv"
  "$hv/bin/python" -m pip install --quiet --disable-pip-version-check pandas tqdm pydantic >&2
fi

"$recode" eval setup --bench gitchameleon --data "$data" --library "$selection" --status --json > "$out/envs.json"
if [ -s "$out/recode.jsonl" ] && [ -s "$out/recode-check.txt" ]; then
  log "reusing recode's verdicts in $out/recode.jsonl"
else
  "$recode" eval check-refs --bench gitchameleon --data "$data" --library "$selection" \
    --out "$out/recode.jsonl" --json > "$out/recode-check.txt"
fi
t0=$(date +%s.%N)
"$RECODE_VENV/bin/python" - "$out" "$data" <<'PY'
import json, os, sys
out, data = sys.argv[1], sys.argv[2]
envs = json.loads(open(os.path.join(out, "envs.json")).read().splitlines()[-1])["environments"]
env_dir = os.path.join(out, "harness-envs")
os.makedirs(env_dir, exist_ok=True)
for e in envs:
    link = os.path.join(env_dir, "gcham_venv_" + e["key"])
    if "dir" in e and not os.path.lexists(link):
        os.symlink(e["dir"], link)
ids = [json.loads(l)["id"] for l in open(os.path.join(out, "recode.jsonl"))]
truth = {json.loads(l)["example_id"]: l for l in open(os.path.join(data, "ground_truth_solutions.jsonl"))}
with open(os.path.join(out, "solutions.jsonl"), "w") as f:
    for i in ids:
        f.write(truth[str(i)])
PY
log "running the harness on $(wc -l < "$out/solutions.jsonl") problems"
(cd "$out" && OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$harness" \
  "$hv/bin/python" -m gitchameleon.run_eval --dataset_file "$data/dataset.jsonl" \
  --solution_file "$out/solutions.jsonl" --env_dir "$out/harness-envs" \
  --test_dir "$data/hidden_tests" --workers 1 > "$out/harness.log" 2>&1)
harness_secs=$("$RECODE_VENV/bin/python" -c "import time; print(round(time.time() - $t0, 1))")
"$RECODE_VENV/bin/python" - "$out" "$harness_secs" <<'PY'
import csv, json, os, sys
out, secs = sys.argv[1], sys.argv[2]
ours = {}
for l in open(os.path.join(out, "recode.jsonl")):
    r = json.loads(l)
    ours[r["id"]] = r
theirs = {int(r["example_id"]): r for r in csv.DictReader(open(os.path.join(out, "solutions_eval_results.csv")))}
differ = []
for i, r in ours.items():
    h = theirs[i]["passed"] == "True"
    if h != r["hidden"]["passed"]:
        differ.append((i, h, r["hidden"]["passed"], r["hidden"]["error_class"], theirs[i]["output"][-300:]))
    vis_h = theirs[i]["passed_manual"] == "True"
    if r.get("visible") and vis_h != r["visible"]["passed_harness"]:
        differ.append((i, "visible", vis_h, r["visible"]["passed_harness"], theirs[i]["output_manual"][-300:]))
hp = sum(t["passed"] == "True" for t in theirs.values())
rp = sum(r["hidden"]["passed"] for r in ours.values())
print(f"{len(ours)} problems: harness {hp} passed ({secs} s), recode {rp} passed; {len(differ)} differences")
for d in differ:
    print("  DIFF", d)
print(f"files: {out}")
PY
