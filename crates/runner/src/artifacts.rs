//! Artifacts on the runner side: collecting a job's `artifacts:` (`paths` globs, `exclude`,
//! `untracked`) into a zip, and unpacking the archives of the jobs it depends on. Both run on a
//! thread confined to the job's directory (`isolation.rs`), so a link the job planted cannot
//! lead the runner to anyone else's files; on top of that, only regular files and links are
//! archived (links as links, like GitLab Runner), never a FIFO or a device, and unpacked files
//! get permission bits only (never setuid) and belong to the job's user.

use std::io::{Cursor, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use crate::isolation::JobUser;

/// What an `artifacts` entry of the job payload asks for.
#[derive(Debug, Clone, Default)]
pub struct ArtifactSpec {
    pub paths: Vec<String>,
    pub exclude: Vec<String>,
    /// `untracked: true`: the files `git ls-files -o` listed (run as the job).
    pub untracked: Option<Vec<String>>,
}

/// The files collected, with a line per pattern for the job log.
pub struct Collected {
    pub files: Vec<PathBuf>,
    pub log: Vec<String>,
}

/// `path` relative to `root`, if it is inside it (no `..` on the way).
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(root).ok()?;
    if rest
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(rest.to_string_lossy().into_owned())
}

/// Adds `path` (a file or link) or the files under it (a directory, not followed through
/// links) to `out`.
fn walk(root: &Path, path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                walk(root, &entry.path(), out);
            }
        }
    } else if (meta.is_file() || meta.is_symlink())
        && relative(root, path).is_some()
        && !out.iter().any(|p| p == path)
    {
        out.push(path.to_path_buf());
    }
}

/// Whether `path`'s directory really is inside `real_root` (a glob may reach a path through a
/// link to a directory elsewhere; such paths are not the project's).
fn really_inside(real_root: &Path, path: &Path) -> bool {
    path.parent()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .is_some_and(|p| p.starts_with(real_root))
}

/// Finds the files an artifacts spec selects under `root`.
pub fn collect(root: &Path, spec: &ArtifactSpec) -> anyhow::Result<Collected> {
    let real_root = std::fs::canonicalize(root)?;
    let mut files = Vec::new();
    let mut log = Vec::new();
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    for pattern in &spec.paths {
        let before = files.len();
        let full = root.join(pattern.trim_start_matches("./"));
        let matches = glob::glob_with(&full.to_string_lossy(), options)
            .with_context(|| format!("{pattern}: invalid pattern"))?;
        let mut found = 0;
        for path in matches
            .filter_map(Result::ok)
            .filter(|p| really_inside(&real_root, p))
        {
            found += 1;
            walk(root, &path, &mut files);
        }
        log.push(if found == 0 {
            format!("WARNING: {pattern}: no matching files. Ensure that the artifact path is relative to the working directory")
        } else {
            format!(
                "{pattern}: found {} matching artifact files and directories",
                files.len() - before
            )
        });
    }
    if let Some(untracked) = &spec.untracked {
        let before = files.len();
        for path in untracked.iter().map(|name| root.join(name)) {
            if really_inside(&real_root, &path) {
                walk(root, &path, &mut files);
            }
        }
        log.push(format!("untracked: found {} files", files.len() - before));
    }
    let excludes: Vec<glob::Pattern> = spec
        .exclude
        .iter()
        .filter_map(|p| glob::Pattern::new(p.trim_start_matches("./")).ok())
        .collect();
    if !excludes.is_empty() {
        let before = files.len();
        files.retain(|f| {
            let rel = relative(root, f).unwrap_or_default();
            !excludes.iter().any(|p| p.matches_with(&rel, options))
        });
        log.push(format!("exclude: {} files excluded", before - files.len()));
    }
    Ok(Collected { files, log })
}

/// Opens `path` for reading only if it is a regular file: never through a link, never a FIFO
/// (which would block) or a device (which might never end).
fn open_regular(path: &Path) -> std::io::Result<Option<(std::fs::File, u32)>> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    Ok(meta.is_file().then_some((file, meta.mode())))
}

/// Zips `files` (all under `root`) with paths relative to `root`: regular files with their
/// permission bits, links as links.
pub fn zip_files(root: &Path, files: &[PathBuf]) -> anyhow::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for path in files {
        let Some(name) = relative(root, path) else {
            continue;
        };
        if std::fs::symlink_metadata(path)?.is_symlink() {
            let target = std::fs::read_link(path)?;
            zip.add_symlink(name, target.to_string_lossy(), options)?;
            continue;
        }
        let Some((mut input, mode)) = open_regular(path)? else {
            continue;
        };
        zip.start_file(name, options.unix_permissions(mode & 0o777))?;
        std::io::copy(&mut input, &mut zip)?;
    }
    let mut inner = zip.finish()?;
    inner.flush()?;
    Ok(inner.into_inner())
}

/// Hands `path` (never followed if it is a link) to the job's user.
pub fn give(path: &Path, user: Option<&JobUser>) -> std::io::Result<()> {
    match user {
        Some(u) => std::os::unix::fs::lchown(path, Some(u.uid), Some(u.gid)),
        None => Ok(()),
    }
}

/// Creates `dir` and the directories above it up to `root`, each the job user's.
fn create_dirs(root: &Path, dir: &Path, user: Option<&JobUser>) -> anyhow::Result<()> {
    let mut at = root.to_path_buf();
    for part in dir.strip_prefix(root)?.components() {
        at.push(part);
        match std::fs::create_dir(&at) {
            Ok(()) => give(&at, user)?,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err).with_context(|| format!("creating {}", at.display())),
        }
    }
    Ok(())
}

