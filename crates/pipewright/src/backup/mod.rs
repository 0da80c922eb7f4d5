//! `pipewright backup` and `pipewright restore`: one archive holding everything a server needs
//! to start again where it was — its database (SQLite; a PostgreSQL database is dumped with
//! `pg_dump`), its repositories, its artifacts and its key — taken while it runs.
//!
//! **Order is what makes it consistent.** The database is copied first, as of one instant
//! (`VACUUM INTO`); then the repositories, then the artifacts. Each pipeline in the copy was
//! created from a commit its repository already held (creation resolves the ref in git before it
//! writes the pipeline), and a repository only gains commits afterwards, so every pipeline's
//! commit is in the repositories saved after it. The other order could save a pipeline whose
//! commit was pushed after its repository was copied. The exception is a branch force-pushed or
//! deleted between the two copies, which leaves its old commits on no ref: the backup checks
//! every pipeline's commit and names the ones it could not save. Artifacts are written to a
//! temporary file and renamed into place before a job records them, so every artifact the copy
//! records is a whole file; one deleted meanwhile (expired) is skipped.
//!
//! A repository is saved by git itself (`git fetch` of every ref into a new repository), so
//! pushes and git's own housekeeping can go on meanwhile; the copy has the same refs, `HEAD`
//! and config, and its objects in one pack.
//!
//! **The archive is a zip** (the crate is already here for artifacts): `pipewright-backup.json`
//! (what it holds, and from which version), and under `data/` the data directory's files as
//! `restore` puts them back. It holds the server key, which opens every secret sealed in the
//! database (trigger tokens, CI/CD variables): the file is created mode 0600 and the command
//! says so (`--without-key` leaves it out, to be kept apart, as GitLab keeps its secrets file
//! out of its backups). `restore` treats the archive as untrusted input: it writes only the files a backup
//! writes, by names it checks (no absolute paths, no `..`, no links), within a size bound, into
//! a new or empty directory.

mod layout;
mod repositories;
mod restore;
mod save;

use std::path::PathBuf;

use clap::Args;

use crate::settings::DataArgs;

pub use restore::run as restore;
pub use save::run as backup;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The archive to write (a zip file; it must not exist yet). It holds the server key: keep
    /// it as secret as the server itself
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Leave the server key (and the embedded runner's token) out, to keep it apart from the
    /// data it opens, as GitLab does with its secrets file. A restore then needs a copy of
    /// `pipewright.key` put into the data directory before the server starts
    #[arg(long)]
    pub without_key: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive `pipewright backup` wrote
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The new data directory to restore into: it must not exist or be empty
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Refuse an archive that would unpack to more than this many bytes [default: 64 times
    /// the archive's size]
    #[arg(long, value_name = "BYTES")]
    pub max_size: Option<u64>,
}
