//! Generating tokens and storing only what cannot be turned back into them.
//!
//! Tokens are random and long, so a fast digest (SHA-256) is enough to make a database dump
//! useless: there is nothing to brute-force. Lookups go by digest through a unique index; the
//! digest is compared again in constant time before a token is accepted. Passwords are
//! low-entropy, so they get argon2.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Personal access tokens (GitLab's `glpat-`).
pub const PAT_PREFIX: &str = "glpat-";
/// Runner authentication tokens (GitLab's `glrt-`).
pub const RUNNER_TOKEN_PREFIX: &str = "glrt-";
/// Pipeline trigger tokens (GitLab's `glptt-`).
pub const TRIGGER_PREFIX: &str = "glptt-";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `prefix` followed by `len` random characters from a 64-letter alphabet (6 bits each; the
/// alphabet size divides 256, so there is no modulo bias).
pub fn random_token(prefix: &str, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    OsRng.fill_bytes(&mut bytes);
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    out.extend(bytes.iter().map(|b| ALPHABET[usize::from(b & 63)] as char));
    out
}

/// `prefix` followed by `2 * bytes` lowercase hex characters (GitLab's trigger-token shape).
pub fn random_hex_token(prefix: &str, bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    OsRng.fill_bytes(&mut raw);
    format!("{prefix}{}", hex::encode(raw))
}

/// The stored form of a token: SHA-256, lowercase hex.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two digests without an early exit that would leak how much matched.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

/// [`hash_password`] on the blocking pool (argon2 takes tens of milliseconds on purpose).
pub async fn hash_password_async(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password)).await?
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_prefix_and_length() {
        let t = random_token("glpat-", 32);
        assert!(t.starts_with("glpat-"));
        assert_eq!(t.len(), 38);
        let h = random_hex_token("glptt-", 20);
        assert_eq!(h.len(), 46);
        assert!(
            h[6..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn passwords_verify() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn digests_compare() {
        let d = token_digest("glpat-x");
        assert!(digests_equal(&d, &token_digest("glpat-x")));
        assert!(!digests_equal(&d, &token_digest("glpat-y")));
    }
}
