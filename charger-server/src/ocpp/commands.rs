//! REST commands as OCPP 1.6 CALLs.
//!
//! `remote-start` (`tag`, `connector`), `remote-stop` (`session_id`) and `unlock`
//! (`connector`) take the same REST data as for a MyBox charger; the others take the OCPP
//! payload itself (camelCase, as the 1.6 specification writes it), checked against its
//! type before it is sent. The answer is the charger's own payload, checked against the
//! action's response type (502 otherwise). `send-local-list` takes `{}` (or
//! `{"full": true}`) and brings the charger's list up to date from the owner's tags.

use std::time::Duration;

use charger_protocol::ocpp::v16::{self, AuthorizationData, IdTagInfo, UpdateType};
use charger_protocol::ocpp::v201;
use charger_protocol::ocpp::{payload, CiString, Version};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::Hub;
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::tags::{Tag, TagStatus};
use charger_protocol::api;

/// A REST command's data as an OCPP payload: 422 naming what is wrong.
pub(super) fn ocpp_data<T: DeserializeOwned + Serialize>(data: &Value) -> Result<Value> {
    let t: T = payload(data).map_err(|e| Error::invalid("data", e.description))?;
    to_json(&t)
}

pub(super) fn to_json<T: Serialize>(t: &T) -> Result<Value> {
    serde_json::to_value(t).map_err(|e| Error::Internal(format!("a payload that is not JSON: {e}")))
}

/// The charger's answer, if it is what the action answers (502 otherwise).
fn checked<T: DeserializeOwned>(answer: Value) -> Result<Value> {
    match payload::<T>(&answer) {
        Ok(_) => Ok(answer),
        Err(e) => Err(Error::BadAnswer(format!(
            "the charger's answer is not what OCPP defines for this action: {}",
            e.description
        ))),
    }
}

