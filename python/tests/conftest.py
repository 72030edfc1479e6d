"""Shared fixtures: the recode binary, the real data and the set-up products."""
import importlib.util
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("RECODE_SHARED", ROOT.parent / "shared"))


def _need(var, hint):
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"{var} is not set: {hint}")
    return value


@pytest.fixture(scope="session")
def recode_bin():
    """Path of the built `recode` binary (scripts/test.sh exports RECODE_BIN)."""
    path = os.environ.get("RECODE_BIN") or str(ROOT / "target" / "debug" / "recode")
    if not os.path.exists(path):
        pytest.fail(f"{path} missing: run `cargo build -p recode-cli` (scripts/test.sh does)")
    return path


@pytest.fixture(scope="session")
def run_recode(recode_bin):
    """Runs `recode ARGS…` and returns the completed process (check=True)."""

    def run(*args, **kw):
        return subprocess.run([recode_bin, *map(str, args)], check=True, capture_output=True, text=True, **kw)

    return run


@pytest.fixture(scope="session")
def api_update():
    path = SHARED / "data" / "recode" / "api_update.jsonl"
    assert path.exists(), f"{path} missing: ../shared must sit beside the repository"
    return path


@pytest.fixture(scope="session")
def qwen_tokenizer_dir():
    return pathlib.Path(_need("RECODE_QWEN_TOKENIZER_DIR", "run scripts/setup.sh and export its output"))


@pytest.fixture(scope="session")
def published_reward():
    """ReCode's published reward (``$RECODE_SHARED/reference/recode_reward.py``, MIT), imported
    from ../shared where it lives; it is never copied into the project. Skipped, saying so,
    when ../shared is absent (CI always has it)."""
    path = SHARED / "reference" / "recode_reward.py"
    if not path.exists():
        pytest.skip(f"{path} absent: the published reward lives in ../shared (set RECODE_SHARED)")
    spec = importlib.util.spec_from_file_location("recode_published_reward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
