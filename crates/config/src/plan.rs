//! Planning: a parsed config plus a pipeline context become the jobs that run, in stage order,
//! each with its resolved script, variables (with provenance), `when`, `needs` and data for
//! runners. `workflow:rules`, `rules` and `only/except` decide membership here.

use std::cell::Cell;
use std::collections::HashMap;

use pipewright_core::status::{composite, next_status};
use pipewright_core::{PipelineSource, RefKind, Status};
use pipewright_expr::Variables;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::Config;
use crate::context::PipelineContext;
use crate::error::{ConfigError, Result};
use crate::keywords::{AllowFailure, JobConfig, Need, Retry, When, YamlVariable};
use crate::rules::{Policy, Rule};
use crate::variables::{self, Variable, VariableSource};

/// What planning produced.
#[derive(Debug, Clone)]
pub enum PlanOutcome {
    Created(Plan),
    /// `workflow:rules` excluded the pipeline: "Pipeline filtered out by workflow rules."
    FilteredOutByWorkflow,
    /// No job would run: "No stages / jobs for this pipeline."
    NoJobs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Stages that have jobs, in order.
    pub stages: Vec<String>,
    /// Jobs in stage order, then definition order.
    pub jobs: Vec<PlannedJob>,
    /// `workflow:name`, if set.
    pub name: Option<String>,
    /// Jobs the rules left out, with what decided it ([`crate::Config::explain`] says why).
    #[serde(skip)]
    pub excluded: Vec<(String, DecidedBy)>,
}

/// The state a planned job starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialStatus {
    /// Ready for a runner now.
    Pending,
    /// Waits for earlier stages or its needs.
    Created,
    /// A manual job nothing blocks: waits for someone to play it.
    Manual,
    /// A delayed job nothing blocks.
    Scheduled,
    /// Will not run: an `on_failure` job when nothing before it failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedJob {
    pub name: String,
    pub stage: String,
    pub stage_idx: usize,
    pub when: When,
    pub start_in: Option<String>,
    pub allow_failure: bool,
    pub allow_failure_exit_codes: Vec<i64>,
    pub initial_status: InitialStatus,
    /// `None`: ordinary stage ordering. `Some`: starts when these finish (`needs`).
    pub needs: Option<Vec<Need>>,
    pub dependencies: Option<Vec<String>>,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    pub image: Option<Json>,
    pub services: Vec<Json>,
    pub tags: Vec<String>,
    /// YAML and rule variables for this job (pipeline-level ones are added by the server).
    pub variables: Vec<Variable>,
    pub artifacts: Option<Json>,
    pub cache: Option<Json>,
    pub retry: Option<Retry>,
    pub timeout: Option<u64>,
    pub trigger: Option<Json>,
    pub environment: Option<Json>,
    pub resource_group: Option<String>,
    pub interruptible: Option<bool>,
    pub coverage: Option<String>,
    /// What let the job in ([`crate::Config::explain`] says why); not stored.
    #[serde(skip)]
    pub decided_by: DecidedBy,
}

/// What `workflow:rules` see (GitLab evaluates them with the pipeline-level variables:
/// predefined, global YAML, instance, project and pipeline ones), without building a merged
/// copy: for each name, the definition [`variables::merge`] would keep — the strongest
/// source, and among equals the later one.
struct PipelineLookup<'a> {
    ctx: &'a PipelineContext,
    globals: &'a [YamlVariable],
    predefined: &'a [Variable],
}

impl<'a> Variables for PipelineLookup<'a> {
    fn get(&self, name: &str) -> Option<&str> {
        let defined = |vars: &'a [Variable]| {
            vars.iter()
                .filter(move |v| v.key == name)
                .map(|v| (v.source, v.value.as_str()))
        };
        let globals = self
            .globals
            .iter()
            .filter(|v| v.key == name)
            .map(|v| (VariableSource::Global, v.value.as_str()));
        defined(self.predefined)
            .chain(globals)
            .chain(defined(&self.ctx.instance_variables))
            .chain(defined(&self.ctx.project_variables))
            .chain(defined(&self.ctx.pipeline_variables))
            .fold(None, |best, (source, value)| match best {
                Some((strongest, _)) if source < strongest => best,
                _ => Some((source, value)),
            })
            .map(|(_, value)| value)
    }
}

