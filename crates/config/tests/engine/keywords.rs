//! One test per keyword or rule, as the CI YAML reference describes it.

use pipewright_config::{
    InitialStatus, PipelineSource, PlanOutcome, RefKind, VariableSource, When,
};

use crate::support::*;

fn branch(vars: &[(&str, &str)]) -> pipewright_config::PipelineContext {
    context(PipelineSource::Push, "main", RefKind::Branch, vars)
}

#[test]
fn anchors_merge_keys_extends_references_and_default() {
    let yaml = r#"
default:
  image: ruby:3
  before_script: [echo default-before]
  tags: [shared]
.setup: &setup
  script:
    - echo setup
  variables:
    A: base
.base:
  stage: build
  variables:
    A: from-base
    B: from-base
  artifacts:
    paths: [out/]
build:
  extends: .base
  variables:
    B: own
  script:
    - !reference [.setup, script]
    - echo build
test:
  <<: *setup
  tags: [own]
  inherit:
    default: false
"#;
    let plan = created(yaml, &branch(&[]));
    let build = &plan.jobs[0];
    assert_eq!(build.name, "build");
    assert_eq!(build.stage, "build");
    assert_eq!(build.script, ["echo setup", "echo build"]);
    assert_eq!(build.before_script, ["echo default-before"]);
    assert_eq!(build.image, Some(serde_json::json!("ruby:3")));
    assert_eq!(build.tags, ["shared"]);
    assert_eq!(
        build.artifacts,
        Some(serde_json::json!({"paths": ["out/"]}))
    );
    let var = |job: &pipewright_config::PlannedJob, k: &str| {
        job.variables
            .iter()
            .find(|v| v.key == k)
            .map(|v| v.value.clone())
    };
    assert_eq!(var(build, "A").as_deref(), Some("from-base"));
    assert_eq!(var(build, "B").as_deref(), Some("own"));
    let test = &plan.jobs[1];
    assert_eq!(test.script, ["echo setup"]);
    assert_eq!(test.tags, ["own"]);
    assert!(
        test.before_script.is_empty() && test.image.is_none(),
        "inherit: default: false"
    );
}

#[test]
fn multiple_and_multi_level_extends_deep_merge_hashes() {
    let yaml = r#"
.a:
  variables: {X: a, Y: a}
  script: [echo a]
.b:
  extends: .a
  variables: {Y: b}
.c:
  variables: {Z: c}
job:
  extends: [.b, .c]
"#;
    let plan = created(yaml, &branch(&[]));
    let vars: Vec<(String, String)> = plan.jobs[0]
        .variables
        .iter()
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect();
    assert_eq!(
        vars,
        [
            ("X".into(), "a".into()),
            ("Y".into(), "b".into()),
            ("Z".into(), "c".into())
        ]
    );
    assert_eq!(plan.jobs[0].script, ["echo a"]);
}

#[test]
fn include_local_files_through_the_callback() {
    let files = Files(
        [(
            "ci/build.yml".to_string(),
            "build:\n  stage: build\n  script: [make]\n".to_string(),
        )]
        .into_iter()
        .collect(),
    );
    let yaml = "include:\n  - local: /ci/build.yml\ntest:\n  script: [make test]\n";
    let config =
        pipewright_config::Config::parse(yaml, &files, &pipewright_config::Limits::default())
            .unwrap();
    assert_eq!(config.job_names(), ["build", "test"]);
    let missing = pipewright_config::Config::parse(
        "include: nope.yml\njob:\n  script: x\n",
        &files,
        &pipewright_config::Limits::default(),
    );
    assert_eq!(
        missing.err().map(|e| e.message),
        Some("Local file `nope.yml` does not exist!".to_string())
    );
}

#[test]
fn when_and_allow_failure() {
    let yaml = r#"
build:
  stage: build
  script: [make]
cleanup:
  stage: deploy
  when: on_failure
  script: [cleanup]
always:
  stage: deploy
  when: always
  script: [report]
deploy:
  stage: deploy
  when: manual
  script: [deploy]
flaky:
  stage: test
  allow_failure: true
  script: [flaky]
codes:
  stage: test
  allow_failure:
    exit_codes: [137, 255]
  script: [x]
later:
  stage: test
  when: delayed
  start_in: 30 minutes
  script: [x]
"#;
    let plan = created(yaml, &branch(&[]));
    let job = |n: &str| plan.jobs.iter().find(|j| j.name == n).unwrap();
    assert_eq!(job("cleanup").when, When::OnFailure);
    assert_eq!(job("always").when, When::Always);
    assert_eq!(job("deploy").when, When::Manual);
    assert!(
        job("deploy").allow_failure,
        "manual jobs may fail by default"
    );
    assert!(job("flaky").allow_failure);
    assert!(!job("codes").allow_failure);
    assert_eq!(job("codes").allow_failure_exit_codes, [137, 255]);
    assert_eq!(job("later").start_in.as_deref(), Some("30 minutes"));
    assert_eq!(job("build").initial_status, InitialStatus::Pending);
    assert_eq!(job("flaky").initial_status, InitialStatus::Created);
}

