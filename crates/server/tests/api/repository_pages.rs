//! The repository pages (issue 17): a member browses a private project's files, folders,
//! commits, branches and tags at GitLab's URLs; a ref with a slash is found by the longest
//! matching ref; binary, large and HTML files are shown safely; a stranger sees a 404.

use std::path::Path;

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::lifecycle::run_pipeline;
use crate::support::{ROOT_PASSWORD, TestApp};
use crate::web::Browser;

both_backends!(
    a_member_browses_folders_files_and_a_branch_with_a_slash,
    files_are_shown_and_served_without_running_as_pages,
    commits_and_branches_link_to_their_pipelines,
    a_private_repository_is_a_404_to_strangers,
);

const CONFIG: &str = "test:\n  script: echo hi\n";

/// A private project `root/<name>` with nested folders, an HTML file, a binary, a file over the
/// page's display limit, a tag `feature` and a branch `feature/x` (so `feature/x/…` is
/// ambiguous by its first segment and must be split by the longest ref).
async fn browsable_project(app: &TestApp, name: &str, tmp: &Path) -> i64 {
    let project = app.create_project(&app.root_token, name).await;
    let work = local_repo(tmp, CONFIG);
    std::fs::create_dir_all(work.join("src/deep/nested")).unwrap();
    std::fs::write(
        work.join("src/deep/nested/leaf.txt"),
        "leaf one\nleaf two\n",
    )
    .unwrap();
    std::fs::write(
        work.join("page.html"),
        "<script>alert(document.cookie)</script>\n",
    )
    .unwrap();
    std::fs::write(work.join("image.bin"), [0x89, b'P', b'N', b'G', 0, 0, 1, 2]).unwrap();
    std::fs::write(work.join("big.txt"), "x".repeat(1024 * 1024 + 10)).unwrap();
    std::fs::write(work.join("lines.txt"), "\n".repeat(100_000)).unwrap();
    git_ok(&work, tmp, &["add", "."]);
    git_ok(&work, tmp, &["commit", "-q", "-m", "Add files"]);
    git_ok(&work, tmp, &["tag", "feature"]);
    git_ok(&work, tmp, &["checkout", "-q", "-b", "feature/x"]);
    std::fs::write(work.join("only-on-feature.txt"), "feature work\n").unwrap();
    git_ok(&work, tmp, &["add", "."]);
    git_ok(&work, tmp, &["commit", "-q", "-m", "Feature work"]);
    let url = remote(app, "root", &app.root_token, &format!("root/{name}"));
    git_ok(
        &work,
        tmp,
        &[
            "push",
            "-q",
            "-o",
            "ci.skip",
            &url,
            "main",
            "feature/x",
            "feature",
        ],
    );
    project["id"].as_i64().unwrap()
}

