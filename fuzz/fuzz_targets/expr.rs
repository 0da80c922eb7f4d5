//! The expression language must never panic or loop, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(expr) = pipewright_expr::Expression::parse(text) {
            let mut vars = std::collections::HashMap::new();
            vars.insert("A".to_string(), "/a.*/i".to_string());
            vars.insert("B".to_string(), String::new());
            let _ = expr.evaluate(&vars);
        }
    }
});
