//! Exec jobs: commands in a fresh process (another interpreter, a script and its files) under the
//! sandbox's isolation and limits, judged by exit status. Needs root like `attacks.rs`.
//!
//! The server runs on `$RECODE_VENV/bin/python` (or `python3`); the exec'd interpreter is a
//! different installation when the machine has one (a pyenv version), so the view must hold the
//! roots of both.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use recode_sandbox::{ExecConfig, ExecError, ExecJob, ExecResult, ExecutorPool, Job};

fn server_python() -> PathBuf {
    match std::env::var_os("RECODE_VENV") {
        Some(v) => PathBuf::from(v).join("bin/python"),
        None => PathBuf::from("python3"),
    }
}

/// A Python installation other than the server's: the oldest pyenv 3.x with `pidfd`-free needs
/// (any works: it only runs the job), else the server's own interpreter.
fn other_python() -> PathBuf {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    let mut found: Vec<PathBuf> = root
        .and_then(|r| std::fs::read_dir(r.join("versions")).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/python3"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/3.9."))
        .unwrap_or_else(server_python)
}

fn config() -> ExecConfig {
    let mut cfg = ExecConfig::new(server_python(), 1);
    cfg.preload = Vec::new();
    cfg.capture_chars = 4000;
    cfg.memory_bytes = 768 << 20;
    cfg.nproc = 48;
    cfg.interpreters = vec![other_python()];
    cfg
}

fn pool() -> &'static ExecutorPool {
    static POOL: OnceLock<ExecutorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        std::env::set_var("RECODE_EXEC_TEST_SECRET", "do-not-leak-42");
        let pool = ExecutorPool::start(config()).expect("start pool");
        assert!(pool.hello().expect("hello").caps.isolated(), "needs root");
        pool
    })
}

fn python_job(script: &str) -> ExecJob {
    let py = other_python().to_string_lossy().into_owned();
    ExecJob::new([py, "main.py".into()]).file("main.py", script)
}

fn run(job: ExecJob) -> ExecResult {
    pool()
        .run_jobs(&[Job::Exec(job)], &|| {})
        .pop()
        .expect("one result")
}

#[test]
fn runs_another_interpreter_with_its_files_and_exit_status() {
    let job = python_job(
        "import sys, helper\nprint(helper.VALUE, sys.version_info[:2])\n\
         print('to stderr', file=sys.stderr)\nsys.exit(0)\n",
    )
    .file("helper.py", "VALUE = 6 * 7\n");
    let r = run(job);
    assert!(r.passed(), "{r:?}");
    assert_eq!(r.error_class(), "passed");
    // stdout is a pipe (block-buffered), stderr is not: only the content is certain
    assert!(r.stdout.contains("42 (3, "), "{:?}", r.stdout);
    assert!(r.stdout.contains("to stderr"), "{:?}", r.stdout);

    let r = run(python_job("import sys\nprint('failing')\nsys.exit(3)\n"));
    assert!(!r.passed());
    assert_eq!(r.error_class(), "exit:3", "{r:?}");
    assert_eq!(r.stdout, "failing\n");

    let r = run(python_job(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    ));
    assert_eq!(r.error_class(), "signal:9", "{r:?}");
}

#[test]
fn nested_files_and_env_reach_the_command() {
    let mut job = python_job(
        "import os\nfrom pkg import mod\nprint(mod.X, os.environ['GREETING'], os.getcwd() == \
         os.environ['PWD'])\n",
    )
    .file("pkg/__init__.py", "")
    .file("pkg/mod.py", "X = 'nested'\n");
    job.env.push(("GREETING".into(), "hi".into()));
    let r = run(job);
    assert!(r.passed(), "{r:?}");
    assert_eq!(r.stdout, "nested hi True\n");
}

#[test]
fn the_job_timeout_kills_the_whole_command() {
    let mut job = python_job(
        "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'while True: pass'])\n\
         while True:\n    pass\n",
    );
    job.timeout_secs = Some(1.5);
    let r = run(job);
    assert_eq!(r.error_class(), "timeout", "{r:?}");
    assert!(r.wall >= 1.5 && r.wall < 4.0, "{}", r.wall);
    // the next job finds nothing left of it
    let r = run(python_job(
        "import os\npids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n\
         print(pids == [1, os.getpid()])\n",
    ));
    // only the namespace's init and the command itself
    assert_eq!(r.stdout, "True\n", "{r:?}");
}

