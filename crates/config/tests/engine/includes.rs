//! `include:` as GitLab's CI/CD YAML reference documents it ("include", "Use CI/CD
//! configuration from other files"): `project:` with `ref` and a list of `file`s, `remote:`,
//! `rules:` (`if`, `exists`, `when`) and wildcards in `local:`. The engine asks its caller for
//! everything through `FileSource`; these tests answer from memory.

use std::collections::HashMap;

use pipewright_config::{Config, FileSource, Limits, Variable, VariableSource};

/// A pipeline's commit, other projects' refs, remote URLs and the pipeline's variables.
#[derive(Default)]
struct World {
    local: HashMap<String, String>,
    /// (project, ref or "HEAD", path) → text; a project absent here is not readable.
    projects: HashMap<(String, String, String), String>,
    remote: HashMap<String, String>,
    variables: Vec<Variable>,
}

impl World {
    fn local(mut self, path: &str, text: &str) -> Self {
        self.local.insert(path.into(), text.into());
        self
    }
    fn project(mut self, project: &str, git_ref: &str, path: &str, text: &str) -> Self {
        self.projects
            .insert((project.into(), git_ref.into(), path.into()), text.into());
        self
    }
    fn var(mut self, key: &str, value: &str) -> Self {
        self.variables.push(Variable::new(
            key,
            value.to_string(),
            VariableSource::Project,
        ));
        self
    }
    fn masked_var(mut self, key: &str, value: &str) -> Self {
        let mut var = Variable::new(key, value.to_string(), VariableSource::Project);
        var.masked = true;
        self.variables.push(var);
        self
    }
    fn jobs(&self, yaml: &str) -> Vec<String> {
        match Config::parse(yaml, self, &Limits::default()) {
            Ok(config) => config.job_names().iter().map(|s| s.to_string()).collect(),
            Err(e) => panic!("{}", e.message),
        }
    }
    fn error(&self, yaml: &str) -> String {
        match Config::parse(yaml, self, &Limits::default()) {
            Ok(config) => panic!("parsed: {:?}", config.job_names()),
            Err(e) => e.message,
        }
    }
}

impl FileSource for World {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        Ok(self.local.get(path).cloned())
    }
    fn list(&self) -> Result<Vec<String>, String> {
        let mut paths: Vec<String> = self.local.keys().cloned().collect();
        paths.sort();
        Ok(paths)
    }
    fn read_project(
        &self,
        project: &str,
        git_ref: Option<&str>,
        path: &str,
    ) -> Result<Option<String>, String> {
        if !self.projects.keys().any(|(p, _, _)| p == project) {
            return Err(format!(
                "Project `{project}` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined."
            ));
        }
        let key = (
            project.to_string(),
            git_ref.unwrap_or("HEAD").to_string(),
            path.to_string(),
        );
        Ok(self.projects.get(&key).cloned())
    }
    fn read_remote(&self, url: &str) -> Result<String, String> {
        self.remote.get(url).cloned().ok_or_else(|| {
            format!("Remote file `{url}` could not be fetched because of HTTP code `404` error!")
        })
    }
    fn variables(&self) -> Vec<Variable> {
        self.variables.clone()
    }
}

const BUILD: &str = "build:\n  script: make\n";
const TEST: &str = "test:\n  script: make test\n";

#[test]
fn project_includes_read_each_file_at_the_default_branch_or_the_given_ref() {
    // The reference's example: one file, then a list of files from another project.
    let world = World::default()
        .project(
            "my-group/my-project",
            "HEAD",
            "templates/.gitlab-ci-template.yml",
            BUILD,
        )
        .project(
            "my-group/my-subgroup/my-project-2",
            "v1.0.0",
            "templates/.builds.yml",
            TEST,
        )
        .project(
            "my-group/my-subgroup/my-project-2",
            "v1.0.0",
            "templates/.tests.yml",
            "lint:\n  script: lint\n",
        );
    let yaml = "include:
  - project: 'my-group/my-project'
    file: '/templates/.gitlab-ci-template.yml'
  - project: 'my-group/my-subgroup/my-project-2'
    ref: v1.0.0
    file:
      - '/templates/.builds.yml'
      - '/templates/.tests.yml'
";
    assert_eq!(world.jobs(yaml), ["build", "test", "lint"]);
}

