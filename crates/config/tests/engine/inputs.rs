//! CI/CD inputs, from GitLab's docs ("CI/CD inputs", docs/ci/inputs/_index.md) and the specs of
//! lib/gitlab/ci/config/interpolation/ (text_interpolator_spec.rb, inputs_spec.rb,
//! functions/*_spec.rb): `spec:inputs` headers, `include: inputs:`, pipeline inputs for the root
//! file, `$[[ inputs.NAME ]]` with `truncate`, `expand_vars` and `posix_escape`, and GitLab's
//! error messages.

use std::collections::HashMap;

use pipewright_config::{
    Config, Inputs, Interpolation, Limits, PipelineSource, RefKind, Variable, VariableSource,
};
use serde_json::json;

use crate::support::*;

fn inputs(value: serde_json::Value) -> Inputs {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("inputs are an object, not {other}"),
    }
}

/// The root file parsed with pipeline `given` inputs.
fn parse_root(yaml: &str, given: serde_json::Value) -> Result<Config, String> {
    let ctx = Interpolation::with_inputs(inputs(given));
    Config::parse_with(yaml, &Files(HashMap::new()), &Limits::default(), &ctx)
        .map_err(|e| e.message)
}

/// A root file including `template` (at `templates/job.yml`) with `include_entry`.
fn parse_included(root: &str, template: &str) -> Result<Config, String> {
    let files = Files(HashMap::from([(
        "templates/job.yml".to_string(),
        template.to_string(),
    )]));
    Config::parse(root, &files, &Limits::default()).map_err(|e| e.message)
}

fn script_of(config: &Config, job: &str) -> Vec<String> {
    let ctx = context(PipelineSource::Push, "main", RefKind::Branch, &[]);
    let plan = match config.plan(&ctx).unwrap() {
        pipewright_config::PlanOutcome::Created(plan) => plan,
        other => panic!("expected a pipeline, got {other:?}"),
    };
    let found = plan.jobs.iter().find(|j| j.name == job);
    found
        .unwrap_or_else(|| panic!("no job {job}"))
        .script
        .clone()
}

const SCAN_TEMPLATE: &str = r#"
spec:
  inputs:
    stage:
      default: test
    website:
---
scan-website:
  stage: $[[ inputs.stage ]]
  script: ./scan-website $[[ inputs.website ]]
"#;

#[test]
fn an_included_template_takes_its_inputs_from_the_include() {
    // docs: "Set input values when using include".
    let root = r#"
include:
  - local: templates/job.yml
    inputs:
      website: my-website.example.com
"#;
    let config = parse_included(root, SCAN_TEMPLATE).unwrap();
    assert_eq!(
        script_of(&config, "scan-website"),
        ["./scan-website my-website.example.com"]
    );
}

#[test]
fn a_template_included_without_a_required_input_is_refused_with_gitlabs_message() {
    let root = "include:\n  - local: templates/job.yml\n";
    assert_eq!(
        parse_included(root, SCAN_TEMPLATE).unwrap_err(),
        "`templates/job.yml`: `website` input: required value has not been provided"
    );
}

#[test]
fn a_template_whose_inputs_all_have_defaults_needs_no_inputs() {
    let template = "spec:\n  inputs:\n    name:\n      default: world\n---\nhello:\n  script: echo hello $[[ inputs.name ]]\n";
    let config = parse_included("include: templates/job.yml\n", template).unwrap();
    assert_eq!(script_of(&config, "hello"), ["echo hello world"]);
}

#[test]
fn inputs_given_to_a_file_without_a_header_are_refused() {
    let root = "include:\n  - local: templates/job.yml\n    inputs:\n      website: x\n";
    let template = "job:\n  script: echo\n";
    assert_eq!(
        parse_included(root, template).unwrap_err(),
        "`templates/job.yml`: Given inputs not defined in the `spec` section of the included configuration file"
    );
}

#[test]
fn an_unknown_input_argument_is_refused() {
    let root = "include:\n  - local: templates/job.yml\n    inputs:\n      website: a.example\n      colour: red\n";
    assert_eq!(
        parse_included(root, SCAN_TEMPLATE).unwrap_err(),
        "`templates/job.yml`: unknown input arguments: colour"
    );
}