#[test]
fn the_command_is_contained() {
    let host = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exec-host-file");
    std::fs::write(&host, "host secret").unwrap();
    let script = format!(
        "import os, socket\n\
         assert 'RECODE_EXEC_TEST_SECRET' not in os.environ, 'secret visible'\n\
         assert not os.path.exists({host:?}), 'host file visible'\n\
         pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n\
         assert pids == [1, os.getpid()], ('host processes', pids)\n\
         try:\n    os.makedirs('/usr/recode-exec-test')\n    raise SystemExit('wrote /usr')\n\
         except OSError:\n    pass\n\
         s = socket.socket()\n\
         try:\n    s.connect(('127.0.0.1', 9))\n    raise SystemExit('socket reached')\n\
         except OSError:\n    pass\n\
         open('/tmp/private', 'w').write('x')\n\
         print('contained')\n"
    );
    let r = run(python_job(&script));
    assert!(r.passed(), "{r:?}");
    assert_eq!(r.stdout, "contained\n");
    assert!(!Path::new("/usr/recode-exec-test").exists());
}

#[test]
fn loopback_is_up_only_when_asked() {
    let script = "import socket\n\
        srv = socket.socket()\n\
        srv.bind(('127.0.0.1', 0))\n\
        srv.listen(1)\n\
        c = socket.create_connection(srv.getsockname(), timeout=2)\n\
        conn, _ = srv.accept()\n\
        c.sendall(b'ping')\n\
        print(conn.recv(4).decode())\n";
    let mut job = python_job(&format!(
        "{script}import socket as s2\n\
         assert s2.gethostbyname('localhost') == '127.0.0.1'\n\
         assert open('/etc/hosts').read().split() == \
         ['127.0.0.1', 'localhost', '::1', 'localhost', 'ip6-localhost', 'ip6-loopback']\n"
    ));
    job.loopback = true;
    let r = run(job.clone());
    assert!(r.passed(), "{r:?}");
    assert_eq!(r.stdout, "ping\n");
    job.loopback = false;
    let r = run(job);
    assert!(!r.passed(), "loopback must be down by default: {r:?}");
}

#[test]
fn output_is_bounded_and_counted() {
    let r = run(python_job("import sys\nsys.stdout.write('x' * 100000)\n"));
    assert!(r.passed(), "{r:?}");
    assert_eq!(r.stdout.len(), 4000);
    assert_eq!(r.stdout_chars, 100_000);
}

#[test]
fn invalid_jobs_are_refused_before_running() {
    let r = run(ExecJob::new(["python3", "x.py"]));
    assert_eq!(r.error_class(), "setup_error", "{r:?}");
    let r = run(python_job("print(1)").file("../escape.py", ""));
    assert_eq!(r.error_class(), "setup_error", "{r:?}");
    assert!(r.setup_error.unwrap().contains("escape.py"));
}

#[test]
fn a_host_binary_outside_the_view_cannot_be_executed() {
    // the test binary itself lives under target/, which is not in the view
    let me = std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let r = run(ExecJob::new([me]));
    assert_eq!(r.error_class(), "setup_error", "{r:?}");
    assert!(r.setup_error.unwrap().contains("FileNotFoundError"));
}

#[test]
fn an_interpreter_that_cannot_run_stops_the_pool_with_a_clear_error() {
    let mut cfg = config();
    cfg.interpreters = vec![PathBuf::from("/nonexistent/bin/python3")];
    match ExecutorPool::start(cfg) {
        Err(ExecError::Config(msg)) => assert!(msg.contains("/nonexistent/bin/python3"), "{msg}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a pool with a missing interpreter started"),
    }
}

#[test]
fn a_read_only_path_under_a_private_tmpfs_is_refused_clearly() {
    let mut cfg = config();
    cfg.read_only_paths = vec![PathBuf::from("/tmp")];
    match ExecutorPool::start(cfg) {
        Err(ExecError::Config(msg)) => assert!(
            msg.contains("/tmp") && msg.contains("private empty tmpfs"),
            "{msg}"
        ),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a pool whose read-only path programs cannot see started"),
    }
}
