"""recode sandbox, isolation primitives of the fork server (this file comes first in the
server's source; `fork_server.py` follows): the server's configuration and protocol fds, the
user namespace of non-root servers, the minimal read-only view, the namespaces of each program,
cgroups and, where none exists, the memory supervisor. Runs in the server only.
"""

import ctypes
import io
import json
import os
import platform
import select
import signal
import struct
import subprocess
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
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(platform.machine())
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
# The id the server and its programs have inside their user namespace (not 0: an exec never
# regains capabilities).
INNER_ID = 1000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(_libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)),
           f"mount {fstype or 'bind'} {src} on {target}")


def _enter_userns():
    """Without root: a user namespace of our own (the caller's uid and gid mapped to INNER_ID)
    whose capabilities allow the mount, PID, network, IPC and UTS namespaces of the rest of the
    sandbox; then a PID namespace whose init is the server itself (this process forks, the
    parent stays behind only to wait and pass on the exit status), so the server can enter and
    leave its programs' PID namespaces. Returns None, or why the kernel refused."""
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(CLONE_NEWUSER) != 0:
        return f"unshare(CLONE_NEWUSER): {os.strerror(ctypes.get_errno())}"
    for name, text in (("setgroups", "deny"), ("uid_map", f"{INNER_ID} {uid} 1"),
                       ("gid_map", f"{INNER_ID} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    if _libc.unshare(CLONE_NEWPID) != 0:
        return f"unshare(CLONE_NEWPID) in the user namespace: {os.strerror(ctypes.get_errno())}"
    pid = os.fork()
    if pid != 0:
        os.close(_PROTO_IN)
        os.close(_PROTO_OUT)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        os._exit(max(0, os.waitstatus_to_exitcode(status)))
    _libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG(SIGKILL): die with the waiting parent
    return None


USERNS = bool(CONFIG.get("userns"))
USERNS_ERROR = _enter_userns() if USERNS else None


def _remount_read_only(path):
    """Makes the bind mount at `path` read-only, nosuid and nodev, keeping the flags it has
    (in a user namespace, flags inherited from the host's mounts are locked)."""
    st = os.statvfs(path)
    keep = 0
    for st_flag, ms_flag in ((os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME),
                             (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):
        if st.f_flag & st_flag:
            keep |= ms_flag
    _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | keep)


def _drop_capabilities():
    """Drops every capability of this process for good (programs in a user namespace would
    otherwise hold them over their own namespaces: unmount the view, remount it writable)."""
    _libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    for cap in range(64):
        if _libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP until past the last cap
            break
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    if SYS_CAPSET is None or _libc.syscall(SYS_CAPSET, header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset: cannot drop capabilities")


# Syscalls no program needs that reach kernel surface or other processes: namespaces and
# mounts, tracing and other processes' memory, keyrings, BPF, perf, userfaultfd, io_uring,
# modules, kexec, handles, swap, reboot, accounting, quotas, chroot, host names.
_DENIED = {
    "x86_64": (0xC000003E, {"clone": 56, "clone3": 435}, [
        272, 308, 165, 166, 155, 101, 310, 311, 250, 248, 249, 321, 298, 323, 425, 426, 427,
        246, 320, 175, 313, 176, 304, 303, 167, 168, 169, 163, 179, 442, 430, 432, 429, 428,
        433, 431, 161, 170, 171, 103, 153, 438, 172, 173]),
    "aarch64": (0xC00000B7, {"clone": 220, "clone3": 435}, [
        97, 268, 40, 39, 41, 117, 270, 271, 219, 217, 218, 280, 241, 282, 425, 426, 427,
        104, 294, 105, 273, 106, 265, 264, 224, 225, 142, 89, 60, 442, 430, 432, 429, 428,
        433, 431, 51, 161, 162, 116, 58, 438]),
}.get(platform.machine())
_NAMESPACE_FLAGS = 0x7E020080  # CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET,TIME}


def _install_syscall_filter():
    """A seccomp filter for this process and everything it starts: the syscalls in `_DENIED`
    fail with EPERM, clone with a namespace flag too, clone3 with ENOSYS (libc falls back to
    clone, whose flags a filter can read); another architecture's syscalls kill the process.
    Needs no_new_privs. Returns False where the architecture is unknown here."""
    if _DENIED is None:
        return False
    arch, clone, denied = _DENIED
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, kill), (ld, 0, 0, 0)]
    if arch == 0xC000003E:  # the x32 ABI's numbers carry bit 30
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, clone["clone3"]), (ret, 0, 0, enosys),
             (jeq, 0, 4, clone["clone"]), (ld, 0, 0, 16), (jset, 0, 1, _NAMESPACE_FLAGS),
             (ret, 0, 0, eperm), (ret, 0, 0, allow)]
    for nr in denied:
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    prog.append((ret, 0, 0, allow))

    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]

    insns = (Insn * len(prog))(*[Insn(c, t, f, k) for c, t, f, k in prog])
    fprog = Prog(len(prog), insns)
    _check(_libc.prctl(22, 2, ctypes.byref(fprog), 0, 0), "prctl(PR_SET_SECCOMP)")
    return True


