"""recode sandbox fork server: runs untrusted Python programs, one forked child each.

Started by the `recode-sandbox` crate (embedded in the binary, passed with `python -I -c` after
`judge.py` and `isolation.py`) with an environment built from an allow-list; one server per
worker core. Not root, it first enters a user namespace of its own and becomes the init of a PID
namespace (isolation.py). It pre-imports the heavy modules and seeds the RNGs once
(CodeUpdateArena harness §4), then moves itself into a private mount namespace whose root is a
minimal read-only view (system libraries, the interpreter, the virtualenv, the read-only paths
it was given; nothing else of the host). For every request it forks a child that is PID 1 of a
new PID namespace and has its own mount, network, IPC and UTS namespaces, private tmpfs on every
writable place (/tmp, /var/tmp, /run, /dev/shm), a fresh /proc, the worker's memory and
process-count cgroups (or the memory supervisor), rlimits, an unprivileged uid of its own (as
root) and no capabilities. The child applies the benchmark's guard and verdict rules, runs
`exec(program, {})` and reports through a pipe. At the deadline the server kills the child, which
takes its whole PID namespace with it. State never leaks between programs: each child is a fresh
copy of the server and every writable mount dies with it.

Protocol (binary, on the fds given by the config): 4-byte big-endian length + UTF-8 JSON.
Requests: {"id", "program", "timeout", "hard_timeout"}; replies: see `_run_one`.
"""

import io
import json
import os
import select
import signal
import struct
import sys
import time


_STATM = os.open("/proc/self/statm", os.O_RDONLY)
os.set_inheritable(_STATM, False)
_OWN_PIDNS = os.open("/proc/self/ns/pid", os.O_RDONLY)
os.set_inheritable(_OWN_PIDNS, False)


