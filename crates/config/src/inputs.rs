//! CI/CD inputs: a file's `spec: inputs:` header, the values given for it (`include: inputs:`
//! for an included file, the pipeline's `inputs` for the root file), and `$[[ inputs.NAME ]]`
//! interpolation of the file's text before it is parsed as YAML, as GitLab's text interpolator
//! does. Pure functions over text; the include walk (`resolve.rs`) calls [`interpolate`] where a
//! file's text becomes YAML.
//!
//! GitLab's flow (lib/gitlab/ci/config/interpolation/text_interpolator.rb), whose order decides
//! which error wins: inputs given to a file without a header → header valid → inputs valid →
//! every `$[[ … ]]` block valid (the first invalid block stops); at most three errors are
//! joined into the one message.
//!
//! - The header is the first of two YAML documents, when it is a hash with a `spec` key
//!   (lib/gitlab/ci/config/yaml/documents.rb); otherwise the file has no header.
//! - Header entries: lib/gitlab/ci/config/header/{root,spec,input}.rb and
//!   lib/gitlab/ci/config/entry/base_input.rb (`default`, `description`, `options`, `regex`,
//!   `type`; at most 50 options).
//! - Values: lib/gitlab/ci/config/interpolation/inputs.rb and inputs/*_input.rb (types
//!   `string`, `number`, `boolean`, `array`; required unless a `default`; `options`; `regex`).
//!   Like current GitLab (lib/ci/inputs/base_input.rb `coerced_value`), a text value given for
//!   a `number`, `boolean` or `array` input is read as JSON when it is JSON (`inputs[n]=5` in a
//!   form, `--input n=5` on the command line), and a `string` input takes a number or boolean
//!   as its text (lib/ci/inputs/string_input.rb).
//! - Blocks: lib/gitlab/ci/config/interpolation/{text_template,block,access,functions_stack}.rb
//!   and functions/{truncate,expand_vars,posix_escape}.rb.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::variables::{self, Variable};
use crate::yaml::{self, Limits, Map, Node, Yaml};

/// Input values by name, as JSON values (strings, numbers, booleans, arrays).
pub type Inputs = serde_json::Map<String, Value>;

/// What interpolation may use besides a file's own inputs: the pipeline's inputs for the root
/// file, and the variables `expand_vars` may expand (GitLab: the include context's variables —
/// predefined, instance, project and pipeline variables).
#[derive(Debug, Default)]
pub struct Interpolation {
    /// The pipeline's inputs, for the root file's `spec:` header.
    pub inputs: Inputs,
    pub variables: Vec<Variable>,
    /// Set when `expand_vars` read `variables`: the parsed config then depends on them (the
    /// server's config cache must not reuse it for other variables).
    pub variables_used: Cell<bool>,
}

impl Interpolation {
    /// Interpolation with the pipeline's `inputs` and no variables.
    pub fn with_inputs(inputs: Inputs) -> Self {
        Interpolation {
            inputs,
            ..Interpolation::default()
        }
    }
}

/// GitLab's limits: blocks per file (text_template.rb), functions per block (block.rb),
/// access path size and parts (access.rb), options per input (entry/base_input.rb).
const MAX_BLOCKS: usize = 10_000;
const MAX_FUNCTIONS: usize = 3;
const MAX_ACCESS_BYTES: usize = 1024;
const MAX_ACCESS_OBJECTS: usize = 5;
const MAX_OPTIONS: usize = 50;
/// How many errors one message joins (text_interpolator.rb `error_message`).
const MAX_ERRORS: usize = 3;
/// The most compiled size one input's `regex` may take (GitLab compiles it with RE2).
const MAX_REGEX_BYTES: usize = 1 << 20;

/// The file's text to parse as YAML: its content document with `$[[ … ]]` blocks replaced, or
/// the whole text unchanged when it has no `spec:` header. `inputs` are the values given for
/// it (`None`: none given). The error is GitLab's message, without the file's name.
pub fn interpolate<'t>(
    text: &'t str,
    inputs: Option<&Inputs>,
    ctx: &Interpolation,
    limits: &Limits,
) -> Result<Cow<'t, str>, String> {
    let given = inputs.filter(|i| !i.is_empty());
    let Some((header, content)) = split_header(text, limits)? else {
        if given.is_some() {
            return Err(
                "Given inputs not defined in the `spec` section of the included configuration file"
                    .into(),
            );
        }
        return Ok(Cow::Borrowed(text));
    };
    let specs = header_specs(&header).map_err(|e| e.to_string())?;
    let empty = Inputs::new();
    let values = resolve_values(&specs, given.unwrap_or(&empty)).map_err(join_errors)?;
    let out = interpolate_text(&content, &values, ctx, limits.max_bytes).map_err(join_errors)?;
    Ok(Cow::Owned(out))
}

