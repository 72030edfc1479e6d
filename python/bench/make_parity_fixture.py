"""Writes the committed transformers parity fixture of recode-model (run once, by hand).

Hugging Face transformers loads the SmolLM2 GGUF (dequantised to float32) and computes, for a few
real prompts, the top-k next-token log-probabilities at the last positions and at positions spread
over the prompt (each the distribution of the token after it); the fixture records the
prompts' text and token ids (transformers' tokenizer), those log-probabilities and the versions of
torch/transformers/gguf used. crates/recode-model/tests/transformers_parity.rs loads the same GGUF
with recode and compares.

Prompts: ReCode training prompts of three libraries rendered by `recode data render --index I`
(ChatML, continuing the assistant prefix) and one short chat rendered with the model's own chat
template by transformers.

    eval "$(scripts/setup-bench.sh)"   # torch, transformers, gguf
    cargo build -p recode-cli
    $RECODE_BENCH_VENV/bin/python python/bench/make_parity_fixture.py \\
        --model ~/.cache/recode/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --recode target/debug/recode --data ../shared/data/recode/api_update.jsonl \\
        --out crates/recode-model/tests/fixtures/smollm2_transformers_top5.json
"""

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys

ROWS = [0, 500, 1000]  # JAX, pandas, scikit-learn
CHAT = "Write a Python function that returns the n-th Fibonacci number."


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the SmolLM2 GGUF file")
    ap.add_argument("--recode", required=True, help="the recode binary (renders the prompts)")
    ap.add_argument("--data", required=True, help="ReCode api_update.jsonl")
    ap.add_argument("--out", required=True, help="fixture JSON to write")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--positions", type=int, default=3,
                    help="positions per prompt: this many at the end and as many spread over the body")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = os.path.abspath(args.model)
    where = dict(pretrained_model_name_or_path=os.path.dirname(path), gguf_file=os.path.basename(path))
    tok = AutoTokenizer.from_pretrained(**where)
    model = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    model.eval()

    prompts = []
    for row in ROWS:
        text = subprocess.run(
            [args.recode, "data", "render", args.data, "--index", str(row)],
            check=True, capture_output=True, text=True,
        ).stdout
        prompts.append({"name": f"recode-row-{row}", "text": text})
    chat = tok.apply_chat_template([{"role": "user", "content": CHAT}], tokenize=False,
                                   add_generation_prompt=True)
    prompts.append({"name": "chat", "text": chat})

    for p in prompts:
        ids = tok(p["text"], add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        p["input_ids"] = ids
        p["positions"] = []
        n, k = len(ids), args.positions
        body = [n * (i + 1) // (k + 1) for i in range(k)]
        for pos in sorted(set(body + list(range(n - k, n)))):
            top = torch.topk(logprobs[pos], args.top_k)
            p["positions"].append({
                "position": pos,
                "top_ids": top.indices.tolist(),
                "top_logprobs": top.values.tolist(),
            })

    fixture = {
        "about": "Top-k next-token log-probabilities of SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised "
                 "to float32) computed by Hugging Face transformers; input ids from transformers' "
                 "GGUF tokenizer. Written by python/bench/make_parity_fixture.py.",
        "command": " ".join(["python", "python/bench/make_parity_fixture.py"] + sys.argv[1:]),
        "model_file": os.path.basename(path),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "gguf": importlib.metadata.version("gguf"),
            "python": sys.version.split()[0],
        },
        "top_k": args.top_k,
        "prompts": prompts,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(fixture, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}: {len(prompts)} prompts, {sum(len(p['input_ids']) for p in prompts)} tokens")


if __name__ == "__main__":
    main()
