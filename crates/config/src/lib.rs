//! The CI config engine: `.gitlab-ci.yml` plus a pipeline context become a typed pipeline
//! plan. (Being written: see the crate's issue.)