impl Hub {
    /// Sends one CALL over the socket this instance holds and checks the answer's type.
    pub(super) async fn send<A: DeserializeOwned>(
        &self,
        device: &DeviceId,
        action: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Value> {
        let answer = match self.call_local(device, action, payload, timeout).await {
            Some(result) => result?,
            None => {
                return Err(Error::conflict(
                    "device_offline",
                    "the charger disconnected",
                ))
            }
        };
        checked::<A>(answer)
    }

    /// Runs a REST command on an OCPP 1.6 charger.
    pub(super) async fn run_command(
        &self,
        device: &DeviceId,
        command: &str,
        data: &Value,
        timeout: Duration,
    ) -> Result<Value> {
        use v16::*;
        match command {
            "remote-start" => {
                let req: api::RemoteStartRequest = crate::devices::parse_data(data)?;
                let id_tag = CiString::new(req.tag.to_ascii_uppercase())
                    .ok_or_else(|| Error::invalid("tag", "is too long"))?;
                let call = RemoteStartTransactionRequest {
                    connector_id: Some(req.connector),
                    id_tag,
                    charging_profile: None,
                };
                self.send::<RemoteStartTransactionResponse>(
                    device,
                    "RemoteStartTransaction",
                    to_json(&call)?,
                    timeout,
                )
                .await
            }
            "remote-stop" => {
                let req: api::RemoteStopRequest = crate::devices::parse_data(data)?;
                let call = RemoteStopTransactionRequest {
                    transaction_id: req.session_id,
                };
                self.send::<RemoteStopTransactionResponse>(
                    device,
                    "RemoteStopTransaction",
                    to_json(&call)?,
                    timeout,
                )
                .await
            }
            "unlock" => {
                let req: api::UnlockRequest = crate::devices::parse_data(data)?;
                let call = UnlockConnectorRequest {
                    connector_id: req.connector,
                };
                self.send::<UnlockConnectorResponse>(
                    device,
                    "UnlockConnector",
                    to_json(&call)?,
                    timeout,
                )
                .await
            }
            // A rotation's new password, pushed first (the 1.6 security extension).
            "change-password" => {
                let call = ChangeConfigurationRequest {
                    key: CiString::cut("AuthorizationKey"),
                    value: CiString::new(data["password"].as_str().unwrap_or_default())
                        .ok_or_else(|| Error::invalid("password", "is too long"))?,
                };
                self.send::<ChangeConfigurationResponse>(
                    device,
                    "ChangeConfiguration",
                    to_json(&call)?,
                    timeout,
                )
                .await
            }
            "reset" => {
                let p = ocpp_data::<ResetRequest>(data)?;
                self.send::<ResetResponse>(device, "Reset", p, timeout)
                    .await
            }
            "change-availability" => {
                let p = ocpp_data::<ChangeAvailabilityRequest>(data)?;
                self.send::<ChangeAvailabilityResponse>(device, "ChangeAvailability", p, timeout)
                    .await
            }
            "change-configuration" => {
                let p = ocpp_data::<ChangeConfigurationRequest>(data)?;
                self.send::<ChangeConfigurationResponse>(device, "ChangeConfiguration", p, timeout)
                    .await
            }
            "get-configuration" => {
                let p = ocpp_data::<GetConfigurationRequest>(data)?;
                self.send::<GetConfigurationResponse>(device, "GetConfiguration", p, timeout)
                    .await
            }
            "clear-cache" => {
                let p = ocpp_data::<Empty>(data)?;
                self.send::<ClearCacheResponse>(device, "ClearCache", p, timeout)
                    .await
            }
            "get-local-list-version" => {
                let p = ocpp_data::<Empty>(data)?;
                self.send::<GetLocalListVersionResponse>(device, "GetLocalListVersion", p, timeout)
                    .await
            }
            "send-local-list" => {
                self.sync_local_list(device, Version::V16, data, timeout)
                    .await
            }
            "trigger-message" => {
                let p = ocpp_data::<TriggerMessageRequest>(data)?;
                self.send::<TriggerMessageResponse>(device, "TriggerMessage", p, timeout)
                    .await
            }
            "set-charging-profile" => {
                let p = ocpp_data::<SetChargingProfileRequest>(data)?;
                self.send::<SetChargingProfileResponse>(device, "SetChargingProfile", p, timeout)
                    .await
            }
            "clear-charging-profile" => {
                let p = ocpp_data::<ClearChargingProfileRequest>(data)?;
                self.send::<ClearChargingProfileResponse>(
                    device,
                    "ClearChargingProfile",
                    p,
                    timeout,
                )
                .await
            }
            "get-composite-schedule" => {
                let p = ocpp_data::<GetCompositeScheduleRequest>(data)?;
                self.send::<GetCompositeScheduleResponse>(
                    device,
                    "GetCompositeSchedule",
                    p,
                    timeout,
                )
                .await
            }
            _ => Err(Error::not_found("command")),
        }
    }

    /// Brings the charger's local list up to date: from the version it reports, the
    /// changes since (differential), or the whole list (full) when it has none, asks for
    /// one (`{"full": true}`), changed owner, or answers VersionMismatch. Answers
    /// `{"status", "listVersion", "updates"}`.
    pub(super) async fn sync_local_list(
        &self,
        device: &DeviceId,
        ocpp: Version,
        data: &Value,
        timeout: Duration,
    ) -> Result<Value> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SyncRequest {
            #[serde(default)]
            full: bool,
        }
        let req: SyncRequest = crate::devices::parse_data(data)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let held = if req.full {
            0
        } else {
            let answer = match ocpp {
                Version::V16 => {
                    self.send::<v16::GetLocalListVersionResponse>(
                        device,
                        "GetLocalListVersion",
                        serde_json::json!({}),
                        left(),
                    )
                    .await?
                }
                Version::V201 => {
                    self.send::<v201::GetLocalListVersionResponse>(
                        device,
                        "GetLocalListVersion",
                        serde_json::json!({}),
                        left(),
                    )
                    .await?
                }
            };
            answer["listVersion"]
                .as_i64()
                .or(answer["versionNumber"].as_i64())
                .unwrap_or(0)
        };
        if held < 0 {
            return Ok(
                serde_json::json!({"status": "NotSupported", "listVersion": held, "updates": 0}),
            );
        }
        let mut outcome = self.push_list(device, ocpp, held.max(0), left).await?;
        if outcome.0 == "VersionMismatch" && held > 0 {
            outcome = self.push_list(device, ocpp, 0, left).await?;
        }
        Ok(serde_json::json!({
            "status": outcome.0,
            "listVersion": outcome.1,
            "updates": outcome.2,
        }))
    }