/// What a job's rules see, by precedence, without building a merged copy per job: pipeline,
/// project and instance variables, then the job's YAML, the workflow's and the inherited
/// global ones, then predefined variables.
struct JobLookup<'a> {
    ctx: &'a PipelineContext,
    job: &'a JobConfig,
    workflow: &'a [YamlVariable],
    globals: &'a [YamlVariable],
    predefined: &'a [Variable],
}

fn find_var<'v>(vars: &'v [Variable], name: &str) -> Option<&'v str> {
    vars.iter()
        .rev()
        .find(|v| v.key == name)
        .map(|v| v.value.as_str())
}

fn find_yaml<'v>(vars: &'v [YamlVariable], name: &str) -> Option<&'v str> {
    vars.iter()
        .rev()
        .find(|v| v.key == name)
        .map(|v| v.value.as_str())
}

impl Variables for JobLookup<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        find_var(&self.ctx.pipeline_variables, name)
            .or_else(|| find_var(&self.ctx.project_variables, name))
            .or_else(|| find_var(&self.ctx.instance_variables, name))
            .or_else(|| find_yaml(&self.job.variables, name))
            .or_else(|| find_yaml(self.workflow, name))
            .or_else(|| {
                if self.job.inherit_global_variables.includes(name) {
                    find_yaml(self.globals, name)
                } else {
                    None
                }
            })
            .or_else(|| find_var(self.predefined, name))
    }
}

fn yaml_vars<'v>(
    vars: impl IntoIterator<Item = &'v YamlVariable>,
    source: VariableSource,
) -> impl Iterator<Item = Variable> {
    vars.into_iter().map(move |v| {
        let mut var = Variable::new(&v.key, v.value.clone(), source);
        var.raw = !v.expand;
        var
    })
}

/// The caller's "stop now" (the server's time budget), remembered once it has said yes.
struct Interrupt<'a> {
    stop: &'a dyn Fn() -> bool,
    stopped: Cell<bool>,
}

impl Interrupt<'_> {
    fn stopped(&self) -> bool {
        if !self.stopped.get() && (self.stop)() {
            self.stopped.set(true);
        }
        self.stopped.get()
    }
}

/// Whether a `rules:` entry matches.
fn rule_matches(
    rule: &Rule,
    vars: &dyn Variables,
    ctx: &PipelineContext,
    interrupt: &Interrupt,
) -> bool {
    if let Some(cond) = &rule.condition
        && !cond.evaluate(vars)
    {
        return false;
    }
    let stop = || interrupt.stopped();
    if let Some(globs) = &rule.changes {
        // Without a diff (triggers, schedules, the web), `changes` is always true.
        if let Some(changed) = &ctx.changed_files
            && !globs.any_changed(changed, &stop)
        {
            return false;
        }
    }
    if let Some(globs) = &rule.exists {
        match &ctx.files {
            Some(files) if globs.exists_in(files, &stop) => {}
            _ => return false,
        }
    }
    true
}

