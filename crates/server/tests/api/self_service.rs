//! Self-service in the web UI (issue 17): what a team member does for themselves without an
//! administrator — personal access tokens, password, profile, sign-up, new projects, project
//! settings, members and protected branches — and the token rotation API behind it.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::TestApp;
use crate::web::Browser;

both_backends!(
    a_user_creates_uses_rotates_and_revokes_a_token_on_the_page,
    the_api_rotates_a_token_as_gitlab_16_does,
    the_token_page_pages_through_every_token_newest_first,
    a_user_changes_their_password_and_every_session_ends,
    a_user_edits_their_profile_with_gitlabs_validations,
    sign_up_is_off_until_an_administrator_turns_it_on,
    sign_ups_from_one_address_are_throttled,
    a_user_creates_a_project_with_a_readme_and_clones_it_at_once,
    maintainers_manage_members_by_gitlabs_rules,
    the_members_page_pages_through_every_member,
    a_protected_branch_refuses_a_developers_push_until_unprotected,
    owners_edit_and_delete_their_project,
);

const PASSWORD: &str = "a-long-password";
const TOKENS: &str = "/-/user_settings/personal_access_tokens";

/// The value of the read-only field that shows a new token once.
fn shown_token(body: &str) -> String {
    let marker = "data-testid=\"created-token\" type=\"text\" readonly value=\"";
    let start = body.find(marker).expect("the new token is shown") + marker.len();
    let end = body[start..].find('"').unwrap();
    body[start..start + end].to_string()
}

/// Follows a form's redirect and returns the page it lands on.
async fn landed(browser: &mut Browser, page: crate::web::Page) -> crate::web::Page {
    assert_eq!(page.status, 303, "{}", page.body);
    browser.get(page.location.as_deref().unwrap()).await
}

/// Submits a form from the page at `from` and follows its redirect.
async fn follow(
    browser: &mut Browser,
    from: &str,
    path: &str,
    form: &[(&str, &str)],
) -> crate::web::Page {
    let page = browser.submit(from, path, form).await;
    landed(browser, page).await
}

async fn whoami(app: &TestApp, token: &str) -> reqwest::Response {
    app.get("/user", Some(token)).await
}

