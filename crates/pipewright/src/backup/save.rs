//! `pipewright backup`: the database first, then the repositories, then the artifacts (the
//! order is explained in `mod.rs`), into a staging directory next to the archive, then one zip
//! written under a temporary name and renamed into place when whole.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use pipewright_store::Backend;
use pipewright_store::backup::Snapshot;
use zip::write::SimpleFileOptions;

use super::layout::{self, Manifest};
use super::{BackupArgs, repositories};
use crate::settings::DataLocation;

pub fn run(args: BackupArgs) -> anyhow::Result<()> {
    let location = DataLocation::resolve(args.data)?;
    let data = &location.data_dir;
    if !data.join(layout::KEY).is_file() {
        bail!(
            "{} is not a Pipewright data directory (it has no {}); pass the server's --data-dir",
            data.display(),
            layout::KEY
        );
    }
    if args.to.exists() {
        bail!(
            "{} already exists; back up into a new file",
            args.to.display()
        );
    }
    let staging = Staging::next_to(&args.to)?;
    let mut manifest = Manifest {
        format: layout::FORMAT,
        pipewright_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: now(),
        database: String::new(),
        schema_version: None,
        repositories: 0,
        artifacts: 0,
        secrets: Vec::new(),
        warning: layout::KEYLESS_NOTE.to_string(),
    };
    if !args.without_key {
        manifest.secrets = [layout::KEY, layout::RUNNER_TOKEN]
            .iter()
            .map(|name| format!("{}{name}", layout::DATA))
            .collect();
        manifest.warning = layout::SECRET_WARNING.to_string();
    }

    // 1. The database, as of one instant.
    let (database, snapshot) = copy_database(&location.database_url, &staging.0, &mut manifest)?;
    // 2. The repositories: after the database, so they hold every commit it refers to.
    let saved = repositories::save(
        &data.join(layout::REPOSITORIES),
        &staging.0.join(layout::REPOSITORIES),
        &snapshot.pipeline_commits,
    )?;
    // 3. The archive, with the artifacts read from the live directory.
    let partial = partial_name(&args.to);
    let written = write_archive(&partial, data, database.as_deref(), &saved, &mut manifest);
    if let Err(err) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    std::fs::rename(&partial, &args.to)
        .with_context(|| format!("renaming {} into place", partial.display()))?;
    drop(staging);
    report(&args.to, &manifest, &saved);
    Ok(())
}

/// A SQLite database is copied into `staging`; a PostgreSQL one is the operator's to dump.
/// Returns the copy and what it holds.
fn copy_database(
    url: &str,
    staging: &Path,
    manifest: &mut Manifest,
) -> anyhow::Result<(Option<PathBuf>, Snapshot)> {
    match Backend::from_url(url) {
        Some(Backend::Sqlite) => {
            let file = pipewright_store::backup::sqlite_file(url)?
                .context("an in-memory database cannot be backed up")?;
            if !file.is_file() {
                bail!("no database at {}", file.display());
            }
            let copy = staging.join(layout::DATABASE);
            let snapshot = pipewright_store::backup::snapshot_sqlite(&file, &copy)
                .with_context(|| format!("copying the database {}", file.display()))?;
            manifest.database = "sqlite".into();
            manifest.schema_version = snapshot.schema_version;
            Ok((Some(copy), snapshot))
        }
        _ => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            manifest.database = "postgres".into();
            manifest.schema_version = runtime
                .block_on(pipewright_store::backup::schema_version(url))
                .context("reading the database's schema version")?;
            eprintln!("{POSTGRES_NOTE}");
            Ok((None, Snapshot::default()))
        }
    }
}

const POSTGRES_NOTE: &str = "\
note: the database is PostgreSQL, so it is not in this archive. Dump it with pg_dump BEFORE
      running `pipewright backup` (then every pipeline in the dump has its commit in the
      repositories saved here), e.g.
        pg_dump --format=custom --file=pipewright.pgdump \"$PIPEWRIGHT_DATABASE_URL\"
      and keep the dump with this archive. To restore it into a new, empty database:
        pg_restore --no-owner --dbname=\"postgres://user@host/newdb\" pipewright.pgdump";

