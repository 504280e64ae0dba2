//! The console's sign-in: an API token exchanged for a server-side session.
//!
//! The cookie holds a random session id (256 bits); the database keeps only its hash, with
//! the hash of the token it was signed in with and its expiry. So signing out ends the
//! session at once on every instance, and a revoked token ends its sessions too (each
//! request authenticates the token again, as REST does). The cookie is HttpOnly,
//! SameSite=Strict, and Secure under HTTPS. Every form carries a CSRF token derived from
//! the cookie (HKDF with the cookie as salt), checked on every POST; sign-in itself, which
//! has no session yet, checks that the form comes from this site (`Origin`,
//! `Sec-Fetch-Site`), so no other site can sign a visitor in as someone else.

use axum::http::{header, HeaderMap};
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// The cookie's name.
pub const COOKIE: &str = "mybox_session";
/// How long a console session lasts.
pub const SESSION_HOURS: i64 = 12;

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

/// Whether a form was posted from this site: a browser says where a request comes from
/// (`Sec-Fetch-Site`, `Origin`); a request from another site, or from an opaque origin
/// (`Origin: null`), is refused. A client that sends neither is not a browser, and
/// cannot carry a visitor's session anyway.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return true;
    };
    let Some(host) = text(header::HOST.as_str()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_their_cookie_and_key() {
        let key = [7u8; 32];
        assert!(csrf_ok(&key, "abc", &csrf(&key, "abc")));
        assert!(!csrf_ok(&key, "abc", &csrf(&key, "abd")));
        assert!(!csrf_ok(&[8u8; 32], "abc", &csrf(&key, "abc")));
        assert!(!csrf_ok(&key, "abc", "00"));
        assert_eq!(cookie_value("a=1; mybox_session=xyz", COOKIE), Some("xyz"));
    }

    #[test]
    fn forms_from_other_sites_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().expect("a header value"));
            }
            h
        };
        assert!(same_origin(&headers(&[("host", "console.example:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "console.example:8080"),
            ("origin", "https://console.example:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "console.example:8080"),
            ("origin", "https://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "console.example:8080"),
            ("origin", "null"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "console.example:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
    }
}
