"""Judged runs: the verdict is computed in a trusted judge process, never in the candidate's.

Prepended to the fork server's source. For a judged job the server forks two sandboxed processes:
the candidate, which runs the trusted set-up and then the untrusted candidate code and serves
calls; and the judge, which runs the same set-up, binds every name the candidate defined (values
by value, callables and other objects as remote handles) and runs the trusted test code. Values
cross from the candidate as plain data through `decode` (numbers, strings, containers, numpy
arrays and scalars, torch tensors, sympy expressions rebuilt from sympy classes only, a few
stdlib value types): never pickle, never code. Comparisons, assertions and the verdict happen in
the judge, out of the candidate's reach; a handle never forwards comparison or truthiness.
The candidate's side of the channel is `candidate.py`.
"""

import base64 as _b64
import builtins as _builtins
import collections as _collections
import json as _json
import os as _os
import struct as _struct
import sys as _sys

_MappingProxy = type(type.__dict__)  # read-only dict views (e.g. re.Pattern.groupindex)
MAX_FRAME = 2 << 30
MAX_DEPTH = 64


class CandidateError(Exception):
    """An exception raised in the candidate whose type does not exist in the judge, or a broken
    or vanished candidate process."""


# Large byte payloads (array data, bytes) travel as raw attachments after a message's JSON
# header, never as base64 text: `encode` parks them here and `_Channel.send` writes them; the
# attachments of the last message received are what `decode` resolves `{"blob": k}` against.
# One channel user per process at a time (the judge's test code and the candidate's serve loop).
_OUT_BLOBS = []
_IN_BLOBS = []
BLOB_MIN = 4096


def _blob(data):
    """Parks a bytes-like payload for the next message; returns its reference."""
    _OUT_BLOBS.append(memoryview(data).cast("B"))
    return {"blob": len(_OUT_BLOBS) - 1}


def _blob_bytes(v):
    """The payload of a `{"blob": k}` reference in the last message received."""
    k = v["blob"]
    if type(k) is not int or not 0 <= k < len(_IN_BLOBS) or _IN_BLOBS[k] is None:
        raise CandidateError("malformed value: unknown or reused attachment")
    data, _IN_BLOBS[k] = _IN_BLOBS[k], None  # each attachment backs one value only
    return data


class _Channel:
    """Length-prefixed JSON frames, each followed by its raw attachments, over a pair of pipe
    fds."""

    def __init__(self, rfd, wfd):
        self.rfd, self.wfd = rfd, wfd

    def _write(self, data):
        view = memoryview(data)
        while view:
            view = view[_os.write(self.wfd, view):]

    def send(self, obj):
        blobs = list(_OUT_BLOBS)
        del _OUT_BLOBS[:]
        if blobs:
            obj = dict(obj)
            obj["blobs"] = [b.nbytes for b in blobs]
        data = _json.dumps(obj, allow_nan=False).encode()
        self._write(_struct.pack(">I", len(data)) + data)
        for b in blobs:
            self._write(b)

    def _exact(self, n):
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = _os.readv(self.rfd, [view[got:got + (1 << 24)]])
            if not k:
                raise CandidateError("the candidate process ended")
            got += k
        return buf

    def recv(self):
        n = _struct.unpack(">I", self._exact(4))[0]
        if n > MAX_FRAME:
            raise CandidateError(f"candidate frame of {n} bytes")
        try:
            msg = _json.loads(bytes(self._exact(n)))
        except (ValueError, RecursionError) as exc:
            raise CandidateError(f"malformed candidate frame: {exc}") from None
        if not isinstance(msg, dict):
            raise CandidateError("malformed candidate frame")
        sizes = msg.pop("blobs", [])
        if (type(sizes) is not list or any(type(k) is not int or k < 0 for k in sizes)
                or sum(sizes) > MAX_FRAME):
            raise CandidateError("malformed candidate frame: attachments")
        _IN_BLOBS[:] = [self._exact(k) for k in sizes]
        return msg


