//! What Pipewright accepts but ignores is said, not dropped: `ci lint` warns about each such
//! keyword, and docs/gitlab-compatibility.md lists every one of them.

use std::collections::HashMap;

use pipewright_config::{LintOptions, NoFiles, lint};

use crate::support::*;

#[test]
fn lint_names_each_ignored_keyword_and_where_it_is_written() {
    let yaml = r#"
workflow:
  auto_cancel:
    on_new_commit: interruptible
default:
  cache: {paths: [vendor/]}
.deploy-base:
  environment: production
build:
  script: make
  artifacts:
    paths: [out/]
    reports: {junit: report.xml}
deploy-a:
  extends: .deploy-base
  script: deploy a
  resource_group: prod
deploy-b:
  extends: .deploy-base
  script: deploy b
  rules:
    - if: $CI_COMMIT_BRANCH
      interruptible: true
"#;
    let report = lint(yaml, &NoFiles, &LintOptions::default());
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(
        report.warnings,
        [
            "`workflow:auto_cancel` is ignored (Pipewright does not auto-cancel pipelines): workflow",
            "`cache` is ignored (Pipewright sends no caches to runners): default",
            "`artifacts:reports` is ignored (Pipewright uploads the archive only, not reports): jobs:build",
            "`environment` is ignored (Pipewright has no environments or deployments): jobs:deploy-a, jobs:deploy-b",
            "`resource_group` is ignored (Pipewright does not limit concurrency by resource group): jobs:deploy-a",
            "`rules:interruptible` is ignored (Pipewright does not auto-cancel redundant pipelines): jobs:deploy-b:rules",
        ]
    );
    // The text report shows them too (what `pipewright ci lint` prints).
    assert!(report.to_text().contains("`cache` is ignored"));
    // A config that uses nothing ignored has no warnings.
    let clean = lint("job:\n  script: x\n", &NoFiles, &LintOptions::default());
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);
}

#[test]
fn many_places_are_summed_up() {
    let jobs: String = (0..8)
        .map(|i| format!("job{i}:\n  script: x\n  coverage: '/(\\d+)%/'\n"))
        .collect();
    let report = lint(&jobs, &NoFiles, &LintOptions::default());
    assert_eq!(
        report.warnings,
        [
            "`coverage` is ignored (Pipewright does not read coverage from job logs): jobs:job0, jobs:job1, jobs:job2, jobs:job3, jobs:job4 and 3 more"
        ]
    );
}

#[test]
fn include_rules_are_acted_on_so_lint_does_not_call_them_ignored() {
    let files = Files(HashMap::from([(
        "ci/build.yml".to_string(),
        "build:\n  script: make\n".to_string(),
    )]));
    let yaml = "include:\n  - local: ci/build.yml\n    rules:\n      - when: always\n";
    let report = lint(yaml, &files, &LintOptions::default());
    assert!(report.valid, "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn the_compatibility_document_lists_every_ignored_keyword() {
    let doc = include_str!("../../../../docs/gitlab-compatibility.md");
    for keyword in pipewright_config::ignored_keywords() {
        for part in keyword.split(" and ") {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{part}`")))
                .unwrap_or_else(|| panic!("docs/gitlab-compatibility.md has no row for `{part}`"));
            assert!(
                row.contains("ignored"),
                "`{part}` should be marked ignored: {row}"
            );
        }
    }
}
