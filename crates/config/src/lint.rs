//! The linter: "what would this config run?" for a given source and ref, as text for people
//! and as JSON for tools (`pipewright ci lint`, and the CI Lint API).

use pipewright_core::{PipelineSource, RefKind, Visibility};
use serde::Serialize;

use crate::context::{PipelineContext, ProjectInfo};
use crate::plan::PlanOutcome;
use crate::variables::{Variable, VariableSource};
use crate::{Config, FileSource, Limits};

#[derive(Debug, Clone)]
pub struct LintOptions {
    pub source: PipelineSource,
    pub ref_name: String,
    pub ref_kind: RefKind,
    pub variables: Vec<(String, String)>,
    /// CI/CD inputs for the file's `spec:inputs` header, as a pipeline would be given them.
    pub inputs: crate::Inputs,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            source: PipelineSource::Push,
            ref_name: "main".into(),
            ref_kind: RefKind::Branch,
            variables: Vec::new(),
            inputs: crate::Inputs::new(),
        }
    }
}

/// A job as GitLab's CI Lint lists it with `include_jobs` (GitLab: lib/gitlab/ci/lint.rb,
/// `static_validation_convert_to_jobs`): its scripts, tags and environment's name, with
/// Pipewright's `needs` as job names. GitLab's `only`/`except` are not listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LintJob {
    pub name: String,
    pub stage: String,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    pub tag_list: Vec<String>,
    pub environment: Option<String>,
    pub when: String,
    pub allow_failure: bool,
    pub needs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LintReport {
    pub valid: bool,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub stages: Vec<String>,
    pub jobs: Vec<LintJob>,
    /// The files the config included; `None` when it could not be read (GitLab's lint then
    /// answers `"includes": null`).
    pub includes: Option<Vec<crate::IncludedFile>>,
}

/// The caller's files, with the lint's pipeline variables for include rules when the caller
/// gives none.
struct LintFiles<'a> {
    inner: &'a dyn FileSource,
    ctx: &'a PipelineContext,
}

impl FileSource for LintFiles<'_> {
    fn read(&self, path: &str) -> std::result::Result<Option<String>, String> {
        self.inner.read(path)
    }
    fn list(&self) -> std::result::Result<Vec<String>, String> {
        self.inner.list()
    }
    fn read_project(
        &self,
        project: &str,
        git_ref: Option<&str>,
        path: &str,
    ) -> std::result::Result<Option<String>, String> {
        self.inner.read_project(project, git_ref, path)
    }
    fn list_project(
        &self,
        project: &str,
        git_ref: Option<&str>,
    ) -> std::result::Result<Vec<String>, String> {
        self.inner.list_project(project, git_ref)
    }
    fn read_remote(&self, url: &str) -> std::result::Result<String, String> {
        self.inner.read_remote(url)
    }
    fn variables(&self) -> Vec<crate::Variable> {
        let own = self.inner.variables();
        if own.is_empty() {
            crate::include_variables(self.ctx)
        } else {
            own
        }
    }
}

/// Parses and plans `source` as a pipeline of `options.source` on `options.ref_name`.
pub fn lint(source: &str, files: &dyn FileSource, options: &LintOptions) -> LintReport {
    let mut report = LintReport {
        valid: false,
        errors: Vec::new(),
        warnings: Vec::new(),
        stages: Vec::new(),
        jobs: Vec::new(),
        includes: None,
    };
    // A stand-in project and commit: linting is about the file, not where it lives.
    let project = ProjectInfo {
        id: 0,
        name: "project".into(),
        path_with_namespace: "group/project".into(),
        namespace: "group".into(),
        default_branch: "main".into(),
        visibility: Visibility::Private,
    };
    let ctx = PipelineContext {
        trigger_short_token: (options.source == PipelineSource::Trigger)
            .then(|| "lint".to_string()),
        pipeline_variables: options
            .variables
            .iter()
            .map(|(k, v)| Variable::new(k, v.clone(), VariableSource::Pipeline))
            .collect(),
        ..PipelineContext::new(
            options.source,
            options.ref_name.clone(),
            options.ref_kind,
            "0".repeat(40),
            project,
            "http://localhost",
        )
    };
    // Include rules see the lint's variables when the caller has none of its own.
    let with_vars = LintFiles {
        inner: files,
        ctx: &ctx,
    };
    // `expand_vars` in inputs sees the same variables as include rules.
    let interpolation = crate::Interpolation {
        variables: with_vars.variables(),
        ..crate::Interpolation::with_inputs(options.inputs.clone())
    };
    let (includes, parsed) =
        Config::parse_listing_includes(source, &with_vars, &Limits::default(), &interpolation);
    report.includes = includes;
    let config = match parsed {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    // What the file uses that Pipewright ignores comes first, whatever the plan says.
    report.warnings.extend(config.warnings.iter().cloned());
    match config.plan(&ctx) {
        Err(e) => report.errors.push(e.to_string()),
        Ok(PlanOutcome::FilteredOutByWorkflow) => {
            report.valid = true;
            report
                .warnings
                .push("Pipeline filtered out by workflow rules.".into());
        }
        Ok(PlanOutcome::NoJobs) => {
            report.valid = true;
            report
                .warnings
                .push("No stages / jobs for this pipeline.".into());
        }
        Ok(PlanOutcome::Created(plan)) => {
            report.valid = true;
            report.stages = plan.stages.clone();
            report.jobs = plan
                .jobs
                .iter()
                .map(|j| LintJob {
                    name: j.name.clone(),
                    stage: j.stage.clone(),
                    before_script: j.before_script.clone(),
                    script: j.script.clone(),
                    after_script: j.after_script.clone(),
                    tag_list: j.tags.clone(),
                    environment: environment_name(j.environment.as_ref()),
                    when: j.when.as_str().to_string(),
                    allow_failure: j.allow_failure,
                    needs: j.needs.iter().flatten().map(|n| n.job.clone()).collect(),
                })
                .collect();
        }
    }
    report
}

/// `environment: name` or `environment: {name: …}` → the name.
fn environment_name(environment: Option<&serde_json::Value>) -> Option<String> {
    match environment? {
        serde_json::Value::String(name) => Some(name.clone()),
        serde_json::Value::Object(m) => m.get("name")?.as_str().map(str::to_string),
        _ => None,
    }
}

impl LintReport {
    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if !self.valid {
            out.push_str("Invalid CI config:\n");
            for e in &self.errors {
                out.push_str(&format!("  error: {e}\n"));
            }
            return out;
        }
        out.push_str("Valid CI config.\n");
        for w in &self.warnings {
            out.push_str(&format!("  {w}\n"));
        }
        for file in self.includes.iter().flatten() {
            out.push_str(&format!("included {}\n", file.describe()));
        }
        for stage in &self.stages {
            out.push_str(&format!("stage {stage}:\n"));
            for job in self.jobs.iter().filter(|j| &j.stage == stage) {
                out.push_str(&format!("  {} (when: {}", job.name, job.when));
                if job.allow_failure {
                    out.push_str(", allow_failure");
                }
                if !job.needs.is_empty() {
                    out.push_str(&format!(", needs: {}", job.needs.join(", ")));
                }
                out.push_str(")\n");
            }
        }
        out
    }
}
