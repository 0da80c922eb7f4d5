//! Pipewright's shared vocabulary: ids, roles, visibility, statuses and secret types.
//! No I/O, no async.
