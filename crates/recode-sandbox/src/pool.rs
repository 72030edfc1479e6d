//! The executor pool: one fork server per worker (`python/fork_server.py`, embedded), one
//! forked child per program. See the crate docs for the isolation and the threat model.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::cgroup::WorkerCgroup;

/// The fork server's source (the judge's codec and proxies, the candidate's side of a judged
/// run, the isolation primitives, then the server), embedded so the binary is self-contained.
pub const FORK_SERVER_PY: &str = concat!(
    include_str!("../python/judge.py"),
    include_str!("../python/candidate.py"),
    include_str!("../python/isolation.py"),
    include_str!("../python/fork_server.py")
);

/// One program to run, and where its verdict is decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// A whole program whose verdict is its own run: the in-process rule of harnesses judged by
    /// exit status. The program can forge it (see the crate docs); use [`Job::Judged`] where the
    /// benchmark allows.
    Whole(String),
    /// Trusted `setup` (run in both processes), the untrusted `candidate` code in its own
    /// sandboxed process, and the trusted `test` code in a sandboxed judge process that sees the
    /// candidate's names as plain values or remote handles: the verdict is out of its reach.
    Judged {
        /// Imports and other trusted set-up code (e.g. the benchmark's API update).
        setup: String,
        /// The model's code.
        candidate: String,
        /// The benchmark's tests, ending with the call that runs them.
        test: String,
    },
    /// A command in a fresh process (e.g. another virtualenv's interpreter running a script or
    /// pytest) under the same isolation and limits; its verdict is its exit status. Like
    /// [`Job::Whole`], the command can forge that status: use it where the benchmark's own rule
    /// is an exit status, or where a fresh interpreter is the point (import-time warnings).
    Exec(ExecJob),
}

/// A command run by [`Job::Exec`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecJob {
    /// The command: `argv[0]` is an absolute path inside the view (an interpreter named in
    /// [`ExecConfig::interpreters`], or a system binary).
    pub argv: Vec<String>,
    /// Files written (as the program's uid) into the fresh private work directory, which is the
    /// command's cwd: relative path (no `..`) and content.
    pub files: Vec<(String, String)>,
    /// Variables set on top of the sandbox's allow-listed environment (never secrets: they are
    /// visible to the command). `PATH` starts with `argv[0]`'s directory.
    pub env: Vec<(String, String)>,
    /// Wall-clock limit of this job (the pool's hard limit when `None`); the CPU-time rlimit
    /// follows it.
    pub timeout_secs: Option<f64>,
    /// Bring the loopback interface up in the job's private network namespace (servers under
    /// test on 127.0.0.1; nothing of the host is reachable either way).
    pub loopback: bool,
}

impl ExecJob {
    /// A command with no files, no extra variables and the pool's limits.
    pub fn new<I, S>(argv: I) -> ExecJob
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecJob {
            argv: argv.into_iter().map(Into::into).collect(),
            ..ExecJob::default()
        }
    }

    /// Adds a file to the work directory.
    pub fn file(mut self, path: impl Into<String>, content: impl Into<String>) -> ExecJob {
        self.files.push((path.into(), content.into()));
        self
    }

    /// Checks what the fork server would refuse: an empty or relative command, file paths that
    /// leave the work directory, a non-positive timeout.
    fn validate(&self) -> Result<(), String> {
        let Some(cmd) = self.argv.first() else {
            return Err("exec job: empty argv".into());
        };
        if !cmd.starts_with('/') {
            return Err(format!(
                "exec job: argv[0] `{cmd}` must be an absolute path"
            ));
        }
        for (path, _) in &self.files {
            let parts: Vec<&str> = path.split('/').collect();
            if path.starts_with('/') || parts.iter().any(|p| p.is_empty() || *p == "..") {
                return Err(format!(
                    "exec job: file `{path}` must be a relative path inside the work directory"
                ));
            }
        }
        if let Some(t) = self.timeout_secs {
            if !(t > 0.0 && t.is_finite()) {
                return Err(format!("exec job: timeout {t} must be positive"));
            }
        }
        Ok(())
    }
}

/// Modules the benchmark's parent had imported before forking (those installed are loaded).
pub const DEFAULT_PRELOAD: &[&str] = &["numpy", "pandas", "torch", "sympy", "scipy"];

