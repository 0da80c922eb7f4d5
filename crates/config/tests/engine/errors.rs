//! Each error the engine reports, in GitLab's words, and the limits that keep bad input cheap.

use pipewright_config::{Config, Limits, NoFiles, PipelineSource, PlanOutcome, RefKind};

use crate::support::*;

#[test]
fn gitlabs_messages() {
    let cases = [
        (
            "build:\n  script: x\n  foo: 1\n",
            "jobs:build config contains unknown keys: foo",
        ),
        (
            "build:\n  script: {a: 1}\n",
            "jobs:build:script config should be a string or a nested array of strings up to 10 levels deep",
        ),
        (
            "build:\n  stage: nope\n  script: x\n",
            "jobs:build chosen stage nope does not exist; available stages are .pre, build, test, deploy, .post",
        ),
        (
            ".hidden:\n  script: x\n",
            "jobs config should contain at least one visible job",
        ),
        (
            "build:\n  image: x\n",
            "jobs:build config should implement the script:, run:, or trigger: keyword",
        ),
        ("build: 3\n", "jobs:build config should be a hash"),
        (
            "build:\n  script: x\n  when: sometimes\n",
            // GitLab: spec/lib/gitlab/ci/yaml_processor_spec.rb (`Entry::Job::ALLOWED_WHEN`).
            "jobs:build when should be one of: on_success, on_failure, always, manual, delayed",
        ),
        (
            "build:\n  script: x\n  rules:\n    - if: $A ==\n",
            "jobs:build:rules:rule if invalid expression syntax",
        ),
        (
            "build:\n  script: x\n  needs: [nope]\n",
            "build job: undefined need: nope",
        ),
        (
            "build:\n  script: x\n  dependencies: [nope]\n",
            "build job: undefined dependency: nope",
        ),
        (
            "a:\n  stage: test\n  script: x\n  needs: [b]\nb:\n  stage: deploy\n  script: y\n",
            "a job: need b is not defined in current or prior stages",
        ),
        (
            "build:\n  extends: .missing\n  script: x\n",
            "build: unknown key in `extends` (.missing)",
        ),
        (
            ".a:\n  extends: .b\n.b:\n  extends: .a\njob:\n  extends: .a\n  script: x\n",
            ".a: circular dependency detected in `extends`",
        ),
        (
            "build:\n  script: !reference [.nope, script]\n",
            "!reference [\".nope\", \"script\"] could not be found",
        ),
        (
            "build:\n  script: x\n  retry: 5\n",
            "jobs:build:retry config has to be either an integer or a hash",
        ),
        (
            "build:\n  script: x\n  rules: [{if: $A}]\n  only: [main]\n",
            // GitLab names the keys the job writes (spec/lib/gitlab/ci/config/entry/job_spec.rb).
            "jobs:build config key may not be used with `rules`: only",
        ),
        (
            "build:\n  script: x\n  when: delayed\n",
            // GitLab: spec/lib/gitlab/ci/yaml_processor_spec.rb ("without start_in").
            "jobs:build start in should be a duration",
        ),
        (
            // Without a caller that fetches (the server does), a remote file cannot be read.
            "include:\n  remote: https://example.com/x.yml\njob:\n  script: x\n",
            "Remote file `https://example.com/x.yml` could not be fetched because remote includes are not available here!",
        ),
        ("", "Please provide content of .gitlab-ci.yml"),
        ("- a\n- b\n", "Invalid configuration format"),
    ];
    for (yaml, message) in cases {
        assert_eq!(parse_err(yaml), message, "{yaml}");
    }
}

#[test]
fn plan_time_errors() {
    let yaml = "build:\n  stage: build\n  script: x\n  rules: [{if: $NEVER}]\ntest:\n  script: y\n  needs: [build]\n";
    let err = parse(yaml)
        .plan(&context(PipelineSource::Push, "main", RefKind::Branch, &[]))
        .unwrap_err();
    assert_eq!(
        err.message,
        "'test' job needs 'build' job, but 'build' is not in any previous stage"
    );
    let cycle = "a:\n  script: x\n  needs: [b]\nb:\n  script: y\n  needs: [a]\n";
    let err = parse(cycle)
        .plan(&context(PipelineSource::Push, "main", RefKind::Branch, &[]))
        .unwrap_err();
    assert_eq!(err.message, "The pipeline has circular dependencies");
}

