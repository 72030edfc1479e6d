# recode-curate's introspection snapshot (embedded in the crate; trusted library code only).
# Runs inside a virtualenv holding one version of a distribution and prints one JSON object:
#   top_level: the distribution's importable top-level modules (from its RECORD)
#   modules: {name: null | "ImportError: ..."}   (a submodule that fails to import is recorded)
#   symbols: [{id, paths, kind, signature, params, doc_deprecated, warnings, owner, exported}]
#   (exported: listed in some module's __all__)
# Usage: python -I snapshot.py DIST [MODULE ...] [--top-level-only]
# Works on Python 3.6+ (no walrus, no positional-only syntax).
import importlib, inspect, json, os, pkgutil, re, sys, types, warnings

DIST = sys.argv[1]
ARGS = [a for a in sys.argv[2:] if not a.startswith("--")]
TOP_ONLY = "--top-level-only" in sys.argv
SKIP_PARTS = {"tests", "test", "testing", "conftest", "_vendor", "vendor", "__main__", "setup",
              "examples", "example", "demo", "demos", "benchmarks", "docs"}
IMPORT_SECONDS = 15


class ImportTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise ImportTimeout("import took longer than %d s" % IMPORT_SECONDS)


def import_bounded(name):
    """Imports a module, giving up after IMPORT_SECONDS (a module that waits or loops at import)."""
    import signal
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(IMPORT_SECONDS)
    try:
        return importlib.import_module(name)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_info():
    for base in sys.path:
        if not os.path.isdir(base):
            continue
        for entry in os.listdir(base):
            if not entry.endswith(".dist-info"):
                continue
            meta = os.path.join(base, entry, "METADATA")
            try:
                with open(meta, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        if line.startswith("Name:"):
                            if norm(line[5:].strip()) == norm(DIST):
                                return base, os.path.join(base, entry)
                            break
            except OSError:
                pass
    return None, None


def top_level_modules():
    base, info = dist_info()
    if info is None:
        raise SystemExit("distribution %r is not installed" % DIST)
    tops = set()
    tl = os.path.join(info, "top_level.txt")
    record = os.path.join(info, "RECORD")
    if os.path.exists(record):
        with open(record, encoding="utf-8") as f:
            for line in f:
                path = line.split(",")[0]
                first = path.split("/")[0]
                if first.endswith((".dist-info", ".data")) or first in ("..", "__pycache__"):
                    continue
                if "/" in path:
                    if os.path.exists(os.path.join(base, first, "__init__.py")) or path.endswith(".py"):
                        tops.add(first)
                elif path.endswith(".py"):
                    tops.add(first[:-3])
    if not tops and os.path.exists(tl):
        with open(tl) as f:
            tops = set(l.strip() for l in f if l.strip())
    return sorted(t for t in tops if not t.startswith("_") and t.isidentifier()), base


def warn_record(w, site):
    fn = os.path.abspath(w.filename) if w.filename else ""
    return {"category": w.category.__name__, "message": str(w.message)[:500],
            "in_library": bool(site) and fn.startswith(site)}


def param_info(sig):
    out = []
    for p in sig.parameters.values():
        d = None if p.default is inspect.Parameter.empty else repr(p.default)[:200]
        out.append({"name": p.name, "kind": p.kind.name, "has_default": p.default is not inspect.Parameter.empty,
                    "default": d})
    return out


def signature_of(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None, None
    return str(sig)[:500], param_info(sig)


def kind_of(obj):
    if isinstance(obj, types.ModuleType):
        return "module"
    if type(obj).__name__ == "TypeVar":
        return "typevar"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isroutine(obj) or callable(obj):
        return "function"
    return "constant"


def doc_deprecated(obj):
    try:
        doc = inspect.getdoc(obj) or ""
    except Exception:
        doc = ""
    return bool(re.search(r"\bdeprecated\b", doc, re.I))


def main():
    # Imported modules may print (banners, warnings to stdout): only the JSON goes to stdout.
    out_stream = sys.stdout
    sys.stdout = sys.stderr
    tops, site = top_level_modules()
    if TOP_ONLY:
        out_stream.write(json.dumps({"top_level": tops}))
        return
    roots = ARGS or tops
    modules = {}
    names = []
    for root in roots:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            try:
                mod = import_bounded(root)
            except Exception as e:
                modules[root] = "%s: %s" % (type(e).__name__, e)
                continue
        modules[root] = None
        names.append(root)
        path = getattr(mod, "__path__", None)
        if path is None:
            continue
        # Walked by hand: pkgutil.walk_packages imports every package to find its children,
        # skipped ones included (pygame.tests, pygame.examples wait or loop at import).
        stack = [(path, root + ".")]
        while stack:
            where, prefix = stack.pop()
            for info in sorted(pkgutil.iter_modules(where, prefix), key=lambda i: i.name):
                last = info.name.rsplit(".", 1)[-1]
                if last.startswith("_") or last in SKIP_PARTS:
                    continue
                with warnings.catch_warnings(record=True):
                    warnings.simplefilter("always")
                    try:
                        sub = import_bounded(info.name)
                    except BaseException as e:
                        modules[info.name] = "%s: %s" % (type(e).__name__, str(e)[:200])
                        continue
                modules[info.name] = None
                names.append(info.name)
                if info.ispkg and getattr(sub, "__path__", None) is not None:
                    stack.append((sub.__path__, info.name + "."))
    own = tuple(tops)

    def in_package(modname):
        return bool(modname) and modname.split(".")[0] in own

    symbols = {}

    def add(sid, path, obj, kind, warns, owner=None, exported=False):
        s = symbols.get(sid)
        if s is None:
            sig, params = (None, None)
            if kind in ("class", "exception", "function", "method", "classmethod", "staticmethod"):
                sig, params = signature_of(obj)
            s = {"id": sid, "paths": [], "kind": kind, "signature": sig, "params": params,
                 "doc_deprecated": doc_deprecated(obj) if kind != "constant" else False,
                 "warnings": [], "owner": owner, "exported": False}
            symbols[sid] = s
        s["exported"] = s["exported"] or exported
        if path not in s["paths"]:
            s["paths"].append(path)
        for w in warns:
            if w not in s["warnings"]:
                s["warnings"].append(w)
        return s

    def get(holder, name):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                obj = getattr(holder, name)
            except Exception:
                return None, None
        return obj, [warn_record(w, site) for w in caught]

    classes = []
    for modname in names:
        mod = sys.modules[modname]
        public = getattr(mod, "__all__", None)
        explicit = isinstance(public, (list, tuple))
        if not explicit:
            public = [n for n in dir(mod) if not n.startswith("_")]
        for name in public:
            if not isinstance(name, str) or name.startswith("_"):
                continue
            obj, warns = get(mod, name)
            if obj is None and warns is None:
                continue
            kind = kind_of(obj)
            if kind == "module" or type(obj).__module__ == "__future__":
                continue  # submodules; `from __future__ import ...` compiler flags
            defmod = getattr(obj, "__module__", None) if kind != "constant" else modname
            if kind != "constant" and not in_package(defmod if isinstance(defmod, str) else ""):
                continue  # stdlib or third-party re-export
            qual = getattr(obj, "__qualname__", None) if kind != "constant" else None
            sid = "%s:%s" % (defmod, qual) if isinstance(qual, str) and kind != "typevar" else "%s:%s" % (modname, name)
            add(sid, modname + "." + name, obj, kind, warns, exported=explicit)
            if kind in ("class", "exception"):
                classes.append((modname + "." + name, obj, sid))
    for cpath, cls, cid in classes:
        for name in sorted(dir(cls)):
            if name.startswith("_"):
                continue
            owner = None
            raw = None
            for base in inspect.getmro(cls):
                if name in vars(base):
                    owner, raw = base, vars(base)[name]
                    break
            if owner is None or not in_package(getattr(owner, "__module__", "")):
                continue
            if isinstance(raw, property):
                kind = "property"
            elif isinstance(raw, classmethod):
                kind = "classmethod"
            elif isinstance(raw, staticmethod):
                kind = "staticmethod"
            elif inspect.isfunction(raw):
                kind = "method"
            elif inspect.isclass(raw):
                kind = "class"
            else:
                kind = "attribute"
            obj, warns = get(cls, name) if kind != "property" else (raw, [])
            if obj is None and warns is None:
                continue
            sid = "%s:%s.%s" % (owner.__module__, owner.__qualname__, name)
            add(sid, cpath + "." + name, raw.__func__ if kind in ("classmethod", "staticmethod") and hasattr(raw, "__func__") else obj,
                kind, warns or [], owner="%s:%s" % (owner.__module__, owner.__qualname__))
    out = {"top_level": tops, "python": "%d.%d.%d" % tuple(sys.version_info[:3]),
           "modules": modules, "symbols": sorted(symbols.values(), key=lambda s: s["id"])}
    out_stream.write(json.dumps(out))


main()
