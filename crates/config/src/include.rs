//! `include:`: the files a config pulls in, merged underneath the file that includes them.
//! An `include:` value becomes a list of [`IncludeEntry`] (GitLab's `Mapper::Normalizer`:
//! a string is `local:` or, when it is a URL, `remote:`), each entry's text is fetched through
//! the caller's [`FileSource`] and turned into a mapping by [`IncludeWalk::load_entry`] — the
//! one place an included file's text becomes YAML (where `inputs:` interpolation hooks in) —
//! and what it includes is expanded the same way, depth first.
//!
//! GitLab: lib/gitlab/ci/config/external/mapper.rb and mapper/*.rb, file/*.rb.

use std::collections::{HashMap, HashSet};

use crate::FileSource;
use crate::error::{ConfigError, Result};
use crate::inputs::{self, Interpolation};
use crate::resolve::CONFIG_FILE;
use crate::rules::{self, Rule, RuleScope};
use crate::yaml::{self, Limits, Map, Node, Yaml};

/// GitLab's limit of included files per pipeline.
const MAX_INCLUDES: usize = 150;
/// How deep includes may nest (GitLab bounds only the count, `MAX_INCLUDES`; a depth bound keeps
/// the walk's recursion shallow).
const MAX_NESTING: usize = 100;
/// The longest `local:` wildcard pattern matched against a commit's files (each match costs
/// pattern × path length).
const MAX_WILDCARD_LEN: usize = 255;

/// GitLab's error for a project that does not exist or that the user may not read
/// (lib/gitlab/ci/config/external/file/project.rb, `validate_context!`).
pub fn project_not_found(project: &str) -> String {
    format!(
        "Project `{project}` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined."
    )
}

/// One `include:` entry: where the file comes from, and the entry's own `rules:` and
/// `inputs:` as written.
#[derive(Debug, Clone)]
pub struct IncludeEntry {
    pub kind: IncludeKind,
    pub rules: Option<Node>,
    pub inputs: Option<Node>,
}

/// Where an included file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeKind {
    /// A file of the same commit (`include: local:`, or a plain path).
    Local { path: String },
    /// Files of another project at a ref (its default branch when `git_ref` is `None`).
    Project {
        project: String,
        git_ref: Option<String>,
        files: Vec<String>,
    },
    /// A file fetched over HTTP(S).
    Remote { url: String },
    /// One of GitLab's bundled templates (refused: Pipewright bundles none).
    Template { name: String },
}

/// One file a config included, as GitLab's CI Lint lists it (`includes`; GitLab:
/// lib/gitlab/ci/config/external/file/{local,project,remote}.rb, `metadata`). Locations have
/// their variables expanded and masked values hidden, as GitLab's `masked_location`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IncludedFile {
    /// What kind of include it was, with `project:`'s project and ref.
    #[serde(flatten)]
    pub kind: IncludedKind,
    /// The path (within its project) or the URL.
    pub location: String,
    /// Where the file that included it was read from: `None` for the pipeline's own commit,
    /// else another project at a ref (what a `project:` file's own `local:` includes read).
    /// GitLab's `context_project` and `context_sha`.
    pub context: Option<ProjectRef>,
}

impl IncludedFile {
    /// `ci/build.yml (local)`, `ci/a.yml (file: group/lib@v1)`, for people.
    pub fn describe(&self) -> String {
        match &self.kind {
            IncludedKind::Local {} => format!("{} (local)", self.location),
            IncludedKind::File { project, git_ref } => {
                format!("{} (file: {project}@{git_ref})", self.location)
            }
            IncludedKind::Remote {} => format!("{} (remote)", self.location),
        }
    }
}

/// GitLab's `type` of an included file, with its `extra`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", content = "extra", rename_all = "lowercase")]
pub enum IncludedKind {
    /// `include: local:` (GitLab: `local`, `extra: {}`).
    Local {},
    /// `include: project:` (GitLab: `file`, `extra: {project, ref}`; `ref` is `HEAD` when the
    /// entry names none, the project's name lowercased, file/project.rb).
    File {
        project: String,
        #[serde(rename = "ref")]
        git_ref: String,
    },
    /// `include: remote:` (GitLab: `remote`, `extra: {}`).
    Remote {},
}

