//! What operators do to a charger from afar: commands (remote start, remote stop, unlock)
//! answered by the charger itself.

use std::time::Duration;

use charger_protocol::api;
use serde::Serialize;

use super::SessionStatus;
use crate::devices::parse_data;
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::service::{Principal, Recipient, Service};

/// Default and longest wait for a charger's answer to a command.
pub const COMMAND_TIMEOUT_DEFAULT_MS: u64 = 10_000;
pub const COMMAND_TIMEOUT_MAX_MS: u64 = 60_000;

/// The commands the server may send a MyBox charger.
pub use charger_protocol::endpoint::COMMANDS;

/// The commands the server may send an OCPP charger: the three MyBox ones (the same REST
/// data), and the OCPP actions by name (their OCPP payload as the REST data). The last
/// five are 2.0.1's only (a 1.6 charger answers them 404).
pub const OCPP_COMMANDS: &[&str] = &[
    "remote-start",
    "remote-stop",
    "unlock",
    "reset",
    "change-availability",
    "change-configuration",
    "get-configuration",
    "clear-cache",
    "get-local-list-version",
    "send-local-list",
    "trigger-message",
    "set-charging-profile",
    "clear-charging-profile",
    "get-composite-schedule",
    "get-variables",
    "set-variables",
    "get-base-report",
    "get-charging-profiles",
    "get-transaction-status",
];

/// Why a charger refuses a command (`reason` in its answer).
pub const REFUSAL_REASONS: &[&str] = &[
    "busy",
    "no_session",
    "unknown_connector",
    "faulted",
    "unavailable",
    "other",
];

/// A charger's answer to a command must be `{"status": "accepted"}` or
/// `{"status": "rejected", "reason": <one of REFUSAL_REASONS>}`; anything else is 502.
fn check_answer(answer: &serde_json::Value) -> Result<()> {
    let bad = |why: &str| Err(Error::BadAnswer(format!("the charger's answer {why}")));
    let Some(object) = answer.as_object() else {
        return bad("is not a JSON object");
    };
    match object.get("status").and_then(serde_json::Value::as_str) {
        Some("accepted") => {}
        Some("rejected") => match object.get("reason").and_then(serde_json::Value::as_str) {
            None => {}
            Some(r) if REFUSAL_REASONS.contains(&r) => {}
            Some(_) => return bad("has a reason the API does not define"),
        },
        _ => return bad("has no status \"accepted\" or \"rejected\""),
    }
    if object
        .keys()
        .any(|k| !matches!(k.as_str(), "status" | "reason" | "message"))
    {
        return bad("has fields the API does not define");
    }
    Ok(())
}

/// A command's result: the charger's own answer.
#[derive(Debug, Clone, Serialize)]
pub struct CommandResult {
    pub device: DeviceId,
    pub command: String,
    pub answer: serde_json::Value,
}

impl Service {
    /// The charger's own name of one of its sessions (its `local_id`), if it gave one.
    pub async fn session_local_id(
        &self,
        device: &DeviceId,
        session: i64,
    ) -> Result<Option<String>> {
        match self.store.get_session(session).await? {
            Some(s) if s.device == *device => Ok(s.local_id),
            _ => Err(Error::not_found("session")),
        }
    }

