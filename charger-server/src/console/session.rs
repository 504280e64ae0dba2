//! The console's sign-in: an API token exchanged for a session cookie.
//!
//! The cookie holds the token sealed (AES-256-GCM, key derived from the server secret) with
//! its expiry, so every instance sharing the secret reads it, and a revoked token stops
//! working at once (each request authenticates it again, as REST does). It is HttpOnly,
//! SameSite=Strict, and Secure under HTTPS. Every form carries a CSRF token derived from
//! the cookie (HKDF with the cookie as salt), checked on every POST.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// The cookie's name.
pub const COOKIE: &str = "mybox_session";
/// How long a console session lasts.
pub const SESSION_HOURS: i64 = 12;
const AAD: &[u8] = b"mybox-console-session/v1";

/// Seals `token` with its expiry into a cookie value.
pub fn seal(key: &[u8; 32], token: &str, now_ms: i64) -> Option<String> {
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let expires = now_ms + SESSION_HOURS * 3_600_000;
    let plain = format!("{expires}\n{token}");
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: AAD,
            },
        )
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Some(URL_SAFE_NO_PAD.encode(out))
}

/// The token in a cookie value, if it opens and has not expired.
pub fn open(key: &[u8; 32], cookie: &str, now_ms: i64) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cookie).ok()?;
    if bytes.len() < 12 + 16 {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(12);
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: AAD,
            },
        )
        .ok()?;
    let text = String::from_utf8(plain).ok()?;
    let (expires, token) = text.split_once('\n')?;
    (expires.parse::<i64>().ok()? > now_ms).then(|| token.to_owned())
}

/// The CSRF token of a session cookie.
pub fn csrf(key: &[u8; 32], cookie: &str) -> String {
    let hk = Hkdf::<Sha256>::new(Some(cookie.as_bytes()), key);
    let mut out = [0u8; 16];
    // 16 bytes is a valid HKDF-SHA256 output length.
    let _ = hk.expand(b"mybox-console-csrf/v1", &mut out);
    hex::encode(out)
}

/// Whether `given` is the session's CSRF token.
pub fn csrf_ok(key: &[u8; 32], cookie: &str, given: &str) -> bool {
    csrf(key, cookie).as_bytes().ct_eq(given.as_bytes()).into()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .map(str::trim)
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_opens_until_it_expires_and_only_under_its_key() {
        let key = [7u8; 32];
        let c = seal(&key, "cht_token", 1_000).expect("sealed");
        assert_eq!(open(&key, &c, 2_000).as_deref(), Some("cht_token"));
        assert_eq!(open(&key, &c, 1_000 + SESSION_HOURS * 3_600_000), None);
        assert_eq!(open(&[8u8; 32], &c, 2_000), None);
        assert!(csrf_ok(&key, &c, &csrf(&key, &c)));
        assert!(!csrf_ok(&key, &c, "00"));
        assert_eq!(cookie_value("a=1; mybox_session=xyz", COOKIE), Some("xyz"));
    }
}