/// Errors of the executor itself (never a program's verdict).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The Python interpreter could not be started.
    #[error("cannot start fork server `{python}`: {source}")]
    Spawn {
        /// Interpreter path.
        python: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server died or spoke an unexpected protocol during start-up.
    #[error("fork server failed to start: {0}")]
    Handshake(String),
    /// Invalid configuration.
    #[error("invalid executor configuration: {0}")]
    Config(String),
    /// A variable named to pass into the sandbox is not set in recode's environment.
    #[error("--sandbox-env {name}: the variable is not set in recode's environment")]
    MissingEnv {
        /// The variable's name.
        name: String,
    },
    /// The machine permits too little isolation to run untrusted code, and running without it
    /// was not allowed ([`ExecConfig::allow_unsandboxed`]).
    #[error(
        "refusing to run untrusted code: this machine/user permits no sandbox (missing: {}){}; \
         run as root (or where user namespaces are allowed), or pass --unsafe-no-sandbox to run \
         programs WITHOUT isolation",
        missing.join(", "),
        detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    Unsandboxed {
        /// The protections that are not available.
        missing: Vec<String>,
        /// Why the filesystem view could not be built, when known.
        detail: Option<String>,
    },
}

/// Limits and isolation settings of the executor pool.
#[derive(Debug, Clone, Serialize)]
pub struct ExecConfig {
    /// Python interpreter (of the eval virtualenv).
    pub python: PathBuf,
    /// Number of fork servers (one per core is the benchmark's setting); at most 32.
    pub workers: usize,
    /// Interval timer raising `TimeoutException` inside the program (benchmark: 15 s).
    pub timeout_secs: f64,
    /// Parent's hard kill of the whole process group (benchmark: 16 s).
    pub hard_timeout_secs: f64,
    /// Extra address space a program may map above the server's own (0 = unlimited).
    pub address_space_bytes: u64,
    /// CPU-time rlimit (SIGXCPU/SIGKILL past it).
    pub cpu_seconds: u64,
    /// Max processes+threads of the worker's private uid (fork bombs).
    pub nproc: u64,
    /// Max size of any file a program writes.
    pub file_size_bytes: u64,
    /// Size of each private tmpfs (/tmp, /var/tmp, /run, /dev/shm).
    pub tmpfs_bytes: u64,
    /// Memory of a whole program with all its processes (a cgroup limit; 0 = none).
    pub memory_bytes: u64,
    /// Characters of stdout/stderr kept per program.
    pub capture_chars: usize,
    /// Modules imported once per server before forking.
    pub preload: Vec<String>,
    /// Seed of `random`, numpy's global RNG and torch's CPU generator (benchmark: 42).
    pub seed: u64,
    /// Host paths programs may read (besides the system libraries and the interpreter's own
    /// directories): e.g. a benchmark's problem files. Nothing else of the host is visible.
    pub read_only_paths: Vec<PathBuf>,
    /// Names of recode's environment variables passed into programs (none by default: the
    /// environment is built from an allow-list, see [`crate::env`]).
    pub pass_env: Vec<String>,
    /// Other interpreters [`Job::Exec`] commands may run (e.g. virtualenvs of other Python
    /// versions): their install roots join the read-only view.
    pub interpreters: Vec<PathBuf>,
    /// Run programs under a private unprivileged uid when the server is root.
    pub drop_privileges: bool,
    /// Run the fork servers as this unprivileged user and group (recode as root sheds root
    /// before any untrusted code runs): isolation then comes from a user namespace, and memory
    /// from the supervisor instead of cgroups, exactly as for a non-root user.
    pub server_user: Option<(u32, u32)>,
    /// Run programs even where the machine permits no sandbox (`--unsafe-no-sandbox`).
    pub allow_unsandboxed: bool,
}

impl ExecConfig {
    /// The benchmark's settings with recode's isolation defaults (6 GiB of memory per program
    /// and of address space per process above the server, 128 processes, 256 MiB files, 1 GiB
    /// tmpfs, 64 Ki chars of output).
    pub fn new(python: PathBuf, workers: usize) -> ExecConfig {
        ExecConfig {
            python,
            workers,
            timeout_secs: 15.0,
            hard_timeout_secs: 16.0,
            address_space_bytes: 6 << 30,
            cpu_seconds: 20,
            nproc: 128,
            file_size_bytes: 256 << 20,
            tmpfs_bytes: 1 << 30,
            memory_bytes: 6 << 30,
            capture_chars: 64 << 10,
            preload: DEFAULT_PRELOAD.iter().map(|s| s.to_string()).collect(),
            seed: 42,
            read_only_paths: Vec::new(),
            pass_env: Vec::new(),
            interpreters: Vec::new(),
            drop_privileges: true,
            server_user: None,
            allow_unsandboxed: false,
        }
    }
}

