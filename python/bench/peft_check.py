"""Checks that Hugging Face PEFT loads an adapter saved by recode and computes what recode does.

Loads the base GGUF as a plain f32 transformers model, applies the adapter directory with
`PeftModel.from_pretrained` (PEFT's own loader: key names, scaling, DoRA magnitudes), decodes
greedily from the same prompt token ids as `recode generate --json --logprobs K`, and compares
the generated tokens and per-token log-probabilities. Prints one JSON object; exits 1 on a
mismatch. Needs the bench venv (scripts/setup-bench.sh):

    recode generate --model M.gguf --adapter DIR --prompt TEXT --temperature 0 \\
        --max-new-tokens 32 --logprobs 1 --json > recode.json
    python python/bench/peft_check.py --model M.gguf --adapter DIR --recode recode.json
"""

import argparse
import json
import math
import os
import sys

# train_peer.py is the peer of `recode bench train`, kept with the benchmarks in recode-bench.
sys.path.insert(
    0,
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "recode-bench", "peers"),
)
from train_peer import load_plain_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="base GGUF file")
    ap.add_argument("--adapter", required=True, help="PEFT adapter directory written by recode")
    ap.add_argument("--recode", required=True, help="`recode generate --json` output (one line)")
    ap.add_argument("--tolerance", type=float, default=2e-3, help="max |log-prob difference|")
    args = ap.parse_args()

    import torch
    from peft import PeftModel

    with open(args.recode) as f:
        rec = json.loads(f.readline())
    prompt_ids = rec["prompt_token_ids"]
    want_ids = rec["token_ids"]
    want_lp = rec["logprobs"]["token_logprobs"]

    base, _ = load_plain_model(args.model)
    model = PeftModel.from_pretrained(base, args.adapter)
    model.eval()
    ids = torch.tensor([prompt_ids])
    got_ids, got_lp = [], []
    with torch.inference_mode():
        for _ in range(len(want_ids)):
            logits = model(input_ids=ids).logits[0, -1].double()
            lp = torch.log_softmax(logits, -1)
            tok = int(torch.argmax(lp))
            got_ids.append(tok)
            got_lp.append(float(lp[tok]))
            ids = torch.cat([ids, torch.tensor([[tok]])], 1)
    same = sum(1 for a, b in zip(got_ids, want_ids) if a == b)
    first_diff = next((i for i, (a, b) in enumerate(zip(got_ids, want_ids)) if a != b), None)
    upto = first_diff if first_diff is not None else len(want_ids)
    max_lp = max((abs(a - b) for a, b in zip(got_lp[:upto], want_lp[:upto])), default=0.0)
    report = {
        "tokens": len(want_ids),
        "same_tokens": same,
        "first_difference": first_diff,
        "max_abs_logprob_diff": max_lp,
        "ok": first_diff is None and max_lp <= args.tolerance and not math.isnan(max_lp),
    }
    print(json.dumps(report))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