def _vsz_bytes():
    return int(os.pread(_STATM, 256, 0).split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _drop_uid(uid):
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _probe(view):
    """Forks throw-away children to learn which isolation this kernel/user permits: a fresh PID
    namespace, the child namespaces and mounts, the uid drop, and whether the dropped uid can
    list every Python install root."""
    caps = {}
    pid_ns = _libc.unshare(CLONE_NEWPID) == 0
    pid = os.fork()
    if pid == 0:
        code = 0
        if not pid_ns or os.getpid() != 1:
            code |= 8
        try:
            _isolate_child()
        except OSError:
            code |= 1
        try:
            if CONFIG["uid"] is not None:
                _drop_uid(CONFIG["uid"])
        except OSError:
            code |= 2
        for r in PY_ROOTS:
            try:
                os.listdir(r)
            except OSError:
                code |= 4
        try:
            _drop_capabilities()
            if not _install_syscall_filter() or _libc.unshare(CLONE_NEWUTS) == 0:
                code |= 16
        except OSError:
            code |= 16
        os._exit(code)
    if pid_ns:
        _check(_libc.setns(_OWN_PIDNS, CLONE_NEWPID), "setns back to the server's PID namespace")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    ok = code >= 0
    caps["namespaces"] = ok and not code & 1
    caps["pid_namespace"] = ok and not code & 8
    caps["uid_drop"] = CONFIG["uid"] is not None and ok and not code & 2
    caps["python_reachable"] = ok and not code & 4
    caps["seccomp"] = ok and not code & 16
    caps["minimal_root"] = view
    caps["cgroup_memory"] = CGROUPS.peak is not None
    caps["memory_supervisor"] = SUPERVISOR is not None
    caps["cgroup_pids"] = bool(CGROUPS.procs) and bool(CONFIG.get("cgroup", {}).get("pids"))
    return caps


_libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of programs come back here

os.environ["OMP_NUM_THREADS"] = "1"
preloaded, failed = [], {}
for _name in CONFIG["preload"]:
    try:
        __import__(_name)
        preloaded.append(_name)
    except BaseException as exc:  # a missing optional module must not stop the server
        failed[_name] = f"{type(exc).__name__}: {exc}"

import random  # noqa: E402

random.seed(CONFIG["seed"])
if "numpy" in sys.modules:
    sys.modules["numpy"].random.seed(CONFIG["seed"])
if "torch" in sys.modules:
    _torch = sys.modules["torch"]
    _torch.manual_seed(CONFIG["seed"])
    _torch.set_num_threads(1)

import faulthandler  # noqa: E402
import gc  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import builtins  # noqa: E402

VIEW_ERROR = USERNS_ERROR
if VIEW_ERROR is not None:
    pass
elif CONFIG.get("isolate", True) and SYS_PIVOT_ROOT is not None:
    try:
        _enter_view()
    except OSError as exc:
        VIEW_ERROR = str(exc)
elif CONFIG.get("isolate", True):
    VIEW_ERROR = f"pivot_root syscall number unknown on {platform.machine()}"
CAPS = _probe(VIEW_ERROR is None and CONFIG.get("isolate", True))
ISOLATE = CONFIG.get("isolate", True) and CAPS["namespaces"] and CAPS["pid_namespace"] and CAPS["minimal_root"]


class TimeoutException(Exception):
    """Raised by the 15 s interval timer (an ordinary exception, as in the benchmark)."""


class _NoInput(io.StringIO):
    """stdin of a program: reading raises, like the benchmark's write-only buffer."""

    def read(self, *args, **kwargs):
        raise IOError

    def readline(self, *args, **kwargs):
        raise IOError

    def readlines(self, *args, **kwargs):
        raise IOError

    def readable(self, *args, **kwargs):
        return False


class _Bounded(io.StringIO):
    """stdout/stderr of a program: keeps the first `limit` characters, counts the rest."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.total = 0

    def write(self, s):
        n = len(s)
        room = self.limit - self.total
        if room > 0:
            super().write(s[:room])
        self.total += n
        return n


def _guard():
    """The benchmark's reliability guard (harness doc §4), applied in the child before exec."""
    os.environ["OMP_NUM_THREADS"] = "1"
    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
                 "fork", "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink",
                 "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown",
                 "getcwd", "chdir"):
        setattr(os, name, None)
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _enter_sandbox(keep, vsz, errfd, loopback=False, cpu_seconds=None, guard=True):
    """In a freshly forked child: joins the worker's cgroups, isolates (namespaces, private
    tmpfs, /proc; `lo` up with `loopback`), closes every fd but `keep`, applies the limits and
    drops to the private uid; with `guard`, captures output and applies the benchmark's guard.
    Returns the output buffer (None without `guard`). On failure writes a set-up error to
    `errfd` (when given) and exits."""
    try:
        CGROUPS.join()
        os.setsid()
        if ISOLATE:
            _isolate_child()
            if loopback:
                _loopback_up()
        work = tempfile.mkdtemp(prefix="recode-eval-", dir="/tmp")
        uid = CONFIG["uid"] if CAPS["uid_drop"] else None
        if uid is not None:
            os.chown(work, uid, uid)
        os.chdir(work)
        os.environ["HOME"] = work
        os.environ["TMPDIR"] = work
        tempfile.tempdir = work
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        low = 3
        for fd in sorted(keep):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 65536)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        lim = CONFIG["limits"]
        cpu = cpu_seconds or lim["cpu_seconds"]
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        if lim["address_space_bytes"]:
            cap = vsz + lim["address_space_bytes"]
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["file_size_bytes"], lim["file_size_bytes"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None or USERNS:
            # counted per uid (per user namespace): the private uid's, or this server's
            # namespace's where the program shares the server's id
            resource.setrlimit(resource.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))
        if uid is not None:
            _drop_uid(uid)
        _drop_capabilities()
        if CAPS["seccomp"]:
            _install_syscall_filter()
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the server
        if not guard:
            return None
        random.seed()  # fresh entropy, as after the benchmark's fork
        out = _Bounded(CONFIG["capture_chars"])
        sys.stdin = _NoInput()
        sys.stdout = out
        sys.stderr = out
        _guard()
        return out
    except BaseException as exc:
        if errfd is not None:
            os.write(errfd, json.dumps({"setup_error": f"{type(exc).__name__}: {exc}"}).encode())
        os._exit(3)


VERDICT_CHARS = 4000


def _report_verdict(body, timeout, wfd, out):
    """Runs `body()` under the benchmark's timer and verdict rules and writes the report frame
    to `wfd`; never returns. Everything used after `body` starts is bound locally first: code
    run by `body` may patch builtins and modules."""
    write, dumps, exit_, pack, length, type_ = os.write, json.dumps, os._exit, struct.pack, len, type
    most = VERDICT_CHARS
    monotonic, setitimer, memview = time.monotonic, signal.setitimer, memoryview
    Timeout, Assertion, Base = TimeoutException, AssertionError, BaseException

    def on_alarm(signum, frame):
        raise TimeoutException("Timed out!")

    verdict, etype = "passed", None
    real = signal.ITIMER_REAL
    start = monotonic()
    try:
        signal.signal(signal.SIGALRM, on_alarm)
        setitimer(real, timeout)
        try:
            body()
        finally:
            setitimer(real, 0)
    except Timeout:
        verdict, etype = "timed out", "TimeoutException"
    except Assertion:
        verdict, etype = "failed: assertion error", "AssertionError"
    except Base as exc:
        try:
            etype = type_(exc).__name__[:200]
            verdict = f"failed: {exc}"
            if length(verdict) > most:  # error text reaches results.jsonl: bounded
                verdict = f"{verdict[:most]}... [{length(verdict)} chars]"
        except Base:
            verdict = "failed: <unprintable exception>"
    try:
        msg = dumps({"verdict": verdict, "error_type": etype, "elapsed": monotonic() - start,
                     "stdout": out.getvalue(), "stdout_chars": out.total})
    except Base:
        msg = dumps({"verdict": verdict, "error_type": etype, "stdout": "", "stdout_chars": 0})
    data = msg.encode("utf-8", "replace")
    view = memview(pack(">I", length(data)) + data)
    while view:
        view = view[write(wfd, view):]
    exit_(0)