#[test]
fn the_same_template_included_twice_with_different_inputs_gives_both_jobs() {
    // docs: "Include the same file multiple times".
    let template = "spec:\n  inputs:\n    job-name:\n---\n\"$[[ inputs.job-name ]]\":\n  script: echo $[[ inputs.job-name ]]\n";
    let root = r#"
include:
  - local: templates/job.yml
    inputs:
      job-name: unit
  - local: templates/job.yml
    inputs:
      job-name: lint
"#;
    let config = parse_included(root, template).unwrap();
    assert_eq!(config.job_names(), ["unit", "lint"]);
}

#[test]
fn pipeline_inputs_fill_the_root_files_header() {
    // docs: "Define input parameters with spec:inputs" for .gitlab-ci.yml, and the pipeline
    // inputs API (`inputs` on POST /projects/:id/pipeline).
    let yaml = "spec:\n  inputs:\n    environment:\n      options: [staging, production]\n      default: staging\n---\ndeploy:\n  script: deploy $[[ inputs.environment ]]\n";
    let config = parse_root(yaml, json!({})).unwrap();
    assert_eq!(script_of(&config, "deploy"), ["deploy staging"]);
    let config = parse_root(yaml, json!({"environment": "production"})).unwrap();
    assert_eq!(script_of(&config, "deploy"), ["deploy production"]);
    assert_eq!(
        parse_root(yaml, json!({"environment": "qa"})).unwrap_err(),
        "`environment` input: `qa` cannot be used because it is not in the list of allowed options"
    );
}

#[test]
fn pipeline_inputs_for_a_root_file_without_a_header_are_refused() {
    // spec/services/ci/create_pipeline_service/inputs_spec.rb: "when the CI config does not
    // have spec:inputs".
    assert_eq!(
        parse_root(
            "job:\n  script: echo hello\n",
            json!({"deploy_strategy": "blue-green"})
        )
        .unwrap_err(),
        "Given inputs not defined in the `spec` section of the included configuration file"
    );
}

const TYPED: &str = r#"
spec:
  inputs:
    allow_failure:
      type: boolean
    image:
    parallel:
      type: number
    website:
---
test:
  script: deploy $[[ inputs.website ]] $[[ inputs.parallel ]] $[[ inputs.allow_failure ]] $[[ inputs.image ]]
"#;

