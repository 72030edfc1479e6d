//! Adversarial suite: hostile programs (the attack classes of the threat model in the crate docs),
//! each asserting containment from outside the sandbox, with an honest program run right after
//! each one on the same worker that must still pass. Needs root (CI runs as root): namespaces,
//! cgroups and the uid drop are what is under test. Bounded in time and memory; loopback only.
//!
//! The interpreter is `$RECODE_VENV/bin/python` (scripts/setup.sh) or `python3`.

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

fn python() -> PathBuf {
    match std::env::var_os("RECODE_VENV") {
        Some(v) => PathBuf::from(v).join("bin/python"),
        None => PathBuf::from("python3"),
    }
}

fn config() -> ExecConfig {
    let mut cfg = ExecConfig::new(python(), 1);
    cfg.timeout_secs = 4.0;
    cfg.hard_timeout_secs = 5.0;
    cfg.cpu_seconds = 8;
    cfg.capture_chars = 4000;
    cfg.preload = Vec::new();
    cfg.memory_bytes = MEMORY_LIMIT;
    cfg.nproc = PROCESS_LIMIT;
    cfg
}

fn pool() -> &'static ExecutorPool {
    static POOL: OnceLock<ExecutorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // Set before any pool starts: the servers must not inherit it even though we hold it.
        std::env::set_var(SECRET_NAME, SECRET_VALUE);
        let pool = ExecutorPool::start(config()).expect("start pool");
        let caps = pool.hello().expect("hello").caps;
        assert!(
            caps.isolated() && caps.uid_drop && caps.cgroup_memory && caps.cgroup_pids,
            "the attack suite must run as root with cgroups: {caps:?}"
        );
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
fn contained(attack: &str) -> ExecResult {
    let results = pool().run_all(&[attack.to_string(), HONEST.to_string()], &|| {});
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

#[test]
fn secrets_of_the_environment_never_reach_a_program() {
    assert!(pool()
        .hello()
        .unwrap()
        .environment
        .iter()
        .all(|n| n != SECRET_NAME));
    // Everything a program can read about environments: its own, its memory's copy, every
    // process it can see. The leak channel is the verdict (an exception message).
    let r = contained(
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

#[test]
fn writes_to_every_writable_place_stay_in_the_sandbox() {
    let name = format!("recode-attack-{}", std::process::id());
    let places = ["/tmp", "/var/tmp", "/run", "/run/lock", "/dev/shm"];
    let mut prog = String::from("import os\n");
    for p in places {
        prog.push_str(&format!("open('{p}/{name}', 'w').write('x')\n"));
    }
    prog.push_str("open('/tmp/recode-attack-marker', 'w').write('x')\n");
    let r = contained(&prog);
    assert!(r.passed(), "{r:?}");
    for p in places {
        let host = PathBuf::from(p).join(&name);
        assert!(!host.exists(), "{} reached the host", host.display());
    }
    // The honest program after it saw no marker either (checked in `contained`).
}

#[test]
fn the_view_is_read_only() {
    for target in ["/usr/recode-attack", "/etc/recode-attack", "/recode-attack"] {
        let r = contained(&format!("open('{target}', 'w').write('x')\n"));
        assert!(r.verdict.starts_with("failed"), "{target}: {r:?}");
        assert!(!PathBuf::from(target).exists(), "{target} reached the host");
    }
    // Not even root inside could remount: the program runs under a private uid.
    let r = contained("import os\nassert os.getuid() != 0 and os.geteuid() != 0\n");
    assert!(r.passed(), "{r:?}");
}

#[test]
fn host_files_outside_the_view_are_unreadable() {
    let dir = host_dir("recode-attack-read");
    let file = dir.join("other-project.txt");
    std::fs::write(&file, "host data").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = contained(&format!(
        "print(open({:?}).read())\n",
        file.to_str().unwrap()
    ));
    assert_eq!(r.error_class(), "exception:FileNotFoundError", "{r:?}");
    // The host's own identity files are not the ones the program sees.
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let r =
        contained("import os\nprint(sorted(os.listdir('/')))\nprint(open('/etc/passwd').read())\n");
    assert!(r.passed(), "{r:?}");
    // Only system directories, the writable places and the tops of the interpreter's paths.
    let mut allowed: Vec<String> = ["bin", "dev", "etc", "lib", "lib32", "lib64", "libx32"]
        .iter()
        .chain(&["proc", "run", "sbin", "tmp", "usr", "var"])
        .map(|s| s.to_string())
        .collect();
    for root in pool().hello().unwrap().python_roots {
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

#[test]
fn host_unix_sockets_are_unreachable() {
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
    let r = contained(&format!(
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
    ));
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

#[test]
fn loopback_tcp_of_the_host_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = contained(&format!(
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    ));
    assert!(r.error_class().starts_with("exception:"), "{r:?}");
    assert!(
        listener.accept().is_err(),
        "the listener received a connection"
    );
}

#[test]
fn host_processes_are_invisible() {
    let r = contained(
        "import os\n\
         pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n\
         assert os.getpid() == 1, os.getpid()\n\
         assert pids == [1], pids\n\
         assert os.getppid() == 0\n",
    );
    assert!(r.passed(), "{r:?}");
    // Signals reach nothing outside: kill(-1) only hits the program's own namespace.
    let r = contained("import posix\nposix.kill(-1, 9)\nprint('alive')\n");
    assert!(r.outcome == "reported" || r.outcome == "no_report", "{r:?}");
}

#[test]
fn memory_is_limited_per_program_not_per_process() {
    // Three processes of 400 MiB each: every one is far below the per-process address-space
    // limit, together they exceed the program's 768 MiB.
    let r = contained(
        "import posix, time\n\
         kids = []\n\
         for _ in range(3):\n\
         \x20   pid = posix.fork()\n\
         \x20   if pid == 0:\n\
         \x20       b = bytearray(400 << 20)\n\
         \x20       for i in range(0, len(b), 4096):\n\
         \x20           b[i] = 1\n\
         \x20       time.sleep(3)\n\
         \x20       posix._exit(0)\n\
         \x20   kids.append(pid)\n\
         codes = [posix.waitpid(k, 0)[1] for k in kids]\n\
         assert codes == [0, 0, 0], codes\n",
    );
    assert!(!r.passed(), "{r:?}");
    assert!(r.memory_limit_hit, "{r:?}");
    let peak = r.peak_memory_bytes.expect("peak reported");
    assert!(peak <= MEMORY_LIMIT, "peak {peak} above the limit");
    // One process under the limit is fine.
    let r = contained("b = bytearray(200 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n");
    assert!(r.passed(), "{r:?}");
    assert!(r.peak_memory_bytes.unwrap() >= 200 << 20, "{r:?}");
}

#[test]
fn process_count_is_limited_per_program() {
    let r = contained(&format!(
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
    ));
    assert!(r.passed(), "{r:?}");
    let n: u64 = r.stdout.trim().parse().unwrap();
    assert!(n < PROCESS_LIMIT, "{n} processes started");
}

#[test]
fn output_flood_and_daemons_are_bounded() {
    let r = contained(
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
    let mut cfg = config();
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
    let mut cfg = config();
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
    let mut cfg = config();
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
fn judged(candidate: &str, test: &str) -> ExecResult {
    let job = Job::Judged {
        setup: "import math\n".into(),
        candidate: candidate.into(),
        test: test.into(),
    };
    pool().run_jobs(&[job], &|| {}).pop().unwrap()
}

const SQUARE_TEST: &str =
    "def test_square():\n    assert square(3) == 9\n    assert square(-2) == 4\n\ntest_square()\n";

#[test]
fn judged_honest_and_wrong_solutions_score_as_the_harness_would() {
    let r = judged("def square(x):\n    return x * x\n", SQUARE_TEST);
    assert!(r.passed(), "{r:?}");
    let r = judged("def square(x):\n    return x + x\n", SQUARE_TEST);
    assert_eq!(r.verdict, "failed: assertion error", "{r:?}");
    let r = judged("def square(x):\n    raise ValueError('no')\n", SQUARE_TEST);
    assert_eq!(r.verdict, "failed: no", "{r:?}");
    assert_eq!(r.error_class(), "exception:ValueError", "{r:?}");
    let r = judged(
        "def square(x):\n    while True:\n        pass\n",
        SQUARE_TEST,
    );
    assert_eq!(r.verdict, "timed out", "{r:?}");
}

#[test]
fn forged_verdicts_score_zero() {
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
        let r = judged(a, SQUARE_TEST);
        assert!(!r.passed(), "forged pass: {a:?} -> {r:?}");
    }
}

#[test]
fn judged_arguments_without_a_value_encoding_are_served_by_the_judge() {
    // The test passes an iterator and a callback; the candidate iterates and calls them
    // through stubs, and mutates a list argument in place.
    let test = "def test():\n    xs = [3, 1, 2]\n    assert total(iter([1, 2, 3]), lambda v: v * 10) == 60\n    sort_in_place(xs)\n    assert xs == [1, 2, 3]\ntest()\n";
    let honest = "def total(it, f):\n    return sum(f(v) for v in it)\ndef sort_in_place(xs):\n    xs.sort()\n";
    let r = judged(honest, test);
    assert!(r.passed(), "{r:?}");
    // A candidate cannot walk from a judge object into the judge (no attribute access).
    let walk = "def total(it, f):\n    g = f.__globals__\n    g['test'] = lambda: None\n    return 60\ndef sort_in_place(xs):\n    xs.sort()\n";
    let r = judged(walk, test);
    assert!(!r.passed(), "{r:?}");
    assert_eq!(r.error_class(), "exception:AttributeError", "{r:?}");
}
