"""recode eval fork server: runs untrusted benchmark programs, one forked child each.

Started by `recode-eval` (embedded in the binary, passed with `python -I -c`); one server per
worker core. It pre-imports the heavy modules and seeds the RNGs once (CodeUpdateArena harness
§4), then for every request forks a child that isolates itself (new session, network and mount
namespaces, private tmpfs /tmp as cwd, rlimits, an unprivileged uid of its own), applies the
benchmark's guard and verdict rules, runs `exec(program, {})` and reports through a pipe.
The parent kills the child's whole process group (and every process of the child's uid) at
the hard deadline. State never leaks between programs: each child is a fresh copy of the server.

Protocol (binary, on the fds given by the config): 4-byte big-endian length + UTF-8 JSON.
Requests: {"id", "program", "timeout", "hard_timeout"}; replies: see `_run_one`.
"""

import ctypes
import json
import os
import select
import signal
import struct
import sys
import time

CONFIG = json.loads(sys.argv[1])

# The protocol uses private copies of fds 0/1; the originals point at /dev/null and stderr so
# that stray output (from imports, C libraries, children) can never corrupt the protocol.
_PROTO_IN = os.dup(0)
_PROTO_OUT = os.dup(1)
_devnull = os.open(os.devnull, os.O_RDWR)
os.dup2(_devnull, 0)
os.dup2(2, 1)
os.set_inheritable(_PROTO_IN, False)
os.set_inheritable(_PROTO_OUT, False)

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount_tmpfs(target, size, mode, flags=0):
    _check(
        _libc.mount(b"tmpfs", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV | flags,
                    f"size={size},mode={mode}".encode()),
        f"mount tmpfs on {target}",
    )


MS_BIND = 4096


def _python_roots():
    """Directories the interpreter imports from (prefixes and sys.path entries, as given and
    resolved), reduced to the topmost ones."""
    cands = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    cands.update(p for p in sys.path if p)
    paths = set()
    for p in cands:
        for q in (os.path.abspath(p), os.path.realpath(p)):
            if os.path.isdir(q):
                paths.add(q)
    roots = []
    for p in sorted(paths):
        if not any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots):
            roots.append(p)
    return roots


def _blocked_ancestors(path):
    """Ancestors of `path` (itself excluded) that a uid with no other rights cannot traverse."""
    out, cur = [], "/"
    for part in path.strip("/").split("/")[:-1]:
        cur = os.path.join(cur, part)
        if not os.stat(cur).st_mode & 0o001:
            out.append(cur)
    return out


# The sandbox uid must reach the Python install (lazily imported modules, e.g. `pytest`,
# sympy submodules), which may sit under a 0700 home. `_REACH` maps each topmost
# untraversable ancestor to the install roots below it: each child covers that ancestor with
# an empty root-owned 0755 tmpfs in its own mount namespace and bind-mounts only those roots
# back, so the host's permissions stay untouched and the rest of the ancestor stays hidden.
PY_ROOTS = _python_roots()
BLOCKED = sorted({b for r in PY_ROOTS for b in _blocked_ancestors(r)})
_REACH = {}
for _r in PY_ROOTS:
    _b = _blocked_ancestors(_r)
    if _b:  # tops never nest: a blocked top also blocks everything below it
        _REACH.setdefault(_b[0], []).append(_r)


def _expose_python():
    """Inside the child's mount namespace: make the Python install reachable (see `_REACH`)."""
    for top, roots in _REACH.items():
        fds = [os.open(r, os.O_PATH | os.O_DIRECTORY) for r in roots]
        try:
            _mount_tmpfs(top, 1 << 20, "755")
            for r, fd in zip(roots, fds):
                cur = top
                for part in os.path.relpath(r, top).split("/"):
                    cur = os.path.join(cur, part)
                    if not os.path.isdir(cur):
                        os.mkdir(cur)
                        os.chmod(cur, 0o755)
                _check(_libc.mount(f"/proc/self/fd/{fd}".encode(), r.encode(), None,
                                   MS_BIND | MS_REC, None), f"bind-mount {r}")
        finally:
            for fd in fds:
                os.close(fd)


