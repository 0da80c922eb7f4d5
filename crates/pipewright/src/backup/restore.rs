//! `pipewright restore`: an archive `pipewright backup` wrote, unpacked into a new data
//! directory. The archive is untrusted input, so everything is checked before anything is
//! written: its manifest (format, and a schema this binary can run), every entry's name (one of
//! the shapes in `layout`, so nothing lands outside the directory), its kind (files and
//! directories only: no links, nothing encrypted) and the total size (bounded). Files are then
//! created anew (never overwriting: an entry named twice is refused), written exactly to their
//! declared size and synced; a failure removes what was written.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::RestoreArgs;
use super::layout::{self, Manifest, Target};

/// Entries an archive may hold (a backup writes a few per repository and artifact).
const MAX_ENTRIES: usize = 1_000_000;
/// The manifest is a few hundred bytes.
const MAX_MANIFEST: u64 = 64 * 1024;
/// The default bound on what an archive unpacks to, as a multiple of its size: a database
/// compresses a few times, packs and artifacts not at all, while a deflate bomb expands a
/// thousandfold.
const DEFAULT_RATIO: u64 = 64;

type Zip = zip::ZipArchive<BufReader<File>>;

pub fn run(args: RestoreArgs) -> anyhow::Result<()> {
    let file =
        File::open(&args.from).with_context(|| format!("opening {}", args.from.display()))?;
    let archive_size = file.metadata()?.len();
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{} is not a Pipewright backup", args.from.display()))?;
    if zip.len() > MAX_ENTRIES {
        bail!("the archive has more than {MAX_ENTRIES} entries; a backup has far fewer");
    }
    let manifest = read_manifest(&mut zip)?;
    let limit = args
        .max_size
        .unwrap_or_else(|| archive_size.saturating_mul(DEFAULT_RATIO));
    let plan = plan(&mut zip, limit)?;
    let dir = &args.data_dir;
    let created = prepare(dir)?;
    if let Err(err) = unpack(&mut zip, &plan, dir) {
        undo(dir, created);
        return Err(err);
    }
    if manifest.database == "sqlite" {
        check_database(dir, &manifest).inspect_err(|_| undo(dir, created))?;
    }
    report(dir, &manifest);
    Ok(())
}

/// The manifest, checked: a format this binary reads, a schema it can run.
fn read_manifest(zip: &mut Zip) -> anyhow::Result<Manifest> {
    let entry = zip
        .by_name(layout::MANIFEST)
        .map_err(|_| anyhow::anyhow!("not a Pipewright backup: no {}", layout::MANIFEST))?;
    let mut text = Vec::new();
    entry.take(MAX_MANIFEST).read_to_end(&mut text)?;
    let manifest: Manifest =
        serde_json::from_slice(&text).context("reading the backup's manifest")?;
    if manifest.format != layout::FORMAT {
        bail!(
            "this backup's format is {}; this Pipewright reads format {}",
            manifest.format,
            layout::FORMAT
        );
    }
    let latest = pipewright_store::latest_version();
    if let Some(version) = manifest.schema_version.filter(|v| *v > latest) {
        bail!(
            "this backup was made by a newer Pipewright ({}, schema version {version}; this one \
             knows up to {latest}): restore it with that version or a later one",
            manifest.pipewright_version
        );
    }
    Ok(manifest)
}

/// Every entry's destination, checked before anything is written.
fn plan(zip: &mut Zip, limit: u64) -> anyhow::Result<Vec<(usize, Target)>> {
    let mut plan = Vec::with_capacity(zip.len());
    let mut total: u64 = 0;
    for index in 0..zip.len() {
        let entry = zip.by_index_raw(index)?;
        let name = entry.name().to_string();
        let target = layout::target(&name).map_err(anyhow::Error::msg)?;
        if entry.encrypted() {
            bail!("{name:?} is encrypted");
        }
        let is_dir_entry = matches!(target, Target::Dir(_));
        let kind_ok = match &target {
            Target::Dir(_) => entry.is_dir(),
            _ => entry.is_file() && !entry.is_symlink(),
        };
        // A link, device or other special file is refused whatever its name says.
        let mode_ok = entry.unix_mode().is_none_or(|mode| {
            let kind = mode & 0o170_000;
            kind == 0 || kind == if is_dir_entry { 0o040_000 } else { 0o100_000 }
        });
        if !kind_ok || !mode_ok {
            bail!("{name:?} is not a plain file or directory");
        }
        total = total.saturating_add(entry.size());
        if total > limit {
            bail!(
                "the archive unpacks to more than {limit} bytes; if it is a backup you trust, \
                 raise --max-size"
            );
        }
        plan.push((index, target));
    }
    Ok(plan)
}

/// Makes `dir` (mode 0700) or checks that it is empty; returns whether it was created.
fn prepare(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty; restore into a new or empty directory",
                    dir.display()
                );
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// Removes what a failed restore wrote: `dir` itself if it made it, else its contents.
fn undo(dir: &Path, created: bool) {
    if created {
        let _ = std::fs::remove_dir_all(dir);
    } else if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir_all(entry.path())
                .or_else(|_| std::fs::remove_file(entry.path()));
        }
    }
}

