//! The YAML loader and config engine must never panic, loop or blow up memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pipewright_config::lint(text, &pipewright_config::NoFiles, &pipewright_config::LintOptions::default());
    }
});
