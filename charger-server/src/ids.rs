//! Validated identifiers. Every id that appears in an MQTT topic (owners, devices) follows
//! the topic-part grammar `[A-Za-z0-9_-]{1,64}`; RFID tag uids are 4, 7 or 10 bytes of
//! hex, stored upper-case.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

macro_rules! part_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses `s`, which must be 1 to 64 characters of `A-Z a-z 0-9 _ -`.
            pub fn parse(s: &str) -> Result<Self, Error> {
                if charger_protocol::topic::is_valid_part(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(Error::invalid(
                        $what,
                        "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'",
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s).map_err(|e| e.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

part_id!(
    /// An owner: the `<user>` of the MQTT topics.
    OwnerId,
    "owner"
);
part_id!(
    /// A charger: MQTT client id, username and `<device-id>`.
    DeviceId,
    "device"
);
part_id!(
    /// A tariff.
    TariffId,
    "tariff"
);

/// An RFID card UID: 8, 14 or 20 hex digits, accepted in either case, kept upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TagUid(String);

impl TagUid {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if matches!(s.len(), 8 | 14 | 20) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_uppercase()))
        } else {
            Err(Error::invalid(
                "uid",
                "an RFID uid is 8, 14 or 20 hexadecimal digits (4, 7 or 10 bytes)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TagUid {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).map_err(|e| e.to_string())
    }
}

impl From<TagUid> for String {
    fn from(id: TagUid) -> String {
        id.0
    }
}

impl fmt::Display for TagUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_uids_are_4_7_or_10_bytes_and_stored_upper_case() {
        assert_eq!(
            TagUid::parse("04a1b2c3").expect("4 bytes").as_str(),
            "04A1B2C3"
        );
        assert!(TagUid::parse("04A1B2C3D4E5F6").is_ok());
        assert!(TagUid::parse("04A1B2C3D4E5F6A7B8C9").is_ok());
        for bad in [
            "",
            "04A1B2",
            "04A1B2C3D4",
            "04A1B2CZ",
            "04A1B2C3D4E5F6A7B8C9D0",
        ] {
            assert!(TagUid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_follow_the_topic_grammar() {
        assert!(DeviceId::parse("mybox-0001_A").is_ok());
        for bad in ["", "a/b", "a+b", "#", "dev 1", &"x".repeat(65)] {
            assert!(DeviceId::parse(bad).is_err(), "{bad}");
        }
        let e = OwnerId::parse("a/b").expect_err("invalid");
        assert!(e.to_string().starts_with("owner:"));
    }
}
