//! Sandboxed Python executor pool: one fork server per worker (`python/eval/fork_server.py`,
//! embedded), one forked child per program.
//!
//! Isolation of each child (when running as root, as in CI; see [`Capabilities`]): a new
//! session/process group; new network namespace (loopback down: no network at all); new mount
//! namespace with private tmpfs over `/tmp`, `/dev/shm`, `/var/tmp` and empty read-only tmpfs
//! over [`ExecConfig::hide_paths`]; cwd = a fresh dir in that tmpfs; rlimits (CPU time, address
//! space above the server's own mapping, file size, process count, no core); an unprivileged
//! uid private to the worker (so it cannot signal the server, write root-owned files, or
//! escape the final `kill(-1)` sweep of that uid); closed stdin; stdout/stderr captured into a
//! bounded buffer; the benchmark's guard and verdict rules; 15 s timer, hard kill at 16 s.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The fork server's source, embedded so the binary is self-contained.
pub const FORK_SERVER_PY: &str = include_str!("../../../python/eval/fork_server.py");

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
    /// Size of the private tmpfs mounted over /tmp (and /dev/shm, /var/tmp).
    pub tmpfs_bytes: u64,
    /// Characters of stdout/stderr kept per program.
    pub capture_chars: usize,
    /// Modules imported once per server before forking.
    pub preload: Vec<String>,
    /// Seed of `random`, numpy's global RNG and torch's CPU generator (benchmark: 42).
    pub seed: u64,
    /// Directories hidden (empty read-only tmpfs) from programs, e.g. the project checkout.
    pub hide_paths: Vec<PathBuf>,
    /// Run programs under a private unprivileged uid when the server is root.
    pub drop_privileges: bool,
}

impl ExecConfig {
    /// The benchmark's settings with recode's isolation defaults (6 GiB address space above
    /// the server, 128 processes, 256 MiB files, 1 GiB tmpfs, 64 Ki chars of output).
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
            capture_chars: 64 << 10,
            preload: DEFAULT_PRELOAD.iter().map(|s| s.to_string()).collect(),
            seed: 42,
            hide_paths: Vec::new(),
            drop_privileges: true,
        }
    }
}

/// What isolation the kernel/user permitted, reported by each server at start-up.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Capabilities {
    /// New network + mount namespaces were created.
    pub namespaces: bool,
    /// Children run under a private unprivileged uid.
    pub uid_drop: bool,
    /// A sandboxed child (after the uid drop) can list every directory of the Python install.
    #[serde(default)]
    pub python_reachable: bool,
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
    /// Directories the interpreter imports from (prefixes, `sys.path`), topmost only.
    #[serde(default)]
    pub python_roots: Vec<String>,
    /// Untraversable ancestor (e.g. a 0700 home) → install roots re-exposed below it inside
    /// each child's mount namespace (host permissions untouched).
    #[serde(default)]
    pub exposed: std::collections::BTreeMap<String, Vec<String>>,
    /// Directories granted `o+x` on the host because no mount namespace was available.
    #[serde(default)]
    pub granted_traverse: Vec<String>,
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
}

impl ExecResult {
    /// Only `passed` counts.
    pub fn passed(&self) -> bool {
        self.verdict == "passed"
    }

    /// A short error class: `passed`, `assertion`, `timeout`, `hard_kill`, `signal:N`,
    /// `exit:N`, `exception:Type`, `setup_error`, `server_died`.
    pub fn error_class(&self) -> String {
        if self.setup_error.is_some() {
            return "setup_error".into();
        }
        match self.outcome.as_str() {
            "reported" => match self.error_type.as_deref() {
                None => "passed".into(),
                Some("AssertionError") => "assertion".into(),
                Some("TimeoutException") => "timeout".into(),
                Some(t) => format!("exception:{t}"),
            },
            "no_report" => match (self.signal, self.exit_code) {
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
    fn start(cfg: &ExecConfig, uid: Option<u32>) -> Result<Server, ExecError> {
        let conf = serde_json::json!({
            "preload": cfg.preload,
            "seed": cfg.seed,
            "uid": uid,
            "hide_paths": cfg.hide_paths,
            "tmpfs_bytes": cfg.tmpfs_bytes,
            "capture_chars": cfg.capture_chars,
            "limits": {
                "cpu_seconds": cfg.cpu_seconds,
                "address_space_bytes": cfg.address_space_bytes,
                "file_size_bytes": cfg.file_size_bytes,
                "nproc": cfg.nproc,
            },
        });
        let mut child = Command::new(&cfg.python)
            .arg("-I")
            .arg("-c")
            .arg(FORK_SERVER_PY)
            .arg(conf.to_string())
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
        if !hello.caps.python_reachable {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ExecError::Handshake(format!(
                "a sandboxed program cannot read the Python install {:?} (check the permissions \
                 of these directories and their parents)",
                hello.python_roots
            )));
        }
        if !hello.granted_traverse.is_empty() {
            tracing::warn!(
                "granted o+x on {:?} so the sandbox uid reaches the Python install \
                 (no mount namespace to re-expose it privately)",
                hello.granted_traverse
            );
        }
        if !hello.exposed.is_empty() {
            tracing::debug!(
                "Python install re-exposed inside each sandbox below: {:?}",
                hello.exposed
            );
        }
        if !hello.failed_imports.is_empty() {
            tracing::warn!(
                "fork server could not pre-import: {:?}",
                hello.failed_imports
            );
        }
        if !hello.caps.namespaces && !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "network/mount namespaces are not permitted here: programs run WITHOUT network \
                 isolation and can read/write the host's /tmp (run as root to enable them)"
            );
        }
        Ok(Server {
            child,
            stdin,
            stdout,
            hello,
        })
    }

    fn run(&mut self, id: usize, program: &str, cfg: &ExecConfig) -> std::io::Result<ExecResult> {
        let req = serde_json::json!({
            "id": id,
            "program": program,
            "timeout": cfg.timeout_secs,
            "hard_timeout": cfg.hard_timeout_secs,
        });
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
        let is_root = unsafe { libc::geteuid() } == 0;
        let started: Vec<Result<Server, ExecError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..cfg.workers)
                .map(|w| {
                    let cfg = &cfg;
                    let uid = (cfg.drop_privileges && is_root).then(|| worker_uid(seq, w));
                    s.spawn(move || Server::start(cfg, uid))
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
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ExecConfig {
        &self.cfg
    }

    /// Start-up information of the first server (isolation capabilities, pre-imports).
    pub fn hello(&self) -> Option<Hello> {
        let servers = self.servers.lock().ok()?;
        servers.iter().flatten().next().map(|s| s.hello.clone())
    }

    /// Runs every program (each in its own sandboxed child) and returns results in order.
    /// `progress` is called once per finished program.
    pub fn run_all(&self, programs: &[String], progress: &(dyn Fn() + Sync)) -> Vec<ExecResult> {
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

    fn run_on(&self, slot: &mut Option<Server>, w: usize, id: usize, program: &str) -> ExecResult {
        if slot.is_none() {
            let is_root = unsafe { libc::geteuid() } == 0;
            let uid = (self.cfg.drop_privileges && is_root).then(|| worker_uid(self.seq, w));
            match Server::start(&self.cfg, uid) {
                Ok(s) => *slot = Some(s),
                Err(e) => return ExecResult::infrastructure("server_died", e.to_string()),
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
