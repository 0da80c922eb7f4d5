//! The CI config engine: `.gitlab-ci.yml` plus a pipeline context become a typed plan of the
//! jobs that run. It owns GitLab's CI YAML semantics (anchors and merge keys, `!reference`,
//! `extends`, `include:` (local, project, remote, rules, wildcards), CI/CD inputs
//! (`spec:inputs`, `$[[ inputs.… ]]`), `default`, `rules`, `only/except`, `workflow`,
//! variables and their precedence) and never does I/O: files, other projects' files and remote
//! files come in through [`FileSource`], which the caller implements, and nothing here reads a
//! clock, a database or the network.
//!
//! Two steps, so the server can cache the expensive one by blob id:
//! [`Config::parse`] (YAML → validated config; `Send + Sync`, reusable) and [`Config::plan`]
//! (config + context → [`PlanOutcome`]; cheap, per pipeline).

mod compat;
mod context;
mod error;
mod explain;
mod globs;
mod include;
mod inputs;
mod keywords;
mod lint;
mod plan;
mod resolve;
mod rules;
mod variables;
mod yaml;

pub use compat::ignored_keywords;
pub use context::{PipelineContext, ProjectInfo, UserInfo};
pub use error::{ConfigError, Location, Result};
pub use explain::{DecidedBy, PolicyKey};
pub use globs::MAX_PATTERN_COMPARISONS;
pub use include::{IncludedFile, IncludedKind, ProjectRef, project_not_found};
pub use inputs::{Inputs, Interpolation};
pub use keywords::{AllowFailure, Need, Retry, When, YamlVariable, duration_seconds};
pub use lint::{LintOptions, LintReport, lint};
/// The context speaks core's vocabulary; re-exported so the engine's callers need only this crate.
pub use pipewright_core::{PipelineSource, RefKind, Visibility};
pub use plan::{InitialStatus, PLAN_INTERRUPTED, Plan, PlanOutcome, PlannedJob};
pub use variables::{
    Variable, VariableSource, expand, expand_all, job_predefined, merge as merge_variables,
    predefined, slugify,
};
pub use yaml::Limits;

use keywords::{GLOBAL_KEYWORDS, JobConfig};
use rules::{Policy, RuleScope, Workflow};
use yaml::{Node, Yaml};

/// Everything the engine asks its caller while it expands `include:` — files, file lists,
/// the pipeline's variables — so that the engine itself does no I/O. Only [`read`] is
/// required; the others answer as if the feature were unavailable (no files to list, no other
/// projects, no network, no variables). A caller that caches parsed configs can tell from the
/// methods called what a config depended on.
///
/// [`read`]: FileSource::read
pub trait FileSource {
    /// A file of the pipeline's commit (the same commit as `.gitlab-ci.yml`): its text,
    /// `Ok(None)` if there is no such file, `Err` with a message on failure.
    fn read(&self, path: &str) -> std::result::Result<Option<String>, String>;

    /// Every file path of the pipeline's commit, for `include: local:` wildcards and the
    /// `exists:` of include rules. The caller bounds its length.
    fn list(&self) -> std::result::Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    /// A file of another project (`include: project:`) at `git_ref` — a branch, tag or
    /// commit; the project's default branch when `None` — read on behalf of the pipeline's
    /// user. `Err` with GitLab's message when the project does not exist or the user may not
    /// read its code (``Project `x` not found or access denied! …``) or the ref does not exist.
    fn read_project(
        &self,
        project: &str,
        _git_ref: Option<&str>,
        _path: &str,
    ) -> std::result::Result<Option<String>, String> {
        Err(include::project_not_found(project))
    }

    /// Every file path of another project at `git_ref` (wildcards in a `local:` include
    /// written inside that project's file).
    fn list_project(
        &self,
        project: &str,
        _git_ref: Option<&str>,
    ) -> std::result::Result<Vec<String>, String> {
        Err(include::project_not_found(project))
    }

    /// The body of `url` (`include: remote:`), or GitLab's
    /// ``Remote file `url` could not be fetched because …`` message.
    fn read_remote(&self, url: &str) -> std::result::Result<String, String> {
        Err(format!(
            "Remote file `{url}` could not be fetched because remote includes are not available here!"
        ))
    }