#[test]
fn a_project_file_includes_local_files_of_its_own_project() {
    // GitLab: file/project.rb — what a project's file includes is read in that project.
    let world = World::default()
        .local("ci/shared.yml", "from_pipeline_project:\n  script: no\n")
        .project("tools/ci", "main", "entry.yml", "include: ci/shared.yml\n")
        .project("tools/ci", "main", "ci/shared.yml", BUILD);
    let yaml = "include:\n  project: tools/ci\n  ref: main\n  file: entry.yml\n";
    assert_eq!(world.jobs(yaml), ["build"]);
}

#[test]
fn a_project_the_user_cannot_read_is_gitlabs_error() {
    let world = World::default();
    assert_eq!(
        world.error("include:\n  project: secret/templates\n  file: ci.yml\njob:\n  script: x\n"),
        "Project `secret/templates` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined."
    );
    let world = World::default().project("tools/ci", "HEAD", "a.yml", BUILD);
    assert_eq!(
        world.error("include:\n  project: tools/ci\n  file: missing.yml\njob:\n  script: x\n"),
        "Project `tools/ci` file `missing.yml` does not exist!"
    );
}

#[test]
fn remote_files_come_from_the_caller_and_urls_are_checked() {
    let mut world = World::default();
    world
        .remote
        .insert("https://example.com/ci/build.yml".into(), BUILD.into());
    assert_eq!(
        world.jobs("include: 'https://example.com/ci/build.yml'\n"),
        ["build"]
    );
    assert_eq!(
        world.jobs("include:\n  - remote: 'https://example.com/ci/build.yml'\n"),
        ["build"]
    );
    assert_eq!(
        world.error("include:\n  remote: 'ftp://example.com/x.yml'\njob:\n  script: x\n"),
        "Remote file `ftp://example.com/x.yml` does not have a valid address!"
    );
    assert_eq!(
        world.error("include:\n  remote: 'https://example.com/none.yml'\njob:\n  script: x\n"),
        "Remote file `https://example.com/none.yml` could not be fetched because of HTTP code `404` error!"
    );
}

/// The reference's `include:rules:if` example.
#[test]
fn include_rules_if_decide_with_the_pipelines_variables() {
    let yaml = "include:
  - local: builds.yml
    rules:
      - if: $DONT_INCLUDE_BUILDS == \"true\"
        when: never
      - if: $INCLUDE_BUILDS == \"true\"
  - local: deploys.yml
    rules:
      - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
test:
  script: make test
";
    let on_feature = World::default()
        .local("builds.yml", BUILD)
        .local("deploys.yml", "deploy:\n  script: deploy\n")
        .var("CI_COMMIT_BRANCH", "feature")
        .var("CI_DEFAULT_BRANCH", "main");
    assert_eq!(on_feature.jobs(yaml), ["test"]);
    let on_main = World::default()
        .local("builds.yml", BUILD)
        .local("deploys.yml", "deploy:\n  script: deploy\n")
        .var("CI_COMMIT_BRANCH", "main")
        .var("CI_DEFAULT_BRANCH", "main")
        .var("INCLUDE_BUILDS", "true");
    assert_eq!(on_main.jobs(yaml), ["build", "deploy", "test"]);
    let never = on_main.var("DONT_INCLUDE_BUILDS", "true");
    assert_eq!(never.jobs(yaml), ["deploy", "test"]);
}