/// A project at a ref, as an `include: project:` entry names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ProjectRef {
    pub project: String,
    /// `None`: the project's default branch.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
}

/// Loads `source` and everything it includes into one mapping. Each file's `$[[ inputs.… ]]` are
/// interpolated before it is parsed (the root file's with the pipeline's inputs).
pub fn load_with_includes(
    source: &str,
    files: &dyn FileSource,
    limits: &Limits,
    interpolation: &Interpolation,
) -> Result<(Map, Vec<IncludedFile>)> {
    let source = inputs::interpolate(source, Some(&interpolation.inputs), interpolation, limits)
        .map_err(ConfigError::new)?;
    let root = yaml::load(&source, CONFIG_FILE, limits)?;
    let map = match root.value {
        Yaml::Map(m) => m,
        Yaml::Null => return Err(ConfigError::new("Please provide content of .gitlab-ci.yml")),
        _ => return Err(ConfigError::new("Invalid configuration format")),
    };
    let mut walk = IncludeWalk {
        files,
        limits,
        seen: HashSet::new(),
        count: 0,
        variables: None,
        masked: Vec::new(),
        listings: HashMap::new(),
        interpolation,
        included: Vec::new(),
    };
    let map = walk.expand(map, &Scope::Pipeline, 0)?;
    Ok((map, walk.included))
}

/// GitLab's `URI` check for a plain string entry (`Gitlab::UrlSanitizer.valid?`).
fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// The entries of an `include:` value (a string, a hash, or a list of them).
pub fn entries(node: &Node) -> Result<Vec<IncludeEntry>> {
    let bad = || {
        ConfigError::new("Included file `include` config should be a string, a hash or an array")
    };
    match &node.value {
        Yaml::Seq(items) => items.iter().map(entry).collect(),
        Yaml::Str(_) | Yaml::Map(_) => Ok(vec![entry(node)?]),
        _ => Err(bad()),
    }
}

/// One entry. GitLab: mapper/normalizer.rb (strings) and mapper/matcher.rb (exactly one of
/// `local`, `project`, `remote`, `template`, `artifact` per hash).
fn entry(node: &Node) -> Result<IncludeEntry> {
    let m = match &node.value {
        Yaml::Str(s) if is_url(s) => return Ok(plain(IncludeKind::Remote { url: s.clone() })),
        Yaml::Str(s) => return Ok(plain(IncludeKind::Local { path: s.clone() })),
        Yaml::Map(m) => m,
        _ => {
            return Err(ConfigError::new(
                "Included file `include` config should be a string, a hash or an array",
            ));
        }
    };
    let subkeys = [
        "local",
        "project",
        "remote",
        "template",
        "artifact",
        "component",
    ];
    let given: Vec<&str> = subkeys
        .iter()
        .copied()
        .filter(|k| m.get(k).is_some())
        .collect();
    let text = |key: &str| m.get(key).and_then(Node::scalar_text);
    let kind = match given.as_slice() {
        ["local"] => IncludeKind::Local {
            path: text("local").unwrap_or_default(),
        },
        ["project"] => IncludeKind::Project {
            project: text("project").unwrap_or_default(),
            git_ref: text("ref"),
            files: project_files(m)?,
        },
        ["remote"] => {
            let url = text("remote").unwrap_or_default();
            // GitLab: file/remote.rb, `validate_location!`.
            if !is_url(&url) {
                return Err(ConfigError::new(format!(
                    "Remote file `{url}` does not have a valid address!"
                )));
            }
            IncludeKind::Remote { url }
        }
        ["template"] => IncludeKind::Template {
            name: text("template").unwrap_or_default(),
        },
        [] => {
            return Err(ConfigError::new(format!(
                "`{}` does not have a valid subkey for include. Valid subkeys are: `local`, `project`, `remote`, `template`, `artifact`",
                m.keys().collect::<Vec<_>>().join(", ")
            )));
        }
        [other] => {
            return Err(ConfigError::new(format!(
                "Included file `{other}` is not supported by Pipewright"
            )));
        }
        _ => {
            return Err(ConfigError::new(
                "Each include must use only one of: `local`, `project`, `remote`, `template`, `artifact`",
            ));
        }
    };
    Ok(IncludeEntry {
        kind,
        rules: m.get("rules").cloned(),
        inputs: m.get("inputs").cloned(),
    })
}