#[test]
fn rules_when_variables_allow_failure_and_needs() {
    let yaml = r#"
build:
  stage: build
  script: [make]
test:
  stage: test
  script: [test]
  variables:
    LEVEL: job
  rules:
    - if: $CI_COMMIT_BRANCH == "never-branch"
      when: never
    - if: $CI_PIPELINE_SOURCE == "push"
      when: manual
      allow_failure: false
      variables:
        LEVEL: rule
      needs: [build]
    - when: on_success
"#;
    let plan = created(yaml, &branch(&[]));
    let test = &plan.jobs[1];
    assert_eq!(test.when, When::Manual);
    assert!(!test.allow_failure);
    assert_eq!(
        test.variables
            .iter()
            .find(|v| v.key == "LEVEL")
            .map(|v| v.value.as_str()),
        Some("rule")
    );
    assert_eq!(test.needs.as_ref().map(|n| n.len()), Some(1));
    let never = created(
        yaml,
        &context(PipelineSource::Push, "never-branch", RefKind::Branch, &[]),
    );
    assert_eq!(job_names(&never), ["build"]);
    let api = created(
        yaml,
        &context(PipelineSource::Api, "main", RefKind::Branch, &[]),
    );
    assert_eq!(api.jobs[1].when, When::OnSuccess);
}

#[test]
fn changes_is_true_without_a_diff_and_exists_needs_files() {
    let yaml = "docs:\n  script: x\n  rules:\n    - changes: [docs/**/*]\nb:\n  script: y\n  rules:\n    - exists: [Dockerfile]\n";
    assert_eq!(
        job_names(&created(
            yaml,
            &context(PipelineSource::Trigger, "main", RefKind::Branch, &[])
        )),
        ["docs"]
    );
    let mut ctx = branch(&[]);
    ctx.changed_files = Some(vec!["src/main.rs".into()]);
    ctx.files = Some(vec!["Dockerfile".into()]);
    assert_eq!(job_names(&created(yaml, &ctx)), ["b"]);
}

/// A config whose `exists` lists `patterns` globs that match none of `files` (GitLab's
/// "200 patterns over 3,000 files" case when asked so).
fn exists_config(patterns: usize) -> String {
    let globs: Vec<String> = (0..patterns)
        .map(|i| format!("\"missing-{i}/**/*.md\""))
        .collect();
    format!(
        "build:\n  script: x\nscan:\n  script: y\n  rules:\n    - exists: [{}]\n",
        globs.join(", ")
    )
}

fn listing(files: usize) -> Vec<String> {
    (0..files)
        .map(|i| format!("src/dir{}/file{i}.rs", i % 50))
        .collect()
}

#[test]
fn exists_past_gitlabs_comparison_limit_is_taken_as_satisfied() {
    let mut ctx = branch(&[]);
    ctx.files = Some(listing(3_000));
    // 16 × 3,000 = 48,000 comparisons: each is made, none matches.
    assert_eq!(job_names(&created(&exists_config(16), &ctx)), ["build"]);
    // 200 × 3,000 = 600,000 > 50,000: GitLab does not compare and the rule matches.
    assert_eq!(
        job_names(&created(&exists_config(200), &ctx)),
        ["build", "scan"]
    );
}

#[test]
fn planning_stops_when_the_caller_says_so() {
    let config = parse(&exists_config(16));
    let mut ctx = branch(&[]);
    ctx.files = Some(listing(3_000));
    let asked = std::cell::Cell::new(0);
    // The caller's budget runs out after a few checks.
    let stop = || {
        asked.set(asked.get() + 1);
        asked.get() > 3
    };
    match config.plan_until(&ctx, &stop) {
        Err(e) => assert_eq!(e.message, pipewright_config::PLAN_INTERRUPTED),
        Ok(outcome) => panic!("planning should have stopped: {outcome:?}"),
    }
    // Without a reason to stop, the same plan is made.
    assert!(config.plan_until(&ctx, &|| false).is_ok());
}