def _whole_child(program, timeout, wfd, vsz):
    """A whole program whose verdict is its own run (in-process harness); never returns."""
    out = _enter_sandbox([wfd], vsz, wfd)
    _report_verdict(lambda: exec(program, {}), timeout, wfd, out)


def _candidate_child(setup, candidate, rfd, wfd, vsz):
    """The candidate's process of a judged job: trusted set-up, then the candidate's code, then
    serving the judge's calls. It holds no channel to the server; never returns."""
    _enter_sandbox([rfd, wfd], vsz, None)
    ch = _Channel(rfd, wfd)
    g = {}
    top_error = None
    try:
        exec(setup, g)
        before = dict(g)
        exec(candidate, g)
    except BaseException as exc:  # reported to the judge, which decides what it means
        top_error, before = exc, {}
    try:
        candidate_serve(ch, g, before, top_error)
    finally:
        os._exit(0)


def _judge_child(setup, test, timeout, rfd, wfd, report_fd, vsz):
    """The judge's process of a judged job: trusted set-up, the candidate's names bound as values
    or remote handles, then the trusted test code; the verdict is decided here."""
    out = _enter_sandbox([rfd, wfd, report_fd], vsz, report_fd)
    ch = _Channel(rfd, wfd)

    def body():
        g = {}
        exec(setup, g)
        err = judge_bind(ch, g)
        if err is not None:
            raise err
        exec(test, g)

    _report_verdict(body, timeout, report_fd, out)


def _exec_child(job, outw, errw, vsz):
    """A command in a fresh process (`job`: argv, files, env, loopback, cpu_seconds): the
    sandbox's isolation and limits and the files written into the private work directory (the
    cwd); then this process stays the namespace's init (reaping orphans) while a child, with
    stdout and stderr into `outw`, execs the command, whose wait status goes to `errw`. The
    command is not PID 1, so signals treat it as any process. Never returns."""
    _enter_sandbox([outw, errw], vsz, errw, loopback=job.get("loopback", False),
                   cpu_seconds=job.get("cpu_seconds"), guard=False)
    try:
        work = os.getcwd()
        for rel, content in job.get("files", []):
            parts = rel.split("/")
            if rel.startswith("/") or ".." in parts or "" in parts:
                raise ValueError(f"file path {rel!r} must be relative, inside the work dir")
            if len(parts) > 1:
                os.makedirs(os.path.join(work, *parts[:-1]), exist_ok=True)
            with open(os.path.join(work, rel), "w", encoding="utf-8") as f:
                f.write(content)
        env = dict(os.environ)
        env.update(job.get("env", {}))
        argv = job["argv"]
        env["PATH"] = os.path.dirname(argv[0]) + ":" + env.get("PATH", "/usr/bin:/bin")
        env["PWD"] = work
        if not os.access(argv[0], os.X_OK):
            raise FileNotFoundError(f"{argv[0]} is not an executable inside the sandbox's view")
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
                os.dup2(outw, 1)
                os.dup2(outw, 2)
                os.close(outw)
                os.close(errw)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        os.close(outw)
        while True:
            done, status = os.waitpid(-1, 0)
            if done == pid:
                break
        os.write(errw, json.dumps({"status": status}).encode())
        os._exit(0)
    except BaseException as exc:
        os.write(errw, json.dumps({"setup_error": f"{type(exc).__name__}: {exc}"}).encode())
        os._exit(3)


