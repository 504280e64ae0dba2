//! The per-device topic ACL, decided here and nowhere else.
//!
//! A device whose owner is `<owner>` may
//! - publish only to `<owner>/req/<device>/<endpoint>` (a concrete endpoint or command of
//!   the API, no wildcards);
//! - subscribe only to filters inside `<owner>/res/<device>/`: one endpoint or command of
//!   the API, `+` or `#`.
//!
//! Names outside the API are refused too: every distinct topic costs the router memory
//! for as long as it runs.
//!
//! Everything else is refused: `#`, `+/req/#`, other devices' or owners' topics,
//! `$share/...`, `$SYS/...`, RES topics for publishing, REQ topics for subscribing.

use charger_protocol::endpoint::is_known;

/// Whether `device` of `owner` may publish to `topic`.
pub fn may_publish(owner: &str, device: &str, topic: &str) -> bool {
    device_suffix(owner, "req", device, topic).is_some_and(is_known)
}

/// Whether `device` of `owner` may subscribe to `filter`.
pub fn may_subscribe(owner: &str, device: &str, filter: &str) -> bool {
    device_suffix(owner, "res", device, filter)
        .is_some_and(|rest| rest == "+" || rest == "#" || is_known(rest))
}

/// Whether a login limited to `only` (superseded credentials, see
/// [`crate::devices::DeviceLogin`]) may publish to `topic`: the exchange's request topic.
pub fn may_publish_only(owner: &str, device: &str, only: &str, topic: &str) -> bool {
    device_suffix(owner, "req", device, topic) == Some(only)
}

/// Whether a login limited to `only` may subscribe to `filter`: the exchange's answer
/// topic itself, no wildcard.
pub fn may_subscribe_only(owner: &str, device: &str, only: &str, filter: &str) -> bool {
    device_suffix(owner, "res", device, filter) == Some(only)
}

/// Every topic `device` of `owner` may publish to (one per API name).
pub fn publish_topics(owner: &str, device: &str) -> Vec<String> {
    charger_protocol::endpoint::ENDPOINTS
        .iter()
        .chain(charger_protocol::endpoint::COMMANDS)
        .chain(std::iter::once(&charger_protocol::endpoint::ECHO))
        .map(|name| format!("{owner}/req/{device}/{name}"))
        .collect()
}

/// Every filter `device` of `owner` may subscribe to.
pub fn subscribe_filters(owner: &str, device: &str) -> Vec<String> {
    ["+", "#"]
        .iter()
        .chain(charger_protocol::endpoint::ENDPOINTS)
        .chain(charger_protocol::endpoint::COMMANDS)
        .chain(std::iter::once(&charger_protocol::endpoint::ECHO))
        .map(|name| format!("{owner}/res/{device}/{name}"))
        .collect()
}

/// What follows `<owner>/<direction>/<device>/` in `topic`, if it starts so.
fn device_suffix<'a>(
    owner: &str,
    direction: &str,
    device: &str,
    topic: &'a str,
) -> Option<&'a str> {
    topic
        .strip_prefix(owner)?
        .strip_prefix('/')?
        .strip_prefix(direction)?
        .strip_prefix('/')?
        .strip_prefix(device)?
        .strip_prefix('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_publish_only_to_their_own_request_topics() {
        assert!(may_publish("acme", "d1", "acme/req/d1/authorize"));
        for topic in [
            "acme/req/d1",
            "acme/req/d1/",
            "acme/req/d1/+",
            "acme/req/d1/#",
            "acme/req/d1/a/b",
            "acme/req/d2/authorize",
            "acme/req/d10/authorize",
            "acme/res/d1/authorize",
            "beta/req/d1/authorize",
            "acmex/req/d1/authorize",
            "acme/req/d1x/authorize",
            "$SYS/req/d1/boot",
            "",
            // Names outside the API.
            "acme/req/d1/authorize2",
            "acme/req/d1/x-000001",
        ] {
            assert!(!may_publish("acme", "d1", topic), "{topic}");
        }
    }

    #[test]
    fn devices_subscribe_only_inside_their_own_response_topics() {
        for filter in ["acme/res/d1/+", "acme/res/d1/#", "acme/res/d1/authorize"] {
            assert!(may_subscribe("acme", "d1", filter), "{filter}");
        }
        for filter in [
            "#",
            "+/req/#",
            "+/res/#",
            "acme/res/#",
            "acme/res/+/+",
            "acme/res/d2/+",
            "beta/res/d1/+",
            "acme/req/d1/+",
            "acme/res/d1",
            "acme/res/d1/+/x",
            "acme/res/d1/a+",
            "$share/g/acme/res/d1/+",
            "$share/g/+/req/+/+",
            "$SYS/#",
            "acme/res/d10/+",
            "acme/res/d1/not-an-endpoint",
        ] {
            assert!(!may_subscribe("acme", "d1", filter), "{filter}");
        }
    }
}