fn join_errors(errors: Vec<String>) -> String {
    errors
        .into_iter()
        .take(MAX_ERRORS)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the text of an `include:` entry's `inputs:` (GitLab: "Given inputs must be a hash").
pub fn from_node(node: &Node) -> Result<Inputs, String> {
    match to_json(node) {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Inputs::new()),
        _ => Err("Given inputs must be a hash".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The header

/// `(header, content)` when the text is two YAML documents and the first is a hash with a
/// `spec` key; the content keeps its line numbers (the header's lines become blank lines).
fn split_header(text: &str, limits: &Limits) -> Result<Option<(Map, String)>, String> {
    let Some((header_text, content_start)) = second_document(text) else {
        return Ok(None);
    };
    let header = yaml::load(header_text, "header", limits).map_err(|e| e.message)?;
    let Yaml::Map(header) = header.value else {
        return Ok(None);
    };
    if header.get("spec").is_none() {
        return Ok(None);
    }
    let lines_before = text[..content_start].matches('\n').count();
    let mut content = "\n".repeat(lines_before);
    content.push_str(&text[content_start..]);
    Ok(Some((header, content)))
}

/// The first document's text and where the second document's content starts, if the text
/// holds a second document. A document starts at a `---` line at column 0 (YAML forbids one
/// inside a scalar); a `---` before any content opens the first document explicitly.
fn second_document(text: &str) -> Option<(&str, usize)> {
    let mut offset = 0;
    let mut first_start: Option<usize> = None;
    let mut seen_content = false;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if is_marker {
            if !seen_content && first_start.is_none() {
                first_start = Some(start + 3);
                continue;
            }
            let header = &text[first_start.unwrap_or(0)..start];
            return Some((header, start + 3));
        }
        let trimmed = bare.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && !bare.starts_with('%') {
            seen_content = true;
        }
    }
    None
}

/// An input's type (lib/gitlab/ci/config/interpolation/inputs.rb `TYPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Boolean,
    Array,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Boolean => "boolean",
            Kind::Array => "array",
        }
    }

    /// "is not a string", "is not an array".
    fn article(self) -> &'static str {
        if self == Kind::Array { "an" } else { "a" }
    }
}

/// One `spec: inputs:` entry.
#[derive(Debug, Clone)]
struct InputSpec {
    name: String,
    kind: Kind,
    default: Option<Value>,
    options: Option<Vec<Value>>,
    regex: Option<String>,
}

/// The header's inputs, validated as GitLab's header entries validate them.
fn header_specs(header: &Map) -> Result<Vec<InputSpec>, String> {
    unknown_keys(header, &["spec"], "header")?;
    let spec = header.get("spec").map(|n| &n.value);
    let spec = match spec {
        Some(Yaml::Map(m)) => m,
        Some(Yaml::Null) | None => return Ok(Vec::new()),
        Some(_) => return Err("header:spec config should be a hash".into()),
    };
    unknown_keys(spec, &["inputs"], "header:spec")?;
    let inputs = match spec.get("inputs").map(|n| &n.value) {
        Some(Yaml::Map(m)) => m,
        Some(Yaml::Null) | None => return Ok(Vec::new()),
        Some(_) => return Err("header:spec:inputs config should be a hash".into()),
    };
    inputs
        .0
        .iter()
        .map(|(name, node)| input_spec(name, node))
        .collect()
}

fn unknown_keys(map: &Map, allowed: &[&str], place: &str) -> Result<(), String> {
    let unknown: Vec<&str> = map.keys().filter(|k| !allowed.contains(k)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{place} config contains unknown keys: {}",
        unknown.join(", ")
    ))
}

