//! Audit entries: who did what to which charger.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{DeviceId, OwnerId};

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `admin`, or `owner:<id>`.
    pub principal: String,
    /// The owner of the charger acted on, at the time (its page shows only its own).
    #[serde(skip)]
    pub owner: Option<OwnerId>,
    pub device: Option<DeviceId>,
    /// What was done: `command:remote-stop`, `credentials:rotate`, ...
    pub action: String,
    /// Its input, bounded (a command's data).
    pub detail: Option<String>,
    /// How it ended: the charger's answer, `ok`, or the error code.
    pub outcome: String,
}
