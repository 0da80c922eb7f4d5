//! The config engine as users meet it: the specification's own examples, each keyword, the
//! variable rules, and GitLab's error messages.

#![allow(clippy::unwrap_used)]

mod compatibility;
mod errors;
mod gitlab_semantics;
mod includes;
mod inputs;
mod keywords;
mod seeds;
mod support;
