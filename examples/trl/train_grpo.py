"""ReCode GRPO with TRL + PEFT DoRA (paper setting): G=8, beta=0.001, lr 5e-5, DoRA r=64
alpha=64, max prompt 2048, max completion 1024, reward = format + ES* from the `recode` wheel.

Data (see README.md)::

    recode data clean ../shared/data/recode/api_update.jsonl data/clean.jsonl
    recode data split data/clean.jsonl --val 0.05 -o data
    recode data export data/clean.train.jsonl data/trl/train.jsonl --format trl-jsonl --split train
    recode data export data/clean.val.jsonl data/trl/val.jsonl --format trl-jsonl --split val

Rows hold a conversational ``prompt`` (system, user, and the open assistant turn
``"Let me solve this step by step.\\n<think>"`` that GRPOTrainer continues) and ``target``.
Needs a GPU::

    python examples/trl/train_grpo.py --model Qwen/Qwen2.5-Coder-7B-Instruct \\
        --train data/trl/train.jsonl --val data/trl/val.jsonl

Importing this module needs only the ``recode`` wheel: torch, datasets, peft and trl are
imported inside :func:`main`, so CI can check :data:`REWARD_FUNCS` without a GPU stack.
"""

from __future__ import annotations

import argparse

from recode.trl import es_star_reward, format_reward

#: TRL sums the reward functions: format (+1/-1) + ES* (-2..2) = the paper's training reward.
REWARD_FUNCS = [format_reward, es_star_reward]

#: The paper's GRPO hyper-parameters (TRL ``GRPOConfig`` fields).
GRPO_SETTINGS = dict(
    learning_rate=5e-5,
    beta=0.001,
    num_generations=8,
    max_prompt_length=2048,
    max_completion_length=1024,
    temperature=1.0,
)

#: The paper's adapter: DoRA (PEFT ``LoraConfig(use_dora=True)``) with r=64, alpha=64.
DORA_SETTINGS = dict(r=64, lora_alpha=64, use_dora=True, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="Qwen/Qwen2.5-Coder-7B-Instruct")
    ap.add_argument("--train", default="data/trl/train.jsonl", help="recode data export --format trl-jsonl")
    ap.add_argument("--val", default=None, help="validation rows (same format); optional")
    ap.add_argument("--output", default="runs/grpo-trl")
    ap.add_argument("--batch-size", type=int, default=8, help="per-device completions per step (multiple of 8)")
    ap.add_argument("--grad-accum", type=int, default=4)
    args = ap.parse_args()

    from datasets import load_dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    files = {"train": args.train}
    if args.val:
        files["validation"] = args.val
    data = load_dataset("json", data_files=files)
    config = GRPOConfig(
        output_dir=args.output,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        bf16=True,
        logging_steps=1,
        eval_strategy="steps" if args.val else "no",
        eval_steps=50,
        **GRPO_SETTINGS,
    )
    peft_config = LoraConfig(**DORA_SETTINGS)
    trainer = GRPOTrainer(
        model=args.model,
        reward_funcs=REWARD_FUNCS,
        args=config,
        train_dataset=data["train"],
        eval_dataset=data.get("validation"),
        peft_config=peft_config,
    )
    trainer.train()


if __name__ == "__main__":
    main()