    /// Sends the list's changes from `from` (0: the whole list, first as Full), page by
    /// page; returns the last status, the version reached and how many entries went.
    async fn push_list(
        &self,
        device: &DeviceId,
        ocpp: Version,
        from: i64,
        left: impl Fn() -> Duration,
    ) -> Result<(String, i64, usize)> {
        let mut version = from;
        let mut full = from == 0;
        let mut sent = 0;
        loop {
            let delta = self.service.local_list_delta_of(device, version).await?;
            if delta.reset && !full {
                // Its list is another owner's: start over.
                full = true;
                version = 0;
                continue;
            }
            let mut entries: Vec<AuthorizationData> = delta.tags.iter().filter_map(entry).collect();
            if !full {
                entries.extend(delta.removed.iter().filter_map(|uid| {
                    Some(AuthorizationData {
                        id_tag: CiString::new(uid.to_string())?,
                        id_tag_info: None,
                    })
                }));
            }
            if !full && entries.is_empty() && delta.version == version {
                return Ok(("Accepted".to_owned(), version, sent));
            }
            let call = v16::SendLocalListRequest {
                list_version: delta.version.max(1),
                local_authorization_list: Some(entries.clone()),
                update_type: if full {
                    UpdateType::Full
                } else {
                    UpdateType::Differential
                },
            };
            let answer = match ocpp {
                Version::V16 => {
                    self.send::<v16::SendLocalListResponse>(
                        device,
                        "SendLocalList",
                        to_json(&call)?,
                        left(),
                    )
                    .await?
                }
                Version::V201 => {
                    self.send::<v201::StatusResponse<v201::SendLocalListStatus>>(
                        device,
                        "SendLocalList",
                        as_201(&call),
                        left(),
                    )
                    .await?
                }
            };
            let status = answer["status"].as_str().unwrap_or("Failed").to_owned();
            sent += entries.len();
            if status != "Accepted" || !delta.more {
                return Ok((status, delta.version, sent));
            }
            version = delta.version;
            full = false;
        }
    }
}

/// A 1.6 SendLocalList in 2.0.1's shape: `versionNumber`, and entries of an ISO14443
/// `idToken` with its `idTokenInfo` (the group as `groupIdToken`).
fn as_201(call: &v16::SendLocalListRequest) -> Value {
    let entries: Vec<Value> = call
        .local_authorization_list
        .iter()
        .flatten()
        .map(|e| {
            let mut entry = serde_json::json!({
                "idToken": {"idToken": e.id_tag.as_str(), "type": "ISO14443"}
            });
            if let Some(info) = &e.id_tag_info {
                let mut token_info = serde_json::json!({"status": info.status.as_str()});
                if let Some(expiry) = info.expiry_date {
                    token_info["cacheExpiryDateTime"] =
                        charger_protocol::ocpp::time::text(expiry).into();
                }
                if let Some(group) = &info.parent_id_tag {
                    token_info["groupIdToken"] =
                        serde_json::json!({"idToken": group.as_str(), "type": "Central"});
                }
                entry["idTokenInfo"] = token_info;
            }
            entry
        })
        .collect();
    serde_json::json!({
        "versionNumber": call.list_version,
        "updateType": call.update_type.as_str(),
        "localAuthorizationList": entries,
    })
}

/// A tag as a local list entry (a tag with no uid OCPP can carry is left out).
fn entry(tag: &Tag) -> Option<AuthorizationData> {
    Some(AuthorizationData {
        id_tag: CiString::new(tag.uid.to_string())?,
        id_tag_info: Some(IdTagInfo {
            expiry_date: tag.expires_at,
            parent_id_tag: tag.group.as_deref().map(CiString::cut),
            status: match tag.status {
                TagStatus::Blocked => v16::AuthorizationStatus::Blocked,
                _ => v16::AuthorizationStatus::Accepted,
            },
        }),
    })
}
