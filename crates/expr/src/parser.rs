//! From tokens to a tree with the shunting-yard algorithm (as GitLab's parser does), so no
//! input can recurse deeply while parsing; the 100-token limit bounds the tree.

use crate::pattern::Pattern;

use crate::error::ParseError;
use crate::lexer::{Op, Token};

#[derive(Debug, Clone)]
pub enum Node {
    Variable(String),
    String(String),
    Pattern(Pattern),
    Null,
    Bool(bool),
    Not(Box<Node>),
    Binary(Op, Box<Node>, Box<Node>),
}

impl Node {
    pub fn collect_variables<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Node::Variable(name) if !out.contains(&name.as_str()) => out.push(name),
            Node::Not(inner) => inner.collect_variables(out),
            Node::Binary(_, l, r) => {
                l.collect_variables(out);
                r.collect_variables(out);
            }
            _ => {}
        }
    }
}

enum Stacked {
    Op(Op),
    Open,
}

fn apply(output: &mut Vec<Node>, op: Op) -> Result<(), ParseError> {
    let unreachable = || ParseError::new("Unreachable nodes in parse tree");
    if op == Op::Not {
        let operand = output.pop().ok_or_else(unreachable)?;
        output.push(Node::Not(Box::new(operand)));
    } else {
        let right = output.pop().ok_or_else(unreachable)?;
        let left = output.pop().ok_or_else(unreachable)?;
        output.push(Node::Binary(op, Box::new(left), Box::new(right)));
    }
    Ok(())
}

pub fn parse(tokens: Vec<Token>) -> Result<Node, ParseError> {
    let unreachable = || ParseError::new("Unreachable nodes in parse tree");
    let mut output: Vec<Node> = Vec::new();
    let mut ops: Vec<Stacked> = Vec::new();
    // Whether the next token must start an operand (at the start, after an operator or `(`).
    let mut expect_operand = true;
    let had_tokens = !tokens.is_empty();
    for token in tokens {
        match token {
            Token::Open => {
                if !expect_operand {
                    return Err(unreachable());
                }
                ops.push(Stacked::Open);
            }
            Token::Close => {
                if expect_operand {
                    return Err(ParseError::new("Empty parse tree"));
                }
                loop {
                    match ops.pop() {
                        Some(Stacked::Op(op)) => apply(&mut output, op)?,
                        Some(Stacked::Open) => break,
                        None => return Err(ParseError::new("Unmatched parenthesis")),
                    }
                }
                apply_pending_nots(&mut output, &mut ops)?;
            }
            Token::Op(Op::Not) => {
                if !expect_operand {
                    return Err(unreachable());
                }
                ops.push(Stacked::Op(Op::Not));
            }
            Token::Op(op) => {
                if expect_operand {
                    return Err(unreachable());
                }
                while let Some(Stacked::Op(top)) = ops.last() {
                    let top = *top;
                    if op.precedence() < top.precedence() {
                        break;
                    }
                    ops.pop();
                    apply(&mut output, top)?;
                }
                ops.push(Stacked::Op(op));
                expect_operand = true;
            }
            Token::Variable(v) => push_operand(
                &mut output,
                &mut ops,
                &mut expect_operand,
                Node::Variable(v),
            )?,
            Token::String(s) => {
                push_operand(&mut output, &mut ops, &mut expect_operand, Node::String(s))?
            }
            Token::Pattern(p) => {
                push_operand(&mut output, &mut ops, &mut expect_operand, Node::Pattern(p))?
            }
            Token::Null => push_operand(&mut output, &mut ops, &mut expect_operand, Node::Null)?,
            Token::Bool(b) => {
                push_operand(&mut output, &mut ops, &mut expect_operand, Node::Bool(b))?
            }
        }
    }
    if expect_operand && had_tokens {
        return Err(unreachable());
    }
    while let Some(top) = ops.pop() {
        match top {
            Stacked::Op(op) => apply(&mut output, op)?,
            Stacked::Open => return Err(ParseError::new("Unmatched parenthesis")),
        }
    }
    match (output.pop(), output.is_empty()) {
        (Some(root), true) => Ok(root),
        (None, _) => Err(ParseError::new("Empty parse tree")),
        (Some(_), false) => Err(unreachable()),
    }
}

fn push_operand(
    output: &mut Vec<Node>,
    ops: &mut Vec<Stacked>,
    expect_operand: &mut bool,
    node: Node,
) -> Result<(), ParseError> {
    if !*expect_operand {
        return Err(ParseError::new("Unreachable nodes in parse tree"));
    }
    output.push(node);
    *expect_operand = false;
    apply_pending_nots(output, ops)
}

/// `!` binds tighter than anything: it applies as soon as its operand is complete, so
/// `!$A == "x"` is `(!$A) == "x"`.
fn apply_pending_nots(output: &mut Vec<Node>, ops: &mut Vec<Stacked>) -> Result<(), ParseError> {
    while let Some(Stacked::Op(Op::Not)) = ops.last() {
        ops.pop();
        apply(output, Op::Not)?;
    }
    Ok(())
}
