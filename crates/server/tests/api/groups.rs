//! Groups as GitLab has them: groups and subgroups through the API, projects in them with full
//! paths of any depth (API `:id`, git, pages, triggers, bridges), and inherited membership —
//! a member of a group has at least that role in every subgroup and project below it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git, git_ok, local_repo, remote};
use crate::running::{finished_pipeline, register_runner, request, vars};
use crate::support::TestApp;
use crate::web::Browser;

both_backends!(
    a_user_creates_a_group_a_subgroup_and_a_project_in_it,
    a_group_member_has_their_role_in_every_project_below,
    a_subgroup_member_sees_the_parent_but_not_its_other_subgroups_projects_or_members,
    only_owners_manage_group_members_and_the_last_owner_stays,
    each_group_action_needs_gitlabs_least_role,
    an_admin_can_stop_users_creating_top_level_groups,
    a_trigger_token_stops_working_when_its_owner_leaves_the_group,
    a_bridge_triggers_a_project_in_a_subgroup_by_its_full_path,
    deleting_a_group_deletes_its_subgroups_and_projects,
    a_job_receives_group_variables_the_nearest_group_first,
    a_job_token_reaches_a_project_whose_allowlist_names_its_group,
    a_group_runner_takes_jobs_of_every_project_below_its_group,
    group_maintainers_read_the_groups_runners_but_only_owners_change_them,
    a_user_creates_a_group_and_a_subgroup_through_the_pages,
    the_new_group_page_follows_can_create_group,
    an_owner_adds_a_group_variable_on_the_settings_page_and_a_job_receives_it,
    only_group_owners_see_the_group_ci_cd_settings_page,
    the_group_page_lists_subgroups_projects_and_members_twenty_a_page,
);

pub(crate) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let res = app.request(method, path, Some(token), Some(body)).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) async fn create_group(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, group) = call(app, Method::POST, "/groups", token, body).await;
    assert_eq!(status, 201, "{group}");
    group
}

pub(crate) async fn add_group_member(
    app: &TestApp,
    group: &Value,
    owner: &str,
    user: i64,
    level: i64,
) {
    let path = format!("/groups/{}/members", group["id"]);
    let body = json!({"user_id": user, "access_level": level});
    let (status, member) = call(app, Method::POST, &path, owner, body).await;
    assert_eq!(status, 201, "{member}");
}

/// `acme` (private) / `backend` (private) / `api` (private, with a pushed CI config), made by
/// `owner`.
async fn acme_backend_api(
    app: &TestApp,
    owner: &str,
    tmp: &std::path::Path,
) -> (Value, Value, Value) {
    let acme = create_group(app, owner, json!({"name": "Acme", "path": "acme"})).await;
    let backend = create_group(
        app,
        owner,
        json!({"name": "Backend", "path": "backend", "parent_id": acme["id"]}),
    )
    .await;
    let (status, api) = call(
        app,
        Method::POST,
        "/projects",
        owner,
        json!({"name": "api", "namespace_id": backend["id"]}),
    )
    .await;
    assert_eq!(status, 201, "{api}");
    let work = local_repo(tmp, "build:\n  script: echo build\n");
    let url = remote(app, "owner", owner, "acme/backend/api");
    git_ok(&work, tmp, &["push", "-q", "-o", "ci.skip", &url, "main"]);
    (acme, backend, api)
}

