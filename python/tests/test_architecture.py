"""The workspace's architecture rules (docs/architecture.md, issue 34), checked on what cargo
reports, so they cannot rot silently:

- the dependency rules between the crates (`cargo metadata --no-deps`: normal, build and dev
  dependencies; a crate "knows" every crate its dependencies reach, and a dev-dependency counts
  too, since the crate's tests then compile against it);
- the dependency table of docs/architecture.md matches the real edges, and the crate map names
  every crate;
- no Rust file under crates/*/src is over 900 lines, counting only the lines before a trailing
  `#[cfg(test)] mod tests` block.

Each failure names the forbidden edge (with the path it takes), the table row or the file."""
import functools
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
MAX_LINES = 900

CLI = "recode-cli"
# (crates the rule is about, crates they must never reach, the rule in docs/architecture.md)
RULES = [
    ({"recode-data", "recode-reward"}, {"recode-model"}, "data and reward know no model"),
    ({"recode-model"}, {"recode-rl", "recode-eval", "recode-bench"},
     "the model knows no RL, evaluation or benchmark"),
    ({"recode-eval"}, {"recode-rl"}, "evaluation knows no training"),
    ({"recode-sandbox"}, {"recode-model", "recode-rl", "recode-eval"},
     "the sandbox knows no model, training or evaluation"),
]
# Crates only the `recode` binary may depend on (rule: "no library depends on recode-cli;
# recode-report and recode-bench are never dependencies of the libraries below them").
BINARY_ONLY = {
    CLI: "no library depends on recode-cli",
    "recode-report": "recode-report is used by recode-cli only",
    "recode-bench": "recode-bench is used by recode-cli only",
}


def cargo():
    path = os.environ.get("CARGO") or shutil.which("cargo")
    if not path:
        home = pathlib.Path(os.environ.get("CARGO_HOME", pathlib.Path.home() / ".cargo"))
        path = str(home / "bin" / "cargo")
    if not os.path.exists(path):
        pytest.fail("cargo not found (CARGO, PATH, ~/.cargo/bin): scripts/setup.sh needs a Rust toolchain")
    return path


