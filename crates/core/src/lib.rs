//! Pipewright's shared vocabulary: roles, visibility, timestamps and secret types that every
//! other crate speaks. It owns no I/O and no async code; it must never learn about SQL, HTTP or
//! git. Types here exist so that wrong states fail to compile: an access level is one of
//! GitLab's five roles, a secret cannot be printed by accident, a timestamp has one format.

pub mod access;
pub mod secret;
pub mod status;
pub mod time;

pub use access::{AccessLevel, Visibility};
pub use secret::Secret;
pub use status::{PipelineSource, Status};
pub use time::Timestamp;
