//! `pipewright ci lint`: "what would this config run?", for people (text) and tools (`--json`).
//! Included `local:` files (and wildcards) are read relative to the config file's directory;
//! `include: project:` and `remote:` need a server (`POST /projects/:id/ci/lint`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use pipewright_config::{FileSource, LintOptions, PipelineSource, RefKind};

#[derive(Debug, Args)]
pub struct LintArgs {
    /// The CI config file (for example .gitlab-ci.yml)
    pub file: PathBuf,
    /// A pipeline variable, as a trigger would pass it (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// A CI/CD input for the file's `spec:inputs` header, as `inputs[NAME]=VALUE` on the API
    /// (repeatable); a number, boolean or JSON array is read as one for inputs of that type
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// The pipeline source: trigger, push, api, web, schedule, pipeline, …
    #[arg(long, default_value = "push")]
    pub source: String,
    /// Plan for this branch [default: main]
    #[arg(long, conflicts_with = "tag")]
    pub branch: Option<String>,
    /// Plan for this tag
    #[arg(long)]
    pub tag: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// Reads included files from the directory that holds the config, refusing paths that leave it.
struct Directory(PathBuf);

impl FileSource for Directory {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        let relative = Path::new(path);
        if relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "Local file `{path}` is not a path inside the project"
            ));
        }
        match std::fs::read_to_string(self.0.join(relative)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("Local file `{path}` could not be read: {e}")),
        }
    }

    fn read_project(
        &self,
        project: &str,
        _git_ref: Option<&str>,
        _path: &str,
    ) -> Result<Option<String>, String> {
        Err(format!(
            "Project `{project}` cannot be read by `pipewright ci lint`: lint on the server (POST /projects/:id/ci/lint)"
        ))
    }

    fn read_remote(&self, url: &str) -> Result<String, String> {
        Err(format!(
            "Remote file `{url}` is not fetched by `pipewright ci lint`: lint on the server (POST /projects/:id/ci/lint)"
        ))
    }

    /// The directory's files (not `.git`), for wildcards and `rules:exists`, up to
    /// [`MAX_LISTED_FILES`].
    fn list(&self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut dirs = vec![(self.0.clone(), String::new())];
        while let Some((dir, prefix)) = dirs.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| format!("{} could not be listed: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() && name != ".git" {
                    dirs.push((entry.path(), format!("{prefix}{name}/")));
                } else if kind.is_file() {
                    out.push(format!("{prefix}{name}"));
                    if out.len() >= MAX_LISTED_FILES {
                        return Ok(out);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// How many files wildcards look at (as the server).
const MAX_LISTED_FILES: usize = 50_000;

/// Lints and prints; returns whether the config is valid.
pub fn run(args: &LintArgs) -> anyhow::Result<bool> {
    let metadata = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let limit = pipewright_config::Limits::default().max_bytes;
    // Refuse before reading, so a huge file costs no memory.
    if metadata.len() > limit as u64 {
        let report = pipewright_config::LintReport {
            valid: false,
            errors: vec![format!(
                "{}: the CI config is larger than {limit} bytes",
                args.file.display()
            )],
            warnings: Vec::new(),
            stages: Vec::new(),
            jobs: Vec::new(),
            includes: None,
        };
        print_report(args, &report)?;
        return Ok(false);
    }
    let source = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let source_kind = PipelineSource::parse(&args.source).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown --source {}: use trigger, push, api, web, schedule, pipeline, …",
            args.source
        )
    })?;
    let (ref_name, ref_kind) = match (&args.branch, &args.tag) {
        (_, Some(tag)) => (tag.clone(), RefKind::Tag),
        (Some(branch), None) => (branch.clone(), RefKind::Branch),
        (None, None) => ("main".to_string(), RefKind::Branch),
    };
    let mut variables = Vec::new();
    for var in &args.vars {
        let (k, v) = var
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--var takes KEY=VALUE, got {var}"))?;
        variables.push((k.to_string(), v.to_string()));
    }
    let mut inputs = pipewright_config::Inputs::new();
    for input in &args.inputs {
        let (name, value) = input
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--input takes NAME=VALUE, got {input}"))?;
        inputs.insert(
            name.to_string(),
            serde_json::Value::String(value.to_string()),
        );
    }
    let dir = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let options = LintOptions {
        source: source_kind,
        ref_name,
        ref_kind,
        variables,
        inputs,
    };
    let report = pipewright_config::lint(&source, &Directory(dir), &options);
    print_report(args, &report)?;
    Ok(report.valid)
}

fn print_report(args: &LintArgs, report: &pipewright_config::LintReport) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
