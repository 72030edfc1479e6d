//! Safety tests of the executor: each hostile program is contained, gets the right error class,
//! and a canary program run right after it still passes (nothing leaked, the server lives).
//! Needs the eval virtualenv: run `recode eval setup` (or set RECODE_EVAL_VENV) first.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::OnceLock;

use recode_eval::executor::{ExecConfig, ExecResult, ExecutorPool};
use recode_eval::setup::{default_venv_dir, ready_python};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn config(workers: usize) -> ExecConfig {
    let venv = default_venv_dir();
    let python = ready_python(&venv).unwrap_or_else(|e| {
        panic!("{e}: the sandbox tests need the eval venv; run `recode eval setup` first")
    });
    let mut cfg = ExecConfig::new(python, workers);
    cfg.timeout_secs = 3.0;
    cfg.hard_timeout_secs = 4.0;
    cfg.cpu_seconds = 8;
    cfg.capture_chars = 1000;
    cfg.preload = vec!["numpy".into(), "torch".into()];
    cfg
}

fn pool() -> &'static ExecutorPool {
    static POOL: OnceLock<ExecutorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let pool = ExecutorPool::start(config(1)).expect("start pool");
        let hello = pool.hello().expect("hello");
        assert!(
            hello.caps.namespaces && hello.caps.uid_drop,
            "isolation unavailable ({:?}): the sandbox tests must run as root",
            hello.caps
        );
        pool
    })
}

const CANARY: &str = "import math, numpy, torch, builtins, os\n\
assert len([1, 2]) == 2 and math.sqrt(4) == 2.0\n\
assert numpy.sum([1, 2]) == 3 and hasattr(numpy, 'sum')\n\
assert torch.Tensor.view is not None and builtins.print is not None\n\
assert not os.path.exists('/tmp/recode-leak-marker')\n\
print('canary')\n";

/// Runs `program` then the canary (same pool) and returns the program's result.
fn contained(program: &str) -> ExecResult {
    let results = pool().run_all(&[program.to_string(), CANARY.to_string()], &|| {});
    let canary = &results[1];
    assert!(
        canary.passed() && canary.stdout == "canary\n",
        "canary after {program:?} failed: {canary:?}"
    );
    results[0].clone()
}

#[test]
fn infinite_loop_times_out_by_timer() {
    let r = contained("while True:\n    pass\n");
    assert_eq!(r.verdict, "timed out");
    assert_eq!(r.error_class(), "timeout");
    assert!(r.wall >= 2.9 && r.wall < 4.0, "{r:?}");
}

#[test]
fn uninterruptible_c_loop_is_hard_killed() {
    let r = contained("import itertools\nsum(itertools.repeat(1, 10**13))\n");
    assert_eq!(r.verdict, "timed out");
    assert_eq!(r.error_class(), "hard_kill", "{r:?}");
}

#[test]
fn huge_allocation_fails_with_memory_error() {
    let r = contained("x = bytearray(50 * 2**30)\n");
    assert_eq!(r.error_class(), "exception:MemoryError", "{r:?}");
    assert!(r.verdict.starts_with("failed"));
    let r = contained("import numpy as np\nx = np.ones(50 * 2**30 // 8)\n");
    assert_eq!(r.error_class(), "exception:MemoryError", "{r:?}");
}