async fn a_user_creates_uses_rotates_and_revokes_a_token_on_the_page(app: TestApp) {
    let (_, _) = app.create_user("alice").await;
    let (_, bobs_token) = app.create_user("bob").await;
    let mut alice = Browser::sign_in(&app, "alice", PASSWORD).await;

    let page = alice.get(TOKENS).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Add a personal access token"));
    assert!(!page.body.contains("value=\"sudo\""), "sudo is for admins");

    // Created: shown once, and it works with the API as alice.
    let page = alice
        .submit(
            TOKENS,
            TOKENS,
            &[("name", "laptop"), ("scopes[]", "api"), ("expires_at", "")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = shown_token(&page.body);
    assert!(token.starts_with("glpat-"), "{token}");
    let me: Value = whoami(&app, &token).await.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    let page = alice.get(TOKENS).await;
    assert!(!page.body.contains(&token), "the token is shown only once");
    assert!(page.body.contains("laptop"));

    // GitLab's validation messages; an administrator's scope is refused to a user.
    let page = alice.submit(TOKENS, TOKENS, &[("name", " ")]).await;
    let page = landed(&mut alice, page).await;
    assert!(
        page.body.contains("Name can&#39;t be blank"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Scopes can&#39;t be blank"));
    let form = [("name", "root-ish"), ("scopes[]", "sudo")];
    let page = alice.submit(TOKENS, TOKENS, &form).await;
    let page = landed(&mut alice, page).await;
    assert!(
        page.body
            .contains("Scopes can only contain available scopes")
    );
    let form = [
        ("name", "old"),
        ("scopes[]", "api"),
        ("expires_at", "2001-01-01"),
    ];
    let page = alice.submit(TOKENS, TOKENS, &form).await;
    let page = landed(&mut alice, page).await;
    assert!(page.body.contains("Expires at must be in the future"));

    // Rotated: a new token shown once, the old one stops working at once.
    let id = token_id(&app, &token).await;
    let page = alice
        .submit(TOKENS, &format!("{TOKENS}/{id}/rotate"), &[])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let rotated = shown_token(&page.body);
    assert_ne!(rotated, token);
    assert_eq!(whoami(&app, &rotated).await.status(), 200);

    // Revoked.
    let new_id = token_id(&app, &rotated).await;
    let page = alice
        .submit(TOKENS, &format!("{TOKENS}/{new_id}/revoke"), &[])
        .await;
    let page = landed(&mut alice, page).await;
    assert!(page.body.contains("Revoked personal access token laptop!"));
    assert_eq!(whoami(&app, &rotated).await.status(), 401);
    assert_eq!(
        whoami(&app, &token).await.status(),
        401,
        "rotation revoked it"
    );

    // Someone else's token is not alice's to rotate or revoke, nor is a forged form.
    let bobs_id = token_id(&app, &bobs_token).await;
    for action in ["rotate", "revoke"] {
        let path = format!("{TOKENS}/{bobs_id}/{action}");
        assert_eq!(alice.submit(TOKENS, &path, &[]).await.status, 404);
    }
    assert_eq!(whoami(&app, &bobs_token).await.status(), 200);
    let forged = alice
        .post(TOKENS, &[("name", "x"), ("scopes[]", "api")])
        .await;
    assert_ne!(forged.status, 200, "no token without the form's CSRF token");

    // Signed out, the page asks to sign in.
    let page = Browser::new(&app).get(TOKENS).await;
    assert!(page.location.unwrap().starts_with("/users/sign_in"));
}

async fn the_token_page_pages_through_every_token_newest_first(app: TestApp) {
    let (alice_id, _) = app.create_user("alice").await;
    // 120 more tokens, made in the store (the API would hash and check each one).
    for n in 0..120 {
        let token = pipewright_store::NewPersonalAccessToken {
            user_id: alice_id,
            name: format!("token-{n:03}"),
            token_digest: format!("{n:064x}"),
            scopes: vec!["read_api".into()],
            expires_at: None,
        };
        app.store
            .create_personal_access_token(&token)
            .await
            .unwrap();
    }
    let mut alice = Browser::sign_in(&app, "alice", PASSWORD).await;
    let named = |n: u32| format!("<td>token-{n:03}</td>");
    let page = alice.get(TOKENS).await;
    assert!(
        page.body.contains(&named(119)),
        "the newest first: {}",
        page.body
    );
    assert!(page.body.contains(&named(100)));
    assert!(!page.body.contains(&named(99)), "twenty a page");
    assert!(
        page.body
            .contains(&format!(r#"href="{TOKENS}?page=2" rel="next""#))
    );
    assert!(!page.body.contains(r#"rel="prev""#));
    let page = alice.get(&format!("{TOKENS}?page=2")).await;
    assert!(page.body.contains(&named(99)) && page.body.contains(&named(80)));
    assert!(!page.body.contains(&named(100)) && !page.body.contains(&named(79)));
    assert!(
        page.body
            .contains(&format!(r#"href="{TOKENS}" rel="prev""#))
    );
    // 121 tokens: the seventh page holds the oldest, the one `create_user` made.
    let page = alice.get(&format!("{TOKENS}?page=6")).await;
    assert!(page.body.contains(&named(19)) && page.body.contains(&named(0)));
    let page = alice.get(&format!("{TOKENS}?page=7")).await;
    assert!(page.body.contains("<td>test</td>"), "{}", page.body);
    assert!(!page.body.contains(r#"rel="next""#));
    // Past the end, and nonsense, are pages too.
    let page = alice.get(&format!("{TOKENS}?page=8")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("This user has no active personal access tokens.")
    );
    let page = alice.get(&format!("{TOKENS}?page=-1")).await;
    assert!(page.body.contains(&named(119)));
}

async fn token_id(app: &TestApp, token: &str) -> i64 {
    let res = app.get("/personal_access_tokens/self", Some(token)).await;
    let body: Value = res.json().await.unwrap();
    body["id"].as_i64().expect("token id")
}

async fn the_api_rotates_a_token_as_gitlab_16_does(app: TestApp) {
    let (alice_id, token) = app.create_user("alice").await;
    let (_, bobs_token) = app.create_user("bob").await;
    let id = token_id(&app, &token).await;

    // The owner rotates: 200, the same name and scopes, a week's expiry, the old one revoked.
    let res = app
        .post(
            &format!("/personal_access_tokens/{id}/rotate"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let week = pipewright_core::Timestamp(
        pipewright_core::Timestamp::now().millis() + 7 * 24 * 3600 * 1000,
    );
    assert_eq!(body["name"], "test");
    assert_eq!(body["scopes"], json!(["api"]));
    assert_eq!(body["user_id"], alice_id);
    assert_eq!(body["expires_at"], week.to_date_string());
    assert_eq!(body["revoked"], false);
    let new = body["token"].as_str().unwrap().to_string();
    assert_eq!(whoami(&app, &new).await.status(), 200);
    // GitLab's reuse detection: the old token in use again (it may have leaked) is refused,
    // and revokes what rotation made from it.
    assert_eq!(whoami(&app, &token).await.status(), 401);
    assert_eq!(
        whoami(&app, &new).await.status(),
        401,
        "the family is revoked"
    );
    let res = app
        .post(
            &format!("/users/{alice_id}/personal_access_tokens"),
            Some(&app.root_token),
            json!({"name": "fresh", "scopes": ["api"]}),
        )
        .await;
    let fresh: Value = res.json().await.unwrap();
    let new = fresh["token"].as_str().unwrap().to_string();

    // The revoked token cannot be rotated again (an administrator asks, so it is found).
    let res = app
        .post(
            &format!("/personal_access_tokens/{id}/rotate"),
            Some(&app.root_token),
            json!({}),
        )
        .await;
    crate::support::assert_json(
        res,
        400,
        json!({"message": "400 Bad request - token already revoked"}),
    )
    .await;

    // Another user's token is not found; an expiry is taken as given.
    let new_id = token_id(&app, &new).await;
    let path = format!("/personal_access_tokens/{new_id}/rotate");
    assert_eq!(
        app.post(&path, Some(&bobs_token), json!({})).await.status(),
        404
    );
    let res = app
        .post(&path, Some(&new), json!({"expires_at": "2099-01-31"}))
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_at"], "2099-01-31");
    let res = app
        .post(
            &path,
            Some(&app.root_token),
            json!({"expires_at": "2001-01-01"}),
        )
        .await;
    assert_eq!(res.status(), 400, "a rotated token never starts expired");

    // `self/rotate` with a token scoped `self_rotate` only: that token, and nothing else.
    let res = app
        .post(
            &format!("/users/{alice_id}/personal_access_tokens"),
            Some(&app.root_token),
            json!({"name": "rotor", "scopes": ["self_rotate"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let rotor: Value = res.json().await.unwrap();
    let rotor = rotor["token"].as_str().unwrap();
    let res = app
        .post(
            "/personal_access_tokens/self/rotate",
            Some(rotor),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scopes"], json!(["self_rotate"]));
    let next = body["token"].as_str().unwrap();
    assert_eq!(
        app.post("/projects", Some(next), json!({"name": "x"}))
            .await
            .status(),
        403
    );
    assert_eq!(whoami(&app, rotor).await.status(), 401);
}

async fn a_user_changes_their_password_and_every_session_ends(app: TestApp) {
    app.create_user("alice").await;
    let mut laptop = Browser::sign_in(&app, "alice", PASSWORD).await;
    let mut phone = Browser::sign_in(&app, "alice", PASSWORD).await;
    const EDIT: &str = "/-/user_settings/password/edit";
    const UPDATE: &str = "/-/user_settings/password";

    // A wrong current password is refused, and counts towards the sign-in lockout.
    let form = [
        ("user[password]", "not-my-password"),
        ("user[new_password]", "a-newer-password"),
        ("user[password_confirmation]", "a-newer-password"),
    ];
    let page = laptop.submit(EDIT, UPDATE, &form).await;
    let page = landed(&mut laptop, page).await;
    assert!(
        page.body
            .contains("You must provide a valid current password")
    );
    // GitLab's rules for the new one.
    let form = [
        ("user[password]", PASSWORD),
        ("user[new_password]", "short"),
        ("user[password_confirmation]", "shorter"),
    ];
    let page = laptop.submit(EDIT, UPDATE, &form).await;
    let page = landed(&mut laptop, page).await;
    assert!(
        page.body
            .contains("Password is too short (minimum is 8 characters)")
    );
    assert!(
        page.body
            .contains("Password confirmation doesn&#39;t match Password")
    );

    let form = [
        ("user[password]", PASSWORD),
        ("user[new_password]", "a-newer-password"),
        ("user[password_confirmation]", "a-newer-password"),
    ];
    let page = laptop.submit(EDIT, UPDATE, &form).await;
    assert_eq!(page.location.as_deref(), Some("/users/sign_in"));
    // Both sessions ended; the old password no longer signs in, the new one does.
    for browser in [&mut laptop, &mut phone] {
        let page = browser.get("/").await;
        assert!(page.location.unwrap().starts_with("/users/sign_in"));
    }
    let page = Browser::new(&app).sign_in_as("alice", PASSWORD).await;
    assert_eq!(page.status, 401);
    Browser::sign_in(&app, "alice", "a-newer-password").await;
}

async fn a_user_edits_their_profile_with_gitlabs_validations(app: TestApp) {
    app.create_user("alice").await;
    app.create_user("bob").await;
    let mut alice = Browser::sign_in(&app, "alice", PASSWORD).await;
    const PROFILE: &str = "/-/user_settings/profile";
    let page = alice.get(PROFILE).await;
    assert!(page.body.contains("alice@example.com"));

    let form = [
        ("user[name]", "Alice Liddell"),
        ("user[email]", "alice@example.com"),
    ];
    let page = follow(&mut alice, PROFILE, PROFILE, &form).await;
    assert!(page.body.contains("Profile was successfully updated"));
    assert!(page.body.contains("value=\"Alice Liddell\""));

    let form = [("user[name]", ""), ("user[email]", "not-an-email")];
    let page = follow(&mut alice, PROFILE, PROFILE, &form).await;
    assert!(
        page.body.contains("Name can&#39;t be blank"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Email is invalid"));

    // A new email needs the current password; a taken one is GitLab's sentence.
    let form = [("user[name]", "Alice"), ("user[email]", "new@example.com")];
    let page = follow(&mut alice, PROFILE, PROFILE, &form).await;
    assert!(
        page.body
            .contains("You must provide a valid current password")
    );
    let form = [
        ("user[name]", "Alice"),
        ("user[email]", "bob@example.com"),
        ("user[validation_password]", PASSWORD),
    ];
    let page = follow(&mut alice, PROFILE, PROFILE, &form).await;
    assert!(page.body.contains("Email has already been taken"));
    let form = [
        ("user[name]", "Alice"),
        ("user[email]", "new@example.com"),
        ("user[validation_password]", PASSWORD),
    ];
    follow(&mut alice, PROFILE, PROFILE, &form).await;
    let me: Value = app.root_json("/users?username=alice").await;
    assert_eq!(me[0]["email"], "new@example.com");
}

async fn sign_up_is_off_until_an_administrator_turns_it_on(app: TestApp) {
    let mut visitor = Browser::new(&app);
    assert_eq!(visitor.get("/users/sign_up").await.status, 404);
    assert!(
        !visitor
            .get("/users/sign_in")
            .await
            .body
            .contains("Register now")
    );

    let res = app
        .request(
            reqwest::Method::PUT,
            "/application/settings",
            Some(&app.root_token),
            Some(json!({"signup_enabled": true})),
        )
        .await;
    let settings: Value = res.json().await.unwrap();
    assert_eq!(settings["signup_enabled"], true);
    assert!(
        visitor
            .get("/users/sign_in")
            .await
            .body
            .contains("Register now")
    );

    // GitLab's validations, the form kept.
    let bad = [
        ("new_user[name]", "Carol"),
        ("new_user[username]", "-carol"),
        ("new_user[email]", "carol@example.com"),
        ("new_user[password]", "short"),
    ];
    let page = sign_up(&mut visitor, &bad).await;
    assert_eq!(page.status, 422);
    assert!(
        page.body
            .contains("Password is too short (minimum is 8 characters)")
    );
    assert!(page.body.contains("value=\"carol@example.com\""));
    // Without the form's token, nothing is made.
    let forged = visitor.post("/users", &bad[..2]).await;
    assert_ne!(forged.status, 303);

    let good = [
        ("new_user[name]", "Carol"),
        ("new_user[username]", "carol"),
        ("new_user[email]", "carol@example.com"),
        ("new_user[password]", PASSWORD),
        ("new_user[admin]", "true"),
    ];
    let page = sign_up(&mut visitor, &good).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let home = visitor.get("/").await;
    assert_eq!(home.status, 200, "signed in at once");
    assert!(home.body.contains("@carol"));
    let carol: Value = app.root_json("/users?username=carol").await;
    assert_eq!(
        carol[0]["is_admin"], false,
        "nobody signs up as an administrator"
    );
    let mut again = Browser::new(&app);
    let mut taken = good;
    taken[2] = ("new_user[email]", "carol2@example.com");
    let page = sign_up(&mut again, &taken).await;
    assert!(page.body.contains("Username has already been taken"));
    // A name the server's own pages use is nobody's (GitLab's reserved top-level routes).
    taken[1] = ("new_user[username]", "Projects");
    let page = sign_up(&mut again, &taken).await;
    assert!(
        page.body.contains("Username Projects is a reserved name"),
        "{}",
        page.body
    );
}

async fn sign_ups_from_one_address_are_throttled(app: TestApp) {
    let res = app
        .request(
            reqwest::Method::PUT,
            "/application/settings",
            Some(&app.root_token),
            Some(json!({"signup_enabled": true})),
        )
        .await;
    assert_eq!(res.status(), 200);
    // Every attempt counts, refused or not: a script cannot probe usernames without bound.
    let mut visitor = Browser::new(&app);
    let probe = [
        ("new_user[name]", "Probe"),
        ("new_user[username]", "root"),
        ("new_user[email]", "probe@example.com"),
        ("new_user[password]", "short"),
    ];
    for _ in 0..20 {
        assert_eq!(sign_up(&mut visitor, &probe).await.status, 422);
    }
    let page = sign_up(&mut visitor, &probe).await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.body.contains("Too many sign-ups from this address"));
    let good = [
        ("new_user[name]", "Late"),
        ("new_user[username]", "late"),
        ("new_user[email]", "late@example.com"),
        ("new_user[password]", PASSWORD),
    ];
    assert_eq!(sign_up(&mut visitor, &good).await.status, 429);
    let users: Value = app.root_json("/users?username=late").await;
    assert_eq!(users, json!([]));
}

async fn sign_up(browser: &mut Browser, form: &[(&str, &str)]) -> crate::web::Page {
    let token = browser.get("/users/sign_up").await.csrf();
    let mut fields = vec![("authenticity_token", token.as_str())];
    fields.extend_from_slice(form);
    browser.post("/users", &fields).await
}

async fn a_user_creates_a_project_with_a_readme_and_clones_it_at_once(app: TestApp) {
    let (_, token) = app.create_user("alice").await;
    let mut alice = Browser::sign_in(&app, "alice", PASSWORD).await;
    const NEW: &str = "/projects/new";
    let page = alice.get(NEW).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<option value="),
        "the user's own namespace"
    );

    let form = [
        ("name", "My Demo"),
        ("path", ""),
        ("description", "What we build"),
        ("visibility", "internal"),
        ("initialize_with_readme", "true"),
    ];
    let page = alice.submit(NEW, "/projects", &form).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/alice/my-demo"),
        "{}",
        page.body
    );
    let page = alice.get("/alice/my-demo").await;
    assert!(
        page.body
            .contains("Project &#39;My Demo&#39; was successfully created.")
    );
    let project: Value = app
        .get("/projects/alice%2Fmy-demo", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(project["visibility"], "internal");
    assert_eq!(project["description"], "What we build");

    // The README is on the default branch: the project clones at once, with the token.
    let tmp = tempfile::tempdir().unwrap();
    let url = crate::git::remote(&app, "alice", &token, "alice/my-demo");
    crate::git::git_ok(tmp.path(), tmp.path(), &["clone", "-q", &url, "clone"]);
    let readme = std::fs::read_to_string(tmp.path().join("clone/README.md")).unwrap();
    assert_eq!(readme, "# My Demo\n\nWhat we build\n");
    let log = crate::git::git_ok(
        &tmp.path().join("clone"),
        tmp.path(),
        &["log", "--format=%an %s"],
    );
    assert_eq!(log.trim(), "User alice Initial commit");

    // GitLab's validation messages; a taken path.
    let page = follow(&mut alice, NEW, "/projects", &[("name", "My Demo")]).await;
    assert!(
        page.body.contains("has already been taken"),
        "{}",
        page.body
    );
    let page = follow(
        &mut alice,
        NEW,
        "/projects",
        &[("name", "x"), ("path", "-bad")],
    )
    .await;
    assert!(
        page.body.contains("Path can contain only letters"),
        "{}",
        page.body
    );
    // Without a README the repository is empty, and the default private.
    let form = [("name", "empty")];
    alice.submit(NEW, "/projects", &form).await;
    let project: Value = app
        .get("/projects/alice%2Fempty", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(project["visibility"], "private");
    assert_eq!(project["empty_repo"], true);
    // Another user's namespace is not a choice.
    let (_, _) = app.create_user("mallory").await;
    let mut mallory = Browser::sign_in(&app, "mallory", PASSWORD).await;
    let alice_ns = alice_namespace_id(&app).await;
    let form = [
        ("name", "sneaky"),
        ("namespace_id", &alice_ns.to_string()[..]),
    ];
    let page = follow(&mut mallory, NEW, "/projects", &form).await;
    assert!(page.body.contains("flash-alert"), "{}", page.body);
    assert_eq!(
        app.get("/projects/alice%2Fsneaky", Some(&app.root_token))
            .await
            .status(),
        404
    );
}

async fn alice_namespace_id(app: &TestApp) -> i64 {
    let projects: Value = app.root_json("/projects?search=my-demo").await;
    projects[0]["namespace"]["id"]
        .as_i64()
        .expect("namespace id")
}

/// alice's project `alice/team` (created with a README through the page), and her browser.
async fn team_project(app: &TestApp) -> (Browser, i64) {
    app.create_user("alice").await;
    let mut alice = Browser::sign_in(app, "alice", PASSWORD).await;
    let form = [("name", "team"), ("initialize_with_readme", "true")];
    let page = alice.submit("/projects/new", "/projects", &form).await;
    assert_eq!(page.location.as_deref(), Some("/alice/team"));
    let project: Value = app.root_json("/projects/alice%2Fteam").await;
    (alice, project["id"].as_i64().unwrap())
}

async fn the_members_page_pages_through_every_member(app: TestApp) {
    let (mut alice, id) = team_project(&app).await;
    // 105 more members, made in the store (the API would hash 105 passwords).
    for n in 0..105 {
        let user = pipewright_store::NewUser {
            username: format!("member-{n:03}"),
            name: format!("Member {n:03}"),
            email: format!("member-{n:03}@example.com"),
            password_hash: None,
            is_admin: false,
        };
        let user = app.store.create_user(&user).await.unwrap();
        let level = pipewright_core::AccessLevel::Developer;
        app.store
            .add_member(id, user.id, level, None)
            .await
            .unwrap();
    }
    const MEMBERS: &str = "/alice/team/-/project_members";
    let listed = |n: u32| format!("@member-{n:03}<");
    let page = alice.get(MEMBERS).await;
    assert!(page.body.contains("Members (106)"), "{}", page.body);
    assert!(page.body.contains("@alice<") && page.body.contains(&listed(18)));
    assert!(!page.body.contains(&listed(19)), "twenty a page");
    assert!(
        page.body
            .contains(&format!(r#"href="{MEMBERS}?page=2" rel="next""#))
    );
    let page = alice.get(&format!("{MEMBERS}?page=6")).await;
    assert!(page.body.contains(&listed(99)) && page.body.contains(&listed(104)));
    assert!(!page.body.contains(&listed(98)));
    assert!(!page.body.contains(r#"rel="next""#));
    assert!(
        page.body
            .contains(&format!(r#"href="{MEMBERS}?page=5" rel="prev""#))
    );
}

async fn maintainers_manage_members_by_gitlabs_rules(app: TestApp) {
    let (mut alice, id) = team_project(&app).await;
    let (bob_id, _) = app.create_user("bob").await;
    let (carol_id, _) = app.create_user("carol").await;
    const MEMBERS: &str = "/alice/team/-/project_members";

    let add = |who: &'static str, level: &'static str| {
        [
            ("username", who),
            ("access_level", level),
            ("expires_at", ""),
        ]
    };
    let page = follow(&mut alice, MEMBERS, MEMBERS, &add("bob", "40")).await;
    assert!(
        page.body.contains("bob was added to the project."),
        "{}",
        page.body
    );
    let page = follow(&mut alice, MEMBERS, MEMBERS, &add("nobody", "30")).await;
    assert!(page.body.contains("404 User Not Found"), "{}", page.body);
    let page = follow(&mut alice, MEMBERS, MEMBERS, &add("bob", "30")).await;
    assert!(page.body.contains("Member already exists"));

    // bob, a Maintainer, adds carol as a Developer with an expiry, but may not grant Owner.
    let mut bob = Browser::sign_in(&app, "bob", PASSWORD).await;
    let page = bob.get(MEMBERS).await;
    assert!(
        !page.body.contains("<option value=\"50\""),
        "no Owner role offered"
    );
    let form = [
        ("username", "carol"),
        ("access_level", "30"),
        ("expires_at", "2099-12-31"),
    ];
    follow(&mut bob, MEMBERS, MEMBERS, &form).await;
    let member: Value = app
        .root_json(&format!("/projects/{id}/members/{carol_id}"))
        .await;
    assert_eq!(member["access_level"], 30);
    assert_eq!(member["expires_at"], "2099-12-31");
    let path = format!("{MEMBERS}/{carol_id}/update");
    let page = follow(&mut bob, MEMBERS, &path, &[("access_level", "50")]).await;
    assert!(page.body.contains("403 Forbidden"), "{}", page.body);
    // Nor change or remove the Owner.
    let alice_id: Value = app.root_json("/users?username=alice").await;
    let alice_id = alice_id[0]["id"].as_i64().unwrap();
    let path = format!("{MEMBERS}/{alice_id}/remove");
    let page = follow(&mut bob, MEMBERS, &path, &[]).await;
    assert!(page.body.contains("403 Forbidden"));

    // The last Owner cannot leave or step down.
    let path = format!("{MEMBERS}/{alice_id}/update");
    let page = follow(&mut alice, MEMBERS, &path, &[("access_level", "40")]).await;
    assert!(
        page.body.contains("A project must keep at least one Owner"),
        "{}",
        page.body
    );
    let path = format!("{MEMBERS}/{alice_id}/remove");
    let page = follow(&mut alice, MEMBERS, &path, &[]).await;
    assert!(page.body.contains("A project must keep at least one Owner"));
    // With a second Owner, she may.
    let path = format!("{MEMBERS}/{bob_id}/update");
    follow(&mut alice, MEMBERS, &path, &[("access_level", "50")]).await;
    let path = format!("{MEMBERS}/{alice_id}/update");
    let page = follow(&mut alice, MEMBERS, &path, &[("access_level", "40")]).await;
    assert!(
        page.body.contains("The member was updated."),
        "{}",
        page.body
    );

    // A Developer sees the members but cannot change them; the forms are not there either.
    let mut carol = Browser::sign_in(&app, "carol", PASSWORD).await;
    let page = carol.get(MEMBERS).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Add a member"));
    let path = format!("{MEMBERS}/{bob_id}/remove");
    assert_eq!(carol.submit(MEMBERS, &path, &[]).await.status, 404);
    let path = format!("{MEMBERS}/{carol_id}/remove");
    let page = follow(&mut bob, MEMBERS, &path, &[]).await;
    assert!(page.body.contains("The member was removed."));
    // Now a stranger to the private project: 404.
    assert_eq!(carol.get(MEMBERS).await.status, 404);
}

async fn a_protected_branch_refuses_a_developers_push_until_unprotected(app: TestApp) {
    let (mut alice, id) = team_project(&app).await;
    let (dev_id, dev_token) = app.create_user("dev").await;
    app.add_member(id, dev_id, 30).await;
    const REPO: &str = "/alice/team/-/settings/repository";
    const PROTECT: &str = "/alice/team/-/protected_branches";

    let form = [
        ("name", "main"),
        ("push_access_level", "40"),
        ("merge_access_level", "40"),
    ];
    let page = follow(&mut alice, REPO, PROTECT, &form).await;
    assert!(
        page.body.contains("Branch main was protected."),
        "{}",
        page.body
    );
    assert!(page.body.contains("<code>main</code>"));
    let page = follow(&mut alice, REPO, PROTECT, &form).await;
    assert!(
        page.body
            .contains("Protected branch &#39;main&#39; already exists"),
        "{}",
        page.body
    );

    // The Developer's push to main is refused by git.
    let tmp = tempfile::tempdir().unwrap();
    let url = crate::git::remote(&app, "dev", &dev_token, "alice/team");
    crate::git::git_ok(tmp.path(), tmp.path(), &["clone", "-q", &url, "work"]);
    let work = tmp.path().join("work");
    std::fs::write(work.join("file.txt"), "change").unwrap();
    crate::git::git_ok(&work, tmp.path(), &["add", "."]);
    crate::git::git_ok(&work, tmp.path(), &["commit", "-q", "-m", "change"]);
    let out = crate::git::git(&work, tmp.path(), &["push", "-q", "origin", "main"]);
    assert!(
        !out.status.success(),
        "a Developer may not push to a protected main"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not allowed to push"), "{stderr}");

    // A Developer cannot see the settings page; unprotected, the push goes through.
    let mut dev = Browser::sign_in(&app, "dev", PASSWORD).await;
    assert_eq!(dev.get(REPO).await.status, 404);
    let rules: Value = app
        .root_json(&format!("/projects/{id}/protected_branches"))
        .await;
    let rule = rules[0]["id"].as_i64().unwrap();
    assert_eq!(
        dev.submit("/", &format!("{PROTECT}/{rule}/unprotect"), &[])
            .await
            .status,
        404
    );
    let page = follow(
        &mut alice,
        REPO,
        &format!("{PROTECT}/{rule}/unprotect"),
        &[],
    )
    .await;
    assert!(page.body.contains("Branch main was unprotected."));
    crate::git::git_ok(&work, tmp.path(), &["push", "-q", "origin", "main"]);
}

async fn owners_edit_and_delete_their_project(app: TestApp) {
    let (mut alice, id) = team_project(&app).await;
    let (bob_id, _) = app.create_user("bob").await;
    app.add_member(id, bob_id, 40).await;
    const EDIT: &str = "/alice/team/edit";

    let form = [
        ("name", "Team"),
        ("description", "Our team"),
        ("visibility", "internal"),
        ("default_branch", "main"),
        ("build_timeout_minutes", "30"),
        ("ci_pipeline_variables_minimum_override_role", "maintainer"),
    ];
    let page = follow(&mut alice, EDIT, "/alice/team", &form).await;
    assert!(
        page.body.contains("was successfully updated."),
        "{}",
        page.body
    );
    let project: Value = app.root_json(&format!("/projects/{id}")).await;
    assert_eq!(project["name"], "Team");
    assert_eq!(project["description"], "Our team");
    assert_eq!(project["visibility"], "internal");
    assert_eq!(project["build_timeout"], 1800);
    assert_eq!(
        project["ci_pipeline_variables_minimum_override_role"],
        "maintainer"
    );

    // GitLab's validations come back as the flash.
    let page = follow(
        &mut alice,
        EDIT,
        "/alice/team",
        &[("build_timeout_minutes", "1")],
    )
    .await;
    assert!(
        page.body
            .contains("Build timeout is too short (minimum is 10 minutes)"),
        "{}",
        page.body
    );

    // A Maintainer edits but cannot change the visibility nor delete.
    let mut bob = Browser::sign_in(&app, "bob", PASSWORD).await;
    let page = bob.get(EDIT).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("name=\"visibility\""));
    assert!(!page.body.contains("Delete project"));
    let page = follow(&mut bob, EDIT, "/alice/team", &[("visibility", "public")]).await;
    assert!(page.body.contains("403 Forbidden"), "{}", page.body);
    assert_eq!(
        bob.submit(
            EDIT,
            "/alice/team/-/delete",
            &[("confirm_name", "alice/team")]
        )
        .await
        .status,
        404
    );

    // Deleting needs the typed path.
    let page = follow(
        &mut alice,
        EDIT,
        "/alice/team/-/delete",
        &[("confirm_name", "team")],
    )
    .await;
    assert!(page.body.contains("the project was not deleted"));
    let page = alice
        .submit(
            EDIT,
            "/alice/team/-/delete",
            &[("confirm_name", "alice/team")],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/"));
    assert_eq!(
        app.get(&format!("/projects/{id}"), Some(&app.root_token))
            .await
            .status(),
        404
    );
}

/// The issue's story in Chromium: an administrator creates erin; she signs in, makes a token
/// and uses it with python-gitlab and `git clone`, creates a project with a README, adds frank
/// as a Developer, protects main so frank's push is refused, and sees her commit's pipeline
/// pass. With `PIPEWRIGHT_SCREENSHOTS=<dir>` (SQLite run) it saves the README's screenshots of
/// the new pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_member_serves_themselves_in_chromium_on_sqlite() {
    browser_story(crate::support::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_member_serves_themselves_in_chromium_on_postgres() {
    browser_story(crate::support::Backend::Postgres).await
}

async fn browser_story(backend: crate::support::Backend) {
    let Some(python) = crate::browser::tools() else {
        return;
    };
    let app = TestApp::start(backend).await;
    let tmp = tempfile::tempdir().unwrap();
    let (_, frank_token) = app.create_user("frank").await;
    let builds = tempfile::tempdir().unwrap();
    let runner = crate::running::start_runner(&app, builds.path()).await;
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let env = [
        // browser.py's own story reads these at import; unused here.
        ("PIPEWRIGHT_PROJECT", "erin/story".to_string()),
        ("PIPEWRIGHT_PROJECT_ID", "0".to_string()),
        (
            "PIPEWRIGHT_ROOT_PASSWORD",
            crate::support::ROOT_PASSWORD.to_string(),
        ),
        ("PIPEWRIGHT_PASSWORD", PASSWORD.to_string()),
        ("PIPEWRIGHT_COLLEAGUE_TOKEN", frank_token),
        ("PIPEWRIGHT_WORK", work.display().to_string()),
    ];
    let script = "self_service_browser.py";
    let (out, screenshots) =
        crate::browser::run_script(&python, script, &app, backend, tmp.path(), &env).await;
    runner.abort();
    assert!(
        out.status.success(),
        "self_service_browser.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for shot in [
        "user-settings-tokens.png",
        "new-project.png",
        "project-members.png",
        "settings-repository.png",
    ] {
        let meta = std::fs::metadata(screenshots.join(shot)).expect(shot);
        assert!(meta.len() > 10_000, "{shot} is a real screenshot");
    }
}
