//! YAML text → a tree of [`Node`]s that keep their line and column, built from saphyr's event
//! stream by our own resolver so that we control what costs memory: aliases are expanded
//! against a node budget (an alias bomb is an error, not an OOM), nesting depth is bounded,
//! merge keys (`<<`) are applied with explicit keys winning, and `!reference [a, b]` tags
//! become [`Yaml::Reference`] nodes for the resolver. Plain scalars are typed as GitLab's YAML
//! parser (Psych, YAML 1.1) types them: `yes`/`no`/`on`/`off` are booleans too.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::{ConfigError, Location, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Map),
    /// `!reference [job, key, …]`, resolved later against the whole config.
    Reference(Vec<String>),
}

/// A mapping, in document order. Keys are scalars rendered as text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map(pub Vec<(String, Node)>);

impl Map {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn insert(&mut self, key: String, value: Node) {
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// `other` deep-merged over `self`: hashes merge recursively, everything else is replaced
    /// (GitLab's `deep_merge` for `extends`, `include` and `default`).
    pub fn deep_merge(&mut self, other: &Map) {
        for (k, v) in &other.0 {
            match (self.get_mut(k), &v.value) {
                (
                    Some(Node {
                        value: Yaml::Map(mine),
                        ..
                    }),
                    Yaml::Map(theirs),
                ) => mine.deep_merge(theirs),
                _ => self.insert(k.clone(), v.clone()),
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Yaml,
    pub line: usize,
    pub column: usize,
}

impl Node {
    pub fn new(value: Yaml) -> Self {
        Node {
            value,
            line: 0,
            column: 0,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Yaml::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar's text as GitLab would stringify it (`true`, `3`, `1.5`), if it is a scalar.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Bool(b) => Some(b.to_string()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Null => None,
            _ => None,
        }
    }

    pub fn location(&self, file: &str) -> Location {
        Location {
            file: file.to_string(),
            line: self.line,
            column: self.column,
        }
    }

    fn count(&self) -> usize {
        match &self.value {
            Yaml::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Yaml::Map(m) => 1 + m.0.iter().map(|(_, v)| v.count()).sum::<usize>(),
            _ => 1,
        }
    }
}

/// Bounds on what loading a file may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    /// Nodes produced in total, counting every alias expansion.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_depth: 64,
            max_nodes: 250_000,
        }
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        anchor: usize,
        line: usize,
        column: usize,
        reference: bool,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        anchor: usize,
        line: usize,
        column: usize,
    },
}

/// Psych's YAML 1.1 typing of plain scalars.
fn resolve_plain(text: &str) -> Yaml {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Yaml::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
            return Yaml::Bool(true);
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Yaml::Bool(false);
        }
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && digits.as_bytes()[0].is_ascii_digit()
        && let Ok(i) = text.replace('_', "").parse::<i64>()
    {
        return Yaml::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Yaml::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Yaml::Int(i);
    }
    let looks_float = text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && text.contains('.');
    if looks_float && let Ok(f) = text.parse::<f64>() {
        return Yaml::Float(f);
    }
    Yaml::Str(text.to_string())
}

fn key_text(node: &Node) -> String {
    match &node.value {
        Yaml::Null => String::new(),
        other => Node::new(other.clone()).scalar_text().unwrap_or_default(),
    }
}

/// Parses one YAML document. `file` names it in errors.
pub fn load(source: &str, file: &str, limits: &Limits) -> Result<Node> {
    if source.len() > limits.max_bytes {
        return Err(ConfigError::new(format!(
            "{file}: the CI config is larger than {} bytes",
            limits.max_bytes
        )));
    }
    let mut loader = Loader {
        file,
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        produced: 0,
        root: None,
        documents: 0,
    };
    let mut parser = Parser::new_from_str(source);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| {
            ConfigError::at(
                format!("(<unknown>): {} while parsing", e.info()),
                Location {
                    file: file.to_string(),
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
            )
        })?;
        loader.event(event, &span)?;
    }
    Ok(loader.root.unwrap_or_else(|| Node::new(Yaml::Null)))
}