/// Unpacks an archive into `root`: entries that would land outside it are refused, a file or
/// link already at an entry's place is replaced (never written through), files get their
/// permission bits only (no setuid, setgid or sticky bit), and everything belongs to `user`.
pub fn unzip(archive: &[u8], root: &Path, user: Option<&JobUser>) -> anyhow::Result<usize> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(archive)).context("reading the artifacts archive")?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let Some(name) = entry.enclosed_name() else {
            anyhow::bail!("{}: a path outside the project directory", entry.name());
        };
        let path = root.join(name);
        if entry.is_dir() {
            create_dirs(root, &path, user)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            create_dirs(root, parent, user)?;
        }
        if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(&path)?;
        }
        if entry.is_symlink() {
            let mut target = String::new();
            std::io::Read::read_to_string(&mut entry, &mut target)?;
            std::os::unix::fs::symlink(&target, &path)?;
        } else {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(entry.unix_mode().unwrap_or(0o644) & 0o777)
                .open(&path)
                .with_context(|| format!("extracting {}", path.display()))?;
            std::io::copy(&mut entry, &mut out)?;
        }
        give(&path, user)?;
    }
    Ok(zip.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_exclude_and_round_trip() {
        let dir = tempfile_dir();
        let root = dir.join("project");
        std::fs::create_dir_all(root.join("dist/sub")).unwrap();
        std::fs::write(root.join("dist/app.bin"), b"binary").unwrap();
        std::fs::write(root.join("dist/sub/notes.txt"), b"notes").unwrap();
        std::fs::write(root.join("dist/sub/debug.log"), b"noise").unwrap();
        std::fs::write(root.join("README"), b"readme").unwrap();
        let spec = ArtifactSpec {
            paths: vec!["dist/".into(), "missing/*".into()],
            exclude: vec!["dist/**/*.log".into()],
            untracked: None,
        };
        let collected = collect(&root, &spec).unwrap();
        let names: Vec<String> = collected
            .files
            .iter()
            .map(|f| relative(&root, f).unwrap())
            .collect();
        assert_eq!(names, vec!["dist/app.bin", "dist/sub/notes.txt"]);
        assert!(collected.log[1].starts_with("WARNING: missing/*: no matching files"));
        let archive = zip_files(&root, &collected.files).unwrap();
        let out = dir.join("out");
        std::fs::create_dir(&out).unwrap();
        assert_eq!(unzip(&archive, &out, None).unwrap(), 2);
        assert_eq!(
            std::fs::read(out.join("dist/sub/notes.txt")).unwrap(),
            b"notes"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A job's links (to a file or a directory outside its project) are archived as links:
    /// the runner never reads what they point to.
    #[test]
    fn links_are_archived_as_links_and_never_followed() {
        let dir = tempfile_dir();
        let root = dir.join("project");
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
        std::fs::write(dir.join("secret"), b"server secret").unwrap();
        std::fs::write(dir.join("elsewhere/key"), b"server key").unwrap();
        std::fs::write(root.join("out/real.txt"), b"built").unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("out/leak")).unwrap();
        std::os::unix::fs::symlink("../../elsewhere", root.join("out/dir")).unwrap();
        let spec = ArtifactSpec {
            paths: vec!["out/".into(), "out/dir/*".into(), "../secret".into()],
            ..ArtifactSpec::default()
        };
        let collected = collect(&root, &spec).unwrap();
        let names: Vec<String> = collected
            .files
            .iter()
            .filter_map(|f| relative(&root, f))
            .collect();
        assert_eq!(names, vec!["out/dir", "out/leak", "out/real.txt"]);
        let archive = zip_files(&root, &collected.files).unwrap();
        let text = String::from_utf8_lossy(&archive);
        assert!(!text.contains("server secret") && !text.contains("server key"));
        let out = dir.join("out");
        std::fs::create_dir(&out).unwrap();
        unzip(&archive, &out, None).unwrap();
        assert!(
            std::fs::symlink_metadata(out.join("out/leak"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(std::fs::read(out.join("out/real.txt")).unwrap(), b"built");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Unpacking never sets setuid bits and never writes through a link already in place.
    #[test]
    fn unpacking_drops_setuid_and_replaces_planted_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile_dir();
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("tool", options.unix_permissions(0o4755))
            .unwrap();
        zip.write_all(b"#!/bin/sh\n").unwrap();
        zip.start_file("victim", options).unwrap();
        zip.write_all(b"from the archive").unwrap();
        let archive = zip.finish().unwrap().into_inner();
        let out = dir.join("project");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(dir.join("target"), b"untouched").unwrap();
        std::os::unix::fs::symlink("../target", out.join("victim")).unwrap();
        assert_eq!(unzip(&archive, &out, None).unwrap(), 2);
        let mode = std::fs::metadata(out.join("tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7000, 0, "no setuid bit: {mode:o}");
        assert_eq!(mode & 0o111, 0o111, "the executable bits stay");
        assert_eq!(std::fs::read(dir.join("target")).unwrap(), b"untouched");
        assert_eq!(
            std::fs::read(out.join("victim")).unwrap(),
            b"from the archive"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pipewright-runner-artifacts-{}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("test")
                .replace("::", "-")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
