//! Hostile input that used to get through: each scenario replays malformed requests from the
//! catalogue against the real server and expects GitLab's refusal, on both databases.

use serde_json::{Value, json};

use crate::both_backends;
use crate::running::{register_runner, request, trace};
use crate::support::TestApp;
use crate::triggering::triggerable_project;

both_backends!(a_log_chunk_without_a_valid_content_range_is_refused);

/// `PATCH /jobs/:id/trace` with `Content-Range` and body given raw.
async fn patch_trace(
    app: &TestApp,
    job: &Value,
    range: Option<&[u8]>,
    body: &str,
) -> reqwest::Response {
    let mut req = app
        .client
        .patch(app.api(&format!("/jobs/{}/trace", job["id"])))
        .header("JOB-TOKEN", job["token"].as_str().unwrap())
        .header("Content-Type", "text/plain")
        .body(body.to_string());
    if let Some(range) = range {
        req = req.header(
            "Content-Range",
            reqwest::header::HeaderValue::from_bytes(range).unwrap(),
        );
    }
    req.send().await.unwrap()
}

async fn a_log_chunk_without_a_valid_content_range_is_refused(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "trace", tmp.path()).await;
    let runner = register_runner(&app).await;
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            json!({"token": token, "ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let job = request(&app, &runner).await.expect("a job");
    assert_eq!(trace(&app, &job, 0, "first\n").await.status(), 202);

    // No header at all: GitLab's 400.
    let res = patch_trace(&app, &job, None, "injected\n").await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "400 Missing header Content-Range"})
    );
    // Garbage ranges: 416 with the log's current range, as for a chunk at the wrong offset.
    for garbage in [
        &b"bytes=abc"[..],
        b"-5-10",
        b"6",
        b"12345678901234567890123-12345678901234567890130",
        "６-１０".as_bytes(),
        b"",
    ] {
        let res = patch_trace(&app, &job, Some(garbage), "injected\n").await;
        assert_eq!(res.status(), 416, "{:?}", String::from_utf8_lossy(garbage));
        assert_eq!(res.headers()["range"], "0-6");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"message": "416 Range Not Satisfiable"})
        );
    }
    // Nothing was appended; the next real chunk continues the log.
    assert_eq!(trace(&app, &job, 6, "second\n").await.status(), 202);
    let res = app
        .get(
            &format!("/projects/{id}/jobs/{}/trace", job["id"]),
            Some(&app.root_token),
        )
        .await;
    assert_eq!(res.text().await.unwrap(), "first\nsecond\n");
}
