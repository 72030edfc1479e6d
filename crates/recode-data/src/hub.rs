//! Resolving a data argument: a local path, or a Hugging Face dataset id downloaded into the
//! hub cache (`HF_HOME`, default `~/.cache/huggingface`) and reused offline afterwards (when the
//! hub is unreachable or `HF_HUB_OFFLINE=1`, the cached snapshot is read directly).

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Data files a dataset repository may hold, in preference order.
const DATA_EXTENSIONS: [&str; 3] = ["jsonl", "parquet", "json"];

/// Whether `spec` looks like a hub dataset id (`owner/name`, optionally `@revision`).
pub fn is_hub_id(spec: &str) -> bool {
    let id = spec.split('@').next().unwrap_or(spec);
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !p.starts_with('.')
        })
}

/// The local files behind `spec`: the path itself if it exists, else the data files of a hub dataset.
pub fn resolve(spec: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    if path.exists() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !is_hub_id(spec) {
        return Err(DataError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file (and not a hub dataset id like owner/name)",
            ),
        ));
    }
    download(spec)
}

#[cfg(feature = "hub")]
fn download(spec: &str) -> Result<Vec<PathBuf>> {
    use hf_hub::{api::sync::ApiBuilder, Cache, Repo, RepoType};
    let (id, revision) = split_revision(spec);
    let repo_desc = Repo::with_revision(id.to_string(), RepoType::Dataset, revision.to_string());
    let cache = Cache::from_env();
    let cache_dir = cache.path().join(repo_desc.folder_name());
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v == "true");
    if offline {
        return cached_files(&cache_dir, revision).ok_or_else(|| DataError::HubOffline {
            spec: spec.to_string(),
            cache_dir: cache_dir.clone(),
        });
    }
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| DataError::HubClient {
            spec: spec.to_string(),
            source: Box::new(e),
        })?;
    let repo = api.repo(repo_desc);
    let info = match repo.info() {
        Ok(info) => info,
        Err(e) => {
            // No network (or the hub is down): a dataset fetched before is still usable.
            if let Some(files) = cached_files(&cache_dir, revision) {
                tracing::warn!(dataset = spec, error = %e, "hub unreachable; using the cached copy");
                return Ok(files);
            }
            return Err(DataError::HubListing {
                spec: spec.to_string(),
                cache_dir,
                source: Box::new(e),
            });
        }
    };
    let names: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let chosen =
        data_files(names.iter().map(String::as_str)).ok_or_else(|| DataError::HubNoDataFile {
            spec: spec.to_string(),
        })?;
    let mut files = Vec::new();
    for name in chosen {
        tracing::info!(dataset = spec, file = %name, "fetching from the hub (cached)");
        files.push(repo.get(name).map_err(|e| DataError::HubFetch {
            spec: spec.to_string(),
            file: name.to_string(),
            source: Box::new(e),
        })?);
    }
    Ok(files)
}

/// `owner/name@rev` → (`owner/name`, `rev`), revision `main` by default.
fn split_revision(spec: &str) -> (&str, &str) {
    spec.split_once('@').unwrap_or((spec, "main"))
}

/// The data files to load among a dataset's file names: every file of the first
/// extension in [`DATA_EXTENSIONS`] that occurs, sorted by name.
fn data_files<'a>(names: impl Iterator<Item = &'a str>) -> Option<Vec<&'a str>> {
    let names: Vec<&str> = names.collect();
    let ext_of = |n: &str| n.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let ext = DATA_EXTENSIONS
        .iter()
        .find(|e| names.iter().any(|n| ext_of(n) == **e))?;
    let mut chosen: Vec<&str> = names.into_iter().filter(|n| ext_of(n) == *ext).collect();
    chosen.sort_unstable();
    Some(chosen)
}

/// Data files of `revision` in a hub cache folder (`refs/<rev>` → `snapshots/<hash>/…`,
/// the layout `huggingface_hub` and `hf-hub` share), or `None` when nothing is cached.
/// A revision that is itself a commit hash is looked up directly.
fn cached_files(repo_dir: &Path, revision: &str) -> Option<Vec<PathBuf>> {
    let hash = std::fs::read_to_string(repo_dir.join("refs").join(revision))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let snapshot = repo_dir.join("snapshots").join(hash);
    let mut rel = Vec::new();
    let mut stack = vec![snapshot.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(r) = p.strip_prefix(&snapshot) {
                rel.push(r.to_string_lossy().into_owned());
            }
        }
    }
    let chosen = data_files(rel.iter().map(String::as_str))?;
    Some(chosen.into_iter().map(|r| snapshot.join(r)).collect())
}

#[cfg(not(feature = "hub"))]
fn download(spec: &str) -> Result<Vec<PathBuf>> {
    Err(DataError::HubUnsupported {
        spec: spec.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        assert!(is_hub_id("zjunlp/ReCode-Train-Data"));
        assert!(is_hub_id("owner/name@v1.0"));
        for not_id in [
            "data.jsonl",
            "a/b/c",
            "/abs/x",
            "./x/y",
            "owner/",
            "/x",
            "a b/c",
            "o/.hidden",
        ] {
            assert!(!is_hub_id(not_id), "{not_id}");
        }
        let err = resolve("surely/missing.jsonl.nope/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn preferred_extension_wins_and_files_are_sorted() {
        let names = ["README.md", "b.parquet", "train-2.jsonl", "train-1.jsonl"];
        assert_eq!(
            data_files(names.into_iter()).unwrap(),
            vec!["train-1.jsonl", "train-2.jsonl"]
        );
        assert_eq!(
            data_files(["x.parquet", "y.md"].into_iter()).unwrap(),
            vec!["x.parquet"]
        );
        assert!(data_files(["README.md"].into_iter()).is_none());
    }

    #[cfg(feature = "hub")]
    #[test]
    fn offline_reads_the_hub_cache_layout() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("datasets--o--n");
        let snap = repo.join("snapshots/abc123");
        std::fs::create_dir_all(snap.join("data")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        std::fs::write(snap.join("data/train.jsonl"), "{}\n").unwrap();
        std::fs::write(snap.join("README.md"), "x").unwrap();
        let got = cached_files(&repo, "main").unwrap();
        assert_eq!(got, vec![snap.join("data/train.jsonl")]);
        // A revision given as a commit hash needs no ref file.
        assert_eq!(cached_files(&repo, "abc123").unwrap(), got);
        assert!(cached_files(&repo, "v2").is_none());
        assert!(cached_files(&dir.path().join("datasets--x--y"), "main").is_none());
    }
}
