//! CI/CD variables and project CI/CD settings.

use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, demo_project};

on_both!(
    variables_are_unique_per_key_and_scope_and_merge_for_a_pipeline,
    project_ci_settings_are_unset_until_set,
);

fn variable(project_id: Option<ProjectId>, key: &str, scope: &str) -> CiVariable {
    CiVariable {
        id: 0,
        group_id: None,
        project_id,
        key: key.into(),
        value_sealed: format!("sealed {key}"),
        variable_type: VariableType::EnvVar,
        protected: false,
        masked: true,
        raw: false,
        description: None,
        environment_scope: scope.into(),
    }
}

async fn variables_are_unique_per_key_and_scope_and_merge_for_a_pipeline(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let project_var = |key, scope| variable(Some(demo.id), key, scope);
    let deploy = store.create_ci_variable(&project_var("DEPLOY", "*")).await;
    let deploy = deploy.unwrap().expect("created");
    assert!(
        store
            .create_ci_variable(&project_var("DEPLOY", "*"))
            .await
            .unwrap()
            .is_none()
    );
    let staged = store
        .create_ci_variable(&project_var("DEPLOY", "staging"))
        .await;
    assert!(
        staged.unwrap().is_some(),
        "another scope is another variable"
    );
    let instance = store
        .create_ci_variable(&variable(None, "GLOBAL", "*"))
        .await;
    assert!(instance.unwrap().is_some());
    assert!(
        store
            .create_ci_variable(&variable(None, "GLOBAL", "*"))
            .await
            .unwrap()
            .is_none()
    );

    let own = store.ci_variables(Some(demo.id)).await.unwrap();
    let scopes: Vec<_> = own.iter().map(|v| v.environment_scope.as_str()).collect();
    assert_eq!(scopes, ["*", "staging"]);
    let instance = store.ci_variables(None).await.unwrap();
    assert_eq!(
        instance.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(),
        ["GLOBAL"]
    );
    let all = store.ci_variables_for_pipeline(demo.id).await.unwrap();
    assert_eq!(all.len(), 3);

    let changed = CiVariable {
        value_sealed: "sealed again".into(),
        variable_type: VariableType::File,
        description: Some("where to".into()),
        ..deploy.clone()
    };
    assert_eq!(store.update_ci_variable(&changed).await.unwrap(), changed);
    store.delete_ci_variable(deploy.id).await.unwrap();
    assert_eq!(store.ci_variables(Some(demo.id)).await.unwrap().len(), 1);
}

async fn project_ci_settings_are_unset_until_set(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    assert_eq!(
        store
            .pipeline_variables_minimum_role(demo.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.project_build_timeout(demo.id).await.unwrap(), None);
    store.set_project_build_timeout(demo.id, 600).await.unwrap();
    assert_eq!(
        store.project_build_timeout(demo.id).await.unwrap(),
        Some(600)
    );
    let role = store
        .pipeline_variables_minimum_role(demo.id)
        .await
        .unwrap();
    assert_eq!(
        role.as_deref(),
        Some("developer"),
        "the setting's default row"
    );
    store
        .set_pipeline_variables_minimum_role(demo.id, "maintainer")
        .await
        .unwrap();
    let role = store
        .pipeline_variables_minimum_role(demo.id)
        .await
        .unwrap();
    assert_eq!(role.as_deref(), Some("maintainer"));
    assert_eq!(
        store.project_build_timeout(demo.id).await.unwrap(),
        Some(600)
    );
    // `ci_config_path`: unset, set, cleared, without touching the other settings.
    assert_eq!(store.project_ci_config_path(demo.id).await.unwrap(), None);
    store
        .set_project_ci_config_path(demo.id, Some("ci/pipeline.yml"))
        .await
        .unwrap();
    assert_eq!(
        store
            .project_ci_config_path(demo.id)
            .await
            .unwrap()
            .as_deref(),
        Some("ci/pipeline.yml")
    );
    store
        .set_project_ci_config_path(demo.id, None)
        .await
        .unwrap();
    assert_eq!(store.project_ci_config_path(demo.id).await.unwrap(), None);
    assert_eq!(
        store.project_build_timeout(demo.id).await.unwrap(),
        Some(600)
    );
}
