//! Benchmark programs for Pipewright's performance targets. Each program is a binary under
//! `src/bin/`; run them with `cargo run --release -p pipewright-bench --bin NAME`. They measure
//! and print figures; no test asserts on time.