/// What isolation the kernel/user permitted, reported by each server at start-up.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Capabilities {
    /// Each program gets new mount, network, IPC and UTS namespaces.
    pub namespaces: bool,
    /// Each program is PID 1 of a new PID namespace (sees only its own processes).
    #[serde(default)]
    pub pid_namespace: bool,
    /// Where no memory cgroup exists, a supervisor sums each program's memory (proportional
    /// set size of its processes) and kills it past the limit.
    #[serde(default)]
    pub memory_supervisor: bool,
    /// A seccomp filter denies programs the syscalls no benchmark needs (namespaces, mounts,
    /// tracing, keyrings, BPF, io_uring, modules, ...).
    #[serde(default)]
    pub seccomp: bool,
    /// Programs see a minimal read-only root (no host file beyond the view).
    #[serde(default)]
    pub minimal_root: bool,
    /// Children run under a private unprivileged uid.
    pub uid_drop: bool,
    /// One memory limit for a program and all its processes (cgroup).
    #[serde(default)]
    pub cgroup_memory: bool,
    /// One process count for a program and all its processes (cgroup).
    #[serde(default)]
    pub cgroup_pids: bool,
    /// A sandboxed child (after the uid drop) can list every directory of the Python install.
    #[serde(default)]
    pub python_reachable: bool,
}

impl Capabilities {
    /// Names of the protections in force (for run logs and `summary.json`); the environment
    /// allow-list always is.
    pub fn active(&self) -> Vec<&'static str> {
        self.table()
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n)
            .collect()
    }

    /// Names of the protections this machine/user does not permit.
    pub fn missing(&self) -> Vec<&'static str> {
        self.table()
            .into_iter()
            .filter(|(_, on)| !*on)
            .map(|(n, _)| n)
            .collect()
    }

    /// Whether untrusted code may run: namespaces (incl. PID) and the minimal root.
    pub fn isolated(&self) -> bool {
        self.namespaces && self.pid_namespace && self.minimal_root
    }

    fn table(&self) -> [(&'static str, bool); 8] {
        [
            ("environment_allow_list", true),
            ("namespaces(mount,net,ipc,uts)", self.namespaces),
            ("pid_namespace", self.pid_namespace),
            ("minimal_read_only_root", self.minimal_root),
            ("private_uid", self.uid_drop),
            ("syscall_filter", self.seccomp),
            (
                "memory_per_program",
                self.cgroup_memory || self.memory_supervisor,
            ),
            ("processes_per_program", self.cgroup_pids),
        ]
    }
}

/// The protections a pool's programs run under, as recorded in run summaries.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Protections {
    /// Whether the isolation the crate requires is in force (see [`Capabilities::isolated`]).
    pub isolated: bool,
    /// Protections in force.
    pub active: Vec<&'static str>,
    /// Protections this machine or user does not permit.
    pub missing: Vec<&'static str>,
}

/// The server's start-up message.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Hello {
    /// Isolation available.
    pub caps: Capabilities,
    /// Modules imported before forking.
    pub preloaded: Vec<String>,
    /// Modules that failed to import, with the error.
    pub failed_imports: std::collections::BTreeMap<String, String>,
    /// Interpreter version.
    pub python: String,
    /// Server pid.
    pub pid: u32,
    /// Private uid the programs run under (None: no privilege drop).
    #[serde(default)]
    pub uid: Option<u32>,
    /// Server's virtual size when ready.
    pub vsz_bytes: u64,
    /// MiB of the server's pre-imported heap backed by huge pages (cheaper forks; 0 where the
    /// kernel does not support collapsing).
    #[serde(default)]
    pub huge_pages_mib: u64,
    /// Directories the interpreter imports from (prefixes, `sys.path`), topmost only.
    #[serde(default)]
    pub python_roots: Vec<String>,
    /// Why the minimal root could not be built (None when it was).
    #[serde(default)]
    pub view_error: Option<String>,
    /// Names of the variables in the programs' environment.
    #[serde(default)]
    pub environment: Vec<String>,
}