def _isolate_namespaces():
    """New network + mount namespace; Python install reachable; private tmpfs over /tmp,
    /dev/shm, /var/tmp; hide paths."""
    _check(_libc.unshare(CLONE_NEWNET | CLONE_NEWNS), "unshare(CLONE_NEWNET|CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    _expose_python()
    for d in ("/tmp", "/dev/shm", "/var/tmp"):
        if os.path.isdir(d):
            _mount_tmpfs(d, CONFIG["tmpfs_bytes"], "1777")
    for d in CONFIG["hide_paths"]:
        if os.path.isdir(d):
            _mount_tmpfs(d, 4096, "000", MS_RDONLY)


def _probe_isolation():
    """Fork a throw-away child to learn which isolation steps this kernel/user permits, and
    whether the program's uid can then list every Python install root."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _isolate_namespaces()
        except OSError:
            code |= 1
        try:
            if CONFIG["uid"] is not None:
                os.setgroups([])
                os.setgid(CONFIG["uid"])
                os.setuid(CONFIG["uid"])
        except OSError:
            code |= 2
        for r in PY_ROOTS:
            try:
                os.listdir(r)
            except OSError:
                code |= 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return {"namespaces": code >= 0 and not code & 1,
            "uid_drop": CONFIG["uid"] is not None and code >= 0 and not code & 2,
            "python_reachable": code >= 0 and not code & 4}


CAPS = _probe_isolation()
GRANTED = []
if CAPS["uid_drop"] and not CAPS["namespaces"] and BLOCKED:
    # No mount namespace to re-expose the install: grant only search (o+x) on exactly the
    # ancestors that block it, and say so.
    for _d in BLOCKED:
        os.chmod(_d, os.stat(_d).st_mode | 0o001)
        GRANTED.append(_d)
    print(f"fork server: granted o+x on {GRANTED} so the sandbox uid reaches the Python install",
          file=sys.stderr)
    CAPS = _probe_isolation()
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
import io  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import builtins  # noqa: E402


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


def _vsz_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


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


def _child(program, timeout, wfd):
    """Runs in the forked child; never returns."""
    # Everything used after exec is bound locally: the program may patch builtins and modules.
    write, dumps, exit_, pack, length, type_ = os.write, json.dumps, os._exit, struct.pack, len, type
    monotonic, setitimer, memview = time.monotonic, signal.setitimer, memoryview
    Timeout, Assertion, Base = TimeoutException, AssertionError, BaseException
    try:
        os.setsid()
        if CAPS["namespaces"]:
            _isolate_namespaces()
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
        os.closerange(3, wfd)
        os.closerange(wfd + 1, 65536)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        lim = CONFIG["limits"]
        resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_seconds"], lim["cpu_seconds"] + 1))
        if lim["address_space_bytes"]:
            cap = _vsz_bytes() + lim["address_space_bytes"]
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["file_size_bytes"], lim["file_size_bytes"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the server
        random.seed()  # fresh entropy, as after the benchmark's fork
        out = _Bounded(CONFIG["capture_chars"])
        sys.stdin = _NoInput()
        sys.stdout = out
        sys.stderr = out
        _guard()
    except BaseException as exc:
        write(wfd, dumps({"setup_error": f"{type(exc).__name__}: {exc}"}).encode())
        exit_(3)

    def on_alarm(signum, frame):
        raise TimeoutException("Timed out!")

    verdict, etype = "passed", None
    real = signal.ITIMER_REAL
    start = monotonic()
    try:
        signal.signal(signal.SIGALRM, on_alarm)
        setitimer(real, timeout)
        try:
            exec(program, {})
        finally:
            setitimer(real, 0)
    except Timeout:
        verdict, etype = "timed out", "TimeoutException"
    except Assertion:
        verdict, etype = "failed: assertion error", "AssertionError"
    except Base as exc:
        try:
            etype = type_(exc).__name__
            verdict = f"failed: {exc}"
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
    """Kill and reap until the server has no child left. The server is a subreaper, so every
    descendant of a program is, or becomes, its child: no child left = nothing survived."""
    end = time.monotonic() + limit
    while True:
        if uid is not None:
            _kill_uid(uid)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            return
        if time.monotonic() > end:
            print("fork server: descendants survive the sweep", file=sys.stderr)
            return
        time.sleep(0.0005)


def _run_one(req):
    program, timeout, hard = req["program"], float(req["timeout"]), float(req["hard_timeout"])
    rfd, wfd = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child(program, timeout, wfd)
    os.close(wfd)
    pidfd = os.pidfd_open(pid)
    buf, want, eof = b"", None, False
    deadline = t0 + hard
    while want is None or len(buf) < 4 + want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([pidfd] if eof else [rfd, pidfd], [], [], left)
        if rfd in ready:
            chunk = os.read(rfd, 1 << 20)
            if not chunk:
                eof = True  # every writer closed; keep waiting for the child itself
                continue
            buf += chunk
            if want is None and len(buf) >= 4 and not buf.startswith(b"{"):
                want = struct.unpack(">I", buf[:4])[0]
            continue
        if pidfd in ready:
            # the child is gone: take what is already in the pipe, without blocking
            os.set_blocking(rfd, False)
            try:
                while chunk := os.read(rfd, 1 << 20):
                    buf += chunk
            except BlockingIOError:
                pass
            break
    elapsed = time.monotonic() - t0
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    _sweep(CONFIG["uid"] if CAPS["uid_drop"] else None)
    os.close(pidfd)
    os.close(rfd)
    reply = {"id": req["id"], "wall": elapsed}
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
    _send({"hello": True, "caps": CAPS, "uid": CONFIG["uid"] if CAPS["uid_drop"] else None, "preloaded": preloaded, "failed_imports": failed,
           "python_roots": PY_ROOTS, "exposed": _REACH if CAPS["namespaces"] else {},
           "granted_traverse": GRANTED,
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
            reply = _run_one(req)
        except Exception as exc:  # an infrastructure failure, reported, never a verdict
            reply = {"id": req.get("id"), "verdict": "timed out", "outcome": "server_error",
                     "error_type": None, "setup_error": f"{type(exc).__name__}: {exc}"}
        _send(reply)


main()