@functools.lru_cache(maxsize=1)
def load_metadata():
    """`cargo metadata --format-version 1 --no-deps` of the workspace, parsed (once; callers
    must not modify it)."""
    out = subprocess.run(
        [cargo(), "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def workspace_edges(meta):
    """{crate: {"normal": {dep, …}, "dev": {dep, …}}} over the workspace's own crates (build
    dependencies count as normal ones)."""
    names = {p["name"] for p in meta["packages"]}
    edges = {n: {"normal": set(), "dev": set()} for n in names}
    for p in meta["packages"]:
        for d in p["dependencies"]:
            if d["name"] in names:
                edges[p["name"]]["dev" if d["kind"] == "dev" else "normal"].add(d["name"])
    return edges


def reach(edges, crate):
    """{reached crate: path from `crate`} for every crate `crate` compiles against: the normal
    closure, plus each dev-dependency and its normal closure (dev-dependencies of dependencies
    are not built, so they do not propagate)."""
    paths = {}
    todo = [(d, [crate, d], kind) for kind in ("normal", "dev") for d in sorted(edges[crate][kind])]
    while todo:
        dep, path, kind = todo.pop(0)
        if dep in paths or dep == crate:
            continue
        paths[dep] = (path, kind)
        todo.extend((d, path + [d], kind) for d in sorted(edges.get(dep, {}).get("normal", ())))
    return paths


def forbidden_edges(meta):
    """One message per broken rule: the crate, the forbidden crate, the path and the rule."""
    edges = workspace_edges(meta)
    problems = []

    def broken(crate, target, rule):
        if target in (hit := reach(edges, crate)):
            path, kind = hit[target]
            via = "" if len(path) == 2 else f" (via {' → '.join(path)})"
            first = "dev-dependency" if kind == "dev" else "dependency"
            problems.append(f"forbidden edge {crate} → {target}{via}, starting with a {first}: {rule}")

    for crates, targets, rule in RULES:
        for crate in sorted(crates & edges.keys()):
            for target in sorted(targets):
                broken(crate, target, rule)
    for target, rule in BINARY_ONLY.items():
        for crate in sorted(edges.keys() - {CLI, target}):
            broken(crate, target, rule)
    return problems


def test_no_forbidden_dependency():
    problems = forbidden_edges(load_metadata())
    assert not problems, "dependency rules of docs/architecture.md broken:\n" + "\n".join(problems)


def test_checker_names_an_injected_forbidden_edge():
    """The checker itself: a copy of the real metadata with recode-data → recode-model added
    (and recode-eval → recode-bench via a dev-dependency) must be reported, naming both."""
    meta = json.loads(json.dumps(load_metadata()))
    for p in meta["packages"]:
        if p["name"] == "recode-data":
            p["dependencies"].append({"name": "recode-model", "kind": None})
        if p["name"] == "recode-eval":
            p["dependencies"].append({"name": "recode-bench", "kind": "dev"})
    problems = "\n".join(forbidden_edges(meta))
    assert "forbidden edge recode-data → recode-model," in problems
    assert "data and reward know no model" in problems
    # recode-reward's dev-dependency on recode-data now reaches the model too.
    assert "forbidden edge recode-reward → recode-model (via recode-reward → recode-data → recode-model)" in problems
    assert "forbidden edge recode-eval → recode-bench, starting with a dev-dependency" in problems


def crate_names(cell):
    return set(re.findall(r"`(recode-[a-z]+)`", cell))


def doc_table(text):
    """The rows of the '## Dependencies' table of docs/architecture.md:
    {crate: (normal deps, dev-only deps)} from the backticked crate names of each column."""
    section = re.search(r"^## Dependencies\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, f"{DOC}: no '## Dependencies' section"
    rows = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`recode-[a-z]+`", cells[0]):
            rows[cells[0].strip("`")] = (crate_names(cells[1]), crate_names(cells[2]))
    return rows


def test_doc_matches_cargo_metadata():
    assert DOC.is_file(), f"{DOC} is missing (the crate map and dependency rules, issue 34)"
    text = DOC.read_text()
    edges = workspace_edges(load_metadata())
    table = doc_table(text)
    problems = []
    for crate in sorted(edges):
        if f"`{crate}`" not in text:
            problems.append(f"{crate} is missing from the crate map")
        if crate not in table:
            problems.append(f"{crate} has no row in the '## Dependencies' table")
            continue
        normal, dev = table[crate]
        real_dev = edges[crate]["dev"] - edges[crate]["normal"]
        if normal != edges[crate]["normal"]:
            problems.append(f"row {crate}: depends on {sorted(normal)}, cargo says {sorted(edges[crate]['normal'])}")
        if dev != real_dev:
            problems.append(f"row {crate}: dev-only {sorted(dev)}, cargo says {sorted(real_dev)}")
    for crate in sorted(table.keys() - edges.keys()):
        problems.append(f"row {crate}: no such crate in the workspace")
    assert not problems, f"{os.path.relpath(DOC, ROOT)} is out of date:\n" + "\n".join(problems)


TEST_MOD = re.compile(r"^(pub(\([^)]*\))? )?mod tests\s*(\{|;)")


def counted_lines(text):
    """Lines of a Rust file before its trailing `#[cfg(test)] mod tests` block (all lines when
    the file has none, or when code follows the block)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() == "#[cfg(test)]" and i + 1 < len(lines) and TEST_MOD.match(lines[i + 1]):
            if lines[i + 1].rstrip().endswith(";"):
                end = i + 1
            else:
                # rustfmt closes a top-level block with `}` in column 0.
                end = next((k for k in range(i + 2, len(lines)) if lines[k] == "}"), None)
            if end is not None and not any(l.strip() for l in lines[end + 1:]):
                return i
            break
    return len(lines)


def long_files(root=None):
    """(path, counted lines) of every Rust file under crates/*/src over the limit."""
    root = root or ROOT
    return [
        (str(f.relative_to(root)), n)
        for f in sorted(root.glob("crates/*/src/**/*.rs"))
        if (n := counted_lines(f.read_text())) > MAX_LINES
    ]


def test_no_rust_file_over_900_lines_before_its_tests():
    found = long_files()
    assert not found, (
        f"Rust files over {MAX_LINES} lines (before a trailing #[cfg(test)] mod tests block); "
        "split them by concern (issue 34):\n" + "\n".join(f"{p}: {n} lines" for p, n in found)
    )


def test_line_count_stops_at_a_trailing_test_block_only():
    body = "fn a() {}\n" * 5
    tests = "#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n"
    assert counted_lines(body + tests) == 5
    assert counted_lines(body + tests + "\n") == 5
    # Code after the test block: the whole file counts.
    assert counted_lines(body + tests + "fn b() {}\n") == 5 + 5 + 1
    assert counted_lines(body) == 5
