//! Crash-safe checkpoint directories and the per-step metrics JSONL file.
//!
//! A checkpoint is written into `.tmp-<name>-<pid>` inside the run directory,
//! every file and the directory are fsynced, then the directory is renamed to
//! `<name>` and the run directory fsynced. Replacing an existing `<name>` needs two
//! renames (a directory cannot be renamed over a non-empty one): the old copy first
//! moves to `.old-<name>-<pid>`, then the new one moves in. A crash at any point leaves
//! one of:
//!
//! - the previous checkpoints untouched plus a stray `.tmp-*` directory (ignored by
//!   [`latest_checkpoint`], removed by [`clean_stale_tmp`]);
//! - the old copy under `.old-<name>-<pid>` and nothing under `<name>` (crash between
//!   the two renames): [`latest_checkpoint`] still finds it there and
//!   [`clean_stale_tmp`] moves it back to `<name>`;
//! - the complete new checkpoint (plus, at worst, a complete `.old-*` copy that
//!   [`clean_stale_tmp`] deletes).
//!
//! "Complete" means the directory's [`STATE_FILE`] (written last) exists and parses.

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

const TMP_PREFIX: &str = ".tmp-";
const OLD_PREFIX: &str = ".old-";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RlError + '_ {
    move |source| RlError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn json_err(path: &Path) -> impl FnOnce(serde_json::Error) -> RlError + '_ {
    move |source| RlError::Json {
        path: path.to_path_buf(),
        source,
    }
}

fn fsync_dir(dir: &Path) -> Result<(), RlError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}

/// Fsyncs every file and directory under `dir` (depth first), then `dir` itself.
fn fsync_tree(dir: &Path) -> Result<(), RlError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let p = entry.path();
        if entry.file_type().map_err(io(&p))?.is_dir() {
            fsync_tree(&p)?;
        } else {
            File::open(&p).and_then(|f| f.sync_all()).map_err(io(&p))?;
        }
    }
    fsync_dir(dir)
}

/// Whether `dir` holds a complete checkpoint: its [`STATE_FILE`] exists and is valid JSON.
pub fn is_complete(dir: &Path) -> bool {
    fs::read(dir.join(STATE_FILE))
        .ok()
        .is_some_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok())
}