fn plain(kind: IncludeKind) -> IncludeEntry {
    IncludeEntry {
        kind,
        rules: None,
        inputs: None,
    }
}

/// `file:` of a `project:` entry: a string or a list of strings. GitLab:
/// lib/gitlab/ci/config/external/mapper/location_expander.rb (`Array.wrap(location[:file])`).
fn project_files(m: &Map) -> Result<Vec<String>> {
    let files = match m.get("file").map(|n| &n.value) {
        Some(Yaml::Seq(items)) => items.iter().filter_map(Node::scalar_text).collect(),
        Some(_) => m
            .get("file")
            .and_then(Node::scalar_text)
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    if files.is_empty() {
        return Err(ConfigError::new(
            "Included file `project` config should have a `file`: a path or a list of paths",
        ));
    }
    Ok(files)
}

/// Whose repository a `local:` path is read from: the pipeline's commit, or — inside a file
/// included with `project:` — that project at that ref (GitLab: file/project.rb
/// `expand_context_attrs` makes the included project the context of what it includes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Pipeline,
    Project {
        project: String,
        git_ref: Option<String>,
    },
}

/// One file to read, after rules, wildcards and `file:` lists are expanded.
#[derive(Debug, Clone)]
enum Location {
    Local(String),
    Project {
        project: String,
        git_ref: Option<String>,
        file: String,
    },
    Remote(String),
}

impl Location {
    /// What identifies the file, for skipping one already included.
    fn key(&self, scope: &Scope) -> String {
        match (self, scope) {
            (Location::Local(path), Scope::Pipeline) => format!("local:{path}"),
            (Location::Local(path), Scope::Project { project, git_ref }) => {
                format!("project:{project}@{git_ref:?}:{path}")
            }
            (
                Location::Project {
                    project,
                    git_ref,
                    file,
                },
                _,
            ) => format!("project:{project}@{git_ref:?}:{file}"),
            (Location::Remote(url), _) => format!("remote:{url}"),
        }
    }
}

/// GitLab's `Repository#search_files_by_wildcard_path`: `**` matches anything, `*` anything
/// but `/`, the rest literally, the whole path.
fn wildcard_matches(pattern: &[u8], path: &[u8]) -> bool {
    // matched[j]: the pattern so far matches `path[..j]`.
    let mut matched = vec![false; path.len() + 1];
    matched[0] = true;
    let mut i = 0;
    while i < pattern.len() {
        let double = pattern[i] == b'*' && pattern.get(i + 1) == Some(&b'*');
        let mut next = vec![false; path.len() + 1];
        match pattern[i] {
            b'*' => {
                for j in 0..=path.len() {
                    next[j] =
                        matched[j] || (j > 0 && next[j - 1] && (double || path[j - 1] != b'/'));
                }
            }
            c => {
                for j in 1..=path.len() {
                    next[j] = matched[j - 1] && path[j - 1] == c;
                }
            }
        }
        matched = next;
        i += if double { 2 } else { 1 };
    }
    matched[path.len()]
}

/// What expanding includes carries from file to file.
struct IncludeWalk<'a> {
    files: &'a dyn FileSource,
    limits: &'a Limits,
    seen: HashSet<String>,
    count: usize,
    /// The caller's variables, asked for once, when an entry first needs them.
    variables: Option<HashMap<String, String>>,
    /// The values of the masked ones, hidden in error messages.
    masked: Vec<String>,
    /// File lists by scope, asked for once each.
    listings: HashMap<Scope, Vec<String>>,
    /// The pipeline's inputs and what `expand_vars` may expand.
    interpolation: &'a Interpolation,
    /// Every file included so far, in GitLab's order.
    included: Vec<IncludedFile>,
}

