//! Secrets at rest: XChaCha20-Poly1305 under a master key, with the row (and column) as
//! associated data so a sealed value copied into another row does not open.
//!
//! Sealed layout: `[key id: 1 byte][nonce: 24 bytes][ciphertext + tag]`. The key id byte lets
//! a later master-key rotation tell old blobs from new ones.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::StoreError;

const KEY_ID: u8 = 1;
const NONCE_LEN: usize = 24;

/// The 32-byte master key. Debug never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Read `HOOKWARDEN_MASTER_KEY`'s format: base64 (standard or URL-safe) of exactly 32 bytes.
    pub fn from_base64(raw: &str) -> Result<Self, StoreError> {
        let raw = raw.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(raw))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
            .map_err(|_| StoreError::MasterKey("the master key is not base64".into()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            StoreError::MasterKey(format!(
                "the master key decodes to {} bytes; it must be 32 (generate one with `openssl rand -base64 32`)",
                b.len()
            ))
        })?;
        Ok(Self(key))
    }

    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Load the key file, or create it (mode 0600) when it does not exist yet.
    pub fn load_or_create_file(path: &Path) -> Result<Self, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text)
                .map_err(|e| StoreError::MasterKey(format!("key file {}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private_file(path, &key.to_base64())?;
                tracing::info!(path = %path.display(), "created a new master key file");
                Ok(key)
            }
            Err(e) => Err(StoreError::MasterKey(format!(
                "cannot read key file {}: {e}",
                path.display()
            ))),
        }
    }
}

fn write_private_file(path: &Path, text: &str) -> Result<(), StoreError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        StoreError::MasterKey(format!("cannot create key file {}: {e}", path.display()))
    })?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| {
            StoreError::MasterKey(format!("cannot write key file {}: {e}", path.display()))
        })
}

/// The key file that sits beside a SQLite database file.
pub fn key_file_beside(db_file: &Path) -> PathBuf {
    let mut name = db_file.file_name().unwrap_or_default().to_os_string();
    name.push(".key");
    db_file.with_file_name(name)
}

/// Seals and opens secrets for one master key.
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            aead: XChaCha20Poly1305::new((&key.0).into()),
        }
    }

    /// `aad` names where the value lives, e.g. `connector/<row id>/key`.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(KEY_ID);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        if sealed.len() < 1 + NONCE_LEN + 16 {
            return Err(StoreError::Decrypt(aad.to_owned()));
        }
        if sealed[0] != KEY_ID {
            return Err(StoreError::Decrypt(format!(
                "{aad} (sealed under key id {}, this node has key id {KEY_ID})",
                sealed[0]
            )));
        }
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        self.aead
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Decrypt(aad.to_owned()))
    }

    pub fn seal_secret(&self, aad: &str, secret: &SecretString) -> Vec<u8> {
        self.seal(aad, secret.expose_secret().as_bytes())
    }

    pub fn open_secret(&self, aad: &str, sealed: &[u8]) -> Result<SecretString, StoreError> {
        let bytes = self.open(aad, sealed)?;
        String::from_utf8(bytes)
            .map(SecretString::from)
            .map_err(|_| StoreError::Decrypt(aad.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_where_they_were_sealed() {
        let cipher = Cipher::new(&MasterKey::generate());
        let sealed = cipher.seal("connector/a/key", b"s3cret");
        assert_eq!(cipher.open("connector/a/key", &sealed).unwrap(), b"s3cret");
        assert!(cipher.open("connector/b/key", &sealed).is_err());
        let other = Cipher::new(&MasterKey::generate());
        assert!(other.open("connector/a/key", &sealed).is_err());
        assert!(cipher.open("connector/a/key", &sealed[..10]).is_err());
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        let key = MasterKey::generate();
        assert!(MasterKey::from_base64(&key.to_base64()).is_ok());
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64("AAAA").is_err());
    }
}
