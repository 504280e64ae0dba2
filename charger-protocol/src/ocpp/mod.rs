//! OCPP-J: the JSON-over-WebSocket framing that OCPP 1.6J and 2.0.1 share, and the message
//! types of each version ([`v16`], [`v201`]).
//!
//! A frame is a JSON array: `[2, id, action, payload]` (a CALL), `[3, id, payload]` (its
//! CALLRESULT) or `[4, id, code, description, details]` (its CALLERROR). The id is a string
//! of at most 36 characters, unique per sender and connection. Payloads are objects.

/// Declares a unit-variant enum with its exact wire texts.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

pub mod v16;
pub mod v201;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Longest message id (OCPP-J 1.6 §4.1.3, 2.0.1 §4.1.4).
pub const MAX_ID_LEN: usize = 36;

/// Which OCPP version a connection speaks (its WebSocket subprotocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V16,
    V201,
}

impl Version {
    /// The WebSocket subprotocol that names it.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Version::V16 => "ocpp1.6",
            Version::V201 => "ocpp2.0.1",
        }
    }

    pub fn from_subprotocol(s: &str) -> Option<Self> {
        match s.trim() {
            "ocpp1.6" => Some(Version::V16),
            "ocpp2.0.1" => Some(Version::V201),
            _ => None,
        }
    }
}

/// A CALLERROR's code. The spellings differ by version (1.6 keeps its misspellings
/// `FormationViolation` and `OccurenceConstraintViolation`; the errata say they stay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The action is not known.
    NotImplemented,
    /// The action is known but not supported.
    NotSupported,
    InternalError,
    /// The payload is incomplete.
    ProtocolError,
    /// The sender may not do this (for instance before its boot was accepted).
    SecurityError,
    /// The frame or payload is not well formed (an unknown field, not JSON, ...).
    FormationViolation,
    /// A field has a value it may not have (an unknown enum value, too long, ...).
    PropertyConstraintViolation,
    /// A required field is missing (or one occurs that may not).
    OccurrenceConstraintViolation,
    /// A field has the wrong type.
    TypeConstraintViolation,
    GenericError,
    /// 2.0.1: a message type number that is not CALL, CALLRESULT or CALLERROR.
    MessageTypeNotSupported,
    /// 2.0.1: the frame is not a valid RPC frame (its id cannot be read, ...).
    RpcFrameworkError,
}

impl ErrorCode {
    /// Its text in `version`.
    pub fn as_str(self, version: Version) -> &'static str {
        match (self, version) {
            (ErrorCode::NotImplemented, _) => "NotImplemented",
            (ErrorCode::NotSupported, _) => "NotSupported",
            (ErrorCode::InternalError, _) => "InternalError",
            (ErrorCode::ProtocolError, _) => "ProtocolError",
            (ErrorCode::SecurityError, _) => "SecurityError",
            (ErrorCode::FormationViolation, Version::V16) => "FormationViolation",
            (ErrorCode::FormationViolation, Version::V201) => "FormatViolation",
            (ErrorCode::PropertyConstraintViolation, _) => "PropertyConstraintViolation",
            (ErrorCode::OccurrenceConstraintViolation, Version::V16) => {
                "OccurenceConstraintViolation"
            }
            (ErrorCode::OccurrenceConstraintViolation, Version::V201) => {
                "OccurrenceConstraintViolation"
            }
            (ErrorCode::TypeConstraintViolation, _) => "TypeConstraintViolation",
            (ErrorCode::GenericError, _) => "GenericError",
            (ErrorCode::MessageTypeNotSupported, Version::V16) => "NotSupported",
            (ErrorCode::MessageTypeNotSupported, Version::V201) => "MessageTypeNotSupported",
            (ErrorCode::RpcFrameworkError, Version::V16) => "FormationViolation",
            (ErrorCode::RpcFrameworkError, Version::V201) => "RpcFrameworkError",
        }
    }

    /// The code of a text in either version's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NotImplemented" => ErrorCode::NotImplemented,
            "NotSupported" => ErrorCode::NotSupported,
            "InternalError" => ErrorCode::InternalError,
            "ProtocolError" => ErrorCode::ProtocolError,
            "SecurityError" => ErrorCode::SecurityError,
            "FormationViolation" | "FormatViolation" => ErrorCode::FormationViolation,
            "PropertyConstraintViolation" => ErrorCode::PropertyConstraintViolation,
            "OccurenceConstraintViolation" | "OccurrenceConstraintViolation" => {
                ErrorCode::OccurrenceConstraintViolation
            }
            "TypeConstraintViolation" => ErrorCode::TypeConstraintViolation,
            "GenericError" => ErrorCode::GenericError,
            "MessageTypeNotSupported" => ErrorCode::MessageTypeNotSupported,
            "RpcFrameworkError" => ErrorCode::RpcFrameworkError,
            _ => return None,
        })
    }
}

