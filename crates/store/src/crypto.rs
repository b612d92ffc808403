//! Secrets at rest: XChaCha20-Poly1305 under a master key, with the row (and column) as
//! associated data so a sealed value copied into another row does not open.
//!
//! Sealed layout: `[key id: 1 byte][nonce: 24 bytes][ciphertext + tag]`. A ring of master keys
//! seals under its first key and opens with any: the id byte names the key (derived from a hash
//! of it, see `MasterKey::id`), so opening tries only the keys with that id. Values written
//! before rings all carry id 1 (`LEGACY_KEY_ID`), which no derived id takes: every key of the
//! ring is tried for them.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The id byte of every value sealed before master key rings (one key, a constant id).
pub const LEGACY_KEY_ID: u8 = 1;
const NONCE_LEN: usize = 24;
/// What a key's id is derived from, besides the key: a hash of the key alone is no one's business.
const KEY_ID_CONTEXT: &[u8] = b"hookwarden master key id v1\0";

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

    /// Whether two keys are the same key.
    pub fn same_key(&self, other: &MasterKey) -> bool {
        self.0 == other.0
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// The byte that names this key in what it seals: the first byte of a keyed-context SHA-256
    /// of the key that is not `LEGACY_KEY_ID`. Two keys may share an id (1 in 255); opening then
    /// tries both.
    pub fn id(&self) -> u8 {
        let digest = Sha256::new()
            .chain_update(KEY_ID_CONTEXT)
            .chain_update(self.0)
            .finalize();
        digest
            .iter()
            .copied()
            .find(|b| *b != LEGACY_KEY_ID)
            .unwrap_or(0)
    }

    /// Load the key file beside a database. A file that group or others may read or write is
    /// refused (Unix); a missing file is created (mode 0600) only when `may_create`, i.e. when
    /// the database holds no sealed value that another key would have to open.
    pub fn load_or_create_file(path: &Path, may_create: bool) -> Result<Self, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private_file(path)?;
                Self::from_base64(&text)
                    .map_err(|e| StoreError::MasterKey(format!("key file {}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
                let key = Self::generate();
                match write_private_file(path, &key.to_base64()) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "created a new master key file");
                        Ok(key)
                    }
                    // Another process opening the same new database wrote it first: use theirs.
                    Err(e) if path.exists() => {
                        tracing::debug!(error = %e, "the key file appeared meanwhile");
                        Self::load_or_create_file(path, false)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::MasterKey(format!(
                "the key file {} is missing, but the database beside it holds sealed secrets that only \
                 the key they were sealed with opens: restore that file (from the backup or the host the \
                 database came from), or set HOOKWARDEN_MASTER_KEYS (or HOOKWARDEN_MASTER_KEY) to that key. \
                 No new key was created",
                path.display()
            ))),
            Err(e) => Err(StoreError::MasterKey(format!(
                "cannot read key file {}: {e}",
                path.display()
            ))),
        }
    }
}