async fn a_member_browses_folders_files_and_a_branch_with_a_slash(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    browsable_project(&app, "browsed", tmp.path()).await;
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;

    let overview = root.get("/root/browsed").await;
    assert!(
        overview.body.contains("href=\"/root/browsed/-/tree/main\""),
        "the navigation links the repository"
    );
    let top = root.get("/root/browsed/-/tree/main").await;
    assert_eq!(top.status, 200, "{}", top.body);
    for link in [
        "/root/browsed/-/tree/main/src",
        "/root/browsed/-/blob/main/.gitlab-ci.yml",
        "/root/browsed/-/blob/main/page.html",
    ] {
        assert!(top.body.contains(&format!("href=\"{link}\"")), "{link}");
    }
    assert!(top.body.contains("Add files"), "the last commit's title");

    let deep = root.get("/root/browsed/-/tree/main/src/deep").await;
    assert_eq!(deep.status, 200);
    assert!(
        deep.body
            .contains("href=\"/root/browsed/-/tree/main/src/deep/nested\"")
    );
    assert!(
        deep.body.contains("href=\"/root/browsed/-/tree/main/src\""),
        ".."
    );
    let leaf = root
        .get("/root/browsed/-/blob/main/src/deep/nested/leaf.txt")
        .await;
    assert_eq!(leaf.status, 200);
    assert!(leaf.body.contains("leaf two"));
    assert!(leaf.body.contains("href=\"#L2\""), "line numbers");
    assert!(
        leaf.body
            .contains("href=\"/root/browsed/-/raw/main/src/deep/nested/leaf.txt\"")
    );

    // `feature/x/only-on-feature.txt`: branch `feature/x` (the longest ref), not tag `feature`
    // with the path `x/only-on-feature.txt` (lib/extracts_ref/ref_extractor.rb).
    let feature = root
        .get("/root/browsed/-/blob/feature/x/only-on-feature.txt")
        .await;
    assert_eq!(feature.status, 200, "{}", feature.body);
    assert!(feature.body.contains("feature work"));
    let tree = root.get("/root/browsed/-/tree/feature/x").await;
    assert_eq!(tree.status, 200);
    assert!(
        tree.body
            .contains("href=\"/root/browsed/-/blob/feature/x/only-on-feature.txt\"")
    );
    // The tag `feature` alone is a ref too, without the branch's file.
    let tag = root.get("/root/browsed/-/tree/feature").await;
    assert_eq!(tag.status, 200);
    assert!(!tag.body.contains("only-on-feature.txt"));

    for missing in [
        "/root/browsed/-/tree/nope",
        "/root/browsed/-/tree/main/no/such/dir",
        "/root/browsed/-/blob/main/src",
        "/root/browsed/-/blob/main/missing.txt",
        // A path that climbs out of the tree is not a path (`%2F`: the client sends `..` as
        // it is, the server decodes it into the path).
        "/root/browsed/-/raw/main/src/..%2F..%2F..%2Fetc/passwd",
        "/root/browsed/-/blob/main/src/..%2Fpage.html",
    ] {
        assert_eq!(root.get(missing).await.status, 404, "{missing}");
    }
}