/// The reference's `include:rules:exists` example.
#[test]
fn include_rules_exists_look_at_the_commits_files() {
    let yaml = "include:
  - local: builds.yml
    rules:
      - exists:
          - exception-file.md
        when: never
      - exists:
          - file.md
test:
  script: make test
";
    let world = World::default().local("builds.yml", BUILD);
    assert_eq!(world.jobs(yaml), ["test"]);
    let with_file = World::default()
        .local("builds.yml", BUILD)
        .local("file.md", "");
    assert_eq!(with_file.jobs(yaml), ["build", "test"]);
    let excepted = with_file.local("exception-file.md", "");
    assert_eq!(excepted.jobs(yaml), ["test"]);
}

#[test]
fn include_rules_take_gitlabs_keys_and_when_values() {
    let world = World::default().local("a.yml", BUILD);
    assert_eq!(
        world.error(
            "include:\n  - local: a.yml\n    rules:\n      - when: manual\njob:\n  script: x\n"
        ),
        "include:rules:rule when unknown value: manual"
    );
    assert_eq!(
        world.error("include:\n  - local: a.yml\n    rules:\n      - allow_failure: true\njob:\n  script: x\n"),
        "include:rules:rule config contains unknown keys: allow_failure"
    );
    assert_eq!(
        world.error(
            "include:\n  - local: a.yml\n    rules:\n      - if: ${A}x\njob:\n  script: x\n"
        ),
        "include:rules:rule if invalid expression syntax"
    );
}

/// The reference's `include:local` wildcard examples: `*` stays in a folder, `**` does not.
#[test]
fn local_wildcards_include_every_matching_file() {
    let world = World::default()
        .local("configs/a.yml", "a:\n  script: a\n")
        .local("configs/b.yml", "b:\n  script: b\n")
        .local("configs/sub/c.yml", "c:\n  script: c\n")
        .local("configs/readme.md", "not yaml: [");
    assert_eq!(world.jobs("include: 'configs/*.yml'\n"), ["a", "b"]);
    assert_eq!(world.jobs("include: 'configs/**.yml'\n"), ["a", "b", "c"]);
    assert_eq!(
        world.jobs(
            "include:\n  - local: configs/*.yml\n    rules:\n      - if: $NOPE\njob:\n  script: x\n"
        ),
        ["job"]
    );
}

#[test]
fn include_locations_expand_the_pipelines_variables() {
    // GitLab: mapper/variables_expander.rb; the reference's "Use variables with include".
    let world = World::default()
        .project("group/templates", "v2", "ci.yml", BUILD)
        .var("CI_PROJECT_NAMESPACE", "group")
        .var("TEMPLATES_REF", "v2");
    let yaml = "include:\n  project: $CI_PROJECT_NAMESPACE/templates\n  ref: $TEMPLATES_REF\n  file: ci.yml\n";
    assert_eq!(world.jobs(yaml), ["build"]);
}

#[test]
fn templates_are_refused_with_a_reason() {
    let message = World::default()
        .error("include:\n  template: Auto-DevOps.gitlab-ci.yml\njob:\n  script: x\n");
    assert!(message.starts_with("Included file `template` is not supported by Pipewright"));
}

#[test]
fn masked_variables_stay_hidden_in_include_errors() {
    // GitLab: external/context.rb `mask_variables_from` (`Gitlab::Ci::MaskSecret`).
    let world = World::default().masked_var("TEMPLATES", "s3cr3t-group/templates");
    // 22 characters: `[MASKED]` and 14 `x`.
    assert_eq!(
        world.error("include:\n  project: $TEMPLATES\n  file: ci.yml\njob:\n  script: x\n"),
        "Project `[MASKED]xxxxxxxxxxxxxx` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined."
    );
}

/// What the config reports it included, as `(type, location, extra, context project)`.
fn included(world: &World, yaml: &str) -> Vec<serde_json::Value> {
    let config = Config::parse(yaml, world, &Limits::default()).expect("parses");
    config
        .includes
        .iter()
        .map(|file| serde_json::to_value(file).unwrap())
        .collect()
}