/// The outcome of running one program.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ExecResult {
    /// The benchmark's verdict: `passed`, `failed: assertion error`, `failed: <msg>`, `timed out`.
    pub verdict: String,
    /// Exception type name when the program raised.
    #[serde(default)]
    pub error_type: Option<String>,
    /// `reported`, `no_report` (crashed, killed, `os._exit`), `hard_kill`, `server_error`,
    /// `server_died`.
    pub outcome: String,
    /// Wall time from fork to verdict, seconds.
    #[serde(default)]
    pub wall: f64,
    /// Captured stdout/stderr (bounded).
    #[serde(default)]
    pub stdout: String,
    /// Total characters written to stdout/stderr.
    #[serde(default)]
    pub stdout_chars: u64,
    /// Terminating signal of a child that did not report.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Exit code of a child that did not report.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Sandbox set-up failure (infrastructure, not the program).
    #[serde(default)]
    pub setup_error: Option<String>,
    /// Peak memory of the program with all its processes (cgroup), bytes.
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    /// The program was killed for exceeding its memory limit.
    #[serde(default)]
    pub memory_limit_hit: bool,
}

impl ExecResult {
    /// Only `passed` counts.
    pub fn passed(&self) -> bool {
        self.verdict == "passed"
    }

    /// A short error class: `passed`, `assertion`, `timeout`, `hard_kill`, `memory_limit`,
    /// `signal:N`, `exit:N`, `exception:Type`, `setup_error`, `server_died` (exec jobs:
    /// `passed`, `exit:N`, `signal:N`, `timeout`, `memory_limit`, `setup_error`).
    pub fn error_class(&self) -> String {
        if self.setup_error.is_some() {
            return "setup_error".into();
        }
        if self.memory_limit_hit && self.outcome != "reported" {
            return "memory_limit".into();
        }
        match self.outcome.as_str() {
            "reported" => match self.error_type.as_deref() {
                None => "passed".into(),
                Some("AssertionError") => "assertion".into(),
                Some("TimeoutException") => "timeout".into(),
                Some(t) => format!("exception:{t}"),
            },
            "exited" | "signaled" if self.passed() => "passed".into(),
            "no_report" | "exited" | "signaled" => match (self.signal, self.exit_code) {
                (Some(s), _) => format!("signal:{s}"),
                (_, Some(c)) => format!("exit:{c}"),
                _ => "no_report".into(),
            },
            other => other.into(),
        }
    }

    fn infrastructure(outcome: &str, message: String) -> ExecResult {
        ExecResult {
            verdict: "timed out".into(),
            error_type: None,
            outcome: outcome.into(),
            wall: 0.0,
            stdout: String::new(),
            stdout_chars: 0,
            signal: None,
            exit_code: None,
            setup_error: Some(message),
            peak_memory_bytes: None,
            memory_limit_hit: false,
        }
    }
}

static POOL_SEQ: AtomicUsize = AtomicUsize::new(0);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Private uid of (this process, this pool, worker): unique among live pools on the machine.
fn worker_uid(pool_seq: usize, worker: usize) -> u32 {
    let pid = std::process::id() & 0x3F_FFFF;
    (1u32 << 30) + (pid << 9) + (((pool_seq & 15) as u32) << 5) + (worker as u32 & 31)
}

/// Whether the fork servers run as root (recode is root and keeps it for them): root servers
/// isolate with namespaces, private uids and cgroups; others through a user namespace.
fn servers_are_root(cfg: &ExecConfig) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    is_root && cfg.server_user.is_none()
}

/// The worker's private uid when privileges can and should be dropped (servers run as root).
fn private_uid(cfg: &ExecConfig, pool_seq: usize, worker: usize) -> Option<u32> {
    (cfg.drop_privileges && servers_are_root(cfg)).then(|| worker_uid(pool_seq, worker))
}

/// A server's refusal to start, in place of its hello (e.g. an interpreter of
/// [`ExecConfig::interpreters`] that cannot run).
#[derive(Deserialize)]
struct Fatal {
    fatal: String,
}

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    hello: Hello,
}

fn write_frame(w: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(data)?;
    w.flush()
}