def _mount_tmpfs(target, size, mode, flags=0):
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | flags, f"size={size},mode={mode}")


# Prints the directories an interpreter imports from (prefixes, its executable's directory and
# sys.path entries, as given and resolved). Run in this server and in every interpreter a job
# may exec, so it stays valid Python 2.7 and 3.x.
ROOTS_SNIPPET = """
import json, os, sys
c = set([sys.prefix, getattr(sys, "base_prefix", sys.prefix), sys.exec_prefix,
         getattr(sys, "base_exec_prefix", sys.exec_prefix), os.path.dirname(sys.executable)])
c.update(p for p in sys.path if p)
r = set()
for p in c:
    for q in (os.path.abspath(p), os.path.realpath(p)):
        if os.path.isdir(q):
            r.add(q)
for q in (sys.executable, os.path.realpath(sys.executable)):
    r.add(os.path.dirname(q))
sys.stdout.write(json.dumps(sorted(r)))
"""


def _python_roots():
    """Directories this interpreter and every interpreter in `CONFIG["interpreters"]` (which jobs
    may exec) import from, reduced to the topmost ones."""
    scope = {}
    out = io.StringIO()
    real, sys.stdout = sys.stdout, out
    try:
        exec(ROOTS_SNIPPET, scope)
    finally:
        sys.stdout = real
    paths = set(json.loads(out.getvalue()))
    for py in CONFIG.get("interpreters", []):
        done = subprocess.run([py, "-E", "-s", "-c", ROOTS_SNIPPET], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60)
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise OSError(2, f"interpreter {py} failed to report its paths: {tail}")
        paths.update(json.loads(done.stdout.decode()))
    return _topmost(paths)


def _topmost(paths):
    roots = []
    for p in sorted(paths):
        if not any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots):
            roots.append(p)
    return roots


def _fatal(message):
    """Refuses to start: the message goes to the pool in place of the hello."""
    data = json.dumps({"fatal": message}).encode()
    os.write(_PROTO_OUT, struct.pack(">I", len(data)) + data)
    sys.exit(2)


try:
    PY_ROOTS = _python_roots()
except (OSError, ValueError, subprocess.SubprocessError) as _exc:
    _fatal(f"{type(_exc).__name__}: {_exc}")
# System paths of the view: shared libraries and the dynamic linker (symlinks are recreated as
# symlinks, so merged-/usr layouts keep working). Nothing under /home, /root, /srv, /opt, /var
# or /etc is visible except what is listed here or passed as a read-only path.
SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                "/etc/ld.so.cache", "/etc/localtime"]
DEVICES = ["null", "zero", "full", "random", "urandom"]
WRITABLE = ["/tmp", "/var/tmp", "/run", "/dev/shm"]



def _under_writable(paths):
    """The first path that lies under a place every program gets as a private tmpfs (it would be
    hidden from programs), or None."""
    for p in paths:
        real = os.path.realpath(p)
        for w in WRITABLE:
            if real == w or real.startswith(w + "/"):
                return p, w
    return None


if CONFIG.get("isolate", True):
    _hidden = _under_writable(PY_ROOTS + list(CONFIG.get("read_only_paths", [])))
    if _hidden is not None:
        _fatal(f"{_hidden[0]} lies under {_hidden[1]}, which every sandboxed program gets as a "
               f"private empty tmpfs, so programs could not read it; keep interpreters, "
               f"virtualenvs, caches and read-only paths outside {', '.join(WRITABLE)}")


def _view_sources():
    """(path as seen by programs, O_PATH fd of the host object, kind) for every bind of the
    view."""
    out, bound = [], []
    for p in SYSTEM_PATHS:
        if os.path.islink(p):
            out.append((p, None, ("link", os.readlink(p))))
        elif os.path.exists(p):
            out.append((p, os.open(p, os.O_PATH), "dir" if os.path.isdir(p) else "file"))
            bound.append(p)
    extra = PY_ROOTS + [os.path.realpath(p) for p in CONFIG.get("read_only_paths", [])]
    for p in _topmost(extra):
        if any(p == b or p.startswith(b.rstrip("/") + "/") for b in bound):
            continue
        if not os.path.exists(p):
            raise OSError(2, f"read-only path {p} does not exist")
        out.append((p, os.open(p, os.O_PATH), "dir" if os.path.isdir(p) else "file"))
        bound.append(p)
    return out


