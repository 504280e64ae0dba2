//! A fleet of any size, as operators read it: a page of chargers searched and filtered
//! on the database, the fleet's counts and latest faults, a charger's history.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Device, DeviceEvent, DeviceQuery, DeviceState, Fault, FleetCounts};
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::service::{Principal, Service};

/// Chargers per fleet page.
pub const FLEET_PAGE: i64 = 50;
/// Lines per history page.
pub const HISTORY_PAGE: i64 = 100;

/// A page of chargers.
#[derive(Debug, Clone, Serialize)]
pub struct FleetPage {
    pub devices: Vec<Device>,
    /// The id to pass as `after` for the next page; None on the last one.
    pub next: Option<DeviceId>,
}

/// The fleet at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct FleetOverview {
    pub counts: FleetCounts,
    /// The latest connector errors.
    pub faults: Vec<Fault>,
}

impl Service {
    /// A page of the caller's chargers: those whose id, model or firmware contains
    /// `search` (any case), in `state`, after `after`, by id.
    pub async fn fleet_page(
        &self,
        who: &Principal,
        search: Option<&str>,
        state: DeviceState,
        after: Option<DeviceId>,
        limit: i64,
    ) -> Result<FleetPage> {
        if !(1..=500).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 500"));
        }
        let search = search
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| crate::error::bounded(s, 64));
        let mut devices = self
            .store
            .device_page(&DeviceQuery {
                owner: who.owner_filter().cloned(),
                search,
                state,
                after,
                limit: limit + 1,
            })
            .await?;
        let more = devices.len() as i64 > limit;
        devices.truncate(usize::try_from(limit).unwrap_or(0));
        let next = if more {
            devices.last().map(|d| d.id.clone())
        } else {
            None
        };
        Ok(FleetPage { devices, next })
    }

    /// The caller's fleet at a glance: counts and the latest faults.
    pub async fn fleet_overview(&self, who: &Principal) -> Result<FleetOverview> {
        Ok(FleetOverview {
            counts: self.store.fleet_counts(who.owner_filter()).await?,
            faults: self.store.recent_faults(who.owner_filter(), 10).await?,
        })
    }

    /// A charger's history, newest first, before `before`: connections, status changes,
    /// answered requests, and the actions on it the caller may see (commands with their
    /// answers, rotations, offers).
    pub async fn device_history(
        &self,
        who: &Principal,
        device: &DeviceId,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeviceEvent>> {
        self.get_device(who, device).await?;
        let mut lines = self
            .store
            .device_history(device, before, HISTORY_PAGE)
            .await?;
        let actions = self
            .store
            .list_audit(device, who.owner_filter(), HISTORY_PAGE)
            .await?;
        lines.extend(
            actions
                .into_iter()
                .filter(|a| before.is_none_or(|b| a.at < b))
                .map(|a| DeviceEvent {
                    at: a.at,
                    kind: a.action,
                    detail: format!(
                        "{} by {}: {}",
                        a.detail.unwrap_or_default(),
                        a.principal,
                        a.outcome
                    ),
                    code: None,
                }),
        );
        lines.sort_by_key(|l| std::cmp::Reverse(l.at));
        lines.truncate(usize::try_from(HISTORY_PAGE).unwrap_or(0));
        Ok(lines)
    }

    /// Deletes chargers' events past the request log's window.
    pub async fn prune_device_events(&self, now: DateTime<Utc>) -> Result<u64> {
        let before = now - chrono::Duration::days(i64::from(self.limits.request_log_days));
        Ok(self.store.prune_device_events(before).await?)
    }
}