    /// The session that a remote start of `tag` on `device`'s `connector` ended in, if one
    /// started, waiting up to `within` for it: the active session there with that tag (the
    /// start was refused unless the connector was free, so it is the one that began since;
    /// the charger's clock plays no part).
    pub async fn session_started(
        &self,
        who: &Principal,
        device: &DeviceId,
        connector: i64,
        tag: &str,
        within: Duration,
    ) -> Result<Option<i64>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let q = super::history::SessionQuery {
                device: Some(device.clone()),
                status: Some("active".to_owned()),
                limit: Some(10),
                ..Default::default()
            };
            let page = self.list_sessions(who, q).await?;
            let started = page
                .sessions
                .iter()
                .find(|s| s.connector == connector && s.tag.as_str().eq_ignore_ascii_case(tag));
            if let Some(s) = started {
                return Ok(Some(s.id));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Sends a command to a charger and returns its answer: 404 for an unknown command,
    /// 422 for bad data, 409 when the charger is offline, 504 when it does not answer.
    /// The command and its outcome go in the charger's audit log.
    pub async fn send_command(
        &self,
        who: &Principal,
        device: &DeviceId,
        command: &str,
        data: &serde_json::Value,
        timeout_ms: Option<u64>,
    ) -> Result<CommandResult> {
        let d = self.get_device(who, device).await?;
        let result = self.command_to(who, &d, command, data, timeout_ms).await;
        let outcome = match &result {
            Ok(r) => match (r.answer["status"].as_str(), r.answer["reason"].as_str()) {
                (Some(status), Some(reason)) => format!("{status} ({reason})"),
                (Some(status), None) => status.to_owned(),
                _ => "answered".to_owned(),
            },
            Err(e) => e.code().to_owned(),
        };
        if COMMANDS.contains(&command) || OCPP_COMMANDS.contains(&command) {
            self.audit(
                who,
                Some(&d.owner),
                Some(device),
                &format!("command:{command}"),
                Some(data.to_string()),
                &outcome,
            )
            .await;
        }
        result
    }

    /// [`Service::send_command`] without the audit entry (the site balancer's limits,
    /// renewed every few minutes, are not an operator's commands).
    pub(crate) async fn command_to(
        &self,
        _who: &Principal,
        d: &crate::devices::Device,
        command: &str,
        data: &serde_json::Value,
        timeout_ms: Option<u64>,
    ) -> Result<CommandResult> {
        let device = &d.id;
        let known = match d.protocol.is_ocpp() {
            true => OCPP_COMMANDS,
            false => COMMANDS,
        };
        if !known.contains(&command) {
            return Err(Error::not_found("command"));
        }
        let timeout_ms = timeout_ms.unwrap_or(COMMAND_TIMEOUT_DEFAULT_MS);
        if timeout_ms == 0 || timeout_ms > COMMAND_TIMEOUT_MAX_MS {
            return Err(Error::invalid("timeout_ms", "must be between 1 and 60000"));
        }
        let connector_ok = |c: i64| {
            if (1..=d.connector_count).contains(&c) {
                Ok(())
            } else {
                Err(Error::invalid(
                    "connector",
                    "this charger has no such connector",
                ))
            }
        };
        match command {
            "remote-start" => {
                let req: api::RemoteStartRequest = parse_data(data)?;
                let tag = super::sessions::tag_in("tag", &req.tag)?;
                connector_ok(req.connector)?;
                // The checks the charger's own session start would meet, now: a start the
                // server would refuse is not asked of the charger (404 unknown, 403
                // blocked, expired or not allowed here, 409 busy tag or connector).
                let mut tx = self.store.begin_read().await?;
                let charger = tx
                    .charger(&d.id, "")
                    .await?
                    .map(|(c, _)| c)
                    .ok_or_else(|| Error::not_found("device"))?;
                self.tag_may_start(tx.as_mut(), &charger, &tag, self.now())
                    .await?;
                if tx.active_session_on(&d.id, req.connector).await?.is_some() {
                    return Err(Error::conflict(
                        "connector_busy",
                        "a session is already active on this connector",
                    ));
                }
            }
            "remote-stop" => {
                let req: api::RemoteStopRequest = parse_data(data)?;
                match self.store.get_session(req.session_id).await? {
                    Some(s) if s.device == d.id && s.status == SessionStatus::Active => {}
                    Some(s) if s.device == d.id => {
                        return Err(Error::conflict("session_closed", "the session has stopped"))
                    }
                    _ => return Err(Error::not_found("session")),
                }
            }
            "unlock" => {
                let req: api::UnlockRequest = parse_data(data)?;
                connector_ok(req.connector)?;
            }
            "charging-limit" => {
                let req: api::ChargingLimitRequest = parse_data(data)?;
                if let Some(c) = req.connector {
                    connector_ok(c)?;
                }
                let most = crate::sites::MAX_CHARGER_A;
                if req.limits_a.iter().any(|a| *a > most) || req.failsafe_a > most {
                    return Err(Error::invalid("limits_a", "must be 0 to 500 A"));
                }
                if !(1..=86_400).contains(&req.lease_s) {
                    return Err(Error::invalid("lease_s", "must be 1 to 86400 s"));
                }
            }
            // The OCPP edge checks the OCPP commands' own payloads; the server checks what
            // only it knows: the charger's connectors, and its password (rotated only
            // through the credentials endpoint, which changes the server's copy too).
            _ => {
                if let Some(field) = connector_out_of_range(data, d.connector_count, 0) {
                    return Err(Error::invalid(field, "this charger has no such connector"));
                }
                if let Some(field) = name_not_ascii(data, 0) {
                    return Err(Error::invalid(
                        field,
                        "OCPP names are printable ASCII (CiString)",
                    ));
                }
                // Names are case-insensitive in OCPP, and a station may fold Unicode case
                // (U+017F folds to s, the Kelvin sign to k): both foldings are checked.
                let text = data.to_string();
                let (lower, upper) = (text.to_lowercase(), text.to_uppercase());
                let named = |name: &str| {
                    lower.contains(&name.to_lowercase()) || upper.contains(&name.to_uppercase())
                };
                if named("AuthorizationKey") || named("BasicAuthPassword") {
                    return Err(Error::invalid(
                        "data",
                        "the charger's password is changed by POST /api/v1/devices/{id}/credentials, which pushes it first",
                    ));
                }
            }
        }
        if d.protocol.is_ocpp() {
            let channel = self
                .ocpp_channel()
                .ok_or_else(|| Error::Unavailable("the OCPP edge is not running".into()))?;
            if !channel.holds(device) && !d.online {
                return Err(Error::conflict(
                    "device_offline",
                    "the charger is not connected",
                ));
            }
            let answer = channel
                .command(device, command, data, Duration::from_millis(timeout_ms))
                .await?;
            return Ok(CommandResult {
                device: device.clone(),
                command: command.to_owned(),
                answer,
            });
        }
        let channel = self
            .channel()
            .ok_or_else(|| Error::Unavailable("the MQTT broker is not running".into()))?;
        if !channel.is_connected(device).unwrap_or(d.online) {
            return Err(Error::conflict(
                "device_offline",
                "the charger is not connected",
            ));
        }
        let auth = self
            .store
            .get_device_auth(device)
            .await?
            // Moved to another owner since it was read: not the caller's any more.
            .filter(|a| a.owner == d.owner)
            .ok_or_else(|| Error::not_found("device"))?;
        let key = self.device_key(device, auth.key_version);
        let to = Recipient {
            owner: &auth.owner,
            device,
            key: &key,
            version: if auth.require_v2 {
                charger_protocol::Version::V2
            } else {
                charger_protocol::Version::V1
            },
        };
        let answer = channel
            .call(&to, command, data, Duration::from_millis(timeout_ms))
            .await
            .ok_or(Error::Timeout)?;
        check_answer(&answer)?;
        Ok(CommandResult {
            device: device.clone(),
            command: command.to_owned(),
            answer,
        })
    }
}

/// The first connector or EVSE an OCPP payload names that the charger does not have
/// (`connectorId`, `evseId`, or an `evse` object's `id`, at any depth), by its field name.
fn connector_out_of_range(
    data: &serde_json::Value,
    connectors: i64,
    depth: usize,
) -> Option<&'static str> {
    use serde_json::Value;
    if depth > 16 {
        return None;
    }
    let outside = |v: &Value| v.as_i64().is_some_and(|c| !(0..=connectors).contains(&c));
    match data {
        Value::Object(map) => {
            for (key, value) in map {
                match key.as_str() {
                    "connectorId" if outside(value) => return Some("connectorId"),
                    "evseId" if outside(value) => return Some("evseId"),
                    "evse" if value.get("id").is_some_and(outside) => return Some("evse"),
                    _ => {}
                }
                if let Some(field) = connector_out_of_range(value, connectors, depth + 1) {
                    return Some(field);
                }
            }
            None
        }
        Value::Array(items) => items
            .iter()
            .find_map(|v| connector_out_of_range(v, connectors, depth + 1)),
        _ => None,
    }
}

/// The first OCPP name (a `name` or a configuration `key`, at any depth) that is not
/// printable ASCII, as OCPP's CiString requires: a look-alike of a name the server guards
/// (the password's) could mean that name to a station that normalises what it reads.
fn name_not_ascii(data: &serde_json::Value, depth: usize) -> Option<&'static str> {
    use serde_json::Value;
    if depth > 16 {
        return None;
    }
    let bad = |v: &Value| {
        v.as_str()
            .is_some_and(|t| t.chars().any(|c| !(' '..='~').contains(&c)))
    };
    match data {
        Value::Object(map) => map.iter().find_map(|(key, value)| match key.as_str() {
            "name" if bad(value) => Some("name"),
            "key" if bad(value) => Some("key"),
            _ => name_not_ascii(value, depth + 1),
        }),
        Value::Array(items) => items.iter().find_map(|v| name_not_ascii(v, depth + 1)),
        _ => None,
    }
}