/// The key file must be readable by its owner alone.
fn check_private_file(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| {
                StoreError::MasterKey(format!("cannot read key file {}: {e}", path.display()))
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::MasterKey(format!(
                "the key file {} may be read or written by group or others (mode {mode:03o}); \
                 fix: chmod 600 {}",
                path.display(),
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
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

/// The master keys a node holds: the first seals, every one opens. Never empty, no key twice.
#[derive(Clone)]
pub struct MasterKeyRing(Vec<MasterKey>);

impl fmt::Debug for MasterKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKeyRing([redacted]; ids {})", self.ids_text())
    }
}

impl From<MasterKey> for MasterKeyRing {
    fn from(key: MasterKey) -> Self {
        Self(vec![key])
    }
}

impl MasterKeyRing {
    pub fn new(keys: Vec<MasterKey>) -> Result<Self, StoreError> {
        if keys.is_empty() {
            return Err(StoreError::MasterKey(
                "the master key ring is empty: give at least one key".into(),
            ));
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.0 == key.0) {
                return Err(StoreError::MasterKey(format!(
                    "key {} of the ring is the same key as an earlier one: list each key once",
                    i + 1
                )));
            }
        }
        Ok(Self(keys))
    }

    /// `HOOKWARDEN_MASTER_KEYS`'s format: base64 keys separated by commas, the sealing key first.
    pub fn parse_list(raw: &str) -> Result<Self, StoreError> {
        let keys = raw
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
            .map(|(i, k)| {
                MasterKey::from_base64(k).map_err(|e| match e {
                    StoreError::MasterKey(why) => {
                        StoreError::MasterKey(format!("key {} of the list: {why}", i + 1))
                    }
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// The key that seals.
    pub fn first(&self) -> &MasterKey {
        &self.0[0]
    }

    pub fn keys(&self) -> &[MasterKey] {
        &self.0
    }

    /// Each key's id in ring order, as `0x3a, 0x07`.
    pub fn ids_text(&self) -> String {
        self.0
            .iter()
            .map(|k| format!("0x{:02x}", k.id()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A sealed value, opened: its plaintext, and whether it is already as the first key of the
/// ring would seal it (that key, and its id byte), i.e. needs no re-sealing.
pub struct Opened {
    pub plaintext: Vec<u8>,
    pub under_first_key: bool,
}

/// Seals under the first key of a ring, opens with any of them.
pub struct Cipher {
    keys: Vec<(u8, XChaCha20Poly1305)>,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    pub fn new(ring: &MasterKeyRing) -> Self {
        Self {
            keys: ring
                .keys()
                .iter()
                .map(|k| (k.id(), XChaCha20Poly1305::new((&k.0).into())))
                .collect(),
        }
    }

    /// The ids of the ring's keys, in order.
    pub fn key_ids(&self) -> Vec<u8> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    /// `aad` names where the value lives, e.g. `connector/<row id>/key`.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let (id, aead) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(*id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Open with the keys whose id the value names (every key for a legacy value), in ring
    /// order: ids may collide.
    pub fn open_keyed(&self, aad: &str, sealed: &[u8]) -> Result<Opened, StoreError> {
        if sealed.len() < 1 + NONCE_LEN + 16 {
            return Err(StoreError::Decrypt(aad.to_owned()));
        }
        let id = sealed[0];
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        let payload = || Payload {
            msg: &sealed[1 + NONCE_LEN..],
            aad: aad.as_bytes(),
        };
        for (index, (key_id, aead)) in self.keys.iter().enumerate() {
            if *key_id != id && id != LEGACY_KEY_ID {
                continue;
            }
            if let Ok(plaintext) = aead.decrypt(nonce, payload()) {
                return Ok(Opened {
                    plaintext,
                    under_first_key: index == 0 && id == *key_id,
                });
            }
        }
        Err(StoreError::Decrypt(format!(
            "{aad}, sealed with master key id 0x{id:02x}{}; the configured keys have ids {}",
            if id == LEGACY_KEY_ID {
                " (a key from before key rings)"
            } else {
                ""
            },
            self.key_ids()
                .iter()
                .map(|i| format!("0x{i:02x}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.open_keyed(aad, sealed).map(|o| o.plaintext)
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
        let cipher = Cipher::new(&MasterKey::generate().into());
        let sealed = cipher.seal("connector/a/key", b"s3cret");
        assert_eq!(cipher.open("connector/a/key", &sealed).unwrap(), b"s3cret");
        assert!(cipher.open("connector/b/key", &sealed).is_err());
        let other = Cipher::new(&MasterKey::generate().into());
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

    fn ring(keys: &[&MasterKey]) -> Cipher {
        Cipher::new(&MasterKeyRing::new(keys.iter().map(|k| (*k).clone()).collect()).unwrap())
    }

    /// What `seal` wrote before rings: the constant id 1.
    fn seal_legacy(key: &MasterKey, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut sealed = Cipher::new(&key.clone().into()).seal(aad, plaintext);
        sealed[0] = LEGACY_KEY_ID;
        sealed
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let sealed_old = ring(&[&old]).seal("a", b"one");
        assert_eq!(sealed_old[0], old.id());
        let both = ring(&[&new, &old]);
        let opened = both.open_keyed("a", &sealed_old).unwrap();
        assert_eq!(opened.plaintext, b"one");
        assert!(!opened.under_first_key);
        let sealed_new = both.seal("a", b"two");
        assert_eq!(sealed_new[0], new.id());
        assert!(both.open_keyed("a", &sealed_new).unwrap().under_first_key);
        assert_eq!(ring(&[&new]).open("a", &sealed_new).unwrap(), b"two");
        let e = ring(&[&new])
            .open("a", &sealed_old)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("master key id 0x{:02x}", old.id()))
                && e.contains(&format!("0x{:02x}", new.id())),
            "{e}"
        );
    }

    #[test]
    fn values_sealed_before_rings_open_with_any_key_of_the_ring() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let legacy = seal_legacy(&old, "connector/a/key", b"s3cret");
        for cipher in [ring(&[&old]), ring(&[&new, &old]), ring(&[&old, &new])] {
            let opened = cipher.open_keyed("connector/a/key", &legacy).unwrap();
            assert_eq!(opened.plaintext, b"s3cret");
            // Even under the first key, a legacy value is re-sealed: its id byte names no key.
            assert!(!opened.under_first_key);
        }
        let e = ring(&[&new]).open("connector/a/key", &legacy).unwrap_err();
        assert!(
            e.to_string().contains("0x01 (a key from before key rings)"),
            "{e}"
        );
    }

    #[test]
    fn keys_whose_ids_collide_are_each_tried() {
        // Find two keys with one id (1 in 255 per pair: a few hundred tries).
        let first = MasterKey::generate();
        let twin = std::iter::repeat_with(MasterKey::generate)
            .find(|k| k.id() == first.id())
            .unwrap();
        let sealed_by_twin = ring(&[&twin]).seal("a", b"twin");
        let cipher = ring(&[&first, &twin]);
        let opened = cipher.open_keyed("a", &sealed_by_twin).unwrap();
        assert_eq!(opened.plaintext, b"twin");
        assert!(!opened.under_first_key, "sealed by the second key");
        assert!(
            cipher
                .open_keyed("a", &cipher.seal("a", b"x"))
                .unwrap()
                .under_first_key
        );
    }

    #[test]
    fn no_key_takes_the_legacy_id_and_a_ring_lists_each_key_once() {
        for _ in 0..2000 {
            assert_ne!(MasterKey::generate().id(), LEGACY_KEY_ID);
        }
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        let list = format!("{}, {}", a.to_base64(), b.to_base64());
        let parsed = MasterKeyRing::parse_list(&list).unwrap();
        assert_eq!(parsed.keys().len(), 2);
        assert_eq!(parsed.first().id(), a.id());
        let twice = format!("{},{}", a.to_base64(), a.to_base64());
        assert!(MasterKeyRing::parse_list(&twice).is_err());
        assert!(MasterKeyRing::parse_list(" , ").is_err());
        let bad = format!("{},AAAA", a.to_base64());
        let e = MasterKeyRing::parse_list(&bad).unwrap_err().to_string();
        assert!(e.contains("key 2 of the list"), "{e}");
        let debug = format!("{parsed:?}");
        assert!(
            !debug.contains(&a.to_base64()) && debug.contains("redacted"),
            "{debug}"
        );
    }
}