# ---------------------------------------------------------------- values -----------------------

def _mod(name):
    return _sys.modules.get(name)


def _np_dtype_ok(dt):
    return dt.kind in "biufcUSMm" and not dt.hasobject and dt.names is None and dt.subdtype is None


def _plain(x):
    """Whether `x` is made only of lists, dicts with str keys, str, int, finite float, bool and
    None (exact types), so JSON carries it unchanged."""
    stack = [x]
    push, pop = stack.append, stack.pop
    scalars = (str, int, bool, type(None))
    while stack:
        v = pop()
        t = type(v)
        if t in scalars:
            continue
        if t is float:
            if v - v != 0.0:  # inf or nan
                return False
        elif t is list:
            if len(stack) + len(v) > 1 << 24:
                return False
            stack.extend(v)
        elif t is dict:
            for k, item in v.items():
                if type(k) is not str:
                    return False
                push(item)
        else:
            return False
    return True


def encode(x, handles, depth=0):
    """Plain-data encoding of `x`; objects without one become handles registered in `handles`
    (a dict id -> object, or None where handles are not allowed)."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return {"i": str(x)}
    if t is float:
        return {"f": repr(x)}
    if t is complex:
        return {"c": [repr(x.real), repr(x.imag)]}
    if t is bytes:
        return {"b": _blob(x) if len(x) >= BLOB_MIN else _b64.b64encode(x).decode()}
    if t is bytearray:
        return {"ba": _blob(bytes(x)) if len(x) >= BLOB_MIN else _b64.b64encode(bytes(x)).decode()}
    if depth == 0 and (t is list or t is dict) and _plain(x):
        return {"j": x}  # JSON-native all the way down: the C encoder writes it as it is
    tags = {list: "l", tuple: "t", set: "s", frozenset: "fs"}
    if t in tags:
        return {tags[t]: [encode(v, handles, depth + 1) for v in x]}
    if t is dict:
        return {"d": [[encode(k, handles, depth + 1), encode(v, handles, depth + 1)] for k, v in x.items()]}
    if t is _MappingProxy:
        return {"mp": [[encode(k, handles, depth + 1), encode(v, handles, depth + 1)] for k, v in x.items()]}
    if x is Ellipsis:
        return {"el": 1}
    if t is range:
        return {"rg": [x.start, x.stop, x.step]}
    if t is slice:
        return {"sl": [encode(v, handles, depth + 1) for v in (x.start, x.stop, x.step)]}
    enc = _encode_library(x, t, handles, depth)
    if enc is None:
        enc = _encode_named(x, t)
    if enc is not None:
        return enc
    if handles is None:
        raise TypeError(f"{t.__name__} value cannot cross the sandbox")
    hid = str(len(handles))
    handles[hid] = x
    return {"h": hid, "type": t.__name__, "cls": _qualname(t)}


def _encode_library(x, t, handles, depth):
    np = _mod("numpy")
    mod = getattr(t, "__module__", "") or ""
    if np is not None and isinstance(x, np.ndarray) and t is np.ndarray and _np_dtype_ok(x.dtype):
        arr = np.ascontiguousarray(x)
        if arr.nbytes >= BLOB_MIN:
            data = _blob(arr.reshape(-1).view(np.uint8))
        else:
            data = _b64.b64encode(arr.tobytes()).decode()
        return {"nd": x.dtype.str, "shape": list(x.shape), "data": data}
    if np is not None and isinstance(x, np.generic) and _np_dtype_ok(x.dtype) and mod == "numpy":
        return {"ns": x.dtype.str, "data": _b64.b64encode(x.tobytes()).decode()}
    torch = _mod("torch")
    if torch is not None and t is torch.Tensor and x.layout == torch.strided and x.device.type == "cpu":
        name = str(x.dtype).replace("torch.", "")
        base = x.detach()
        wide = base.float() if name == "bfloat16" else base
        # .numpy() makes a tensor's storage unresizable for good: export a copy, never the
        # sender's own storage (an `out=` buffer must stay resizable)
        arr = wide.clone(memory_format=torch.contiguous_format).numpy()
        if not _np_dtype_ok(arr.dtype):
            return None
        return {"tt": name, "grad": bool(x.requires_grad),
                "v": _encode_library(arr, type(arr), handles, depth)}
    if mod.startswith("sympy"):
        sympy = _mod("sympy")
        if sympy is not None and isinstance(x, (sympy.Basic, sympy.MatrixBase)):
            enc = {"sym": sympy.srepr(x)}
            # srepr drops the assumptions of undefined functions (Function('f', real=True))
            kws = {}
            for a in (x.atoms(sympy.core.function.AppliedUndef) if hasattr(x, "atoms") else ()):
                kw = {str(k): b for k, b in (getattr(type(a), "_kwargs", None) or {}).items() if type(b) is bool}
                if kw:
                    kws[str(type(a).__name__)] = kw
            if kws:
                enc["fk"] = kws
            return enc
        undefined = getattr(getattr(sympy, "core", None), "function", None)
        undefined = getattr(undefined, "UndefinedFunction", None)
        if undefined is not None and t is undefined:
            kw = {str(k): v for k, v in (getattr(x, "_kwargs", None) or {}).items() if type(v) is bool}
            return {"symfn": str(x.__name__), "kw": kw}
    if mod in ("fractions", "decimal", "datetime", "collections"):
        import collections
        import datetime
        import decimal
        import fractions
        if t is fractions.Fraction:
            return {"fr": [str(x.numerator), str(x.denominator)]}
        if t is decimal.Decimal:
            return {"dec": str(x)}
        if t in (datetime.datetime, datetime.date, datetime.time) and getattr(x, "tzinfo", None) is None:
            return {"dt": t.__name__, "iso": x.isoformat()}
        if t is datetime.timedelta:
            return {"td": [x.days, x.seconds, x.microseconds]}
        pairs = lambda: [[encode(k, handles, depth + 1), encode(v, handles, depth + 1)] for k, v in x.items()]  # noqa: E731
        if t is collections.OrderedDict:
            return {"od": pairs()}
        if t is collections.Counter:
            return {"ctr": pairs()}
        if t is collections.defaultdict:
            factory = x.default_factory
            fname = factory.__name__ if factory in (list, int, set, dict, str, float, tuple) else None
            return {"dd": pairs(), "f": fname}
        if t is collections.deque:
            return {"dq": [encode(v, handles, depth + 1) for v in x], "max": x.maxlen}
    return None


def _qualname(obj):
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"


def _resolve(name):
    """The object `module:qualname` names in an already imported module (or builtins); never
    imports and never runs code of the sender."""
    module, _, qual = str(name).partition(":")
    obj = _builtins if module == "builtins" else _sys.modules.get(module)
    for part in qual.split("."):
        if obj is None or not part.isidentifier() or part.startswith("__"):
            return None
        obj = getattr(obj, part, None)
    return obj


def _encode_named(x, t):
    """Types, enum members, numpy dtypes, torch dtypes and compiled regexes, sent by name."""
    import enum
    import re
    np, torch = _mod("numpy"), _mod("torch")
    if isinstance(x, type) and _resolve(_qualname(x)) is x:
        return {"ty": _qualname(x)}
    if isinstance(x, enum.Enum) and _resolve(_qualname(t)) is t:
        return {"en": _qualname(t), "v": encode(x.value, None)}
    if np is not None and t.__module__.startswith("numpy") and isinstance(x, np.dtype) and _np_dtype_ok(x):
        return {"npdt": x.str}
    if torch is not None and t is torch.dtype:
        return {"tdt": str(x).replace("torch.", "")}
    if t is re.Pattern:
        return {"re": encode(x.pattern, None), "fl": x.flags}
    return None


def _decode_named(v):
    import enum
    import re
    if "ty" in v:
        obj = _resolve(v["ty"])
        if not isinstance(obj, type):
            raise CandidateError(f"unknown type {v['ty']!r}")
        return obj
    if "en" in v:
        cls = _resolve(v["en"])
        if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
            raise CandidateError(f"unknown enum {v['en']!r}")
        return cls(decode(v["v"]))
    if "npdt" in v:
        np = _mod("numpy")
        dt = np.dtype(str(v["npdt"]))
        if not _np_dtype_ok(dt):
            raise CandidateError(f"numpy dtype {dt} cannot cross the sandbox")
        return dt
    if "tdt" in v:
        torch = _mod("torch")
        dt = getattr(torch, str(v["tdt"]), None) if torch is not None else None
        if not isinstance(dt, torch.dtype):
            raise CandidateError("unknown torch dtype")
        return dt
    if "re" in v:
        return re.compile(decode(v["re"]), int(v["fl"]))
    return None


def _sympy_rebuild(text, function_kw=None):
    """Rebuilds a sympy object from its srepr, calling sympy classes only (no eval);
    `function_kw` gives undefined functions their assumptions by name (booleans only)."""
    import ast
    sympy = _mod("sympy")
    if sympy is None:
        raise CandidateError("sympy value without sympy in the judge")

    def build(node, depth=0):
        if depth > MAX_DEPTH * 4:
            raise CandidateError("sympy value nested too deeply")
        if isinstance(node, ast.Constant) and type(node.value) in (int, float, str, bool, type(None)):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -build(node.operand, depth + 1)
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [build(e, depth + 1) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            return {build(k, depth + 1): build(v, depth + 1) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Call):
            # an applied undefined function: Function('f')(x)
            fn = build(node.func, depth + 1)
            if not isinstance(fn, sympy.FunctionClass):
                raise CandidateError("sympy value calls a non-function")
            return fn(*[build(a, depth + 1) for a in node.args])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            cls = getattr(sympy, node.func.id, None)
            if not (isinstance(cls, type) and issubclass(cls, (sympy.Basic, sympy.MatrixBase))):
                raise CandidateError(f"sympy value names {node.func.id!r}")
            args = [build(a, depth + 1) for a in node.args]
            kwargs = {k.arg: build(k.value, depth + 1) for k in node.keywords if k.arg}
            if cls is sympy.Function and len(args) == 1 and not kwargs and function_kw:
                extra = function_kw.get(args[0]) or {}
                kwargs = {str(k): b for k, b in extra.items() if type(b) is bool}
            return cls(*args, **kwargs)
        if isinstance(node, ast.Name) or (isinstance(node, ast.Attribute)
                                          and isinstance(node.value, ast.Name) and node.value.id == "S"):
            obj = getattr(sympy.S if isinstance(node, ast.Attribute) else sympy,
                          node.attr if isinstance(node, ast.Attribute) else node.id, None)
            if isinstance(obj, sympy.Basic):
                return obj
        raise CandidateError("unexpected sympy value")

    return build(ast.parse(text, mode="eval").body)


def _check_plain(x):
    """A value sent as plain JSON, as json.loads built it (plain types only); bounded depth."""
    stack = [(x, 0)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH * 4:
            raise CandidateError("value nested too deeply")
        if type(v) is list:
            stack.extend((e, d + 1) for e in v)
        elif type(v) is dict:
            stack.extend((e, d + 1) for e in v.values())
    return x


def _raw(data):
    """Bytes of an encoded payload: inline base64 text or an attachment reference, as a fresh
    bytearray."""
    if type(data) is dict:
        return _blob_bytes(data)
    if type(data) is not str:
        raise CandidateError("malformed value: payload")
    return bytearray(_b64.b64decode(data))


def decode(v, remote=None, depth=0):
    """Inverse of `encode` for trusted use: builds only plain values and library values; handle
    references become `remote(hid, type)` (None: handles are refused)."""
    if depth > MAX_DEPTH:
        raise CandidateError("value nested too deeply")
    if v is None or type(v) in (bool, str):
        return v
    if type(v) is not dict or len(v) < 1:
        raise CandidateError("malformed value")
    d = lambda x: decode(x, remote, depth + 1)  # noqa: E731
    if "j" in v:
        return _check_plain(v["j"])
    if "i" in v:
        return int(v["i"])
    if "f" in v:
        return float(v["f"])
    if "c" in v:
        return complex(float(v["c"][0]), float(v["c"][1]))
    if "b" in v:
        return bytes(_raw(v["b"]))
    if "ba" in v:
        return bytearray(_raw(v["ba"]))
    for tag, build in (("l", list), ("t", tuple), ("s", set), ("fs", frozenset)):
        if tag in v:
            return build(d(e) for e in v[tag])
    if "d" in v:
        return {d(k): d(x) for k, x in v["d"]}
    if "mp" in v:
        return _MappingProxy({d(k): d(x) for k, x in v["mp"]})
    if "el" in v:
        return Ellipsis
    if "rg" in v:
        return range(*(int(n) for n in v["rg"]))
    if "sl" in v:
        return slice(*(d(e) for e in v["sl"]))
    if "nd" in v or "ns" in v:
        np = _mod("numpy")
        if np is None:
            raise CandidateError("numpy value without numpy in the judge")
        dt = np.dtype(v.get("nd") or v["ns"])
        if not _np_dtype_ok(dt):
            raise CandidateError(f"numpy dtype {dt} cannot cross the sandbox")
        raw = _raw(v["data"])
        if "ns" in v:
            return np.frombuffer(raw, dtype=dt)[0]
        shape = tuple(int(n) for n in v["shape"])
        # a fresh bytearray (decoded text or this message's attachment): the array owns it
        return np.frombuffer(raw, dtype=dt).reshape(shape)
    if "tt" in v:
        torch = _mod("torch")
        if torch is None:
            raise CandidateError("torch value without torch in the judge")
        dtype = getattr(torch, str(v["tt"]), None)
        if not isinstance(dtype, torch.dtype):
            raise CandidateError("malformed torch value")
        t = torch.from_numpy(d(v["v"])).to(dtype).clone()
        return t.requires_grad_(True) if v.get("grad") else t
    if "sym" in v:
        fk = v.get("fk") or {}
        if type(fk) is not dict or any(type(k) is not dict for k in fk.values()):
            raise CandidateError("malformed sympy value")
        return _sympy_rebuild(str(v["sym"]), fk)
    if "symfn" in v:
        sympy = _mod("sympy")
        kw = v.get("kw") or {}
        if sympy is None or type(kw) is not dict or any(type(b) is not bool for b in kw.values()):
            raise CandidateError("malformed sympy function")
        return sympy.Function(str(v["symfn"]), **{str(k): b for k, b in kw.items()})
    if "fr" in v:
        import fractions
        return fractions.Fraction(int(v["fr"][0]), int(v["fr"][1]))
    if "dec" in v:
        import decimal
        return decimal.Decimal(str(v["dec"]))
    if "dt" in v:
        import datetime
        cls = {"datetime": datetime.datetime, "date": datetime.date, "time": datetime.time}[v["dt"]]
        return cls.fromisoformat(str(v["iso"]))
    if "td" in v:
        import datetime
        return datetime.timedelta(*(int(n) for n in v["td"]))
    if "od" in v or "ctr" in v or "dd" in v or "dq" in v:
        import collections
        if "dq" in v:
            return collections.deque((d(e) for e in v["dq"]), v.get("max"))
        items = [(d(k), d(x)) for k, x in (v.get("od") or v.get("ctr") or v.get("dd"))]
        if "od" in v:
            return collections.OrderedDict(items)
        if "ctr" in v:
            return collections.Counter(dict(items))
        factory = {"list": list, "int": int, "set": set, "dict": dict, "str": str,
                   "float": float, "tuple": tuple}.get(v.get("f"))
        return collections.defaultdict(factory, items)
    if "ty" in v or "en" in v or "npdt" in v or "tdt" in v or "re" in v:
        return _decode_named(v)
    if "h" in v and remote is not None:
        cls = v.get("cls")
        return remote(str(v["h"]), str(v.get("type", "object")), cls if type(cls) is str else None)
    if "cb" in v and remote is not None:
        return remote(str(v["cb"]), str(v.get("type", "object")))
    raise CandidateError("unknown value")


def _exception_info(exc):
    try:
        args = encode(list(exc.args), None)
    except Exception:
        args = None
    t = type(exc)
    return {"type": t.__name__, "module": getattr(t, "__module__", ""), "message": str(exc),
            "args": args}


def _rebuild_exception(info):
    """An exception of the candidate's type when the judge has that type (builtins or an already
    imported module), else CandidateError; never a type the candidate could define."""
    name, module = str(info.get("type", "")), str(info.get("module", ""))
    cls = getattr(_builtins, name, None) if module == "builtins" else None
    if cls is None and module in _sys.modules:
        cls = getattr(_sys.modules[module], name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return CandidateError(f"{name}: {info.get('message', '')}")
    try:
        args = decode(info["args"]) if info.get("args") is not None else [info.get("message", "")]
        return cls(*args)
    except Exception:
        exc = cls.__new__(cls)
        exc.args = (str(info.get("message", "")),)
        return exc


# ---------------------------------------------------------------- judge side -------------------

def _VALUE_BASES():
    """Classes whose instances cross as values: a handle never claims to be one of them."""
    bases = [int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset,
             range, slice, type, BaseException, _MappingProxy]
    for mod, names in (("numpy", ("ndarray", "generic", "dtype")), ("torch", ("Tensor", "dtype")),
                       ("sympy", ("Basic", "MatrixBase"))):
        m = _mod(mod)
        bases.extend(getattr(m, n) for n in names if m is not None and isinstance(getattr(m, n, None), type))
    return tuple(bases)


class _Remote:
    """A candidate object seen from the judge. Calls, attribute reads, iteration, indexing, len,
    str and repr are forwarded and their results come back as plain data; equality, ordering,
    hashing and truthiness are the judge's own (identity), never the candidate's."""

    __slots__ = ("_link", "_hid", "_type", "_cls", "_ahead", "_batch")

    def __init__(self, link, hid, type_name, cls_name=None):
        object.__setattr__(self, "_link", link)
        object.__setattr__(self, "_hid", hid)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_cls", cls_name)
        object.__setattr__(self, "_ahead", None)
        object.__setattr__(self, "_batch", 1)

    @property
    def __class__(self):
        """The candidate object's class for `isinstance` (e.g. `re.Match`), when it names a
        class of an already imported module whose instances have no value encoding; a claim
        buys nothing a real object of that class would not (comparisons stay identity)."""
        cls = _resolve(self._cls) if self._cls else None
        if isinstance(cls, type) and not issubclass(cls, _VALUE_BASES()):
            return cls
        return _Remote

    def _ask(self, op, **kw):
        return self._link.request(op, self._hid, **kw)

    def __call__(self, *args, **kwargs):
        return self._link.call(self._hid, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._ask("getattr", name=name)

    def __iter__(self):
        return self._ask("iter")

    def __next__(self):
        """Items come in batches that double from 1 up to 1024 (a 100k-item iterator costs ~100
        round trips, not 100k); the iterator's end or exception comes after its items, in order."""
        ahead = self._ahead
        if not ahead:
            items, end = self._link.next_batch(self._hid, self._batch)
            object.__setattr__(self, "_batch", min(self._batch * 2, 1024))
            ahead = _collections.deque(items)
            if end is not None:
                ahead.append(end)
            object.__setattr__(self, "_ahead", ahead)
        item = ahead.popleft()
        if type(item) is _IterEnd:
            ahead.append(item)  # an exhausted iterator stays exhausted
            raise item.exc
        return item

    def __len__(self):
        n = self._ask("len")
        if type(n) is not int or n < 0:
            raise TypeError("candidate returned an invalid length")
        return n

    def __getitem__(self, key):
        return self._ask("getitem", key=key)

    def __str__(self):
        return self._text("str")

    def __repr__(self):
        return self._text("repr")

    def _text(self, op):
        s = self._ask(op)
        return s if type(s) is str else f"<candidate {self._type}>"

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    __hash__ = object.__hash__

    def __bool__(self):
        return True