/// One OCPP-J frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Call {
        id: String,
        action: String,
        payload: Value,
    },
    CallResult {
        id: String,
        payload: Value,
    },
    CallError {
        id: String,
        code: String,
        description: String,
        details: Value,
    },
}

/// A frame that cannot be taken: what to answer, if anything.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    /// The id it carried, when it could be read (the CALLERROR goes to it).
    pub id: Option<String>,
    /// Whether it was a CALL (only a CALL is answered).
    pub call: bool,
    pub code: ErrorCode,
    pub description: String,
}

impl FrameError {
    fn new(id: Option<String>, call: bool, code: ErrorCode, description: &str) -> Self {
        FrameError {
            id,
            call,
            code,
            description: description.to_owned(),
        }
    }
}

impl Frame {
    /// Parses a text frame.
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        let bad = |code, d: &str| FrameError::new(None, false, code, d);
        let value: Value = serde_json::from_str(text).map_err(|_| match call_id_of(text) {
            // A CALL whose start can be read is answered, whatever follows.
            Some(id) => FrameError::new(
                Some(id),
                true,
                ErrorCode::FormationViolation,
                "the frame is not JSON (or nests too deep)",
            ),
            None => bad(ErrorCode::FormationViolation, "the frame is not JSON"),
        })?;
        let Value::Array(items) = value else {
            return Err(bad(
                ErrorCode::FormationViolation,
                "the frame is not a JSON array",
            ));
        };
        let kind = items.first().and_then(Value::as_i64);
        let id = match items.get(1) {
            Some(Value::String(id)) => Some(id.clone()),
            _ => None,
        };
        let is_call = kind == Some(2);
        let Some(id_text) = id.clone() else {
            return Err(FrameError::new(
                None,
                is_call,
                ErrorCode::RpcFrameworkError,
                "the message id is not a string",
            ));
        };
        if id_text.is_empty() || id_text.chars().count() > MAX_ID_LEN {
            return Err(FrameError::new(
                Some(id_text),
                is_call,
                ErrorCode::RpcFrameworkError,
                "the message id must be 1 to 36 characters",
            ));
        }
        let shape = |n: usize, what: &str| {
            if items.len() == n {
                Ok(())
            } else {
                Err(FrameError::new(
                    id.clone(),
                    is_call,
                    ErrorCode::FormationViolation,
                    what,
                ))
            }
        };
        match kind {
            Some(2) => {
                shape(4, "a CALL is [2, id, action, payload]")?;
                let Some(action) = items[2].as_str() else {
                    return Err(FrameError::new(
                        id,
                        true,
                        ErrorCode::FormationViolation,
                        "the action is not a string",
                    ));
                };
                if !items[3].is_object() {
                    return Err(FrameError::new(
                        id,
                        true,
                        ErrorCode::FormationViolation,
                        "the payload is not an object",
                    ));
                }
                Ok(Frame::Call {
                    id: id_text,
                    action: action.to_owned(),
                    payload: items[3].clone(),
                })
            }
            Some(3) => {
                shape(3, "a CALLRESULT is [3, id, payload]")?;
                Ok(Frame::CallResult {
                    id: id_text,
                    payload: items[2].clone(),
                })
            }
            Some(4) => {
                shape(5, "a CALLERROR is [4, id, code, description, details]")?;
                Ok(Frame::CallError {
                    id: id_text,
                    code: items[2].as_str().unwrap_or_default().to_owned(),
                    description: items[3].as_str().unwrap_or_default().to_owned(),
                    details: items[4].clone(),
                })
            }
            _ => Err(FrameError::new(
                id,
                false,
                ErrorCode::MessageTypeNotSupported,
                "the message type is not 2, 3 or 4",
            )),
        }
    }

    /// The frame's text.
    pub fn to_text(&self) -> String {
        let value = match self {
            Frame::Call {
                id,
                action,
                payload,
            } => serde_json::json!([2, id, action, payload]),
            Frame::CallResult { id, payload } => serde_json::json!([3, id, payload]),
            Frame::CallError {
                id,
                code,
                description,
                details,
            } => serde_json::json!([4, id, code, description, details]),
        };
        value.to_string()
    }

    /// A CALLERROR in `version`'s spelling.
    pub fn error(version: Version, id: &str, code: ErrorCode, description: &str) -> Frame {
        Frame::CallError {
            id: id.to_owned(),
            code: code.as_str(version).to_owned(),
            description: description.to_owned(),
            details: Value::Object(Default::default()),
        }
    }
}

