//! Topic grammar: `<user>/req/<device-id>/<endpoint>` (device to server) and
//! `<user>/res/<device-id>/<endpoint>` (server to device), each part `[A-Za-z0-9_-]{1,64}`.

use std::fmt;

/// Longest allowed topic part.
pub const MAX_PART_LEN: usize = 64;

/// Why a string is not a valid topic or topic part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("a topic part must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    BadPart,
    #[error("a topic must be <user>/req|res/<device-id>/<endpoint>")]
    BadShape,
}

/// One validated topic part: an owner id, a device id or an endpoint name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPart(String);

impl TopicPart {
    /// Validates `s` against `[A-Za-z0-9_-]{1,64}`.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        if is_valid_part(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(TopicError::BadPart)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True when `s` matches `[A-Za-z0-9_-]{1,64}`.
pub fn is_valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_PART_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `req`: device to server.
    Request,
    /// `res`: server to device.
    Response,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "req",
            Direction::Response => "res",
        }
    }
}

/// A parsed API topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic<'a> {
    pub user: &'a str,
    pub direction: Direction,
    pub device: &'a str,
    pub endpoint: &'a str,
}

impl<'a> Topic<'a> {
    /// Parses a concrete topic (no wildcards).
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let mut parts = topic.split('/');
        let (Some(user), Some(dir), Some(device), Some(endpoint), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TopicError::BadShape);
        };
        let direction = match dir {
            "req" => Direction::Request,
            "res" => Direction::Response,
            _ => return Err(TopicError::BadShape),
        };
        for part in [user, device, endpoint] {
            if !is_valid_part(part) {
                return Err(TopicError::BadPart);
            }
        }
        Ok(Self {
            user,
            direction,
            device,
            endpoint,
        })
    }
}

impl fmt::Display for Topic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.user,
            self.direction.as_str(),
            self.device,
            self.endpoint
        )
    }
}

/// `<user>/req/<device>/<endpoint>`.
pub fn request_topic(user: &str, device: &str, endpoint: &str) -> String {
    format!("{user}/req/{device}/{endpoint}")
}

/// Every charger's requests: what the server subscribes to.
pub const REQUEST_FILTER: &str = "+/req/+/+";

/// `<user>/res/<device>/<endpoint>`.
pub fn response_topic(user: &str, device: &str, endpoint: &str) -> String {
    format!("{user}/res/{device}/{endpoint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_topic() {
        let t = Topic::parse("acme/req/dev-1/authorize").expect("valid");
        assert_eq!(t.user, "acme");
        assert_eq!(t.direction, Direction::Request);
        assert_eq!(t.device, "dev-1");
        assert_eq!(t.endpoint, "authorize");
        assert_eq!(t.to_string(), "acme/req/dev-1/authorize");
    }

    #[test]
    fn refuses_wildcards_bad_shapes_and_long_parts() {
        for bad in [
            "acme/req/dev-1",
            "acme/req/dev-1/a/b",
            "acme/xxx/dev-1/boot",
            "acme/req/+/boot",
            "#",
            "acme/req/dev 1/boot",
            "/req/dev-1/boot",
            "$SYS/req/dev/boot",
        ] {
            assert!(Topic::parse(bad).is_err(), "{bad}");
        }
        let long = "a".repeat(65);
        assert!(Topic::parse(&format!("{long}/req/d/boot")).is_err());
        let max = "a".repeat(64);
        assert!(Topic::parse(&format!("{max}/res/d/boot")).is_ok());
    }

    #[test]
    fn topic_part_grammar() {
        assert!(TopicPart::parse("A-z_09").is_ok());
        assert!(TopicPart::parse("").is_err());
        assert!(TopicPart::parse("é").is_err());
        assert!(TopicPart::parse("a.b").is_err());
    }
}
