//! Semantics where a file once behaved differently here than on GitLab (issue 15 §1), each
//! written from GitLab's source or documentation (cited per test), not from our code.

use pipewright_config::{InitialStatus, PipelineContext, PipelineSource, PlanOutcome, RefKind};

use crate::support::*;

/// The jobs `yaml` runs for a pipeline of `source` on branch `branch` with `vars`.
fn jobs_for(
    yaml: &str,
    source: PipelineSource,
    branch: &str,
    vars: &[(&str, &str)],
) -> Vec<String> {
    names_in(yaml, &context(source, branch, RefKind::Branch, vars))
}

fn names_in(yaml: &str, ctx: &PipelineContext) -> Vec<String> {
    match plan_in(yaml, ctx) {
        PlanOutcome::Created(p) => p.jobs.iter().map(|j| j.name.clone()).collect(),
        _ => Vec::new(),
    }
}

const PUSH: PipelineSource = PipelineSource::Push;

// ── only / except with several keys ─────────────────────────────────────────────────────────
// GitLab: lib/gitlab/ci/pipeline/seed/build.rb — `included?` is
// `all_of_only? && none_of_except?`, each key of the policy being one specification
// (lib/gitlab/ci/build/policy/{refs,variables,changes,kubernetes}.rb).

#[test]
fn except_with_several_keys_skips_the_job_when_any_key_is_satisfied() {
    let yaml = r#"
build:
  script: make
deploy:
  script: deploy
  except:
    refs: [main]
    variables: [$SKIP_DEPLOY == "yes"]
"#;
    // The ref alone excludes it, as does the variable alone.
    assert_eq!(jobs_for(yaml, PUSH, "main", &[]), ["build"]);
    assert_eq!(
        jobs_for(yaml, PUSH, "feature", &[("SKIP_DEPLOY", "yes")]),
        ["build"]
    );
    // Neither is satisfied: the job runs.
    assert_eq!(jobs_for(yaml, PUSH, "feature", &[]), ["build", "deploy"]);
}

#[test]
fn except_changes_skips_the_job_when_a_listed_file_changed_even_on_another_ref() {
    let yaml = r#"
build:
  script: make
test:
  script: test
  except:
    refs: [release]
    changes: [docs/**/*]
"#;
    let mut ctx = context(PUSH, "main", RefKind::Branch, &[]);
    ctx.changed_files = Some(vec!["docs/index.md".into()]);
    assert_eq!(names_in(yaml, &ctx), ["build"]);
    ctx.changed_files = Some(vec!["src/main.rs".into()]);
    assert_eq!(names_in(yaml, &ctx), ["build", "test"]);
}

#[test]
fn only_with_several_keys_needs_every_key_satisfied() {
    let yaml = r#"
build:
  script: make
deploy:
  script: deploy
  only:
    refs: [main]
    variables: [$DEPLOY == "yes"]
"#;
    assert_eq!(jobs_for(yaml, PUSH, "main", &[]), ["build"]);
    assert_eq!(
        jobs_for(yaml, PUSH, "feature", &[("DEPLOY", "yes")]),
        ["build"]
    );
    assert_eq!(
        jobs_for(yaml, PUSH, "main", &[("DEPLOY", "yes")]),
        ["build", "deploy"]
    );
}

#[test]
fn kubernetes_active_is_never_satisfied_without_a_kubernetes_integration() {
    // Pipewright projects have no Kubernetes integration (GitLab:
    // `pipeline.has_kubernetes_active?` false): `only` never runs the job, `except` never
    // skips it.
    let yaml = r#"
build:
  script: make
review:
  script: review
  only:
    kubernetes: active
cleanup:
  script: cleanup
  except:
    kubernetes: active
"#;
    assert_eq!(jobs_for(yaml, PUSH, "main", &[]), ["build", "cleanup"]);
    // GitLab: `validates :kubernetes, allowed_values: %w[active]` (entry/policy.rb).
    assert_eq!(
        parse_err("job:\n  script: x\n  only:\n    kubernetes: enabled\n"),
        "jobs:job:only kubernetes unknown value: enabled"
    );
}

#[test]
fn jobs_without_rules_skip_merge_request_pipelines_unless_workflow_rules_let_them_in() {
    // `only:`'s default is branches and tags, and a merge request pipeline is neither
    // (GitLab: `branch?` is `!tag? && !merge_request?`, app/models/concerns/ci/has_ref.rb).
    let plain = "build:\n  script: make\nmr:\n  script: check\n  only: [merge_requests]\n";
    let mr = PipelineSource::MergeRequestEvent;
    assert_eq!(jobs_for(plain, mr, "feature", &[]), ["mr"]);
    // With `workflow:rules` the default is dropped and the workflow alone decides
    // (lib/gitlab/ci/config/entry/processable.rb, `compose!`).
    let with_workflow = format!(
        "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\n    - if: $CI_COMMIT_BRANCH\n{plain}"
    );
    assert_eq!(
        jobs_for(&with_workflow, mr, "feature", &[]),
        ["build", "mr"]
    );
    assert_eq!(jobs_for(&with_workflow, PUSH, "feature", &[]), ["build"]);
}