fn unpack(zip: &mut Zip, plan: &[(usize, Target)], dir: &Path) -> anyhow::Result<()> {
    for (index, target) in plan {
        match target {
            Target::Manifest => {}
            // Directories are made as needed (a directory entry may come after its files).
            Target::Dir(rel) => make_dirs(dir, rel)?,
            Target::File(rel) => {
                if let Some(parent) = rel.parent() {
                    make_dirs(dir, parent)?;
                }
                let entry = zip.by_index(*index)?;
                write_file(entry, &dir.join(rel))?;
            }
        }
    }
    Ok(())
}

/// Makes `rel` and its parents below `dir` (mode 0700). Nothing below `dir` is a link: it was
/// empty, and a restore makes only directories and files.
fn make_dirs(dir: &Path, rel: &Path) -> anyhow::Result<()> {
    if rel.as_os_str().is_empty() {
        return Ok(());
    }
    let path = dir.join(rel);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Writes an entry to a new file, exactly its declared size.
fn write_file(
    entry: zip::read::ZipFile<'_, BufReader<File>>,
    path: &PathBuf,
) -> anyhow::Result<()> {
    let size = entry.size();
    let name = entry.name().to_string();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| match path.exists() {
            true => format!("{name:?} appears twice in the archive"),
            false => format!("creating {}", path.display()),
        })?;
    // One byte more than declared is enough to tell a lying entry.
    let mut body = entry.take(size.saturating_add(1));
    let written = std::io::copy(&mut body, &mut file)
        .with_context(|| format!("unpacking {name:?} (is the archive damaged?)"))?;
    if written != size {
        bail!("{name:?} is not the size the archive declares");
    }
    file.flush()?;
    file.sync_all()?;
    Ok(())
}

/// The restored database opens and is at the schema the manifest says.
fn check_database(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let file = dir.join(layout::DATABASE);
    if !file.is_file() {
        bail!("the backup has no database, though its manifest says it has");
    }
    let snapshot = pipewright_store::backup::inspect_sqlite(&file)
        .context("the restored database does not open")?;
    if snapshot.schema_version != manifest.schema_version {
        bail!(
            "the restored database is at schema version {:?}, not {:?} as the manifest says",
            snapshot.schema_version,
            manifest.schema_version
        );
    }
    Ok(())
}

