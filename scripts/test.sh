#!/usr/bin/env bash
# The whole test suite: set-up (idempotent, cached), format and lint checks, Rust tests,
# the Python bindings and Python-side tests. `.ci/run` calls exactly this script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
eval "$(scripts/setup.sh)"
export RECODE_VENV RECODE_SMOLLM2_GGUF RECODE_QWEN_TOKENIZER_DIR
export RECODE_SHARED=${RECODE_SHARED:-$root/../shared}
# A fresh clone gains nothing from incremental state; skipping it saves gigabytes of disk.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo build (the recode binary used by the Python tests)"
cargo build --quiet -p recode-cli
export RECODE_BIN=$root/target/debug/recode

step "evaluation virtualenv (pinned benchmark packages; cached after the first run)"
"$RECODE_BIN" eval setup

step "cargo test"
cargo test --workspace --no-fail-fast --quiet 2>&1 | tee /tmp/recode-cargo-test.log | grep -Ev '^(running [0-9]+ tests?|test .* \.\.\. ok)$' || true
test "${PIPESTATUS[0]}" -eq 0

step "Python bindings (maturin) and pytest"
if [ -f crates/recode-py/pyproject.toml ]; then
  rm -f target/wheels/recode-*.whl
  "$RECODE_VENV/bin/maturin" build --quiet --profile dev -i "$RECODE_VENV/bin/python" -m crates/recode-py/Cargo.toml -o target/wheels >&2
  "$RECODE_VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps target/wheels/recode-*.whl >&2
fi
"$RECODE_VENV/bin/python" -m pytest -q python/tests
