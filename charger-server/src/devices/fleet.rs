//! A fleet of any size, as operators read it: a page of chargers searched and filtered
//! on the database, the fleet's counts and latest faults, a charger's history.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    Device, DeviceEvent, DeviceQuery, DeviceState, Fault, FleetCounts, HistoryKind, HistoryQuery,
};
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

/// A page of a charger's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    /// Newest first.
    pub lines: Vec<DeviceEvent>,
    /// The `through` of the next (older) page; None on the last one.
    pub next: Option<DateTime<Utc>>,
}

/// Cuts `lines` (newest first) to a page of at most `limit`, and says where the next page
/// starts. Lines that share one instant are never split across pages (the next page
/// starts at that instant, inclusive), unless a whole page shares one instant: then the
/// next page starts just before it.
fn cut_page(lines: &mut Vec<DeviceEvent>, limit: i64) -> Option<DateTime<Utc>> {
    let limit = usize::try_from(limit).unwrap_or(0);
    if lines.len() <= limit {
        return None;
    }
    lines.truncate(limit);
    let oldest = lines.last()?.at;
    if lines.iter().any(|l| l.at != oldest) {
        lines.retain(|l| l.at != oldest);
        Some(oldest)
    } else {
        Some(oldest - chrono::Duration::milliseconds(1))
    }
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

    /// A page of a charger's history, newest first, from `through` back: connections,
    /// status changes, answered requests, and the actions on it the caller may see
    /// (commands with their answers, rotations, offers). An owner sees only what happened
    /// since the charger became theirs (a former owner's cards and prices stay theirs).
    pub async fn device_history(
        &self,
        who: &Principal,
        device: &DeviceId,
        kind: HistoryKind,
        through: Option<DateTime<Utc>>,
    ) -> Result<HistoryPage> {
        self.get_device(who, device).await?;
        let since = match who {
            Principal::Admin => None,
            Principal::Owner(_) => self.store.owned_since(device).await?,
        };
        // One more than a page of each source tells whether there is an older page.
        let q = HistoryQuery {
            kind,
            since,
            through,
            limit: HISTORY_PAGE + 1,
        };
        let mut lines = self.store.device_history(device, &q).await?;
        if kind.actions() {
            let actions = self
                .store
                .list_audit(device, who.owner_filter(), through, q.limit)
                .await?;
            lines.extend(actions.into_iter().map(|a| DeviceEvent {
                at: a.at,
                kind: a.action,
                detail: format!(
                    "{} by {}: {}",
                    a.detail.unwrap_or_default(),
                    a.principal,
                    a.outcome
                ),
                code: None,
            }));
        }
        lines.sort_by_key(|l| std::cmp::Reverse(l.at));
        let next = cut_page(&mut lines, HISTORY_PAGE);
        Ok(HistoryPage { lines, next })
    }

    /// Deletes chargers' events past the request log's window.
    pub async fn prune_device_events(&self, now: DateTime<Utc>) -> Result<u64> {
        let before = now - chrono::Duration::days(i64::from(self.limits.request_log_days));
        Ok(self.store.prune_device_events(before).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ms: i64) -> DeviceEvent {
        DeviceEvent {
            at: DateTime::from_timestamp_millis(ms).expect("time"),
            kind: "status".into(),
            detail: String::new(),
            code: None,
        }
    }

    #[test]
    fn a_page_never_splits_an_instant() {
        // Newest first: 9, 8, 8, 7, 7, 7, 6.
        let all: Vec<DeviceEvent> = [9, 8, 8, 7, 7, 7, 6].into_iter().map(line).collect();
        let mut page = all.clone();
        // A page of 5 would cut the three lines at 7 after two: they all go to the next.
        let next = cut_page(&mut page, 5);
        assert_eq!(page, all[..3]);
        assert_eq!(next, Some(line(7).at));
        // The next page (through 7, inclusive) has them all.
        let mut rest: Vec<DeviceEvent> =
            all.iter().filter(|l| l.at <= line(7).at).cloned().collect();
        assert_eq!(cut_page(&mut rest, 5), None);
        assert_eq!(rest.len(), 4);
        // A page that all shares one instant moves on past it.
        let mut same: Vec<DeviceEvent> = [5, 5, 5, 4].into_iter().map(line).collect();
        assert_eq!(cut_page(&mut same, 3), Some(line(4).at));
        assert_eq!(same.len(), 3);
        // A short page is the last.
        let mut short = vec![line(1)];
        assert_eq!(cut_page(&mut short, 5), None);
    }
}