/// One input's entry (lib/gitlab/ci/config/header/input.rb). The messages for `type`,
/// `options` and `regex` follow GitLab's entry validators' wording; not checked against a
/// running GitLab.
fn input_spec(name: &str, node: &Node) -> Result<InputSpec, String> {
    let place = format!("header:spec:inputs:{name}");
    let mut spec = InputSpec {
        name: name.to_string(),
        kind: Kind::String,
        default: None,
        options: None,
        regex: None,
    };
    let entry = match &node.value {
        Yaml::Null => return Ok(spec),
        Yaml::Map(m) => m,
        _ => return Err(format!("{place} config should be a hash")),
    };
    unknown_keys(
        entry,
        &["default", "description", "options", "regex", "type"],
        &place,
    )?;
    if let Some(kind) = entry.get("type") {
        spec.kind = match kind.scalar_text().as_deref() {
            Some("string") => Kind::String,
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some("array") => Kind::Array,
            other => {
                return Err(format!(
                    "{place} input type unknown value: {}",
                    other.unwrap_or_default()
                ));
            }
        };
    }
    spec.default = entry.get("default").map(to_json);
    if let Some(options) = entry.get("options") {
        let Yaml::Seq(items) = &options.value else {
            return Err(format!("{place} input options should be an array"));
        };
        if items.len() > MAX_OPTIONS {
            return Err(format!(
                "{place} config cannot define more than {MAX_OPTIONS} options"
            ));
        }
        spec.options = Some(items.iter().map(to_json).collect());
    }
    if let Some(regex) = entry.get("regex") {
        let Yaml::Str(regex) = &regex.value else {
            return Err(format!("{place} input regex should be a string"));
        };
        spec.regex = Some(regex.clone());
    }
    Ok(spec)
}

/// A YAML node as JSON (input values and defaults).
fn to_json(node: &Node) -> Value {
    match &node.value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Int(i) => Value::from(*i),
        Yaml::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Yaml::Str(s) => Value::String(s.clone()),
        Yaml::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Map(m) => Value::Object(m.0.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Yaml::Reference(path) => Value::String(format!("!reference [{}]", path.join(", "))),
    }
}

// ---------------------------------------------------------------------------------------------
// The values

/// Every input's value (given, else its default), or every error in spec order, then the
/// unknown arguments (lib/gitlab/ci/config/interpolation/inputs.rb).
fn resolve_values(specs: &[InputSpec], given: &Inputs) -> Result<Inputs, Vec<String>> {
    let mut values = Inputs::new();
    let mut errors = Vec::new();
    for spec in specs {
        let provided = given.get(&spec.name).filter(|v| !v.is_null());
        match input_value(spec, provided) {
            Ok(value) => {
                values.insert(spec.name.clone(), value);
            }
            Err(e) => errors.push(format!("`{}` input: {e}", spec.name)),
        }
    }
    if errors.is_empty() {
        let unknown: Vec<&str> = given
            .keys()
            .filter(|k| !specs.iter().any(|s| &s.name == *k))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            errors.push(format!("unknown input arguments: {}", unknown.join(", ")));
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// One input's value: required unless it has a default; the default is checked too, then the
/// provided value (lib/gitlab/ci/config/interpolation/inputs/base_input.rb `validate!`).
fn input_value(spec: &InputSpec, provided: Option<&Value>) -> Result<Value, String> {
    let Some(default) = &spec.default else {
        let Some(value) = provided else {
            return Err("required value has not been provided".into());
        };
        return check(spec, coerce(spec.kind, value), "provided");
    };
    let default = check(spec, coerce(spec.kind, default), "default")?;
    match provided {
        Some(value) => check(spec, coerce(spec.kind, value), "provided"),
        None => Ok(default),
    }
}

/// A value as its input's type reads it: text that is JSON for a number, boolean or array
/// input; a number or boolean as its text for a string input.
fn coerce(kind: Kind, value: &Value) -> Value {
    match (kind, value) {
        (Kind::String, Value::Number(n)) => Value::String(n.to_string()),
        (Kind::String, Value::Bool(b)) => Value::String(b.to_string()),
        (Kind::String, Value::Null) => Value::String(String::new()),
        (Kind::String, _) => value.clone(),
        (_, Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| value.clone()),
        _ => value.clone(),
    }
}

/// Type, then options, then regex (base_input.rb `run_validations`); `which` is `default` or
/// `provided`.
fn check(spec: &InputSpec, value: Value, which: &str) -> Result<Value, String> {
    let type_ok = match spec.kind {
        Kind::String => value.is_string(),
        Kind::Number => value.is_number(),
        Kind::Boolean => value.is_boolean(),
        Kind::Array => value.is_array(),
    };
    if !type_ok {
        return Err(format!(
            "{which} value is not {} {}",
            spec.kind.article(),
            spec.kind.name()
        ));
    }
    if let Some(options) = &spec.options {
        check_options(spec.kind, options, &value)?;
    }
    if let Some(pattern) = &spec.regex {
        if spec.kind != Kind::String {
            return Err("RegEx validation can only be used with string inputs".into());
        }
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(MAX_REGEX_BYTES)
            .build()
            .map_err(|_| "invalid regular expression".to_string())?;
        if !regex.is_match(value.as_str().unwrap_or_default()) {
            return Err(format!(
                "{which} value does not match required RegEx pattern"
            ));
        }
    }
    Ok(value)
}

/// `options:` (string_input.rb, number_input.rb, array_input.rb `validate_options`).
fn check_options(kind: Kind, options: &[Value], value: &Value) -> Result<(), String> {
    match (kind, value) {
        (Kind::String, Value::String(s)) => {
            let allowed = options.iter().any(|o| option_text(o) == *s);
            if allowed {
                return Ok(());
            }
            Err(format!(
                "`{s}` cannot be used because it is not in the list of allowed options"
            ))
        }
        (Kind::Number, Value::Number(n)) => {
            let allowed = options.iter().any(|o| o.as_f64() == n.as_f64());
            if allowed {
                return Ok(());
            }
            Err(format!(
                "`{n}` cannot be used because it is not in the list of the allowed options"
            ))
        }
        (Kind::Array, Value::Array(items)) => {
            let invalid: Vec<String> = items
                .iter()
                .filter(|i| !options.contains(i))
                .map(option_text)
                .collect();
            if invalid.is_empty() {
                return Ok(());
            }
            Err(format!(
                "{} cannot be used because it is not in the list of allowed options",
                invalid.join(", ")
            ))
        }
        _ => Err("Options can only be used with string and number inputs".into()),
    }
}

fn option_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// The blocks

/// A `$[[ … ]]` block: the shortest text between the brackets, on one line (block.rb PATTERN).
static BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\[\[\s*(.*?)\s*\]\]").unwrap_or_else(|e| unreachable!("block pattern: {e}"))
});
static TRUNCATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^truncate\(\s*(\d+)\s*,\s*(\d+)\s*\)?$")
        .unwrap_or_else(|e| unreachable!("truncate pattern: {e}"))
});