class _IterEnd:
    """The end of a remote iterator, queued after its last items."""

    def __init__(self, exc):
        self.exc = exc


class _Link:
    """The judge's end of the channel: forwards operations, answers callbacks into the judge."""

    def __init__(self, ch):
        self.ch = ch
        self.callbacks = {}

    def _enc(self, x):
        if isinstance(x, _Remote):
            return {"h": x._hid}
        try:
            return encode(x, None)
        except (TypeError, ValueError):
            # Judge objects without a value encoding (iterators, callables, ...) stay here;
            # the candidate gets a stub that can call or iterate them, never read attributes.
            cid = f"j{len(self.callbacks)}"
            self.callbacks[cid] = x
            return {"cb": cid, "type": type(x).__name__}

    def _deep(self, x, depth=0):
        """Encodes an argument, with judge callables and handles nested in containers."""
        if depth > MAX_DEPTH:
            raise ValueError("argument nested too deeply")
        t = type(x)
        if depth == 0 and (t is list or t is dict) and _plain(x):
            return {"j": x}
        if t in (list, tuple, set, frozenset):
            tag = {list: "l", tuple: "t", set: "s", frozenset: "fs"}[t]
            return {tag: [self._deep(v, depth + 1) for v in x]}
        if t is dict:
            return {"d": [[self._deep(k, depth + 1), self._deep(v, depth + 1)] for k, v in x.items()]}
        return self._enc(x)

    def remote(self, hid, type_name, cls_name=None):
        return _Remote(self, hid, type_name, cls_name)

    def call(self, hid, args, kwargs):
        enc_args = [self._deep(a) for a in args]
        enc_kw = [[k, self._deep(v)] for k, v in kwargs.items()]
        reply = self._exchange({"op": "call", "h": hid, "args": enc_args, "kwargs": enc_kw})
        mut = reply.get("mut") or {}
        if type(mut) is not dict:
            raise CandidateError("malformed candidate reply")
        for key, new in mut.items():
            _write_back(_argument(args, kwargs, key), self.decode(new))
        ok = reply["ok"]
        if type(ok) is dict and "arg" in ok:
            # the candidate returned one of its arguments (e.g. an `out=` buffer): the judge's
            # own object, with the candidate's changes copied in
            return _argument(args, kwargs, ok["arg"])
        return self.decode(ok)

    def request(self, op, hid, **kw):
        msg = {"op": op, "h": hid}
        if "name" in kw:
            msg["name"] = str(kw["name"])
        if "key" in kw:
            msg["key"] = self._deep(kw["key"])
        return self.decode(self._exchange(msg)["ok"])

    def decode(self, v):
        return decode(v, self.remote)

    def next_batch(self, hid, n):
        """Up to `n` next items of candidate iterator `hid`, and its end (StopIteration or the
        exception it raised) when reached, as an `_IterEnd`, else None."""
        reply = self._exchange({"op": "next_batch", "h": hid, "n": int(n)})
        items = self.decode(reply["ok"])
        if type(items) is not list or len(items) > n:
            raise CandidateError("malformed candidate reply")
        end = reply.get("end")
        if end is None:
            return items, None
        if type(end) is dict and "raise" in end:
            info = end["raise"] if isinstance(end["raise"], dict) else {}
            return items, _IterEnd(_rebuild_exception(info))
        return items, _IterEnd(StopIteration())

    def _exchange(self, msg):
        self.ch.send(msg)
        while True:
            reply = self.ch.recv()
            if "cb" in reply:
                self._answer_callback(reply)
                continue
            if "raise" in reply:
                raise _rebuild_exception(reply["raise"] if isinstance(reply["raise"], dict) else {})
            if "ok" not in reply:
                raise CandidateError("malformed candidate reply")
            return reply

    def _answer_callback(self, req):
        """Serves the candidate's operation on a judge object: call, iteration, len, indexing,
        str and repr only (no attribute access: the candidate cannot walk into the judge)."""
        obj = self.callbacks.get(str(req["cb"]))
        op = req.get("op", "call")
        try:
            if obj is None:
                raise CandidateError("unknown judge object")
            if op == "call":
                args = [self.decode(a) for a in req.get("args", [])]
                kwargs = {str(k): self.decode(v) for k, v in req.get("kwargs", [])}
                result = obj(*args, **kwargs)
            elif op in _JUDGE_OPS:
                key = self.decode(req["key"]) if "key" in req else None
                result = _JUDGE_OPS[op](obj, key)
            else:
                raise CandidateError(f"operation {op!r} on a judge object")
            self.ch.send({"ok": self._deep(result)})
        except BaseException as exc:  # the judge object's exception goes back to the candidate
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) or type(exc).__name__ == "TimeoutException":
                raise
            self.ch.send({"raise": _exception_info(exc)})