fn read_frame(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

impl Server {
    fn start(
        cfg: &ExecConfig,
        uid: Option<u32>,
        cgroup: Option<&WorkerCgroup>,
    ) -> Result<Server, ExecError> {
        let conf = serde_json::json!({
            "preload": cfg.preload,
            "seed": cfg.seed,
            "uid": uid,
            "isolate": true,
            "read_only_paths": cfg.read_only_paths,
            "interpreters": cfg.interpreters,
            "userns": !servers_are_root(cfg),
            "memory_bytes": cfg.memory_bytes,
            "cgroup": cgroup.map(WorkerCgroup::spec),
            "tmpfs_bytes": cfg.tmpfs_bytes,
            "capture_chars": cfg.capture_chars,
            "limits": {
                "cpu_seconds": cfg.cpu_seconds,
                "address_space_bytes": cfg.address_space_bytes,
                "file_size_bytes": cfg.file_size_bytes,
                "nproc": cfg.nproc,
            },
        });
        let env = crate::env::program_environment(&cfg.python, &cfg.pass_env)?;
        let mut command = Command::new(&cfg.python);
        if let Some((uid, gid)) = cfg.server_user {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        let mut child = command
            .arg("-I")
            .arg("-c")
            .arg(FORK_SERVER_PY)
            .arg(conf.to_string())
            .env_clear()
            .envs(env)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ExecError::Spawn {
                python: cfg.python.clone(),
                source,
            })?;
        let (Some(stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ExecError::Handshake("missing pipes".into()));
        };
        let pid = child.id();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tracing::debug!(server = pid, "{line}");
            }
        });
        let hello = read_frame(&mut stdout)
            .map_err(|e| ExecError::Handshake(format!("no hello from server: {e}")))
            .and_then(|b| {
                if let Ok(Fatal { fatal }) = serde_json::from_slice::<Fatal>(&b) {
                    return Err(ExecError::Config(fatal));
                }
                serde_json::from_slice::<Hello>(&b)
                    .map_err(|e| ExecError::Handshake(format!("bad hello: {e}")))
            });
        let hello = match hello {
            Ok(h) => h,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let refuse = if !hello.caps.python_reachable {
            Some(ExecError::Handshake(format!(
                "a sandboxed program cannot read the Python install {:?} (check the permissions \
                 of these directories and their parents)",
                hello.python_roots
            )))
        } else if !hello.caps.isolated() && !cfg.allow_unsandboxed {
            Some(ExecError::Unsandboxed {
                missing: hello.caps.missing().iter().map(|s| s.to_string()).collect(),
                detail: hello.view_error.clone(),
            })
        } else {
            None
        };
        if let Some(e) = refuse {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        if !hello.failed_imports.is_empty() {
            tracing::warn!(
                "fork server could not pre-import: {:?}",
                hello.failed_imports
            );
        }
        if !hello.caps.isolated() && !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "UNSAFE: untrusted programs run WITHOUT a sandbox (missing: {}); they can read \
                 and write the host's files and reach the network",
                hello.caps.missing().join(", ")
            );
        }
        Ok(Server {
            child,
            stdin,
            stdout,
            hello,
        })
    }

    fn run(&mut self, id: usize, job: &Job, cfg: &ExecConfig) -> std::io::Result<ExecResult> {
        let mut req = serde_json::json!({
            "id": id,
            "timeout": cfg.timeout_secs,
            "hard_timeout": cfg.hard_timeout_secs,
        });
        match job {
            Job::Whole(program) => req["program"] = program.as_str().into(),
            Job::Judged {
                setup,
                candidate,
                test,
            } => {
                req["setup"] = setup.as_str().into();
                req["candidate"] = candidate.as_str().into();
                req["test"] = test.as_str().into();
            }
            Job::Exec(job) => {
                let timeout = job.timeout_secs.unwrap_or(cfg.hard_timeout_secs);
                req["hard_timeout"] = timeout.into();
                req["exec"] = serde_json::json!({
                    "argv": job.argv,
                    "files": job.files,
                    "env": job.env.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                    "loopback": job.loopback,
                    "cpu_seconds": (timeout.ceil() as u64 + 1).max(cfg.cpu_seconds),
                });
            }
        }
        write_frame(&mut self.stdin, req.to_string().as_bytes())?;
        let reply = read_frame(&mut self.stdout)?;
        serde_json::from_slice(&reply)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pool of fork servers; programs are distributed over them.
pub struct ExecutorPool {
    cfg: ExecConfig,
    seq: usize,
    servers: Mutex<Vec<Option<Server>>>,
    /// One per worker; dropped after the servers (see `Drop`).
    cgroups: Vec<Option<WorkerCgroup>>,
}

impl ExecutorPool {
    /// Starts `cfg.workers` fork servers (in parallel) and waits until each has pre-imported.
    pub fn start(cfg: ExecConfig) -> Result<ExecutorPool, ExecError> {
        if cfg.workers == 0 || cfg.workers > 32 {
            return Err(ExecError::Config(format!(
                "workers must be 1..=32, got {}",
                cfg.workers
            )));
        }
        if cfg.hard_timeout_secs < cfg.timeout_secs {
            return Err(ExecError::Config("hard timeout below the timer".into()));
        }
        let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
        let cgroups: Vec<Option<WorkerCgroup>> = (0..cfg.workers)
            .map(|w| {
                let name = format!("{}-{seq}-{w}", std::process::id());
                (cfg.memory_bytes > 0 && servers_are_root(&cfg))
                    .then(|| WorkerCgroup::create(&name, cfg.memory_bytes, cfg.nproc))
                    .flatten()
            })
            .collect();
        let started: Vec<Result<Server, ExecError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..cfg.workers)
                .map(|w| {
                    let cfg = &cfg;
                    let uid = private_uid(cfg, seq, w);
                    let cgroup = cgroups[w].as_ref();
                    s.spawn(move || Server::start(cfg, uid, cgroup))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(ExecError::Handshake("start-up panicked".into())))
                })
                .collect()
        });
        let mut servers = Vec::new();
        for s in started {
            servers.push(Some(s?));
        }
        Ok(ExecutorPool {
            cfg,
            seq,
            servers: Mutex::new(servers),
            cgroups,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ExecConfig {
        &self.cfg
    }

    /// Which protections programs of this pool run under (for run logs and summaries).
    pub fn protections(&self) -> Protections {
        let caps = self.hello().map(|h| h.caps).unwrap_or_default();
        Protections {
            isolated: caps.isolated(),
            active: caps.active(),
            missing: caps.missing(),
        }
    }

    /// Start-up information of the first server (isolation capabilities, pre-imports).
    pub fn hello(&self) -> Option<Hello> {
        let servers = self.servers.lock().ok()?;
        servers.iter().flatten().next().map(|s| s.hello.clone())
    }

    /// Runs every whole program (each in its own sandboxed child; [`Job::Whole`]) and returns
    /// results in order. `progress` is called once per finished program.
    pub fn run_all(&self, programs: &[String], progress: &(dyn Fn() + Sync)) -> Vec<ExecResult> {
        let jobs: Vec<Job> = programs.iter().cloned().map(Job::Whole).collect();
        self.run_jobs(&jobs, progress)
    }

    /// Runs every job (see [`Job`]) and returns results in order; `progress` is called once per
    /// finished job.
    pub fn run_jobs(&self, programs: &[Job], progress: &(dyn Fn() + Sync)) -> Vec<ExecResult> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<ExecResult>>> = Mutex::new(vec![None; programs.len()]);
        let mut servers = match self.servers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        std::thread::scope(|s| {
            for (w, slot) in servers.iter_mut().enumerate() {
                let next = &next;
                let results = &results;
                s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= programs.len() {
                        break;
                    }
                    let r = self.run_on(slot, w, i, &programs[i]);
                    if let Ok(mut g) = results.lock() {
                        g[i] = Some(r);
                    }
                    progress();
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| ExecResult::infrastructure("server_died", "no result".into()))
            })
            .collect()
    }

    /// Runs one program on the first server (convenience for tests and small jobs).
    pub fn run_one(&self, program: &str) -> ExecResult {
        self.run_all(std::slice::from_ref(&program.to_string()), &|| {})
            .pop()
            .unwrap_or_else(|| ExecResult::infrastructure("server_died", "no result".into()))
    }

    fn run_on(&self, slot: &mut Option<Server>, w: usize, id: usize, program: &Job) -> ExecResult {
        if slot.is_none() {
            let uid = private_uid(&self.cfg, self.seq, w);
            match Server::start(&self.cfg, uid, self.cgroups[w].as_ref()) {
                Ok(s) => *slot = Some(s),
                Err(e) => return ExecResult::infrastructure("server_died", e.to_string()),
            }
        }
        if let Job::Exec(job) = program {
            if let Err(e) = job.validate() {
                return ExecResult::infrastructure("invalid_job", e);
            }
        }
        let Some(server) = slot.as_mut() else {
            return ExecResult::infrastructure("server_died", "no server".into());
        };
        match server.run(id, program, &self.cfg) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("fork server {w} died ({e}); restarting it");
                if let Some(s) = slot.take() {
                    s.stop();
                }
                ExecResult::infrastructure("server_died", e.to_string())
            }
        }
    }
}

impl Drop for ExecutorPool {
    fn drop(&mut self) {
        let servers = match self.servers.get_mut() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for s in servers.iter_mut() {
            if let Some(s) = s.take() {
                s.stop();
            }
        }
    }
}
