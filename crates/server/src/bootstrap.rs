//! First start: an empty database gets the administrator `root`, with the password and token
//! the operator supplied (or a generated password, printed once).

use pipewright_store::{NewUser, Store};

use crate::auth::KNOWN_SCOPES;
use crate::secrets;
use crate::state::AppState;

/// What bootstrapping did, for the binary to report.
#[derive(Debug)]
pub enum Bootstrap {
    /// The database already had users; nothing was done.
    Existing,
    /// `root` was created. `generated_password` is set when none was supplied.
    CreatedRoot {
        generated_password: Option<String>,
        token_registered: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("PIPEWRIGHT_ROOT_TOKEN must be at least 20 characters")]
    TokenTooShort,
    #[error("PIPEWRIGHT_ROOT_PASSWORD must be at least 8 characters")]
    PasswordTooShort,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub async fn ensure_root(
    state: &AppState,
    password: Option<&str>,
    token: Option<&str>,
) -> Result<Bootstrap, BootstrapError> {
    if let Some(t) = token
        && t.len() < 20
    {
        return Err(BootstrapError::TokenTooShort);
    }
    if let Some(p) = password
        && p.chars().count() < 8
    {
        return Err(BootstrapError::PasswordTooShort);
    }
    let store: &dyn Store = state.store.as_ref();
    if store.count_users().await.map_err(anyhow::Error::new)? > 0 {
        return Ok(Bootstrap::Existing);
    }
    let (password, generated) = match password {
        Some(p) => (p.to_string(), None),
        None => {
            let p = secrets::random_token("", 24);
            (p.clone(), Some(p))
        }
    };
    let hash = secrets::hash_password_async(password).await?;
    let root = store
        .create_user(&NewUser {
            username: "root".into(),
            name: "Administrator".into(),
            email: "admin@example.com".into(),
            password_hash: Some(hash),
            is_admin: true,
        })
        .await
        .map_err(anyhow::Error::new)?;
    let token_registered = if let Some(token) = token {
        let scopes = vec!["api".to_string()];
        debug_assert!(KNOWN_SCOPES.contains(&"api"));
        crate::domain::tokens::issue_token(
            state,
            root.id,
            "root-bootstrap",
            scopes,
            None,
            Some(token.to_string()),
        )
        .await
        .map_err(|e| anyhow::anyhow!("registering root token: {e}"))?;
        true
    } else {
        false
    };
    Ok(Bootstrap::CreatedRoot {
        generated_password: generated,
        token_registered,
    })
}

/// The embedded runner's token: reused from `<data-dir>/embedded-runner.token` while its runner
/// exists, otherwise a new instance runner is registered and its token written there (0600).
/// The embedded runner then takes jobs over HTTP like any other runner.
pub async fn embedded_runner_token(state: &AppState) -> anyhow::Result<String> {
    let path = state.config.data_dir.join("embedded-runner.token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if let Some(runner) = state
            .store
            .runner_by_digest(&secrets::token_digest(&token))
            .await?
        {
            // This process is the embedded runner's only host: whatever it was running when
            // the previous process stopped is gone. Ending those leases now lets the
            // maintenance loop fail (or retry) them at once instead of after the lease.
            let orphaned = state.store.expire_runner_leases(runner.id).await?;
            if orphaned > 0 {
                tracing::warn!(
                    jobs = orphaned,
                    "jobs the embedded runner was running before a restart will be failed or retried"
                );
            }
            return Ok(token);
        }
    }
    let token = secrets::random_token(secrets::RUNNER_TOKEN_PREFIX, 24);
    state
        .store
        .create_runner(&pipewright_store::NewRunner {
            group_id: None,
            token_digest: secrets::token_digest(&token),
            runner_type: pipewright_store::RunnerType::Instance,
            project_id: None,
            creator_id: None,
            description: "embedded runner".into(),
            tag_list: Vec::new(),
            run_untagged: true,
            paused: false,
            locked: false,
            access_level: "not_protected".into(),
            maximum_timeout: None,
        })
        .await?;
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}
