//! REQ and RES envelopes and their sealing, in two versions.
//!
//! v1 (the seed's format):
//! REQ (device to server): `{"id": <string or integer>, "key": "<64 hex>", "data": {...}}`.
//! RES (server to device): `{"id": <same>, "status": 1|0, "code": <http code>, "data": "<base64>"}`
//! where `data` is base64 (standard, padded) of `nonce(12) || ciphertext || tag(16)`:
//! AES-256-GCM under the device key, over the UTF-8 JSON body, with associated data
//! `<id>|<status>|<code>` (the id as its text).
//!
//! v2 (no key on the wire, requests sealed too):
//! REQ: `{"v": 2, "id": <id>, "data": "<base64 nonce || ciphertext || tag>"}`, the params
//! sealed under the device key with associated data `v2|req|<endpoint>|<id>`;
//! RES: `{"v": 2, "id", "status", "code", "data"}` with associated data
//! `v2|res|<endpoint>|<id>|<status>|<code>`. In both, `<id>` is the id's JSON text (`42`,
//! or `"42"` with its quotes), so neither the endpoint nor the id's type can be changed
//! unseen.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Longest accepted string id.
pub const MAX_ID_LEN: usize = 64;
/// Nonce length of AES-256-GCM as used here.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;

/// What went wrong with an envelope or its sealing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the key must be 64 hexadecimal characters")]
    BadKey,
    #[error("the id must be a string of 1 to 64 characters or an integer")]
    BadId,
    #[error("data is not valid base64")]
    BadBase64,
    #[error("sealed data is too short")]
    TooShort,
    #[error("sealed data does not authenticate under this key and envelope")]
    Unauthentic,
}

/// The envelope version of a REQ (its RES answers in the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// The key travels in the REQ; only the RES is sealed.
    #[default]
    V1,
    /// No key on the wire; both directions sealed.
    V2,
}

/// A request id: the device's own string or integer, echoed back with the same JSON type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Int(i64),
    Str(String),
}

impl RequestId {
    /// Checks the length rule for string ids.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        match self {
            RequestId::Str(s) if s.is_empty() || s.len() > MAX_ID_LEN => Err(EnvelopeError::BadId),
            _ => Ok(()),
        }
    }

    /// The id as JSON text (`42` or `"a1b2"`): distinct for `42` and `"42"`, used as the
    /// idempotency key.
    pub fn json_text(&self) -> String {
        match self {
            RequestId::Int(n) => n.to_string(),
            RequestId::Str(s) => serde_json::Value::String(s.clone()).to_string(),
        }
    }
}

impl fmt::Display for RequestId {
    /// The id's text as used in associated data: `42` or `a1b2` (no quotes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Int(n) => write!(f, "{n}"),
            RequestId::Str(s) => f.write_str(s),
        }
    }
}

/// A device's 256-bit key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey([u8; 32]);

impl DeviceKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex characters, either case.
    pub fn from_hex(s: &str) -> Result<Self, EnvelopeError> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(EnvelopeError::BadKey);
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| EnvelopeError::BadKey)?;
        Ok(Self(out))
    }

    /// Lower-case hex, as printed in the firmware bundle.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison with a key presented in a REQ.
    pub fn ct_eq(&self, other: &DeviceKey) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(<redacted>)")
    }
}

/// Why a REQ could not be read: the machine code, and the id when one could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The request's id, when it could be read (the RES echoes it; otherwise `null`).
    pub id: Option<RequestId>,
    /// `invalid_utf8`, `malformed_json`, `not_an_object`, `missing_id`, `invalid_id`,
    /// `missing_key`, `invalid_key`, `unsupported_version` or `invalid_data`.
    pub error: &'static str,
    pub message: &'static str,
    /// The envelope version, when it could be read (the RES is given the same).
    pub version: Version,
}

