//! Measures the config engine: parsing and planning a realistic 50-job `.gitlab-ci.yml` with
//! anchors, `extends`, `default` and rules. Target: planning ≤ 1 ms per pipeline on one core.
//! Then `rules: exists` at its worst: globs that match none of a commit's 3,000 files, with
//! 16 globs (48,000 comparisons, all made) and 200 (past GitLab's 50,000: none made).
//! Each plan of the main figure follows a fresh parse; a second figure plans one parsed
//! config again and again, as the server does on a config-cache hit.
//!
//!     cargo run --release -p pipewright-bench --bin plan

use std::time::{Duration, Instant};

use pipewright_config::{
    Config, Limits, NoFiles, PipelineContext, PipelineSource, PlanOutcome, ProjectInfo, RefKind,
    Variable, VariableSource, Visibility,
};

fn config() -> String {
    let mut yaml = String::from(
        r#"stages: [lint, build, test, package, deploy]
variables:
  RUST_BACKTRACE: "1"
  REGISTRY: registry.example.com
default:
  image: rust:1.90
  before_script: [echo "preparing $CI_JOB_NAME"]
  retry: {max: 1, when: [runner_system_failure]}
.rules-mr: &rules-common
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
      when: never
    - if: $CI_COMMIT_TAG
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
    - if: $CI_PIPELINE_SOURCE == "trigger" && $UPLOAD_TO_S3 == "true"
    - changes: [src/**/*, Cargo.*]
.cache: &cache
  cache: {key: "$CI_COMMIT_REF_SLUG", paths: [target/]}
.test-base:
  stage: test
  <<: *cache
  artifacts: {paths: [reports/], when: always, expire_in: 1 week}
  variables:
    TEST_THREADS: "2"
"#,
    );
    for i in 0..10 {
        yaml.push_str(&format!(
            "lint-{i}:\n  stage: lint\n  script: [cargo clippy -p crate{i}]\n  <<: *rules-common\n"
        ));
    }
    for i in 0..10 {
        yaml.push_str(&format!("build-{i}:\n  stage: build\n  <<: *cache\n  script: [cargo build -p crate{i}]\n  <<: *rules-common\n"));
    }
    for i in 0..20 {
        yaml.push_str(&format!(
            "test-{i}:\n  extends: .test-base\n  needs: [build-{}]\n  script: [cargo test -p crate{i}]\n  rules:\n    - if: $CI_COMMIT_REF_NAME =~ /^(main|release-.*)$/\n    - if: $CI_PIPELINE_SOURCE == \"trigger\"\n      variables: {{DEEP: \"yes\"}}\n",
            i % 10
        ));
    }
    for i in 0..10 {
        yaml.push_str(&format!(
            "deploy-{i}:\n  stage: deploy\n  when: manual\n  script: [./deploy.sh region-{i}]\n  rules:\n    - if: $CI_COMMIT_TAG\n    - if: $UPLOAD_TO_S3\n      when: on_success\n"
        ));
    }
    yaml
}

fn context() -> PipelineContext {
    let project = ProjectInfo {
        id: 1,
        name: "bench".into(),
        path_with_namespace: "group/bench".into(),
        namespace: "group".into(),
        default_branch: "main".into(),
        visibility: Visibility::Private,
    };
    PipelineContext {
        protected_ref: true,
        commit_message: "Bench".into(),
        trigger_short_token: Some("abcd".into()),
        pipeline_variables: vec![Variable::new(
            "UPLOAD_TO_S3",
            "true",
            VariableSource::Pipeline,
        )],
        ..PipelineContext::new(
            PipelineSource::Trigger,
            "main",
            RefKind::Branch,
            "a".repeat(40),
            project,
            "http://localhost:8929",
        )
    }
}

/// A config whose one rule lists `globs` `exists` globs that match nothing.
fn exists_config(globs: usize) -> String {
    let list: Vec<String> = (0..globs)
        .map(|i| format!("\"missing-{i}/**/*.md\""))
        .collect();
    format!(
        "build:\n  script: make\nscan:\n  script: scan\n  rules:\n    - exists: [{}]\n",
        list.join(", ")
    )
}

fn measure_exists(globs: usize, files: usize) {
    let config = match Config::parse(&exists_config(globs), &NoFiles, &Limits::default()) {
        Ok(c) => c,
        Err(e) => panic!("bench config is invalid: {e}"),
    };
    let mut ctx = context();
    ctx.files = Some(
        (0..files)
            .map(|i| format!("src/dir{}/file{i}.rs", i % 50))
            .collect(),
    );
    let mut times = Vec::new();
    let mut jobs = 0;
    for _ in 0..50 {
        let start = Instant::now();
        if let Ok(PlanOutcome::Created(p)) = config.plan(&ctx) {
            jobs = p.jobs.len();
        }
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "rules:exists, {globs} globs over {files} files: plan median {:?}  p99 {:?}  ({jobs} jobs)",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let yaml = config();
    let ctx = context();
    let iterations = 2_000;
    let mut parse = Vec::with_capacity(iterations);
    let mut plan = Vec::with_capacity(iterations);
    let mut jobs = 0;
    for _ in 0..iterations {
        let start = Instant::now();
        let config = match Config::parse(&yaml, &NoFiles, &Limits::default()) {
            Ok(c) => c,
            Err(e) => panic!("bench config is invalid: {e}"),
        };
        parse.push(start.elapsed());
        let start = Instant::now();
        let outcome = config.plan(&ctx);
        plan.push(start.elapsed());
        if let Ok(PlanOutcome::Created(p)) = outcome {
            jobs = p.jobs.len();
        }
    }
    parse.sort();
    plan.sort();
    println!(
        "config: {} bytes, {} jobs defined, {jobs} planned for a trigger on main",
        yaml.len(),
        50
    );
    println!(
        "parse: median {:?}  p99 {:?}\nplan:  median {:?}  p99 {:?}  (target ≤ 1 ms)",
        percentile(&parse, 0.5),
        percentile(&parse, 0.99),
        percentile(&plan, 0.5),
        percentile(&plan, 0.99)
    );
    measure_cached(&yaml, &ctx, iterations);
    measure_exists(16, 3_000);
    measure_exists(200, 3_000);
}

/// Planning as the server does it on a config-cache hit: the config parsed once, planned again
/// and again (above, each plan follows a fresh parse and pays for its cold caches).
fn measure_cached(yaml: &str, ctx: &PipelineContext, iterations: usize) {
    let config = match Config::parse(yaml, &NoFiles, &Limits::default()) {
        Ok(c) => c,
        Err(e) => panic!("bench config is invalid: {e}"),
    };
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let outcome = config.plan(ctx);
        times.push(start.elapsed());
        drop(outcome);
    }
    times.sort();
    println!(
        "plan, config parsed once (a config-cache hit): median {:?}  p99 {:?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
}
