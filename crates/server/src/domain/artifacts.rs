//! Job artifacts on disk: a job's archive lives at `<data-dir>/artifacts/<job id>/artifacts.zip`,
//! written to a temporary file, synced and renamed into place, so a reader sees a whole archive
//! or none. Here: keeping an upload (only a zip; its `expire_in`, default 30 days), reading it
//! back whole or one file at a time, listing a directory of it for the pages, keeping it
//! forever, and removing it (expiry, `DELETE`, erase).

use std::path::{Path, PathBuf};

use pipewright_core::{Status, Timestamp};
use pipewright_store::{Job, JobArtifacts};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// GitLab's default `expire_in`.
const DEFAULT_EXPIRY_SECS: i64 = 30 * 24 * 3600;

/// Largest single file served out of an archive.
const MAX_ENTRY_BYTES: u64 = 100 * 1024 * 1024;

pub fn archive_path(state: &AppState, job_id: i64) -> PathBuf {
    state
        .config
        .data_dir
        .join("artifacts")
        .join(job_id.to_string())
        .join("artifacts.zip")
}

/// Deletes a job's archive and forgets it (expiry, `DELETE`, erase).
pub async fn remove(state: &AppState, job: &Job) -> anyhow::Result<()> {
    state.store.set_job_artifacts(job.id, None).await?;
    match tokio::fs::remove_file(archive_path(state, job.id)).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A new, empty temporary file in `dir` for an upload, deleted when dropped.
async fn upload_file(dir: &Path) -> ApiResult<tempfile::TempPath> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        tempfile::Builder::new()
            .prefix(".upload-")
            .tempfile_in(dir)
            .map(tempfile::NamedTempFile::into_temp_path)
    })
    .await
    .map_err(internal)?
    .map_err(internal)
}

async fn is_zip(path: &Path) -> bool {
    use tokio::io::AsyncReadExt;
    let mut magic = [0u8; 4];
    match tokio::fs::File::open(path).await {
        Ok(mut f) => f.read_exact(&mut magic).await.is_ok() && &magic[..2] == b"PK",
        Err(_) => false,
    }
}

/// Makes a rename durable.
async fn sync_dir(dir: &Path) {
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
}

/// Whether a job's artifacts are part of what its dependants download.
pub fn has_artifacts(job: &Job) -> bool {
    job.artifacts.is_some() && job.status == Status::Success
}

fn internal(e: impl Into<anyhow::Error>) -> ApiError {
    ApiError::Internal(e.into())
}

/// A new, empty temporary file for a job's upload, in the directory its archive will live in
/// (so keeping it is a rename); deleted when dropped — on every error, and when the client goes
/// away mid-upload — unless [`keep_upload`] moves it into place.
pub async fn new_upload(state: &AppState, job_id: i64) -> ApiResult<tempfile::TempPath> {
    let dir = archive_dir(state, job_id)?;
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    upload_file(&dir).await
}

fn archive_dir(state: &AppState, job_id: i64) -> ApiResult<PathBuf> {
    archive_path(state, job_id)
        .parent()
        .map(PathBuf::from)
        .ok_or_else(|| internal(anyhow::anyhow!("artifacts path")))
}

/// Keeps an uploaded archive as the job's artifacts: it must be a zip; it expires after
/// `expire_in` (`never`, a duration, or GitLab's default); it is renamed into place durably
/// before the job row says it has artifacts.
pub async fn keep_upload(
    state: &AppState,
    job_id: i64,
    tmp: tempfile::TempPath,
    filename: String,
    size: i64,
    expire_in: Option<&str>,
) -> ApiResult<()> {
    if !is_zip(&tmp).await {
        return Err(ApiError::BadRequest(
            "artifacts must be a zip archive".into(),
        ));
    }
    let expire_at = match expire_in.map(str::trim) {
        Some("never") => None,
        Some(text) if !text.is_empty() => {
            let secs = pipewright_config::duration_seconds(text)
                .ok_or_else(|| ApiError::InvalidParam("expire_in".into()))?;
            Some(Timestamp(Timestamp::now().millis() + secs as i64 * 1000))
        }
        _ => Some(Timestamp(
            Timestamp::now().millis() + DEFAULT_EXPIRY_SECS * 1000,
        )),
    };
    let dir = archive_dir(state, job_id)?;
    let target = archive_path(state, job_id);
    tokio::task::spawn_blocking(move || tmp.persist(target))
        .await
        .map_err(internal)?
        .map_err(|e| internal(e.error))?;
    sync_dir(&dir).await;
    state
        .store
        .set_job_artifacts(
            job_id,
            Some(&JobArtifacts {
                filename,
                size,
                expire_at,
            }),
        )
        .await?;
    Ok(())
}

