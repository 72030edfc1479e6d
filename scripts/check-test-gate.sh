#!/usr/bin/env bash
# Self-check of the test gate: proves that scripts/test.sh exits non-zero when set-up, fmt,
# clippy, one Rust test or one Python test fails, and exits 0 when nothing fails.
#
# Each fault is injected into an otherwise passing run, and each failing case is paired with the
# same run without the fault, so a case cannot pass because the script broke for another reason.
#  - fmt, clippy, build and `cargo test` run through a stand-in `cargo` placed first on PATH; it
#    fails the one subcommand named by GATE_SHIM_FAIL (cargo test: one failing test, exit 101)
#    and passes every other (`cargo metadata` goes to the real cargo).
#  - pytest runs for real on python/tests/test_gate_selfcheck.py, whose one test fails when
#    RECODE_GATE_SELFCHECK_FAIL=1.
#  - set-up fails for real: RECODE_CACHE points below a regular file, so it cannot be created.
# Runs in seconds once scripts/setup.sh has run (its products are cached).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

real_cargo=$(command -v cargo)
work=$(mktemp -d "${TMPDIR:-/tmp}/recode-gate.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
cat > "$work/bin/cargo" <<EOF
#!/usr/bin/env bash
# Stand-in cargo for the gate self-check: fails the subcommand named by GATE_SHIM_FAIL.
sub=\${1:-}
[ "\$sub" = metadata ] && exec "$real_cargo" "\$@"
if [ "\$sub" = "\${GATE_SHIM_FAIL:-}" ]; then
  case "\$sub" in
    test)
      echo "running 2 tests"
      echo "test gate::passes ... ok"
      echo "test gate::injected_failure ... FAILED"
      echo "test result: FAILED. 1 passed; 1 failed; 0 ignored"
      echo "error: test failed, to rerun pass \\\`-p gate --lib\\\`"
      exit 101 ;;
    fmt) echo "Diff in gate.rs at line 1" ; exit 1 ;;
    *) echo "error: injected \$sub failure" >&2; exit 101 ;;
  esac
fi
if [ "\$sub" = test ]; then echo "running 1 test"; echo "test gate::passes ... ok"; fi
exit 0
EOF
chmod +x "$work/bin/cargo"

failures=0
# expect STATUS(pass|fail) NAME MARKER ENV… : runs test.sh with ENV; checks the exit status and,
# for failures, that stderr+stdout contain MARKER (the fault we injected, not another one).
expect() {
  local want=$1 name=$2 marker=$3
  shift 3
  local out=$work/$name.log status=0
  env "$@" "$root/scripts/test.sh" > "$out" 2>&1 || status=$?
  if [ "$want" = pass ] && [ "$status" -eq 0 ]; then
    echo "ok   $name: exit 0"
  elif [ "$want" = fail ] && [ "$status" -ne 0 ] && grep -qF -- "$marker" "$out"; then
    echo "ok   $name: exit $status"
  else
    echo "FAIL $name: expected $want, got exit $status; log:" >&2
    sed 's/^/     | /' "$out" >&2
    failures=$((failures + 1))
  fi
}

shim_path="PATH=$work/bin:$PATH"
shim_steps="RECODE_TEST_STEPS=fmt clippy build rust"
expect pass cargo-steps-pass "" "$shim_path" "$shim_steps"
expect fail fmt-fails "Diff in gate.rs" "$shim_path" "$shim_steps" GATE_SHIM_FAIL=fmt
expect fail clippy-fails "injected clippy failure" "$shim_path" "$shim_steps" GATE_SHIM_FAIL=clippy
expect fail build-fails "injected build failure" "$shim_path" "$shim_steps" GATE_SHIM_FAIL=build
expect fail rust-test-fails "cargo test failed (exit 101)" "$shim_path" "$shim_steps" GATE_SHIM_FAIL=test

py_steps=("RECODE_TEST_STEPS=pytest" "RECODE_PYTEST_ARGS=python/tests/test_gate_selfcheck.py")
expect pass pytest-passes "" "${py_steps[@]}" RECODE_GATE_SELFCHECK_FAIL=0
expect fail pytest-fails "1 failed" "${py_steps[@]}" RECODE_GATE_SELFCHECK_FAIL=1

touch "$work/not-a-directory"
expect fail setup-fails "set-up failed (scripts/setup.sh exit" "$shim_path" "RECODE_TEST_STEPS=fmt" "RECODE_CACHE=$work/not-a-directory/cache"

if [ "$failures" -ne 0 ]; then
  echo "gate self-check: $failures case(s) wrong: scripts/test.sh does not report failures honestly" >&2
  exit 1
fi
echo "gate self-check: scripts/test.sh fails on every injected fault and passes without one"