#[test]
fn the_config_lists_what_it_included_in_gitlabs_order() {
    // GitLab: mapper/verifier.rb adds every file of one `include:` before expanding any, and
    // file/{local,project,remote}.rb give each its `type`, `location` and `extra`.
    let mut world = World::default()
        .local("ci/a.yml", "include: ci/nested.yml\na:\n  script: x\n")
        .local("ci/nested.yml", BUILD)
        .local("ci/b.yml", TEST)
        .project("Tools/CI", "HEAD", "entry.yml", "include: ci/shared.yml\n")
        .project(
            "Tools/CI",
            "HEAD",
            "ci/shared.yml",
            "shared:\n  script: x\n",
        )
        .project("tools/lib", "v1", "lib.yml", "lib:\n  script: x\n");
    world.remote.insert(
        "https://example.com/ci.yml".into(),
        "remote:\n  script: x\n".into(),
    );
    let yaml = "include:
  - ci/a.yml
  - local: /ci/b.yml
  - project: Tools/CI
    file: entry.yml
  - project: tools/lib
    ref: v1
    file: [lib.yml]
  - https://example.com/ci.yml
  - ci/b.yml
job:
  script: x
";
    let local = |location: &str| serde_json::json!({"type": "local", "location": location, "extra": {}, "context": null});
    assert_eq!(
        included(&world, yaml),
        [
            local("ci/a.yml"),
            local("ci/b.yml"),
            serde_json::json!({"type": "file", "location": "entry.yml",
                "extra": {"project": "tools/ci", "ref": "HEAD"}, "context": null}),
            serde_json::json!({"type": "file", "location": "lib.yml",
                "extra": {"project": "tools/lib", "ref": "v1"}, "context": null}),
            serde_json::json!({"type": "remote", "location": "https://example.com/ci.yml",
                "extra": {}, "context": null}),
            // What the included files include comes after, each read where its includer was.
            local("ci/nested.yml"),
            serde_json::json!({"type": "local", "location": "ci/shared.yml", "extra": {},
                "context": {"project": "Tools/CI", "ref": null}}),
        ]
    );
    // Without includes, nothing is listed.
    assert_eq!(included(&world, BUILD), Vec::<serde_json::Value>::new());
}

#[test]
fn included_locations_show_expanded_variables_and_hide_masked_ones() {
    let world = World::default()
        .local("ci/prod.yml", BUILD)
        .project("s3cr3t-group/templates", "HEAD", "ci.yml", TEST)
        .var("ENV", "prod")
        .masked_var("TEMPLATES", "s3cr3t-group/templates");
    let yaml = "include:\n  - local: ci/$ENV.yml\n  - project: $TEMPLATES\n    file: ci.yml\n";
    let files = included(&world, yaml);
    assert_eq!(files[0]["location"], "ci/prod.yml");
    assert_eq!(files[1]["extra"]["project"], "[MASKED]xxxxxxxxxxxxxx");
}

#[test]
fn included_files_are_known_once_the_config_is_read_even_if_it_is_invalid() {
    // GitLab's lint: `includes` is null for a config that could not be read (its
    // `Config::ConfigError`), listed for one that fails a later check.
    let world = World::default().local("ci/a.yml", BUILD);
    let listed = |yaml: &str| {
        Config::parse_listing_includes(
            yaml,
            &world,
            &Limits::default(),
            &pipewright_config::Interpolation::default(),
        )
    };
    let (includes, parsed) = listed(
        "include: ci/missing.yml
",
    );
    assert!(includes.is_none() && parsed.is_err());
    let (includes, parsed) = listed(
        "include: ci/a.yml
job:
  scrpt: x
",
    );
    assert!(parsed.is_err());
    assert_eq!(includes.map(|l| l.len()), Some(1));
    let (includes, parsed) = listed(
        "include: ci/a.yml
",
    );
    assert_eq!(parsed.unwrap().includes, includes.unwrap());
}