/// The id of a frame that starts as a CALL (`[2, "<id>", ...`), read without parsing the
/// rest: a plain string of 1 to 36 characters without escapes.
fn call_id_of(text: &str) -> Option<String> {
    let rest = text.trim_start().strip_prefix('[')?.trim_start();
    let rest = rest
        .strip_prefix('2')?
        .trim_start()
        .strip_prefix(',')?
        .trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let id = &rest[..end];
    let plain = !id.is_empty() && id.chars().count() <= MAX_ID_LEN && !id.contains('\\');
    plain.then(|| id.to_owned())
}

/// A payload that does not fit its type: the CALLERROR code and a short description.
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadError {
    pub code: ErrorCode,
    pub description: String,
}

/// A payload as `T`, or the CALLERROR its defect calls for: a missing field is an
/// occurrence violation, a wrong JSON type a type violation, an unknown field a formation
/// violation, a value outside what the field allows (an enum, a length, a range) a property
/// violation.
pub fn payload<T: DeserializeOwned>(value: &Value) -> Result<T, PayloadError> {
    T::deserialize(value).map_err(|e| {
        let text = e.to_string();
        let code = if text.starts_with("missing field") {
            ErrorCode::OccurrenceConstraintViolation
        } else if text.starts_with("unknown field") {
            ErrorCode::FormationViolation
        } else if text.starts_with("invalid type") {
            ErrorCode::TypeConstraintViolation
        } else {
            ErrorCode::PropertyConstraintViolation
        };
        let mut description: String = text.chars().take(120).collect();
        if text.chars().count() > 120 {
            description.push('…');
        }
        PayloadError { code, description }
    })
}

/// A string of at most `N` characters (the specifications' CiString types).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CiString<const N: usize>(String);

impl<const N: usize> CiString<N> {
    /// `s`, if it is at most `N` characters.
    pub fn new(s: impl Into<String>) -> Option<Self> {
        let s = s.into();
        (s.chars().count() <= N).then_some(CiString(s))
    }

    /// `s` cut to `N` characters.
    pub fn cut(s: &str) -> Self {
        CiString(s.chars().take(N).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> std::fmt::Display for CiString<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const N: usize> Serialize for CiString<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for CiString<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CiString::new(s).ok_or_else(|| {
            serde::de::Error::invalid_length(N + 1, &format!("at most {N} characters").as_str())
        })
    }
}

/// An OCPP time: RFC 3339. A time without an offset (some chargers send one) is taken as
/// UTC. Sent as UTC with milliseconds and `Z`.
pub mod time {
    use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// A time as OCPP writes it: RFC 3339, UTC, milliseconds.
    pub fn text(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn parse(s: &str) -> Option<DateTime<Utc>> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(t.with_timezone(&Utc));
        }
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|n| n.and_utc())
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom("invalid value: not a date-time"))
    }

    /// The same for an optional time.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(s) => super::parse(&s)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("invalid value: not a date-time")),
            }
        }
    }
}

/// An array of at least `MIN` and at most `MAX` items (the schemas' `minItems` and
/// `maxItems`), read as a `Vec` and refused outside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Items<T, const MIN: usize, const MAX: usize = { usize::MAX }>(pub Vec<T>);

/// An array with one item at least.
pub type NonEmpty<T> = Items<T, 1>;

impl<T, const MIN: usize, const MAX: usize> std::ops::Deref for Items<T, MIN, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<'a, T, const MIN: usize, const MAX: usize> IntoIterator for &'a Items<T, MIN, MAX> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T, const MIN: usize, const MAX: usize> From<Vec<T>> for Items<T, MIN, MAX> {
    fn from(items: Vec<T>) -> Self {
        Items(items)
    }
}

impl<T: Serialize, const MIN: usize, const MAX: usize> Serialize for Items<T, MIN, MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>, const MIN: usize, const MAX: usize> Deserialize<'de>
    for Items<T, MIN, MAX>
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(d)?;
        if items.len() < MIN || items.len() > MAX {
            let bound = if MAX == usize::MAX {
                format!("at least {MIN}")
            } else {
                format!("{MIN} to {MAX}")
            };
            return Err(serde::de::Error::custom(format!(
                "invalid length {}: an array of {bound} items",
                items.len()
            )));
        }
        Ok(Items(items))
    }
}

/// A rate or current with one decimal (`multipleOf: 0.1`), kept as an integer number of
/// tenths: never a float past the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tenths(pub i64);

impl Tenths {
    pub fn from_whole(n: i64) -> Self {
        Tenths(n.saturating_mul(10))
    }
}