impl IncludeWalk<'_> {
    /// `map` (read in `scope`) with what it includes merged underneath.
    fn expand(&mut self, mut map: Map, scope: &Scope, depth: usize) -> Result<Map> {
        let Some(include) = map.remove("include") else {
            return Ok(map);
        };
        if depth > MAX_NESTING {
            return Err(ConfigError::new(format!(
                "Maximum of {MAX_NESTING} nested includes are allowed"
            )));
        }
        let entries = entries(&include)?;
        // GitLab's order (lib/gitlab/ci/config/external/mapper/verifier.rb): every file of this
        // `include:` is listed before any of them is read and expanded.
        let mut selected = Vec::new();
        for entry in &entries {
            self.select(entry, scope, &mut selected)
                .map_err(|e| self.mask(e))?;
        }
        let mut merged = Map::default();
        for (entry, location) in selected {
            let included = self
                .read_and_expand(entry, &location, scope, depth)
                .map_err(|e| self.mask(e))?;
            merged.deep_merge(&included);
        }
        // The including file wins over what it includes.
        merged.deep_merge(&map);
        Ok(merged)
    }

    /// The files one entry names (if its rules let it in), less those already included,
    /// appended to `selected` and to the list of included files.
    fn select<'e>(
        &mut self,
        entry: &'e IncludeEntry,
        scope: &Scope,
        selected: &mut Vec<(&'e IncludeEntry, Location)>,
    ) -> Result<()> {
        if !self.rules_pass(entry, scope)? {
            return Ok(());
        }
        for location in self.locations(entry, scope)? {
            self.count += 1;
            if self.count > MAX_INCLUDES {
                return Err(ConfigError::new(format!(
                    "Maximum of {MAX_INCLUDES} includes are allowed"
                )));
            }
            // The same file with other inputs is another include (GitLab documents including
            // one template several times with different inputs).
            let seen_as = match entry.inputs.as_ref().map(inputs::from_node) {
                Some(Ok(given)) => format!(
                    "{}\n{}",
                    location.key(scope),
                    serde_json::Value::Object(given)
                ),
                _ => location.key(scope),
            };
            if !self.seen.insert(seen_as) {
                continue;
            }
            let record = self.record(&location, scope);
            self.included.push(record);
            selected.push((entry, location));
        }
        Ok(())
    }

    /// One location's file, with what it includes merged underneath.
    fn read_and_expand(
        &mut self,
        entry: &IncludeEntry,
        location: &Location,
        scope: &Scope,
        depth: usize,
    ) -> Result<Map> {
        let (text, name, inner) = self.fetch(location, scope)?;
        let included = self.load_entry(entry, &text, &name)?;
        self.expand(included, &inner, depth + 1)
    }

    /// How the lint lists a file (GitLab: file/*.rb `metadata`), masked values hidden.
    fn record(&self, location: &Location, scope: &Scope) -> IncludedFile {
        let (kind, path) = match location {
            Location::Local(path) => (IncludedKind::Local {}, path),
            Location::Project {
                project,
                git_ref,
                file,
            } => (
                IncludedKind::File {
                    project: self.mask_text(&project.to_lowercase()),
                    git_ref: self.mask_text(git_ref.as_deref().unwrap_or("HEAD")),
                },
                file,
            ),
            Location::Remote(url) => (IncludedKind::Remote {}, url),
        };
        let context = match scope {
            Scope::Pipeline => None,
            Scope::Project { project, git_ref } => Some(ProjectRef {
                project: project.clone(),
                git_ref: git_ref.clone(),
            }),
        };
        IncludedFile {
            kind,
            location: self.mask_text(path),
            context,
        }
    }

    /// `error` with the values of masked variables hidden, as GitLab's
    /// `Context#mask_variables_from` hides them (`Gitlab::Ci::MaskSecret`: `[MASKED]` padded
    /// with `x` to the value's length): a location written with `$SECRET` must not show the
    /// secret in a pipeline's `yaml_errors`.
    fn mask(&self, mut error: ConfigError) -> ConfigError {
        error.message = self.mask_text(&error.message);
        error
    }

    fn mask_text(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in self.masked.iter().filter(|s| !s.is_empty()) {
            if text.contains(secret.as_str()) {
                let mask = if secret.len() >= 8 {
                    format!("[MASKED]{}", "x".repeat(secret.len() - 8))
                } else {
                    "x".repeat(secret.len())
                };
                text = text.replace(secret.as_str(), &mask);
            }
        }
        text
    }

    /// An included file's text as a mapping: the one step every entry's content goes
    /// through (the seam for `include: inputs:` interpolation). `name` says where it came
    /// from in error messages.
    fn load_entry(&mut self, entry: &IncludeEntry, text: &str, name: &str) -> Result<Map> {
        let given = entry
            .inputs
            .as_ref()
            .map(inputs::from_node)
            .transpose()
            .map_err(ConfigError::new)?;
        // GitLab: lib/gitlab/ci/config/external/file/base.rb — "`location`: error".
        let text = inputs::interpolate(text, given.as_ref(), self.interpolation, self.limits)
            .map_err(|e| ConfigError::new(format!("`{name}`: {e}")))?;
        let node = yaml::load(&text, name, self.limits)?;
        match node.value {
            Yaml::Map(m) => Ok(m),
            Yaml::Null => Ok(Map::default()),
            _ => Err(ConfigError::new(format!(
                "Included file `{name}` does not have valid YAML syntax!"
            ))),
        }
    }

    /// Whether an entry's `rules:` let it in. GitLab: lib/gitlab/ci/config/external/rules.rb —
    /// no rules: included; else the first matching rule's `when` (`always` by default)
    /// decides, and no match excludes. `changes:` matches as it does without a diff (the
    /// engine is not told what changed while it reads the config).
    fn rules_pass(&mut self, entry: &IncludeEntry, scope: &Scope) -> Result<bool> {
        let Some(node) = &entry.rules else {
            return Ok(true);
        };
        let rules = rules::rules(node, "include", RuleScope::Include)?;
        for rule in &rules {
            if self.rule_matches(rule, scope)? {
                return Ok(rule.when != Some(crate::keywords::When::Never));
            }
        }
        Ok(false)
    }

    fn rule_matches(&mut self, rule: &Rule, scope: &Scope) -> Result<bool> {
        if let Some(condition) = &rule.condition
            && !condition.evaluate(self.variables())
        {
            return Ok(false);
        }
        if let Some(globs) = &rule.exists {
            let files = self.listing(scope)?;
            if !globs.exists_in(files, &|| false) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn variables(&mut self) -> &HashMap<String, String> {
        if self.variables.is_none() {
            let variables = self.files.variables();
            self.masked = variables
                .iter()
                .filter(|v| v.masked)
                .map(|v| v.value.clone())
                .collect();
            self.variables = Some(variables.into_iter().map(|v| (v.key, v.value)).collect());
        }
        self.variables.get_or_insert_with(HashMap::new)
    }

    /// `$VARIABLES` in an include location, expanded (GitLab:
    /// mapper/variables_expander.rb); text without `$` is not looked at.
    fn expand_vars(&mut self, text: &str) -> String {
        if !text.contains('$') {
            return text.to_string();
        }
        let vars = self.variables();
        crate::variables::expand(text, &|name| vars.get(name).cloned())
    }

    /// The files of `scope`'s commit, listed once.
    fn listing(&mut self, scope: &Scope) -> Result<&Vec<String>> {
        if !self.listings.contains_key(scope) {
            let listed = match scope {
                Scope::Pipeline => self.files.list(),
                Scope::Project { project, git_ref } => {
                    self.files.list_project(project, git_ref.as_deref())
                }
            }
            .map_err(ConfigError::new)?;
            self.listings.insert(scope.clone(), listed);
        }
        Ok(&self.listings[scope])
    }

    /// The files an entry names: a `local:` wildcard expanded over the commit's files (GitLab:
    /// mapper/location_expander.rb), each `file:` of a `project:` entry, variables expanded.
    fn locations(&mut self, entry: &IncludeEntry, scope: &Scope) -> Result<Vec<Location>> {
        match &entry.kind {
            IncludeKind::Local { path } => {
                let path = self.expand_vars(path);
                let path = path.trim_start_matches('/');
                if !path.contains('*') {
                    return Ok(vec![Location::Local(path.to_string())]);
                }
                if path.len() > MAX_WILDCARD_LEN {
                    return Err(ConfigError::new(format!(
                        "Local file `{path}` is a wildcard longer than {MAX_WILDCARD_LEN} characters"
                    )));
                }
                let pattern = path.as_bytes();
                Ok(self
                    .listing(scope)?
                    .iter()
                    .filter(|file| wildcard_matches(pattern, file.as_bytes()))
                    .map(|file| Location::Local(file.clone()))
                    .collect())
            }
            IncludeKind::Project {
                project,
                git_ref,
                files,
            } => {
                let project = self.expand_vars(project);
                let git_ref = git_ref.as_deref().map(|r| self.expand_vars(r));
                Ok(files
                    .iter()
                    .map(|file| Location::Project {
                        project: project.clone(),
                        git_ref: git_ref.clone(),
                        file: self.expand_vars(file).trim_start_matches('/').to_string(),
                    })
                    .collect())
            }
            IncludeKind::Remote { url } => Ok(vec![Location::Remote(self.expand_vars(url))]),
            IncludeKind::Template { .. } => Err(ConfigError::new(
                "Included file `template` is not supported by Pipewright: it bundles no GitLab templates; copy the template into the repository and use `include: local`",
            )),
        }
    }

    /// A location's text, the name errors give it, and the scope of what it includes.
    fn fetch(&self, location: &Location, scope: &Scope) -> Result<(String, String, Scope)> {
        let missing = |message: String| ConfigError::new(message);
        match (location, scope) {
            (Location::Local(path), Scope::Pipeline) => {
                let text = self
                    .files
                    .read(path)
                    .map_err(ConfigError::new)?
                    .ok_or_else(|| missing(format!("Local file `{path}` does not exist!")))?;
                Ok((text, path.clone(), Scope::Pipeline))
            }
            (Location::Local(path), Scope::Project { project, git_ref }) => {
                let text = self
                    .files
                    .read_project(project, git_ref.as_deref(), path)
                    .map_err(ConfigError::new)?
                    .ok_or_else(|| missing(format!("Local file `{path}` does not exist!")))?;
                Ok((text, path.clone(), scope.clone()))
            }
            (
                Location::Project {
                    project,
                    git_ref,
                    file,
                },
                _,
            ) => {
                // GitLab: file/project.rb, `validate_content!`.
                let text = self
                    .files
                    .read_project(project, git_ref.as_deref(), file)
                    .map_err(ConfigError::new)?
                    .ok_or_else(|| {
                        missing(format!("Project `{project}` file `{file}` does not exist!"))
                    })?;
                let inner = Scope::Project {
                    project: project.clone(),
                    git_ref: git_ref.clone(),
                };
                Ok((text, file.clone(), inner))
            }
            // A remote file's own `local:` includes read the pipeline's project (GitLab:
            // file/base.rb keeps the context for every file type but `project:`).
            (Location::Remote(url), _) => {
                let text = self.files.read_remote(url).map_err(ConfigError::new)?;
                Ok((text, url.clone(), scope.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_matches;

    /// GitLab's documented examples ("Use `include:local` with wildcard file paths").
    #[test]
    fn wildcards_match_as_gitlab_documents() {
        let m = |p: &str, f: &str| wildcard_matches(p.as_bytes(), f.as_bytes());
        assert!(m("configs/*.yml", "configs/a.yml"));
        assert!(!m("configs/*.yml", "configs/sub/a.yml"));
        assert!(m("configs/**.yml", "configs/a.yml"));
        assert!(m("configs/**.yml", "configs/sub/deeper/a.yml"));
        assert!(m("configs/**/*.yml", "configs/sub/a.yml"));
        assert!(!m("configs/**/*.yml", "configs/a.yml"));
        assert!(!m("configs/*.yml", "other/a.yml"));
        assert!(!m("configs/*.yml", "configs/a.yaml"));
        assert!(m("*.yml", "a.yml"));
    }
}
