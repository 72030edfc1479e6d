//! Resume guard: a run continues from a checkpoint only under the configuration it was
//! trained with.
//!
//! Every checkpoint stores its `config.toml`. Before a resume writes anything, the newly
//! resolved configuration is compared key by key with the checkpoint's ([`config_changes`]);
//! every difference outside [`RESUME_MUTABLE_KEYS`] refuses the resume
//! ([`RlError::ResumeConfigChanged`], naming each key with both values), so a resumed run is the
//! same run continued, not silently a different one.
//!
//! The keys that may change only affect when things are written or measured, or how memory is
//! traded for compute, never the updates: `save_steps`, `eval_steps`, `logging_steps`,
//! `eval_on_start` (the step-0 validation never runs on resume) and `gradient_checkpointing`
//! (recomputed activations, same gradients). `max_steps` may change (to extend or shorten a
//! run) when the learning rates of the steps already taken do not depend on it (a constant
//! schedule whose warm-up is unchanged), so the resumed run equals an uninterrupted run with
//! the new value; under a cosine or linear decay it is refused.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::checkpoint::{self, STATE_FILE};
use crate::config::TrainConfig;
use crate::optim::lr_at;
use crate::RlError;

/// Keys that may differ between a checkpoint's config and the resumed run's without changing
/// any update (`max_steps` only under the condition in the module docs).
pub const RESUME_MUTABLE_KEYS: &[&str] = &[
    "max_steps",
    "save_steps",
    "eval_steps",
    "logging_steps",
    "eval_on_start",
    "gradient_checkpointing",
];

/// One key whose value differs between a checkpoint's config and the new one; values are in
/// TOML syntax (what `--set` takes), `unset` for an absent optional key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    /// The config key (TRL/PEFT name, as in `config.toml`).
    pub key: String,
    /// Its value in the checkpoint's `config.toml`.
    pub checkpoint: String,
    /// Its value in the configuration resolved now.
    pub now: String,
}

impl fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: checkpoint {}, now {}",
            self.key, self.checkpoint, self.now
        )
    }
}

/// Renders a list of changes for [`RlError::ResumeConfigChanged`]'s message.
pub(crate) fn list_changes(changes: &[ConfigChange]) -> String {
    changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The config as a TOML table (a plain struct of scalars and arrays always is one).
fn as_table(cfg: &TrainConfig) -> toml::Table {
    match toml::Value::try_from(cfg) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    }
}

/// Every key whose value differs between `checkpoint` and `now`, in key order.
pub fn config_changes(checkpoint: &TrainConfig, now: &TrainConfig) -> Vec<ConfigChange> {
    let (old, new) = (as_table(checkpoint), as_table(now));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&toml::Value>| v.map_or_else(|| "unset".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| ConfigChange {
            key: k.clone(),
            checkpoint: show(old.get(k)),
            now: show(new.get(k)),
        })
        .collect()
}

/// Whether `max_steps` may change after `steps_done` steps: the learning rates those steps used
/// are what the new value gives, so the resumed run equals an uninterrupted one with it.
fn max_steps_change_keeps_past_lrs(
    checkpoint: &TrainConfig,
    now: &TrainConfig,
    steps_done: u64,
) -> bool {
    let mut probe = checkpoint.clone();
    probe.max_steps = now.max_steps;
    (0..steps_done as usize).all(|s| lr_at(s, checkpoint) == lr_at(s, &probe))
}

/// The changes that refuse a resume after `steps_done` steps: all of [`config_changes`] except
/// the [`RESUME_MUTABLE_KEYS`] (`max_steps` only while the past learning rates stay the same).
pub fn refused_changes(
    checkpoint: &TrainConfig,
    now: &TrainConfig,
    steps_done: u64,
) -> Vec<ConfigChange> {
    config_changes(checkpoint, now)
        .into_iter()
        .filter(|c| match c.key.as_str() {
            "max_steps" => !max_steps_change_keeps_past_lrs(checkpoint, now, steps_done),
            k => !RESUME_MUTABLE_KEYS.contains(&k),
        })
        .collect()
}

/// The configuration stored in checkpoint directory `ckpt` and the optimizer steps it has done.
pub fn checkpoint_config(ckpt: &Path) -> Result<(TrainConfig, u64), RlError> {
    let path = ckpt.join("config.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| RlError::Io {
        path: path.clone(),
        source,
    })?;
    let cfg: TrainConfig = toml::from_str(&text).map_err(|source| RlError::CheckpointConfig {
        path: path.clone(),
        source: Box::new(source),
    })?;
    let state: serde_json::Value = checkpoint::load_json(&ckpt.join(STATE_FILE))?;
    let step = state
        .get("step")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| RlError::MissingEntry {
            path: ckpt.join(STATE_FILE),
            key: "step".into(),
        })?;
    Ok((cfg, step))
}

