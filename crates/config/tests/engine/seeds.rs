//! Every `.gitlab-ci.yml` example in the specification (shared/seeds), planned as GitLab would.

use pipewright_config::{InitialStatus, PipelineSource, PlanOutcome, RefKind};

use crate::support::*;

const UPLOAD_EXAMPLE: &str = r#"
stages:
  - test
  - build
  - package

run_tests:
  stage: test
  script:
    - make test

build_package:
  stage: build
  script:
    - make build

upload_package:
  stage: package
  script:
    - if [ -n "${UPLOAD_TO_S3}" ]; then make upload; fi
"#;

#[test]
fn the_three_stage_upload_example() {
    let ctx = context(
        PipelineSource::Trigger,
        "main",
        RefKind::Branch,
        &[("UPLOAD_TO_S3", "true")],
    );
    let plan = created(UPLOAD_EXAMPLE, &ctx);
    assert_eq!(plan.stages, ["test", "build", "package"]);
    assert_eq!(
        job_names(&plan),
        ["run_tests", "build_package", "upload_package"]
    );
    assert_eq!(plan.jobs[0].initial_status, InitialStatus::Pending);
    assert_eq!(plan.jobs[1].initial_status, InitialStatus::Created);
    assert_eq!(
        plan.jobs[2].script,
        [r#"if [ -n "${UPLOAD_TO_S3}" ]; then make upload; fi"#]
    );
    // The 9.x version of the example has no `stage:` on run_tests: it defaults to `test`.
    let old = UPLOAD_EXAMPLE.replace("  stage: test\n", "");
    assert_eq!(
        job_names(&created(&old, &ctx)),
        ["run_tests", "build_package", "upload_package"]
    );
}

#[test]
fn rules_if_commit_tag_runs_only_for_tags() {
    let yaml = r#"
trigger_pipeline:
  stage: deploy
  script:
    - 'curl --fail --request POST --form token=$MY_TRIGGER_TOKEN --form ref=main "https://gitlab.example.com/api/v4/projects/123456/trigger/pipeline"'
  rules:
    - if: $CI_COMMIT_TAG
"#;
    let on_branch = plan_in(
        yaml,
        &context(PipelineSource::Push, "main", RefKind::Branch, &[]),
    );
    assert!(matches!(on_branch, PlanOutcome::NoJobs));
    let on_tag = created(
        yaml,
        &context(PipelineSource::Push, "v1.0", RefKind::Tag, &[]),
    );
    assert_eq!(job_names(&on_tag), ["trigger_pipeline"]);
    assert_eq!(on_tag.stages, ["deploy"]);
}

#[test]
fn only_tags_runs_only_for_tags() {
    let yaml = r#"
build_docs:
  stage: deploy
  script:
  - "curl --request POST --form token=TOKEN --form ref=master https://gitlab.example.com/api/v4/projects/9/trigger/pipeline"
  only:
  - tags
"#;
    assert!(matches!(
        plan_in(
            yaml,
            &context(PipelineSource::Push, "master", RefKind::Branch, &[])
        ),
        PlanOutcome::NoJobs
    ));
    assert_eq!(
        job_names(&created(
            yaml,
            &context(PipelineSource::Push, "v2", RefKind::Tag, &[])
        )),
        ["build_docs"]
    );
}

#[test]
fn build_submodule_uses_rules_if_commit_tag() {
    let yaml = r#"
build_submodule:
  image: debian
  stage: test
  script:
    - apt update && apt install -y unzip
    - curl --location --output artifacts.zip "https://gitlab.example.com/api/v4/projects/1/jobs/artifacts/main/download?job=test&job_token=$CI_JOB_TOKEN"
    - unzip artifacts.zip
  rules:
    - if: $CI_COMMIT_TAG
"#;
    let plan = created(
        yaml,
        &context(PipelineSource::Push, "v1", RefKind::Tag, &[]),
    );
    assert_eq!(plan.jobs[0].image, Some(serde_json::json!("debian")));
    assert_eq!(plan.jobs[0].script.len(), 3);
}

#[test]
fn only_and_except_triggers_and_pipelines_against_every_source() {
    let only_triggers = "job:\n  script: echo\n  only: [triggers]\n";
    let only_pipelines = "job:\n  script: echo\n  only: [pipelines]\n";
    let except_triggers = "job:\n  script: echo\n  except: [triggers]\n";
    let except_pipelines = "job:\n  script: echo\n  except: [pipelines]\n";
    let by_source =
        "job:\n  script: echo\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"trigger\"\n";
    for source in PipelineSource::ALL {
        let is_trigger = source == PipelineSource::Trigger;
        let is_pipeline = source == PipelineSource::Pipeline;
        assert_eq!(
            !runs(only_triggers, source).is_empty(),
            is_trigger,
            "only: triggers for {source:?}"
        );
        assert_eq!(
            !runs(only_pipelines, source).is_empty(),
            is_pipeline,
            "only: pipelines for {source:?}"
        );
        // Default `only` is branches and tags, so except-jobs run for everything else on a
        // branch — and a merge request pipeline is not a branch pipeline (GitLab: `branch?`
        // is `!tag? && !merge_request?`, app/models/concerns/ci/has_ref.rb).
        let branch = source != PipelineSource::MergeRequestEvent;
        assert_eq!(
            !runs(except_triggers, source).is_empty(),
            !is_trigger && branch,
            "except: triggers for {source:?}"
        );
        assert_eq!(
            !runs(except_pipelines, source).is_empty(),
            !is_pipeline && branch,
            "except: pipelines for {source:?}"
        );
        assert_eq!(
            !runs(by_source, source).is_empty(),
            is_trigger,
            "rules on CI_PIPELINE_SOURCE for {source:?}"
        );
    }
}

#[test]
fn triggered_pipelines_get_trigger_variables() {
    let ctx = context(
        PipelineSource::Trigger,
        "main",
        RefKind::Branch,
        &[("UPLOAD_TO_S3", "true")],
    );
    let vars = pipewright_config::predefined(&ctx);
    let get = |k: &str| vars.iter().find(|v| v.key == k).map(|v| v.value.as_str());
    assert_eq!(get("CI_PIPELINE_SOURCE"), Some("trigger"));
    assert_eq!(get("CI_PIPELINE_TRIGGERED"), Some("true"));
    assert_eq!(get("CI_TRIGGER_SHORT_TOKEN"), Some("abcd"));
    assert_eq!(get("CI_COMMIT_BRANCH"), Some("main"));
    assert_eq!(get("CI_COMMIT_TAG"), None);
    assert_eq!(get("CI_COMMIT_TITLE"), Some("Add the pipeline"));
    assert_eq!(
        get("CI_PROJECT_URL"),
        Some("https://gitlab.example.com/group/demo")
    );
    assert_eq!(
        get("CI_PIPELINE_URL"),
        Some("https://gitlab.example.com/group/demo/-/pipelines/257")
    );
    assert_eq!(get("CI_SERVER_HOST"), Some("gitlab.example.com"));
    assert_eq!(
        get("CI_API_V4_URL"),
        Some("https://gitlab.example.com/api/v4")
    );
    assert_eq!(get("GITLAB_USER_LOGIN"), Some("root"));
    let pipeline = pipewright_config::predefined(&context(
        PipelineSource::Pipeline,
        "main",
        RefKind::Branch,
        &[],
    ));
    assert!(!pipeline.iter().any(|v| v.key == "CI_PIPELINE_TRIGGERED"));
    // A trigger variable decides a rule.
    let yaml = "upload:\n  script: make upload\n  rules:\n    - if: $UPLOAD_TO_S3 == \"true\"\n";
    assert_eq!(job_names(&created(yaml, &ctx)), ["upload"]);
    assert!(matches!(
        plan_in(
            yaml,
            &context(PipelineSource::Trigger, "main", RefKind::Branch, &[])
        ),
        PlanOutcome::NoJobs
    ));
}
