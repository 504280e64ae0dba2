//! Server secret, device keys, passwords and tokens.
//!
//! - The server secret (32 random bytes) lives in a file created with mode 0600 on first
//!   start. Its fingerprint is kept in the database, so a server started with the wrong
//!   secret refuses to run instead of handing out wrong keys.
//! - A device key is HKDF-SHA256(server secret, info = `mybox-device-key/v<version>/<device>`):
//!   never stored, reproducible by every server instance that shares the secret.
//! - A device's MQTT password is derived the same way (info `mybox-mqtt-password/...`), so
//!   an external broker's accounts can be provisioned again from the database; API tokens
//!   are 192 or 256 random bits. Only their SHA-256 is stored (a slow hash protects
//!   low-entropy passwords and adds nothing here).

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use charger_protocol::DeviceKey;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A string that must never be printed: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// The 32-byte server secret from which device keys derive.
#[derive(Clone)]
pub struct ServerSecret([u8; 32]);

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

impl ServerSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads the secret file, or creates it (mode 0600, 64 hex characters) when absent.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the secret file must hold 64 hexadecimal characters",
                    )
                })?;
                Ok(Self(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let mut file = create_private_file(path)?;
                file.write_all(hex::encode(bytes).as_bytes())?;
                file.sync_all()?;
                Ok(Self(bytes))
            }
            Err(e) => Err(e),
        }
    }

    /// A value that identifies the secret without revealing it, kept in the database.
    pub fn fingerprint(&self) -> String {
        let hk = Hkdf::<Sha256>::new(None, &self.0);
        let mut out = [0u8; 16];
        // 16 bytes is far below HKDF-SHA256's limit of 8160, so expand cannot fail.
        hk.expand(b"mybox-secret-fingerprint", &mut out)
            .expect("HKDF output length is valid");
        hex::encode(out)
    }

    /// The AES-256 key of `device` at `version`.
    pub fn device_key(&self, device: &str, version: i64) -> DeviceKey {
        let hk = Hkdf::<Sha256>::new(None, &self.0);
        let info = format!("mybox-device-key/v{version}/{device}");
        let mut out = [0u8; 32];
        hk.expand(info.as_bytes(), &mut out)
            .expect("HKDF output length is valid");
        DeviceKey::from_bytes(out)
    }

    /// The key of the console's session cookies (HKDF info `mybox-console-cookie/v1`).
    pub fn console_key(&self) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(None, &self.0);
        let mut out = [0u8; 32];
        hk.expand(b"mybox-console-cookie/v1", &mut out)
            .expect("HKDF output length is valid");
        out
    }

    /// A device's MQTT password at a credentials version: HKDF-SHA256(server secret, info =
    /// `mybox-mqtt-password/v<version>/<device>`), 24 bytes as URL-safe base64. Derived
    /// (only its hash is stored) so that every instance can provision the charger on an
    /// external broker again, the way it derives the device key.
    pub fn device_password(&self, device: &str, version: i64) -> String {
        let hk = Hkdf::<Sha256>::new(None, &self.0);
        let info = format!("mybox-mqtt-password/v{version}/{device}");
        let mut out = [0u8; 24];
        hk.expand(info.as_bytes(), &mut out)
            .expect("HKDF output length is valid");
        URL_SAFE_NO_PAD.encode(out)
    }

    /// An OCPP charger's HTTP Basic password at a key version: 20 bytes as 40 lower-case
    /// hexadecimal digits (what the 1.6 security extension's `AuthorizationKey` holds).
    pub fn ocpp_password(&self, device: &str, version: i64) -> String {
        let hk = Hkdf::<Sha256>::new(None, &self.0);
        let info = format!("mybox-ocpp-password/v{version}/{device}");
        let mut out = [0u8; 20];
        hk.expand(info.as_bytes(), &mut out)
            .expect("HKDF output length is valid");
        hex::encode(out)
    }
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// `n` random bytes as URL-safe base64 without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 hex of a high-entropy secret (password, token, claim code).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time check of `secret` against a stored [`hash_secret`] value.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    let computed = hash_secret(secret);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_keys_are_stable_and_distinct() {
        let s = ServerSecret::from_bytes([7; 32]);
        assert_eq!(s.device_key("a", 1), s.device_key("a", 1));
        assert_ne!(s.device_key("a", 1), s.device_key("b", 1));
        assert_ne!(s.device_key("a", 1), s.device_key("a", 2));
        assert_ne!(
            s.device_key("a", 1),
            ServerSecret::from_bytes([8; 32]).device_key("a", 1)
        );
    }

    #[test]
    fn secret_file_is_created_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("charger-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("server.secret");
        let a = ServerSecret::load_or_create(&path).expect("create");
        let b = ServerSecret::load_or_create(&path).expect("read");
        assert_eq!(a.fingerprint(), b.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn secrets_verify_only_against_their_own_hash() {
        let h = hash_secret("s3cret");
        assert!(verify_secret("s3cret", &h));
        assert!(!verify_secret("s3cres", &h));
        assert_eq!(format!("{:?}", Secret::new("x")), "<redacted>");
    }
}
