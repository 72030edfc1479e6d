#!/usr/bin/env bash
# ReCode DAPO with verl (paper setting): clip 0.2/0.28, dual-clip c=10, token-mean loss, no KL,
# dynamic sampling (up to 10 generation batches), temperature 1.0, lr 1e-6, full parameters,
# G=8, max prompt 2048, max response 1024. Needs GPUs, Ray and verl installed.
set -euo pipefail
MODEL=${MODEL:-Qwen/Qwen2.5-Coder-7B-Instruct}
DATA=${DATA:-data/verl}            # from: recode data export --format verl --output data/verl
NGPUS=${NGPUS:-8}
HERE=$(cd "$(dirname "$0")" && pwd)

python3 -m verl.trainer.main_ppo \
  algorithm.adv_estimator=grpo \
  algorithm.use_kl_in_reward=False \
  algorithm.filter_groups.enable=True \
  algorithm.filter_groups.metric=seq_final_reward \
  algorithm.filter_groups.max_num_gen_batches=10 \
  data.train_files="$DATA/train.parquet" \
  data.val_files="$DATA/val.parquet" \
  data.max_prompt_length=2048 \
  data.max_response_length=1024 \
  data.train_batch_size=64 \
  actor_rollout_ref.model.path="$MODEL" \
  actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.actor.use_kl_loss=False \
  actor_rollout_ref.actor.clip_ratio_low=0.2 \
  actor_rollout_ref.actor.clip_ratio_high=0.28 \
  actor_rollout_ref.actor.clip_ratio_c=10.0 \
  actor_rollout_ref.actor.loss_agg_mode=token-mean \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.n=8 \
  actor_rollout_ref.rollout.temperature=1.0 \
  reward_model.reward_manager=dapo \
  custom_reward_function.path="$HERE/recode_reward.py" \
  custom_reward_function.name=compute_score \
  trainer.n_gpus_per_node="$NGPUS" \
  trainer.nnodes=1 \
  trainer.project_name=recode \
  trainer.experiment_name=dapo-qwen2.5-coder-7b \
  "$@"