def _mkdirs(path):
    cur = ""
    for part in path.strip("/").split("/"):
        cur += "/" + part
        if not os.path.isdir(cur):
            os.mkdir(cur, 0o755)


def _enter_view():
    """Moves this server into a private mount namespace whose root is a read-only tmpfs holding
    only the view (see SYSTEM_PATHS, PY_ROOTS, read-only paths); the host's root is detached."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Opened inside the new namespace (a bind source must belong to it), before /tmp is covered.
    sources = _view_sources()
    new = "/tmp"  # only the mount point; the host's /tmp is untouched (private namespace)
    _mount_tmpfs(new, 8 << 20, "755")
    for path, fd, kind in sources:
        dst = new + path
        if isinstance(kind, tuple):
            _mkdirs(os.path.dirname(dst))
            os.symlink(kind[1], dst)
            continue
        _mkdirs(dst if kind == "dir" else os.path.dirname(dst))
        if kind == "file":
            open(dst, "w").close()
        _mount(f"/proc/self/fd/{fd}", dst, None, MS_BIND | MS_REC)
        _remount_read_only(dst)
        os.close(fd)
    _mkdirs(new + "/dev")
    _mount_tmpfs(new + "/dev", 1 << 20, "755", MS_NOEXEC)
    for name in DEVICES:
        dst = f"{new}/dev/{name}"
        open(dst, "w").close()
        _mount(f"/dev/{name}", dst, None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{new}/dev/{name}")
    for d in ["/proc"] + WRITABLE:
        _mkdirs(new + d)
    for d in WRITABLE:
        os.chmod(new + d, 0o1777)
    # A proc of the server's own PID namespace, for the memory supervisor; in a user namespace
    # the kernel also lets programs mount a new proc only where one is already fully visible.
    # Programs mount theirs over it.
    _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount(None, new + "/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    _mkdirs(new + "/etc")
    uid = CONFIG.get("uid")
    with open(new + "/etc/passwd", "w") as f:
        f.write("root:x:0:0:root:/root:/usr/sbin/nologin\n")
        if uid is not None:
            f.write(f"sandbox:x:{uid}:{uid}:sandbox:/tmp:/usr/sbin/nologin\n")
    with open(new + "/etc/group", "w") as f:
        f.write("root:x:0:\n" + (f"sandbox:x:{uid}:\n" if uid is not None else ""))
    if not os.path.exists(new + "/etc/hosts"):  # unless given as a read-only path
        with open(new + "/etc/hosts", "w") as f:
            # localhost only (servers under test on loopback); nothing of the host's names
            f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    os.mkdir(new + "/.old-root")
    _check(_libc.syscall(SYS_PIVOT_ROOT, new.encode(), (new + "/.old-root").encode()),
           "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old-root", MNT_DETACH), "umount the host root")
    os.rmdir("/.old-root")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _isolate_child():
    """In a forked child that is PID 1 of a fresh PID namespace: its own mount, network, IPC
    and UTS namespaces, private tmpfs on every writable place, and a /proc of its own."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
           "unshare(NEWNS|NEWNET|NEWIPC|NEWUTS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    for d in WRITABLE:
        _mount_tmpfs(d, CONFIG["tmpfs_bytes"], "1777")
    os.mkdir("/run/lock", 0o1777)
    os.chmod("/run/lock", 0o1777)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _check(_libc.sethostname(b"sandbox", 7), "sethostname")


def _loopback_up():
    """Brings `lo` up in this (private, empty) network namespace: servers under test can listen
    on 127.0.0.1 and reach only themselves."""
    import fcntl
    import socket
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(s, siocgifflags, req))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh22x", b"lo", flags | iff_up))