#[test]
fn only_except_refs_regexes_names_and_variables() {
    let yaml = r#"
a:
  script: x
  only: [/^release-.*$/]
b:
  script: x
  only:
    refs: [main]
    variables: [$DEPLOY == "yes"]
c:
  script: x
  except: [main]
d:
  script: x
  only: [main@group/demo]
e:
  script: x
  only: [main@other/fork]
"#;
    let plan = created(yaml, &branch(&[("DEPLOY", "yes")]));
    assert_eq!(job_names(&plan), ["b", "d"]);
    let release = created(
        yaml,
        &context(PipelineSource::Push, "release-1", RefKind::Branch, &[]),
    );
    assert_eq!(job_names(&release), ["a", "c"]);
}

#[test]
fn workflow_rules_filter_and_set_variables() {
    let yaml = r#"
workflow:
  name: "Pipeline for $CI_COMMIT_BRANCH"
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
      when: never
    - if: $CI_COMMIT_BRANCH
      variables:
        DEPLOY_ENV: staging
job:
  script: echo $DEPLOY_ENV
"#;
    let plan = created(yaml, &branch(&[]));
    assert_eq!(
        plan.jobs[0]
            .variables
            .iter()
            .find(|v| v.key == "DEPLOY_ENV")
            .map(|v| v.value.as_str()),
        Some("staging")
    );
    assert_eq!(plan.name.as_deref(), Some("Pipeline for $CI_COMMIT_BRANCH"));
    assert!(matches!(
        plan_in(
            yaml,
            &context(PipelineSource::Schedule, "main", RefKind::Branch, &[])
        ),
        PlanOutcome::FilteredOutByWorkflow
    ));
    assert!(matches!(
        plan_in(
            yaml,
            &context(PipelineSource::Push, "v1", RefKind::Tag, &[])
        ),
        PlanOutcome::FilteredOutByWorkflow
    ));
}

/// `workflow:rules` see each variable's strongest definition: a pipeline variable over a
/// project's, a project's over a group's (whatever the order they come in) and an instance's,
/// those over the global YAML, and that over a predefined variable.
#[test]
fn workflow_rules_see_the_strongest_definition_of_each_variable() {
    let yaml = r#"
variables:
  FROM: global
  CI_COMMIT_REF_NAME: overridden
workflow:
  rules:
    - if: $FROM == $EXPECTED && $CI_COMMIT_REF_NAME == "overridden" && $SCOPE == "project"
job:
  script: x
"#;
    let var = |key: &str, value: &str, source| pipewright_config::Variable::new(key, value, source);
    let runs =
        |expected: &str, project: Vec<pipewright_config::Variable>, pipeline: &[(&str, &str)]| {
            let mut ctx = branch(pipeline);
            ctx.instance_variables = vec![var("EXPECTED", expected, VariableSource::Instance)];
            ctx.project_variables = project;
            matches!(plan_in(yaml, &ctx), PlanOutcome::Created(_))
        };
    let scoped = || {
        vec![
            var("SCOPE", "project", VariableSource::Project),
            var("SCOPE", "group", VariableSource::Group),
        ]
    };
    assert!(runs("global", scoped(), &[]));
    let mut project = scoped();
    project.push(var("FROM", "project", VariableSource::Project));
    assert!(runs("project", project.clone(), &[]));
    assert!(!runs("global", project.clone(), &[]));
    assert!(runs("pipeline", project, &[("FROM", "pipeline")]));
    assert!(!runs("global", Vec::new(), &[]));
}

#[test]
fn needs_dag_and_parallel() {
    let yaml = r#"
build:
  stage: build
  parallel: 2
  script: [make]
lint:
  stage: test
  needs: []
  script: [lint]
test:
  stage: test
  needs: [build]
  script: [test]
matrix:
  stage: deploy
  script: [deploy]
  parallel:
    matrix:
      - PROVIDER: [aws, gcp]
        STACK: [app]
"#;
    let plan = created(yaml, &branch(&[]));
    assert_eq!(
        job_names(&plan),
        [
            "build 1/2",
            "build 2/2",
            "lint",
            "test",
            "matrix: [aws, app]",
            "matrix: [gcp, app]"
        ]
    );
    let lint = plan.jobs.iter().find(|j| j.name == "lint").unwrap();
    assert_eq!(
        lint.initial_status,
        InitialStatus::Pending,
        "needs: [] starts at once"
    );
    assert_eq!(needs_of(&plan, "test"), ["build 1/2", "build 2/2"]);
    let gcp = plan
        .jobs
        .iter()
        .find(|j| j.name == "matrix: [gcp, app]")
        .unwrap();
    assert!(
        gcp.variables
            .iter()
            .any(|v| v.key == "PROVIDER" && v.value == "gcp")
    );
}

