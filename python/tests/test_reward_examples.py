"""examples/verl and examples/trl parse, and their reward imports work with the wheel."""

import importlib.util
import py_compile
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_examples_compile():
    for path in [ROOT / "examples/verl/recode_reward.py", ROOT / "examples/trl/train_grpo.py"]:
        py_compile.compile(str(path), doraise=True)
    subprocess.run(["bash", "-n", str(ROOT / "examples/verl/run_dapo.sh")], check=True)


def test_verl_reward_import():
    spec = importlib.util.spec_from_file_location("recode_reward_example", ROOT / "examples/verl/recode_reward.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.compute_score("recode", "r</think><answer>```python\nx = 1\n```</answer>", "x = 1")
    assert out["score"] == 3.0


def test_trl_reward_import():
    from recode.trl import es_star_reward, format_reward

    assert format_reward(["r</think><answer>a</answer>"]) == [1.0]
    assert es_star_reward(["```python\nx = 1\n```"], target=["x = 1"]) == [2.0]
