# recode-curate's changelog reader (embedded; trusted stdlib code, no package imported).
# Usage: python -I changelog.py SDIST  ->  prints {"files": {path: text}} for the change-log
# files of a source distribution (.tar.gz, .tar.bz2, .zip): CHANGES*, CHANGELOG*, HISTORY*,
# NEWS*, RELEASE* at any depth up to 4, and docs/*change*/* pages.
#        python -I changelog.py --fetch DIST VERSION DEST INDEX_URL  ->  downloads the sdist of
# DIST==VERSION from the simple index (PEP 503) into DEST and prints its path. Unlike
# `pip download --no-binary`, nothing is built (numpy's would compile its build backend).
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


def fetch(dist, version, dest, index):
    import urllib.request
    from urllib.parse import urljoin

    name = re.sub(r"[-_.]+", "-", dist).lower()
    page_url = index.rstrip("/") + "/" + name + "/"
    with urllib.request.urlopen(page_url, timeout=60) as r:
        page = r.read().decode("utf-8", "replace")
    stem = re.compile(r"^%s-%s\.(tar\.gz|zip|tar\.bz2)$" % (re.sub(r"[-_.]+", "[-_.]", re.escape(name)), re.escape(version)), re.I)
    for href in re.findall(r'href="([^"]+)"', page):
        url = urljoin(page_url, href.replace("&amp;", "&"))
        fname = url.split("#")[0].split("?")[0].rsplit("/", 1)[-1]
        if stem.match(fname):
            os.makedirs(dest, exist_ok=True)
            target = os.path.join(dest, fname)
            with urllib.request.urlopen(url, timeout=300) as r, open(target + ".part", "wb") as f:
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
            os.replace(target + ".part", target)
            sys.stdout.write(target)
            return
    raise SystemExit("no sdist of %s %s on %s" % (dist, version, page_url))


def main():
    if sys.argv[1] == "--fetch":
        fetch(*sys.argv[2:6])
        return
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
