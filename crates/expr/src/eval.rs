//! Evaluating a tree against variables, with Ruby's semantics where GitLab inherits them.

use std::borrow::Cow;

use crate::pattern::Pattern;

use crate::Variables;
use crate::lexer::{Op, pattern_from_text};
use crate::parser::Node;

/// A runtime value.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Str(Cow<'a, str>),
    Pattern(Cow<'a, Pattern>),
}

impl Value<'_> {
    /// Ruby truthiness, used inside `&&` and `||`: only `nil` and `false` are falsy.
    fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    /// ActiveSupport's `present?`, used for the statement's result and for `!`.
    pub fn is_present(&self) -> bool {
        match self {
            Value::Null | Value::Bool(false) => false,
            Value::Bool(true) | Value::Pattern(_) => true,
            Value::Str(s) => !s.trim().is_empty(),
        }
    }

    /// The text form used when a value meets a string (`to_s`).
    fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Null => Cow::Borrowed(""),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Str(s) => Cow::Borrowed(s.as_ref()),
            Value::Pattern(p) => Cow::Owned(format!("/{}/", p.as_str())),
        }
    }
}

fn equals(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Pattern(x), Value::Pattern(y)) => x.as_str() == y.as_str(),
        // Booleans (from `!`) compare with strings through their text, as GitLab coerces them.
        _ => a.text() == b.text(),
    }
}

fn matches(left: &Value<'_>, right: &Value<'_>) -> bool {
    let text = left.text();
    match right {
        Value::Null => false,
        Value::Pattern(p) => p.is_match(&text),
        Value::Str(s) => match pattern_from_text(s) {
            Some(p) => p.is_match(&text),
            // Not a `/pattern/`: GitLab's fallback is a substring search.
            None => text.contains(s.as_ref()),
        },
        Value::Bool(_) => text.contains(right.text().as_ref()),
    }
}

pub fn evaluate<'a>(node: &'a Node, vars: &'a dyn Variables) -> Value<'a> {
    match node {
        Node::Variable(name) => match vars.get(name) {
            Some(v) => Value::Str(Cow::Borrowed(v)),
            None => Value::Null,
        },
        Node::String(s) => Value::Str(Cow::Borrowed(s)),
        Node::Pattern(p) => Value::Pattern(Cow::Borrowed(p)),
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Not(inner) => Value::Bool(!evaluate(inner, vars).is_present()),
        Node::Binary(op, l, r) => match op {
            Op::And => {
                let left = evaluate(l, vars);
                if left.truthy() {
                    evaluate(r, vars)
                } else {
                    left
                }
            }
            Op::Or => {
                let left = evaluate(l, vars);
                if left.truthy() {
                    left
                } else {
                    evaluate(r, vars)
                }
            }
            Op::Equals => Value::Bool(equals(&evaluate(l, vars), &evaluate(r, vars))),
            Op::NotEquals => Value::Bool(!equals(&evaluate(l, vars), &evaluate(r, vars))),
            Op::Matches => Value::Bool(matches(&evaluate(l, vars), &evaluate(r, vars))),
            Op::NotMatches => Value::Bool(!matches(&evaluate(l, vars), &evaluate(r, vars))),
            Op::Not => Value::Bool(!evaluate(r, vars).is_present()),
        },
    }
}
