//! Judged verdicts on the eval virtualenv's libraries: honest programs must score exactly as the
//! benchmark's in-process harness scores them (same program as a `Job::Whole`), and values that
//! cannot be faithfully decoded must never turn a failure into a pass.
//!
//! Each case runs twice, judged and in-process, and the two verdicts must agree. Needs the eval
//! venv (`recode eval setup`) and root, like `sandbox.rs`.

use std::sync::OnceLock;

use recode_eval::executor::{ExecConfig, ExecResult, ExecutorPool, Job};
use recode_eval::setup::{default_venv_dir, ready_python};

fn pool() -> &'static ExecutorPool {
    static POOL: OnceLock<ExecutorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let python = ready_python(&default_venv_dir())
            .unwrap_or_else(|e| panic!("{e}: run `recode eval setup` first"));
        let mut cfg = ExecConfig::new(python, 1);
        cfg.preload = vec!["numpy".into(), "torch".into(), "sympy".into()];
        cfg.capture_chars = 2000;
        let pool = ExecutorPool::start(cfg).expect("start pool");
        assert!(pool.hello().expect("hello").caps.isolated(), "needs root");
        pool
    })
}

/// Runs (setup, candidate, test) judged and as one in-process program; returns both results.
fn both(setup: &str, candidate: &str, test: &str) -> (ExecResult, ExecResult) {
    let jobs = [
        Job::Judged {
            setup: setup.into(),
            candidate: candidate.into(),
            test: test.into(),
        },
        Job::Whole(format!("{setup}\n{candidate}\n{test}")),
    ];
    let mut r = pool().run_jobs(&jobs, &|| {});
    let whole = r.pop().unwrap();
    (r.pop().unwrap(), whole)
}

/// The honest case passes both ways.
fn agrees_and_passes(setup: &str, candidate: &str, test: &str) {
    let (judged, whole) = both(setup, candidate, test);
    assert!(whole.passed(), "in-process reference failed: {whole:?}");
    assert!(
        judged.passed(),
        "judged differs from in-process: {judged:?}"
    );
}

#[test]
fn handles_of_objects_without_a_value_pass_isinstance() {
    agrees_and_passes(
        "import re\n",
        "def find(s):\n    return re.search('b+', s)\n",
        "m = find('abbbc')\nassert isinstance(m, re.Match) and not isinstance(m, str)\n\
         assert m.group() == 'bbb' and m.span() == (1, 4)\n",
    );
    // mappingproxy (re.Pattern.groupindex) compares as the dict it views
    agrees_and_passes(
        "import re\n",
        "def info(p):\n    c = re.compile(p)\n    return {'pattern': c, 'groups': c.groupindex}\n",
        "r = info('(?P<a>x)')\nassert r['groups'] == {'a': 1}\nassert r['pattern'].pattern == '(?P<a>x)'\n",
    );
}

#[test]
fn out_buffers_come_back_as_the_callers_own_objects() {
    // returned `out=` keyword argument: the same object, resized and filled
    agrees_and_passes(
        "import torch\n",
        "def cat(xs, out=None):\n    return torch.cat(xs, out=out)\n",
        "o = torch.Tensor()\nr = cat([torch.ones(2), torch.zeros(2)], out=o)\n\
         assert r is o and torch.equal(o, torch.tensor([1., 1., 0., 0.]))\n",
    );
    // positional buffer filled in place; the caller keeps its own reference
    agrees_and_passes(
        "import torch\n",
        "def stack(xs, o):\n    torch.stack(xs, out=o)\n    return o\n",
        "o = torch.rand(1, 3)\nkeep = o\nr = stack([torch.ones(3)], o)\n\
         assert r is keep and torch.equal(keep, torch.ones(1, 3))\n",
    );
    // numpy arrays and lists changed in place, the return value unrelated
    agrees_and_passes(
        "import numpy as np\n",
        "def fill(a, xs):\n    a[:] = 7\n    xs.append(1)\n    return None\n",
        "a = np.zeros(3)\nxs = []\nassert fill(a, xs) is None\nassert (a == 7).all() and xs == [1]\n",
    );
}

#[test]
fn sympy_undefined_functions_keep_their_names_and_assumptions() {
    agrees_and_passes(
        "import sympy\n",
        "def make(names):\n    return sympy.symbols(names, cls=sympy.Function)\n",
        "r = make(['p', 'q'])\ne = (sympy.Function('p'), sympy.Function('q'))\n\
         for a, b in zip(r, e):\n    assert a == b and type(a) == type(b) and a.name == b.name\n",
    );
    agrees_and_passes(
        "import sympy\n",
        "x = sympy.Symbol('x')\ndef expr():\n    return sympy.Function('g', real=True)(x) + 1\n",
        "assert expr() == sympy.Function('g', real=True)(sympy.Symbol('x')) + 1\n\
         assert expr() != sympy.Function('g')(sympy.Symbol('x')) + 1\n",
    );
}