    /// The variables include rules (`rules:if`) and `$VARIABLES` in include locations see:
    /// predefined, instance, project and pipeline variables, later entries winning
    /// ([`include_variables`] builds them from a [`PipelineContext`]). Masked values are hidden
    /// in error messages.
    fn variables(&self) -> Vec<Variable> {
        Vec::new()
    }
}

/// The variables GitLab evaluates `include:` rules and locations with (its
/// `variables_builder.config_variables`): the predefined ones, then instance, project and
/// pipeline variables; the YAML's own `variables:` are not known before includes are read.
pub fn include_variables(ctx: &PipelineContext) -> Vec<Variable> {
    variables::merge(
        variables::predefined(ctx)
            .into_iter()
            .chain(ctx.instance_variables.iter().cloned())
            .chain(ctx.project_variables.iter().cloned())
            .chain(ctx.pipeline_variables.iter().cloned()),
    )
}

/// A config without includes.
pub struct NoFiles;

impl FileSource for NoFiles {
    fn read(&self, _path: &str) -> std::result::Result<Option<String>, String> {
        Ok(None)
    }
}

/// The most jobs one config may define.
pub const MAX_JOBS: usize = 2_000;

/// A parsed, validated `.gitlab-ci.yml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// All stages, including `.pre` first and `.post` last.
    pub stages: Vec<String>,
    pub variables: Vec<YamlVariable>,
    /// Keywords the file uses that Pipewright accepts and ignores, one warning per keyword
    /// (`ci lint` shows them).
    pub warnings: Vec<String>,
    /// The files it included, in GitLab's order (the CI Lint API's `includes`).
    pub includes: Vec<IncludedFile>,
    pub(crate) workflow: Option<Workflow>,
    pub(crate) jobs: Vec<JobConfig>,
}

impl Config {
    pub fn parse(source: &str, files: &dyn FileSource, limits: &Limits) -> Result<Config> {
        Config::parse_with(source, files, limits, &Interpolation::default())
    }

    /// [`Config::parse`] for a pipeline given `inputs` (for a root file with a `spec:` header),
    /// whose `expand_vars` may expand `interpolation.variables`.
    pub fn parse_with(
        source: &str,
        files: &dyn FileSource,
        limits: &Limits,
        interpolation: &Interpolation,
    ) -> Result<Config> {
        Config::parse_listing_includes(source, files, limits, interpolation).1
    }

    /// [`Config::parse_with`], also saying which files the config included once it was read:
    /// `None` when reading it failed (its YAML, an include, `!reference`, `extends`: GitLab's
    /// `Config::ConfigError`, for which its lint answers `"includes": null`), the list when
    /// only a later check failed.
    pub fn parse_listing_includes(
        source: &str,
        files: &dyn FileSource,
        limits: &Limits,
        interpolation: &Interpolation,
    ) -> (Option<Vec<IncludedFile>>, Result<Config>) {
        match Config::load(source, files, limits, interpolation) {
            Ok((map, includes)) => (Some(includes.clone()), Config::validate(&map, includes)),
            Err(e) => (None, Err(e)),
        }
    }

    /// The file with its includes merged, `!reference`s resolved and `extends` applied.
    fn load(
        source: &str,
        files: &dyn FileSource,
        limits: &Limits,
        interpolation: &Interpolation,
    ) -> Result<(yaml::Map, Vec<IncludedFile>)> {
        let (map, includes) = include::load_with_includes(source, files, limits, interpolation)?;
        let mut map = resolve::resolve_references(&map)?;
        resolve::apply_extends(&mut map, GLOBAL_KEYWORDS)?;
        Ok((map, includes))
    }

