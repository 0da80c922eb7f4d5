//! An artifact upload that is refused — a bad `expire_in`, not a zip, a client that hangs up
//! halfway — leaves nothing behind in the data directory: repeated, each would otherwise keep
//! up to the upload limit on disk.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::both_backends;
use crate::lifecycle::{EMPTY_ZIP, project_with, run_pipeline, upload};
use crate::running::{register_runner, request};
use crate::support::TestApp;

both_backends!(refused_artifact_uploads_leave_no_files_behind);

/// The files in the job's artifacts directory.
fn artifact_files(app: &TestApp, job_id: i64) -> Vec<String> {
    let dir = app.data_dir().join("artifacts").join(job_id.to_string());
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Starts a multipart upload announcing more bytes than it sends, then hangs up.
async fn abandoned_upload(app: &TestApp, job_id: i64, token: &str) {
    let host = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let body_start = "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\
                      Content-Type: application/zip\r\n\r\nPK\x03\x04 and then nothing more";
    let head = format!(
        "POST /api/v4/jobs/{job_id}/artifacts HTTP/1.1\r\nHost: {host}\r\nJOB-TOKEN: {token}\r\n\
         Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: 100000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body_start.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
}

async fn refused_artifact_uploads_leave_no_files_behind(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "uploads", "build:\n  script: [echo]\n", tmp.path()).await;
    run_pipeline(&app, id).await;
    let runner = register_runner(&app).await;
    let job = request(&app, &runner).await.expect("a job");
    let (job_id, token) = (job["id"].as_i64().unwrap(), job["token"].as_str().unwrap());

    assert_eq!(
        upload(&app, &job["id"], token, "soon-ish", EMPTY_ZIP).await,
        400
    );
    assert_eq!(artifact_files(&app, job_id), Vec::<String>::new());
    assert_eq!(
        upload(&app, &job["id"], token, "1 day", b"no zip").await,
        400
    );
    assert_eq!(artifact_files(&app, job_id), Vec::<String>::new());
    abandoned_upload(&app, job_id, token).await;
    let mut left = artifact_files(&app, job_id);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = artifact_files(&app, job_id);
    }
    assert_eq!(
        left,
        Vec::<String>::new(),
        "an abandoned upload is cleaned up"
    );

    // An accepted upload is the archive alone.
    assert_eq!(
        upload(&app, &job["id"], token, "1 day", EMPTY_ZIP).await,
        201
    );
    assert_eq!(
        artifact_files(&app, job_id),
        vec!["artifacts.zip".to_string()]
    );
}