impl RequestEnvelope {
    /// Reads a REQ payload, saying precisely what is wrong with a bad one. Every failure
    /// is answered with code 400 and empty `data`.
    pub fn parse(payload: &[u8]) -> Result<RequestEnvelope, RequestError> {
        let fail = |id, error, message| RequestError {
            id,
            error,
            message,
            version: Version::V1,
        };
        let text = std::str::from_utf8(payload)
            .map_err(|_| fail(None, "invalid_utf8", "the payload is not UTF-8"))?;
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| fail(None, "malformed_json", "the payload is not JSON"))?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(fail(
                None,
                "not_an_object",
                "the payload is not a JSON object",
            ));
        };
        let id = match object.remove("id") {
            None => return Err(fail(None, "missing_id", "the request has no id")),
            Some(raw) => serde_json::from_value::<RequestId>(raw)
                .ok()
                .filter(|id| id.validate().is_ok())
                .ok_or_else(|| {
                    fail(
                        None,
                        "invalid_id",
                        "the id must be a string of 1 to 64 characters or an integer",
                    )
                })?,
        };
        match object.remove("v") {
            None => {}
            Some(v) if v == serde_json::json!(1) => {}
            Some(v) if v == serde_json::json!(2) => {
                let Some(serde_json::Value::String(sealed)) = object.remove("data") else {
                    return Err(RequestError {
                        version: Version::V2,
                        ..fail(
                            Some(id),
                            "invalid_data",
                            "v2 data must be the sealed params as a base64 string",
                        )
                    });
                };
                return Ok(RequestEnvelope {
                    v: Some(2),
                    id,
                    key: String::new(),
                    data: serde_json::Value::String(sealed),
                });
            }
            Some(_) => return Err(fail(Some(id), "unsupported_version", "v must be 1 or 2")),
        }
        let key = match object.remove("key") {
            None => return Err(fail(Some(id), "missing_key", "the request has no key")),
            Some(serde_json::Value::String(k)) if DeviceKey::from_hex(&k).is_ok() => k,
            Some(_) => {
                return Err(fail(
                    Some(id),
                    "invalid_key",
                    "the key must be 64 hexadecimal characters",
                ))
            }
        };
        let data = object.remove("data").unwrap_or(serde_json::Value::Null);
        Ok(RequestEnvelope {
            v: None,
            id,
            key,
            data,
        })
    }

    /// The envelope version.
    pub fn version(&self) -> Version {
        match self.v {
            Some(2) => Version::V2,
            _ => Version::V1,
        }
    }
}

/// A REQ as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// `2` for v2; absent (or 1) for v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    pub id: RequestId,
    /// v1: the device key, in clear. Empty (and not sent) in v2.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// v1: the endpoint's params. v2: a string, base64 of nonce || ciphertext || tag.
    pub data: serde_json::Value,
}

/// A RES as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    /// `2` for v2; absent for v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// The REQ's id, `None` (JSON `null`) only when no id could be read.
    pub id: Option<RequestId>,
    /// 1 = success, 0 = error.
    pub status: u8,
    /// The HTTP status code that says which.
    pub code: u16,
    /// base64 of nonce || ciphertext || tag; empty for 401 and unreadable requests.
    pub data: String,
}

impl ResponseEnvelope {
    /// An error answer without sealed data (`data` ""): a request that could not be read
    /// (400, 413), a wrong key (401), the server without its database (503). In the
    /// request's envelope version.
    pub fn unsealed(id: Option<RequestId>, version: Version, code: u16) -> Self {
        Self {
            v: (version == Version::V2).then_some(2),
            id,
            status: 0,
            code,
            data: String::new(),
        }
    }
}

/// The body of every error RES and REST error: `{"error": "<machine_code>", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// The associated data bound to a sealed RES: `<id>|<status>|<code>`.
pub fn associated_data(id: Option<&RequestId>, status: u8, code: u16) -> String {
    match id {
        Some(id) => format!("{id}|{status}|{code}"),
        None => format!("null|{status}|{code}"),
    }
}

/// Seals `body` into a RES with a fresh random nonce.
pub fn seal_response(
    key: &DeviceKey,
    id: RequestId,
    code: u16,
    body: &[u8],
) -> Result<ResponseEnvelope, EnvelopeError> {
    seal_response_with_nonce(key, id, code, body, fresh_nonce())
}