def _run_exec(req):
    """Runs an exec job: the verdict is the command's exit status (0 passes); output is kept up
    to the capture limit. Killed (with its whole PID namespace) at `hard_timeout`."""
    job = req["exec"]
    hard = float(req["hard_timeout"])
    outr, outw = os.pipe()
    errr, errw = os.pipe()
    ooms = _memory_start()
    vsz = _vsz_bytes()
    t0 = time.monotonic()
    pid = _fork_program()
    if pid == 0:
        os.close(outr)
        os.close(errr)
        _exec_child(job, outw, errw, vsz)
    os.close(outw)
    os.close(errw)
    out, total, status, end = _collect_output(pid, outr, t0 + hard, CONFIG["capture_chars"])
    _sweep(CONFIG["uid"] if CAPS["uid_drop"] else None)
    os.set_blocking(errr, False)
    try:
        err = os.read(errr, 1 << 16)
    except BlockingIOError:
        err = b""
    os.close(outr)
    os.close(errr)
    wall = end - t0
    reply = {"id": req["id"], "wall": wall, "error_type": None,
             "stdout": out.decode("utf-8", "replace"), "stdout_chars": total}
    reply.update(_memory_report(ooms))
    try:
        told = json.loads(err.decode("utf-8", "replace")) if err else {}
    except ValueError:
        told = {"setup_error": err.decode("utf-8", "replace")}
    if "setup_error" in told:
        reply["setup_error"] = told["setup_error"]
    if "status" in told:
        status = told["status"]  # the command's own, reported by the namespace's init
    if wall >= hard:
        reply.update(verdict="timed out", outcome="timeout")
    elif os.WIFSIGNALED(status):
        reply.update(verdict=f"failed: signal {os.WTERMSIG(status)}", outcome="signaled",
                     signal=os.WTERMSIG(status))
    else:
        code = os.WEXITSTATUS(status)
        reply.update(verdict="passed" if code == 0 else f"failed: exit status {code}",
                     outcome="exited", exit_code=code)
    return reply


def _collect_output(pid, outr, deadline, limit):
    """Reads the output of process `pid` (kept up to `limit` bytes, counted beyond) until it
    exits or the deadline passes; then kills and reaps it. Returns (kept bytes, total bytes,
    wait status, end time)."""
    pidfd = os.pidfd_open(pid)
    kept, total, open_ = bytearray(), 0, True
    end = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready = _select([outr, pidfd] if open_ else [pidfd], left, [pid])
        if outr in ready:
            chunk = os.read(outr, 1 << 16)
            if not chunk:
                open_ = False
                continue
            total += len(chunk)
            if len(kept) < limit:
                kept += chunk[:limit - len(kept)]
            continue
        if pidfd in ready:
            end = time.monotonic()
            os.set_blocking(outr, False)
            try:
                while chunk := os.read(outr, 1 << 16):
                    total += len(chunk)
                    if len(kept) < limit:
                        kept += chunk[:limit - len(kept)]
            except BlockingIOError:
                pass
            break
    if end is None:
        end = time.monotonic()
    return bytes(kept), total, _kill_and_reap(pid, pidfd), end


def _kill_uid(uid):
    """SIGKILL every process of the worker's private uid (escaped grandchildren, bombs).

    Real and effective uid switch to `uid` (saved uid stays 0 to switch back), which drops
    CAP_KILL, so kill(-1) reaches only that uid's processes and never this server."""
    os.setresuid(uid, uid, 0)
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.setresuid(0, 0, 0)


def _sweep(uid, limit=5.0):
    """Kill and reap until the server has no child left and the worker's cgroups are empty.
    The server is a subreaper, so every descendant of a program outside a PID namespace is, or
    becomes, its child; inside one, the namespace dies with its PID 1."""
    end = time.monotonic() + limit
    while True:
        if uid is not None:
            _kill_uid(uid)
        for pid in CGROUPS.remaining():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            if not CGROUPS.remaining():
                return
        if time.monotonic() > end:
            print("fork server: descendants survive the sweep", file=sys.stderr)
            return
        time.sleep(0.0005)


def _fork_program():
    """Forks the program's process: PID 1 of a fresh PID namespace when isolating."""
    if not ISOLATE:
        return os.fork()
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    pid = os.fork()
    if pid != 0:
        _check(_libc.setns(_OWN_PIDNS, CLONE_NEWPID), "setns back to the server's PID namespace")
    return pid


