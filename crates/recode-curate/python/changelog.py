# recode-curate's changelog reader (embedded; trusted stdlib code, no package imported).
# Usage: python -I changelog.py SDIST  ->  prints {"files": {path: text}} for the change-log
# files of a source distribution (.tar.gz, .tar.bz2, .zip): CHANGES*, CHANGELOG*, HISTORY*,
# NEWS*, RELEASE* at any depth up to 4, and docs/*change*/* pages.
import json, os, re, sys, tarfile, zipfile

NAME = re.compile(r"^(changes|changelog|change_log|history|news|releases?|release-notes)([-_.].*)?$", re.I)


def wanted(path):
    parts = path.split("/")
    if len(parts) > 5:
        return False
    base = parts[-1]
    if not base or base.endswith((".py", ".pyc", ".html", ".js", ".css", ".png")):
        return False
    if NAME.match(base):
        return True
    return any("change" in p.lower() for p in parts[1:-1]) and base.endswith((".rst", ".md", ".txt"))


def main():
    path = sys.argv[1]
    files = {}
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if wanted(n) and z.getinfo(n).file_size < 2000000:
                    files[n] = z.read(n).decode("utf-8", "replace")
    else:
        with tarfile.open(path) as t:
            for m in t.getmembers():
                if m.isfile() and wanted(m.name) and m.size < 2000000:
                    files[m.name] = t.extractfile(m).read().decode("utf-8", "replace")
    sys.stdout.write(json.dumps({"files": files}))


main()
