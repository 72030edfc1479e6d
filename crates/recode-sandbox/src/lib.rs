//! Running untrusted Python programs (model output) under isolation and per-program limits.
//!
//! A pool of fork servers ([`ExecutorPool`]): each server pre-imports the heavy modules once,
//! then forks one sandboxed child per program and reports its verdict. The crate knows no model,
//! no training and no benchmark: benchmarks assemble programs and read verdicts.
//!
//! # Isolation of each program (as root; see [`Capabilities`] for what a machine permits)
//!
//! - **Environment** built from an allow-list ([`env`]): no credential of the caller reaches it.
//! - **Filesystem**: a minimal read-only root (system libraries, the interpreter and its
//!   virtualenv, [`ExecConfig::read_only_paths`]); private tmpfs on `/tmp`, `/var/tmp`, `/run`
//!   (incl. `/run/lock`) and `/dev/shm`; only `null`, `zero`, `full`, `random`, `urandom` in
//!   `/dev`. Host files, host unix sockets and the checkout are not in the view.
//! - **Namespaces**: PID (the program is PID 1 of its own namespace and sees only its own
//!   processes; all of them die with it), mount, network (no interface up: no socket reaches
//!   anything, not even the host's loopback), IPC, UTS.
//! - **Limits**: one memory limit and one process count for the whole program with all its
//!   children (cgroup v1 or v2), per-process rlimits (address space, CPU time, file size, no
//!   core), a private unprivileged uid, a 15 s timer and a hard kill at 16 s, bounded output.
//!
//! Where the machine permits no such isolation, the pool refuses to start
//! ([`ExecError::Unsandboxed`]) unless [`ExecConfig::allow_unsandboxed`] is set.
//!
//! # Threat model and what is not defended
//!
//! Programs are hostile (an RL policy learns any trick that raises its reward). Contained: limit
//! escapes (time, memory, processes, output), host reads and writes outside the view, sockets
//! of any kind, seeing host processes, credentials in the environment.
//!
//! Verdicts: a [`Job::Judged`] runs the candidate and the test code in two sandboxed processes;
//! the test sees the candidate's results as decoded plain values or as handles that never
//! forward comparisons, so writing the report channel, exiting early, patching builtins or the
//! assertion machinery, and always-equal objects all stay in the candidate's process and cannot
//! change the verdict. [`Job::Whole`] and [`Job::Exec`] keep a benchmark's own rule (the
//! program's report or exit status), which the program can forge: use them only where that rule
//! is the benchmark's, or for trusted code.
//!
//! Not defended here: kernel exploits (namespaces share the host kernel; no seccomp filter yet),
//! CPU side channels, and denial of service within the limits (a program may use its whole
//! time, memory and output budget).
//!
//! # Other interpreters
//!
//! The servers run on [`ExecConfig::python`]; a [`Job::Exec`] may run any interpreter listed in
//! [`ExecConfig::interpreters`] (e.g. a virtualenv of another Python version per package
//! version), whose install roots join the read-only view. One pool serves many virtualenvs.

mod cgroup;
pub mod env;
mod pool;

pub use cgroup::WorkerCgroup;
pub use pool::{
    Capabilities, ExecConfig, ExecError, ExecJob, ExecResult, ExecutorPool, Hello, Job,
    Protections, DEFAULT_PRELOAD, FORK_SERVER_PY,
};
