//! Changelog evidence (`mine --sdist`): the new version's source distribution from the
//! registry, its change-log files (`python/changelog.py`, stdlib only), the section between the
//! new and the old version's headings, and the lines of it that name each change's symbol.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::diff::{leaf, ApiChange};
use crate::snapshot::run_trusted;

/// The embedded change-log reader.
pub const CHANGELOG_PY: &str = include_str!("../python/changelog.py");

/// Lines kept per change.
const LINES_PER_CHANGE: usize = 5;

/// The sdist of `dist==version` (downloaded once into `dest`) from the simple index named by
/// `$PIP_INDEX_URL` (default PyPI), read with `python`'s stdlib: nothing is built.
pub fn fetch_sdist(
    python: &Path,
    dist: &str,
    version: &str,
    dest: &Path,
) -> Result<PathBuf, String> {
    let cached = std::fs::read_dir(dest).ok().and_then(|d| {
        d.flatten().map(|e| e.path()).find(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".tar.gz") || n.ends_with(".zip") || n.ends_with(".tar.bz2")
        })
    });
    if let Some(p) = cached {
        return Ok(p);
    }
    let index = std::env::var("PIP_INDEX_URL").unwrap_or_else(|_| "https://pypi.org/simple".into());
    let dest_s = dest.to_string_lossy().into_owned();
    let args = [
        "-I",
        "-c",
        CHANGELOG_PY,
        "--fetch",
        dist,
        version,
        &dest_s,
        &index,
    ];
    let out = run_trusted(python, &args, Duration::from_secs(300))
        .map_err(|e| format!("sdist of {dist} {version}: {e}"))?;
    Ok(PathBuf::from(out.trim()))
}

/// Change-log files of an sdist: path inside the archive -> text.
pub fn read_changelogs(python: &Path, sdist: &Path) -> Result<Vec<(String, String)>, String> {
    #[derive(Deserialize)]
    struct Files {
        files: std::collections::BTreeMap<String, String>,
    }
    let sdist_s = sdist.to_string_lossy().into_owned();
    let out = run_trusted(
        python,
        &["-I", "-c", CHANGELOG_PY, &sdist_s],
        Duration::from_secs(60),
    )?;
    let files: Files = serde_json::from_str(&out).map_err(|e| format!("changelog reader: {e}"))?;
    Ok(files.files.into_iter().collect())
}

/// A line naming `version` as a token (not `3.1.40`, not `13.1.4`).
fn names_version(line: &str, version: &str) -> bool {
    let re =
        Regex::new(&format!(r"(^|[^0-9.]){}([^0-9]|$)", regex::escape(version))).expect("escaped");
    line.len() < 100 && re.is_match(line)
}

/// Looks like a heading: Markdown `#`, an RST underline below, or a line starting with the
/// version, `v`, `Version` or `Release`.
fn heading_like(lines: &[&str], i: usize) -> bool {
    let l = lines[i].trim();
    let underline = lines
        .get(i + 1)
        .is_some_and(|n| n.len() >= 3 && n.trim().chars().all(|c| "=-~^*+#".contains(c)));
    underline || l.starts_with('#') || l.starts_with(|c: char| c.is_ascii_digit()) || {
        let lower = l.to_lowercase();
        lower.starts_with('v') || lower.starts_with("release") || lower.starts_with("version")
    }
}

fn heading(lines: &[&str], version: &str) -> Option<usize> {
    let hits: Vec<usize> = (0..lines.len())
        .filter(|&i| names_version(lines[i], version))
        .collect();
    hits.iter()
        .copied()
        .find(|&i| heading_like(lines, i))
        .or(hits.first().copied())
}

/// The lines between the headings of `new` and `old` (either order); from `new`'s heading on
/// when `old` has none; `None` when `new` has no heading.
pub fn section(text: &str, old: &str, new: &str) -> Option<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let n = heading(&lines, new)?;
    let range = match heading(&lines, old) {
        Some(o) if o > n => n..o,
        Some(o) if o < n => o + 1..(n + 400).min(lines.len()),
        _ => n..(n + 400).min(lines.len()),
    };
    Some(lines[range].iter().map(|l| l.to_string()).collect())
}

/// The section of one change-log file: exact headings, or for a release-notes page of the new
/// version's series (`release-3.4.md` for 3.4.1, named so) the page from the series' heading.
pub fn file_section(name: &str, text: &str, old: &str, new: &str) -> Option<Vec<String>> {
    section(text, old, new).or_else(|| {
        let series = new.split('.').take(2).collect::<Vec<_>>().join(".");
        let base = name.rsplit('/').next().unwrap_or(name);
        (series != new && names_version(base, &series))
            .then(|| section(text, old, &series))
            .flatten()
    })
}

/// Attaches to each change the section lines naming its symbol's leaf, new name or parameter.
pub fn attach(changes: &mut [ApiChange], lines: &[String]) {
    for c in changes.iter_mut() {
        let mut names = vec![leaf(&c.symbol).to_string()];
        names.extend(c.new_symbol.as_deref().map(|s| leaf(s).to_string()));
        names.extend(c.param.clone());
        names.extend(c.new_param.clone());
        let res: Vec<Regex> = names
            .iter()
            // The package's own name (`Processor.markdown`) matches every other line.
            .filter(|n| n.len() >= 3 && !n.eq_ignore_ascii_case(&c.dist))
            .map(|n| Regex::new(&format!(r"\b{}\b", regex::escape(n))).expect("escaped"))
            .collect();
        for l in lines {
            if c.evidence.changelog.len() >= LINES_PER_CHANGE {
                break;
            }
            let t = l.trim();
            if !t.is_empty()
                && res.iter().any(|r| r.is_match(t))
                && !c.evidence.changelog.iter().any(|x| x == t)
            {
                c.evidence.changelog.push(t.chars().take(300).collect());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANGES: &str = "Changelog\n=========\n\n22.0 - 2022-12-07\n~~~~~~~~~~~~~~~~~\n\n* Remove ``LegacyVersion`` and ``LegacySpecifier`` (:issue:`407`)\n* Add ``strip_trailing_zero`` to ``canonicalize_version``\n\n21.3 - 2021-11-17\n~~~~~~~~~~~~~~~~~\n\n* Add a ``pp3-none-any`` tag (:issue:`311`)\n";

    #[test]
    fn cuts_between_headings() {
        let s = section(CHANGES, "21.3", "22.0").unwrap();
        assert!(s[0].starts_with("22.0"));
        assert!(s.iter().any(|l| l.contains("LegacyVersion")));
        assert!(
            !s.iter().any(|l| l.contains("pp3-none-any")),
            "stops at the old heading"
        );
        assert!(section(CHANGES, "21.3", "23.1").is_none());
        // A release-notes page of the series.
        let notes = "title: Release Notes\n\n# Python-Markdown 3.4 Release Notes\n\n* `Registry.add` was removed.\n";
        let page = file_section("docs/change_log/release-3.4.md", notes, "3.3.7", "3.4.1").unwrap();
        assert!(page.iter().any(|l| l.contains("Registry.add")));
        assert!(file_section("docs/change_log/release-3.0.md", notes, "3.3.7", "3.4.1").is_none());
        // 2.0 must not match inside 22.0.
        assert!(!names_version("22.0 - 2022-12-07", "2.0"));
    }
}