async fn files_are_shown_and_served_without_running_as_pages(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    browsable_project(&app, "safe", tmp.path()).await;
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;

    let html = root.get("/root/safe/-/blob/main/page.html").await;
    assert_eq!(html.status, 200);
    assert!(html.body.contains("alert(document.cookie)"));
    assert!(!html.body.contains("<script>alert"), "escaped on its page");

    let binary = root.get("/root/safe/-/blob/main/image.bin").await;
    assert_eq!(binary.status, 200);
    assert!(binary.body.contains("data-testid=\"blob-notice\""));
    assert!(binary.body.contains("binary"));
    assert!(
        binary
            .body
            .contains("href=\"/root/safe/-/raw/main/image.bin\"")
    );
    let big = root.get("/root/safe/-/blob/main/big.txt").await;
    assert_eq!(big.status, 200);
    assert!(big.body.contains("too large to display"));
    assert!(
        !big.body.contains("xxxxxxxxxxxxxxxx"),
        "its bytes are not on the page"
    );
    // Small in bytes, huge as a page: a hundred thousand empty lines are not shown either.
    let lines = root.get("/root/safe/-/blob/main/lines.txt").await;
    assert_eq!(lines.status, 200);
    assert!(lines.body.contains("too large to display"));
    assert!(lines.body.len() < 100_000, "{} bytes", lines.body.len());

    let raw = |path: &str| {
        let url = format!("{}{path}", app.url);
        let cookie = root.cookie_header();
        async move {
            reqwest::Client::new()
                .get(url)
                .header("Cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let served = raw("/root/safe/-/raw/main/page.html").await;
    assert_eq!(served.status(), 200);
    let header = |res: &reqwest::Response, name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(
        header(&served, "content-type").as_deref(),
        Some("text/plain; charset=utf-8"),
        "an HTML file is text, never a page of this site"
    );
    assert_eq!(
        header(&served, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(header(&served, "content-disposition"), None);
    assert_eq!(
        served.text().await.unwrap(),
        "<script>alert(document.cookie)</script>\n"
    );

    let download = raw("/root/safe/-/raw/main/image.bin").await;
    assert_eq!(download.status(), 200);
    assert_eq!(
        header(&download, "content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        header(&download, "content-disposition").as_deref(),
        Some("attachment; filename*=UTF-8''image%2Ebin")
    );
    assert_eq!(download.bytes().await.unwrap().len(), 8);
    let big = raw("/root/safe/-/raw/main/big.txt").await;
    assert_eq!(
        big.status(),
        200,
        "the raw link serves what the page does not show"
    );
    assert_eq!(big.bytes().await.unwrap().len(), 1024 * 1024 + 10);
}

async fn commits_and_branches_link_to_their_pipelines(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = browsable_project(&app, "history", tmp.path()).await;
    let pipeline = run_pipeline(&app, id).await;
    let (pipeline_id, sha) = (
        pipeline["id"].as_i64().unwrap(),
        pipeline["sha"].as_str().unwrap(),
    );
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;

    let commits = root.get("/root/history/-/commits/main").await;
    assert_eq!(commits.status, 200, "{}", commits.body);
    let row_start = commits
        .body
        .find(&format!("data-sha=\"{sha}\""))
        .expect("the pipeline's commit is listed");
    let row = &commits.body[row_start..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(&format!("href=\"/root/history/-/pipelines/{pipeline_id}\"")),
        "the commit links to its pipeline: {row}"
    );
    assert!(commits.body.contains("Add CI config"), "older commits too");
    // `feature/x`'s history has its own commit, and no pipeline: a commit shows its latest
    // pipeline on the ref whose history this is, even when main ran one for it.
    let feature = root.get("/root/history/-/commits/feature/x").await;
    assert_eq!(feature.status, 200);
    assert!(feature.body.contains("Feature work"));
    assert!(!feature.body.contains("/-/pipelines/"));

    let branches = root.get("/root/history/-/branches").await;
    assert_eq!(branches.status, 200);
    assert!(
        branches
            .body
            .contains("href=\"/root/history/-/tree/feature/x\"")
    );
    let main_row = &branches.body[branches.body.find("data-ref=\"main\"").unwrap()..];
    let main_row = &main_row[..main_row.find("</tr>").unwrap()];
    assert!(main_row.contains(&format!("/root/history/-/pipelines/{pipeline_id}")));
    assert!(main_row.contains("default"));
    let tags = root.get("/root/history/-/tags").await;
    assert_eq!(tags.status, 200);
    assert!(tags.body.contains("href=\"/root/history/-/tree/feature\""));
}

async fn a_private_repository_is_a_404_to_strangers(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = browsable_project(&app, "secret", tmp.path()).await;
    let (guest, _) = app.create_user("guest").await;
    app.create_user("stranger").await;
    app.add_member(id, guest, 10).await;
    let pages = [
        "/root/secret/-/tree/main",
        "/root/secret/-/blob/main/page.html",
        "/root/secret/-/raw/main/page.html",
        "/root/secret/-/commits/main",
        "/root/secret/-/branches",
        "/root/secret/-/tags",
    ];
    for who in ["stranger", "guest"] {
        // A Guest of a private project may see it, not its code (GitLab's `download_code`).
        let mut browser = Browser::sign_in(&app, who, "a-long-password").await;
        for page in pages {
            let got = browser.get(page).await;
            assert_eq!(got.status, 404, "{who} {page}");
            assert!(!got.body.contains("alert"), "{who} {page}");
        }
    }
    let mut guest_browser = Browser::sign_in(&app, "guest", "a-long-password").await;
    let overview = guest_browser.get("/root/secret").await;
    assert_eq!(overview.status, 200);
    assert!(
        !overview.body.contains("/-/tree/"),
        "no Repository link for a Guest"
    );
    let mut anonymous = Browser::new(&app);
    for page in pages {
        assert_eq!(
            anonymous.get(page).await.status,
            303,
            "{page}: sign in first"
        );
    }
}
