"""examples/verl and examples/trl parse, and their reward imports work with the wheel."""

import ast
import importlib.util
import py_compile
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "Let me solve this step by step.\n<think>"
GOOD = " r</think><answer>```python\nx = 1\n```</answer>"
HEAVY = ("torch", "trl", "peft", "datasets", "transformers", "vllm", "verl")


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_examples_compile():
    for path in [ROOT / "examples/verl/recode_reward.py", ROOT / "examples/trl/train_grpo.py"]:
        py_compile.compile(str(path), doraise=True)
    subprocess.run(["bash", "-n", str(ROOT / "examples/verl/run_dapo.sh")], check=True)


def test_verl_reward_import():
    mod = _load(ROOT / "examples/verl/recode_reward.py", "recode_reward_example")
    out = mod.compute_score("recode", GOOD, "x = 1")
    assert out["score"] == 3.0
    info = {"assistant_prefix": PREFIX}
    assert mod.compute_score("recode", PREFIX + GOOD, "x = 1", info)["score"] == 3.0


def _overrides(script: str) -> dict:
    return dict(re.findall(r"^\s+([\w.]+)=(\S+?)\s*\\?$", script, re.M))


def test_run_dapo_uses_the_dapo_recipe():
    script = (ROOT / "examples/verl/run_dapo.sh").read_text()
    assert "python3 -m recipe.dapo.main_dapo" in script
    o = _overrides(script)
    expected = {
        "algorithm.filter_groups.enable": "True",
        "algorithm.filter_groups.metric": "score",
        "algorithm.filter_groups.max_num_gen_batches": "10",
        "actor_rollout_ref.actor.clip_ratio_low": "0.2",
        "actor_rollout_ref.actor.clip_ratio_high": "0.28",
        "actor_rollout_ref.actor.clip_ratio_c": "10.0",
        "actor_rollout_ref.actor.loss_agg_mode": "token-mean",
        "actor_rollout_ref.actor.use_kl_loss": "False",
        "algorithm.use_kl_in_reward": "False",
        "actor_rollout_ref.actor.optim.lr": "1e-6",
        "actor_rollout_ref.rollout.n": "8",
        "actor_rollout_ref.rollout.temperature": "1.0",
        "reward_model.reward_manager": "dapo",
        "custom_reward_function.name": "compute_score",
    }
    for key, value in expected.items():
        assert o.get(key) == value, (key, o.get(key))
    for key in ["data.gen_batch_size", "data.train_batch_size", "data.train_files", "data.val_files"]:
        assert key in o, key
    for key in ["enable", "len", "penalty_factor"]:
        assert f"reward_model.overlong_buffer.{key}" in o, key
    # The reward the script points at is the example module.
    assert o["custom_reward_function.path"] == '"$HERE/recode_reward.py"'


def test_readmes_use_the_real_cli(recode_bin):
    # Every `recode data ...` command in the READMEs must parse with the real binary's CLI.
    formats = set()
    for readme in [ROOT / "examples/verl/README.md", ROOT / "examples/trl/README.md"]:
        cmds = re.findall(r"^\s*(recode data (?:clean|split|export) [^\n#]+)", readme.read_text(), re.M)
        assert any(" split " in c for c in cmds) and sum(" export " in c for c in cmds) >= 2, readme
        for cmd in cmds:
            args = cmd.split()[1:]
            if args[1] == "export":
                formats.add(args[args.index("--format") + 1])
            # `--help` after the real arguments makes clap validate them without running.
            r = subprocess.run([recode_bin, *args, "--help"], capture_output=True, text=True)
            assert r.returncode == 0, (cmd, r.stderr)
    assert formats == {"verl", "trl-jsonl"}


def test_train_grpo_imports_without_heavy_deps(monkeypatch):
    # Importing the script needs only the wheel: block torch/trl/... to prove it.
    for name in HEAVY:
        monkeypatch.setitem(sys.modules, name, None)
    mod = _load(ROOT / "examples/trl/train_grpo.py", "train_grpo_example")
    import recode.trl

    assert mod.REWARD_FUNCS == [recode.trl.format_reward, recode.trl.es_star_reward]
    assert mod.GRPO_SETTINGS["beta"] == 0.001
    assert mod.GRPO_SETTINGS["learning_rate"] == 5e-5
    assert mod.GRPO_SETTINGS["num_generations"] == 8
    assert (mod.DORA_SETTINGS["r"], mod.DORA_SETTINGS["lora_alpha"], mod.DORA_SETTINGS["use_dora"]) == (64, 64, True)
    # Called as GRPOTrainer calls them (conversational, bootstrap prepended): TRL sums them.
    completions = [[{"role": "assistant", "content": PREFIX + GOOD}]]
    total = sum(f(completions, prompts=[[{"role": "user", "content": "u"}]], target=["x = 1"])[0] for f in mod.REWARD_FUNCS)
    assert total == 3.0


def test_train_grpo_uses_trl_and_peft():
    tree = ast.parse((ROOT / "examples/trl/train_grpo.py").read_text())
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert {("trl", "GRPOConfig"), ("trl", "GRPOTrainer"), ("peft", "LoraConfig"), ("recode.trl", "format_reward"), ("recode.trl", "es_star_reward")} <= imports
    top = {(n.module) for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert not top & set(HEAVY), "heavy imports must stay inside main()"
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"GRPOConfig", "GRPOTrainer", "LoraConfig"} <= calls


def test_trl_reward_import():
    from recode.trl import es_star_reward, format_reward

    assert format_reward(["r</think><answer>a</answer>"]) == [1.0]
    assert es_star_reward(["```python\nx = 1\n```"], target=["x = 1"]) == [2.0]
