"""Where the scripts find their data (scripts/resolve-data.sh) and what a clone with nothing
beside it does (issue 33): the variable, else ../shared/data, else the hub dataset downloaded
once into the cache; when none is reachable the quickstart stops within seconds, before set-up
and build, naming the variables to set and the hub ids it tried.

The hub is replaced by local stand-ins (HF_ENDPOINT): a closed port, a server that accepts and
never answers, and a small file server, so the outcome does not depend on this machine's network."""
import http.server
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESOLVE = ROOT / "scripts" / "resolve-data.sh"
# Port 9 (discard) on loopback: nothing listens, so connecting is refused at once.
CLOSED_HUB = "http://127.0.0.1:9"
DATA_VARS = ("RECODE_DATA", "RECODE_ARENA", "RECODE_SHARED")


def clean_env(tmp_path, **extra):
    """The environment of a user with no data configured, a private cache and the given hub."""
    env = {k: v for k, v in os.environ.items() if k not in DATA_VARS}
    env["RECODE_CACHE"] = str(tmp_path / "cache")
    env.update(extra)
    return env


def run_bounded(cmd, env, cwd, limit):
    """Runs cmd in its own process group; returns (process, seconds); kills the group and fails
    the test when it outlives `limit` seconds."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{cmd} still running after {limit} s; stderr so far:\n{err}")
    proc.stdout_text, proc.stderr_text = out, err
    return proc, time.monotonic() - t0


def test_fresh_clone_quickstart_fails_fast_naming_the_variables(tmp_path):
    # The project's files (tracked or new, as they are in the work tree) in a folder with nothing
    # beside it.
    clone = tmp_path / "clone" / "recode"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    assert not (clone.parent / "shared").exists()
    env = clean_env(tmp_path, HF_ENDPOINT=CLOSED_HUB)
    proc, seconds = run_bounded(["bash", "scripts/quickstart.sh", str(tmp_path / "out")], env, clone, 60)
    err = proc.stderr_text
    assert proc.returncode != 0, err
    assert seconds < 60, seconds
    for needle in ("Set RECODE_DATA and RECODE_ARENA", "zjunlp/ReCode-Train-Data", "leo-liuzy/CodeUpdateArena",
                   "README, section Data"):
        assert needle in err, f"{needle!r} not in:\n{err}"
    # Resolved before the long work: neither set-up nor the build started.
    assert "[setup]" not in err and "==> build" not in err, err
    print(f"quickstart in a bare clone failed in {seconds:.2f} s")


def resolve(tmp_path, *names, **env):
    return run_bounded(["bash", str(RESOLVE), *names], clean_env(tmp_path, **env), tmp_path, 20)


def test_silent_hub_fails_within_the_timeouts(tmp_path):
    # A hub that accepts connections and never answers must not hang the scripts.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    hub = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        proc, seconds = resolve(tmp_path, "recode", HF_ENDPOINT=hub, RECODE_SHARED=str(tmp_path / "none"),
                                RECODE_HUB_CONNECT_TIMEOUT="1")
    finally:
        server.close()
    assert proc.returncode != 0
    assert "RECODE_DATA" in proc.stderr_text and "timed out" in proc.stderr_text, proc.stderr_text
    assert seconds < 10, seconds


class _Hub(http.server.SimpleHTTPRequestHandler):
    """Serves a folder laid out like the hub (`datasets/<id>/resolve/main/<file>`), counting GETs."""

    gets = 0

    def do_GET(self):  # noqa: N802 (http.server's naming)
        type(self).gets += 1
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(tmp_path):
    root = tmp_path / "hub"
    for hub_id, name, text in [
        ("zjunlp/ReCode-Train-Data", "recode-train-data.jsonl", '{"row": "recode"}\n'),
        ("leo-liuzy/CodeUpdateArena", "arena-ungrouped.jsonl", '{"row": "arena"}\n'),
    ]:
        path = root / "datasets" / hub_id / "resolve" / "main" / name
        path.parent.mkdir(parents=True)
        path.write_text(text)
    handler = type("Hub", (_Hub,), {"gets": 0})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_order_variable_then_shared_then_cache_then_hub(tmp_path, fake_hub):
    hub, counter = fake_hub
    none = str(tmp_path / "none")
    # Hub: downloaded into the cache and printed as a local path.
    proc, _ = resolve(tmp_path, "recode", "arena", HF_ENDPOINT=hub, RECODE_SHARED=none)
    assert proc.returncode == 0, proc.stderr_text
    got = proc.stdout_text.split()
    assert got == [
        str(tmp_path / "cache/data/zjunlp/ReCode-Train-Data/recode-train-data.jsonl"),
        str(tmp_path / "cache/data/leo-liuzy/CodeUpdateArena/arena-ungrouped.jsonl"),
    ]
    assert pathlib.Path(got[0]).read_text() == '{"row": "recode"}\n'
    fetched = counter.gets
    # Cache: once downloaded, no further request, even with the hub gone.
    proc, _ = resolve(tmp_path, "recode", "arena", HF_ENDPOINT=CLOSED_HUB, RECODE_SHARED=none)
    assert proc.returncode == 0, proc.stderr_text
    assert proc.stdout_text.split() == got and counter.gets == fetched
    # ../shared (here RECODE_SHARED) wins over the cache.
    shared = tmp_path / "shared"
    (shared / "data/recode").mkdir(parents=True)
    (shared / "data/recode/api_update.jsonl").write_text("{}\n")
    proc, _ = resolve(tmp_path, "recode", RECODE_SHARED=str(shared))
    assert proc.stdout_text.split() == [str(shared / "data/recode/api_update.jsonl")]
    # The variable wins over everything; set to a missing file, it is an error naming it.
    mine = tmp_path / "mine.jsonl"
    mine.write_text("{}\n")
    proc, _ = resolve(tmp_path, "recode", RECODE_DATA=str(mine), RECODE_SHARED=str(shared))
    assert proc.stdout_text.split() == [str(mine)]
    # A relative path is made absolute (the scripts change directory afterwards).
    proc, _ = resolve(tmp_path, "recode", RECODE_DATA="mine.jsonl", RECODE_SHARED=str(shared))
    assert proc.stdout_text.split() == [str(mine)]
    proc, _ = resolve(tmp_path, "recode", RECODE_DATA=str(tmp_path / "missing.jsonl"))
    assert proc.returncode != 0 and "RECODE_DATA" in proc.stderr_text and "missing.jsonl" in proc.stderr_text


def test_scripts_ask_cargo_for_the_target_directory(tmp_path):
    # quickstart.sh and learning-run.sh find the binary where cargo builds (CARGO_TARGET_DIR).
    env = dict(os.environ, CARGO_TARGET_DIR=str(tmp_path / "elsewhere"))
    out = subprocess.run(
        ["bash", "-c", ". scripts/lib.sh && recode_target_dir"], cwd=ROOT, env=env, check=True,
        capture_output=True, text=True,
    ).stdout.strip()
    assert out == str(tmp_path / "elsewhere")
    for script in ("quickstart.sh", "learning-run.sh"):
        text = (ROOT / "scripts" / script).read_text()
        assert "target/release" not in text.replace("$(recode_target_dir)/release", ""), script
