//! Helpers: parse + plan a config for a source and ref.

use std::collections::HashMap;

use pipewright_config::{
    Config, FileSource, Limits, PipelineContext, PipelineSource, Plan, PlanOutcome, ProjectInfo,
    RefKind, UserInfo, Variable, VariableSource, Visibility,
};

pub struct Files(pub HashMap<String, String>);

impl FileSource for Files {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        Ok(self.0.get(path).cloned())
    }
}

pub fn context(
    source: PipelineSource,
    ref_name: &str,
    kind: RefKind,
    vars: &[(&str, &str)],
) -> PipelineContext {
    let project = ProjectInfo {
        id: 9,
        name: "demo".into(),
        path_with_namespace: "group/demo".into(),
        namespace: "group".into(),
        default_branch: "main".into(),
        visibility: Visibility::Private,
    };
    PipelineContext {
        commit_message: "Add the pipeline\n\nWith a body.".into(),
        pipeline_id: Some(257),
        pipeline_iid: Some(118),
        user: Some(UserInfo {
            id: 1,
            login: "root".into(),
            name: "Administrator".into(),
            email: "admin@example.com".into(),
        }),
        trigger_short_token: (source == PipelineSource::Trigger).then(|| "abcd".to_string()),
        pipeline_variables: vars
            .iter()
            .map(|(k, v)| Variable::new(k, *v, VariableSource::Pipeline))
            .collect(),
        ..PipelineContext::new(
            source,
            ref_name,
            kind,
            "a".repeat(40),
            project,
            "https://gitlab.example.com",
        )
    }
}

pub fn parse(yaml: &str) -> Config {
    match Config::parse(yaml, &Files(HashMap::new()), &Limits::default()) {
        Ok(c) => c,
        Err(e) => panic!("config should parse: {e}"),
    }
}

pub fn parse_err(yaml: &str) -> String {
    match Config::parse(yaml, &Files(HashMap::new()), &Limits::default()) {
        Ok(_) => panic!("config should not parse:\n{yaml}"),
        Err(e) => e.message,
    }
}

pub fn plan_in(yaml: &str, ctx: &PipelineContext) -> PlanOutcome {
    parse(yaml).plan(ctx).unwrap()
}

pub fn created(yaml: &str, ctx: &PipelineContext) -> Plan {
    match plan_in(yaml, ctx) {
        PlanOutcome::Created(p) => p,
        other => panic!("expected a pipeline, got {other:?}"),
    }
}

pub fn job_names(plan: &Plan) -> Vec<&str> {
    plan.jobs.iter().map(|j| j.name.as_str()).collect()
}

/// The jobs `job` needs in `plan`, in order.
pub fn needs_of<'p>(plan: &'p Plan, job: &str) -> Vec<&'p str> {
    let job = plan.jobs.iter().find(|j| j.name == job).expect("the job");
    job.needs.iter().flatten().map(|n| n.job.as_str()).collect()
}

/// The names of jobs that would run for `source` on a branch `main`.
pub fn runs(yaml: &str, source: PipelineSource) -> Vec<String> {
    match plan_in(yaml, &context(source, "main", RefKind::Branch, &[])) {
        PlanOutcome::Created(p) => p.jobs.iter().map(|j| j.name.clone()).collect(),
        _ => Vec::new(),
    }
}
