"""Benchmark peer (a): a fresh interpreter per program, for `recode bench eval` only.

Reads one program on stdin, runs `exec(program, {})` under the 15 s timer and prints the
verdict; the caller kills the interpreter at 16 s. numpy/torch are seeded with 42 only if the
program imports them (there is no pre-import).
"""

import signal
import sys

TIMEOUT = float(sys.argv[1])
program = sys.stdin.read()


class TimeoutException(Exception):
    pass


def on_alarm(signum, frame):
    raise TimeoutException()


out = sys.stdout
sys.stdout = sys.stderr
try:
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    exec(program, {})
    signal.setitimer(signal.ITIMER_REAL, 0)
    verdict = "passed"
except TimeoutException:
    verdict = "timed out"
except AssertionError:
    verdict = "failed: assertion error"
except BaseException as exc:
    verdict = f"failed: {exc}"
out.write(verdict[:4000])
out.flush()