    /// The loaded mapping checked and typed.
    fn validate(map: &yaml::Map, includes: Vec<IncludedFile>) -> Result<Config> {
        let warnings = compat::warnings(map, GLOBAL_KEYWORDS);
        let stages = stages(map)?;
        let variables = match map.get("variables") {
            Some(node) => keywords::variables(node, "variables")?,
            None => Vec::new(),
        };
        let defaults = defaults(map)?;
        let workflow = map.get("workflow").map(workflow).transpose()?;
        let mut jobs = jobs(map, &defaults)?;
        // GitLab: lib/gitlab/ci/config/entry/processable.rb — a job without `rules`, `only`
        // or `except` runs for branches and tags (`only:`'s default), unless the config has
        // `workflow:rules`: then the workflow alone decides, and the job runs in every
        // pipeline it lets through.
        let workflow_rules = workflow.as_ref().is_some_and(|w| !w.rules.is_empty());
        if !workflow_rules {
            for job in jobs
                .iter_mut()
                .filter(|j| j.rules.is_none() && j.only.is_none())
            {
                job.only = Some(Policy::default_only());
            }
        }
        check_stages_and_needs(&jobs, &stages)?;
        expand_parallel_needs(&mut jobs);
        rules::share_conditions(&mut jobs);
        Ok(Config {
            stages,
            variables,
            warnings,
            includes,
            workflow,
            jobs,
        })
    }

    /// Decides which jobs run for `ctx`.
    pub fn plan(&self, ctx: &PipelineContext) -> Result<PlanOutcome> {
        plan::plan(self, ctx, &|| false)
    }

    /// Decides which jobs run for `ctx`, unless `stop` says to give up first: then the error
    /// is [`PLAN_INTERRUPTED`]. `stop` is asked before each job and each scan of a file list
    /// (`rules:exists`, `changes`), so planning ends within one scan of it saying yes. The
    /// engine has no clock; a caller with a time budget reads its own in `stop`.
    pub fn plan_until(
        &self,
        ctx: &PipelineContext,
        stop: &dyn Fn() -> bool,
    ) -> Result<PlanOutcome> {
        plan::plan(self, ctx, stop)
    }

    /// Whether any rule uses `exists:` (the caller then passes the commit's file list).
    pub fn uses_exists(&self) -> bool {
        let rules = self.jobs.iter().flat_map(|j| j.rules.iter().flatten());
        let workflow = self.workflow.iter().flat_map(|w| w.rules.iter());
        rules.chain(workflow).any(|r| r.exists.is_some())
    }

    /// Names of the visible jobs, in definition order.
    pub fn job_names(&self) -> Vec<&str> {
        self.jobs.iter().map(|j| j.name.as_str()).collect()
    }
}

/// `stages:` (or the deprecated `types:`) between `.pre` and `.post`; GitLab's three when absent.
fn stages(map: &yaml::Map) -> Result<Vec<String>> {
    let mut stages = vec![".pre".to_string()];
    match map.get("stages").or_else(|| map.get("types")) {
        None => stages.extend(keywords::DEFAULT_STAGES.iter().map(|s| s.to_string())),
        Some(node) => {
            let list = keywords::string_list(node, "stages")
                .map_err(|_| ConfigError::new("stages config should be an array of strings"))?;
            stages.extend(list.into_iter().filter(|s| s != ".pre" && s != ".post"));
        }
    }
    stages.push(".post".to_string());
    Ok(stages)
}

/// `default:`, with the deprecated global `image`, `services`, `cache`, `before_script` and
/// `after_script` acting as defaults where `default:` does not set them.
fn defaults(map: &yaml::Map) -> Result<yaml::Map> {
    let mut defaults = match map.get("default") {
        Some(node) => keywords::defaults(node)?,
        None => yaml::Map::default(),
    };
    for key in [
        "image",
        "services",
        "cache",
        "before_script",
        "after_script",
    ] {
        if let Some(node) = map.get(key)
            && defaults.get(key).is_none()
        {
            defaults.insert(key.to_string(), node.clone());
        }
    }
    Ok(defaults)
}

/// `workflow:` (`rules`, `name`; `auto_cancel` is accepted and ignored).
fn workflow(node: &Node) -> Result<Workflow> {
    let m = node
        .as_map()
        .ok_or_else(|| ConfigError::new("workflow config should be a hash"))?;
    let unknown: Vec<&str> = m
        .keys()
        .filter(|k| !["rules", "name", "auto_cancel"].contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(ConfigError::new(format!(
            "workflow config contains unknown keys: {}",
            unknown.join(", ")
        )));
    }
    Ok(Workflow {
        rules: m
            .get("rules")
            .map(|n| rules::rules(n, "workflow", RuleScope::Workflow))
            .transpose()?
            .unwrap_or_default(),
        name: m.get("name").and_then(Node::scalar_text),
    })
}