/// Builds the tree from saphyr's events: collections under construction on a stack, anchors
/// remembered for aliases, every node produced counted against the budget.
struct Loader<'a> {
    file: &'a str,
    limits: &'a Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    /// Nodes produced so far, alias expansions included.
    produced: usize,
    root: Option<Node>,
    documents: usize,
}

impl Loader<'_> {
    fn err_at(&self, msg: &str, span: &Span) -> ConfigError {
        ConfigError::at(
            msg,
            Location {
                file: self.file.to_string(),
                line: span.start.line(),
                column: span.start.col() + 1,
            },
        )
    }

    /// Takes one event; a node it completes is attached to its parent (or becomes the root).
    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<()> {
        let (line, column) = (span.start.line(), span.start.col() + 1);
        let complete: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self.err_at("a CI config file must hold one YAML document", span));
                }
                None
            }
            Event::Alias(id) => Some(self.alias(id, span)?),
            Event::Scalar(text, style, anchor, _tag) => {
                self.produced += 1;
                let value = if style == ScalarStyle::Plain {
                    resolve_plain(&text)
                } else {
                    Yaml::Str(text.into_owned())
                };
                Some((
                    Node {
                        value,
                        line,
                        column,
                    },
                    anchor,
                ))
            }
            Event::SequenceStart(anchor, tag) => {
                let reference = tag
                    .as_ref()
                    .is_some_and(|t| t.handle == "!" && t.suffix == "reference");
                self.open(
                    Frame::Seq {
                        items: Vec::new(),
                        anchor,
                        line,
                        column,
                        reference,
                    },
                    span,
                )?;
                None
            }
            Event::MappingStart(anchor, _tag) => {
                self.open(
                    Frame::Map {
                        entries: Vec::new(),
                        pending_key: None,
                        anchor,
                        line,
                        column,
                    },
                    span,
                )?;
                None
            }
            Event::SequenceEnd => Some(self.close_seq(span)?),
            Event::MappingEnd => Some(self.close_map(span)?),
        };
        if self.produced > self.limits.max_nodes {
            return Err(self.err_at("the CI config expands to too many nodes", span));
        }
        if let Some((node, anchor)) = complete {
            self.attach(node, anchor);
        }
        Ok(())
    }

    /// An alias: a copy of its anchor's node, counted in full against the budget.
    fn alias(&mut self, id: usize, span: &Span) -> Result<(Node, usize)> {
        let node = self
            .anchors
            .get(&id)
            .ok_or_else(|| self.err_at("unknown alias", span))?;
        self.produced += node.count();
        if self.produced > self.limits.max_nodes {
            return Err(self.err_at(
                "the CI config expands to too many nodes (are aliases nested too deeply?)",
                span,
            ));
        }
        Ok((node.clone(), 0))
    }

    fn open(&mut self, frame: Frame, span: &Span) -> Result<()> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.err_at("the CI config is nested too deeply", span));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Ends a sequence; one tagged `!reference` becomes a [`Yaml::Reference`].
    fn close_seq(&mut self, span: &Span) -> Result<(Node, usize)> {
        let Some(Frame::Seq {
            items,
            anchor,
            line,
            column,
            reference,
        }) = self.stack.pop()
        else {
            return Err(self.err_at("unbalanced sequence", span));
        };
        self.produced += 1;
        let value = if reference {
            let path: Option<Vec<String>> = items.iter().map(Node::scalar_text).collect();
            Yaml::Reference(
                path.ok_or_else(|| self.err_at("!reference must be a list of names", span))?,
            )
        } else {
            Yaml::Seq(items)
        };
        Ok((
            Node {
                value,
                line,
                column,
            },
            anchor,
        ))
    }

    fn close_map(&mut self, span: &Span) -> Result<(Node, usize)> {
        let Some(Frame::Map {
            entries,
            anchor,
            line,
            column,
            ..
        }) = self.stack.pop()
        else {
            return Err(self.err_at("unbalanced mapping", span));
        };
        self.produced += 1;
        let map = build_map(entries).map_err(|m| self.err_at(&m, span))?;
        Ok((
            Node {
                value: Yaml::Map(map),
                line,
                column,
            },
            anchor,
        ))
    }

    /// Puts a finished node where it belongs: under its anchor, and into its parent
    /// collection (as a mapping's key or value) or as the document's root.
    fn attach(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

/// Builds a mapping, applying merge keys: `<<: *a` or `<<: [*a, *b]` copy entries the map
/// does not set itself; among merged maps the earlier one wins (YAML's merge key rules).
fn build_map(entries: Vec<(Node, Node)>) -> std::result::Result<Map, String> {
    let mut explicit = Map::default();
    let mut merged: Vec<Map> = Vec::new();
    for (key, value) in entries {
        if key.value == Yaml::Str("<<".into()) {
            match value.value {
                Yaml::Map(m) => merged.push(m),
                Yaml::Seq(items) => {
                    for item in items {
                        match item.value {
                            Yaml::Map(m) => merged.push(m),
                            _ => return Err("merge key values must be mappings".into()),
                        }
                    }
                }
                _ => return Err("merge key values must be mappings".into()),
            }
            continue;
        }
        match &key.value {
            Yaml::Seq(_) | Yaml::Map(_) | Yaml::Reference(_) => {
                return Err("mapping keys must be scalars".into());
            }
            _ => {}
        }
        explicit.insert(key_text(&key), value);
    }
    if merged.is_empty() {
        return Ok(explicit);
    }
    let mut out = Map::default();
    for m in merged.iter().rev() {
        for (k, v) in &m.0 {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in explicit.0 {
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(src: &str) -> Map {
        match load(src, ".gitlab-ci.yml", &Limits::default())
            .expect("parses")
            .value
        {
            Yaml::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn scalars_are_typed_like_psych() {
        let m = map("a: yes\nb: 'yes'\nc: 3\nd: 1.5\ne: ~\nf: hello\ng: off\n");
        assert_eq!(m.get("a").map(|n| &n.value), Some(&Yaml::Bool(true)));
        assert_eq!(m.get("b").map(|n| &n.value), Some(&Yaml::Str("yes".into())));
        assert_eq!(m.get("c").map(|n| &n.value), Some(&Yaml::Int(3)));
        assert_eq!(m.get("d").map(|n| &n.value), Some(&Yaml::Float(1.5)));
        assert_eq!(m.get("e").map(|n| &n.value), Some(&Yaml::Null));
        assert_eq!(m.get("g").map(|n| &n.value), Some(&Yaml::Bool(false)));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let m = map(".base: &base\n  image: ruby\n  tags: [a]\njob:\n  <<: *base\n  tags: [b]\n  script: *x\n".replace("*x", "[echo]").as_str());
        let job = m.get("job").and_then(Node::as_map).expect("job");
        assert_eq!(job.get("image").and_then(Node::as_str), Some("ruby"));
        assert_eq!(
            job.get("tags").map(|n| &n.value),
            Some(&Yaml::Seq(vec![Node {
                value: Yaml::Str("b".into()),
                line: 6,
                column: 10
            }]))
        );
    }

    #[test]
    fn references_are_kept_for_the_resolver() {
        let m = map("job:\n  script: !reference [.setup, script]\n");
        let job = m.get("job").and_then(Node::as_map).expect("job");
        assert_eq!(
            job.get("script").map(|n| &n.value),
            Some(&Yaml::Reference(vec![".setup".into(), "script".into()]))
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let err = load(&src, ".gitlab-ci.yml", &Limits::default()).expect_err("bomb");
        assert!(err.message.contains("too many nodes"), "{err}");
    }

    #[test]
    fn errors_say_where() {
        let err =
            load("job:\n  script: [a\n", ".gitlab-ci.yml", &Limits::default()).expect_err("bad");
        assert!(err.location.is_some());
        let big = "a: b\n".repeat(300_000);
        let err = load(&big, ".gitlab-ci.yml", &Limits::default()).expect_err("big");
        assert!(err.message.contains("larger than"), "{err}");
        let deep = format!("{}x{}", "[".repeat(100), "]".repeat(100));
        let err = load(&deep, ".gitlab-ci.yml", &Limits::default()).expect_err("deep");
        assert!(err.message.contains("nested too deeply"), "{err}");
    }
}
