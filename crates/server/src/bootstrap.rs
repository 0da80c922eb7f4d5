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
        crate::api::tokens::issue_token(
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
