//! The git layer's one error type. How the server maps it: `RepositoryNotFound` and
//! `InvalidRef` → 404, `InvalidPath` → 400, `TooLarge` → 413, `Ambiguous` → GitLab's
//! "Ref is ambiguous", `Protocol` and `InvalidGzip` → 400 for git clients; everything else is a
//! logged 500.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("repository not found")]
    RepositoryNotFound,
    /// The name is not a branch or tag (a bare commit SHA is not a ref).
    #[error("reference not found: {0}")]
    InvalidRef(String),
    /// A branch and a tag share the name.
    #[error("ref is ambiguous: {0}")]
    Ambiguous(String),
    /// A file path with `..`, an absolute path, empty segments or NUL.
    #[error("invalid file path")]
    InvalidPath(String),
    #[error("file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// A request body sent as `Content-Encoding: gzip` that is not gzip.
    #[error("request body is not valid gzip")]
    InvalidGzip,
    /// Malformed pkt-lines or a request git would reject.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// `git` failed; the message is for logs only (it may contain paths).
    #[error("git process failed: {0}")]
    Process(String),
    #[error(transparent)]
    Git(#[from] git2::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
