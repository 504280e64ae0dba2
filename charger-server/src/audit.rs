//! Who did what: every state-changing action of an operator (REST or console) is logged
//! with the principal behind it (a `tracing` line with target `charger_server::audit`), and the actions on
//! a charger (commands and their results, credential rotations, transfer offers, settings,
//! tariff assignment, dispute resolutions) are kept in the database for the charger's page
//! (`CHARGER_AUDIT_LOG_DAYS`, 400 days by default).

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::ids::{DeviceId, OwnerId};
pub use crate::records::audit::AuditEntry;
use crate::service::{Principal, Service};

/// Most audit entries a charger's page shows.
pub const DEVICE_AUDIT_SHOWN: i64 = 50;

/// Longest detail or outcome kept, in characters.
const MAX_TEXT: usize = 300;

impl Principal {
    /// How the audit log names the caller.
    pub fn audit_name(&self) -> String {
        match self {
            Principal::Admin => "admin".to_owned(),
            Principal::Owner(o) => format!("owner:{o}"),
        }
    }
}

impl Service {
    /// Records an action on a charger of `owner` (logged always; kept in the database when
    /// it names a charger). A failure to keep it is logged, never the caller's problem.
    pub(crate) async fn audit(
        &self,
        who: &Principal,
        owner: Option<&OwnerId>,
        device: Option<&DeviceId>,
        action: &str,
        detail: Option<String>,
        outcome: &str,
    ) {
        let detail = detail.map(|d| crate::error::bounded(d, MAX_TEXT));
        let outcome = crate::error::bounded(outcome, MAX_TEXT);
        tracing::info!(
            target: "charger_server::audit",
            principal = %who.audit_name(),
            device = device.map(|d| d.as_str()),
            action,
            detail = detail.as_deref().map(crate::telemetry::field),
            outcome = %crate::telemetry::field(&outcome),
            "operator action"
        );
        if device.is_none() {
            return;
        }
        let entry = AuditEntry {
            id: 0,
            at: self.now(),
            principal: who.audit_name(),
            owner: owner.cloned(),
            device: device.cloned(),
            action: action.to_owned(),
            detail,
            outcome,
        };
        if let Err(e) = self.store.insert_audit(&entry).await {
            tracing::error!(error = %e, "audit entry not kept");
        }
    }

    /// A charger's recent actions, newest first, as far as the caller may see them (an
    /// owner sees those taken while the charger was its own).
    pub async fn device_audit(
        &self,
        who: &Principal,
        device: &DeviceId,
    ) -> Result<Vec<AuditEntry>> {
        self.get_device(who, device).await?;
        Ok(self
            .store
            .list_audit(device, who.owner_filter(), None, DEVICE_AUDIT_SHOWN)
            .await?)
    }

    /// Deletes audit entries past their keeping time; returns how many.
    pub async fn prune_audit(&self, now: DateTime<Utc>) -> Result<u64> {
        let days = i64::from(self.limits.audit_log_days);
        Ok(self
            .store
            .prune_audit(now - chrono::Duration::days(days))
            .await?)
    }
}
