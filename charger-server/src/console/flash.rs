//! Post/redirect/get: a form's outcome travels to the page it redirects to in a short-lived
//! cookie (sealed with AES-256-GCM under the console key, HttpOnly, SameSite=Strict, 60 s),
//! which that page shows once and clears. A reload then shows the page, never sends the form
//! again; a firmware bundle shown once (a rotation) is in this cookie only until it is shown.
//! A flash is bound to the session it was made in (its cookie is part of the sealed
//! data): it opens for no other session, and not after sign-out.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

/// The cookie's name.
pub const COOKIE: &str = "mybox_flash";
const AAD: &[u8] = b"mybox-console-flash/v1";
/// A flash lives this long: enough for the redirect, not for a later visit.
const MAX_AGE_S: u64 = 60;

/// What a form's outcome shows on the next page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Flash {
    /// True for a success, false for a refusal or an error.
    pub ok: bool,
    pub text: String,
    /// A new firmware bundle, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<crate::devices::Bundle>,
    /// A claim code (the charger, the code), shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<(String, String)>,
    /// A new API token, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Self {
        Flash {
            ok: true,
            text: text.into(),
            ..Flash::default()
        }
    }

    pub fn bad(text: impl Into<String>) -> Self {
        Flash {
            ok: false,
            text: text.into(),
            ..Flash::default()
        }
    }
}

/// What is sealed: the flash and when it was made (a flash opens for [`MAX_AGE_S`] only,
/// whatever the cookie's own expiry).
#[derive(Serialize, Deserialize)]
struct Sealed {
    at: i64,
    flash: Flash,
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn seal(key: &[u8; 32], session: &str, flash: &Flash) -> Option<String> {
    seal_at(key, session, flash, now_s())
}

fn seal_at(key: &[u8; 32], session: &str, flash: &Flash, at: i64) -> Option<String> {
    let plain = serde_json::to_vec(&Sealed {
        at,
        flash: flash.clone(),
    })
    .ok()?;
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad(session),
            },
        )
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Some(URL_SAFE_NO_PAD.encode(out))
}

fn open(key: &[u8; 32], session: &str, value: &str) -> Option<Flash> {
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    if bytes.len() < 28 {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(12);
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad(session),
            },
        )
        .ok()?;
    let sealed: Sealed = serde_json::from_slice(&plain).ok()?;
    let age = now_s().saturating_sub(sealed.at);
    (0..=MAX_AGE_S as i64)
        .contains(&age)
        .then_some(sealed.flash)
}

/// The sealed data's context: the purpose and the session's cookie.
fn aad(session: &str) -> Vec<u8> {
    let mut aad = AAD.to_vec();
    aad.push(0);
    aad.extend_from_slice(session.as_bytes());
    aad
}

/// The answer to a form of `session`: 303 to `to`, with `flash` for that page to show once.
pub fn redirect(key: &[u8; 32], session: &str, secure: bool, to: &str, flash: Flash) -> Response {
    let mut res = Redirect::to(to).into_response();
    if let Some(value) = seal(key, session, &flash) {
        let secure = if secure { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_S}{secure}"
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// The flash a request of `session` carries, if any (and the header that clears it once
/// shown).
pub fn take(key: &[u8; 32], session: &str, headers: &HeaderMap) -> Option<(Flash, HeaderValue)> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| super::session::cookie_value(h, COOKIE))?;
    let flash = open(key, session, value)?;
    let clear =
        HeaderValue::from_static("mybox_flash=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Some((flash, clear))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_opens_only_under_its_key_and_session() {
        let key = [3u8; 32];
        let f = Flash::ok("Done.");
        let sealed = seal(&key, "s1", &f).expect("sealed");
        assert_eq!(open(&key, "s1", &sealed), Some(f));
        assert_eq!(open(&[4u8; 32], "s1", &sealed), None);
        assert_eq!(open(&key, "s2", &sealed), None, "another session's flash");
        assert_eq!(open(&key, "s1", "garbage"), None);
        let old = seal_at(&key, "s1", &Flash::ok("Done."), now_s() - 61).expect("sealed");
        assert_eq!(open(&key, "s1", &old), None, "a flash older than 60 s");
    }
}
