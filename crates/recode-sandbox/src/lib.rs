//! Running untrusted Python programs (model output) under isolation and per-program limits.
//!
//! A pool of fork servers ([`ExecutorPool`]): each server pre-imports the heavy modules once,
//! then forks one sandboxed child per program and reports its verdict. The crate knows no model,
//! no training and no benchmark: benchmarks assemble programs and read verdicts.
//!
//! # Isolation of each program
//!
//! - **Environment** built from an allow-list ([`env`]): no credential of the caller reaches it.
//! - **Filesystem**: a minimal read-only root (system libraries, the interpreter and its
//!   virtualenv, [`ExecConfig::read_only_paths`]); private tmpfs on `/tmp`, `/var/tmp`, `/run`
//!   (incl. `/run/lock`) and `/dev/shm`; only `null`, `zero`, `full`, `random`, `urandom` in
//!   `/dev`. Host files, host unix sockets and the checkout are not in the view.
//! - **Namespaces**: PID (the program is PID 1 of its own namespace and sees only its own
//!   processes; all of them die with it), mount, network (no interface up: no socket reaches
//!   anything, not even the host's loopback), IPC, UTS.
//! - **Privileges**: no capabilities and `no_new_privs`; as root also a private unprivileged uid
//!   per worker.
//! - **Syscalls**: a seccomp filter refuses what no benchmark needs (new namespaces, mounts,
//!   ptrace and other processes' memory, keyrings, BPF, perf, userfaultfd, io_uring, modules,
//!   kexec, file handles, swap, reboot, chroot, host names; `clone3` so that libc uses `clone`,
//!   whose namespace flags the filter reads).
//! - **Limits**: one memory limit and one process count for the whole program with all its
//!   children, per-process rlimits (address space, CPU time, file size, no core), a 15 s timer
//!   and a hard kill at 16 s, bounded output.
//!
//! As root the servers use cgroups (v1 or v2) for the per-program memory and process limits.
//! Without root (or with [`ExecConfig::server_user`]) each server enters a user namespace of its
//! own and becomes the init of a PID namespace; the same namespaces and view follow. There the
//! process count is an rlimit of the namespace's single id and memory is watched by a supervisor
//! that sums the proportional set size of the program's processes every 50 ms and kills the
//! program past the limit (it may briefly exceed it). Where the machine permits no isolation,
//! the pool refuses to start ([`ExecError::Unsandboxed`]) unless
//! [`ExecConfig::allow_unsandboxed`] is set; [`ExecutorPool::protections`] says which protections
//! are in force.

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
//! Not defended here: kernel exploits through the syscalls still allowed (namespaces share the
//! host kernel; the filter is a deny-list, not an allow-list), CPU side channels, and denial of
//! service within the limits (a program may use its whole time, memory and output budget; the
//! memory supervisor samples every 50 ms).
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