_JUDGE_OPS = {
    "iter": lambda o, k: iter(o),
    "next": lambda o, k: next(o),
    "len": lambda o, k: len(o),
    "getitem": lambda o, k: o[k],
    "str": lambda o, k: str(o),
    "repr": lambda o, k: repr(o),
}


def _argument(args, kwargs, key):
    """The judge's argument a candidate reply names: `"3"` (positional) or `"k:name"`."""
    key = str(key)
    try:
        return kwargs[key[2:]] if key.startswith("k:") else args[int(key)]
    except (KeyError, IndexError, ValueError):
        raise CandidateError(f"candidate reply names no argument {key!r}") from None


_MUTABLE = ("list", "dict", "set", "bytearray", "ndarray", "Tensor")


def _write_back(target, new):
    """Copies the candidate's in-place changes of a mutable argument into the judge's object."""
    np = _mod("numpy")
    torch = _mod("torch")
    t = type(target)
    if torch is not None and t is torch.Tensor and type(new) is torch.Tensor:
        with torch.no_grad():
            if target.shape != new.shape:
                target.resize_(new.shape)
            target.copy_(new.to(target.dtype))
        return
    if t is list and type(new) is list:
        target[:] = new
    elif t is dict and type(new) is dict:
        target.clear()
        target.update(new)
    elif t is set and type(new) is set:
        target.clear()
        target.update(new)
    elif t is bytearray and type(new) is bytearray:
        target[:] = new
    elif np is not None and t is np.ndarray and type(new) is np.ndarray and new.shape == target.shape:
        target[...] = new


def judge_bind(ch, globals_):
    """Waits for the candidate's names and binds them into the judge's globals. Returns None, or
    the candidate's top-level exception (re-created) when its code raised."""
    link = _Link(ch)
    msg = ch.recv()
    if "error" in msg:
        info = msg["error"] if isinstance(msg["error"], dict) else {}
        return _rebuild_exception(info)
    names = msg.get("names")
    if not isinstance(names, dict):
        raise CandidateError("malformed candidate names")
    import importlib
    for name, enc in names.items():
        if not isinstance(name, str) or not name.isidentifier():
            continue
        if isinstance(enc, dict) and "mod" in enc:
            modname = str(enc["mod"])
            try:
                globals_[name] = _sys.modules.get(modname) or importlib.import_module(modname)
            except Exception:
                pass
            continue
        globals_[name] = link.decode(enc)
    return None