async fn a_user_creates_a_group_a_subgroup_and_a_project_in_it(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (_, owner) = app.create_user("owner").await;
    let (acme, backend, api) = acme_backend_api(&app, &owner, tmp.path()).await;
    assert_eq!(acme["full_path"], "acme");
    assert_eq!(acme["parent_id"], Value::Null);
    assert_eq!(acme["visibility"], "private");
    assert_eq!(acme["web_url"], format!("{}/groups/acme", app.url));
    assert_eq!(backend["full_path"], "acme/backend");
    assert_eq!(backend["full_name"], "Acme / Backend");
    assert_eq!(backend["parent_id"], acme["id"]);
    assert_eq!(api["path_with_namespace"], "acme/backend/api");
    assert_eq!(api["name_with_namespace"], "Acme / Backend / api");
    assert_eq!(api["namespace"]["kind"], "group");
    assert_eq!(api["namespace"]["full_path"], "acme/backend");
    assert_eq!(api["namespace"]["parent_id"], acme["id"]);
    assert_eq!(
        api["http_url_to_repo"],
        format!("{}/acme/backend/api.git", app.url)
    );

    // A full path of any depth names the group and the project.
    let (status, found) = call(
        &app,
        Method::GET,
        "/groups/acme%2Fbackend",
        &owner,
        json!({}),
    )
    .await;
    assert_eq!((status, &found["id"]), (200, &backend["id"]));
    assert_eq!(found["projects"][0]["id"], api["id"]);
    let (status, found) = call(
        &app,
        Method::GET,
        "/projects/acme%2Fbackend%2Fapi",
        &owner,
        json!({}),
    )
    .await;
    assert_eq!((status, &found["id"]), (200, &api["id"]));
    let (_, subgroups) = call(
        &app,
        Method::GET,
        "/groups/acme/subgroups",
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(subgroups.as_array().unwrap().len(), 1);
    let (_, direct) = call(
        &app,
        Method::GET,
        "/groups/acme/projects",
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(direct, json!([]));
    let res = app
        .get(
            "/groups/acme/projects?include_subgroups=true&per_page=1",
            Some(&owner),
        )
        .await;
    assert_eq!(res.headers()["x-total"], "1");
    let below: Value = res.json().await.unwrap();
    assert_eq!(below[0]["path_with_namespace"], "acme/backend/api");

    // GitLab's refusals: a taken path, a reserved one, a subgroup more visible than its
    // parent, a project more visible than its group, nobody signed in.
    let (status, body) = call(
        &app,
        Method::POST,
        "/groups",
        &owner,
        json!({"name": "x", "path": "ACME"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"path": ["has already been taken"]}})
        )
    );
    let (status, _) = call(
        &app,
        Method::POST,
        "/groups",
        &owner,
        json!({"name": "x", "path": "api"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = call(
        &app,
        Method::POST,
        "/groups",
        &owner,
        json!({"name": "Open", "path": "open", "parent_id": acme["id"], "visibility": "public"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"visibility_level": ["public is not allowed since the parent group has a private visibility."]}})
        )
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/projects",
        &owner,
        json!({"name": "site", "namespace_path": "acme", "visibility": "public"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"visibility_level": ["public is not allowed in a private group."]}})
        )
    );
    let res = app
        .post("/groups", None, json!({"name": "x", "path": "x"}))
        .await;
    assert_eq!(res.status(), 401);
    // A group holding an internal project cannot become private, nor the project public.
    let put = |path: String, body: Value| {
        let owner = owner.clone();
        let app = &app;
        async move { call(app, Method::PUT, &path, &owner, body).await }
    };
    let (status, _) = put(
        format!("/groups/{}", acme["id"]),
        json!({"visibility": "internal"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = put(
        format!("/groups/{}", backend["id"]),
        json!({"visibility": "internal"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = put(
        format!("/projects/{}", api["id"]),
        json!({"visibility": "internal"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = put(
        format!("/projects/{}", api["id"]),
        json!({"visibility": "public"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"visibility_level": ["public is not allowed in a internal group."]}})
        )
    );
    let (status, body) = put(
        format!("/groups/{}", backend["id"]),
        json!({"visibility": "private"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"visibility_level": ["private is not allowed since this group contains projects with higher visibility."]}})
        )
    );
    let (status, body) = put(
        format!("/groups/{}", acme["id"]),
        json!({"visibility": "private"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"visibility_level": ["private is not allowed since there are sub-groups with higher visibility."]}})
        )
    );
}

async fn a_group_member_has_their_role_in_every_project_below(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (_, owner) = app.create_user("owner").await;
    let (dev_id, dev) = app.create_user("dev").await;
    let (reporter_id, reporter) = app.create_user("reporter").await;
    let (_, stranger) = app.create_user("stranger").await;
    let (acme, backend, api) = acme_backend_api(&app, &owner, tmp.path()).await;
    add_group_member(&app, &acme, &owner, dev_id, 30).await;
    add_group_member(&app, &backend, &owner, reporter_id, 20).await;

    // The API: the private project and groups are the members', 404 to anyone else.
    let project = "/projects/acme%2Fbackend%2Fapi";
    for (token, status) in [(&dev, 200), (&reporter, 200), (&stranger, 404)] {
        assert_eq!(app.get(project, Some(token)).await.status(), status);
        assert_eq!(
            app.get("/groups/acme%2Fbackend", Some(token))
                .await
                .status(),
            status
        );
    }
    let (_, found) = call(&app, Method::GET, project, &dev, json!({})).await;
    assert_eq!(found["permissions"]["project_access"]["access_level"], 30);
    let (_, all) = call(
        &app,
        Method::GET,
        "/groups/acme%2Fbackend/members/all",
        &owner,
        json!({}),
    )
    .await;
    let level = |id: i64| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["access_level"]
            .clone()
    };
    assert_eq!((level(dev_id), level(reporter_id)), (json!(30), json!(20)));
    let (_, direct) = call(
        &app,
        Method::GET,
        "/groups/acme%2Fbackend/members",
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(
        direct.as_array().unwrap().len(),
        2,
        "the owner and the reporter: {direct}"
    );

    // Git: the inherited Developer pushes and clones at the full path; the Reporter clones
    // but may not push; a stranger does not find the repository.
    let clone_dir = tmp.path().join("clone");
    let url = remote(&app, "dev", &dev, "acme/backend/api");
    git_ok(
        tmp.path(),
        tmp.path(),
        &["clone", "-q", &url, clone_dir.to_str().unwrap()],
    );
    std::fs::write(clone_dir.join("README.md"), "hello\n").unwrap();
    git_ok(&clone_dir, tmp.path(), &["add", "."]);
    git_ok(&clone_dir, tmp.path(), &["commit", "-q", "-m", "Readme"]);
    git_ok(
        &clone_dir,
        tmp.path(),
        &["push", "-q", "-o", "ci.skip", &url, "HEAD:feature"],
    );
    let as_reporter = remote(&app, "reporter", &reporter, "acme/backend/api");
    let refused = git(
        &clone_dir,
        tmp.path(),
        &["push", "-q", &as_reporter, "HEAD:other"],
    );
    assert!(!refused.status.success());
    let as_stranger = remote(&app, "stranger", &stranger, "acme/backend/api");
    let hidden = git(tmp.path(), tmp.path(), &["ls-remote", &as_stranger]);
    assert!(
        String::from_utf8_lossy(&hidden.stderr).contains("not found"),
        "{hidden:?}"
    );

    // Pages at the nested path.
    let mut browser = Browser::sign_in(&app, "dev", "a-long-password").await;
    assert_eq!(
        browser.get("/acme/backend/api/-/pipelines").await.status,
        200
    );
    assert_eq!(browser.get("/acme/backend/api").await.status, 200);
    let overview = browser.get("/acme/backend/api").await.body;
    assert!(
        overview.contains(
            r#"<a href="/groups/acme">acme</a> / <a href="/groups/acme/backend">backend</a>"#
        ),
        "breadcrumbs link each group: {overview}"
    );
    let group_page = browser.get("/groups/acme/backend").await;
    assert_eq!(group_page.status, 200);
    assert!(
        group_page.body.contains(r#"href="/acme/backend/api""#),
        "{}",
        group_page.body
    );
    assert!(
        group_page.body.contains("reporter"),
        "members are listed: {}",
        group_page.body
    );
    // A Developer of the group may create projects in it and below: the new project page
    // offers them (a stranger's offers only their own namespace).
    let new_project = browser.get("/projects/new").await.body;
    for group in [">acme<", ">acme/backend<"] {
        assert!(new_project.contains(group), "{group}: {new_project}");
    }
    let redirect = browser.get("/acme/backend/api.git").await;
    assert_eq!(redirect.location.as_deref(), Some("/acme/backend/api"));
    let mut browser = Browser::sign_in(&app, "stranger", "a-long-password").await;
    assert_eq!(
        browser.get("/acme/backend/api/-/pipelines").await.status,
        404
    );
    assert_eq!(browser.get("/groups/acme/backend").await.status, 404);
    let new_project = browser.get("/projects/new").await.body;
    assert!(!new_project.contains(">acme"), "{new_project}");

    // Leaving the group takes the role away everywhere below.
    let path = format!("/groups/{}/members/{dev_id}", acme["id"]);
    assert_eq!(
        call(&app, Method::DELETE, &path, &owner, json!({})).await.0,
        204
    );
    assert_eq!(app.get(project, Some(&dev)).await.status(), 404);
    let _ = api;
}

async fn create_project(app: &TestApp, token: &str, name: &str, namespace: &Value) {
    let body = json!({"name": name, "namespace_id": namespace["id"]});
    let (status, project) = call(app, Method::POST, "/projects", token, body).await;
    assert_eq!(status, 201, "{project}");
}

fn full_paths(list: &Value) -> Vec<&str> {
    let items = list.as_array().unwrap_or_else(|| panic!("{list}"));
    items
        .iter()
        .map(|g| {
            g["full_path"]
                .as_str()
                .or(g["path_with_namespace"].as_str())
                .unwrap()
        })
        .collect()
}

/// GitLab: a user who sees a project below a private group may read the group
/// (app/policies/group_policy.rb, `has_projects`), and the ancestors of their groups and
/// projects are listed (app/finders/groups_finder.rb); nothing else of the parent's is theirs.
async fn a_subgroup_member_sees_the_parent_but_not_its_other_subgroups_projects_or_members(
    app: TestApp,
) {
    let (_, owner) = app.create_user("owner").await;
    let (dev_id, dev) = app.create_user("dev").await;
    let (lone_id, lone) = app.create_user("lone").await;
    let acme = create_group(&app, &owner, json!({"name": "Acme", "path": "acme"})).await;
    let sub =
        |name: &str| json!({"name": name, "path": name.to_lowercase(), "parent_id": acme["id"]});
    let backend = create_group(&app, &owner, sub("Backend")).await;
    let secret = create_group(&app, &owner, sub("Secret")).await;
    let empty = create_group(&app, &owner, sub("Empty")).await;
    create_project(&app, &owner, "api", &backend).await;
    create_project(&app, &owner, "vault", &acme).await;
    create_project(&app, &owner, "ops", &secret).await;
    add_group_member(&app, &backend, &owner, dev_id, 30).await;
    add_group_member(&app, &empty, &owner, lone_id, 30).await;

    // The lists: the parent and the subgroup, never the parent's other subgroup.
    for list in ["/groups", "/groups?all_available=true"] {
        let (status, groups) = call(&app, Method::GET, list, &dev, json!({})).await;
        assert_eq!(status, 200, "{groups}");
        assert_eq!(full_paths(&groups), ["acme", "acme/backend"], "{list}");
    }
    let (_, subgroups) = call(&app, Method::GET, "/groups/acme/subgroups", &dev, json!({})).await;
    assert_eq!(full_paths(&subgroups), ["acme/backend"]);

    // The parent itself, with only the projects the member sees.
    let (status, parent) = call(&app, Method::GET, "/groups/acme", &dev, json!({})).await;
    assert_eq!(status, 200, "{parent}");
    assert_eq!(parent["projects"], json!([]), "not acme/vault");
    let (_, projects) = call(&app, Method::GET, "/groups/acme/projects", &dev, json!({})).await;
    assert_eq!(projects, json!([]));
    let below = "/groups/acme/projects?include_subgroups=true";
    let (_, projects) = call(&app, Method::GET, below, &dev, json!({})).await;
    assert_eq!(full_paths(&projects), ["acme/backend/api"]);

    // What stays hidden: the other subgroup and its project, the parent's own project (404),
    // the parent's members and settings (403, as GitLab: the group is readable).
    for hidden in [
        "/groups/acme%2Fsecret",
        "/projects/acme%2Fvault",
        "/projects/acme%2Fsecret%2Fops",
    ] {
        assert_eq!(app.get(hidden, Some(&dev)).await.status(), 404, "{hidden}");
    }
    for members in ["/groups/acme/members", "/groups/acme/members/all"] {
        assert_eq!(
            app.get(members, Some(&dev)).await.status(),
            403,
            "{members}"
        );
    }
    let rename = json!({"name": "Mine"});
    let (status, _) = call(&app, Method::PUT, "/groups/acme", &dev, rename).await;
    assert_eq!(status, 403);

    // A member of a subgroup without projects sees the parent listed but may not read it
    // (GitLab's policy asks for a project below, its finder only for a membership below).
    let (_, groups) = call(&app, Method::GET, "/groups", &lone, json!({})).await;
    assert_eq!(full_paths(&groups), ["acme", "acme/empty"]);
    assert_eq!(app.get("/groups/acme", Some(&lone)).await.status(), 404);

    // The pages: the parent's page lists the subgroup only and no members; the subgroup's
    // breadcrumbs lead to it.
    let mut browser = Browser::sign_in(&app, "dev", "a-long-password").await;
    let page = browser.get("/groups/acme").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(r#"href="/groups/acme/backend""#),
        "{}",
        page.body
    );
    assert!(!page.body.contains("/groups/acme/secret"), "{}", page.body);
    assert!(!page.body.contains("vault"), "{}", page.body);
    assert!(!page.body.contains("owner"), "no members: {}", page.body);
    assert_eq!(browser.get("/groups/acme/secret").await.status, 404);
    let page = browser.get("/groups/acme/backend").await;
    assert!(
        page.body.contains(r#"href="/groups/acme""#),
        "{}",
        page.body
    );
}

/// GitLab's least roles in a group under its default settings (app/policies/group_policy.rb):
/// subgroups for Maintainers, projects for Developers; variables, runners, members (Owners
/// included) and deletion for Owners. Each role tries each action; the table is the answer.
async fn each_group_action_needs_gitlabs_least_role(app: TestApp) {
    let (_, owner) = app.create_user("owner").await;
    let (target_id, _) = app.create_user("target").await;
    let acme = create_group(&app, &owner, json!({"name": "Acme", "path": "acme"})).await;
    // The least role of each action, as GitLab's access levels.
    let actions = [
        ("create a subgroup", 40),
        ("create a project", 30),
        ("read group variables", 50),
        ("create a group runner", 50),
        ("add an Owner", 50),
        ("delete a subgroup", 50),
    ];
    for (level, name) in [
        (10, "guest"),
        (20, "reporter"),
        (30, "developer"),
        (40, "maintainer"),
        (50, "also-owner"),
    ] {
        let (id, token) = app.create_user(name).await;
        add_group_member(&app, &acme, &owner, id, level).await;
        let doomed = create_group(
            &app,
            &owner,
            json!({"name": format!("doomed-{name}"), "path": format!("doomed-{name}"), "parent_id": acme["id"]}),
        )
        .await;
        for (action, least) in actions {
            let (method, path, body) = match action {
                "create a subgroup" => (
                    Method::POST,
                    "/groups".to_string(),
                    json!({"name": format!("by-{name}"), "path": format!("by-{name}"), "parent_id": acme["id"]}),
                ),
                "create a project" => (
                    Method::POST,
                    "/projects".to_string(),
                    json!({"name": format!("by-{name}"), "namespace_id": acme["id"]}),
                ),
                "read group variables" => {
                    (Method::GET, "/groups/acme/variables".to_string(), json!({}))
                }
                "create a group runner" => (
                    Method::POST,
                    "/user/runners".to_string(),
                    json!({"runner_type": "group_type", "group_id": acme["id"]}),
                ),
                "add an Owner" => (
                    Method::POST,
                    "/groups/acme/members".to_string(),
                    json!({"user_id": target_id, "access_level": 50}),
                ),
                _ => (
                    Method::DELETE,
                    format!("/groups/{}", doomed["id"]),
                    json!({}),
                ),
            };
            let (status, body) = call(&app, method, &path, &token, body).await;
            if level >= least {
                assert!(
                    (200..300).contains(&status),
                    "{name} may {action}: {status} {body}"
                );
            } else if action == "create a project" {
                // GitLab's Projects::CreateService: "namespace is not valid", a 400.
                assert_eq!(status, 400, "{name} may not {action}: {body}");
                assert_eq!(body, json!({"message": {"namespace": ["is not valid"]}}));
            } else {
                assert_eq!(status, 403, "{name} may not {action}: {body}");
            }
        }
        // The next role adds the same Owner again.
        let _ = app
            .request(
                Method::DELETE,
                &format!("/groups/acme/members/{target_id}"),
                Some(&owner),
                None,
            )
            .await;
    }
}

async fn only_owners_manage_group_members_and_the_last_owner_stays(app: TestApp) {
    let (owner_id, owner) = app.create_user("owner").await;
    let (maintainer_id, maintainer) = app.create_user("maintainer").await;
    let (guest_id, _) = app.create_user("guest").await;
    let (_, stranger) = app.create_user("stranger").await;
    let acme = create_group(&app, &owner, json!({"name": "Acme", "path": "acme"})).await;
    add_group_member(&app, &acme, &owner, maintainer_id, 40).await;
    let members = format!("/groups/{}/members", acme["id"]);
    let add_guest = json!({"user_id": guest_id, "access_level": 10});
    assert_eq!(
        call(&app, Method::POST, &members, &maintainer, add_guest.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        call(&app, Method::POST, &members, &stranger, add_guest.clone())
            .await
            .0,
        404
    );
    assert_eq!(app.get(&members, None).await.status(), 401);
    assert_eq!(
        call(&app, Method::POST, &members, &owner, add_guest.clone())
            .await
            .0,
        201
    );
    let (status, body) = call(&app, Method::POST, &members, &owner, add_guest).await;
    assert_eq!(
        (status, body),
        (409, json!({"message": "Member already exists"}))
    );
    // The last Owner can neither leave nor step down; with a second Owner they can.
    let me = format!("{members}/{owner_id}");
    assert_eq!(
        call(&app, Method::DELETE, &me, &owner, json!({})).await.0,
        403
    );
    assert_eq!(
        call(&app, Method::PUT, &me, &owner, json!({"access_level": 40}))
            .await
            .0,
        403
    );
    let promote = format!("{members}/{maintainer_id}");
    let (status, promoted) = call(
        &app,
        Method::PUT,
        &promote,
        &owner,
        json!({"access_level": 50}),
    )
    .await;
    assert_eq!((status, &promoted["access_level"]), (200, &json!(50)));
    assert_eq!(
        call(&app, Method::DELETE, &me, &owner, json!({})).await.0,
        204
    );
    // An Owner through the parent manages a subgroup's members too.
    let sub = create_group(
        &app,
        &maintainer,
        json!({"name": "Sub", "path": "sub", "parent_id": acme["id"]}),
    )
    .await;
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/groups/{}/members/all/{maintainer_id}", sub["id"]),
        &maintainer,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
}

async fn an_admin_can_stop_users_creating_top_level_groups(app: TestApp) {
    let (_, alice) = app.create_user("alice").await;
    let acme = create_group(&app, &alice, json!({"name": "Acme", "path": "acme"})).await;
    let (status, settings) = call(
        &app,
        Method::PUT,
        "/application/settings",
        &app.root_token,
        json!({"can_create_group": false}),
    )
    .await;
    assert_eq!(
        (status, &settings["can_create_group"]),
        (200, &json!(false))
    );
    let (status, _) = call(
        &app,
        Method::POST,
        "/groups",
        &alice,
        json!({"name": "Two", "path": "two"}),
    )
    .await;
    assert_eq!(status, 403);
    // GET /user says so, as GitLab's `can_create_group` (an admin still may).
    let me: Value = app.get("/user", Some(&alice)).await.json().await.unwrap();
    assert_eq!(me["can_create_group"], false);
    let root_user: Value = app.root_json("/user").await;
    assert_eq!(root_user["can_create_group"], true);
    // Subgroups are the parent's Maintainers' to make; admins make anything.
    // The admin area's settings form turns it on again.
    let mut root = Browser::sign_in(&app, "root", crate::support::ROOT_PASSWORD).await;
    let page = root.get("/admin").await.body;
    assert!(
        page.contains(r#"name="can_create_group" value="true" >"#),
        "unchecked: {page}"
    );
    root.submit("/admin", "/admin/settings", &[("can_create_group", "true")])
        .await;
    let (status, _) = call(
        &app,
        Method::POST,
        "/groups",
        &alice,
        json!({"name": "Two", "path": "two"}),
    )
    .await;
    assert_eq!(status, 201);
    let me: Value = app.get("/user", Some(&alice)).await.json().await.unwrap();
    assert_eq!(me["can_create_group"], true);
    let sub = json!({"name": "Sub", "path": "sub", "parent_id": acme["id"]});
    assert_eq!(
        call(&app, Method::POST, "/groups", &alice, sub).await.0,
        201
    );
    let (status, _) = call(
        &app,
        Method::POST,
        "/groups",
        &app.root_token,
        json!({"name": "Ops", "path": "ops"}),
    )
    .await;
    assert_eq!(status, 201);
}

async fn a_trigger_token_stops_working_when_its_owner_leaves_the_group(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (_, owner) = app.create_user("owner").await;
    let (ops_id, ops) = app.create_user("ops").await;
    let (acme, _, api) = acme_backend_api(&app, &owner, tmp.path()).await;
    add_group_member(&app, &acme, &owner, ops_id, 40).await;
    let (status, trigger) = call(
        &app,
        Method::POST,
        "/projects/acme%2Fbackend%2Fapi/triggers",
        &ops,
        json!({"description": "deploy"}),
    )
    .await;
    assert_eq!(status, 201, "{trigger}");
    let token = trigger["token"].as_str().unwrap().to_string();
    let fire = || async {
        app.post(
            "/projects/acme%2Fbackend%2Fapi/trigger/pipeline",
            None,
            json!({"token": token, "ref": "main"}),
        )
        .await
    };
    let res = fire().await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    assert_eq!(pipeline["project_id"], api["id"]);

    let path = format!("/groups/{}/members/{ops_id}", acme["id"]);
    assert_eq!(
        call(&app, Method::DELETE, &path, &owner, json!({})).await.0,
        204
    );
    let res = fire().await;
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert!(
        (400..500).contains(&status) && body.contains("Insufficient permissions"),
        "{status} {body}"
    );
}

async fn a_bridge_triggers_a_project_in_a_subgroup_by_its_full_path(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (_, owner) = app.create_user("owner").await;
    let (acme, _, api) = acme_backend_api(&app, &owner, tmp.path()).await;
    let (status, web) = call(
        &app,
        Method::POST,
        "/projects",
        &owner,
        json!({"name": "web", "namespace_id": acme["id"]}),
    )
    .await;
    assert_eq!(status, 201, "{web}");
    let dir = tmp.path().join("web");
    std::fs::create_dir_all(&dir).unwrap();
    let work = local_repo(&dir, "deploy:\n  trigger:\n    project: acme/backend/api\n");
    let url = remote(&app, "owner", &owner, "acme/web");
    git_ok(&work, &dir, &["push", "-q", "-o", "ci.skip", &url, "main"]);
    let (status, pipeline) = call(
        &app,
        Method::POST,
        &format!("/projects/{}/pipeline", web["id"]),
        &owner,
        json!({"ref": "main"}),
    )
    .await;
    assert_eq!(status, 201, "{pipeline}");
    let (done, jobs) = finished_pipeline(&app, web["id"].as_i64().unwrap(), &pipeline).await;
    assert_eq!(done["status"], "success", "{jobs:#?}");
    let downstream: Vec<Value> = app
        .root_json(&format!("/projects/{}/pipelines", api["id"]))
        .await;
    assert_eq!(downstream.len(), 1, "{downstream:?}");
    assert_eq!(downstream[0]["source"], "pipeline");
}

async fn deleting_a_group_deletes_its_subgroups_and_projects(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (maintainer_id, maintainer) = app.create_user("maintainer").await;
    let (_, owner) = app.create_user("owner").await;
    let (acme, _, api) = acme_backend_api(&app, &owner, tmp.path()).await;
    add_group_member(&app, &acme, &owner, maintainer_id, 40).await;
    let group = format!("/groups/{}", acme["id"]);
    assert_eq!(
        call(&app, Method::DELETE, &group, &maintainer, json!({}))
            .await
            .0,
        403
    );
    let (status, body) = call(&app, Method::DELETE, &group, &owner, json!({})).await;
    assert_eq!((status, body), (202, json!({"message": "202 Accepted"})));
    let project = format!("/projects/{}", api["id"]);
    assert_eq!(app.get(&project, Some(&app.root_token)).await.status(), 404);
    assert_eq!(
        app.get("/groups/acme%2Fbackend", Some(&app.root_token))
            .await
            .status(),
        404
    );
    // The path is free again.
    create_group(&app, &owner, json!({"name": "Acme", "path": "acme"})).await;
}

async fn a_job_receives_group_variables_the_nearest_group_first(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (maintainer_id, maintainer) = app.create_user("maintainer").await;
    let (_, owner) = app.create_user("owner").await;
    let (acme, backend, api) = acme_backend_api(&app, &owner, tmp.path()).await;
    add_group_member(&app, &acme, &owner, maintainer_id, 40).await;
    let set = |target: String, key: &'static str, value: &'static str| {
        let owner = owner.clone();
        let app = &app;
        async move {
            let body = json!({"key": key, "value": value});
            let (status, v) = call(
                app,
                Method::POST,
                &format!("{target}/variables"),
                &owner,
                body,
            )
            .await;
            assert_eq!(status, 201, "{v}");
        }
    };
    let (status, _) = call(
        &app,
        Method::POST,
        "/admin/ci/variables",
        &app.root_token,
        json!({"key": "EVERYWHERE", "value": "instance"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &app,
        Method::POST,
        "/admin/ci/variables",
        &app.root_token,
        json!({"key": "REGION", "value": "instance"}),
    )
    .await;
    assert_eq!(status, 201);
    set(format!("/groups/{}", acme["id"]), "REGION", "acme").await;
    set(format!("/groups/{}", acme["id"]), "TIER", "acme").await;
    set(format!("/groups/{}", acme["id"]), "DEPLOY_TO", "acme").await;
    set(format!("/groups/{}", backend["id"]), "TIER", "backend").await;
    set(format!("/groups/{}", backend["id"]), "DEPLOY_TO", "backend").await;
    set(format!("/projects/{}", api["id"]), "DEPLOY_TO", "project").await;
    // Group variables are the group Owners' (a Maintainer is refused, a stranger never sees).
    let path = format!("/groups/{}/variables", acme["id"]);
    assert_eq!(
        call(&app, Method::GET, &path, &maintainer, json!({}))
            .await
            .0,
        403
    );
    let (status, listed) = call(&app, Method::GET, &path, &owner, json!({})).await;
    assert_eq!((status, listed.as_array().unwrap().len()), (200, 3));

    let runner = register_runner(&app).await;
    let (status, pipeline) = call(
        &app,
        Method::POST,
        &format!("/projects/{}/pipeline", api["id"]),
        &owner,
        json!({"ref": "main"}),
    )
    .await;
    assert_eq!(status, 201, "{pipeline}");
    let job = request(&app, &runner).await.expect("a pending job");
    let vars = vars(&job);
    let value = |k: &str| vars[k]["value"].as_str().unwrap().to_string();
    assert_eq!(value("EVERYWHERE"), "instance");
    assert_eq!(value("REGION"), "acme");
    assert_eq!(value("TIER"), "backend");
    assert_eq!(value("DEPLOY_TO"), "project");
}

async fn a_job_token_reaches_a_project_whose_allowlist_names_its_group(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (_, owner) = app.create_user("owner").await;
    let (acme, _, api) = acme_backend_api(&app, &owner, tmp.path()).await;
    let target = app.create_project(&owner, "target").await;
    let dir = tmp.path().join("target");
    std::fs::create_dir_all(&dir).unwrap();
    let work = local_repo(&dir, "deploy:\n  script: echo deploy\n");
    let url = remote(&app, "owner", &owner, "owner/target");
    git_ok(&work, &dir, &["push", "-q", "-o", "ci.skip", &url, "main"]);

    let runner = register_runner(&app).await;
    let path = format!("/projects/{}/pipeline", api["id"]);
    assert_eq!(
        call(&app, Method::POST, &path, &owner, json!({"ref": "main"}))
            .await
            .0,
        201
    );
    let job = request(&app, &runner).await.expect("a pending job");
    let job_token = job["token"].as_str().unwrap().to_string();
    let trigger = || async {
        app.post(
            &format!("/projects/{}/trigger/pipeline", target["id"]),
            None,
            json!({"token": job_token, "ref": "main"}),
        )
        .await
        .status()
        .as_u16()
    };
    // The target's scope is on (GitLab's default) and names nothing: not found.
    assert_eq!(trigger().await, 404);
    let scope = format!(
        "/projects/{}/job_token_scope/groups_allowlist",
        target["id"]
    );
    let (status, link) = call(
        &app,
        Method::POST,
        &scope,
        &owner,
        json!({"target_group_id": acme["id"]}),
    )
    .await;
    assert_eq!(
        (status, link),
        (
            201,
            json!({"source_project_id": target["id"], "target_group_id": acme["id"]})
        )
    );
    // A job of a project in a subgroup of the named group is let in.
    assert_eq!(trigger().await, 201);
    let (_, listed) = call(&app, Method::GET, &scope, &owner, json!({})).await;
    assert_eq!(listed[0]["id"], acme["id"]);
    let remove = format!("{scope}/{}", acme["id"]);
    assert_eq!(
        call(&app, Method::DELETE, &remove, &owner, json!({}))
            .await
            .0,
        204
    );
    assert_eq!(trigger().await, 404);
}

async fn a_group_runner_takes_jobs_of_every_project_below_its_group(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (maintainer_id, maintainer) = app.create_user("maintainer").await;
    let (_, owner) = app.create_user("owner").await;
    let (acme, _, api) = acme_backend_api(&app, &owner, tmp.path()).await;
    add_group_member(&app, &acme, &owner, maintainer_id, 40).await;
    let outside = app.create_project(&owner, "outside").await;
    let dir = tmp.path().join("outside");
    std::fs::create_dir_all(&dir).unwrap();
    let work = local_repo(&dir, "build:\n  script: echo build\n");
    let url = remote(&app, "owner", &owner, "owner/outside");
    git_ok(&work, &dir, &["push", "-q", "-o", "ci.skip", &url, "main"]);

    let body = json!({"runner_type": "group_type", "group_id": acme["id"]});
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/user/runners",
            &maintainer,
            body.clone()
        )
        .await
        .0,
        403
    );
    let (status, runner) = call(&app, Method::POST, "/user/runners", &owner, body).await;
    assert_eq!(status, 201, "{runner}");
    let token = runner["token"].as_str().unwrap().to_string();
    let (_, details) = call(
        &app,
        Method::GET,
        &format!("/runners/{}", runner["id"]),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(details["runner_type"], "group_type");
    assert_eq!(details["groups"], json!([{"id": acme["id"]}]));

    for project in [&outside, &api] {
        let path = format!("/projects/{}/pipeline", project["id"]);
        assert_eq!(
            call(&app, Method::POST, &path, &owner, json!({"ref": "main"}))
                .await
                .0,
            201
        );
    }
    let job = request(&app, &token)
        .await
        .expect("the subgroup project's job");
    assert_eq!(job["job_info"]["project_id"], api["id"]);
    assert!(
        request(&app, &token).await.is_none(),
        "not the job of a project outside"
    );
}

async fn a_user_creates_a_group_and_a_subgroup_through_the_pages(app: TestApp) {
    app.create_user("alice").await;
    let mut alice = Browser::sign_in(&app, "alice", "a-long-password").await;
    // `/groups/new` is the form, not a group called "new" (the wildcard group page comes after).
    let form = alice.get("/groups/new").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("Create group"), "{}", form.body);
    assert!(form.body.contains(r#"data-path-source="group_path""#));
    let page = alice
        .submit(
            "/groups/new",
            "/groups",
            &[
                ("name", "Acme Corp"),
                ("path", "acme"),
                ("visibility", "internal"),
                ("description", "Everything Acme"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/groups/acme"));
    let shown = alice.get("/groups/acme").await;
    assert!(
        shown
            .body
            .contains("Group &#39;Acme Corp&#39; was successfully created.")
            || shown
                .body
                .contains("Group 'Acme Corp' was successfully created."),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("Everything Acme"));
    let acme: Value = app.root_json("/groups/acme").await;
    assert_eq!(acme["visibility"], "internal");
    // The parent list offers the group alice owns; the subgroup lands under it.
    let form = alice
        .get(&format!("/groups/new?parent_id={}", acme["id"]))
        .await;
    assert!(
        form.body.contains(&format!(
            r#"<option value="{}" selected>acme</option>"#,
            acme["id"]
        )),
        "{}",
        form.body
    );
    let parent = acme["id"].to_string();
    let form = [
        ("name", "Backend"),
        ("path", "backend"),
        ("parent_id", parent.as_str()),
        ("visibility", "private"),
    ];
    let page = alice.submit("/groups/new", "/groups", &form).await;
    assert_eq!(page.location.as_deref(), Some("/groups/acme/backend"));
    assert_eq!(alice.get("/groups/acme/backend").await.status, 200);
    // GitLab's validation messages come back as a flash on the form: a taken path, a
    // visibility the parent does not allow.
    let page = alice.submit("/groups/new", "/groups", &form).await;
    assert_eq!(
        page.location.as_deref(),
        Some(&*format!("/groups/new?parent_id={parent}"))
    );
    let again = alice.get("/groups/new").await.body;
    assert!(again.contains("Path has already been taken."), "{again}");
    let loud = [
        ("name", "Loud"),
        ("path", "loud"),
        ("parent_id", parent.as_str()),
        ("visibility", "public"),
    ];
    alice.submit("/groups/new", "/groups", &loud).await;
    let again = alice.get("/groups/new").await.body;
    assert!(
        again.contains("public is not allowed since the parent group has a internal visibility."),
        "{again}"
    );
    let odd = [("name", "Odd"), ("path", "odd"), ("visibility", "secret")];
    alice.submit("/groups/new", "/groups", &odd).await;
    let again = alice.get("/groups/new").await.body;
    assert!(
        again.contains("Visibility level is not included in the list."),
        "{again}"
    );
    // A group page links to the form for a subgroup.
    assert!(
        alice
            .get("/groups/acme")
            .await
            .body
            .contains(&format!("/groups/new?parent_id={parent}"))
    );
}

async fn the_new_group_page_follows_can_create_group(app: TestApp) {
    app.create_user("alice").await;
    let (_, bob) = app.create_user("bob").await;
    let acme = create_group(&app, &bob, json!({"name": "Acme", "path": "acme"})).await;
    let (status, _) = call(
        &app,
        Method::PUT,
        "/application/settings",
        &app.root_token,
        json!({"can_create_group": false}),
    )
    .await;
    assert_eq!(status, 200);
    // alice may create no group at all: GitLab's `authorize_create_group!` answers 404.
    let mut alice = Browser::sign_in(&app, "alice", "a-long-password").await;
    assert_eq!(alice.get("/groups/new").await.status, 404);
    // bob may still create subgroups of his group, not top-level groups.
    let mut bob_pages = Browser::sign_in(&app, "bob", "a-long-password").await;
    let form = bob_pages.get("/groups/new").await;
    assert_eq!(form.status, 200);
    assert!(!form.body.contains("(top level)"), "{}", form.body);
    let page = bob_pages
        .submit(
            "/groups/new",
            "/groups",
            &[("name", "Two"), ("path", "two")],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/groups/new"));
    let again = bob_pages.get("/groups/new").await.body;
    assert!(again.contains("403 Forbidden"), "{again}");
    let (status, _) = call(&app, Method::GET, "/groups/two", &app.root_token, json!({})).await;
    assert_eq!(status, 404);
    let parent = acme["id"].to_string();
    let page = bob_pages
        .submit(
            "/groups/new",
            "/groups",
            &[("name", "Sub"), ("path", "sub"), ("parent_id", &parent)],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/groups/acme/sub"));
    // An admin, no member of acme, is offered it from its "New subgroup" link.
    let mut root = Browser::sign_in(&app, "root", crate::support::ROOT_PASSWORD).await;
    let form = root
        .get(&format!("/groups/new?parent_id={parent}"))
        .await
        .body;
    assert!(
        form.contains(&format!(
            r#"<option value="{parent}" selected>acme</option>"#
        )),
        "{form}"
    );
    assert!(form.contains("(top level)"));
}

async fn an_owner_adds_a_group_variable_on_the_settings_page_and_a_job_receives_it(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (_, owner) = app.create_user("owner").await;
    let (acme, backend, api) = acme_backend_api(&app, &owner, tmp.path()).await;
    let mut pages = Browser::sign_in(&app, "owner", "a-long-password").await;
    // The subgroup's page by its full path (`/groups/acme/backend/-/…`).
    let settings = "/groups/acme/backend/-/settings/ci_cd";
    let page = pages.get(settings).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("CI/CD Settings"));
    let form = [
        ("key", "DEPLOY_REGION"),
        ("value", "eu-west"),
        ("masked", "false"),
    ];
    let added = pages
        .submit(settings, &format!("{settings}/variables"), &form)
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(
        added.location.as_deref(),
        Some("/groups/acme/backend/-/settings/ci_cd#js-cicd-variables-settings")
    );
    let page = pages.get(settings).await.body;
    assert!(page.contains("Variable was added."), "{page}");
    assert!(page.contains("<code>DEPLOY_REGION</code>"), "{page}");
    // The API lists what the page added, on the subgroup and not on its parent.
    let listed = |id: &Value| format!("/groups/{id}/variables");
    let (_, vars_of_backend) = call(
        &app,
        Method::GET,
        &listed(&backend["id"]),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(vars_of_backend[0]["key"], "DEPLOY_REGION");
    let (_, vars_of_acme) = call(&app, Method::GET, &listed(&acme["id"]), &owner, json!({})).await;
    assert_eq!(vars_of_acme, json!([]));
    // A bad key comes back as the API's refusal, nothing stored.
    pages
        .submit(
            settings,
            &format!("{settings}/variables"),
            &[("key", "NO SPACES"), ("value", "x")],
        )
        .await;
    let page = pages.get(settings).await.body;
    assert!(page.contains("flash-alert"), "{page}");
    // A job of a project below the subgroup receives it.
    let runner = register_runner(&app).await;
    let (status, pipeline) = call(
        &app,
        Method::POST,
        &format!("/projects/{}/pipeline", api["id"]),
        &owner,
        json!({"ref": "main"}),
    )
    .await;
    assert_eq!(status, 201, "{pipeline}");
    let job = request(&app, &runner).await.expect("a pending job");
    assert_eq!(vars(&job)["DEPLOY_REGION"]["value"], "eu-west");
    // The page lists the runners the group's projects can use, and removes the variable.
    assert!(
        pages
            .get(settings)
            .await
            .body
            .contains(&format!("#{}", runner_id(&app).await))
    );
    let removed = [("_method", "delete"), ("key", "DEPLOY_REGION")];
    pages
        .submit(settings, &format!("{settings}/variables"), &removed)
        .await;
    let (_, after) = call(
        &app,
        Method::GET,
        &listed(&backend["id"]),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(after, json!([]));
}

/// The id of the one runner registered so far.
async fn runner_id(app: &TestApp) -> i64 {
    let runners: Value = app.root_json("/runners/all").await;
    runners[0]["id"].as_i64().unwrap()
}

async fn only_group_owners_see_the_group_ci_cd_settings_page(app: TestApp) {
    let (_, owner) = app.create_user("owner").await;
    let (maintainer_id, _) = app.create_user("maintainer").await;
    app.create_user("stranger").await;
    let acme = create_group(
        &app,
        &owner,
        json!({"name": "Acme", "path": "acme", "visibility": "public"}),
    )
    .await;
    call(
        &app,
        Method::POST,
        &format!("/groups/{}/variables", acme["id"]),
        &owner,
        json!({"key": "SECRET_TOKEN", "value": "s3cr3t-value"}),
    )
    .await;
    add_group_member(&app, &acme, &owner, maintainer_id, 40).await;
    let settings = "/groups/acme/-/settings/ci_cd";
    // A Maintainer and a stranger get 404 (GitLab hides it), on the page and the form, and
    // never see the value; a visitor is asked to sign in.
    for who in ["maintainer", "stranger"] {
        let mut pages = Browser::sign_in(&app, who, "a-long-password").await;
        let page = pages.get(settings).await;
        assert_eq!(page.status, 404, "{who}");
        assert!(!page.body.contains("s3cr3t-value"));
        let form = [("key", "PLANTED"), ("value", "x")];
        let posted = pages
            .submit("/groups/acme", &format!("{settings}/variables"), &form)
            .await;
        assert_eq!(posted.status, 404, "{who}");
        assert!(!pages.get("/groups/acme").await.body.contains(settings));
    }
    let visitor = Browser::new(&app).get(settings).await;
    assert_eq!(visitor.status, 303);
    assert!(visitor.location.unwrap().starts_with("/users/sign_in"));
    let (_, listed) = call(
        &app,
        Method::GET,
        &format!("/groups/{}/variables", acme["id"]),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // The owner's group page links the settings page.
    let mut pages = Browser::sign_in(&app, "owner", "a-long-password").await;
    assert!(pages.get("/groups/acme").await.body.contains(settings));
    assert!(pages.get(settings).await.body.contains("s3cr3t-value"));
}

/// 3 subgroups and 22 projects are one list of 25, subgroups first: page 1 holds the subgroups
/// and 17 projects, page 2 the last 5. 22 members page on their own, keeping the other list's
/// page in their links.
async fn the_group_page_lists_subgroups_projects_and_members_twenty_a_page(app: TestApp) {
    let (_, owner) = app.create_user("owner").await;
    let acme = create_group(&app, &owner, json!({"name": "Acme", "path": "acme"})).await;
    for i in 1..=3 {
        let name = format!("s-{i:02}");
        let body = json!({"name": name, "path": name, "parent_id": acme["id"]});
        create_group(&app, &owner, body).await;
    }
    for i in 1..=22 {
        create_project(&app, &owner, &format!("p-{i:02}"), &acme).await;
    }
    for i in 1..=21 {
        let (id, _) = app.create_user(&format!("m-{i:02}")).await;
        add_group_member(&app, &acme, &owner, id, 10).await;
    }
    let mut browser = Browser::sign_in(&app, "owner", "a-long-password").await;
    let first = browser.get("/groups/acme").await.body;
    let shows = |page: &str, label: &str| page.contains(&format!(">{label}</a>"));
    for label in ["s-01", "s-03", "p-01", "p-17"] {
        assert!(shows(&first, label), "page 1 shows {label}: {first}");
    }
    assert!(!shows(&first, "p-18"), "{first}");
    assert!(
        first.contains(r#"href="/groups/acme?page=2" rel="next""#),
        "{first}"
    );
    let second = browser.get("/groups/acme?page=2").await.body;
    for label in ["p-18", "p-22"] {
        assert!(shows(&second, label), "page 2 shows {label}: {second}");
    }
    for label in ["s-03", "p-17"] {
        assert!(
            !shows(&second, label),
            "page 2 leaves out {label}: {second}"
        );
    }
    assert!(
        second.contains(r#"href="/groups/acme" rel="prev""#),
        "{second}"
    );
    assert!(!second.contains(r#"?page=3"#), "{second}");

    // Members: the owner and 21 more, by when they joined; the second page keeps `page=2`.
    let member = |page: &str, name: &str| page.contains(&format!("<td>{name}</td>"));
    assert!(
        member(&second, "owner") && member(&second, "m-19"),
        "{second}"
    );
    assert!(!member(&second, "m-20"), "{second}");
    let next = r#"href="/groups/acme?page=2&#38;members_page=2" rel="next""#;
    assert!(second.contains(next), "{second}");
    let members_2 = browser.get("/groups/acme?page=2&members_page=2").await.body;
    assert!(
        member(&members_2, "m-20") && member(&members_2, "m-21"),
        "{members_2}"
    );
    assert!(!member(&members_2, "m-19"), "{members_2}");
    assert!(
        shows(&members_2, "p-18"),
        "the other list stays on its page"
    );
    let bad = browser.get("/groups/acme?page=-1&members_page=x").await;
    assert_eq!(bad.status, 200, "a nonsense page is the first");
}

/// GitLab's app/policies/group_policy.rb gives `read_group_runners` to Maintainers, and
/// keeps registering, changing and removing group runners (`admin_runner`, `create_runner`)
/// to Owners: `GET /groups/:id/runners` lists the instance's runners and those of the group
/// and its ancestors (lib/api/ci/runners.rb).
async fn group_maintainers_read_the_groups_runners_but_only_owners_change_them(app: TestApp) {
    let (_, owner) = app.create_user("owner").await;
    let (maintainer_id, maintainer) = app.create_user("maintainer").await;
    let (developer_id, developer) = app.create_user("developer").await;
    let (_, outsider) = app.create_user("outsider").await;
    let acme = create_group(
        &app,
        &owner,
        json!({"name": "Acme", "path": "acme", "visibility": "private"}),
    )
    .await;
    let backend = create_group(
        &app,
        &owner,
        json!({"name": "Backend", "path": "backend", "parent_id": acme["id"]}),
    )
    .await;
    let other = create_group(&app, &owner, json!({"name": "Other", "path": "other"})).await;
    add_group_member(&app, &acme, &owner, maintainer_id, 40).await;
    add_group_member(&app, &acme, &owner, developer_id, 30).await;
    let root = app.root_token.clone();
    let mut ids = Vec::new();
    for (token, body) in [
        (&root, json!({"runner_type": "instance_type"})),
        (
            &owner,
            json!({"runner_type": "group_type", "group_id": acme["id"]}),
        ),
        (
            &owner,
            json!({"runner_type": "group_type", "group_id": other["id"]}),
        ),
    ] {
        let (status, runner) = call(&app, Method::POST, "/user/runners", token, body).await;
        assert_eq!(status, 201, "{runner}");
        ids.push(runner["id"].clone());
    }
    let (instance, acme_runner) = (&ids[0], &ids[1]);

    let listing = format!("/groups/{}/runners", backend["id"]);
    let (status, listed) = call(&app, Method::GET, &listing, &maintainer, json!({})).await;
    assert_eq!(status, 200, "{listed}");
    let listed: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(
        listed,
        [instance, acme_runner],
        "not the other group's runner"
    );
    let runner = format!("/runners/{acme_runner}");
    let (status, details) = call(&app, Method::GET, &runner, &maintainer, json!({})).await;
    assert_eq!(
        (status, &details["runner_type"]),
        (200, &json!("group_type"))
    );
    // Reading is all: changing, removing and registering stay the Owners'.
    let pause = json!({"paused": true});
    assert_eq!(
        call(&app, Method::PUT, &runner, &maintainer, pause).await.0,
        403
    );
    assert_eq!(
        call(&app, Method::DELETE, &runner, &maintainer, json!({}))
            .await
            .0,
        403
    );
    let body = json!({"runner_type": "group_type", "group_id": acme["id"]});
    assert_eq!(
        call(&app, Method::POST, "/user/runners", &maintainer, body)
            .await
            .0,
        403
    );

    // Developers may not read them; who cannot see the private group gets 404.
    assert_eq!(
        call(&app, Method::GET, &listing, &developer, json!({}))
            .await
            .0,
        403
    );
    assert_eq!(
        call(&app, Method::GET, &runner, &developer, json!({}))
            .await
            .0,
        403
    );
    let (status, body) = call(&app, Method::GET, &listing, &outsider, json!({})).await;
    assert_eq!(
        (status, body),
        (404, json!({"message": "404 Group Not Found"}))
    );
    let (status, _) = call(&app, Method::GET, &listing, &owner, json!({})).await;
    assert_eq!(status, 200);
}