impl Serialize for Tenths {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A JSON number with one decimal, written exactly (never through a float).
        let text = format!(
            "{}{}.{}",
            if self.0 < 0 { "-" } else { "" },
            self.0.unsigned_abs() / 10,
            self.0.unsigned_abs() % 10
        );
        let n: serde_json::Number = text.parse().map_err(serde::ser::Error::custom)?;
        n.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tenths {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        let text = n.to_string();
        let d: rust_decimal::Decimal = text
            .parse()
            .or_else(|_| rust_decimal::Decimal::from_scientific(&text))
            .map_err(|_| serde::de::Error::custom("invalid value: not a number"))?;
        let tenths = d * rust_decimal::Decimal::TEN;
        // The schemas' `multipleOf: 0.1`: one decimal at most, never rounded.
        if !tenths.fract().is_zero() {
            return Err(serde::de::Error::custom(
                "invalid value: a rate has at most one decimal",
            ));
        }
        use rust_decimal::prelude::ToPrimitive as _;
        tenths
            .to_i64()
            .map(Tenths)
            .ok_or_else(|| serde::de::Error::custom("invalid value: out of range"))
    }
}

/// An exact decimal number on the wire (2.0.1's sampled values and costs): read from the
/// JSON number's text, never through arithmetic on a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Decimal(pub rust_decimal::Decimal);

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n: serde_json::Number = self
            .0
            .normalize()
            .to_string()
            .parse()
            .map_err(serde::ser::Error::custom)?;
        n.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        let text = n.to_string();
        text.parse()
            .or_else(|_| rust_decimal::Decimal::from_scientific(&text))
            .map(Decimal)
            .map_err(|_| serde::de::Error::custom("invalid value: not a decimal number in range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_print() {
        let call = Frame::parse(r#"[2,"19223201","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger"}]"#)
            .expect("a CALL");
        assert!(matches!(&call, Frame::Call { action, .. } if action == "BootNotification"));
        assert_eq!(Frame::parse(&call.to_text()), Ok(call));
        let result = Frame::parse(r#"[3,"19223201",{"status":"Accepted"}]"#).expect("a result");
        assert!(matches!(result, Frame::CallResult { .. }));
        let error = Frame::parse(r#"[4,"1","NotImplemented","",{}]"#).expect("an error");
        assert!(matches!(error, Frame::CallError { code, .. } if code == "NotImplemented"));
    }

    #[test]
    fn bad_frames_say_what_to_answer() {
        let e = Frame::parse("not json").expect_err("not JSON");
        assert_eq!((e.id, e.code), (None, ErrorCode::FormationViolation));
        let e = Frame::parse(r#"[2,"a","Heartbeat"]"#).expect_err("short");
        assert_eq!((e.id.as_deref(), e.call), (Some("a"), true));
        assert_eq!(e.code, ErrorCode::FormationViolation);
        let e = Frame::parse(&format!(r#"[2,"{}","Heartbeat",{{}}]"#, "x".repeat(37)))
            .expect_err("long id");
        assert_eq!(e.code, ErrorCode::RpcFrameworkError);
        let e = Frame::parse(r#"[5,"a",{}]"#).expect_err("type 5");
        assert_eq!(e.code, ErrorCode::MessageTypeNotSupported);
        assert_eq!(
            ErrorCode::OccurrenceConstraintViolation.as_str(Version::V16),
            "OccurenceConstraintViolation"
        );
        assert_eq!(
            ErrorCode::FormationViolation.as_str(Version::V201),
            "FormatViolation"
        );
    }

    #[test]
    fn payload_defects_map_to_their_codes() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct P {
            #[allow(dead_code)]
            connector_id: i64,
            #[allow(dead_code)]
            id_tag: CiString<20>,
        }
        let code = |v: Value| payload::<P>(&v).expect_err("refused").code;
        assert_eq!(
            code(serde_json::json!({"connectorId": 1})),
            ErrorCode::OccurrenceConstraintViolation
        );
        assert_eq!(
            code(serde_json::json!({"connectorId": "1", "idTag": "a"})),
            ErrorCode::TypeConstraintViolation
        );
        assert_eq!(
            code(serde_json::json!({"connectorId": 1, "idTag": "a", "x": 1})),
            ErrorCode::FormationViolation
        );
        assert_eq!(
            code(serde_json::json!({"connectorId": 1, "idTag": "a".repeat(21)})),
            ErrorCode::PropertyConstraintViolation
        );
    }

    #[test]
    fn tenths_are_exact_on_the_wire() {
        let t: Tenths = serde_json::from_str("16.1").expect("a number");
        assert_eq!(t, Tenths(161));
        assert_eq!(serde_json::to_string(&Tenths(161)).expect("json"), "16.1");
        assert_eq!(serde_json::to_string(&Tenths(60)).expect("json"), "6.0");
        let whole: Tenths = serde_json::from_str("32").expect("a number");
        assert_eq!(whole, Tenths(320));
    }

    #[test]
    fn times_without_an_offset_are_utc() {
        let t = time::parse("2026-01-02T03:04:05.678").expect("a time");
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05.678+00:00");
        assert!(time::parse("yesterday").is_none());
    }
}