/// GitLab's `only/except: refs` matching (`Gitlab::Ci::Build::Policy::Refs`).
fn ref_pattern_matches(pattern: &str, ctx: &PipelineContext) -> bool {
    // `pattern@group/project` also requires the project (so forks do not run the job).
    let (pattern, project) = match pattern.rsplit_once('@') {
        Some((p, proj))
            if !p.is_empty() && proj.contains('/') && !proj.contains(char::is_whitespace) =>
        {
            (p, Some(proj))
        }
        _ => (pattern, None),
    };
    if let Some(project) = project
        && project != ctx.project.path_with_namespace
    {
        return false;
    }
    let source = ctx.source.as_str().trim_end_matches("_event");
    let keyword = match pattern {
        // A merge request pipeline is not a branch pipeline (GitLab: `branch?` is
        // `!tag? && !merge_request?` in app/models/concerns/ci/has_ref.rb).
        "branches" => {
            Some(ctx.ref_kind == RefKind::Branch && ctx.source != PipelineSource::MergeRequestEvent)
        }
        "tags" => Some(ctx.ref_kind == RefKind::Tag),
        "merge_requests" => Some(matches!(ctx.source, PipelineSource::MergeRequestEvent)),
        _ => None,
    };
    if let Some(result) = keyword {
        return result;
    }
    if pattern == source
        || pattern == format!("{source}s")
        || (pattern == "pushes" && source == "push")
    {
        return true;
    }
    if [
        "api",
        "external",
        "web",
        "triggers",
        "pipelines",
        "schedules",
        "pushes",
        "chats",
        "webides",
        "external_pull_requests",
        "parent_pipelines",
        "trigger",
        "pipeline",
        "schedule",
        "push",
    ]
    .contains(&pattern)
    {
        return false;
    }
    if let Some(body) = pattern.strip_prefix('/')
        && let Some(end) = body.rfind('/')
    {
        let flags = &body[end + 1..];
        let re = if flags.contains('i') {
            format!("(?i){}", &body[..end])
        } else {
            body[..end].to_string()
        };
        // The expression language's patterns: RE2 with its size limits and no full DFA.
        return pipewright_expr::Pattern::new(re).is_ok_and(|r| r.is_match(&ctx.ref_name));
    }
    pattern == ctx.ref_name
}

use crate::explain::{DecidedBy, PolicyKey as Spec};

/// Whether each specification an `only`/`except` policy gives is satisfied, evaluated lazily
/// (so `all`/`any` stop at the first answer), in GitLab's order.
/// GitLab: lib/gitlab/ci/build/policy/{refs,variables,changes,kubernetes}.rb
fn policy_specs<'p>(
    policy: &'p Policy,
    vars: &'p dyn Variables,
    ctx: &'p PipelineContext,
    interrupt: &'p Interrupt,
) -> impl Iterator<Item = (Spec, bool)> + 'p {
    [
        policy.refs.is_some().then_some(Spec::Refs),
        policy.variables.is_some().then_some(Spec::Variables),
        policy.changes.is_some().then_some(Spec::Changes),
        policy.kubernetes.then_some(Spec::Kubernetes),
    ]
    .into_iter()
    .flatten()
    .map(move |spec| {
        (
            spec,
            match spec {
                Spec::Refs => policy
                    .refs
                    .iter()
                    .flatten()
                    .any(|r| ref_pattern_matches(r, ctx)),
                Spec::Variables => policy.variables.iter().flatten().any(|e| e.evaluate(vars)),
                // Without a diff (triggers, schedules, the web) `changes` is satisfied (GitLab:
                // `return true unless pipeline.branch_updated?`).
                Spec::Changes => match (&policy.changes, &ctx.changed_files) {
                    (Some(globs), Some(changed)) => {
                        globs.any_changed(changed, &|| interrupt.stopped())
                    }
                    _ => true,
                },
                // `kubernetes: active` asks for an active Kubernetes integration, which Pipewright
                // projects never have (GitLab's `pipeline.has_kubernetes_active?` is false for them).
                Spec::Kubernetes => false,
            },
        )
    })
}

/// A job's fate under its rules or only/except, borrowing from the config (the planned job
/// copies what it keeps).
struct Decision<'c> {
    when: When,
    start_in: Option<&'c String>,
    allow_failure: Option<bool>,
    variables: &'c [YamlVariable],
    needs: Option<&'c Vec<Need>>,
    decided_by: DecidedBy,
}

