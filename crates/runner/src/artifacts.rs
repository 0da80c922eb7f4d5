//! Artifacts on the runner side: collecting a job's `artifacts:` (`paths` globs, `exclude`,
//! `untracked`) into a zip, and unpacking the archives of the jobs it depends on. Both run on
//! blocking threads; archives are unpacked only inside the project directory (entries that
//! would escape it are refused by the zip reader).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// What an `artifacts` entry of the job payload asks for.
#[derive(Debug, Clone, Default)]
pub struct ArtifactSpec {
    pub paths: Vec<String>,
    pub exclude: Vec<String>,
    pub untracked: bool,
}

/// The files collected, with a line per pattern for the job log.
pub struct Collected {
    pub files: Vec<PathBuf>,
    pub log: Vec<String>,
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    path.strip_prefix(root)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn walk(root: &Path, path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                walk(root, &entry.path(), out);
            }
        }
    } else if path.starts_with(root) && !out.iter().any(|p| p == path) {
        out.push(path.to_path_buf());
    }
}

/// Finds the files an artifacts spec selects under `root`.
pub fn collect(root: &Path, spec: &ArtifactSpec) -> anyhow::Result<Collected> {
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
        for path in matches.filter_map(Result::ok) {
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
    if spec.untracked {
        let output = std::process::Command::new("git")
            .args(["ls-files", "-o", "-z"])
            .current_dir(root)
            .output()
            .context("listing untracked files")?;
        let before = files.len();
        for name in output.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            walk(
                root,
                &root.join(String::from_utf8_lossy(name).as_ref()),
                &mut files,
            );
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

/// Writes `files` (all under `root`) into a zip at `out`, with paths relative to `root`.
pub fn zip_files(root: &Path, files: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for path in files {
        let Some(name) = relative(root, path) else {
            continue;
        };
        zip.start_file(name, options)?;
        let mut input = std::fs::File::open(path)?;
        std::io::copy(&mut input, &mut zip)?;
    }
    let mut inner = zip.finish()?;
    inner.flush()?;
    Ok(())
}

/// Unpacks an archive into `root`.
pub fn unzip(archive: &Path, root: &Path) -> anyhow::Result<usize> {
    let file = std::fs::File::open(archive)?;
    let mut zip = zip::ZipArchive::new(file).context("reading the artifacts archive")?;
    let count = zip.len();
    zip.extract(root).context("extracting artifacts")?;
    Ok(count)
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
            untracked: false,
        };
        let collected = collect(&root, &spec).unwrap();
        let names: Vec<String> = collected
            .files
            .iter()
            .map(|f| relative(&root, f).unwrap())
            .collect();
        assert_eq!(names, vec!["dist/app.bin", "dist/sub/notes.txt"]);
        assert!(collected.log[1].starts_with("WARNING: missing/*: no matching files"));
        let archive = dir.join("a.zip");
        zip_files(&root, &collected.files, &archive).unwrap();
        let out = dir.join("out");
        assert_eq!(unzip(&archive, &out).unwrap(), 2);
        assert_eq!(
            std::fs::read(out.join("dist/sub/notes.txt")).unwrap(),
            b"notes"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pipewright-runner-artifacts-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
