"""Benchmark peer (b): the benchmark's own approach, for `recode bench eval` only.

A parent that pre-imports numpy/pandas/torch/sympy/scipy and seeds them with 42, then forks one
UNGUARDED child per program (no namespaces, rlimits, uid drop or process-group kill): the child
runs `exec(program, {})` under the 15 s timer and sends its verdict through a pipe; the parent
waits at most 16 s. Reads a JSON list of programs on stdin, prints a JSON list of verdicts.
"""

import json
import os
import select
import signal
import sys

for name in ("numpy", "pandas", "torch", "sympy", "scipy"):
    try:
        __import__(name)
    except ImportError:
        pass
import random

random.seed(42)
if "numpy" in sys.modules:
    sys.modules["numpy"].random.seed(42)
if "torch" in sys.modules:
    sys.modules["torch"].manual_seed(42)

TIMEOUT, HARD = float(sys.argv[1]), float(sys.argv[2])


class TimeoutException(Exception):
    pass


def on_alarm(signum, frame):
    raise TimeoutException()


def child(program, w):
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
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
    os.write(w, verdict.encode()[:4000])
    os._exit(0)


verdicts = []
for program in json.load(sys.stdin):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        child(program, w)
    os.close(w)
    ready, _, _ = select.select([r], [], [], HARD)
    data = os.read(r, 8192) if ready else b""
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    os.waitpid(pid, 0)
    os.close(r)
    verdicts.append(data.decode("utf-8", "replace") or "timed out")
json.dump(verdicts, sys.stdout)