#[test]
fn each_type_takes_its_values_and_refuses_others_with_at_most_three_errors() {
    // text_interpolator_spec.rb: "reports a maximum of 3 errors in the error message".
    let err = parse_root(
        TYPED,
        json!({"allow_failure": "no", "parallel": "yes", "website": [8]}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "`allow_failure` input: provided value is not a boolean, \
         `image` input: required value has not been provided, \
         `parallel` input: provided value is not a number"
    );
    let config = parse_root(
        TYPED,
        json!({"allow_failure": true, "image": "ruby", "parallel": 3, "website": "gitlab.com"}),
    )
    .unwrap();
    assert_eq!(
        script_of(&config, "test"),
        ["deploy gitlab.com 3 true ruby"]
    );
}

#[test]
fn text_values_are_read_as_the_inputs_type_as_forms_send_them() {
    // lib/ci/inputs/base_input.rb `coerced_value`; a form sends `inputs[parallel]=3`.
    let config = parse_root(
        TYPED,
        json!({"allow_failure": "false", "image": "ruby", "parallel": "3", "website": 8}),
    )
    .unwrap();
    assert_eq!(script_of(&config, "test"), ["deploy 8 3 false ruby"]);
}

#[test]
fn an_array_input_is_interpolated_as_json() {
    // docs: "Inputs of type array" — an array is inserted as a JSON (YAML flow) list.
    let yaml = "spec:\n  inputs:\n    scripts:\n      type: array\n      default: [\"echo one\", \"echo two\"]\n---\njob:\n  script: $[[ inputs.scripts ]]\n";
    let config = parse_root(yaml, json!({})).unwrap();
    assert_eq!(script_of(&config, "job"), ["echo one", "echo two"]);
    assert_eq!(
        parse_root(yaml, json!({"scripts": "echo"})).unwrap_err(),
        "`scripts` input: provided value is not an array"
    );
}

#[test]
fn a_default_of_the_wrong_type_is_reported_as_the_default() {
    let yaml = "spec:\n  inputs:\n    count:\n      type: number\n      default: many\n---\njob:\n  script: echo $[[ inputs.count ]]\n";
    assert_eq!(
        parse_root(yaml, json!({})).unwrap_err(),
        "`count` input: default value is not a number"
    );
}

#[test]
fn number_options_and_regex_are_checked_with_gitlabs_messages() {
    let numbers = "spec:\n  inputs:\n    replicas:\n      type: number\n      options: [1, 3, 5]\n      default: 1\n---\njob:\n  script: echo $[[ inputs.replicas ]]\n";
    assert_eq!(
        parse_root(numbers, json!({"replicas": 2})).unwrap_err(),
        "`replicas` input: `2` cannot be used because it is not in the list of the allowed options"
    );
    // docs: "regex" — `^v\d\.\d+(\.\d+)?$`.
    let versions = "spec:\n  inputs:\n    version:\n      regex: ^v\\d\\.\\d+(\\.\\d+)?$\n---\njob:\n  script: echo $[[ inputs.version ]]\n";
    let config = parse_root(versions, json!({"version": "v1.0"})).unwrap();
    assert_eq!(script_of(&config, "job"), ["echo v1.0"]);
    assert_eq!(
        parse_root(versions, json!({"version": "1.0"})).unwrap_err(),
        "`version` input: provided value does not match required RegEx pattern"
    );
    let on_boolean = "spec:\n  inputs:\n    flag:\n      type: boolean\n      regex: ^t\n---\njob:\n  script: echo\n";
    assert_eq!(
        parse_root(on_boolean, json!({"flag": true})).unwrap_err(),
        "`flag` input: RegEx validation can only be used with string inputs"
    );
}

#[test]
fn header_mistakes_are_reported_as_gitlabs_header_entries() {
    // text_interpolator_spec.rb: "when spec header is invalid".
    let yaml = "spec:\n  arguments:\n     website:\n---\njob:\n  script: echo\n";
    assert_eq!(
        parse_root(yaml, json!({})).unwrap_err(),
        "header:spec config contains unknown keys: arguments"
    );
    let yaml = "spec:\n  inputs:\n    site:\n      kind: string\n---\njob:\n  script: echo\n";
    assert_eq!(
        parse_root(yaml, json!({})).unwrap_err(),
        "header:spec:inputs:site config contains unknown keys: kind"
    );
}

#[test]
fn an_unknown_interpolation_key_and_a_bad_access_pattern_are_refused() {
    // text_interpolator_spec.rb: "when interpolation block is invalid", "stops execution after
    // the first invalid block".
    let header = "spec:\n  inputs:\n    website:\n---\n";
    let unknown = format!("{header}test:\n  script: deploy $[[ inputs.abc ]]\n");
    assert_eq!(
        parse_root(&unknown, json!({"website": "x"})).unwrap_err(),
        "unknown interpolation key: `abc`"
    );
    let several = format!(
        "{header}test:\n  script: deploy $[[ inputs.something.abc ]] $[[ inputs.cde ]] $[[ efg ]]\n"
    );
    assert_eq!(
        parse_root(&several, json!({"website": "x"})).unwrap_err(),
        "unknown interpolation key: `something`"
    );
    let pattern = format!("{header}test:\n  script: deploy $[[ website ]]\n");
    assert_eq!(
        parse_root(&pattern, json!({"website": "x"})).unwrap_err(),
        "invalid interpolation access pattern"
    );
}

#[test]
fn truncate_keeps_part_of_a_text_input() {
    // functions/truncate_spec.rb and docs "truncate": `truncate(3,5)`.
    let yaml = "spec:\n  inputs:\n    test:\n      default: 'test_user_input'\n---\njob:\n  script: echo $[[ inputs.test | truncate(5,6) ]]\n";
    let config = parse_root(yaml, json!({})).unwrap();
    assert_eq!(script_of(&config, "job"), ["echo user_i"]);
    let beyond = yaml.replace("truncate(5,6)", "truncate(50, 2)");
    assert_eq!(
        script_of(&parse_root(&beyond, json!({})).unwrap(), "job"),
        ["echo"]
    );
}

#[test]
fn functions_refuse_what_they_cannot_do() {
    let header = "spec:\n  inputs:\n    n:\n      type: number\n      default: 5\n    s:\n      default: abc\n---\n";
    let on_number = format!("{header}job:\n  script: echo $[[ inputs.n | truncate(1,2) ]]\n");
    assert_eq!(
        parse_root(&on_number, json!({})).unwrap_err(),
        "error in `truncate` function: invalid input type: truncate can only be used with string inputs"
    );
    let unknown = format!("{header}job:\n  script: echo $[[ inputs.s | upcase ]]\n");
    assert_eq!(
        parse_root(&unknown, json!({})).unwrap_err(),
        "no function matching `upcase`: check that the function name, arguments, and types are correct"
    );
    let too_many = format!(
        "{header}job:\n  script: echo $[[ inputs.s | posix_escape | posix_escape | posix_escape | posix_escape ]]\n"
    );
    assert_eq!(
        parse_root(&too_many, json!({})).unwrap_err(),
        "too many functions in interpolation block"
    );
}

#[test]
fn posix_escape_quotes_a_value_for_the_shell() {
    // functions/posix_escape_spec.rb: Ruby's Shellwords.shellescape.
    let yaml =
        "spec:\n  inputs:\n    file:\n---\njob:\n  script: cat $[[ inputs.file | posix_escape ]]\n";
    let config = parse_root(yaml, json!({"file": "my file; rm -rf $HOME"})).unwrap();
    assert_eq!(
        script_of(&config, "job"),
        ["cat my\\ file\\;\\ rm\\ -rf\\ \\$HOME"]
    );
}

#[test]
fn expand_vars_expands_known_unmasked_variables_only() {
    // functions/expand_vars_spec.rb: known variables expand, unknown ones stay, masked fail.
    let yaml = "spec:\n  inputs:\n    target:\n---\njob:\n  script: echo $[[ inputs.target | expand_vars ]]\n";
    let mut ctx = Interpolation::with_inputs(inputs(json!({"target": "$REGION-$UNKNOWN"})));
    ctx.variables = vec![Variable::new("REGION", "eu", VariableSource::Project)];
    let parse = |ctx: &Interpolation| {
        Config::parse_with(yaml, &Files(HashMap::new()), &Limits::default(), ctx)
    };
    let config = parse(&ctx).unwrap();
    assert_eq!(script_of(&config, "job"), ["echo eu-$UNKNOWN"]);
    assert!(
        ctx.variables_used.get(),
        "the result depends on the variables"
    );
    let mut secret = Variable::new("REGION", "eu", VariableSource::Project);
    secret.masked = true;
    ctx.variables = vec![secret];
    assert_eq!(
        parse(&ctx).unwrap_err().message,
        "error in `expand_vars` function: variable expansion error: masked variables cannot be expanded"
    );
}

#[test]
fn a_file_without_inputs_is_not_read_as_one_with_a_header() {
    // A first document without `spec:` is not a header (lib/gitlab/ci/config/yaml/documents.rb);
    // `$[[ … ]]` in a file without a header stays as written.
    let config = parse("job:\n  script: echo '$[[ inputs.x ]]'\n");
    assert_eq!(script_of(&config, "job"), ["echo '$[[ inputs.x ]]'"]);
}

#[test]
fn errors_after_the_header_keep_their_line_numbers() {
    let yaml = "spec:\n  inputs:\n    a:\n      default: x\n---\njob:\n  script: [unclosed\n";
    let err = Config::parse_with(
        yaml,
        &Files(HashMap::new()),
        &Limits::default(),
        &Interpolation::default(),
    )
    .unwrap_err();
    let line = err.location.map(|l| l.line).unwrap_or_default();
    assert!(
        line >= 7,
        "the error points into the content document: {line}"
    );
}

#[test]
fn interpolation_that_would_outgrow_the_size_limit_is_refused() {
    // 10,000 blocks of a 64 KiB input would be 640 MB of YAML: stopped at the limit instead.
    let blocks = "$[[ inputs.big ]]".repeat(10_000);
    let yaml = format!("spec:\n  inputs:\n    big:\n---\njob:\n  script: echo {blocks}\n");
    let err = parse_root(&yaml, json!({"big": "x".repeat(64 * 1024)})).unwrap_err();
    assert_eq!(err, "config too large");
}
