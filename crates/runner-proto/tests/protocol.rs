//! The runner protocol's types against GitLab's wire format: a GitLab job payload reads and
//! writes back unchanged, a payload as Pipewright's server builds it carries every key the
//! third-party `gitlab-runner` crate requires, and what runners send reads as the types.
//!
//! `fixtures/gitlab_job_payload.json` is written from GitLab's entity
//! (`lib/api/entities/ci/job_request/*.rb`, `Collection::Item#to_runner_variable`) and the
//! example in `shared/reference/clients.md` §4.2 — no recording of a real GitLab answer
//! exists here. It uses every part of the entity, including the keys GitLab leaves out when
//! empty (`file`, `raw`, `untracked`, `exclude`, `artifacts_file`).

use pipewright_runner_proto::{
    ArtifactFormat, ArtifactSpec, ArtifactType, ContentRange, Dependency, FailureReason, Features,
    GitInfo, GitlabFeatures, JobInfo, JobPayload, JobRequest, JobState, JobUpdate, RunnerInfo,
    SecretString, Step, StepName, Variable, VersionInfo, When,
};
use serde_json::{Value, json};

const GITLAB_PAYLOAD: &str = include_str!("fixtures/gitlab_job_payload.json");

fn gitlab_payload() -> Value {
    serde_json::from_str(GITLAB_PAYLOAD).expect("the fixture is JSON")
}

#[test]
fn a_gitlab_job_payload_reads_and_writes_back_unchanged() {
    let original = gitlab_payload();
    let payload: JobPayload = serde_json::from_value(original.clone()).expect("it reads");
    let written = serde_json::to_value(&payload).expect("it writes");
    assert_eq!(written, original);
}

#[test]
fn a_gitlab_job_payload_reads_as_a_runner_needs_it() {
    let payload: JobPayload = serde_json::from_value(gitlab_payload()).expect("it reads");
    assert_eq!(payload.id, 4242);
    assert_eq!(payload.token.expose(), "glcbt-64_Xy3kPzQ9sLmN2vR7tWbC");
    let script = payload.step(&StepName::Script).expect("a script step");
    assert_eq!(
        script.script,
        ["bundle install --jobs 4", "bundle exec rspec"]
    );
    assert_eq!(
        payload.step(&StepName::AfterScript).map(|s| &s.when),
        Some(&When::Always)
    );
    assert_eq!(payload.variable("CI_PROJECT_PATH"), Some("acme/shop"));
    assert_eq!(payload.git_info.ref_name, "main");
    assert_eq!(payload.runner_info.timeout, 3600);
    let artifacts = payload.artifacts.as_deref().unwrap_or_default();
    assert_eq!(artifacts[1].artifact_type, ArtifactType::Junit);
    assert_eq!(
        artifacts[1].untracked, None,
        "left out, as GitLab leaves it out"
    );
    assert_eq!(payload.dependencies[1].artifacts_file, None);
    // Reasons this version does not name are kept, not refused.
    assert!(
        payload
            .features
            .failure_reasons
            .contains(&FailureReason::Other("ci_quota_exceeded".into()))
    );
}

#[test]
fn secrets_in_a_payload_never_show_in_debug_output() {
    let payload: JobPayload = serde_json::from_value(gitlab_payload()).expect("it reads");
    let printed = format!("{payload:?}");
    for secret in [
        "glcbt-64_Xy3kPzQ9sLmN2vR7tWbC",
        "hunter2@db",
        "service_account",
    ] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(printed.contains("acme/shop"), "public values still show");
}

/// A payload as the server builds one for a job with no artifacts and no dependencies.
fn pipewright_payload() -> JobPayload {
    let token = SecretString::new("glcbt-job-7");
    JobPayload {
        id: 7,
        token: token.clone(),
        allow_git_fetch: true,
        job_info: JobInfo {
            id: 7,
            name: "build".into(),
            stage: "build".into(),
            project_id: 1,
            project_name: "demo".into(),
            time_in_queue_seconds: Some(0),
            ..JobInfo::default()
        },
        git_info: GitInfo {
            repo_url: SecretString::new(
                "http://gitlab-ci-token:glcbt-job-7@localhost/root/demo.git",
            ),
            ref_name: "main".into(),
            sha: "a".repeat(40),
            depth: Some(20),
            ..GitInfo::default()
        },
        runner_info: RunnerInfo::default(),
        variables: vec![Variable {
            key: "CI_JOB_TOKEN".into(),
            value: token.expose().into(),
            masked: true,
            ..Variable::default()
        }],
        steps: vec![Step {
            name: StepName::Script,
            script: vec!["make".into()],
            timeout: 3600,
            when: When::OnSuccess,
            allow_failure: false,
        }],
        image: None,
        services: Vec::new(),
        artifacts: None,
        cache: Vec::new(),
        credentials: Vec::new(),
        dependencies: Vec::new(),
        features: GitlabFeatures {
            trace_sections: true,
            token_mask_prefixes: None,
            failure_reasons: vec![FailureReason::ScriptFailure],
        },
    }
}

