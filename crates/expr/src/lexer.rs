//! Turning source text into tokens, in GitLab's lexeme order: parentheses, variables, strings,
//! patterns, `null`, booleans, then operators. Whitespace separates tokens and is dropped.

use crate::pattern::Pattern;

use crate::MAX_TOKENS;
use crate::error::ParseError;

#[derive(Debug, Clone)]
pub enum Token {
    Open,
    Close,
    Variable(String),
    String(String),
    Pattern(Pattern),
    Null,
    Bool(bool),
    Op(Op),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    Matches,
    NotMatches,
    And,
    Or,
    Not,
}

impl Op {
    /// Binding strength: a lower number binds tighter (GitLab follows Ruby's table).
    pub fn precedence(self) -> u8 {
        match self {
            Op::Not => 1,
            Op::Equals | Op::NotEquals | Op::Matches | Op::NotMatches => 10,
            Op::And => 11,
            Op::Or => 12,
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Compiles `/body/flags` text into a regex with RE2 semantics. Ruby's `m` (dot matches
/// newline) is RE2's `s`.
pub fn compile_pattern(body: &str, flags: &str) -> Result<Pattern, ParseError> {
    let mut prefix = String::new();
    for f in flags.chars() {
        match f {
            'i' => prefix.push('i'),
            'm' | 's' => prefix.push('s'),
            'x' => prefix.push('x'),
            'U' => prefix.push('U'),
            _ => return Err(ParseError::new("Invalid regular expression flags")),
        }
    }
    // `\/` in the literal is a slash; the regex crate does not need it escaped.
    let body = body.replace("\\/", "/");
    let full = if prefix.is_empty() {
        body
    } else {
        format!("(?{prefix}){body}")
    };
    Pattern::new(full).map_err(|_| ParseError::new("Invalid regular expression"))
}

/// Parses a whole `/pattern/flags` string (for a variable used on the right of `=~`).
pub fn pattern_from_text(text: &str) -> Option<Pattern> {
    let rest = text.strip_prefix('/')?;
    let end = rest.rfind('/')?;
    let (body, flags) = (&rest[..end], &rest[end + 1..]);
    if !flags.chars().all(|c| "imsxU".contains(c)) {
        return None;
    }
    compile_pattern(body, flags).ok()
}

pub fn lex(source: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if tokens.len() >= MAX_TOKENS {
            return Err(ParseError::new("Too many tokens!"));
        }
        let rest = &source[i..];
        let (token, len) = match b {
            b'(' => (Token::Open, 1),
            b')' => (Token::Close, 1),
            // Only `$NAME` is a variable here: `${NAME}` is not part of the language (GitLab:
            // `Lexeme::Variable::PATTERN = /\$(?<name>\w+)/` in
            // lib/gitlab/ci/pipeline/expression/lexeme/variable.rb), so `${` is an unknown
            // lexeme and the rule is invalid.
            b'$' => {
                let name_len = bytes[i + 1..]
                    .iter()
                    .take_while(|c| is_name_byte(**c))
                    .count();
                if name_len == 0 {
                    return Err(ParseError::new("Unknown lexeme found!"));
                }
                (
                    Token::Variable(source[i + 1..i + 1 + name_len].to_string()),
                    name_len + 1,
                )
            }
            b'"' | b'\'' => {
                let end = rest[1..]
                    .find(b as char)
                    .ok_or_else(|| ParseError::new("Unknown lexeme found!"))?;
                (Token::String(rest[1..1 + end].to_string()), end + 2)
            }
            b'/' => {
                // The body runs to the next unescaped slash.
                let mut j = 1;
                let body_end = loop {
                    match bytes.get(i + j) {
                        None => return Err(ParseError::new("Unknown lexeme found!")),
                        Some(b'\\') => j += 2,
                        Some(b'/') => break j,
                        Some(_) => j += 1,
                    }
                };
                let flags_len = bytes[i + body_end + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count();
                let body = source
                    .get(i + 1..i + body_end)
                    .ok_or_else(|| ParseError::new("Unknown lexeme found!"))?;
                let flags = &source[i + body_end + 1..i + body_end + 1 + flags_len];
                (
                    Token::Pattern(compile_pattern(body, flags)?),
                    body_end + 1 + flags_len,
                )
            }
            _ => {
                let two = rest.get(..2).unwrap_or("");
                let word_len = bytes[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count();
                let word = &rest[..word_len];
                match (two, word) {
                    (_, "null") => (Token::Null, 4),
                    (_, "true") => (Token::Bool(true), 4),
                    (_, "false") => (Token::Bool(false), 5),
                    ("==", _) => (Token::Op(Op::Equals), 2),
                    ("!=", _) => (Token::Op(Op::NotEquals), 2),
                    ("=~", _) => (Token::Op(Op::Matches), 2),
                    ("!~", _) => (Token::Op(Op::NotMatches), 2),
                    ("&&", _) => (Token::Op(Op::And), 2),
                    ("||", _) => (Token::Op(Op::Or), 2),
                    _ if b == b'!' => (Token::Op(Op::Not), 1),
                    _ => return Err(ParseError::new("Unknown lexeme found!")),
                }
            }
        };
        tokens.push(token);
        i += len;
    }
    Ok(tokens)
}