/// The job's archive, open for reading; `None` when it has none.
pub async fn open_archive(state: &AppState, job: &Job) -> Option<(tokio::fs::File, JobArtifacts)> {
    let artifacts = job.artifacts.clone()?;
    let file = tokio::fs::File::open(archive_path(state, job.id))
        .await
        .ok()?;
    Some((file, artifacts))
}

/// One file out of a job's archive (at most [`MAX_ENTRY_BYTES`]); `None` when the job has no
/// archive, the file is not in it, or it is a directory or too large.
pub async fn read_entry(state: &AppState, job: &Job, path: &str) -> ApiResult<Option<Vec<u8>>> {
    if job.artifacts.is_none() {
        return Ok(None);
    }
    let archive = archive_path(state, job.id);
    let wanted = path.trim_start_matches('/').to_string();
    tokio::task::spawn_blocking(move || -> Option<Vec<u8>> {
        use std::io::Read;
        let file = std::fs::File::open(archive).ok()?;
        let mut zip = zip::ZipArchive::new(file).ok()?;
        let entry = zip.by_name(&wanted).ok()?;
        if entry.is_dir() || entry.size() > MAX_ENTRY_BYTES {
            return None;
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.take(MAX_ENTRY_BYTES).read_to_end(&mut data).ok()?;
        Some(data)
    })
    .await
    .map_err(internal)
}

/// One entry of an archive's directory listing.
pub struct Listed {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
}

/// Most entries a directory listing holds.
const MAX_LISTED: usize = 1_000;

/// The entries directly under `dir` (`""` for the top) of a job's archive, by name (at most
/// [`MAX_LISTED`]); a directory the zip only implies through its files' paths is listed too.
/// `None` when the job has no archive or it cannot be read.
pub async fn list_dir(state: &AppState, job: &Job, dir: &str) -> ApiResult<Option<Vec<Listed>>> {
    if job.artifacts.is_none() {
        return Ok(None);
    }
    let archive = archive_path(state, job.id);
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    tokio::task::spawn_blocking(move || -> Option<Vec<Listed>> {
        let file = std::fs::File::open(archive).ok()?;
        let mut zip = zip::ZipArchive::new(file).ok()?;
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..zip.len() {
            let Ok(entry) = zip.by_index(i) else { continue };
            let name = entry.name().to_string();
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            match rest.split_once('/') {
                Some((child, _)) => {
                    seen.entry(child.to_string()).or_insert((true, 0));
                }
                None => {
                    seen.insert(rest.to_string(), (entry.is_dir(), entry.size()));
                }
            }
            if seen.len() >= MAX_LISTED {
                break;
            }
        }
        Some(
            seen.into_iter()
                .map(|(name, (is_dir, size))| Listed { name, is_dir, size })
                .collect(),
        )
    })
    .await
    .map_err(internal)
}

/// Keeps a job's artifacts forever (no expiry); false when it has none.
pub async fn keep_forever(state: &AppState, job: &Job) -> ApiResult<bool> {
    let Some(mut artifacts) = job.artifacts.clone() else {
        return Ok(false);
    };
    artifacts.expire_at = None;
    state
        .store
        .set_job_artifacts(job.id, Some(&artifacts))
        .await?;
    Ok(true)
}
