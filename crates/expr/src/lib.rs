//! GitLab's CI/CD expression language, as used by `rules:if`, `workflow:rules:if` and
//! `only/except:variables`: a hand-written lexer, a shunting-yard parser and an evaluator. The
//! crate owns the language and nothing else: no I/O, no knowledge of where variables come
//! from (callers supply them through [`Variables`]).
//!
//! # Grammar
//!
//! ```text
//! expression := operand | expression binary expression | "!" expression | "(" expression ")"
//! operand    := variable | string | pattern | "null" | "true" | "false"
//! variable   := "$" NAME                          NAME = [A-Za-z0-9_]+   (no `${NAME}`)
//! string     := '"' any-but-'"' '"' | "'" any-but-"'" "'"      (no escapes, as in GitLab)
//! pattern    := "/" (any-but-"/" | "\/")* "/" [imsxU]*        (RE2 semantics, via `regex`)
//! binary     := "==" | "!=" | "=~" | "!~" | "&&" | "||"
//! ```
//!
//! Precedence, tightest first: `!`; then `==`, `!=`, `=~`, `!~`; then `&&`; then `||`. Binary
//! operators are left-associative; parentheses group. At most 100 tokens.
//!
//! # Semantics (mirroring GitLab's `Gitlab::Ci::Pipeline::Expression`)
//!
//! - An undefined variable is `null`, distinct from the empty string: `$UNDEF == null` is
//!   true, `$EMPTY == null` is false, `$EMPTY == ""` is true.
//! - `&&` and `||` behave like Ruby's: they return one of their operands, and only `null` and
//!   `false` are falsy while evaluating (`"" && "x"` is `"x"`).
//! - The statement is true when its final value is "present": not `null`, not `false`, not
//!   a blank string.
//! - `=~` matches the left side (`null` as `""`) against a pattern literal, or against a
//!   variable whose value is `/pattern/flags`; a variable holding any other text is searched
//!   for as a substring (GitLab falls back to Ruby's `String#scan`). A `null` right side never
//!   matches. `!~` is the negation of `=~`.

mod error;
mod eval;
mod lexer;
mod parser;
mod pattern;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use error::ParseError;
pub use pattern::Pattern;

/// GitLab's limit on the number of tokens in one expression.
pub const MAX_TOKENS: usize = 100;

/// Variable lookup; `None` is an undefined variable (GitLab's `nil`), distinct from `Some("")`.
pub trait Variables {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Variables for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Variables for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl Variables for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

/// A parsed expression: immutable, cheap to evaluate many times. Clones share the parsed
/// tree, and with it each `=~` pattern's compiled regex and its match caches.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    root: Arc<parser::Node>,
}

impl Expression {
    pub fn parse(source: &str) -> Result<Expression, ParseError> {
        let tokens = lexer::lex(source)?;
        let root = parser::parse(tokens)?;
        Ok(Expression {
            source: source.to_string(),
            root: Arc::new(root),
        })
    }

    /// GitLab's truthiness of the whole statement.
    pub fn evaluate(&self, vars: &dyn Variables) -> bool {
        eval::evaluate(&self.root, vars).is_present()
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the expression reads, in order of appearance, without repeats.
    pub fn variable_names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.root.collect_variables(&mut out);
        out
    }
}

#[cfg(test)]
mod tests;
