//! The server's module graph, read from its source (ARCHITECTURE.md, "Inside crates/server"):
//! modules import each other in one direction only — no cycles — and the layers keep their
//! order: handlers (`api/`, `web/`, git over HTTP, health, the maintenance loop, bootstrap)
//! over the domain (`domain/`) over the foundation (state, errors, parameters, auth, …).
//! Nothing outside `api/` and `web/` imports from them, except the route table and `lib.rs`.
//!
//! A module depends on another when its code names `crate::other…`, `super::other…` or
//! `self::other…` — in `use` lines (braces expanded) and in qualified paths — or, in a
//! directory module's `mod.rs`, a child as `child::…`. The nodes are the top-level modules and
//! the submodules of directory modules (`api::jobs`, `web::pipelines`, `domain::bridges`).
//! Comments and string literals are skipped; so are unit-test modules (`#[cfg(test)] mod …`),
//! which are not part of the shipped graph. No parser crate is needed for this much Rust.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module A depends on module B, first seen at this place (`src/….rs:line`).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn server_modules_import_each_other_without_cycles() {
    let graph = module_graph();
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "the server's modules import each other in a circle (each edge: where it is named):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn only_the_route_table_and_lib_import_api_and_web() {
    let graph = module_graph();
    let offenders: Vec<String> = edges(&graph)
        .filter(|(from, to, _)| is_in(to, &["api", "web"]) && !is_in(from, &["api", "web"]))
        .filter(|(from, _, _)| !["lib", "routes"].contains(from))
        .map(|(from, to, at)| format!("{from} -> {to} ({at})"))
        .collect();
    assert!(
        offenders.is_empty(),
        "only api/, web/, routes.rs and lib.rs may import from api/ or web/; move what is \
         shared into the domain (or the foundation) instead:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn layers_import_downwards_only() {
    let graph = module_graph();
    let offenders: Vec<String> = edges(&graph)
        .filter(|(from, to, _)| layer(to) > layer(from))
        .map(|(from, to, at)| {
            format!(
                "{from} ({}) -> {to} ({}) at {at}",
                layer_name(from),
                layer_name(to)
            )
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "handlers may import the domain and the foundation, the domain only the foundation, \
         the foundation neither:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_module_graph_is_read_from_the_source() {
    // Guards the three tests above against passing because nothing was read.
    let graph = module_graph();
    for (from, to) in [
        ("api::jobs", "domain::dispatch"),
        ("domain::dispatch", "domain::bridges"),
        ("domain::bridges", "domain::pipeline_creation"),
        ("web::pipelines", "web::access"),
        ("api", "api::jobs"),
        ("state", "project_cache"),
    ] {
        assert!(
            graph
                .get(from)
                .is_some_and(|to_set| to_set.contains_key(to)),
            "{from} -> {to} was not found; the graph holds {graph:#?}"
        );
    }
    // Comments, strings and test modules name no modules.
    let sample = "//! see crate::web\nuse crate::a::{b, c::{self, d}};\nfn f() { let s = \"crate::web\"; \
                  let c = '\"'; super::e::f(); }\n#[cfg(test)]\nmod tests { use crate::web; }\n";
    let paths: BTreeSet<String> = named_paths(sample, &["x".to_string()], &[])
        .into_iter()
        .map(|(path, _)| path.join("::"))
        .collect();
    let expected: BTreeSet<String> = ["a", "a::b", "a::c", "a::c::d", "e::f"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(paths, expected);
}

/// The layers, lowest first: the foundation, the domain, the handlers (and the wiring).
fn layer(module: &str) -> u8 {
    if is_in(module, &["domain"]) {
        1
    } else if is_in(module, &["api", "web"])
        || [
            "git_http",
            "health",
            "maintenance",
            "bootstrap",
            "lib",
            "routes",
        ]
        .contains(&module)
    {
        2
    } else {
        0
    }
}

fn layer_name(module: &str) -> &'static str {
    ["foundation", "domain", "handlers"][usize::from(layer(module))]
}

/// Whether `module` is one of `dirs` or inside one.
fn is_in(module: &str, dirs: &[&str]) -> bool {
    dirs.iter()
        .any(|dir| module == *dir || module.starts_with(&format!("{dir}::")))
}

fn edges(graph: &Graph) -> impl Iterator<Item = (&str, &str, &str)> {
    graph.iter().flat_map(|(from, to)| {
        to.iter()
            .map(move |(to, at)| (from.as_str(), to.as_str(), at.as_str()))
    })
}

/// Every cycle a depth-first walk meets (one per edge that closes one), as
/// `a -> b (where) -> … -> a`.
fn cycles(graph: &Graph) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'g>(
        graph: &'g Graph,
        node: &'g str,
        marks: &mut BTreeMap<&'g str, Mark>,
        stack: &mut Vec<&'g str>,
        found: &mut Vec<String>,
    ) {
        marks.insert(node, Mark::Open);
        stack.push(node);
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            match marks.get(next.as_str()) {
                Some(Mark::Done) => {}
                Some(Mark::Open) => {
                    let start = stack.iter().position(|n| *n == next.as_str()).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[start..].to_vec();
                    cycle.push(next.as_str());
                    let described: Vec<String> = cycle
                        .windows(2)
                        .map(|pair| {
                            format!("{} -> {} ({})", pair[0], pair[1], graph[pair[0]][pair[1]])
                        })
                        .collect();
                    found.push(described.join(", "));
                }
                None => visit(graph, next.as_str(), marks, stack, found),
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for node in graph.keys() {
        if !marks.contains_key(node.as_str()) {
            visit(graph, node, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// The crate's module graph.
fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect_rs_files(&src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .into_iter()
        .map(|file| (module_path(&src, &file), file))
        .collect();
    assert!(modules.len() > 40, "too few modules found under {src:?}");
    let mut graph = Graph::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        // In a directory module's `mod.rs`, its children are named without a prefix.
        let children: Vec<String> = modules
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module) && !module.is_empty())
            .map(|m| m[module.len()].clone())
            .collect();
        let from = node(&modules, module);
        let shown = file
            .strip_prefix(src.parent().unwrap())
            .unwrap()
            .display()
            .to_string();
        for (path, line) in named_paths(&text, module, &children) {
            let to = node(&modules, &path);
            if to != from && to != "lib" {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| format!("{shown}:{line}"));
            }
        }
    }
    graph
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/api/jobs.rs` → `[api, jobs]`; `src/api/mod.rs` → `[api]`; `src/lib.rs` → `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") || parts == ["lib"] {
        parts.pop();
    }
    parts
}

/// The graph's node for an absolute path: `lib` for the crate root (and items defined there),
/// else the top-level module, or its submodule when it is a directory module.
fn node(modules: &BTreeMap<Vec<String>, PathBuf>, path: &[String]) -> String {
    let Some(first) = path.first() else {
        return "lib".into();
    };
    if !modules.contains_key(&path[..1]) {
        return "lib".into();
    }
    match path.get(1) {
        Some(second) if modules.contains_key(&path[..2]) => format!("{first}::{second}"),
        _ => first.clone(),
    }
}

/// The absolute module paths `text` (the file of `module`) names, with their line numbers.
fn named_paths(text: &str, module: &[String], children: &[String]) -> Vec<(Vec<String>, usize)> {
    let code = blank_comments_and_literals(text);
    let tests = test_module_spans(&code);
    let inline = inline_module_spans(&code);
    let mut out = Vec::new();
    let mut add = |relative: &str, at: usize| {
        if tests
            .iter()
            .any(|(start, end)| (*start..*end).contains(&at))
        {
            return;
        }
        let mut here: Vec<String> = module.to_vec();
        here.extend(
            inline
                .iter()
                .filter(|(start, end, _)| (*start..*end).contains(&at))
                .map(|(_, _, name)| name.clone()),
        );
        let segments: Vec<&str> = relative.split("::").filter(|s| !s.is_empty()).collect();
        let absolute = match segments.first() {
            Some(&"crate") => segments[1..].iter().map(|s| s.to_string()).collect(),
            Some(&"super") | Some(&"self") => {
                let mut path = here;
                let mut rest = segments.as_slice();
                while let Some((first, tail)) = rest.split_first() {
                    match *first {
                        "super" => {
                            path.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = tail;
                }
                path.extend(rest.iter().map(|s| s.to_string()));
                path
            }
            Some(first) if children.iter().any(|c| c == first) => {
                let mut path = module.to_vec();
                path.extend(segments.iter().map(|s| s.to_string()));
                path
            }
            _ => return,
        };
        let line = code[..at].matches('\n').count() + 1;
        out.push((absolute, line));
    };
    // `use` lines, braces expanded.
    for (at, tree) in use_trees(&code) {
        for path in expand_use_tree(&tree) {
            add(&path, at);
        }
    }
    // Qualified paths anywhere: `crate::a::b`, `super::a`, `child::item`.
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if is_ident_start(bytes[i]) && (i == 0 || !is_ident(bytes[i - 1])) {
            let preceded_by_path = i >= 2 && &bytes[i - 2..i] == b"::";
            let mut end = i;
            loop {
                while end < bytes.len() && is_ident(bytes[end]) {
                    end += 1;
                }
                if code[end..].starts_with("::")
                    && bytes.get(end + 2).is_some_and(|b| is_ident_start(*b))
                {
                    end += 2;
                } else {
                    break;
                }
            }
            let path = &code[i..end];
            if !preceded_by_path && path.contains("::") {
                add(path, i);
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `text` with comments, string literals and character literals replaced by spaces (newlines
/// kept, so offsets and line numbers stay those of the file).
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && (i == 0 || !is_ident(chars[i - 1] as u8))
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            let closing: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            let rest: String = chars[j + 1..].iter().collect();
            let len = rest
                .find(&closing)
                .map_or(rest.len(), |p| p + closing.len());
            let end = (j + 1 + rest[..len].chars().count()).min(chars.len());
            out.extend(chars[i..end].iter().map(|c| blank(*c)));
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let skip = if chars[i] == '\\' { 2 } else { 1 };
                for k in 0..skip {
                    if let Some(c) = chars.get(i + k) {
                        out.push(blank(*c));
                    }
                }
                i += skip;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\''), not a lifetime ('a).
            let len = match (next, chars.get(i + 2), chars.get(i + 3)) {
                (Some('\\'), _, _) => chars[i + 2..]
                    .iter()
                    .skip(1)
                    .position(|c| *c == '\'')
                    .map(|p| p + 4),
                (Some(_), Some('\''), _) => Some(3),
                _ => None,
            };
            match len {
                Some(len) => {
                    out.extend(std::iter::repeat_n(' ', len));
                    i += len;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The span of the block that opens at `open` (a `{`), to its matching `}`.
fn block_end(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (offset, b) in code.as_bytes()[open..].iter().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return open + offset + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// Where the keyword `word` (followed by a space) starts in `code`, as a whole word.
fn keyword_offsets<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(word)
        .map(|(at, _)| at)
        .filter(move |at| {
            code[at + word.len()..].starts_with(' ')
                && (*at == 0 || !is_ident(code.as_bytes()[at - 1]))
        })
}

/// Inline modules (`mod name { … }`): their spans and names.
fn inline_module_spans(code: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for at in keyword_offsets(code, "mod") {
        let rest = code[at + 3..].trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = rest[name.len()..].trim_start();
        if !name.is_empty() && after.starts_with('{') {
            let open = code.len() - after.len();
            out.push((at, block_end(code, open), name));
        }
    }
    out
}

/// Inline modules under `#[cfg(test)]`.
fn test_module_spans(code: &str) -> Vec<(usize, usize)> {
    inline_module_spans(code)
        .into_iter()
        .filter(|(start, _, _)| {
            let before = code[..*start].trim_end();
            let before = before.strip_suffix("pub").unwrap_or(before).trim_end();
            before.ends_with("#[cfg(test)]")
        })
        .map(|(start, end, _)| (start, end))
        .collect()
}

/// Every `use` tree in `code` (`use a::{b, c};` → `a::{b, c}`), with its offset.
fn use_trees(code: &str) -> Vec<(usize, String)> {
    keyword_offsets(code, "use")
        .filter_map(|at| {
            let end = code[at..].find(';')?;
            let tree = code[at + 4..at + end]
                .split_whitespace()
                .collect::<Vec<_>>();
            Some((at, tree.join(" ")))
        })
        .collect()
}

/// `a::{b, c::{self, d as e}}` → `a::b`, `a::c`, `a::c::d` (renames and globs dropped).
fn expand_use_tree(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let tree = tree.strip_prefix("::").unwrap_or(tree);
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).replace(' ', "");
        let path = path.trim_end_matches("::*").trim_end_matches("::self");
        return vec![path.to_string()];
    };
    let prefix = tree[..open].replace(' ', "");
    let prefix = prefix.trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|part| !part.is_empty() && *part != "*")
        .flat_map(|part| {
            if part == "self" {
                vec![prefix.to_string()]
            } else {
                expand_use_tree(part)
                    .into_iter()
                    .map(|path| format!("{prefix}::{path}"))
                    .collect()
            }
        })
        .collect()
}
