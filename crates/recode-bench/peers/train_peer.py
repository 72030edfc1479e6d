"""Peer side of `recode bench train`: TRL's GRPOTrainer with a PEFT LoRA adapter on PyTorch CPU.

Loads the same SmolLM2 GGUF that recode trains (transformers dequantises it to f32; since it
refuses to train or save a GGUF-loaded model, the weights are copied into a plain f32 model),
takes the same prompt rows (`recode data export --format trl-jsonl`), and runs `--steps` GRPO
steps with the given group size, completion length and LoRA settings. The reward is a cheap
similarity to the target (difflib), so step time is generation + learning, as on recode's side
(its rule-based rewards take microseconds). Prints one JSON object: per-step wall time, the
time spent inside `generate`, completion lengths and peak RSS.

Run through `recode bench train`, or by hand:
    python train_peer.py --model M.gguf --data rows.jsonl --steps 3 [--threads 2]
"""

import argparse
import difflib
import json
import os
import sys
import tempfile
import time

from peer_memory import peak_rss_bytes


def load_plain_model(gguf_path):
    """(model, tokenizer) from a GGUF file as a plain, trainable f32 transformers model.

    transformers dequantises the GGUF but marks the result quantised (it refuses to train or
    save it), so the weights are copied into a model built from the same config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = os.path.abspath(gguf_path)
    where, name = os.path.dirname(path), os.path.basename(path)
    gguf_model = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
    model = AutoModelForCausalLM.from_config(gguf_model.config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise SystemExit(f"weight copy mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="GGUF file (same as recode's)")
    ap.add_argument("--data", required=True, help="TRL conversational rows (prompt, target)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--num-generations", type=int, default=8)
    ap.add_argument("--max-completion-length", type=int, default=128)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=float, default=32.0)
    ap.add_argument("--target-modules", default="q_proj,k_proj,v_proj,o_proj")
    ap.add_argument("--beta", type=float, default=0.001)
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()

    import torch
    import transformers
    import peft
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from transformers.generation.utils import GenerationMixin
    from trl import GRPOConfig, GRPOTrainer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    with open(args.data) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    dataset = Dataset.from_list([{"prompt": r["prompt"], "target": r["target"]} for r in rows])

    work = tempfile.mkdtemp(prefix="recode-trl-peer-")  # TRL's output_dir (nothing saved)
    t0 = time.perf_counter()
    model, tokenizer = load_plain_model(args.model)
    load_secs = time.perf_counter() - t0

    # Time spent in generate (TRL calls the unwrapped model's `generate`).
    gen_time = [0.0]
    original_generate = GenerationMixin.generate

    def timed_generate(self, *a, **kw):
        t = time.perf_counter()
        try:
            return original_generate(self, *a, **kw)
        finally:
            gen_time[0] += time.perf_counter() - t

    GenerationMixin.generate = timed_generate

    lengths = []

    def similarity_reward(completions, target, **_):
        out = []
        for c, t in zip(completions, target):
            text = c[-1]["content"] if isinstance(c, list) else c
            lengths.append(len(tokenizer(text)["input_ids"]))
            out.append(difflib.SequenceMatcher(None, text, t).ratio())
        return out

    steps = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t = time.perf_counter()
            self.g = gen_time[0]

        def on_step_end(self, a, state, control, **kw):
            steps.append({"step_s": time.perf_counter() - self.t, "generate_s": gen_time[0] - self.g})

    g = args.num_generations
    config = GRPOConfig(
        output_dir=os.path.join(work, "out"),
        per_device_train_batch_size=g,
        gradient_accumulation_steps=1,
        num_generations=g,
        max_completion_length=args.max_completion_length,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        beta=args.beta,
        temperature=args.temperature,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        fp16=False,
        seed=1,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=0.0,
        target_modules=args.target_modules.split(","),
        task_type="CAUSAL_LM",
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[similarity_reward],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[StepTimer()],
    )
    trainer.train()
    json.dump(
        {
            "peer": "trl",
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "trl": trl.__version__,
                "peft": peft.__version__,
            },
            "threads": torch.get_num_threads(),
            "load_secs": load_secs,
            "steps": steps,
            "completion_len_mean": sum(lengths) / max(len(lengths), 1),
            "peak_rss_bytes": peak_rss_bytes(),
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