/// Refuses to resume from checkpoint `ckpt` with `now` when a key that changes the training
/// differs ([`RlError::ResumeConfigChanged`] lists every such key); returns the allowed changes
/// (to log). Reads only; call it before writing anything.
pub fn check_resume(ckpt: &Path, now: &TrainConfig) -> Result<Vec<ConfigChange>, RlError> {
    let (old, steps_done) = checkpoint_config(ckpt)?;
    let refused = refused_changes(&old, now, steps_done);
    if !refused.is_empty() {
        return Err(RlError::ResumeConfigChanged {
            checkpoint: PathBuf::from(ckpt),
            changes: refused,
        });
    }
    Ok(config_changes(&old, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve, Algo, LrSchedulerType};

    fn cfg(sets: &[&str]) -> TrainConfig {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        resolve(Algo::Grpo, None, &sets).unwrap()
    }

    fn change(key: &str, checkpoint: &str, now: &str) -> ConfigChange {
        ConfigChange {
            key: key.into(),
            checkpoint: checkpoint.into(),
            now: now.into(),
        }
    }

    #[test]
    fn every_differing_key_is_named_with_both_values() {
        let old = cfg(&["lora_r=4"]);
        let new = cfg(&[
            "lora_r=8",
            "beta=0.01",
            "lr_scheduler_type=constant",
            r#"lora_target_modules=["q_proj"]"#,
            "delta=3.0",
        ]);
        let got = config_changes(&old, &new);
        assert_eq!(
            got,
            [
                change("beta", "0.001", "0.01"),
                change("delta", "unset", "3.0"),
                change("lora_r", "4", "8"),
                change(
                    "lora_target_modules",
                    r#"["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]"#,
                    r#"["q_proj"]"#
                ),
                change("lr_scheduler_type", r#""cosine""#, r#""constant""#),
            ]
        );
        assert_eq!(got[2].to_string(), "lora_r: checkpoint 4, now 8");
        assert!(config_changes(&old, &old.clone()).is_empty());
    }

    #[test]
    fn only_bookkeeping_keys_may_change() {
        let old = cfg(&["lr_scheduler_type=constant", "warmup_ratio=0"]);
        let new = cfg(&[
            "lr_scheduler_type=constant",
            "warmup_ratio=0",
            "max_steps=900",
            "save_steps=7",
            "eval_steps=3",
            "logging_steps=5",
            "eval_on_start=false",
            "gradient_checkpointing=true",
        ]);
        assert_eq!(config_changes(&old, &new).len(), RESUME_MUTABLE_KEYS.len());
        assert!(refused_changes(&old, &new, 10).is_empty());
        let mut math = new.clone();
        (math.learning_rate, math.seed, math.use_dora) = (1e-3, 7, false);
        let refused: Vec<String> = refused_changes(&old, &math, 10)
            .into_iter()
            .map(|c| c.key)
            .collect();
        assert_eq!(refused, ["learning_rate", "seed", "use_dora"]);
    }

    #[test]
    fn max_steps_may_change_only_when_past_learning_rates_stay() {
        let mut old = cfg(&[
            "lr_scheduler_type=constant",
            "warmup_ratio=0",
            "max_steps=2",
        ]);
        let mut new = old.clone();
        new.max_steps = 4;
        assert!(refused_changes(&old, &new, 2).is_empty());
        // A decaying schedule: the 2 steps taken used the 2-step curve, the new run's differ.
        for s in [LrSchedulerType::Cosine, LrSchedulerType::Linear] {
            (old.lr_scheduler_type, new.lr_scheduler_type) = (s, s);
            assert_eq!(
                refused_changes(&old, &new, 2),
                [change("max_steps", "2", "4")],
                "{s:?}"
            );
            // Before any step nothing depended on it yet.
            assert!(refused_changes(&old, &new, 0).is_empty(), "{s:?}");
        }
        // A warm-up whose length follows max_steps (ceil(0.5 * 2) = 1 vs ceil(0.5 * 4) = 2).
        (old.lr_scheduler_type, new.lr_scheduler_type) =
            (LrSchedulerType::Constant, LrSchedulerType::Constant);
        (old.warmup_ratio, new.warmup_ratio) = (0.5, 0.5);
        assert_eq!(refused_changes(&old, &new, 2).len(), 1);
    }

    #[test]
    fn check_resume_reads_the_checkpoint_and_names_the_refused_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("checkpoint-3");
        std::fs::create_dir(&ckpt).unwrap();
        let old = cfg(&["lora_r=4", "lr_scheduler_type=constant", "warmup_ratio=0"]);
        std::fs::write(ckpt.join("config.toml"), old.to_toml()).unwrap();
        std::fs::write(ckpt.join(STATE_FILE), r#"{"step": 3}"#).unwrap();
        let mut ok = old.clone();
        ok.save_steps = 1;
        assert_eq!(
            check_resume(&ckpt, &ok).unwrap(),
            [change("save_steps", "100", "1")]
        );
        let mut bad = ok.clone();
        (bad.lora_r, bad.top_k) = (8, 5);
        match check_resume(&ckpt, &bad).unwrap_err() {
            RlError::ResumeConfigChanged {
                checkpoint,
                changes,
            } => {
                assert_eq!(checkpoint, ckpt);
                assert_eq!(
                    changes,
                    [change("lora_r", "4", "8"), change("top_k", "0", "5")]
                );
            }
            e => panic!("unexpected error {e}"),
        }
        let msg = check_resume(&ckpt, &bad).unwrap_err().to_string();
        assert!(
            msg.contains("lora_r: checkpoint 4, now 8; top_k: checkpoint 0, now 5"),
            "{msg}"
        );
        // A checkpoint without its config cannot be checked: an error naming the file.
        std::fs::remove_file(ckpt.join("config.toml")).unwrap();
        let msg = check_resume(&ckpt, &ok).unwrap_err().to_string();
        assert!(msg.contains("config.toml"), "{msg}");
    }
}