/// The real name behind a `.old-<name>-<pid>` entry.
fn old_target(entry_name: &str) -> Option<&str> {
    let (name, pid) = entry_name.strip_prefix(OLD_PREFIX)?.rsplit_once('-')?;
    (!name.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// Writes directory `parent/name` atomically: `fill` populates a temporary directory,
/// which is then fsynced and renamed into place (replacing an existing `name`; see the
/// module docs for what a crash leaves behind).
pub fn write_atomic_dir(
    parent: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<(), RlError>,
) -> Result<PathBuf, RlError> {
    write_atomic_dir_with(parent, name, fill, || {})
}

/// [`write_atomic_dir`] with `between` run after an existing copy has been moved aside and
/// before the new one is moved in: the crash window of a replacement (fault-injection tests).
pub fn write_atomic_dir_with(
    parent: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<(), RlError>,
    between: impl FnOnce(),
) -> Result<PathBuf, RlError> {
    fs::create_dir_all(parent).map_err(io(parent))?;
    let pid = std::process::id();
    let tmp = parent.join(format!("{TMP_PREFIX}{name}-{pid}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir(&tmp).map_err(io(&tmp))?;
    if let Err(e) = fill(&tmp).and_then(|()| fsync_tree(&tmp)) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let dest = parent.join(name);
    if fs::symlink_metadata(&dest).is_ok() {
        // Move the old copy aside first: rename cannot replace a non-empty directory.
        let old = parent.join(format!("{OLD_PREFIX}{name}-{pid}"));
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        fs::rename(&dest, &old).map_err(io(&dest))?;
        fsync_dir(parent)?;
        between();
        fs::rename(&tmp, &dest).map_err(io(&dest))?;
        fsync_dir(parent)?;
        fs::remove_dir_all(&old).map_err(io(&old))?;
    } else {
        fs::rename(&tmp, &dest).map_err(io(&dest))?;
    }
    fsync_dir(parent)?;
    Ok(dest)
}

/// Repairs the leftovers of interrupted writes in `run_dir`: removes `.tmp-*` directories,
/// moves a complete `.old-<name>-<pid>` copy back to `<name>` when `<name>` is missing or
/// incomplete (crash between the two renames of a replacement), and removes the other
/// `.old-*` copies.
pub fn clean_stale_tmp(run_dir: &Path) -> Result<(), RlError> {
    let Ok(rd) = fs::read_dir(run_dir) else {
        return Ok(());
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut changed = false;
    for n in names {
        let p = run_dir.join(&n);
        if n.starts_with(TMP_PREFIX) {
            fs::remove_dir_all(&p).map_err(io(&p))?;
            changed = true;
        } else if n.starts_with(OLD_PREFIX) {
            let real = old_target(&n).map(|r| run_dir.join(r));
            match real {
                Some(real) if !is_complete(&real) && is_complete(&p) => {
                    if fs::symlink_metadata(&real).is_ok() {
                        fs::remove_dir_all(&real).map_err(io(&real))?;
                    }
                    fs::rename(&p, &real).map_err(io(&p))?;
                    tracing::warn!(checkpoint = %real.display(), "restored a checkpoint left aside by an interrupted write");
                }
                _ => fs::remove_dir_all(&p).map_err(io(&p))?,
            }
            changed = true;
        }
    }
    if changed {
        fsync_dir(run_dir)?;
    }
    Ok(())
}

/// The complete checkpoint with the highest step in `run_dir`, if any. Read-only: a complete
/// `.old-checkpoint-<step>-<pid>` copy stands in for a missing or incomplete
/// `checkpoint-<step>` (run [`clean_stale_tmp`] to move it back).
pub fn latest_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    let step_of =
        |name: &str| -> Option<u64> { name.strip_prefix(CHECKPOINT_PREFIX)?.parse().ok() };
    fs::read_dir(run_dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_string();
            let p = e.path();
            // (step, whether this is the real name: preferred on ties, path)
            let cand = if let Some(real) = old_target(&n) {
                let step = step_of(real)?;
                (!is_complete(&run_dir.join(real))).then_some((step, false, p))?
            } else {
                (step_of(&n)?, true, p)
            };
            is_complete(&cand.2).then_some(cand)
        })
        .max_by_key(|(s, real, _)| (*s, *real))
        .map(|(_, _, p)| p)
}

/// Saves named tensors as a safetensors file.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), RlError> {
    candle_core::safetensors::save(tensors, path).map_err(|source| RlError::Safetensors {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a safetensors file onto `device`.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, RlError> {
    candle_core::safetensors::load(path, device).map_err(|source| RlError::Safetensors {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `value` as pretty JSON to `path`.
pub fn save_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), RlError> {
    let text = serde_json::to_string_pretty(value).map_err(json_err(path))?;
    fs::write(path, text).map_err(io(path))
}

/// Reads JSON from `path`.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RlError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(json_err(path))
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
        let mut line = serde_json::to_string(record).map_err(json_err(&self.path))?;
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
        let r = write_atomic_dir(dir.path(), "checkpoint-40", |_| Err(RlError::NoOutputDir));
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
    fn crash_between_replacement_renames_keeps_the_old_copy() {
        let dir = tempfile::tempdir().unwrap();
        write_ckpt(dir.path(), 10, 1.0);
        write_ckpt(dir.path(), 20, 3.0);
        // Replacing checkpoint-20 "crashes" after the old copy moved aside.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_atomic_dir_with(
                dir.path(),
                "checkpoint-20",
                |tmp| save_json(&tmp.join(STATE_FILE), &serde_json::json!({ "step": 20 })),
                || panic!("simulated crash between the renames"),
            )
        }));
        assert!(r.is_err());
        assert!(!dir.path().join("checkpoint-20").exists());
        // The old copy is still the latest checkpoint, where it was left.
        let last = latest_checkpoint(dir.path()).unwrap();
        let name = last.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".old-checkpoint-20-"), "{name}");
        let t = load_tensors(&last.join("model.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(t["w"].to_vec1::<f64>().unwrap(), [3.0, 4.0]);
        // Recovery moves it back under its real name (and drops the partial new copy).
        clean_stale_tmp(dir.path()).unwrap();
        let last = latest_checkpoint(dir.path()).unwrap();
        assert!(last.ends_with("checkpoint-20"));
        let t = load_tensors(&last.join("model.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(t["w"].to_vec1::<f64>().unwrap(), [3.0, 4.0]);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // An incomplete real directory next to a complete old copy: the old copy wins.
        let old = dir.path().join(".old-checkpoint-20-4242");
        fs::rename(dir.path().join("checkpoint-20"), &old).unwrap();
        fs::create_dir(dir.path().join("checkpoint-20")).unwrap();
        fs::write(dir.path().join("checkpoint-20").join(STATE_FILE), b"{\"st").unwrap();
        assert_eq!(latest_checkpoint(dir.path()).unwrap(), old);
        clean_stale_tmp(dir.path()).unwrap();
        assert!(is_complete(&dir.path().join("checkpoint-20")));
        assert!(!old.exists());
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