fn decide<'c>(
    job: &'c JobConfig,
    vars: &dyn Variables,
    ctx: &PipelineContext,
    interrupt: &Interrupt,
) -> std::result::Result<Decision<'c>, DecidedBy> {
    if let Some(rules) = &job.rules {
        for (index, rule) in rules.iter().enumerate() {
            if rule_matches(rule, vars, ctx, interrupt) {
                let when = rule.when.unwrap_or(job.when);
                if when == When::Never {
                    return Err(DecidedBy::Rule(index));
                }
                return Ok(Decision {
                    when,
                    start_in: rule.start_in.as_ref().or(job.start_in.as_ref()),
                    allow_failure: rule.allow_failure,
                    variables: &rule.variables,
                    needs: rule.needs.as_ref(),
                    decided_by: DecidedBy::Rule(index),
                });
            }
        }
        return Err(DecidedBy::NoRuleMatched);
    }
    // GitLab: `all_of_only? && none_of_except?` (lib/gitlab/ci/pipeline/seed/build.rb). The
    // default `only` (branches and tags) was filled in when the config was parsed.
    if let Some(only) = &job.only
        && let Some((spec, _)) =
            policy_specs(only, vars, ctx, interrupt).find(|(_, satisfied)| !satisfied)
    {
        return Err(DecidedBy::Only(spec));
    }
    if let Some(except) = &job.except
        && let Some((spec, _)) =
            policy_specs(except, vars, ctx, interrupt).find(|(_, satisfied)| *satisfied)
    {
        return Err(DecidedBy::Except(spec));
    }
    Ok(Decision {
        when: job.when,
        start_in: job.start_in.as_ref(),
        allow_failure: None,
        variables: &[],
        needs: None,
        decided_by: DecidedBy::OnlyExcept,
    })
}

/// The error of a plan the caller's `stop` interrupted.
pub const PLAN_INTERRUPTED: &str =
    "The pipeline's rules took too long to evaluate; planning was stopped";

/// Plans `ctx`'s pipeline, giving up with [`PLAN_INTERRUPTED`] once `stop` says so. `stop` is
/// asked before each job and each scan of a file list, so it is heeded within one scan.
pub fn plan(
    config: &Config,
    ctx: &PipelineContext,
    stop: &dyn Fn() -> bool,
) -> Result<PlanOutcome> {
    let interrupt = Interrupt {
        stop,
        stopped: Cell::new(false),
    };
    let interrupted = || ConfigError::new(PLAN_INTERRUPTED);
    // Computed once per plan: the workflow's rules and every job's read them.
    let predefined = variables::predefined(ctx);
    let workflow_vars = match workflow_decision(config, ctx, &predefined, &interrupt) {
        _ if interrupt.stopped() => return Err(interrupted()),
        None => return Ok(PlanOutcome::FilteredOutByWorkflow),
        Some(vars) => vars,
    };
    let mut planned: Vec<PlannedJob> = Vec::new();
    let mut excluded = Vec::new();
    for job in &config.jobs {
        if interrupt.stopped() {
            return Err(interrupted());
        }
        let view = JobLookup {
            ctx,
            job,
            workflow: workflow_vars,
            globals: &config.variables,
            predefined: &predefined,
        };
        match decide(job, &view, ctx, &interrupt) {
            Ok(decision) => planned.push(planned_job(config, job, decision, workflow_vars)),
            Err(reason) => excluded.push((job.name.clone(), reason)),
        }
    }
    // A scan cut short may have answered wrongly: nothing decided under it is used.
    if interrupt.stopped() {
        return Err(interrupted());
    }
    // A pipeline of only `.pre`/`.post` jobs is not created (GitLab).
    let last = config.stages.len().saturating_sub(1);
    if planned
        .iter()
        .all(|j| j.stage_idx == 0 || j.stage_idx == last)
    {
        return Ok(PlanOutcome::NoJobs);
    }
    planned.sort_by_key(|j| j.stage_idx);
    check_needs(&mut planned)?;
    set_initial_statuses(&mut planned);
    let mut stages: Vec<String> = Vec::new();
    for job in &planned {
        if !stages.contains(&job.stage) {
            stages.push(job.stage.clone());
        }
    }
    Ok(PlanOutcome::Created(Plan {
        stages,
        jobs: planned,
        name: config.workflow.as_ref().and_then(|w| w.name.clone()),
        excluded,
    }))
}

