//! New credentials for a charger, delivered so that only the charger can read them: the
//! exchange behind `ownership-claim` and `rekey`.
//!
//! 1. The charger makes a fresh X25519 key pair ([`KeyExchange::new`]) and sends its
//!    public key, base64, as `pub`.
//! 2. The server makes its own one-time key pair, computes the shared secret, and derives
//!    a 256-bit key with HKDF-SHA256: salt = charger public key || server public key (64
//!    bytes), input = the X25519 shared secret, info = `mybox-credentials/v1|<device>|<owner>`
//!    (the owner the credentials are for: the new owner after a claim).
//! 3. It seals `{"password": "...", "key": "<64 hex>"}` with AES-256-GCM under that key
//!    (random 12-byte nonce, associated data = the same info string) and answers
//!    `{"owner", "pub": <server public key, base64>, "credentials": <base64 nonce || ciphertext || tag>}`.
//! 4. The charger opens `credentials` with [`KeyExchange::open`].
//!
//! Whoever recorded the whole exchange, even holding the charger's previous device key,
//! sees two public keys and a ciphertext: without one of the two private keys the shared
//! secret, and so the new credentials, stay unknown.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::envelope::{DeviceKey, EnvelopeError, NONCE_LEN, TAG_LEN};

/// The credentials a charger receives: its new MQTT password and device key (64 hex).
/// `Debug` shows neither.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCredentials {
    pub password: String,
    pub key: String,
}

impl fmt::Debug for NewCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewCredentials(<redacted>)")
    }
}

impl NewCredentials {
    /// The new device key, checked.
    pub fn device_key(&self) -> Result<DeviceKey, EnvelopeError> {
        DeviceKey::from_hex(&self.key)
    }
}

/// The server's sealed answer: its one-time public key and the sealed credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCredentials {
    /// Base64 of the server's 32-byte X25519 public key.
    pub public: String,
    /// Base64 of nonce || ciphertext || tag.
    pub credentials: String,
}

/// The associated data and HKDF info: `mybox-credentials/v1|<device>|<owner>`.
pub fn credentials_context(device: &str, owner: &str) -> String {
    format!("mybox-credentials/v1|{device}|{owner}")
}

/// Reads a base64 X25519 public key (32 bytes).
pub fn parse_public_key(b64: &str) -> Result<[u8; 32], EnvelopeError> {
    let raw = BASE64
        .decode(b64.as_bytes())
        .map_err(|_| EnvelopeError::BadBase64)?;
    <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| EnvelopeError::BadKey)
}

fn wrapping_key(
    shared: &[u8; 32],
    charger_pub: &[u8; 32],
    server_pub: &[u8; 32],
    info: &str,
) -> [u8; 32] {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(charger_pub);
    salt[32..].copy_from_slice(server_pub);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit, so expand cannot fail.
    if hk.expand(info.as_bytes(), &mut out).is_err() {
        unreachable!("HKDF output length is valid");
    }
    out
}

/// The charger's side: a one-time X25519 key pair. `Debug` hides the private key.
pub struct KeyExchange {
    secret: StaticSecret,
    public: PublicKey,
}

impl fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyExchange(pub {})", self.public_base64())
    }
}

impl Default for KeyExchange {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyExchange {
    /// A fresh key pair from the operating system's random source.
    pub fn new() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_secret(bytes)
    }

    /// A key pair from a chosen private key. Only for test vectors: a real charger calls
    /// [`KeyExchange::new`] for every exchange.
    pub fn from_secret(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// The public key to send as `pub`: base64 (standard, padded) of its 32 bytes.
    pub fn public_base64(&self) -> String {
        BASE64.encode(self.public.as_bytes())
    }

    /// Opens the server's answer (`pub` and `credentials`) for `device` under `owner`.
    pub fn open(
        &self,
        device: &str,
        owner: &str,
        server_pub: &str,
        credentials: &str,
    ) -> Result<NewCredentials, EnvelopeError> {
        let server_pub = parse_public_key(server_pub)?;
        let shared = self.secret.diffie_hellman(&PublicKey::from(server_pub));
        let info = credentials_context(device, owner);
        let key = wrapping_key(
            shared.as_bytes(),
            self.public.as_bytes(),
            &server_pub,
            &info,
        );
        let raw = BASE64
            .decode(credentials.as_bytes())
            .map_err(|_| EnvelopeError::BadBase64)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(EnvelopeError::TooShort);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = Aes256Gcm::new((&key).into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: info.as_bytes(),
                },
            )
            .map_err(|_| EnvelopeError::Unauthentic)?;
        serde_json::from_slice(&plain).map_err(|_| EnvelopeError::Unauthentic)
    }
}

