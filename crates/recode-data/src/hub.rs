//! Resolving a data argument: a local path, or a Hugging Face dataset id downloaded into the
//! hub cache (`HF_HOME`, default `~/.cache/huggingface`) and reused offline afterwards.

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
    use hf_hub::{api::sync::ApiBuilder, Repo, RepoType};
    let (id, revision) = match spec.split_once('@') {
        Some((id, rev)) => (id, rev.to_string()),
        None => (spec, "main".to_string()),
    };
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| DataError::Hub(format!("{spec}: {e}")))?;
    let repo = api.repo(Repo::with_revision(
        id.to_string(),
        RepoType::Dataset,
        revision,
    ));
    let info = repo
        .info()
        .map_err(|e| DataError::Hub(format!("{spec}: listing files: {e}")))?;
    let names: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let ext_of = |n: &str| n.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let ext = DATA_EXTENSIONS
        .iter()
        .find(|e| names.iter().any(|n| ext_of(n) == **e))
        .ok_or_else(|| {
            DataError::Hub(format!(
                "{spec}: no .jsonl, .parquet or .json data file in the dataset"
            ))
        })?;
    let mut files = Vec::new();
    for name in names.iter().filter(|n| ext_of(n) == *ext) {
        tracing::info!(dataset = spec, file = %name, "fetching from the hub (cached)");
        files.push(
            repo.get(name)
                .map_err(|e| DataError::Hub(format!("{spec}/{name}: {e}")))?,
        );
    }
    Ok(files)
}

#[cfg(not(feature = "hub"))]
fn download(spec: &str) -> Result<Vec<PathBuf>> {
    Err(DataError::Hub(format!(
        "{spec}: this build has no hub support (feature `hub`); pass a local path"
    )))
}