/// `workflow:rules`: `None` when they filter the pipeline out, else the matching rule's
/// variables (none without rules).
fn workflow_decision<'c>(
    config: &'c Config,
    ctx: &PipelineContext,
    predefined: &[Variable],
    interrupt: &Interrupt,
) -> Option<&'c [YamlVariable]> {
    let Some(workflow) = config.workflow.as_ref().filter(|w| !w.rules.is_empty()) else {
        return Some(&[]);
    };
    let lookup = PipelineLookup {
        ctx,
        globals: &config.variables,
        predefined,
    };
    let matched = workflow
        .rules
        .iter()
        .find(|r| rule_matches(r, &lookup, ctx, interrupt))?;
    (matched.when != Some(When::Never)).then_some(matched.variables.as_slice())
}

/// A job the rules let in, with its variables, `when` and `allow_failure` settled.
fn planned_job(
    config: &Config,
    job: &JobConfig,
    decision: Decision,
    workflow_vars: &[YamlVariable],
) -> PlannedJob {
    let (allow_failure, exit_codes) = match (&decision.allow_failure, &job.allow_failure) {
        (Some(b), _) => (*b, Vec::new()),
        (None, Some(AllowFailure::Bool(b))) => (*b, Vec::new()),
        (None, Some(AllowFailure::ExitCodes { exit_codes })) => (false, exit_codes.clone()),
        // A job written `when: manual` may fail unless it says otherwise; a rule that
        // makes a job manual does not change its default (false), so such a job blocks
        // its pipeline. GitLab: `ignored?` in lib/gitlab/ci/config/entry/job.rb
        // (`manual_action?` reads the job's own `when`) and `Build::Rules::Result`.
        (None, None) => (job.when == When::Manual, Vec::new()),
    };
    // Global YAML variables (as `inherit:` allows), the workflow's, the job's, the rule's.
    let globals = config
        .variables
        .iter()
        .filter(|v| job.inherit_global_variables.includes(&v.key));
    let job_vars = variables::merge(
        yaml_vars(globals, VariableSource::Global)
            .chain(yaml_vars(workflow_vars, VariableSource::Global))
            .chain(yaml_vars(&job.variables, VariableSource::Job))
            .chain(yaml_vars(decision.variables, VariableSource::Job)),
    );
    PlannedJob {
        name: job.name.clone(),
        stage: job.stage.clone(),
        stage_idx: config
            .stages
            .iter()
            .position(|s| s == &job.stage)
            .unwrap_or(0),
        when: decision.when,
        start_in: decision.start_in.cloned(),
        allow_failure,
        allow_failure_exit_codes: exit_codes,
        initial_status: InitialStatus::Created,
        needs: decision.needs.or(job.needs.as_ref()).cloned(),
        dependencies: job.dependencies.clone(),
        before_script: job.before_script.clone(),
        script: job.script.clone(),
        after_script: job.after_script.clone(),
        image: job.image.clone(),
        services: job.services.clone(),
        tags: job.tags.clone(),
        variables: job_vars,
        artifacts: job.artifacts.clone(),
        cache: job.cache.clone(),
        retry: job.retry.clone(),
        timeout: job.timeout,
        trigger: job.trigger.clone(),
        environment: job.environment.clone(),
        resource_group: job.resource_group.clone(),
        interruptible: job.interruptible,
        coverage: job.coverage.clone(),
        decided_by: decision.decided_by,
    }
}

/// The statuses a new pipeline's jobs start in: GitLab's first processing pass, stage by stage
/// and within a stage until `needs` settle (app/services/ci/pipeline_processing/
/// atomic_processing_service.rb), with the rules the server applies later
/// ([`composite`], [`next_status`]). So a stage that cannot hold the pipeline up — manual jobs
/// that may fail, `on_failure` jobs when nothing failed — lets the next one start at once, and
/// a pipeline waiting on a manual job that may not fail is `manual`. `jobs` are in stage order.
fn set_initial_statuses(jobs: &mut [PlannedJob]) {
    let statuses = first_processing_pass(jobs);
    for (job, status) in jobs.iter_mut().zip(statuses) {
        job.initial_status = match status {
            Some(Status::Pending) => InitialStatus::Pending,
            Some(Status::Manual) => InitialStatus::Manual,
            Some(Status::Scheduled) => InitialStatus::Scheduled,
            Some(Status::Skipped) => InitialStatus::Skipped,
            _ => InitialStatus::Created,
        };
    }
}