#[test]
fn only_variables_keeps_the_default_refs() {
    // `Entry::Policy#value` deep-merges `{refs: [branches, tags]}` under `only:`
    // (lib/gitlab/ci/config/entry/policy.rb): a merge request pipeline is not a branch.
    let yaml = "build:\n  script: make\n  only:\n    variables: [$RUN]\n";
    let mr = PipelineSource::MergeRequestEvent;
    assert_eq!(jobs_for(yaml, PUSH, "main", &[("RUN", "1")]), ["build"]);
    assert!(jobs_for(yaml, mr, "main", &[("RUN", "1")]).is_empty());
}

// ── !reference and nested lists ─────────────────────────────────────────────────────────────
// GitLab flattens lists of rules (merge request 67922 "Flatten CI config rules";
// `ComposableArray` composes `[config].flatten`), needs (entry/needs.rb, `[@config].flatten`)
// and scripts (`Entry::Commands`, nested arrays of strings up to 10 levels).

#[test]
fn a_reference_to_shared_rules_is_flattened_into_the_jobs_rules() {
    let yaml = r#"
.shared:
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
      when: never
    - when: on_success
build:
  script: make
  rules:
    - if: $SKIP_BUILD
      when: never
    - !reference [.shared, rules]
"#;
    assert_eq!(jobs_for(yaml, PUSH, "main", &[]), ["build"]);
    assert!(jobs_for(yaml, PipelineSource::Schedule, "main", &[]).is_empty());
    assert!(jobs_for(yaml, PUSH, "main", &[("SKIP_BUILD", "1")]).is_empty());
}

#[test]
fn workflow_rules_take_shared_rules_by_reference_too() {
    let yaml = r#"
.never-on-tags:
  rules:
    - if: $CI_COMMIT_TAG
      when: never
workflow:
  rules:
    - !reference [.never-on-tags, rules]
    - when: always
build:
  script: make
"#;
    assert_eq!(jobs_for(yaml, PUSH, "main", &[]), ["build"]);
    assert!(matches!(
        plan_in(yaml, &context(PUSH, "v1.0", RefKind::Tag, &[])),
        PlanOutcome::FilteredOutByWorkflow
    ));
}