/// Seals with a caller-chosen nonce. Only for test vectors: a nonce must never repeat
/// under one key, so production code calls [`seal_response`].
pub fn seal_response_with_nonce(
    key: &DeviceKey,
    id: RequestId,
    code: u16,
    body: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<ResponseEnvelope, EnvelopeError> {
    let status = u8::from((200..300).contains(&code));
    let aad = associated_data(Some(&id), status, code);
    Ok(ResponseEnvelope {
        v: None,
        data: seal_bytes(key, nonce, &aad, body)?,
        id: Some(id),
        status,
        code,
    })
}

/// Opens a RES's `data` (the device side): checks the tag over the envelope's id, status
/// and code, and returns the plaintext body.
pub fn open_response(key: &DeviceKey, res: &ResponseEnvelope) -> Result<Vec<u8>, EnvelopeError> {
    open_bytes(
        key,
        &res.data,
        &associated_data(res.id.as_ref(), res.status, res.code),
    )
}

/// Seals `msg` under `key` with associated data `aad`: base64 of nonce || ct || tag.
fn seal_bytes(
    key: &DeviceKey,
    nonce: [u8; NONCE_LEN],
    aad: &str,
    msg: &[u8],
) -> Result<String, EnvelopeError> {
    let sealed = Aes256Gcm::new(key.as_bytes().into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| EnvelopeError::Unauthentic)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(BASE64.encode(out))
}

/// Opens base64 nonce || ct || tag under `key` with associated data `aad`.
fn open_bytes(key: &DeviceKey, data: &str, aad: &str) -> Result<Vec<u8>, EnvelopeError> {
    let raw = BASE64
        .decode(data.as_bytes())
        .map_err(|_| EnvelopeError::BadBase64)?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::TooShort);
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    Aes256Gcm::new(key.as_bytes().into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| EnvelopeError::Unauthentic)
}

fn fresh_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// The associated data of a v2 REQ: `v2|req|<endpoint>|<id JSON>`.
pub fn request_aad_v2(endpoint: &str, id: &RequestId) -> String {
    format!("v2|req|{endpoint}|{}", id.json_text())
}

/// The associated data of a v2 RES: `v2|res|<endpoint>|<id JSON>|<status>|<code>`
/// (`null` for an id that could not be read).
pub fn response_aad_v2(endpoint: &str, id: Option<&RequestId>, status: u8, code: u16) -> String {
    let id = id.map_or_else(|| "null".to_owned(), RequestId::json_text);
    format!("v2|res|{endpoint}|{id}|{status}|{code}")
}

/// A v2 REQ for `endpoint`: `params` (UTF-8 JSON) sealed under the device key with a
/// fresh nonce.
pub fn seal_request_v2(
    key: &DeviceKey,
    endpoint: &str,
    id: RequestId,
    params: &[u8],
) -> Result<RequestEnvelope, EnvelopeError> {
    seal_request_v2_with_nonce(key, endpoint, id, params, fresh_nonce())
}