def _run_one(req):
    """Runs one job: a whole program (`program`) or a judged one (`setup`, `candidate`, `test`:
    the candidate in its own sandboxed process, the verdict in a sandboxed judge process)."""
    timeout, hard = float(req["timeout"]), float(req["hard_timeout"])
    rfd, wfd = os.pipe()
    ooms = _memory_start()
    vsz = _vsz_bytes()
    t0 = time.monotonic()
    others = []
    if "program" in req:
        pid = _fork_program()
        if pid == 0:
            os.close(rfd)
            _whole_child(req["program"], timeout, wfd, vsz)
    else:
        j2c_r, j2c_w = os.pipe()
        c2j_r, c2j_w = os.pipe()
        cpid = _fork_program()
        if cpid == 0:
            _candidate_child(req["setup"], req["candidate"], j2c_r, c2j_w, vsz)
        others.append(cpid)
        pid = _fork_program()
        if pid == 0:
            _judge_child(req["setup"], req["test"], timeout, c2j_r, j2c_w, wfd, vsz)
        for fd in (j2c_r, j2c_w, c2j_r, c2j_w):
            os.close(fd)
    os.close(wfd)
    buf, want, status, elapsed = _collect(pid, rfd, t0 + hard, [pid] + others)
    elapsed -= t0
    for p in others:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    _sweep(CONFIG["uid"] if CAPS["uid_drop"] else None)
    os.close(rfd)
    reply = {"id": req["id"], "wall": elapsed}
    reply.update(_memory_report(ooms))
    report = None
    if want is not None and len(buf) >= 4 + want:
        try:
            report = json.loads(buf[4:4 + want].decode("utf-8", "replace"))
        except ValueError:
            report = None
    elif buf.startswith(b"{"):
        try:
            setup = json.loads(buf.decode("utf-8", "replace"))
            reply["setup_error"] = setup.get("setup_error")
        except ValueError:
            pass
    if report is not None:
        reply.update(report)
        reply["outcome"] = "reported"
    else:
        # no report: killed, crashed, OOM or os._exit -> "timed out" (benchmark rule)
        reply["verdict"] = "timed out"
        reply["error_type"] = None
        reply["outcome"] = "hard_kill" if elapsed >= hard else "no_report"
        if os.WIFSIGNALED(status):
            reply["signal"] = os.WTERMSIG(status)
        elif os.WIFEXITED(status):
            reply["exit_code"] = os.WEXITSTATUS(status)
    return reply


def _collect(pid, rfd, deadline, roots):
    """Reads the report frame of process `pid` from `rfd` until it is complete, the process is
    gone, the deadline passes or the memory supervisor kills the program's `roots`; then kills
    and reaps the process. Returns (bytes, frame length
    or None, wait status, end time)."""
    pidfd = os.pidfd_open(pid)
    buf, want, eof = b"", None, False
    while want is None or len(buf) < 4 + want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready = _select([pidfd] if eof else [rfd, pidfd], left, roots)
        if rfd in ready:
            chunk = os.read(rfd, 1 << 20)
            if not chunk:
                eof = True  # every writer closed; keep waiting for the process itself
                continue
            buf += chunk
            if want is None and len(buf) >= 4 and not buf.startswith(b"{"):
                want = struct.unpack(">I", buf[:4])[0]
            continue
        if pidfd in ready:
            # the process is gone: take what is already in the pipe, without blocking
            os.set_blocking(rfd, False)
            try:
                while chunk := os.read(rfd, 1 << 20):
                    buf += chunk
            except BlockingIOError:
                pass
            break
    end = time.monotonic()
    return buf, want, _kill_and_reap(pid, pidfd), end


def _kill_and_reap(pid, pidfd):
    """Kills process `pid` (and its group) if still there, reaps it, closes its pidfd; returns
    its wait status."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    return status


def _read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(_PROTO_IN, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _send(obj):
    data = json.dumps(obj).encode()
    view = memoryview(struct.pack(">I", len(data)) + data)
    while view:
        view = view[os.write(_PROTO_OUT, view):]


def main():
    # Everything imported so far is shared with every forked child: keep the collector from
    # walking it (a walk writes to every object and copies its page in each child).
    gc.collect()
    gc.freeze()
    huge_mib = _collapse_heap()
    _send({"hello": True, "huge_pages_mib": huge_mib, "caps": CAPS, "uid": CONFIG["uid"] if CAPS["uid_drop"] else None,
           "preloaded": preloaded, "failed_imports": failed, "python_roots": PY_ROOTS,
           "view_error": VIEW_ERROR, "environment": sorted(os.environ),
           "python": sys.version.split()[0], "pid": os.getpid(), "vsz_bytes": _vsz_bytes()})
    while True:
        head = _read_exact(4)
        if head is None:
            return
        body = _read_exact(struct.unpack(">I", head)[0])
        if body is None:
            return
        req = json.loads(body)
        try:
            reply = _run_exec(req) if "exec" in req else _run_one(req)
        except Exception as exc:  # an infrastructure failure, reported, never a verdict
            reply = {"id": req.get("id"), "verdict": "timed out", "outcome": "server_error",
                     "error_type": None, "setup_error": f"{type(exc).__name__}: {exc}"}
        _send(reply)


main()