#[test]
fn rules_nested_deeper_than_ten_levels_are_refused_with_gitlabs_message() {
    // GitLab: `validates :rules, nested_array_of_hashes_or_arrays: { max_level: 10 }`
    // (entry/processable.rb); the message is `NestedArrayOfHashesOrArraysValidator`'s.
    let nested = |levels: usize| {
        format!(
            "job:\n  script: x\n  rules: {}{{when: always}}{}\n",
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    assert_eq!(
        job_names(&created(
            &nested(10),
            &context(PUSH, "main", RefKind::Branch, &[])
        )),
        ["job"]
    );
    assert_eq!(
        parse_err(&nested(11)),
        "jobs:job rules should be an array containing hashes and arrays of hashes"
    );
    assert_eq!(
        parse_err("job:\n  script: x\n  rules: [if-this]\n"),
        "jobs:job rules should be an array containing hashes and arrays of hashes"
    );
}

#[test]
fn referenced_needs_are_flattened_into_the_list() {
    let yaml = r#"
stages: [build, test]
.needs-builds:
  needs: [build-a, build-b]
build-a:
  stage: build
  script: a
build-b:
  stage: build
  script: b
test:
  stage: test
  script: t
  needs:
    - !reference [.needs-builds, needs]
    - job: build-a
      artifacts: false
"#;
    let plan = created(yaml, &context(PUSH, "main", RefKind::Branch, &[]));
    assert_eq!(needs_of(&plan, "test"), ["build-a", "build-b", "build-a"]);
}

#[test]
fn nested_script_references_flatten_in_every_script_keyword() {
    // The documentation's own example (ci/yaml/yaml_optimization.md, "Nest !reference tags in
    // script, before_script, and after_script"; merge request 74792 made the three alike).
    let yaml = r#"
.snippets:
  one:
    - echo "ONE!"
  two:
    - !reference [.snippets, one]
    - echo "TWO!"
  three:
    - !reference [.snippets, two]
    - echo "THREE!"
nested-references:
  before_script:
    - !reference [.snippets, two]
  script:
    - !reference [.snippets, three]
  after_script:
    - !reference [.snippets, one]
"#;
    let plan = created(yaml, &context(PUSH, "main", RefKind::Branch, &[]));
    let job = &plan.jobs[0];
    assert_eq!(job.before_script, ["echo \"ONE!\"", "echo \"TWO!\""]);
    assert_eq!(
        job.script,
        ["echo \"ONE!\"", "echo \"TWO!\"", "echo \"THREE!\""]
    );
    assert_eq!(job.after_script, ["echo \"ONE!\""]);
}

#[test]
fn references_reuse_variables_and_rule_conditions_as_documented() {
    // ci/yaml/yaml_optimization.md, "!reference tags": a whole `variables:` hash, or one
    // variable of it; and a rule's `if` taken from elsewhere (merge request 219221 made the
    // resolver reach references inside hashes inside lists).
    let yaml = r#"
.vars:
  variables:
    URL: "http://my-url.internal"
    IMPORTANT_VAR: "the details"
.predicates:
  is_main: $CI_COMMIT_BRANCH == "main"
test-vars-1:
  variables: !reference [.vars, variables]
  script: printenv
test-vars-2:
  variables:
    MY_VAR: !reference [.vars, variables, IMPORTANT_VAR]
  script: printenv MY_VAR
  rules:
    - if: !reference [.predicates, is_main]
"#;
    let value = |plan: &pipewright_config::Plan, job: usize, key: &str| {
        plan.jobs[job]
            .variables
            .iter()
            .find(|v| v.key == key)
            .map(|v| v.value.clone())
    };
    let plan = created(yaml, &context(PUSH, "main", RefKind::Branch, &[]));
    assert_eq!(
        value(&plan, 0, "URL").as_deref(),
        Some("http://my-url.internal")
    );
    assert_eq!(value(&plan, 1, "MY_VAR").as_deref(), Some("the details"));
    assert_eq!(jobs_for(yaml, PUSH, "feature", &[]), ["test-vars-1"]);
}

// ── `when` ──────────────────────────────────────────────────────────────────────────────────

#[test]
fn when_never_on_a_job_itself_is_invalid() {
    // GitLab: `ALLOWED_WHEN = %w[on_success on_failure always manual delayed]` with
    // "should be one of: …" (lib/gitlab/ci/config/entry/job.rb); `never` is for rules.
    assert_eq!(
        parse_err("build:\n  script: make\n  when: never\n"),
        "jobs:build when should be one of: on_success, on_failure, always, manual, delayed"
    );
    // A trigger job cannot be delayed either (entry/bridge.rb).
    assert_eq!(
        parse_err("deploy:\n  trigger: group/other\n  when: delayed\n"),
        "jobs:deploy when should be one of: on_success, on_failure, always, manual"
    );
    // In rules, `never` is the point.
    let yaml = "build:\n  script: make\n  rules:\n    - if: $SKIP\n      when: never\n    - when: always\n";
    assert!(jobs_for(yaml, PUSH, "main", &[("SKIP", "1")]).is_empty());
}

#[test]
fn rule_when_values_are_checked_per_scope() {
    // GitLab: `AllowedValuesValidator` ("unknown value: …"); workflow rules allow only
    // `always` and `never` (entry/workflow.rb).
    assert_eq!(
        parse_err("workflow:\n  rules:\n    - when: manual\njob:\n  script: x\n"),
        "workflow:rules:rule when unknown value: manual"
    );
    assert_eq!(
        parse_err("job:\n  script: x\n  rules:\n    - when: sometimes\n"),
        "jobs:job:rules:rule when unknown value: sometimes"
    );
    // `start_in` belongs to delayed rules only (entry/rules/rule.rb).
    assert_eq!(
        parse_err("job:\n  script: x\n  rules:\n    - start_in: 1 hour\n"),
        "jobs:job:rules:rule config contains disallowed keys: start_in"
    );
    assert_eq!(
        parse_err("job:\n  script: x\n  rules:\n    - when: delayed\n"),
        "jobs:job:rules:rule start in can't be blank"
    );
    assert_eq!(
        parse_err("job:\n  script: x\n  rules:\n    - when: delayed\n      start_in: 8 days\n"),
        "jobs:job:rules:rule start in should not exceed the limit"
    );
}

// ── rules:if syntax ─────────────────────────────────────────────────────────────────────────

#[test]
fn braced_variables_in_rules_if_are_invalid_syntax() {
    // GitLab's expression variables are `$NAME` only (`Lexeme::Variable::PATTERN =
    // /\$(?<name>\w+)/`); anything else fails `ExpressionValidator`.
    assert_eq!(
        parse_err("job:\n  script: x\n  rules:\n    - if: '${CI_COMMIT_BRANCH} == \"main\"'\n"),
        "jobs:job:rules:rule if invalid expression syntax"
    );
    assert_eq!(
        parse_err("job:\n  script: x\n  only:\n    variables: ['${DEPLOY}']\n"),
        "jobs:job:only variables invalid expression syntax"
    );
    assert_eq!(
        parse_err("workflow:\n  rules:\n    - if: ${CI_COMMIT_TAG}\njob:\n  script: x\n"),
        "workflow:rules:rule if invalid expression syntax"
    );
    // `$NAME` is fine.
    let yaml = "job:\n  script: x\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n";
    assert_eq!(jobs_for(yaml, PUSH, "main", &[]), ["job"]);
}

// ── allow_failure of manual jobs ────────────────────────────────────────────────────────────
// GitLab: lib/gitlab/ci/config/entry/job.rb — `ignored?` is `allow_failure_defined? ?
// static_allow_failure : manual_action?`, where `manual_action?` reads the job's own `when`;
// a matching rule's `allow_failure` overrides it (lib/gitlab/ci/build/rules.rb). The docs
// (ci/yaml/_index.md, `allow_failure`): "The default value for allow_failure is true for
// manual jobs … false for jobs that use `when: manual` inside rules".

#[test]
fn a_manual_job_may_fail_and_does_not_block_the_pipeline() {
    let yaml = "stages: [build, deploy]\nbuild:\n  stage: build\n  script: make\ndeploy:\n  stage: deploy\n  when: manual\n  script: deploy\n";
    let plan = created(yaml, &context(PUSH, "main", RefKind::Branch, &[]));
    let deploy = &plan.jobs[1];
    assert!(deploy.allow_failure);
    assert_eq!(deploy.when, pipewright_config::When::Manual);
}

#[test]
fn a_rule_that_makes_a_job_manual_blocks_unless_someone_allows_failure() {
    let yaml = r#"
stages: [build, deploy]
build:
  stage: build
  script: make
  rules:
    - when: manual
deploy:
  stage: deploy
  script: deploy
allowed-by-rule:
  stage: deploy
  script: x
  rules:
    - when: manual
      allow_failure: true
allowed-by-job:
  stage: deploy
  script: x
  allow_failure: true
  rules:
    - when: manual
manual-job-with-rules:
  stage: deploy
  script: x
  when: manual
  rules:
    - if: $CI_COMMIT_BRANCH
"#;
    let plan = created(yaml, &context(PUSH, "main", RefKind::Branch, &[]));
    let job = |n: &str| plan.jobs.iter().find(|j| j.name == n).expect(n);
    assert_eq!(job("build").when, pipewright_config::When::Manual);
    assert!(!job("build").allow_failure, "a blocking manual job");
    assert_eq!(job("build").initial_status, InitialStatus::Manual);
    assert!(job("allowed-by-rule").allow_failure);
    assert!(job("allowed-by-job").allow_failure);
    // The job's own `when: manual` keeps its default even when a rule matches.
    assert!(job("manual-job-with-rules").allow_failure);
    let report = pipewright_config::lint(
        yaml,
        &pipewright_config::NoFiles,
        &pipewright_config::LintOptions::default(),
    );
    let build = report
        .jobs
        .iter()
        .find(|j| j.name == "build")
        .expect("build");
    assert!(!build.allow_failure);
}

#[test]
fn a_stage_of_manual_jobs_that_may_fail_lets_the_next_stage_start_at_once() {
    // GitLab's first processing pass (app/services/ci/pipeline_processing/
    // atomic_processing_service.rb): a manual job that may fail does not count toward its
    // stage's status (`Ci::Status::Composite` ignores it), so the next stage starts; one that
    // may not fail holds the stage, and the pipeline is `manual` (blocked).
    let optional = "stages: [approve, deploy]\napprove:\n  stage: approve\n  when: manual\n  script: ok\ndeploy:\n  stage: deploy\n  script: deploy\n";
    let blocking = "stages: [approve, deploy]\napprove:\n  stage: approve\n  rules:\n    - when: manual\n  script: ok\ndeploy:\n  stage: deploy\n  script: deploy\n";
    let statuses = |yaml: &str| -> Vec<InitialStatus> {
        created(yaml, &context(PUSH, "main", RefKind::Branch, &[]))
            .jobs
            .iter()
            .map(|j| j.initial_status)
            .collect()
    };
    assert_eq!(
        statuses(optional),
        [InitialStatus::Manual, InitialStatus::Pending]
    );
    assert_eq!(
        statuses(blocking),
        [InitialStatus::Manual, InitialStatus::Created]
    );
    // `on_failure` jobs of a first stage are skipped at once (nothing failed before them),
    // and do not hold the next stage either.
    let on_failure = "stages: [notify, build]\nalert:\n  stage: notify\n  when: on_failure\n  script: page\nbuild:\n  stage: build\n  script: make\n";
    assert_eq!(
        statuses(on_failure),
        [InitialStatus::Skipped, InitialStatus::Pending]
    );
}
