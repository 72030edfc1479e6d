# recode-curate's snippet runner (embedded; runs inside the sandbox, one fresh interpreter per
# snippet so import-time warnings are seen). Usage: python -I runner.py NONCE
# Executes ./snippet.py as __main__ with every warning shown, then writes one report line
# "NONCE{json}" to the original stdout. The report is the completion marker: a snippet that
# leaves early (os._exit, a crash) produces none; sys.exit is caught and reported as "exit".
# The snippet's own output goes to /dev/null. Python 3.6+.
import json, os, sys, sysconfig, traceback, warnings

NONCE = sys.argv[1]
report_fd = os.dup(1)
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
os.dup2(devnull, 2)

SITE = sorted(set(os.path.realpath(p) for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])))


def in_site(path):
    if not path:
        return False
    path = os.path.realpath(path)
    return any(path.startswith(s + os.sep) for s in SITE)


seen = []
state = {"emitter": None}
_warn = warnings.warn
_show = warnings.showwarning


def warn(message, category=None, stacklevel=1, *args, **kwargs):
    # The code that called warn() is the warning's author, whatever stacklevel points at.
    state["emitter"] = sys._getframe(1).f_code.co_filename
    try:
        return _warn(message, category, stacklevel + 1, *args, **kwargs)
    finally:
        state["emitter"] = None


def showwarning(message, category, filename, lineno, file=None, line=None):
    emitter = state["emitter"]
    library = in_site(emitter) if emitter else in_site(filename)
    if len(seen) < 50:
        seen.append({"category": category.__name__, "message": str(message)[:300],
                     "filename": os.path.basename(filename or ""), "library": library})


warnings.warn = warn
warnings.showwarning = showwarning
warnings.simplefilter("always")

status, error = "ok", None
try:
    with open("snippet.py") as f:
        source = f.read()
    code = compile(source, "snippet.py", "exec")
    exec(code, {"__name__": "__main__", "__file__": "snippet.py", "__builtins__": __builtins__})
except SystemExit as e:
    status, error = "exit", "SystemExit(%r) before the snippet's last line" % (e.code,)
except BaseException as e:
    status = "error"
    error = traceback.format_exception_only(type(e), e)[-1].strip()[:500]
report = {"status": status, "error": error, "warnings": seen}
os.write(report_fd, ("\n" + NONCE + json.dumps(report) + "\n").encode("utf-8"))
os._exit(0 if status == "ok" else 1)
