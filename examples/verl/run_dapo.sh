#!/usr/bin/env bash
# ReCode DAPO with verl's DAPO recipe (paper setting): clip eps_low 0.2 / eps_high 0.28,
# dual-clip c=10, token-mean loss, no KL, dynamic sampling (drop groups whose rewards all
# agree, refill up to 10 generation batches), temperature 1.0, lr 1e-6, full parameters,
# G=8, max prompt 2048, max response 1024. Reward: format + ES* from the `recode` wheel.
#
# Needs GPUs, Ray, vLLM and a verl checkout (the recipe is not part of the pip package):
#   cd /path/to/verl && bash /path/to/recode/examples/verl/run_dapo.sh
# Data (see README.md): DATA/train.parquet and DATA/val.parquet from `recode data export`.
# Env: MODEL, DATA, NGPUS, NNODES, TRAIN_BSZ, GEN_BSZ, VERL_DIR. Extra Hydra overrides pass through.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=${MODEL:-Qwen/Qwen2.5-Coder-7B-Instruct}
DATA=${DATA:-data/verl}
NGPUS=${NGPUS:-8}
NNODES=${NNODES:-1}
TRAIN_BSZ=${TRAIN_BSZ:-64}                  # prompts per training step
GEN_BSZ=${GEN_BSZ:-$((TRAIN_BSZ * 3))}      # prompts per generation batch (oversampled for filtering)
MINI_BSZ=${MINI_BSZ:-32}
MAX_PROMPT=2048
MAX_RESPONSE=1024
# DAPO's soft overlong punishment over the last OVERLONG_LEN tokens of the response budget.
OVERLONG=${OVERLONG:-True}
OVERLONG_LEN=${OVERLONG_LEN:-256}
VERL_DIR=${VERL_DIR:-$PWD}                  # a verl checkout holding recipe/dapo

DATA=$(realpath -m "$DATA")                 # absolute: we cd into the verl checkout
cd "$VERL_DIR"
python3 -m recipe.dapo.main_dapo \
  data.train_files="$DATA/train.parquet" \
  data.val_files="$DATA/val.parquet" \
  data.prompt_key=prompt \
  data.truncation=left \
  data.max_prompt_length=$MAX_PROMPT \
  data.max_response_length=$MAX_RESPONSE \
  data.train_batch_size="$TRAIN_BSZ" \
  data.gen_batch_size="$GEN_BSZ" \
  algorithm.adv_estimator=grpo \
  algorithm.use_kl_in_reward=False \
  algorithm.kl_ctrl.kl_coef=0.0 \
  algorithm.filter_groups.enable=True \
  algorithm.filter_groups.metric=score \
  algorithm.filter_groups.max_num_gen_batches=10 \
  actor_rollout_ref.model.path="$MODEL" \
  actor_rollout_ref.model.use_remove_padding=True \
  actor_rollout_ref.model.enable_gradient_checkpointing=True \
  actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.actor.ppo_mini_batch_size="$MINI_BSZ" \
  actor_rollout_ref.actor.use_dynamic_bsz=True \
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=$((MAX_PROMPT + MAX_RESPONSE)) \
  actor_rollout_ref.actor.use_kl_loss=False \
  actor_rollout_ref.actor.kl_loss_coef=0.0 \
  actor_rollout_ref.actor.entropy_coeff=0 \
  actor_rollout_ref.actor.clip_ratio_low=0.2 \
  actor_rollout_ref.actor.clip_ratio_high=0.28 \
  actor_rollout_ref.actor.clip_ratio_c=10.0 \
  actor_rollout_ref.actor.loss_agg_mode=token-mean \
  actor_rollout_ref.actor.grad_clip=1.0 \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.n=8 \
  actor_rollout_ref.rollout.temperature=1.0 \
  actor_rollout_ref.rollout.top_p=1.0 \
  actor_rollout_ref.rollout.top_k=-1 \
  actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=True \
  actor_rollout_ref.ref.log_prob_use_dynamic_bsz=True \
  reward_model.reward_manager=dapo \
  reward_model.overlong_buffer.enable="$OVERLONG" \
  reward_model.overlong_buffer.len="$OVERLONG_LEN" \
  reward_model.overlong_buffer.penalty_factor=1.0 \
  custom_reward_function.path="$HERE/recode_reward.py" \
  custom_reward_function.name=compute_score \
  trainer.n_gpus_per_node="$NGPUS" \
  trainer.nnodes="$NNODES" \
  trainer.project_name=recode \
  trainer.experiment_name=dapo-qwen2.5-coder-7b \
  "$@"
