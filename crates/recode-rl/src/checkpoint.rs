//! Crash-safe checkpoint directories and the per-step metrics JSONL file.
//!
//! A checkpoint is written into `.tmp-<name>-<pid>` inside the run directory,
//! every file and the directory are fsynced, then the directory is renamed to
//! `<name>` and the run directory fsynced. A crash at any point leaves either the
//! previous checkpoints untouched plus a stray `.tmp-*` directory (ignored and
//! cleaned by [`clean_stale_tmp`]), or the complete new checkpoint.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::RlError;

/// Prefix of checkpoint directory names (`checkpoint-<step>`, as HF trainers do).
pub const CHECKPOINT_PREFIX: &str = "checkpoint-";
/// File whose presence marks a complete checkpoint (written last).
pub const STATE_FILE: &str = "trainer_state.json";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RlError + '_ {
    move |source| RlError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn fsync_dir(dir: &Path) -> Result<(), RlError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}

/// Writes directory `parent/name` atomically: `fill` populates a temporary directory,
/// which is then fsynced and renamed into place (replacing an existing `name`).
pub fn write_atomic_dir(
    parent: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<(), RlError>,
) -> Result<PathBuf, RlError> {
    fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir(&tmp).map_err(io(&tmp))?;
    fill(&tmp)?;
    for entry in fs::read_dir(&tmp).map_err(io(&tmp))? {
        let p = entry.map_err(io(&tmp))?.path();
        File::open(&p).and_then(|f| f.sync_all()).map_err(io(&p))?;
    }
    fsync_dir(&tmp)?;
    let dest = parent.join(name);
    if dest.exists() {
        // Move the old copy aside first: rename cannot replace a non-empty directory.
        let old = parent.join(format!(".old-{name}-{}", std::process::id()));
        fs::rename(&dest, &old).map_err(io(&dest))?;
        fs::rename(&tmp, &dest).map_err(io(&dest))?;
        fs::remove_dir_all(&old).map_err(io(&old))?;
    } else {
        fs::rename(&tmp, &dest).map_err(io(&dest))?;
    }
    fsync_dir(parent)?;
    Ok(dest)
}

/// Removes `.tmp-*` / `.old-*` leftovers of interrupted writes in `run_dir`.
pub fn clean_stale_tmp(run_dir: &Path) -> Result<(), RlError> {
    let Ok(rd) = fs::read_dir(run_dir) else {
        return Ok(());
    };
    for entry in rd.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with(".tmp-") || n.starts_with(".old-") {
            let p = entry.path();
            fs::remove_dir_all(&p).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// The complete checkpoint with the highest step in `run_dir`, if any.
pub fn latest_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    fs::read_dir(run_dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let step: u64 = e
                .file_name()
                .to_str()?
                .strip_prefix(CHECKPOINT_PREFIX)?
                .parse()
                .ok()?;
            e.path()
                .join(STATE_FILE)
                .is_file()
                .then(|| (step, e.path()))
        })
        .max_by_key(|(s, _)| *s)
        .map(|(_, p)| p)
}

/// Saves named tensors as a safetensors file.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), RlError> {
    candle_core::safetensors::save(tensors, path)
        .map_err(|e| RlError::Checkpoint(format!("{}: {e}", path.display())))
}

/// Loads a safetensors file onto `device`.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, RlError> {
    candle_core::safetensors::load(path, device)
        .map_err(|e| RlError::Checkpoint(format!("{}: {e}", path.display())))
}

/// Writes `value` as pretty JSON to `path`.
pub fn save_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), RlError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| RlError::Checkpoint(format!("{}: {e}", path.display())))?;
    fs::write(path, text).map_err(io(path))
}

/// Reads JSON from `path`.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RlError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| RlError::Checkpoint(format!("{}: {e}", path.display())))
}

/// Appends one JSON object per line and flushes after each (crash leaves whole lines).
#[derive(Debug)]
pub struct MetricsWriter {
    file: File,
    path: PathBuf,
}