/// [`seal_request_v2`] with a chosen nonce. Only for test vectors: a nonce must never
/// repeat under one key.
pub fn seal_request_v2_with_nonce(
    key: &DeviceKey,
    endpoint: &str,
    id: RequestId,
    params: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<RequestEnvelope, EnvelopeError> {
    let data = seal_bytes(key, nonce, &request_aad_v2(endpoint, &id), params)?;
    Ok(RequestEnvelope {
        v: Some(2),
        id,
        key: String::new(),
        data: serde_json::Value::String(data),
    })
}

/// Opens a v2 REQ's params (the server side): checks the tag over the endpoint and the id.
pub fn open_request_v2(
    key: &DeviceKey,
    endpoint: &str,
    req: &RequestEnvelope,
) -> Result<Vec<u8>, EnvelopeError> {
    let serde_json::Value::String(data) = &req.data else {
        return Err(EnvelopeError::BadBase64);
    };
    open_bytes(key, data, &request_aad_v2(endpoint, &req.id))
}

/// A v2 RES to a REQ on `endpoint`: `body` sealed with a fresh nonce.
pub fn seal_response_v2(
    key: &DeviceKey,
    endpoint: &str,
    id: RequestId,
    code: u16,
    body: &[u8],
) -> Result<ResponseEnvelope, EnvelopeError> {
    seal_response_v2_with_nonce(key, endpoint, id, code, body, fresh_nonce())
}

/// [`seal_response_v2`] with a chosen nonce. Only for test vectors.
pub fn seal_response_v2_with_nonce(
    key: &DeviceKey,
    endpoint: &str,
    id: RequestId,
    code: u16,
    body: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<ResponseEnvelope, EnvelopeError> {
    let status = u8::from((200..300).contains(&code));
    let aad = response_aad_v2(endpoint, Some(&id), status, code);
    Ok(ResponseEnvelope {
        v: Some(2),
        data: seal_bytes(key, nonce, &aad, body)?,
        id: Some(id),
        status,
        code,
    })
}

/// Opens a RES to a REQ on `endpoint` (the device side), v1 or v2 by its `v`.
pub fn open_response_on(
    key: &DeviceKey,
    endpoint: &str,
    res: &ResponseEnvelope,
) -> Result<Vec<u8>, EnvelopeError> {
    match res.v {
        Some(2) => open_bytes(
            key,
            &res.data,
            &response_aad_v2(endpoint, res.id.as_ref(), res.status, res.code),
        ),
        _ => open_response(key, res),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DeviceKey {
        DeviceKey::from_hex(&"11".repeat(32)).expect("valid key")
    }

    #[test]
    fn seal_then_open_round_trips() {
        let res = seal_response(&key(), RequestId::Int(42), 200, br#"{"ok":true}"#).expect("seal");
        assert_eq!(res.status, 1);
        assert_eq!(
            open_response(&key(), &res).expect("open"),
            br#"{"ok":true}"#
        );
    }

    #[test]
    fn any_change_to_the_envelope_is_detected() {
        let res = seal_response(&key(), RequestId::Str("a1".into()), 403, b"{}").expect("seal");
        assert_eq!(res.status, 0);
        let mut changed = res.clone();
        changed.code = 200;
        assert_eq!(
            open_response(&key(), &changed),
            Err(EnvelopeError::Unauthentic)
        );
        let mut changed = res.clone();
        changed.id = Some(RequestId::Str("a2".into()));
        assert_eq!(
            open_response(&key(), &changed),
            Err(EnvelopeError::Unauthentic)
        );
        let other = DeviceKey::from_hex(&"22".repeat(32)).expect("valid key");
        assert_eq!(open_response(&other, &res), Err(EnvelopeError::Unauthentic));
    }

    #[test]
    fn nonces_are_fresh_per_message() {
        let a = seal_response(&key(), RequestId::Int(1), 200, b"{}").expect("seal");
        let b = seal_response(&key(), RequestId::Int(1), 200, b"{}").expect("seal");
        assert_ne!(a.data, b.data);
    }

    #[test]
    fn ids_keep_their_json_type() {
        let int: RequestId = serde_json::from_str("42").expect("int id");
        let text: RequestId = serde_json::from_str("\"42\"").expect("string id");
        assert_eq!(int, RequestId::Int(42));
        assert_eq!(text, RequestId::Str("42".into()));
        assert_ne!(int.json_text(), text.json_text());
        assert_eq!(int.to_string(), text.to_string());
        assert!(RequestId::Str("x".repeat(65)).validate().is_err());
        assert!(serde_json::from_str::<RequestId>("1.5").is_err());
    }

    #[test]
    fn bad_requests_say_what_is_wrong_and_keep_a_readable_id() {
        let key = "ab".repeat(32);
        let err = |payload: &[u8]| RequestEnvelope::parse(payload).expect_err("bad request");
        assert_eq!(err(b"\xff\xfe").error, "invalid_utf8");
        assert_eq!(err(b"{not json").error, "malformed_json");
        assert_eq!(err(b"[1, 2]").error, "not_an_object");
        assert_eq!(err(b"{\"key\": \"x\"}").error, "missing_id");
        for id in [
            "1.5",
            "true",
            "null",
            "{}",
            "\"\"",
            &format!("\"{}\"", "x".repeat(65)),
        ] {
            let e = err(format!("{{\"id\": {id}, \"key\": \"{key}\"}}").as_bytes());
            assert_eq!((e.error, e.id), ("invalid_id", None), "{id}");
        }
        let e = err(b"{\"id\": 7}");
        assert_eq!((e.error, e.id), ("missing_key", Some(RequestId::Int(7))));
        let e = err(b"{\"id\": \"a\", \"key\": \"abc\"}");
        assert_eq!(
            (e.error, e.id),
            ("invalid_key", Some(RequestId::Str("a".into())))
        );
        let ok = RequestEnvelope::parse(
            format!("{{\"id\": 1, \"key\": \"{key}\", \"data\": {{}}}}").as_bytes(),
        )
        .expect("valid");
        assert_eq!(ok.id, RequestId::Int(1));
    }

    #[test]
    fn keys_parse_and_never_print() {
        assert!(DeviceKey::from_hex("abc").is_err());
        assert!(DeviceKey::from_hex(&"zz".repeat(32)).is_err());
        let k = DeviceKey::from_hex(&"AB".repeat(32)).expect("upper case accepted");
        assert_eq!(k.to_hex(), "ab".repeat(32));
        assert!(!format!("{k:?}").contains("ab"));
    }

    #[test]
    fn v2_requests_and_answers_are_bound_to_their_endpoint_and_id_type() {
        let req = seal_request_v2(
            &key(),
            "authorize",
            RequestId::Int(42),
            br#"{"tag":"04A1B2C3"}"#,
        )
        .expect("seal");
        let text = serde_json::to_string(&req).expect("json");
        assert!(!text.contains("key"), "{text}");
        let parsed = RequestEnvelope::parse(text.as_bytes()).expect("parses");
        assert_eq!(parsed.version(), Version::V2);
        assert_eq!(
            open_request_v2(&key(), "authorize", &parsed).expect("opens"),
            br#"{"tag":"04A1B2C3"}"#
        );
        // Moved to another endpoint, or the id's type changed: it no longer opens.
        assert!(open_request_v2(&key(), "session-start", &parsed).is_err());
        let mut retyped = parsed.clone();
        retyped.id = RequestId::Str("42".into());
        assert!(open_request_v2(&key(), "authorize", &retyped).is_err());

        let res =
            seal_response_v2(&key(), "authorize", RequestId::Int(42), 200, b"{}").expect("seal");
        assert_eq!(res.v, Some(2));
        assert_eq!(
            open_response_on(&key(), "authorize", &res).expect("opens"),
            b"{}"
        );
        assert!(open_response_on(&key(), "boot", &res).is_err());
        let mut retyped = res.clone();
        retyped.id = Some(RequestId::Str("42".into()));
        assert!(open_response_on(&key(), "authorize", &retyped).is_err());
    }

    #[test]
    fn v2_envelopes_are_read_precisely() {
        let bad = RequestEnvelope::parse(br#"{"v":2,"id":1,"data":{"tag":"x"}}"#)
            .expect_err("v2 data must be sealed");
        assert_eq!((bad.error, bad.version), ("invalid_data", Version::V2));
        let bad = RequestEnvelope::parse(br#"{"v":3,"id":1,"data":""}"#).expect_err("v3");
        assert_eq!(bad.error, "unsupported_version");
        assert_eq!(bad.id, Some(RequestId::Int(1)));
        let v1 = RequestEnvelope::parse(
            format!(r#"{{"id":"a","key":"{}","data":{{}}}}"#, "11".repeat(32)).as_bytes(),
        )
        .expect("v1 still parses");
        assert_eq!(v1.version(), Version::V1);
    }
}
