"""The data stage seen from Python: verl Parquet read back by pyarrow, TRL rows, and the
prompt rendered through a real Qwen chat template compared with Jinja2 rendering."""
import json

import jinja2
import pyarrow.parquet as pq

SYSTEM = (
    "You are a helpful coding assistant. Your task is to transform the old version of the code into "
    "the new version specified, based on the update information. You first thinks about the reasoning "
    "process in the mind and then provides the solution."
)
PREFIX = "Let me solve this step by step.\n<think>"


def reference_user(row):
    version = row["new_version"]
    version = version[2:] if version.startswith("==") else version
    return (
        f"\n{row['dependency']} performed an API update in version {version}, and the update content includes:\n"
        f"<doc>\n{row['update_info']}\n</doc>\nThe old version of the code is:\n```python\n{row['old_code']}\n```\n\n"
        "Show your work in <think> </think> tags. And return the final code in <answer> </answer>, "
        "the code within <answer></answer> should be enclosed in ```python ``` tags.\n"
    )


def cleaned(tmp_path, run_recode, api_update):
    out = tmp_path / "clean.jsonl"
    run_recode("data", "clean", api_update, out)
    return out, [json.loads(l) for l in out.read_text().splitlines()]


def test_verl_parquet_schema_and_row(tmp_path, run_recode, api_update):
    clean, rows = cleaned(tmp_path, run_recode, api_update)
    out = tmp_path / "train.parquet"
    run_recode("data", "export", clean, out, "--format", "verl")
    table = pq.read_table(out)
    assert table.num_rows == len(rows)
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    schema = table.schema
    assert str(schema.field("prompt").type) == "list<item: struct<content: string not null, role: string not null> not null>"
    assert {f.name for f in schema.field("reward_model").type} == {"style", "ground_truth"}
    assert {"index", "split", "dependency"} <= {f.name for f in schema.field("extra_info").type}
    k = 7
    rec = table.slice(k, 1).to_pylist()[0]
    assert rec["data_source"] == "recode/api_update"
    assert rec["ability"] == "code"
    assert rec["prompt"] == [
        {"content": SYSTEM, "role": "system"},
        {"content": reference_user(rows[k]), "role": "user"},
    ]
    assert rec["reward_model"] == {"ground_truth": rows[k]["new_code"], "style": "rule"}
    assert rec["extra_info"]["index"] == k
    assert rec["extra_info"]["split"] == "train"
    assert rec["extra_info"]["dependency"] == rows[k]["dependency"]
    assert rec["extra_info"]["assistant_prefix"] == PREFIX


def test_trl_jsonl_rows(tmp_path, run_recode, api_update):
    clean, rows = cleaned(tmp_path, run_recode, api_update)
    out = tmp_path / "trl.jsonl"
    run_recode("data", "export", clean, out, "--format", "trl-jsonl")
    got = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(got) == len(rows)
    for row, rec in zip(rows[:50], got[:50]):
        assert rec["target"] == row["new_code"]
        assert [m["role"] for m in rec["prompt"]] == ["system", "user", "assistant"]
        assert rec["prompt"][1]["content"] == reference_user(row)
        assert rec["prompt"][2]["content"] == PREFIX


def hf_render(template_src, messages, bos, eos):
    """apply_chat_template(continue_final_message=True) as transformers does it, with Jinja2."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])

    def raise_exception(msg):
        raise jinja2.TemplateError(msg)

    env.globals["raise_exception"] = raise_exception
    text = env.from_string(template_src).render(
        messages=messages, add_generation_prompt=False, bos_token=bos, eos_token=eos
    )
    final = messages[-1]["content"].strip()
    return text[: text.rindex(final) + len(final)]


def test_render_with_qwen_chat_template_matches_jinja2(tmp_path, run_recode, api_update, qwen_tokenizer_dir):
    clean, rows = cleaned(tmp_path, run_recode, api_update)
    cfg_path = qwen_tokenizer_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    out = tmp_path / "rendered.jsonl"
    run_recode("data", "render", clean, "--template", cfg_path, "-o", out)
    rendered = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(rendered) == len(rows)
    for i in range(0, len(rows), 97):
        msgs = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": reference_user(rows[i])},
            {"role": "assistant", "content": PREFIX},
        ]
        want = hf_render(cfg["chat_template"], msgs, cfg.get("bos_token") or "", cfg.get("eos_token") or "")
        assert rendered[i]["prompt"] == want, i


def test_chatml_render_of_one_row(tmp_path, run_recode, api_update):
    clean, rows = cleaned(tmp_path, run_recode, api_update)
    text = run_recode("data", "render", clean, "--index", "3").stdout
    want = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{reference_user(rows[3])}<|im_end|>\n"
        f"<|im_start|>assistant\n{PREFIX}"
    )
    assert text == want


def test_stats_json_and_errors(tmp_path, run_recode, recode_bin, api_update):
    import subprocess

    report = json.loads(run_recode("data", "stats", api_update, "--json").stdout)
    lines = [json.loads(l) for l in api_update.read_text().splitlines() if l.strip()]
    assert report["rows"] == len(lines)
    assert report["null_fields"]["update_info"] == sum(r["update_info"] is None for r in lines)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(api_update.read_text().splitlines()[0] + "\n{oops\n")
    proc = subprocess.run([recode_bin, "data", "stats", bad], capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"{bad}:2: malformed JSON" in proc.stderr
    proc = subprocess.run([recode_bin, "data", "stats", bad, "--keep-going", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["bad_lines"][0]["error"].startswith(f"{bad}:2:")
