//! Adversarial suite: hostile programs (the attack classes of the threat model in the crate docs),
//! each asserting containment from outside the sandbox, with an honest program run right after
//! each one on the same worker that must still pass. Bounded in time and memory; loopback only.
//!
//! Every attack runs in two modes (a module each): `root`, fork servers as root (namespaces,
//! cgroups, private uids; the interpreter is `$RECODE_VENV/bin/python` or `python3`), and
//! `unprivileged`, fork servers as uid/gid 65534 exactly as for a user without root (a user
//! namespace, the memory supervisor instead of cgroups; the interpreter is the system's
//! `/usr/bin/python3`, or `$RECODE_SANDBOX_UNPRIVILEGED_PYTHON`, which that user can read).
//! The test process itself needs root to start the second kind (CI runs as root).

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use recode_sandbox::{ExecConfig, ExecResult, ExecutorPool, Job};

/// A credential the test process holds; no program may ever see it.
const SECRET_NAME: &str = "OPENAI_API_KEY";
const SECRET_VALUE: &str = "sk-recode-sandbox-test-0123456789abcdef";
/// Memory limit of the pool under test (small, so that the over-limit program stays cheap).
const MEMORY_LIMIT: u64 = 768 << 20;
const PROCESS_LIMIT: u64 = 48;

/// Where the fork servers run (see the module docs).
#[derive(Clone, Copy, Debug)]
enum Mode {
    Root,
    Unprivileged,
}

/// The unprivileged servers' user and group ("nobody" on most systems).
const NOBODY: (u32, u32) = (65534, 65534);

fn python(mode: Mode) -> PathBuf {
    match (mode, std::env::var_os("RECODE_VENV")) {
        (Mode::Root, Some(v)) => PathBuf::from(v).join("bin/python"),
        (Mode::Root, None) => PathBuf::from("python3"),
        (Mode::Unprivileged, _) => std::env::var_os("RECODE_SANDBOX_UNPRIVILEGED_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/python3")),
    }
}

fn config(mode: Mode) -> ExecConfig {
    let mut cfg = ExecConfig::new(python(mode), 1);
    cfg.timeout_secs = 4.0;
    cfg.hard_timeout_secs = 5.0;
    cfg.cpu_seconds = 8;
    cfg.capture_chars = 4000;
    cfg.preload = Vec::new();
    cfg.memory_bytes = MEMORY_LIMIT;
    cfg.nproc = PROCESS_LIMIT;
    if let Mode::Unprivileged = mode {
        cfg.server_user = Some(NOBODY);
    }
    cfg
}

fn pool(mode: Mode) -> &'static ExecutorPool {
    static ROOT: OnceLock<ExecutorPool> = OnceLock::new();
    static UNPRIVILEGED: OnceLock<ExecutorPool> = OnceLock::new();
    let cell = match mode {
        Mode::Root => &ROOT,
        Mode::Unprivileged => &UNPRIVILEGED,
    };
    cell.get_or_init(|| {
        // Set before any pool starts: the servers must not inherit it even though we hold it.
        std::env::set_var(SECRET_NAME, SECRET_VALUE);
        let pool = ExecutorPool::start(config(mode))
            .unwrap_or_else(|e| panic!("start the {mode:?} pool: {e}"));
        let caps = pool.hello().expect("hello").caps;
        match mode {
            Mode::Root => assert!(
                caps.isolated() && caps.uid_drop && caps.cgroup_memory && caps.cgroup_pids,
                "the root attack suite must run as root with cgroups: {caps:?}"
            ),
            Mode::Unprivileged => assert!(
                caps.isolated() && caps.memory_supervisor && !caps.uid_drop,
                "unprivileged servers must isolate through a user namespace: {caps:?}"
            ),
        }
        pool
    })
}

const HONEST: &str = "import os, math\n\
assert math.factorial(5) == 120\n\
open('out.txt', 'w').write('ok')\n\
assert open('out.txt').read() == 'ok'\n\
assert not os.path.exists('/tmp/recode-attack-marker')\n\
print('honest')\n";