/// The server's side: seals `credentials` for the charger whose public key is
/// `charger_pub` (base64), with a fresh one-time key pair and nonce.
pub fn seal_credentials(
    device: &str,
    owner: &str,
    charger_pub: &str,
    credentials: &NewCredentials,
) -> Result<SealedCredentials, EnvelopeError> {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    seal_credentials_with(device, owner, charger_pub, credentials, secret, nonce)
}

/// [`seal_credentials`] with a chosen server private key and nonce. Only for test
/// vectors: both must be fresh for every exchange.
pub fn seal_credentials_with(
    device: &str,
    owner: &str,
    charger_pub: &str,
    credentials: &NewCredentials,
    server_secret: [u8; 32],
    nonce: [u8; NONCE_LEN],
) -> Result<SealedCredentials, EnvelopeError> {
    let charger_pub = parse_public_key(charger_pub)?;
    let server = KeyExchange::from_secret(server_secret);
    let shared = server.secret.diffie_hellman(&PublicKey::from(charger_pub));
    if !shared.was_contributory() {
        // A low-order public key would make the "shared" secret known to everyone.
        return Err(EnvelopeError::BadKey);
    }
    let info = credentials_context(device, owner);
    let key = wrapping_key(
        shared.as_bytes(),
        &charger_pub,
        server.public.as_bytes(),
        &info,
    );
    let plain = serde_json::to_vec(credentials).map_err(|_| EnvelopeError::Unauthentic)?;
    let sealed = Aes256Gcm::new((&key).into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: info.as_bytes(),
            },
        )
        .map_err(|_| EnvelopeError::Unauthentic)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(SealedCredentials {
        public: server.public_base64(),
        credentials: BASE64.encode(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> NewCredentials {
        NewCredentials {
            password: "new-password".into(),
            key: "22".repeat(32),
        }
    }

    #[test]
    fn only_the_charger_that_made_the_key_pair_opens_the_credentials() {
        let charger = KeyExchange::new();
        let sealed =
            seal_credentials("dev-1", "beta", &charger.public_base64(), &creds()).expect("seal");
        let opened = charger
            .open("dev-1", "beta", &sealed.public, &sealed.credentials)
            .expect("open");
        assert_eq!(opened, creds());
        // Someone else with their own key pair (an eavesdropper) cannot.
        let other = KeyExchange::new();
        assert_eq!(
            other.open("dev-1", "beta", &sealed.public, &sealed.credentials),
            Err(EnvelopeError::Unauthentic)
        );
        // Bound to the device and the owner.
        assert!(charger
            .open("dev-2", "beta", &sealed.public, &sealed.credentials)
            .is_err());
        assert!(charger
            .open("dev-1", "acme", &sealed.public, &sealed.credentials)
            .is_err());
    }

    #[test]
    fn bad_public_keys_are_refused() {
        assert_eq!(
            seal_credentials("d", "o", "not base64!", &creds()),
            Err(EnvelopeError::BadBase64)
        );
        assert_eq!(
            seal_credentials("d", "o", &BASE64.encode([1u8; 16]), &creds()),
            Err(EnvelopeError::BadKey)
        );
        // The all-zero point has low order: no secret would be shared.
        assert_eq!(
            seal_credentials("d", "o", &BASE64.encode([0u8; 32]), &creds()),
            Err(EnvelopeError::BadKey)
        );
    }

    #[test]
    fn debug_hides_secrets() {
        assert_eq!(format!("{:?}", creds()), "NewCredentials(<redacted>)");
        assert!(format!("{:?}", KeyExchange::new()).starts_with("KeyExchange(pub "));
    }
}