/// Every visible job, `parallel:` expanded into its instances, in definition order.
fn jobs(map: &yaml::Map, defaults: &yaml::Map) -> Result<Vec<JobConfig>> {
    let mut jobs = Vec::new();
    for (name, node) in &map.0 {
        if GLOBAL_KEYWORDS.contains(&name.as_str()) || name.starts_with('.') {
            continue;
        }
        if name.is_empty() {
            return Err(ConfigError::new(
                "jobs config should contain valid job names",
            ));
        }
        if !matches!(node.value, Yaml::Map(_)) {
            return Err(ConfigError::at(
                format!("jobs:{name} config should be a hash"),
                node.location(resolve::CONFIG_FILE),
            ));
        }
        let base = keywords::job(name, node, Some(defaults))?;
        for (instance, matrix_vars) in keywords::expand_parallel(name, node)? {
            let mut job = base.clone();
            job.name = instance;
            job.variables.extend(matrix_vars);
            jobs.push(job);
        }
        if jobs.len() > MAX_JOBS {
            return Err(ConfigError::new(format!(
                "The pipeline has too many jobs (maximum is {MAX_JOBS})"
            )));
        }
    }
    if jobs.is_empty() {
        return Err(ConfigError::new(
            "jobs config should contain at least one visible job",
        ));
    }
    Ok(jobs)
}

/// Each job's stage exists, and its `needs` and `dependencies` name jobs of this or earlier
/// stages.
fn check_stages_and_needs(jobs: &[JobConfig], stages: &[String]) -> Result<()> {
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    for job in jobs {
        if !stages.contains(&job.stage) {
            return Err(ConfigError::new(format!(
                "jobs:{} chosen stage {} does not exist; available stages are {}",
                job.name,
                job.stage,
                stages.join(", ")
            )));
        }
        let stage_idx = stages.iter().position(|s| s == &job.stage).unwrap_or(0);
        for need in job.needs.iter().flatten() {
            // `needs: [build]` also names every instance of a parallel `build`.
            let Some(target) = jobs
                .iter()
                .find(|j| j.name == need.job || parallel_base(&j.name) == need.job)
            else {
                return Err(ConfigError::new(format!(
                    "{} job: undefined need: {}",
                    job.name, need.job
                )));
            };
            let target_idx = stages.iter().position(|s| s == &target.stage).unwrap_or(0);
            if target_idx > stage_idx {
                return Err(ConfigError::new(format!(
                    "{} job: need {} is not defined in current or prior stages",
                    job.name, need.job
                )));
            }
        }
        for dep in job.dependencies.iter().flatten() {
            if !names.contains(&dep.as_str()) {
                return Err(ConfigError::new(format!(
                    "{} job: undefined dependency: {dep}",
                    job.name
                )));
            }
        }
    }
    Ok(())
}

/// `build 1/3` and `build: [a, b]` → `build`.
fn parallel_base(name: &str) -> &str {
    if let Some((base, rest)) = name.rsplit_once(' ')
        && rest.contains('/')
        && rest
            .split('/')
            .all(|p| p.chars().all(|c| c.is_ascii_digit()))
    {
        return base;
    }
    if let Some((base, _)) = name.split_once(": [") {
        return base;
    }
    name
}

/// Rewrites needs on a parallel job's base name into needs on each of its instances.
fn expand_parallel_needs(jobs: &mut [JobConfig]) {
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    for job in jobs.iter_mut() {
        let Some(needs) = &mut job.needs else {
            continue;
        };
        let mut expanded = Vec::new();
        for need in needs.drain(..) {
            if names.contains(&need.job) {
                expanded.push(need);
            } else {
                for instance in names.iter().filter(|n| parallel_base(n) == need.job) {
                    expanded.push(Need {
                        job: instance.clone(),
                        ..need.clone()
                    });
                }
            }
        }
        *needs = expanded;
    }
}