/// Each job's status after the first pass; `None` for a job that waits (`created`).
fn first_processing_pass(jobs: &[PlannedJob]) -> Vec<Option<Status>> {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let mut statuses: Vec<Option<Status>> = vec![None; jobs.len()];
    let counted = |statuses: &[Option<Status>], i: usize| {
        (
            statuses[i].unwrap_or(Status::Created),
            jobs[i].allow_failure,
        )
    };
    let mut start = 0;
    while start < jobs.len() {
        let stage = jobs[start].stage_idx;
        let end = start
            + jobs[start..]
                .iter()
                .take_while(|j| j.stage_idx == stage)
                .count();
        let earlier = composite((0..start).map(|i| counted(&statuses, i)), false).map(|c| c.status);
        // A job may need another of its own stage: go round until nothing changes.
        let mut changed = true;
        while changed {
            changed = false;
            for i in start..end {
                if statuses[i].is_some() {
                    continue;
                }
                let prior = match &jobs[i].needs {
                    None => earlier,
                    Some(needs) => {
                        let needed = needs.iter().filter_map(|n| index.get(n.job.as_str()));
                        composite(needed.map(|&k| counted(&statuses, k)), true).map(|c| c.status)
                    }
                };
                if let Some(status) = next_status(jobs[i].when.as_str(), prior) {
                    statuses[i] = Some(status);
                    changed = true;
                }
            }
        }
        start = end;
    }
    statuses
}

/// `needs` must name jobs in this pipeline (optional needs may be absent: they are dropped),
/// `dependencies` jobs of this or an earlier stage, and `needs` must form no cycle. Jobs are
/// found by index, borrowing their names (planning copies no name for this).
fn check_needs(jobs: &mut [PlannedJob]) -> Result<()> {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    // (job, need) positions of optional needs naming a job this pipeline does not have.
    let mut absent: Vec<(usize, usize)> = Vec::new();
    let mut edges: Vec<Vec<usize>> = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let mut needed = Vec::new();
        for (n, need) in job.needs.iter().flatten().enumerate() {
            match index.get(need.job.as_str()) {
                Some(&k) => needed.push(k),
                None if need.optional => absent.push((i, n)),
                None => {
                    return Err(ConfigError::new(format!(
                        "'{}' job needs '{}' job, but '{}' is not in any previous stage",
                        job.name, need.job, need.job
                    )));
                }
            }
        }
        for dep in job.dependencies.iter().flatten() {
            match index.get(dep.as_str()) {
                Some(&k) if jobs[k].stage_idx <= job.stage_idx => {}
                _ => {
                    return Err(ConfigError::new(format!(
                        "{} job: dependency {dep} is not defined in current or prior stages",
                        job.name
                    )));
                }
            }
        }
        edges.push(needed);
    }
    if has_cycle(&edges) {
        return Err(ConfigError::new("The pipeline has circular dependencies"));
    }
    for (i, n) in absent.into_iter().rev() {
        if let Some(needs) = &mut jobs[i].needs {
            needs.remove(n);
        }
    }
    Ok(())
}

/// Whether `edges` (each job's needed jobs, by index) form a cycle; needs may point within a
/// stage. A depth-first walk: 0 not seen, 1 on the current path, 2 done.
fn has_cycle(edges: &[Vec<usize>]) -> bool {
    let mut state = vec![0u8; edges.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..edges.len() {
        if state[start] != 0 {
            continue;
        }
        state[start] = 1;
        stack.push((start, 0));
        while let Some((node, i)) = stack.pop() {
            let Some(&child) = edges[node].get(i) else {
                state[node] = 2;
                continue;
            };
            stack.push((node, i + 1));
            match state[child] {
                1 => return true,
                0 => {
                    state[child] = 1;
                    stack.push((child, 0));
                }
                _ => {}
            }
        }
    }
    false
}
