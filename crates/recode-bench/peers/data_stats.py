"""Peer side of `recode bench data`: the core of `recode data stats` written the way a Python user
would (json + ast: load, duplicates, nulls, version prefixes, syntax checks), timed inside the
interpreter (start-up excluded).

Run through `recode bench data`, or by hand:
    python data_stats.py rows.jsonl REPEAT
Prints one JSON object: the best seconds of REPEAT runs and the counts recode checks against.
"""

import ast
import json
import sys
import time


def stats(path):
    rows = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    seen, dups = set(), 0
    for r in rows:
        k = json.dumps(r, sort_keys=True)
        dups += k in seen
        seen.add(k)
    nulls = {f: sum(r[f] is None for r in rows) for f in rows[0]}  # noqa: F841
    prefix = sum(not r["new_version"].startswith("==") for r in rows)  # noqa: F841
    bad = {"old_code": 0, "new_code": 0}
    for r in rows:
        for f in bad:
            if r[f] is None:
                continue
            try:
                ast.parse(r[f])
            except SyntaxError:
                bad[f] += 1
    deps = {}
    for r in rows:
        deps[r["dependency"].lower()] = deps.get(r["dependency"].lower(), 0) + 1
    return len(rows), dups, bad


best = float("inf")
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    out = stats(sys.argv[1])
    best = min(best, time.perf_counter() - t)
print(json.dumps({"seconds": best, "rows": out[0], "dups": out[1], "bad": out[2]}))