impl MetricsWriter {
    /// Opens `path` for appending. With `keep_through = Some(s)` (resume), lines whose
    /// `step` exceeds `s` (written after the checkpoint before a crash) are dropped first.
    pub fn open(path: &Path, keep_through: Option<u64>) -> Result<Self, RlError> {
        if let (Some(last), true) = (keep_through, path.exists()) {
            let f = File::open(path).map_err(io(path))?;
            let mut kept = String::new();
            for line in BufReader::new(f).lines() {
                let line = line.map_err(io(path))?;
                let step = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("step")?.as_u64());
                if matches!(step, Some(s) if s <= last) {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
            fs::write(path, kept).map_err(io(path))?;
        } else if keep_through.is_none() && path.exists() {
            fs::remove_file(path).map_err(io(path))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok(MetricsWriter {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Writes one record as a JSON line and flushes it.
    pub fn write<T: serde::Serialize>(&mut self, record: &T) -> Result<(), RlError> {
        let mut line = serde_json::to_string(record)
            .map_err(|e| RlError::Checkpoint(format!("{}: {e}", self.path.display())))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(io(&self.path))?;
        self.file.flush().map_err(io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_ckpt(dir: &Path, step: u64, value: f64) -> PathBuf {
        write_atomic_dir(dir, &format!("{CHECKPOINT_PREFIX}{step}"), |tmp| {
            let t = Tensor::new(&[value, value + 1.0], &Device::Cpu)?;
            save_tensors(
                &tmp.join("model.safetensors"),
                &HashMap::from([("w".to_string(), t)]),
            )?;
            save_json(&tmp.join(STATE_FILE), &serde_json::json!({ "step": step }))
        })
        .unwrap()
    }

    #[test]
    fn crash_mid_write_leaves_last_good_checkpoint_loadable() {
        let dir = tempfile::tempdir().unwrap();
        write_ckpt(dir.path(), 10, 1.0);
        // Simulated crash while writing step 20: a tmp dir with a half-written tensor file
        // and no state file, plus a renamed-but-incomplete dir lacking the state file.
        let tmp = dir.path().join(".tmp-checkpoint-20-999");
        fs::create_dir(&tmp).unwrap();
        fs::write(tmp.join("model.safetensors"), b"\x10\x00\x00garbage").unwrap();
        fs::create_dir(dir.path().join("checkpoint-30")).unwrap();
        let last = latest_checkpoint(dir.path()).unwrap();
        assert!(last.ends_with("checkpoint-10"));
        let t = load_tensors(&last.join("model.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(t["w"].to_vec1::<f64>().unwrap(), [1.0, 2.0]);
        clean_stale_tmp(dir.path()).unwrap();
        assert!(!tmp.exists());
        // A failing fill leaves no checkpoint behind.
        let r = write_atomic_dir(dir.path(), "checkpoint-40", |_| {
            Err(RlError::Checkpoint("boom".into()))
        });
        assert!(r.is_err());
        assert!(latest_checkpoint(dir.path())
            .unwrap()
            .ends_with("checkpoint-10"));
        // Rewriting an existing checkpoint replaces it.
        write_ckpt(dir.path(), 10, 5.0);
        let t = load_tensors(
            &dir.path().join("checkpoint-10/model.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(t["w"].to_vec1::<f64>().unwrap(), [5.0, 6.0]);
    }

    #[test]
    fn metrics_lines_are_flushed_and_trimmed_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        let mut w = MetricsWriter::open(&p, None).unwrap();
        for s in 1..=5u64 {
            w.write(&serde_json::json!({ "step": s, "reward": s as f64 / 10.0 }))
                .unwrap();
        }
        assert_eq!(fs::read_to_string(&p).unwrap().lines().count(), 5);
        drop(w);
        let mut w = MetricsWriter::open(&p, Some(3)).unwrap();
        w.write(&serde_json::json!({ "step": 4 })).unwrap();
        let lines: Vec<_> = fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3], r#"{"step":4}"#);
    }
}
