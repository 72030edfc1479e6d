"""ReCode GRPO with TRL + PEFT DoRA (paper setting): G=8, beta=0.001, lr 5e-5, DoRA r=64
alpha=64, max prompt 2048, max completion 1024, reward = format + ES* from the `recode` wheel.

Data: ``recode data export --format trl --output data/trl.jsonl`` (columns ``prompt`` and
``target``). Needs a GPU: ``python examples/trl/train_grpo.py --model Qwen/Qwen2.5-Coder-7B-Instruct``.
"""

from __future__ import annotations

import argparse

from recode.trl import es_star_reward, format_reward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="Qwen/Qwen2.5-Coder-7B-Instruct")
    ap.add_argument("--data", default="data/trl.jsonl")
    ap.add_argument("--output", default="runs/grpo-trl")
    args = ap.parse_args()

    from datasets import load_dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    dataset = load_dataset("json", data_files=args.data, split="train")
    config = GRPOConfig(
        output_dir=args.output,
        learning_rate=5e-5,
        beta=0.001,
        num_generations=8,
        max_prompt_length=2048,
        max_completion_length=1024,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=4,
        bf16=True,
        logging_steps=1,
    )
    peft_config = LoraConfig(r=64, lora_alpha=64, use_dora=True, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = GRPOTrainer(
        model=args.model,
        reward_funcs=[format_reward, es_star_reward],
        args=config,
        train_dataset=dataset,
        peft_config=peft_config,
    )
    trainer.train()


if __name__ == "__main__":
    main()
