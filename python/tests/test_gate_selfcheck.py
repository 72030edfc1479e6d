"""Stand-in failing test for scripts/check-test-gate.sh.

The gate self-check runs pytest on this file with RECODE_GATE_SELFCHECK_FAIL=1 to prove that one
failing Python test makes scripts/test.sh exit non-zero; in the normal suite the test passes.
"""
import os


def test_fails_only_when_the_gate_self_check_asks():
    assert os.environ.get("RECODE_GATE_SELFCHECK_FAIL") != "1", "deliberate failure (gate self-check)"
