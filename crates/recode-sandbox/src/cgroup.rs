//! Per-worker control groups: one memory limit and one process count for a whole program with
//! all its children (rlimits only bound each process).
//!
//! Supports cgroup v1 (`memory` and `pids` hierarchies, as on these machines) and v2 (a unified
//! hierarchy whose parent delegates `memory` and `pids`). Creating groups needs write access to
//! the hierarchy (root, or a delegated subtree); without it [`WorkerCgroup::create`] returns
//! `None` and the pool reports the protection as absent.

use std::fs;
use std::path::{Path, PathBuf};

const V1_ROOT: &str = "/sys/fs/cgroup";
const PREFIX: &str = "recode-sandbox-";

/// The cgroup directories of one worker; removed when dropped (after its server has exited).
#[derive(Debug)]
pub struct WorkerCgroup {
    dirs: Vec<PathBuf>,
    spec: serde_json::Value,
}

impl WorkerCgroup {
    /// Creates the worker's groups with `memory_bytes` for all its processes together and at most
    /// `max_processes` tasks; `None` when no writable hierarchy has both controllers.
    pub fn create(name: &str, memory_bytes: u64, max_processes: u64) -> Option<WorkerCgroup> {
        let name = format!("{PREFIX}{name}");
        v1(&name, memory_bytes, max_processes).or_else(|| v2(&name, memory_bytes, max_processes))
    }

    /// What the fork server needs: the procs files to join, the peak and OOM-event files.
    pub fn spec(&self) -> &serde_json::Value {
        &self.spec
    }
}

impl Drop for WorkerCgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // The server has exited; its last processes may still be leaving the group.
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// This process's own group path in `controller`'s hierarchy (v1) or the unified one (`""`).
fn own_group(controller: &str) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        hit.then(|| path.trim_start_matches('/').to_string())
    })
}

/// The directory to create groups in: our own group when visible under `mount`, else `mount`.
fn parent_dir(mount: &Path, controller: &str) -> PathBuf {
    match own_group(controller) {
        Some(p) if !p.is_empty() && mount.join(&p).is_dir() => mount.join(p),
        _ => mount.to_path_buf(),
    }
}

/// Removes groups left by recode processes that no longer exist (SIGKILLed runs).
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = n.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir(e.path());
        }
    }
}

fn make(parent: &Path, name: &str) -> Option<PathBuf> {
    remove_stale(parent);
    let dir = parent.join(name);
    match fs::create_dir(&dir) {
        Ok(()) => Some(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Some(dir),
        Err(_) => None,
    }
}

fn set(dir: &Path, file: &str, value: &str) -> bool {
    fs::write(dir.join(file), value).is_ok()
}

fn v1(name: &str, memory_bytes: u64, max_processes: u64) -> Option<WorkerCgroup> {
    let (mem_root, pids_root) = (
        Path::new(V1_ROOT).join("memory"),
        Path::new(V1_ROOT).join("pids"),
    );
    // The root of the pids hierarchy has no pids.max; its children do (checked below).
    if !mem_root.join("memory.limit_in_bytes").exists() || !pids_root.join("cgroup.procs").exists()
    {
        return None;
    }
    let mem = make(&parent_dir(&mem_root, "memory"), name)?;
    let Some(pids) = make(&parent_dir(&pids_root, "pids"), name) else {
        let _ = fs::remove_dir(&mem);
        return None;
    };
    let group = WorkerCgroup {
        dirs: vec![mem.clone(), pids.clone()],
        spec: serde_json::json!({
            "procs": [mem.join("cgroup.procs"), pids.join("cgroup.procs")],
            "peak": mem.join("memory.max_usage_in_bytes"),
            "peak_resettable": true,
            "events": mem.join("memory.oom_control"),
            "pids": true,
        }),
    };
    let ok = pids.join("pids.max").exists()
        && set(&mem, "memory.limit_in_bytes", &memory_bytes.to_string())
        && set(&pids, "pids.max", &max_processes.to_string());
    // Swap accounting (when enabled) must not let a program swap past its limit.
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        let _ = set(
            &mem,
            "memory.memsw.limit_in_bytes",
            &memory_bytes.to_string(),
        );
    }
    ok.then_some(group)
}

fn v2(name: &str, memory_bytes: u64, max_processes: u64) -> Option<WorkerCgroup> {
    let root = Path::new(V1_ROOT);
    if !root.join("cgroup.controllers").exists() {
        return None;
    }
    let parent = parent_dir(root, "");
    let dir = make(&parent, name)?;
    let controllers = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    let group = WorkerCgroup {
        dirs: vec![dir.clone()],
        spec: serde_json::json!({
            "procs": [dir.join("cgroup.procs")],
            "peak": dir.join("memory.peak"),
            "peak_resettable": false,
            "events": dir.join("memory.events"),
            "pids": true,
        }),
    };
    let ok = has("memory")
        && has("pids")
        && set(&dir, "memory.max", &memory_bytes.to_string())
        && set(&dir, "pids.max", &max_processes.to_string())
        && dir.join("memory.peak").exists();
    if dir.join("memory.swap.max").exists() {
        let _ = set(&dir, "memory.swap.max", "0");
    }
    ok.then_some(group)
}
