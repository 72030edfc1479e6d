"""Judged runs, the candidate's side: after the candidate's code ran in its own sandboxed
process, it announces the names it defined and serves the judge's operations on them (calls,
attribute reads, iteration, indexing, len, str/repr). Follows `judge.py` in the fork server's
source and uses its codec; nothing here decides a verdict.
"""


def _next_batch(it, msg):
    """Candidate side of `_Remote.__next__`: (up to msg["n"] items, the iterator's end when
    reached: {"stop": True} or {"raise": info}, else None)."""
    items = []
    for _ in range(max(1, min(int(msg.get("n", 1)), 1024))):
        try:
            items.append(next(it))
        except StopIteration:
            return items, {"stop": True}
        except Exception as exc:
            return items, {"raise": _exception_info(exc)}
    return items, None


def candidate_serve(ch, globals_, before, top_error):
    """In the candidate's process after its code ran: announces its names, then serves the
    judge's operations until the channel closes. The candidate may have patched anything; this
    loop only hurts the candidate if it breaks."""
    handles = {}
    if top_error is not None:
        ch.send({"error": _exception_info(top_error)})
        return
    names = {}
    for k, v in list(globals_.items()):
        if k in before and before[k] is v:
            continue
        if type(v).__name__ == "module":
            names[k] = {"mod": v.__name__}
        elif callable(v):
            hid = f"c{len(handles)}"
            handles[hid] = v
            names[k] = {"h": hid, "type": type(v).__name__, "cls": _qualname(type(v))}
        else:
            names[k] = encode(v, handles)
    ch.send({"names": names})
    ops = {
        "getattr": lambda o, m: getattr(o, str(m["name"])),
        "iter": lambda o, m: iter(o),
        "next": lambda o, m: next(o),
        "len": lambda o, m: len(o),
        "getitem": lambda o, m: o[_cand_decode(ch, m["key"], handles)],
        "str": lambda o, m: str(o),
        "repr": lambda o, m: repr(o),
    }
    while True:
        try:
            msg = ch.recv()
        except CandidateError:
            return
        try:
            obj = handles[str(msg["h"])]
            op = msg.get("op")
            mut = {}
            if op == "call":
                args = [_cand_decode(ch, a, handles) for a in msg.get("args", [])]
                kwargs = {str(k): _cand_decode(ch, v, handles) for k, v in msg.get("kwargs", [])}
                result = obj(*args, **kwargs)
                named = [(str(i), a) for i, a in enumerate(args)]
                named += [("k:" + k, a) for k, a in kwargs.items()]
                same = [key for key, a in named if a is result and type(a).__name__ in _MUTABLE]
                for key, a in named:
                    if type(a).__name__ in _MUTABLE:
                        try:
                            mut[key] = encode(a, None)
                        except Exception:
                            pass
            elif op == "next_batch":
                items, end = _next_batch(obj, msg)
                reply = {"ok": encode(items, handles), "end": end}
                ch.send(reply)
                continue
            else:
                result = ops[op](obj, msg)
            reply = {"ok": {"arg": same[0]} if same else encode(result, handles)}
            if mut:
                reply["mut"] = mut
        except BaseException as exc:
            reply = {"raise": _exception_info(exc)}
        ch.send(reply)


class _JudgeObject:
    """In the candidate: a stub for a judge object (an argument without a value encoding)."""

    def __init__(self, ch, handles, cid, type_name):
        self._ch, self._handles, self._cid, self._type = ch, handles, cid, type_name

    def _ask(self, op, args=(), kwargs=None, key=None):
        msg = {"cb": self._cid, "op": op}
        if op == "call":
            msg["args"] = [encode(a, self._handles) for a in args]
            msg["kwargs"] = [[k, encode(x, self._handles)] for k, x in (kwargs or {}).items()]
        if key is not None:
            msg["key"] = encode(key, self._handles)
        self._ch.send(msg)
        reply = self._ch.recv()
        if "raise" in reply:
            raise _rebuild_exception(reply["raise"])
        return _cand_decode(self._ch, reply["ok"], self._handles)

    def __call__(self, *args, **kwargs):
        return self._ask("call", args, kwargs)

    def __iter__(self):
        return self._ask("iter")

    def __next__(self):
        return self._ask("next")

    def __len__(self):
        return self._ask("len")

    def __getitem__(self, key):
        return self._ask("getitem", key=key)

    def __str__(self):
        return self._ask("str")

    def __repr__(self):
        return self._ask("repr")


def _cand_decode(ch, v, handles):
    """Decodes a judge argument in the candidate: handles resolve to the candidate's objects,
    judge objects become stubs that call back into the judge."""

    def remote(hid, type_name, cls_name=None):
        if hid.startswith("j"):
            return _JudgeObject(ch, handles, hid, type_name)
        return handles[hid]

    return decode(v, remote)
