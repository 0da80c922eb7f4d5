//! Pipewright's shared vocabulary: roles, visibility, statuses, pipeline sources, ref kinds,
//! timestamps and secret types that every other crate speaks, each written once here. It owns
//! no I/O and no async code; it must never learn about SQL, HTTP or git. Types here exist so
//! that wrong states fail to compile: an access level is one of GitLab's five roles, a secret
//! cannot be printed by accident, a timestamp has one format.

pub mod access;
pub mod refs;
pub mod secret;
pub mod status;
pub mod time;

pub use access::{AccessLevel, ProjectCreationLevel, SubgroupCreationLevel, Visibility};
pub use refs::RefKind;
pub use secret::Secret;
pub use status::{PipelineSource, Status};
pub use time::Timestamp;