/// Runs `attack` then the honest program on the same worker; returns the attack's result.
fn contained(mode: Mode, attack: &str) -> ExecResult {
    let results = pool(mode).run_all(&[attack.to_string(), HONEST.to_string()], &|| {});
    let honest = &results[1];
    assert!(
        honest.passed() && honest.stdout == "honest\n",
        "honest program after {attack:?} failed: {honest:?}"
    );
    results[0].clone()
}

/// A directory on the host, outside every path of the view.
fn host_dir(name: &str) -> PathBuf {
    let d =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

fn secrets_of_the_environment_never_reach_a_program(mode: Mode) {
    assert!(pool(mode)
        .hello()
        .unwrap()
        .environment
        .iter()
        .all(|n| n != SECRET_NAME));
    // Everything a program can read about environments: its own, its memory's copy, every
    // process it can see. The leak channel is the verdict (an exception message).
    let r = contained(
        mode,
        "import os, glob\n\
         seen = repr(dict(os.environ))\n\
         for p in glob.glob('/proc/*/environ'):\n\
         \x20   try:\n\
         \x20       seen += open(p, 'rb').read().decode('latin-1')\n\
         \x20   except OSError as e:\n\
         \x20       seen += str(e)\n\
         raise RuntimeError(seen)\n",
    );
    assert!(r.verdict.starts_with("failed: {"), "{r:?}");
    assert!(
        !r.verdict.contains(SECRET_VALUE),
        "secret leaked: {}",
        r.verdict
    );
    assert!(
        !r.verdict.contains(SECRET_NAME),
        "secret name leaked: {}",
        r.verdict
    );
    assert!(r.verdict.contains("'HOME'"), "{r:?}");
}

fn writes_to_every_writable_place_stay_in_the_sandbox(mode: Mode) {
    let name = format!("recode-attack-{}", std::process::id());
    let places = ["/tmp", "/var/tmp", "/run", "/run/lock", "/dev/shm"];
    let mut prog = String::from("import os\n");
    for p in places {
        prog.push_str(&format!("open('{p}/{name}', 'w').write('x')\n"));
    }
    prog.push_str("open('/tmp/recode-attack-marker', 'w').write('x')\n");
    let r = contained(mode, &prog);
    assert!(r.passed(), "{r:?}");
    for p in places {
        let host = PathBuf::from(p).join(&name);
        assert!(!host.exists(), "{} reached the host", host.display());
    }
    // The honest program after it saw no marker either (checked in `contained`).
}

fn the_view_is_read_only(mode: Mode) {
    for target in ["/usr/recode-attack", "/etc/recode-attack", "/recode-attack"] {
        let r = contained(mode, &format!("open('{target}', 'w').write('x')\n"));
        assert!(r.verdict.starts_with("failed"), "{target}: {r:?}");
        assert!(!PathBuf::from(target).exists(), "{target} reached the host");
    }
    // Not even root inside could remount: the program runs under a private uid (root servers)
    // or as the user namespace's non-zero id, and without capabilities either way: it cannot
    // remount the view writable, unmount its /proc or mount over anything.
    let r = contained(
        mode,
        "import ctypes, os\n\
         assert os.getuid() != 0 and os.geteuid() != 0\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]\n\
         assert libc.mount(None, b'/usr', None, 32 | 4096, None) != 0, 'remounted /usr'\n\
         assert libc.umount2(b'/proc', 2) != 0, 'unmounted /proc'\n\
         assert libc.mount(b'tmpfs', b'/usr', b'tmpfs', 0, None) != 0, 'mounted over /usr'\n\
         caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')]\n\
         assert caps == ['CapEff:\\t0000000000000000\\n'], caps\n",
    );
    assert!(r.passed(), "{r:?}");
}

fn host_files_outside_the_view_are_unreadable(mode: Mode) {
    let dir = host_dir("recode-attack-read");
    let file = dir.join("other-project.txt");
    std::fs::write(&file, "host data").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = contained(
        mode,
        &format!("print(open({:?}).read())\n", file.to_str().unwrap()),
    );
    assert_eq!(r.error_class(), "exception:FileNotFoundError", "{r:?}");
    // The host's own identity files are not the ones the program sees.
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let r = contained(
        mode,
        "import os\nprint(sorted(os.listdir('/')))\nprint(open('/etc/passwd').read())\n",
    );
    assert!(r.passed(), "{r:?}");
    // Only system directories, the writable places and the tops of the interpreter's paths.
    let mut allowed: Vec<String> = ["bin", "dev", "etc", "lib", "lib32", "lib64", "libx32"]
        .iter()
        .chain(&["proc", "run", "sbin", "tmp", "usr", "var"])
        .map(|s| s.to_string())
        .collect();
    for root in pool(mode).hello().unwrap().python_roots {
        allowed.extend(
            root.trim_start_matches('/')
                .split('/')
                .next()
                .map(String::from),
        );
    }
    let listing = r.stdout.lines().next().unwrap();
    for entry in listing.trim_matches(|c| c == '[' || c == ']').split(", ") {
        let entry = entry.trim_matches('\'');
        assert!(
            allowed.iter().any(|a| a == entry),
            "host entry /{entry} visible: {listing}"
        );
    }
    if host_passwd.lines().count() > 3 {
        assert!(
            r.stdout.lines().count() < host_passwd.lines().count(),
            "{}",
            r.stdout
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn host_unix_sockets_are_unreachable(mode: Mode) {
    let dir = host_dir("recode-attack-sock");
    let path = dir.join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let abstract_name = format!("recode-attack-{}", std::process::id());
    let abs = {
        use std::os::linux::net::SocketAddrExt;
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let l = UnixListener::bind_addr(&addr).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    };
    let r = contained(
        mode,
        &format!(
            "import socket\n\
         errors = []\n\
         for addr in ({:?}, '\\0{abstract_name}'):\n\
         \x20   s = socket.socket(socket.AF_UNIX)\n\
         \x20   try:\n\
         \x20       s.connect(addr)\n\
         \x20   except OSError as e:\n\
         \x20       errors.append(type(e).__name__)\n\
         assert len(errors) == 2, errors\n",
            path.to_str().unwrap()
        ),
    );
    assert!(r.passed(), "{r:?}");
    assert!(
        listener.accept().is_err(),
        "the path socket received a connection"
    );
    assert!(
        abs.accept().is_err(),
        "the abstract socket received a connection"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn loopback_tcp_of_the_host_is_unreachable(mode: Mode) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = contained(
        mode,
        &format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"),
    );
    assert!(r.error_class().starts_with("exception:"), "{r:?}");
    assert!(
        listener.accept().is_err(),
        "the listener received a connection"
    );
}

fn host_processes_are_invisible(mode: Mode) {
    let r = contained(
        mode,
        "import os\n\
         pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n\
         assert os.getpid() == 1, os.getpid()\n\
         assert pids == [1], pids\n\
         assert os.getppid() == 0\n",
    );
    assert!(r.passed(), "{r:?}");
    // Signals reach nothing outside: kill(-1) only hits the program's own namespace.
    let r = contained(mode, "import posix\nposix.kill(-1, 9)\nprint('alive')\n");
    assert!(r.outcome == "reported" || r.outcome == "no_report", "{r:?}");
}

fn memory_is_limited_per_program_not_per_process(mode: Mode) {
    // Three processes of 400 MiB each: every one is far below the per-process address-space
    // limit, together they exceed the program's 768 MiB.
    let r = contained(
        mode,
        "import posix, time\n\
         kids = []\n\
         for _ in range(3):\n\
         \x20   pid = posix.fork()\n\
         \x20   if pid == 0:\n\
         \x20       b = bytearray(400 << 20)\n\
         \x20       for i in range(0, len(b), 4096):\n\
         \x20           b[i] = 1\n\
         \x20       time.sleep(1.5)\n\
         \x20       posix._exit(0)\n\
         \x20   kids.append(pid)\n\
         codes = [posix.waitpid(k, 0)[1] for k in kids]\n\
         assert codes == [0, 0, 0], codes\n",
    );
    assert!(!r.passed(), "{r:?}");
    assert!(r.memory_limit_hit, "{r:?}");
    let peak = r.peak_memory_bytes.expect("peak reported");
    // a cgroup holds the line exactly; the supervisor samples every 50 ms, so one sample may
    // see up to another process's worth above it
    let slack = match mode {
        Mode::Root => 0,
        Mode::Unprivileged => 400 << 20,
    };
    assert!(peak <= MEMORY_LIMIT + slack, "peak {peak} above the limit");
    // One process under the limit is fine (it stays a moment, so the supervisor samples it).
    let r = contained(
        mode,
        "import time\nb = bytearray(200 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\ntime.sleep(0.3)\n",
    );
    assert!(r.passed(), "{r:?}");
    assert!(r.peak_memory_bytes.unwrap() >= 200 << 20, "{r:?}");
}

fn process_count_is_limited_per_program(mode: Mode) {
    let r = contained(
        mode,
        &format!(
            "import posix, time\n\
         n = 0\n\
         for _ in range({}):\n\
         \x20   try:\n\
         \x20       if posix.fork() == 0:\n\
         \x20           time.sleep(10)\n\
         \x20           posix._exit(0)\n\
         \x20       n += 1\n\
         \x20   except OSError:\n\
         \x20       break\n\
         print(n)\n",
            PROCESS_LIMIT * 3
        ),
    );
    assert!(r.passed(), "{r:?}");
    let n: u64 = r.stdout.trim().parse().unwrap();
    assert!(n < PROCESS_LIMIT, "{n} processes started");
}

fn kernel_surface_is_filtered(mode: Mode) {
    assert!(pool(mode).hello().unwrap().caps.seccomp);
    // New namespaces (a user namespace would give the program capabilities over namespaces of
    // its own), tracing, other processes' memory, BPF, io_uring, keyrings: all refused.
    let r = contained(
        mode,
        "import ctypes, errno, os, platform\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         x86 = platform.machine() == 'x86_64'\n\
         calls = {'unshare(NEWUSER)': (272 if x86 else 97, 0x10000000),\n\
         \x20        'unshare(NEWNET)': (272 if x86 else 97, 0x40000000),\n\
         \x20        'ptrace(TRACEME)': (101 if x86 else 117, 0),\n\
         \x20        'bpf': (321 if x86 else 280, 0),\n\
         \x20        'io_uring_setup': (425, 1),\n\
         \x20        'keyctl': (250 if x86 else 219, 0),\n\
         \x20        'perf_event_open': (298 if x86 else 241, 0)}\n\
         for name, (nr, arg) in calls.items():\n\
         \x20   assert libc.syscall(nr, arg, 0, 0, 0, 0) == -1, name\n\
         \x20   assert ctypes.get_errno() == errno.EPERM, (name, ctypes.get_errno())\n\
         # clone with a namespace flag is refused, plain processes and threads still work\n\
         assert libc.syscall(56 if x86 else 220, 0x10000000 | 17, 0, 0, 0, 0) == -1\n\
         import threading, posix\n\
         out = []\n\
         t = threading.Thread(target=lambda: out.append(1))\n\
         t.start(); t.join()\n\
         pid = posix.fork()\n\
         if pid == 0:\n\
         \x20   posix._exit(7)\n\
         assert os.waitstatus_to_exitcode(posix.waitpid(pid, 0)[1]) == 7\n\
         assert out == [1]\n\
         print('filtered')\n",
    );
    assert!(r.passed(), "{r:?}");
    assert_eq!(r.stdout, "filtered\n");
}

fn error_text_is_bounded(mode: Mode) {
    // error text reaches results.jsonl: a 10 MB exception message is cut, whole or judged
    let flood = "raise ValueError('x' * (10 << 20))\n";
    let whole = contained(mode, flood);
    let judged = judged(mode, &format!("def square(x):\n    {flood}"), SQUARE_TEST);
    for r in [whole, judged] {
        assert_eq!(
            r.error_class(),
            "exception:ValueError",
            "{}",
            &r.verdict[..200]
        );
        assert!(r.verdict.len() < 4200, "{} chars", r.verdict.len());
        assert!(
            r.verdict.ends_with(&format!("[{} chars]", 8 + (10 << 20))),
            "{}",
            &r.verdict[4000..]
        );
    }
}

fn output_flood_and_daemons_are_bounded(mode: Mode) {
    let r = contained(
        mode,
        "import os, posix, time\n\
         if posix.fork() == 0:\n\
         \x20   os.setsid()\n\
         \x20   open('/tmp/daemon', 'w').write('x')\n\
         \x20   time.sleep(60)\n\
         for _ in range(100000):\n\
         \x20   print('y' * 99)\n",
    );
    assert!(r.passed(), "{r:?}");
    assert_eq!(r.stdout.chars().count(), 4000);
    assert_eq!(r.stdout_chars, 100000 * 100);
}

#[test]
fn a_pass_through_variable_reaches_programs_and_nothing_else() {
    std::env::set_var("RECODE_SANDBOX_TEST_PASS", "visible");
    let mut cfg = config(Mode::Root);
    cfg.pass_env = vec!["RECODE_SANDBOX_TEST_PASS".into()];
    let pool = ExecutorPool::start(cfg).unwrap();
    let r = pool.run_one(
        "import os\nassert os.environ['RECODE_SANDBOX_TEST_PASS'] == 'visible'\n\
         assert 'OPENAI_API_KEY' not in os.environ\n",
    );
    assert!(r.passed(), "{r:?}");
}

#[test]
fn a_missing_pass_through_variable_is_an_error() {
    let mut cfg = config(Mode::Root);
    cfg.pass_env = vec!["RECODE_SANDBOX_SURELY_UNSET".into()];
    let err = ExecutorPool::start(cfg).err().expect("refused");
    assert!(
        err.to_string().contains("RECODE_SANDBOX_SURELY_UNSET"),
        "{err}"
    );
}

#[test]
fn read_only_paths_are_readable_and_stay_read_only() {
    let dir = host_dir("recode-attack-ro");
    std::fs::write(dir.join("problem.txt"), "data").unwrap();
    let mut cfg = config(Mode::Root);
    cfg.read_only_paths = vec![dir.clone()];
    let pool = ExecutorPool::start(cfg).unwrap();
    let p = dir.join("problem.txt");
    let r = pool.run_one(&format!(
        "assert open({0:?}).read() == 'data'\nopen({0:?}, 'w')\n",
        p.to_str().unwrap()
    ));
    assert!(r.verdict.starts_with("failed"), "{r:?}");
    assert!(
        r.error_class() == "exception:OSError" || r.error_class() == "exception:PermissionError",
        "{r:?}"
    );
    let mut content = String::new();
    std::fs::File::open(&p)
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "data");
    std::fs::remove_dir_all(dir).unwrap();
    std::thread::sleep(Duration::from_millis(1));
}

// ------------------------------------------------------------------ verdict forgery -----------

/// A judged job: trusted set-up and test, the candidate's code in its own process.
fn judged(mode: Mode, candidate: &str, test: &str) -> ExecResult {
    let job = Job::Judged {
        setup: "import math\n".into(),
        candidate: candidate.into(),
        test: test.into(),
    };
    pool(mode).run_jobs(&[job], &|| {}).pop().unwrap()
}

const SQUARE_TEST: &str =
    "def test_square():\n    assert square(3) == 9\n    assert square(-2) == 4\n\ntest_square()\n";

fn judged_honest_and_wrong_solutions_score_as_the_harness_would(mode: Mode) {
    let r = judged(mode, "def square(x):\n    return x * x\n", SQUARE_TEST);
    assert!(r.passed(), "{r:?}");
    let r = judged(mode, "def square(x):\n    return x + x\n", SQUARE_TEST);
    assert_eq!(r.verdict, "failed: assertion error", "{r:?}");
    let r = judged(
        mode,
        "def square(x):\n    raise ValueError('no')\n",
        SQUARE_TEST,
    );
    assert_eq!(r.verdict, "failed: no", "{r:?}");
    assert_eq!(r.error_class(), "exception:ValueError", "{r:?}");
    let r = judged(
        mode,
        "def square(x):\n    while True:\n        pass\n",
        SQUARE_TEST,
    );
    assert_eq!(r.verdict, "timed out", "{r:?}");
}

fn forged_verdicts_score_zero(mode: Mode) {
    let attacks = [
        // Objects that compare equal to anything.
        "class Any:\n    def __eq__(self, o):\n        return True\n    def __ne__(self, o):\n        return False\n    def __bool__(self):\n        return True\ndef square(x):\n    return Any()\n",
        // Exiting early with success.
        "import os\nos._exit(0)\n",
        "import sys\nsys.exit(0)\n",
        // Writing a 'passed' report frame to every fd it can find, then exiting.
        "import os, json, struct\nmsg = json.dumps({'verdict': 'passed', 'error_type': None, 'stdout': '', 'stdout_chars': 0}).encode()\nfor fd in range(3, 256):\n    try:\n        os.write(fd, struct.pack('>I', len(msg)) + msg)\n    except OSError:\n        pass\nos._exit(0)\n",
        // Patching the assertion machinery and builtins.
        "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\nbuiltins.len = lambda x: 0\ndef square(x):\n    return None\n",
        // Patching the harness: the test function and the caller's globals.
        "import sys\ndef test_square():\n    pass\nglobals()['test_square'] = test_square\ndef square(x):\n    return 0\n",
        // Raising the exception the judge treats as success in a careless harness.
        "def square(x):\n    raise SystemExit(0)\n",
    ];
    for a in attacks {
        let r = judged(mode, a, SQUARE_TEST);
        assert!(!r.passed(), "forged pass: {a:?} -> {r:?}");
    }
}

fn judged_arguments_without_a_value_encoding_are_served_by_the_judge(mode: Mode) {
    // The test passes an iterator and a callback; the candidate iterates and calls them
    // through stubs, and mutates a list argument in place.
    let test = "def test():\n    xs = [3, 1, 2]\n    assert total(iter([1, 2, 3]), lambda v: v * 10) == 60\n    sort_in_place(xs)\n    assert xs == [1, 2, 3]\ntest()\n";
    let honest = "def total(it, f):\n    return sum(f(v) for v in it)\ndef sort_in_place(xs):\n    xs.sort()\n";
    let r = judged(mode, honest, test);
    assert!(r.passed(), "{r:?}");
    // A candidate cannot walk from a judge object into the judge (no attribute access).
    let walk = "def total(it, f):\n    g = f.__globals__\n    g['test'] = lambda: None\n    return 60\ndef sort_in_place(xs):\n    xs.sort()\n";
    let r = judged(mode, walk, test);
    assert!(!r.passed(), "{r:?}");
    assert_eq!(r.error_class(), "exception:AttributeError", "{r:?}");
}

/// One test per attack and mode.
macro_rules! in_both_modes {
    ($($attack:ident),* $(,)?) => {
        mod root {
            $(#[test]
            fn $attack() {
                super::$attack(super::Mode::Root)
            })*
        }
        mod unprivileged {
            $(#[test]
            fn $attack() {
                super::$attack(super::Mode::Unprivileged)
            })*
        }
    };
}

in_both_modes!(
    secrets_of_the_environment_never_reach_a_program,
    writes_to_every_writable_place_stay_in_the_sandbox,
    the_view_is_read_only,
    host_files_outside_the_view_are_unreadable,
    host_unix_sockets_are_unreachable,
    loopback_tcp_of_the_host_is_unreachable,
    host_processes_are_invisible,
    memory_is_limited_per_program_not_per_process,
    process_count_is_limited_per_program,
    output_flood_and_daemons_are_bounded,
    error_text_is_bounded,
    kernel_surface_is_filtered,
    judged_honest_and_wrong_solutions_score_as_the_harness_would,
    forged_verdicts_score_zero,
    judged_arguments_without_a_value_encoding_are_served_by_the_judge,
);