/// `content` with every block replaced by its value: text as is, anything else as JSON
/// (text_template.rb). The first invalid block's errors stop it. GitLab checks the size before
/// interpolating ("config too large"); we also stop as soon as the result outgrows `max_bytes`,
/// so 10,000 blocks of a large input cannot take the server's memory.
fn interpolate_text(
    content: &str,
    values: &Inputs,
    ctx: &Interpolation,
    max_bytes: usize,
) -> Result<String, Vec<String>> {
    let too_large = || vec!["config too large".to_string()];
    if content.len() > max_bytes {
        return Err(too_large());
    }
    if !content.contains("$[[") {
        return Ok(content.to_string());
    }
    let mut out = String::with_capacity(content.len());
    let mut last = 0;
    for (count, caps) in BLOCK.captures_iter(content).enumerate() {
        if count >= MAX_BLOCKS {
            return Err(vec!["too many interpolation blocks".into()]);
        }
        let (Some(whole), Some(data)) = (caps.get(0), caps.get(1)) else {
            continue;
        };
        out.push_str(&content[last..whole.start()]);
        last = whole.end();
        match block_value(data.as_str(), values, ctx)? {
            None => out.push_str(whole.as_str()),
            Some(Value::String(s)) => out.push_str(&s),
            Some(other) => out.push_str(&other.to_string()),
        }
        if out.len() > max_bytes {
            return Err(too_large());
        }
    }
    out.push_str(&content[last..]);
    Ok(out)
}

/// One block's value: `<access> | <function> | …` (block.rb); `None` for a block GitLab leaves
/// for later (`$[[ matrix.… ]]`).
fn block_value(
    data: &str,
    values: &Inputs,
    ctx: &Interpolation,
) -> Result<Option<Value>, Vec<String>> {
    let mut parts = data.split('|').map(str::trim);
    let access = parts.next().unwrap_or_default();
    let functions: Vec<&str> = parts.collect();
    if access.split('.').next() == Some("matrix") {
        return Ok(None);
    }
    let mut value = lookup(access, values)?;
    if functions.len() > MAX_FUNCTIONS {
        return Err(vec!["too many functions in interpolation block".into()]);
    }
    let functions = functions
        .iter()
        .map(|f| Function::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| vec![e])?;
    for function in functions {
        value = function.apply(value, ctx).map_err(|e| vec![e])?;
    }
    Ok(Some(value))
}