#[test]
fn data_keywords_are_kept_for_runners() {
    let yaml = r#"
job:
  image: {name: alpine, entrypoint: [""]}
  services: [postgres:15]
  tags: [docker]
  retry: {max: 2, when: [runner_system_failure]}
  timeout: 1h 30m
  cache: {key: deps, paths: [vendor/]}
  artifacts: {paths: [dist/], expire_in: 1 week, when: always, reports: {junit: report.xml}}
  environment: production
  resource_group: prod
  interruptible: true
  coverage: '/Coverage: \d+%/'
  trigger: null
  script: x
"#;
    let plan = created(yaml, &branch(&[]));
    let job = &plan.jobs[0];
    assert_eq!(job.timeout, Some(5400));
    assert_eq!(job.retry.as_ref().map(|r| r.max), Some(2));
    assert_eq!(job.services, [serde_json::json!("postgres:15")]);
    assert_eq!(
        job.artifacts
            .as_ref()
            .and_then(|a| a.get("expire_in"))
            .and_then(|v| v.as_str()),
        Some("1 week")
    );
    assert_eq!(job.resource_group.as_deref(), Some("prod"));
    assert_eq!(job.interruptible, Some(true));
}

#[test]
fn variables_precedence_and_expand_false() {
    let yaml = r#"
variables:
  GLOBAL: global
  SHARED: global
  RAW:
    value: "$NOT_EXPANDED"
    expand: false
    description: kept literal
job:
  variables:
    SHARED: job
  script: x
"#;
    let mut ctx = branch(&[("SHARED", "pipeline")]);
    ctx.project_variables.push(pipewright_config::Variable::new(
        "SHARED",
        "project",
        VariableSource::Project,
    ));
    let plan = created(yaml, &ctx);
    let job = &plan.jobs[0];
    let raw = job.variables.iter().find(|v| v.key == "RAW").unwrap();
    assert!(raw.raw);
    // The job's YAML variables; pipeline and project ones are layered on by the server.
    let merged = pipewright_config::merge_variables(
        job.variables
            .iter()
            .cloned()
            .chain(ctx.project_variables.iter().cloned())
            .chain(ctx.pipeline_variables.iter().cloned()),
    );
    assert_eq!(
        merged
            .iter()
            .find(|v| v.key == "SHARED")
            .map(|v| v.value.as_str()),
        Some("pipeline")
    );
    let expanded = pipewright_config::expand_all(&merged);
    assert_eq!(
        expanded
            .iter()
            .find(|(k, _)| k == "RAW")
            .map(|(_, v)| v.as_str()),
        Some("$NOT_EXPANDED")
    );
}

#[test]
fn planning_is_deterministic() {
    let yaml = "b:\n  stage: test\n  script: x\na:\n  stage: build\n  script: y\nc:\n  stage: test\n  script: z\n";
    let one = serde_json::to_string(&created(yaml, &branch(&[]))).unwrap();
    let two = serde_json::to_string(&created(yaml, &branch(&[]))).unwrap();
    assert_eq!(one, two);
    assert_eq!(job_names(&created(yaml, &branch(&[]))), ["a", "b", "c"]);
}

#[test]
fn linter_reports_jobs_and_errors() {
    let report = pipewright_config::lint(
        "stages: [build, test]\nb:\n  stage: build\n  script: x\nt:\n  stage: test\n  needs: [b]\n  script: y\n",
        &pipewright_config::NoFiles,
        &pipewright_config::LintOptions::default(),
    );
    assert!(report.valid);
    assert_eq!(report.stages, ["build", "test"]);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["jobs"][1],
        serde_json::json!({"name": "t", "stage": "test", "before_script": [], "script": ["y"],
            "after_script": [], "tag_list": [], "environment": null, "when": "on_success",
            "allow_failure": false, "needs": ["b"]})
    );
    let deploy = pipewright_config::lint(
        "deploy:\n  script: x\n  tags: [eu]\n  environment: {name: production, url: https://x}\n",
        &pipewright_config::NoFiles,
        &pipewright_config::LintOptions::default(),
    );
    assert_eq!(deploy.jobs[0].environment.as_deref(), Some("production"));
    assert_eq!(deploy.jobs[0].tag_list, ["eu"]);
    let bad = pipewright_config::lint(
        "job: {}\n",
        &pipewright_config::NoFiles,
        &pipewright_config::LintOptions::default(),
    );
    assert!(!bad.valid);
    assert!(bad.to_text().contains("error:"));
}