fn processes_of_uid(uid: u32) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        if let Ok(s) = std::fs::read_to_string(e.path().join("status")) {
            let uid_line = s.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
            if uid_line.split_whitespace().nth(1) == Some(&uid.to_string()) {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn fork_bomb_is_contained_and_swept() {
    // Its own pool, so the uid sweep check sees only this program's processes.
    let pool = ExecutorPool::start(config(1)).unwrap();
    let uid = pool.hello().unwrap().uid.expect("uid drop (run as root)");
    let bomb = "import posix\nwhile True:\n    try:\n        posix.fork()\n    except OSError:\n        pass\n";
    let results = pool.run_all(&[bomb.to_string(), CANARY.to_string()], &|| {});
    assert_eq!(results[0].verdict, "timed out", "{:?}", results[0]);
    assert!(results[1].passed(), "{:?}", results[1]);
    assert_eq!(processes_of_uid(uid), 0, "escaped processes of uid {uid}");
}

#[test]
fn network_is_unreachable_even_to_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = contained(&format!(
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    ));
    assert!(r.verdict.starts_with("failed"), "{r:?}");
    assert!(r.error_class().starts_with("exception:"), "{r:?}");
    assert!(
        listener.accept().is_err(),
        "the listener received a connection"
    );
}

#[test]
fn writes_outside_the_temp_dir_do_not_reach_the_host() {
    let host_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let target = host_dir.join(format!("recode-sandbox-write-{}", std::process::id()));
    let r = contained(&format!(
        "open({:?}, 'w').write('x')\n",
        target.to_str().unwrap()
    ));
    // Outside the minimal read-only view: the host directory does not even exist there.
    let class = r.error_class();
    assert!(
        class == "exception:FileNotFoundError" || class == "exception:PermissionError",
        "{r:?}"
    );
    assert!(!target.exists());
    // /tmp is a private tmpfs: the write succeeds there but never appears on the host.
    let r = contained("open('/tmp/recode-leak-marker', 'w').write('x')\n");
    assert!(r.passed(), "{r:?}");
    assert!(!std::path::Path::new("/tmp/recode-leak-marker").exists());
    // cwd is writable (its own temp dir).
    let r = contained("open('out.txt', 'w').write('x')\nassert open('out.txt').read() == 'x'\n");
    assert!(r.passed(), "{r:?}");
}

#[test]
fn project_files_are_hidden() {
    let file = repo_root().join("Cargo.toml");
    assert!(file.exists());
    let r = contained(&format!("open({:?}).read()\n", file.to_str().unwrap()));
    assert!(r.verdict.starts_with("failed"), "{r:?}");
    let class = r.error_class();
    assert!(
        class == "exception:FileNotFoundError" || class == "exception:PermissionError",
        "{r:?}"
    );
}

#[test]
fn the_parent_is_out_of_reach() {
    // PID 1 of its own namespace: the server has no pid the program could name.
    let r = contained("import os\nassert os.getpid() == 1 and os.getppid() == 0\n");
    assert!(r.passed(), "{r:?}");
    let r = contained("import posix\nposix.kill(-1, 9)\n");
    assert!(r.outcome == "reported" || r.outcome == "no_report", "{r:?}");
}

#[test]
fn stdout_flood_is_bounded() {
    let r = contained("for _ in range(200000):\n    print('y' * 99)\n");
    assert!(r.passed(), "{r:?}");
    assert_eq!(r.stdout.len(), 1000);
    assert_eq!(r.stdout_chars, 200000 * 100);
    let r = contained("import posix\nwhile True:\n    posix.write(1, b'z' * 65536)\n");
    assert_eq!(r.error_class(), "timeout", "{r:?}");
}

#[test]
fn os_exit_is_no_report() {
    let r = contained("import os\nos._exit(0)\n");
    assert_eq!(r.verdict, "timed out");
    assert_eq!(r.error_class(), "exit:0", "{r:?}");
}

#[test]
fn monkeypatching_does_not_leak() {
    let r = contained(
        "import builtins, sys, math, numpy, torch\n\
         builtins.len = lambda x: 0\n\
         math.sqrt = None\n\
         del numpy.sum\n\
         torch.Tensor.view = None\n\
         sys.modules['math'] = None\n",
    );
    assert!(r.passed(), "{r:?}");
}

#[test]
fn verdict_rules() {
    let r = contained("assert 1 == 2\n");
    assert_eq!(r.verdict, "failed: assertion error");
    let r = contained("raise ValueError('boom')\n");
    assert_eq!(r.verdict, "failed: boom");
    let r = contained("exit()\n");
    assert_eq!(r.verdict, "failed: 'NoneType' object is not callable");
    let r = contained("import sys\nsys.exit(3)\n");
    assert_eq!(r.verdict, "failed: 3");
    let r = contained("assert __name__ == 'builtins'\nimport os\nassert os.getcwd is None\n");
    assert!(r.passed(), "{r:?}");
    let r = contained(
        "import random, numpy, torch\nprint(numpy.random.rand(), torch.rand(1).item())\n",
    );
    let again =
        contained("import numpy, torch\nprint(numpy.random.rand(), torch.rand(1).item())\n");
    assert!(
        r.passed() && r.stdout == again.stdout,
        "seeded RNG state must repeat: {r:?} {again:?}"
    );
    let r = contained("import joblib\n");
    assert!(r.verdict.starts_with("failed"), "{r:?}");
}

#[test]
fn modules_not_preloaded_import_under_the_sandbox_uid() {
    let hello = pool().hello().unwrap();
    assert!(hello.caps.python_reachable, "{hello:?}");
    // Imported for the first time inside the child, i.e. read from disk by the private uid.
    let r = contained(
        "import sys\n\
         assert 'pytest' not in sys.modules and 'email.mime.text' not in sys.modules\n\
         import pytest, email.mime.text, sympy.integrals\n\
         assert email.mime.text.MIMEText('x').get_payload() == 'x'\n\
         assert pytest.approx(1.0) == 1.0\n",
    );
    assert!(r.passed(), "{r:?}");
}