#[test]
fn large_arrays_cross_as_raw_bytes_within_the_time_limit() {
    // 800 MB of float64: base64 text took past the 15 s timer; raw attachments take seconds
    let (judged, whole) = both(
        "import numpy as np\n",
        "def grid(n, v):\n    a = np.zeros((n, n))\n    a.fill(v)\n    return a\n\
         def blob():\n    return b'x' * 100000, bytearray(b'y' * 5000), np.arange(5000)\n",
        "r = grid(10000, 30)\nassert r.shape == (10000, 10000) and np.allclose(r, 30.0)\n\
         r[0, 0] = 1.0\nb, ba, ar = blob()\n\
         assert b == b'x' * 100000 and ba == bytearray(b'y' * 5000) and (ar == np.arange(5000)).all()\n",
    );
    assert!(whole.passed(), "{whole:?}");
    assert!(judged.passed(), "{judged:?}");
    assert!(judged.wall < 10.0, "judged took {} s", judged.wall);
}

#[test]
fn class_claims_never_make_a_value_type_or_an_equal() {
    // A candidate class pretending to live in builtins as `int` is still only a handle, and
    // objects equal to everything stay unequal in the judge.
    let (judged, whole) = both(
        "",
        "class Fake:\n    def __eq__(self, o):\n        return True\n\
         Fake.__module__ = 'builtins'\nFake.__qualname__ = 'int'\n\
         def answer():\n    return Fake()\n",
        "r = answer()\nassert isinstance(r, int) or r == 42\n",
    );
    assert!(
        whole.passed(),
        "the in-process harness is fooled: {whole:?}"
    );
    assert!(!judged.passed(), "forged pass: {judged:?}");
}

#[test]
fn remote_iterators_are_fast_and_keep_their_order_of_events() {
    // 500k items through handles: batched, well inside the timer
    let (judged, whole) = both(
        "import itertools\n",
        "def split(n):\n    return itertools.tee(range(n), 10)\n",
        "assert [list(i) for i in split(50000)] == [list(range(50000))] * 10\n",
    );
    assert!(whole.passed(), "{whole:?}");
    assert!(judged.passed(), "{judged:?}");
    assert!(judged.wall < 8.0, "judged took {} s", judged.wall);
    // items before an exception arrive first; an exhausted iterator stays exhausted
    agrees_and_passes(
        "",
        "def g():\n    yield 1\n    yield 2\n    raise ValueError('boom')\n\
         def one():\n    return iter([1])\n",
        "it = g()\nassert next(it) == 1 and next(it) == 2\n\
         try:\n    next(it)\n    raise AssertionError('no error')\nexcept ValueError as e:\n    assert str(e) == 'boom'\n\
         it = one()\nassert next(it) == 1\n\
         for _ in range(3):\n    assert next(it, 'end') == 'end'\n",
    );
}

#[test]
fn plain_data_crosses_fast_and_exactly() {
    // 100k small dicts each way: sent as JSON by the C encoder when JSON-native all the way
    // down; tuples, non-str keys, NaN and big ints keep their types through the tagged path
    let (judged, whole) = both(
        "import math\n",
        "def f(data):\n    return [{'s': math.sqrt(d['s']), 'id': 1} for d in data]\n\
         def g():\n    return {'a': [1, 2.5, None, True, 'x', {'b': -0.0}], 'big': 10**30}\n\
         def h():\n    return [(1, 2), {1: 'int key'}, float('nan')]\n",
        "data = [{'s': i, 'id': 1} for i in range(1, 100001)]\n\
         assert f(data) == [{'s': math.sqrt(i), 'id': 1} for i in range(1, 100001)]\n\
         v = g()\nassert v == {'a': [1, 2.5, None, True, 'x', {'b': -0.0}], 'big': 10**30}\n\
         assert type(v['a'][0]) is int and type(v['a'][1]) is float and v['a'][3] is True\n\
         assert math.copysign(1, v['a'][5]['b']) == -1\n\
         w = h()\nassert type(w[0]) is tuple and w[1] == {1: 'int key'} and w[2] != w[2]\n",
    );
    assert!(whole.passed(), "{whole:?}");
    assert!(judged.passed(), "{judged:?}");
    assert!(judged.wall < 6.0, "judged took {} s", judged.wall);
}
