//! Secrets the server must be able to show again (trigger tokens, later masked CI variables)
//! are sealed with ChaCha20-Poly1305 under a server key, so a database dump alone does not
//! hand them out. Lookups never decrypt: they go by SHA-256 digest (see `secrets.rs`).
//!
//! The key is 32 random bytes in a file (default `<data-dir>/pipewright.key`, mode 0600),
//! created on first start. Servers that share a PostgreSQL database must share the key file.
//! Each sealed value is bound to its purpose (the AEAD's associated data), so a value sealed as
//! one kind of secret cannot be replayed as another.

use std::path::Path;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// What a sealed value is for; part of the authenticated data.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    TriggerToken,
    PipelineVariable,
    CiVariable,
    HookToken,
    ScheduleVariable,
    RegistrationToken,
    ScheduleInput,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::TriggerToken => b"pipewright:trigger-token:v1",
            Purpose::PipelineVariable => b"pipewright:pipeline-variable:v1",
            Purpose::CiVariable => b"pipewright:ci-variable:v1",
            Purpose::HookToken => b"pipewright:hook-token:v1",
            Purpose::ScheduleVariable => b"pipewright:schedule-variable:v1",
            Purpose::RegistrationToken => b"pipewright:runner-registration-token:v1",
            Purpose::ScheduleInput => b"pipewright:schedule-input:v1",
        }
    }
}

#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(****)")
    }
}

impl Sealer {
    pub fn from_key(key: &[u8; KEY_LEN]) -> Self {
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// Loads the key file, creating it with a fresh random key (mode 0600) if it is missing.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                    anyhow::anyhow!("{} must hold exactly {KEY_LEN} bytes", path.display())
                })?;
                Ok(Sealer::from_key(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_LEN];
                OsRng.fill_bytes(&mut key);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, &key)?;
                Ok(Sealer::from_key(&key))
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
        }
    }

    /// Seals `plain`; the result is hex (nonce followed by ciphertext and tag).
    pub fn seal(&self, purpose: Purpose, plain: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: purpose.label(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(hex::encode(out))
    }

    /// Opens a sealed value; fails if it was sealed under another key or purpose, or altered.
    pub fn open(&self, purpose: Purpose, sealed: &str) -> anyhow::Result<String> {
        let bytes = hex::decode(sealed).map_err(|_| anyhow::anyhow!("sealed value is not hex"))?;
        if bytes.len() < NONCE_LEN {
            anyhow::bail!("sealed value is too short");
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: purpose.label(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealed value does not open with this server key"))?;
        String::from_utf8(plain).map_err(|_| anyhow::anyhow!("sealed value is not UTF-8"))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_detect_tampering() {
        let sealer = Sealer::from_key(&[7u8; 32]);
        let sealed = sealer
            .seal(Purpose::TriggerToken, "glptt-abc")
            .expect("seal");
        assert!(!sealed.contains("glptt"));
        assert_eq!(
            sealer.open(Purpose::TriggerToken, &sealed).expect("open"),
            "glptt-abc"
        );
        let other = Sealer::from_key(&[8u8; 32]);
        assert!(other.open(Purpose::TriggerToken, &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.replace_range(30..32, if &sealed[30..32] == "00" { "11" } else { "00" });
        assert!(sealer.open(Purpose::TriggerToken, &tampered).is_err());
        assert!(format!("{sealer:?}").contains("****"));
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("pw-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("pipewright.key");
        let a = Sealer::load_or_create(&path).expect("create");
        let sealed = a.seal(Purpose::TriggerToken, "x").expect("seal");
        let b = Sealer::load_or_create(&path).expect("load");
        assert_eq!(b.open(Purpose::TriggerToken, &sealed).expect("open"), "x");
        std::fs::remove_dir_all(&dir).ok();
    }
}
