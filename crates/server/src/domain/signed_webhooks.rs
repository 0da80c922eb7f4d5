//! Signed webhooks (issue 14 §5): GitHub, Gitea and Forgejo sign a webhook's body with a shared
//! secret instead of putting a token in the URL. Here the secret is the trigger's token: the
//! trigger named in the URL is opened (its sealed copy) and the body's HMAC-SHA256 under it is
//! compared, in constant time, with the signature header. Anything that does not verify — an
//! unknown project or trigger, no signature, a wrong one — is the trigger endpoint's 404, so
//! the answer reveals nothing. A token replaced by a rotation is kept only as a digest and so
//! cannot verify a signature: senders must use the current token.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{ApiError, ApiResult};
use crate::sealing::Purpose;
use crate::state::AppState;

/// The signature headers, in the order they are looked at, and the prefix of their value.
/// GitHub: `X-Hub-Signature-256: sha256=<hex>`; Gitea and Forgejo: `<hex>`.
pub const SIGNATURE_HEADERS: &[(&str, &str)] = &[
    ("x-hub-signature-256", "sha256="),
    ("x-gitea-signature", ""),
    ("x-forgejo-signature", ""),
];

/// The delivery-id headers the senders set, one per delivery (retries repeat it).
pub const DELIVERY_HEADERS: &[&str] = &[
    "x-github-delivery",
    "x-gitea-delivery",
    "x-forgejo-delivery",
];

/// The signature from the first signature header present, decoded (`None`: absent or not hex).
pub fn signature(headers: &[(&str, Option<&str>)]) -> Option<Vec<u8>> {
    for (name, prefix) in SIGNATURE_HEADERS {
        let Some(value) = headers
            .iter()
            .find(|(h, _)| h == name)
            .and_then(|(_, v)| *v)
        else {
            continue;
        };
        let hex_digits = value.trim().strip_prefix(prefix)?;
        return hex::decode(hex_digits).ok();
    }
    None
}

/// Whether `signature` is the HMAC-SHA256 of `body` under `key`, compared in constant time
/// (`Mac::verify_slice`).
pub fn verifies(key: &[u8], body: &[u8], signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(signature).is_ok()
}

/// The token of trigger `trigger_id` of the project `id` names, if `signature` signs `body`
/// with it; the trigger endpoint then runs it as any token (expiry, owner, restrictions).
pub async fn verified_token(
    state: &AppState,
    id: &str,
    trigger_id: &str,
    body: &[u8],
    signature: Option<&[u8]>,
) -> ApiResult<String> {
    let not_found = || ApiError::NotFound("");
    let signature = signature.ok_or_else(not_found)?;
    let trigger_id: i64 = trigger_id.parse().map_err(|_| not_found())?;
    let project = crate::domain::projects::lookup(state, id)
        .await?
        .ok_or_else(not_found)?;
    let trigger = state
        .store
        .trigger(project.id, trigger_id)
        .await?
        .ok_or_else(not_found)?;
    let token = state
        .sealer
        .open(Purpose::TriggerToken, &trigger.token_sealed)
        .map_err(ApiError::Internal)?;
    if !verifies(token.as_bytes(), body, signature) {
        return Err(not_found());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn each_senders_header_is_read() {
        let sig = sign("k", b"{}");
        let github = format!("sha256={sig}");
        for headers in [
            vec![("x-hub-signature-256", Some(github.as_str()))],
            vec![("x-gitea-signature", Some(sig.as_str()))],
            vec![("x-forgejo-signature", Some(sig.as_str()))],
        ] {
            let got = signature(&headers).unwrap();
            assert!(verifies(b"k", b"{}", &got));
            assert!(!verifies(b"other", b"{}", &got));
            assert!(!verifies(b"k", b"{ }", &got));
        }
        // GitHub's header needs its `sha256=` prefix; not hex is no signature.
        assert!(signature(&[("x-hub-signature-256", Some(sig.as_str()))]).is_none());
        assert!(signature(&[("x-gitea-signature", Some("zz"))]).is_none());
        assert!(signature(&[]).is_none());
    }

    #[test]
    fn the_known_github_example_verifies() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let sig = hex::decode("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
            .unwrap();
        assert!(verifies(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            &sig
        ));
    }
}