/// `needs` and `dependencies` are checked against the jobs the rules let in: an optional need
/// of a job left out is dropped (the others kept, in order), a dependency on it is an error,
/// and a cycle through a stage or a job needing itself is refused.
#[test]
fn needs_are_checked_against_the_planned_jobs() {
    let push = context(PipelineSource::Push, "main", RefKind::Branch, &[]);
    let optional = "a:\n  stage: build\n  script: x\nb:\n  stage: build\n  script: x\n  rules: [{if: $NEVER}]\nc:\n  stage: build\n  script: x\ntest:\n  script: y\n  needs: [a, {job: b, optional: true}, c]\n";
    let plan = match parse(optional).plan(&push).unwrap() {
        PlanOutcome::Created(plan) => plan,
        other => panic!("{other:?}"),
    };
    assert_eq!(needs_of(&plan, "test"), ["a", "c"]);
    let dependency = "a:\n  stage: build\n  script: x\n  rules: [{if: $NEVER}]\nb:\n  stage: build\n  script: x\ntest:\n  script: y\n  dependencies: [b, a]\n";
    assert_eq!(
        parse(dependency).plan(&push).unwrap_err().message,
        "test job: dependency a is not defined in current or prior stages"
    );
    let three = "a:\n  script: x\n  needs: [c]\nb:\n  script: x\n  needs: [a]\nc:\n  script: x\n  needs: [b]\nd:\n  script: x\n";
    let itself = "a:\n  script: x\n  needs: [a]\n";
    for cycle in [three, itself] {
        assert_eq!(
            parse(cycle).plan(&push).unwrap_err().message,
            "The pipeline has circular dependencies",
            "{cycle}"
        );
    }
    let chain =
        "a:\n  script: x\nb:\n  script: x\n  needs: [a]\nc:\n  script: x\n  needs: [a, b]\n";
    assert!(matches!(
        parse(chain).plan(&push).unwrap(),
        PlanOutcome::Created(_)
    ));
}

#[test]
fn syntax_errors_say_where() {
    let err =
        Config::parse("job:\n  script: [unclosed\n", &NoFiles, &Limits::default()).unwrap_err();
    let location = err.location.unwrap();
    assert_eq!(location.file, ".gitlab-ci.yml");
    assert!(location.line >= 2, "{location:?}");
}

#[test]
fn an_alias_bomb_is_a_clear_error_with_bounded_memory() {
    let mut yaml = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..9 {
        let prev = if i == 1 {
            "a".to_string()
        } else {
            format!("a{}", i - 1)
        };
        yaml.push_str(&format!("a{i}: &a{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    yaml.push_str("job:\n  script: *a8\n");
    let err = Config::parse(&yaml, &NoFiles, &Limits::default()).unwrap_err();
    assert!(err.message.contains("too many nodes"), "{err}");
}

#[test]
fn a_10_mib_file_is_refused_before_parsing() {
    let yaml = "job:\n  script: x\n".to_string() + &"# filler\n".repeat(10 * 1024 * 1024 / 9);
    assert!(yaml.len() >= 10 * 1024 * 1024);
    let err = Config::parse(&yaml, &NoFiles, &Limits::default()).unwrap_err();
    assert!(err.message.contains("larger than"), "{err}");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(src in ".{0,400}") {
            let _ = Config::parse(&src, &NoFiles, &Limits::default());
        }

        #[test]
        fn yaml_shaped_text_never_panics(src in "[a-z:&*<\\[\\]{}\\-! \n$\"'.,0-9]{0,300}") {
            if let Ok(config) = Config::parse(&src, &NoFiles, &Limits::default()) {
                let _ = config.plan(&crate::support::context(PipelineSource::Trigger, "main", RefKind::Branch, &[]));
            }
        }
    }
}
