"""Peer side of `recode bench generate`: Hugging Face transformers `generate` on PyTorch CPU,
or (with `--peer llamacpp`) llama.cpp through llama-cpp-python.

Loads the same SmolLM2 GGUF that recode uses (transformers dequantises it to f32), takes the
already tokenised prompts from recode (so both sides see identical token ids), and measures, for
each requested run, the prefill time (one forward over the left-padded batch) and the decode
throughput of `generate` with a fixed number of new tokens (eos ignored): the tokens after the
first over the time from `generate`'s first token to its end. Prints one JSON object.

Run through `recode bench generate`, or by hand:
    python generate_peer.py --model M.gguf --runs runs.json [--threads 2]
where runs.json is [{"name": ..., "prompts": [[ids...], ...], "temperature": T, "new_tokens": N,
"seed": S, "repeats": R}, ...]. Each run is timed R times (default 1) after one warm-up; the
median prefill and decode times are reported, every repetition's rates under "repeats".
"""

import argparse
import json
import os
import statistics
import sys
import time

from peer_memory import peak_rss_bytes


def left_pad(torch, prompts, pad_id):
    """[B, T] ids and mask, padded on the left as recode does."""
    t = max(len(p) for p in prompts)
    ids = [[pad_id] * (t - len(p)) + list(p) for p in prompts]
    mask = [[0] * (t - len(p)) + [1] * len(p) for p in prompts]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


class TokenClock:
    """A `generate` streamer that notes when the first new token arrives (`put` sees the prompt
    first, then each step's tokens), so decoding is timed inside `generate` itself rather than
    as its total minus a separately timed prefill, which can come out negative for short runs."""

    def __init__(self, time):
        self.time = time
        self.calls = 0
        self.first_token = None

    def put(self, _value):
        self.calls += 1
        if self.calls == 2:
            self.first_token = self.time.perf_counter()

    def end(self):
        pass


def run_one(torch, model, pad_id, run):
    prompts = run["prompts"]
    n_new = int(run["new_tokens"])
    if n_new < 2:
        raise SystemExit(f"run {run['name']}: new_tokens must be at least 2 to time decoding")
    temperature = float(run["temperature"])
    ids, mask = left_pad(torch, prompts, pad_id)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        # Warm-up (first-call allocations and kernel selection are not what we measure).
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2, do_sample=False,
                       pad_token_id=pad_id)
        prefills, decodes = [], []
        for _ in range(int(run.get("repeats", 1))):
            # Prefill alone: one forward over the padded prompts (what generate does first).
            t0 = time.perf_counter()
            model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
            prefill = time.perf_counter() - t0
            torch.manual_seed(int(run.get("seed", 0)))
            kwargs = dict(
                max_new_tokens=n_new,
                min_new_tokens=n_new,
                pad_token_id=pad_id,
                use_cache=True,
            )
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
            else:
                kwargs.update(do_sample=False)
            clock = TokenClock(time)
            out = model.generate(input_ids=ids, attention_mask=mask, streamer=clock, **kwargs)
            end = time.perf_counter()
            prefills.append(prefill)
            decodes.append(end - clock.first_token)
    generated = int((out.shape[1] - ids.shape[1]) * out.shape[0])
    # The decode span starts with the first token in hand: it produces the others.
    return figures(run, generated, prefills, decodes, decoded=generated - int(out.shape[0]))


def figures(run, generated, prefills, decodes, decoded=None):
    """The reported figures of one run from its token count and the prefill/decode seconds of
    each repetition (the medians count); `decoded` tokens were made in the decode time (default:
    all generated ones)."""
    decoded = generated if decoded is None else decoded
    prompt_tokens = sum(len(p) for p in run["prompts"])
    prefill, decode = statistics.median(prefills), statistics.median(decodes)
    return {
        "run": run["name"],
        "batch": len(run["prompts"]),
        "prompt_tokens": prompt_tokens,
        "generated_tokens": generated,
        "prefill_secs": prefill,
        "prefill_tok_s": prompt_tokens / prefill,
        "decode_secs": decode,
        "decode_tok_s": decoded / decode,
        "repeats": {
            "prefill_tok_s": [prompt_tokens / t for t in prefills],
            "decode_tok_s": [decoded / t for t in decodes],
        },
    }


def run_llamacpp(llm, run):
    """One run with llama.cpp on the same GGUF and token ids. llama-cpp-python's API decodes one
    sequence at a time, so a batch is its prompts one after the other (a fresh context each):
    the tokens/s are llama.cpp's single-sequence throughput, not batched decoding."""
    n_new = int(run["new_tokens"])
    temperature = float(run["temperature"])
    prefills, decodes = [], []
    for _ in range(int(run.get("repeats", 1))):
        prefill = decode = 0.0
        generated = 0
        for i, prompt in enumerate(run["prompts"]):
            llm.reset()
            llm.set_seed(int(run.get("seed", 0)) + i)
            t0 = time.perf_counter()
            llm.eval(list(prompt))
            prefill += time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(n_new):
                if temperature > 0:
                    tok = llm.sample(temp=temperature, top_p=1.0, top_k=0, min_p=0.0)
                else:
                    tok = llm.sample(temp=0.0)
                llm.eval([tok])
                generated += 1
            decode += time.perf_counter() - t0
        prefills.append(prefill)
        decodes.append(decode)
    return {**figures(run, generated, prefills, decodes), "sequential": True}


def main_llamacpp(args, runs):
    import llama_cpp

    t0 = time.perf_counter()
    n_ctx = max(len(p) for r in runs for p in r["prompts"]) + max(r["new_tokens"] for r in runs) + 8
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=n_ctx,
        n_batch=512,
        n_threads=args.threads or None,
        n_threads_batch=args.threads or None,
        verbose=False,
    )
    load_secs = time.perf_counter() - t0
    # Warm-up.
    llm.eval(list(runs[0]["prompts"][0][:8]))
    llm.reset()
    results = [run_llamacpp(llm, r) for r in runs]
    return {
        "peer": "llama.cpp",
        "versions": {"llama_cpp_python": llama_cpp.__version__},
        "threads": args.threads,
        "dtype": "gguf (Q4_1 weights, quantised activations)",
        "load_secs": load_secs,
        "runs": results,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="GGUF file (same as recode's)")
    ap.add_argument("--runs", required=True, help="JSON file with the runs (see module doc)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--peer", choices=["transformers", "llamacpp"], default="transformers")
    args = ap.parse_args()
    if args.peer == "llamacpp":
        with open(args.runs) as f:
            runs = json.load(f)
        json.dump(main_llamacpp(args, runs), sys.stdout)
        sys.stdout.write("\n")
        return

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    with open(args.runs) as f:
        runs = json.load(f)
    path = os.path.abspath(args.model)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32
    )
    model.eval()
    load_secs = time.perf_counter() - t0
    pad_id = model.config.pad_token_id
    if pad_id is None:
        pad_id = model.config.eos_token_id
    if isinstance(pad_id, list):
        pad_id = pad_id[0]
    pad_id = int(pad_id or 0)
    results = [run_one(torch, model, pad_id, r) for r in runs]
    json.dump(
        {
            "peer": "transformers",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "threads": torch.get_num_threads(),
            "dtype": "float32",
            "load_secs": load_secs,
            "runs": results,
            "peak_rss_bytes": peak_rss_bytes(),
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
