//! The names a charger's topics may carry: the API's endpoints (the charger asks) and the
//! server's commands (the server asks, the charger answers on the command's REQ topic).
//! The broker refuses any other name, so a charger cannot make the broker keep state for
//! topics nobody serves.

/// Endpoints a charger calls.
pub const ENDPOINTS: &[&str] = &[
    "boot",
    "status",
    "authorize",
    "session-start",
    "meter-values",
    "session-stop",
    "tag-enroll",
    "ownership-claim",
    "local-list",
    "rekey",
    "heartbeat",
    "offline",
];

/// The endpoint of a charger's MQTT will (its connection was lost).
pub const OFFLINE: &str = "offline";

/// Commands the server sends a charger.
pub const COMMANDS: &[&str] = &["remote-start", "remote-stop", "unlock", "charging-limit"];

/// The diagnostic endpoint (answered only when the server runs with `CHARGER_MQTT_ECHO`).
pub const ECHO: &str = "echo";

/// Whether `name` is an endpoint, a command or the echo diagnostic.
pub fn is_known(name: &str) -> bool {
    name == ECHO || ENDPOINTS.contains(&name) || COMMANDS.contains(&name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_apis_names_are_known() {
        assert!(super::is_known("authorize"));
        assert!(super::is_known("remote-stop"));
        assert!(super::is_known("echo"));
        assert!(!super::is_known("authorize2"));
        assert!(!super::is_known(""));
    }
}