/// `inputs.NAME` (access.rb): at least two parts, at most 1 KiB.
fn lookup(access: &str, values: &Inputs) -> Result<Value, Vec<String>> {
    let objects: Vec<&str> = access.splitn(MAX_ACCESS_OBJECTS, '.').collect();
    let mut errors = Vec::new();
    if objects.len() <= 1 {
        errors.push("invalid interpolation access pattern".to_string());
    }
    if access.len() > MAX_ACCESS_BYTES {
        errors.push("maximum interpolation expression size exceeded".to_string());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let unknown = |key: &str| vec![format!("unknown interpolation key: `{key}`")];
    let (first, rest) = objects.split_first().ok_or_else(|| unknown(access))?;
    if *first != "inputs" {
        return Err(unknown(first));
    }
    let mut current: Option<&Value> = None;
    for key in rest {
        let next = match current {
            None => values.get(*key),
            Some(Value::Object(m)) => m.get(*key),
            Some(_) => None,
        };
        current = Some(next.ok_or_else(|| unknown(key))?);
    }
    current.cloned().ok_or_else(|| unknown(access))
}

/// An interpolation function (functions_stack.rb `FUNCTIONS`).
enum Function {
    Truncate { offset: usize, length: usize },
    ExpandVars,
    PosixEscape,
}

impl Function {
    fn parse(expression: &str) -> Result<Function, String> {
        if expression == "expand_vars" {
            return Ok(Function::ExpandVars);
        }
        if expression == "posix_escape" {
            return Ok(Function::PosixEscape);
        }
        if let Some(caps) = TRUNCATE.captures(expression) {
            let number = |i: usize| {
                caps.get(i)
                    .and_then(|m| m.as_str().parse::<usize>().ok())
                    .unwrap_or(usize::MAX)
            };
            return Ok(Function::Truncate {
                offset: number(1),
                length: number(2),
            });
        }
        Err(format!(
            "no function matching `{expression}`: check that the function name, arguments, and types are correct"
        ))
    }

    fn name(&self) -> &'static str {
        match self {
            Function::Truncate { .. } => "truncate",
            Function::ExpandVars => "expand_vars",
            Function::PosixEscape => "posix_escape",
        }
    }

    fn apply(&self, value: Value, ctx: &Interpolation) -> Result<Value, String> {
        let error = |message: String| format!("error in `{}` function: {message}", self.name());
        let Value::String(text) = value else {
            return Err(error(format!(
                "invalid input type: {} can only be used with string inputs",
                self.name()
            )));
        };
        let out = match self {
            // Ruby's `input[offset, length]`, in characters.
            Function::Truncate { offset, length } => {
                text.chars().skip(*offset).take(*length).collect()
            }
            Function::ExpandVars => expand_existing(&text, ctx).map_err(error)?,
            Function::PosixEscape => shell_escape(&text),
        };
        Ok(Value::String(out))
    }
}

/// GitLab's `ExpandVariables.expand_existing(value, variables, fail_on_masked: true)`: known
/// variables are expanded, unknown ones left as written, a masked one is an error (its value
/// must not end up in the config). The error text is GitLab's as far as we could tell; not
/// checked against a running GitLab.
fn expand_existing(text: &str, ctx: &Interpolation) -> Result<String, String> {
    ctx.variables_used.set(true);
    let masked = Cell::new(false);
    let lookup = |name: &str| {
        let var = ctx.variables.iter().rev().find(|v| v.key == name)?;
        if var.masked {
            masked.set(true);
        }
        Some(var.value.clone())
    };
    let out = variables::expand(text, &lookup);
    if masked.get() {
        return Err("variable expansion error: masked variables cannot be expanded".into());
    }
    Ok(out)
}

/// Ruby's `Shellwords.shellescape`: every character outside `A-Za-z0-9_-.,:+/@` gets a
/// backslash, a newline becomes `'\n'`, an empty text `''`.
fn shell_escape(text: &str) -> String {
    if text.is_empty() {
        return "''".into();
    }
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("'\n'"),
            c if c.is_ascii_alphanumeric() || "_-.,:+/@".contains(c) => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out
}