/// `JobResponse` in the `gitlab-runner` crate (clients.md §4.2) fails on a payload without
/// `id`, `token`, `allow_git_fetch`, `variables` (each with `key`, `public`, `masked`),
/// `steps`, `dependencies` or `artifacts` — `null` is fine for the last two.
#[test]
fn the_payload_the_server_writes_has_every_key_the_gitlab_runner_crate_requires() {
    let written = serde_json::to_value(pipewright_payload()).expect("it writes");
    for key in [
        "id",
        "token",
        "allow_git_fetch",
        "variables",
        "steps",
        "dependencies",
        "artifacts",
    ] {
        assert!(written.get(key).is_some(), "{key} missing from {written}");
    }
    assert_eq!(written["artifacts"], Value::Null);
    assert_eq!(written["dependencies"], json!([]));
    assert_eq!(written["image"], Value::Null);
    assert_eq!(
        written["variables"][0],
        json!({"key": "CI_JOB_TOKEN", "value": "glcbt-job-7", "public": false, "masked": true})
    );
    assert_eq!(written["steps"][0]["name"], "script");
    assert_eq!(written["steps"][0]["when"], "on_success");
    assert_eq!(
        written["runner_info"],
        json!({"timeout": 3600, "runner_session_url": null})
    );
    assert_eq!(written["git_info"]["ref"], "main");
    assert_eq!(written["git_info"]["ref_type"], "branch");
}

#[test]
fn artifacts_and_dependencies_are_written_with_their_keys() {
    let mut payload = pipewright_payload();
    payload.artifacts = Some(vec![ArtifactSpec {
        name: Some("artifacts".into()),
        untracked: Some(false),
        paths: vec!["dist/".into()],
        exclude: Some(Vec::new()),
        when: Some(When::OnSuccess),
        expire_in: None,
        artifact_type: ArtifactType::Archive,
        artifact_format: Some(ArtifactFormat::Zip),
    }]);
    payload.dependencies = vec![Dependency {
        id: 6,
        name: "compile".into(),
        token: payload.token.clone(),
        artifacts_file: None,
    }];
    let written = serde_json::to_value(&payload).expect("it writes");
    assert_eq!(
        written["artifacts"],
        json!([{"name": "artifacts", "untracked": false, "paths": ["dist/"], "exclude": [],
                "when": "on_success", "expire_in": null, "artifact_type": "archive",
                "artifact_format": "zip"}])
    );
    assert_eq!(
        written["dependencies"],
        json!([{"id": 6, "name": "compile", "token": "glcbt-job-7"}])
    );
}

#[test]
fn a_payload_with_unknown_keys_and_words_still_reads() {
    let mut payload = gitlab_payload();
    payload["hooks"] = json!([{"name": "pre_get_sources_script", "script": ["echo"]}]);
    payload["steps"][0]["name"] = json!("release");
    payload["steps"][1]["name"] = json!("step_from_the_future");
    payload["dependencies"] = Value::Null;
    payload["variables"][0]["value"] = Value::Null;
    let read: JobPayload = serde_json::from_value(payload).expect("it reads");
    assert_eq!(read.steps[0].name, StepName::Release);
    assert_eq!(
        read.steps[1].name,
        StepName::Other("step_from_the_future".into())
    );
    assert!(read.dependencies.is_empty());
    assert_eq!(read.variables[0].value, "");
}

#[test]
fn job_requests_read_as_runners_send_them() {
    // The `gitlab-runner` crate's poll (clients.md §4.1).
    let request: JobRequest = serde_json::from_value(json!({
        "token": "glrt-abc",
        "system_id": "s_0123456789ab",
        "info": {"version": "0.0.1", "features": {"upload_multiple_artifacts": true, "refspecs": true}}
    }))
    .expect("it reads");
    assert_eq!(request.token.expose(), "glrt-abc");
    let info = request.info.expect("info");
    assert!(info.features.has("refspecs"));
    assert!(!info.features.has("masking"));

    // Pipewright's runner writes exactly what it means, nothing empty.
    let ours = JobRequest {
        token: "glrt-xyz".into(),
        system_id: Some("s_pipewright00".into()),
        info: Some(VersionInfo {
            name: Some("pipewright".into()),
            executor: Some("shell".into()),
            features: Features::supported(["refspecs", "masking"]),
            ..VersionInfo::default()
        }),
        ..JobRequest::default()
    };
    assert_eq!(
        serde_json::to_value(&ours).ok(),
        Some(json!({"token": "glrt-xyz", "system_id": "s_pipewright00",
                    "info": {"name": "pipewright", "executor": "shell",
                             "features": {"masking": true, "refspecs": true}}}))
    );
}

#[test]
fn job_updates_write_only_what_they_carry() {
    let keep_alive = JobUpdate::new("glcbt-job-7", JobState::Running);
    assert_eq!(
        serde_json::to_value(&keep_alive).ok(),
        Some(json!({"token": "glcbt-job-7", "state": "running"}))
    );
    let failed = JobUpdate {
        failure_reason: Some(FailureReason::ScriptFailure),
        exit_code: Some(2),
        ..JobUpdate::new("glcbt-job-7", JobState::Failed)
    };
    let written = serde_json::to_value(&failed).expect("it writes");
    assert_eq!(
        written,
        json!({"token": "glcbt-job-7", "state": "failed", "failure_reason": "script_failure", "exit_code": 2})
    );
    let read: JobUpdate = serde_json::from_value(written).expect("it reads");
    assert_eq!(read, failed);
    // GitLab Runner's full update, with the log's checksum and size.
    let full: JobUpdate = serde_json::from_value(json!({
        "token": "t", "state": "success", "checksum": "crc32:0a1b2c3d",
        "output": {"checksum": "crc32:0a1b2c3d", "bytesize": 1024}, "exit_code": 0
    }))
    .expect("it reads");
    assert_eq!(full.output.and_then(|o| o.bytesize), Some(1024));
}

#[test]
fn a_log_chunk_range_round_trips_through_its_header_text() {
    let range = ContentRange::of_chunk(271, 100).expect("a chunk");
    assert_eq!(range.to_string(), "271-370");
    assert_eq!(ContentRange::parse(&range.to_string()), Ok(range));
}
