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


def shared_or_skip(rel, what):
    """``$RECODE_SHARED/rel`` (``../shared`` beside the checkout by default), or skip the test
    saying it needs ``what``; under ``CI=true`` a missing file fails instead (CI always has
    ../shared). The Rust tests' counterpart is ``recode_data::datasets::DataSet::shared_or_skip``."""
    path = SHARED / rel
    if not path.exists():
        why = (f"needs {what} ({path} absent: place ../shared beside the checkout or set RECODE_SHARED; "
               "README, section Data)")
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def api_update():
    """The ReCode training data in ../shared (tests that need it are skipped without it)."""
    return shared_or_skip("data/recode/api_update.jsonl", "ReCode training data")


@pytest.fixture(scope="session")
def qwen_tokenizer_dir():
    return pathlib.Path(_need("RECODE_QWEN_TOKENIZER_DIR", "run scripts/setup.sh and export its output"))


@pytest.fixture(scope="session")
def published_reward():
    """ReCode's published reward (``$RECODE_SHARED/reference/recode_reward.py``, MIT), imported
    from ../shared where it lives; it is never copied into the project. Skipped, saying so,
    when ../shared is absent (CI always has it)."""
    path = shared_or_skip("reference/recode_reward.py", "ReCode's published reward")
    spec = importlib.util.spec_from_file_location("recode_published_reward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
