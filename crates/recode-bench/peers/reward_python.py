"""Peer side of `recode bench reward`: (c) the paper's pure-Python reference reward and (d) the
same reward written with rapidfuzz + ast, timed on the pairs recode scored.

Run through `recode bench reward`, or by hand:
    python reward_python.py pairs.jsonl REPO/python/reference N_REFERENCE
Prints one JSON object: seconds per pair of each (the reference is timed on the first
N_REFERENCE pairs only: it is slow).
"""

import ast
import json
import re
import sys
import time

sys.path.insert(0, sys.argv[2])
import reward_paper  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
n_ref = int(sys.argv[3])
pairs = [(r["completion"], r["target"]) for r in rows]
t = time.perf_counter()
for c, g in pairs[:n_ref]:
    reward_paper.score(c, g)
ref_per_pair = (time.perf_counter() - t) / max(1, min(n_ref, len(pairs)))
BLOCK = re.compile(r"```python\n(.*?)\n```", re.S)
FMT = re.compile(r"^<think>([^<]*(?:<(?!/?think>)[^<]*)*)</think>\s*<answer>([\s\S]*?)</answer>\s*$", re.S)


def fast(c, g):
    fmt = 1.0 if FMT.search("<think>" + c) else -1.0
    m = BLOCK.search(c)
    if not m:
        return fmt - 2.0
    code = reward_paper.normalize(m.group(1).strip())
    try:
        ast.parse(code)
    except Exception:
        return fmt - 2.0
    ref = reward_paper.normalize(g)
    return fmt + Levenshtein.normalized_similarity(code, ref) * 3.5 - 1.5


t = time.perf_counter()
for c, g in pairs:
    fast(c, g)
fast_per_pair = (time.perf_counter() - t) / max(1, len(pairs))
print(json.dumps({"reference_per_pair": ref_per_pair, "rapidfuzz_per_pair": fast_per_pair}))