fn write_archive(
    path: &Path,
    data: &Path,
    database: Option<&Path>,
    saved: &repositories::Saved,
    manifest: &mut Manifest,
) -> anyhow::Result<()> {
    // 0600 from the start: the archive holds the server key.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut archive = Archive(zip::ZipWriter::new(BufWriter::new(file)));
    archive.0.set_comment(manifest.warning.clone())?;
    if let Some(database) = database {
        archive.file(layout::DATABASE, database, true)?;
    }
    if !manifest.secrets.is_empty() {
        for secret in [layout::KEY, layout::RUNNER_TOKEN] {
            archive.file(secret, &data.join(secret), true)?;
        }
    }
    archive.dir(layout::REPOSITORIES)?;
    for copy in &saved.copies {
        let name = copy.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = format!("{}/{}", layout::REPOSITORIES, name.unwrap_or_default());
        archive.tree(&name, copy)?;
        manifest.repositories += 1;
    }
    manifest.artifacts = archive.artifacts(&data.join(layout::ARTIFACTS))?;
    let json = serde_json::to_vec_pretty(&manifest)?;
    archive
        .0
        .start_file(layout::MANIFEST, options(true, json.len() as u64))?;
    archive.0.write_all(&json)?;
    let mut out = archive.0.finish()?;
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(())
}

/// The zip being written; names are relative to the data directory.
struct Archive(zip::ZipWriter<BufWriter<File>>);

fn options(compress: bool, size: u64) -> SimpleFileOptions {
    let method = if compress {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    SimpleFileOptions::default()
        .compression_method(method)
        .unix_permissions(0o600)
        .large_file(size >= u64::from(u32::MAX))
}

impl Archive {
    /// Adds the file at `source` as `name`; `false` (and nothing added) when it is gone.
    fn file(&mut self, name: &str, source: &Path, compress: bool) -> anyhow::Result<bool> {
        let mut file = match File::open(source) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("reading {}", source.display())),
        };
        let size = file.metadata()?.len();
        let name = format!("{}{name}", layout::DATA);
        self.0.start_file(name, options(compress, size))?;
        std::io::copy(&mut file, &mut self.0)
            .with_context(|| format!("archiving {}", source.display()))?;
        Ok(true)
    }

    fn dir(&mut self, name: &str) -> anyhow::Result<()> {
        let options = SimpleFileOptions::default().unix_permissions(0o700);
        self.0
            .add_directory(format!("{}{name}/", layout::DATA), options)?;
        Ok(())
    }

    /// Adds the directory `source` and everything in it as `name` (regular files and
    /// directories only: a saved repository has nothing else).
    fn tree(&mut self, name: &str, source: &Path) -> anyhow::Result<()> {
        self.dir(name)?;
        let mut entries: Vec<_> = std::fs::read_dir(source)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = format!("{name}/{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                self.tree(&child, &entry.path())?;
            } else if kind.is_file() {
                // Packs are compressed already.
                let packed = child.ends_with(".pack");
                self.file(&child, &entry.path(), !packed)?;
            }
        }
        Ok(())
    }

    /// Adds every job's artifacts archive; returns how many.
    fn artifacts(&mut self, live: &Path) -> anyhow::Result<u64> {
        let entries = match std::fs::read_dir(live) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("reading {}", live.display())),
        };
        let mut jobs: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| layout::number(name))
            .collect();
        jobs.sort();
        self.dir(layout::ARTIFACTS)?;
        let mut count = 0;
        for job in jobs {
            let name = format!("{}/{job}/{}", layout::ARTIFACTS, layout::ARTIFACTS_FILE);
            let source = live.join(&job).join(layout::ARTIFACTS_FILE);
            // Without the file the directory holds only an upload in progress.
            if source.is_file() {
                self.dir(&format!("{}/{job}", layout::ARTIFACTS))?;
                if self.file(&name, &source, false)? {
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

/// A private directory next to the archive for the database copy and the repositories'
/// copies, removed when dropped.
struct Staging(PathBuf);

impl Staging {
    fn next_to(archive: &Path) -> anyhow::Result<Staging> {
        let dir = sibling(archive, "staging");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(Staging(dir))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `.<name>.<what>-<pid>` in the archive's directory.
fn sibling(archive: &Path, what: &str) -> PathBuf {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipewright-backup".into());
    archive.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

fn partial_name(archive: &Path) -> PathBuf {
    sibling(archive, "partial")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn report(to: &Path, manifest: &Manifest, saved: &repositories::Saved) {
    println!("Backed up to {}: {}.", to.display(), manifest.contents());
    for (project, shas) in &saved.missing_commits {
        eprintln!(
            "warning: project {project}: {} pipelines' commits are on no branch or tag any more \
             (force-pushed or deleted after the database was copied) and are not in the backup: {}",
            shas.len(),
            shas.join(", ")
        );
    }
    match manifest.secrets.is_empty() {
        true => eprintln!("note: {}", manifest.warning),
        false => eprintln!(
            "WARNING: {} ({} is mode 0600.)",
            manifest.warning,
            to.display()
        ),
    }
}