class _Cgroups:
    """The worker's cgroups (memory, pids), opened before the view hides /sys: programs join by
    writing "0" (themselves) to the procs files; peak and OOM-kill counters are read after."""

    def __init__(self, spec):
        self.procs = [os.open(p, os.O_WRONLY) for p in spec.get("procs", [])]
        # Directories, not the procs files: cgroup v1 keeps serving a cached pid list to an open
        # procs file, so membership is read from a freshly opened file each time.
        self.members = [os.open(os.path.dirname(p), os.O_RDONLY | os.O_DIRECTORY)
                        for p in spec.get("procs", [])]
        self.peak = os.open(spec["peak"], os.O_RDWR) if spec.get("peak") else None
        self.peak_resettable = bool(spec.get("peak_resettable"))
        self.events = os.open(spec["events"], os.O_RDONLY) if spec.get("events") else None
        for fd in self.procs + self.members + [self.peak, self.events]:
            if fd is not None:
                os.set_inheritable(fd, False)

    @staticmethod
    def _read(fd):
        return os.pread(fd, 1 << 16, 0).decode()

    def oom_kills(self):
        if self.events is None:
            return 0
        for line in self._read(self.events).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def reset_peak(self):
        if self.peak is not None and self.peak_resettable:
            os.pwrite(self.peak, b"0", 0)

    def peak_bytes(self):
        return int(self._read(self.peak).split()[0]) if self.peak is not None else None

    def join(self):
        for fd in self.procs:
            os.write(fd, b"0")

    def remaining(self):
        pids = set()
        for dirfd in self.members:
            fd = os.open("cgroup.procs", os.O_RDONLY, dir_fd=dirfd)
            try:
                pids.update(int(x) for x in os.read(fd, 1 << 20).split())
            finally:
                os.close(fd)
        return pids


CGROUPS = _Cgroups(CONFIG.get("cgroup") or {})


class _MemorySupervisor:
    """Where no memory cgroup exists: sums the proportional set size of a program's processes
    (its process trees) and kills the program once the sum passes the cap. Polled by the
    collectors every `PERIOD` seconds, so a program may briefly exceed the cap."""

    PERIOD = 0.05

    def __init__(self, cap):
        self.cap = cap
        self.peak = 0
        self.hit = False

    def reset(self):
        self.peak, self.hit = 0, False

    @staticmethod
    def _tree(root):
        seen, todo = [], [root]
        while todo:
            pid = todo.pop()
            seen.append(pid)
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except (OSError, ValueError):
                continue
        return seen

    @staticmethod
    def _pss(pid):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return 0

    def check(self, roots):
        """True when the program must die: its processes hold more than the cap."""
        total = sum(self._pss(p) for r in roots for p in self._tree(r))
        self.peak = max(self.peak, total)
        if total > self.cap:
            self.hit = True
        return self.hit


SUPERVISOR = (_MemorySupervisor(CONFIG["memory_bytes"])
              if CONFIG.get("memory_bytes") and CGROUPS.peak is None else None)


def _memory_start():
    """Before a job: resets the memory peak; returns the OOM-kill count to compare with."""
    CGROUPS.reset_peak()
    if SUPERVISOR is not None:
        SUPERVISOR.reset()
    return CGROUPS.oom_kills()


def _memory_report(ooms):
    """After a job: its memory peak and whether it hit the per-program limit."""
    if SUPERVISOR is not None:
        return {"peak_memory_bytes": SUPERVISOR.peak, "memory_limit_hit": SUPERVISOR.hit}
    return {"peak_memory_bytes": CGROUPS.peak_bytes(), "memory_limit_hit": CGROUPS.oom_kills() > ooms}


def _select(fds, left, roots):
    """select() for reading on `fds` for up to `left` s; with the memory supervisor, polls it
    meanwhile and kills the program's `roots` past the cap (their pidfds then turn ready)."""
    if SUPERVISOR is None:
        return select.select(fds, [], [], left)[0]
    ready = select.select(fds, [], [], min(left, SUPERVISOR.PERIOD))[0]
    if not ready and SUPERVISOR.check(roots):
        for r in roots:
            try:
                os.kill(r, signal.SIGKILL)
            except OSError:
                pass
    return ready


def _collapse_heap():
    """Backs the server's private anonymous memory (the pre-imported heap) with huge pages where
    the kernel can (MADV_HUGEPAGE + MADV_COLLAPSE, Linux 6.1+): a fork then copies one entry per
    2 MiB instead of 512, which is most of what forking a program costs. Returns MiB collapsed;
    0 where unsupported (nothing else changes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    huge, done = 2 << 20, 0
    try:
        with open("/proc/self/maps") as f:
            maps = f.read().splitlines()
    except OSError:
        return 0
    for line in maps:
        parts = line.split()
        path = parts[5] if len(parts) > 5 else ""
        if "w" not in parts[1] or "p" not in parts[1] or path not in ("", "[heap]"):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        lo, hi = (lo + huge - 1) & ~(huge - 1), hi & ~(huge - 1)
        if hi - lo < huge:
            continue
        if libc.madvise(lo, hi - lo, 14) == 0 and libc.madvise(lo, hi - lo, 25) == 0:
            done += hi - lo
    return done >> 20
