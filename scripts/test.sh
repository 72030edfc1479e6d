#!/usr/bin/env bash
# The whole test suite: set-up (idempotent, cached), format and lint checks, Rust tests,
# the Python bindings and Python-side tests, and a self-check that this gate fails when a step
# fails. `.ci/run` calls exactly this script; it exits non-zero when any step fails.
#
# RECODE_TEST_STEPS selects steps (space-separated; default: all, in this order):
#   fmt clippy build evalenv rust bindings pytest gate
# RECODE_PYTEST_ARGS replaces pytest's default selection (python/tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

all_steps="fmt clippy build evalenv rust bindings pytest gate"
steps=" ${RECODE_TEST_STEPS:-$all_steps} "
for s in $steps; do
  case " $all_steps " in *" $s "*) ;; *) echo "test.sh: unknown step '$s' in RECODE_TEST_STEPS (steps: $all_steps)" >&2; exit 2 ;; esac
done
wants() { [[ "$steps" == *" $1 "* ]]; }
step() { printf '\n==> %s\n' "$*" >&2; }

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# Set-up (idempotent, cached); a failure stops the suite with set-up's status.
recode_setup || exit $?
export RECODE_SHARED=${RECODE_SHARED:-$root/../shared}
# A fresh clone gains nothing from incremental state; skipping it saves gigabytes of disk.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
target_dir=$(recode_target_dir)
export RECODE_BIN=$target_dir/debug/recode

if wants fmt; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
fi

if wants clippy; then
  step "cargo clippy (deny warnings)"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

if wants build; then
  step "cargo build (the recode binary used by the Python tests)"
  cargo build --quiet -p recode-cli
fi

if wants evalenv; then
  step "evaluation virtualenv (pinned benchmark packages; cached after the first run)"
  "$RECODE_BIN" eval setup
fi

if wants rust; then
  step "cargo test"
  # Quiet log: passing tests and 'running N tests' lines are filtered out, everything else
  # (failures, panics, summaries) is shown. The status that counts is cargo's own, taken from
  # PIPESTATUS right after the pipeline; grep finding nothing to print is not a failure.
  log=$(mktemp "${TMPDIR:-/tmp}/recode-cargo-test.XXXXXX")
  set +e
  cargo test --workspace --no-fail-fast --quiet 2>&1 | tee "$log" | grep -Ev '^(running [0-9]+ tests?|test .* \.\.\. ok)$'
  statuses=("${PIPESTATUS[@]}")
  set -e
  if [ "${statuses[0]}" -ne 0 ]; then
    echo "cargo test failed (exit ${statuses[0]}); full log: $log" >&2
    exit "${statuses[0]}"
  fi
  if [ "${statuses[1]}" -ne 0 ]; then
    echo "could not write the cargo test log $log (tee exit ${statuses[1]})" >&2
    exit 1
  fi
  rm -f "$log"
fi

if wants bindings; then
  step "Python bindings (maturin)"
  rm -f "$target_dir"/wheels/recode-*.whl
  "$RECODE_VENV/bin/maturin" build --quiet --profile dev -i "$RECODE_VENV/bin/python" -m crates/recode-py/Cargo.toml -o "$target_dir/wheels" >&2
  "$RECODE_VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps "$target_dir"/wheels/recode-*.whl >&2
fi

if wants pytest; then
  step "pytest"
  # shellcheck disable=SC2086 # RECODE_PYTEST_ARGS is a word list on purpose
  "$RECODE_VENV/bin/python" -m pytest -q ${RECODE_PYTEST_ARGS:-python/tests}
fi

if wants gate; then
  step "gate self-check: this script fails when a step fails"
  scripts/check-test-gate.sh
fi

step "all steps passed: $steps"