fn report(dir: &Path, manifest: &Manifest) {
    println!(
        "Restored into {}: {} (backed up by Pipewright {}).",
        dir.display(),
        manifest.contents(),
        manifest.pipewright_version
    );
    if manifest.database == "sqlite" {
        println!(
            "Start it with: pipewright serve --data-dir {} (and the --external-url it had)",
            dir.display()
        );
    } else {
        println!(
            "The database was PostgreSQL and is not in the archive: restore its pg_dump into a \
             new, empty database (pg_restore --no-owner --dbname=…), then start with: \
             pipewright serve --data-dir {} --database-url postgres://…",
            dir.display()
        );
    }
    if !dir.join(layout::KEY).is_file() {
        println!(
            "The server key is not in this backup: copy the server's pipewright.key into {} \
             (mode 0600) before starting it. Without it the server makes a new key, and the \
             trigger tokens and CI/CD variables sealed under the old one cannot be opened.",
            dir.display()
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    /// A scratch directory of its own, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir()
                .join(format!("pipewright-restore-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Writes entries into a test archive.
    type AddEntries = Box<dyn Fn(&mut zip::ZipWriter<std::fs::File>, SimpleFileOptions)>;

    fn manifest(schema_version: i64) -> Vec<u8> {
        serde_json::to_vec(&Manifest {
            format: layout::FORMAT,
            pipewright_version: "0.0.0-test".into(),
            created_at: 0,
            database: "postgres".into(),
            schema_version: Some(schema_version),
            repositories: 0,
            artifacts: 0,
            secrets: Vec::new(),
            warning: String::new(),
        })
        .unwrap()
    }

    /// An archive with a good manifest and what `add` writes.
    fn archive(
        dir: &Path,
        add: impl FnOnce(&mut zip::ZipWriter<std::fs::File>, SimpleFileOptions),
    ) -> PathBuf {
        let path = dir.join("backup.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = SimpleFileOptions::default();
        zip.start_file(layout::MANIFEST, options).unwrap();
        zip.write_all(&manifest(1)).unwrap();
        zip.start_file("data/pipewright.key", options).unwrap();
        zip.write_all(b"0123456789abcdef0123456789abcdef").unwrap();
        add(&mut zip, options);
        zip.finish().unwrap();
        path
    }

    fn restore(from: &Path, into: &Path, max_size: Option<u64>) -> anyhow::Result<()> {
        run(RestoreArgs {
            from: from.to_path_buf(),
            data_dir: into.to_path_buf(),
            max_size,
        })
    }

    #[test]
    fn a_well_formed_archive_is_restored_into_a_new_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::new("good");
        let from = archive(&scratch.0, |zip, options| {
            zip.add_directory("data/artifacts/3/", options).unwrap();
            zip.start_file("data/artifacts/3/artifacts.zip", options)
                .unwrap();
            zip.write_all(b"PK").unwrap();
        });
        let into = scratch.0.join("restored");
        restore(&from, &into, None).unwrap();
        let mode = std::fs::metadata(&into).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let key = std::fs::metadata(into.join("pipewright.key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read(into.join("artifacts/3/artifacts.zip")).unwrap(),
            b"PK"
        );
    }

    #[test]
    fn entries_that_would_land_outside_the_directory_or_are_links_are_refused() {
        let scratch = Scratch::new("hostile");
        let outside = scratch.0.join("outside");
        let hostile: Vec<(&str, AddEntries)> = vec![
            (
                "dot-dot",
                Box::new(|zip, o| {
                    zip.start_file("data/../outside", o).unwrap();
                    zip.write_all(b"x").unwrap();
                }),
            ),
            (
                "dot-dot inside a repository",
                Box::new(|zip, o| {
                    zip.start_file("data/repositories/1.git/../../../outside", o)
                        .unwrap();
                    zip.write_all(b"x").unwrap();
                }),
            ),
            (
                "absolute",
                Box::new(|zip, o| {
                    zip.start_file("/tmp/pipewright-restore-absolute", o)
                        .unwrap();
                    zip.write_all(b"x").unwrap();
                }),
            ),
            (
                "a link out",
                Box::new(|zip, o| {
                    zip.add_symlink("data/artifacts/1/artifacts.zip", "/etc/passwd", o)
                        .unwrap();
                }),
            ),
            (
                "a link as a repository file",
                Box::new(|zip, o| {
                    zip.add_symlink("data/repositories/1.git/config", "../../../../outside", o)
                        .unwrap();
                }),
            ),
            (
                "a file a backup never writes",
                Box::new(|zip, o| {
                    zip.start_file("data/.ssh/authorized_keys", o).unwrap();
                    zip.write_all(b"x").unwrap();
                }),
            ),
        ];
        for (what, add) in hostile {
            let from = archive(&scratch.0, add);
            let into = scratch.0.join("restored");
            let err = restore(&from, &into, None).expect_err(what);
            assert!(
                err.to_string().contains("not something a backup holds")
                    || err.to_string().contains("not a plain file"),
                "{what}: {err:#}"
            );
            assert!(!into.exists(), "{what}: nothing is left behind");
            assert!(!outside.exists(), "{what}");
        }
        assert!(!Path::new("/tmp/pipewright-restore-absolute").exists());
    }

    #[test]
    fn an_archive_that_unpacks_far_beyond_its_size_is_refused_unless_allowed() {
        let scratch = Scratch::new("bomb");
        // 8 MiB of zeros deflate to a few KiB.
        let from = archive(&scratch.0, |zip, o| {
            let o = o.compression_method(zip::CompressionMethod::Deflated);
            zip.start_file("data/pipewright.sqlite3", o).unwrap();
            zip.write_all(&vec![0u8; 8 << 20]).unwrap();
        });
        let into = scratch.0.join("restored");
        let err = restore(&from, &into, None).unwrap_err();
        assert!(err.to_string().contains("raise --max-size"), "{err:#}");
        assert!(!into.exists());
        restore(&from, &into, Some(16 << 20)).unwrap();
        assert_eq!(
            std::fs::metadata(into.join("pipewright.sqlite3"))
                .unwrap()
                .len(),
            8 << 20
        );
    }

    #[test]
    fn a_directory_with_anything_in_it_is_not_restored_into() {
        let scratch = Scratch::new("nonempty");
        let from = archive(&scratch.0, |_, _| {});
        let into = scratch.0.join("restored");
        std::fs::create_dir(&into).unwrap();
        std::fs::write(into.join("keep-me"), "data").unwrap();
        let err = restore(&from, &into, None).unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err:#}");
        assert_eq!(
            std::fs::read_to_string(into.join("keep-me")).unwrap(),
            "data"
        );
        std::fs::remove_file(into.join("keep-me")).unwrap();
        restore(&from, &into, None).unwrap();
        assert!(into.join("pipewright.key").is_file());
    }

    #[test]
    fn a_backup_of_a_newer_schema_is_refused() {
        let scratch = Scratch::new("newer");
        let path = scratch.0.join("backup.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file(layout::MANIFEST, SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&manifest(pipewright_store::latest_version() + 1))
            .unwrap();
        zip.finish().unwrap();
        let err = restore(&path, &scratch.0.join("restored"), None).unwrap_err();
        assert!(
            err.to_string().contains("made by a newer Pipewright"),
            "{err:#}"
        );
    }
}
