//! What the console reads for daily use on big fleets: a page of chargers searched and
//! filtered on the database, the fleet's counts, the latest faults, a charger's history
//! (events and answered requests), a page of tags.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{corrupt, DeviceRow, SqlStore, TagRow, DEVICE_COLUMNS, TAG_COLUMNS};
use crate::ids::{DeviceId, OwnerId};
use crate::records::devices::{
    Device, DeviceEvent, DeviceQuery, DeviceState, Fault, FleetCounts, HistoryQuery,
};
use crate::records::tags::{Tag, TagQuery};
use crate::store::{from_millis, to_millis, StoreResult};

/// `text` as a LIKE pattern that matches it anywhere, its own `%`, `_` and `\` taken
/// literally (with `ESCAPE '\'`), lower-cased.
fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl SqlStore {
    pub(super) async fn device_page(&self, q: &DeviceQuery) -> StoreResult<Vec<Device>> {
        let state = match q.state {
            DeviceState::All => "1 = 1",
            DeviceState::Online => "online = 1",
            DeviceState::Offline => "online = 0",
            DeviceState::Charging => {
                "EXISTS (SELECT 1 FROM connectors c WHERE c.device_id = devices.id
                                                    AND c.state = 'charging')"
            }
            DeviceState::Faulted => {
                "EXISTS (SELECT 1 FROM connectors c WHERE c.device_id = devices.id
                                                    AND c.state = 'faulted')"
            }
        };
        let rows: Vec<DeviceRow> = sqlx::query_as(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices
             WHERE ($1 IS NULL OR owner_id = $1)
               AND ($2 IS NULL OR lower(id) LIKE $2 ESCAPE '\\'
                    OR lower(COALESCE(model, '')) LIKE $2 ESCAPE '\\'
                    OR lower(COALESCE(firmware, '')) LIKE $2 ESCAPE '\\')
               AND ($3 IS NULL OR id > $3)
               AND {state}
             ORDER BY id LIMIT $4"
        ))
        .bind(q.owner.as_ref().map(OwnerId::as_str))
        .bind(q.search.as_deref().map(contains_pattern))
        .bind(q.after.as_ref().map(DeviceId::as_str))
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        // Their connectors, in one query for the page.
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut connectors = self.connectors_in(&ids).await?;
        rows.into_iter()
            .map(|row| {
                let own = connectors.remove(&row.id).unwrap_or_default();
                row.into_device(own)
            })
            .collect()
    }

    pub(super) async fn fleet_counts_of(
        &self,
        owner: Option<&OwnerId>,
    ) -> StoreResult<FleetCounts> {
        let (chargers, online, charging, faulted): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*),
                    CAST(COALESCE(SUM(online), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM connectors c
                        WHERE c.device_id = d.id AND c.state = 'charging') THEN 1 ELSE 0 END), 0)
                        AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM connectors c
                        WHERE c.device_id = d.id AND c.state = 'faulted') THEN 1 ELSE 0 END), 0)
                        AS BIGINT)
             FROM devices d WHERE $1 IS NULL OR d.owner_id = $1",
        )
        .bind(owner.map(OwnerId::as_str))
        .fetch_one(&self.pool)
        .await?;
        Ok(FleetCounts {
            chargers,
            online,
            charging,
            faulted,
        })
    }

    pub(super) async fn recent_faults_of(
        &self,
        owner: Option<&OwnerId>,
        limit: i64,
    ) -> StoreResult<Vec<Fault>> {
        let rows: Vec<(String, i64, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT c.device_id, c.connector, c.state, c.error, c.updated_at
             FROM connectors c JOIN devices d ON d.id = c.device_id
             WHERE c.error IS NOT NULL AND ($1 IS NULL OR d.owner_id = $1)
             ORDER BY c.updated_at DESC LIMIT $2",
        )
        .bind(owner.map(OwnerId::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(device, connector, state, error, at)| {
                Ok(Fault {
                    device: DeviceId::parse(&device).map_err(|e| corrupt("device id", e))?,
                    connector,
                    state,
                    error: error.unwrap_or_default(),
                    at: from_millis(at)?,
                })
            })
            .collect()
    }

    pub(super) async fn station_variables_of(
        &self,
        device: &DeviceId,
    ) -> StoreResult<Vec<crate::records::devices::StationVariable>> {
        let rows: Vec<(String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT component, evse_id, variable, value, updated_at FROM station_variables
             WHERE device_id = $1 ORDER BY component, evse_id, variable",
        )
        .bind(device.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(component, evse, variable, value, at)| {
                Ok(crate::records::devices::StationVariable {
                    component,
                    evse,
                    variable,
                    value,
                    updated_at: from_millis(at)?,
                })
            })
            .collect()
    }

    /// A charger's history, newest first: its events (connects, disconnects, status
    /// changes) and its answered requests of the query's kind and times, `limit` of each
    /// at most.
    pub(super) async fn device_history_of(
        &self,
        device: &DeviceId,
        q: &HistoryQuery,
    ) -> StoreResult<Vec<DeviceEvent>> {
        #[derive(FromRow)]
        struct EventRow {
            at: i64,
            kind: String,
            detail: Option<String>,
        }
        let since = q.since.map(crate::store::to_millis);
        let through = q.through.map(crate::store::to_millis);
        let mut events: Vec<EventRow> = Vec::new();
        if let Some(kinds) = q.kind.event_kinds() {
            // The kinds are fixed names of ours, bound one by one.
            let slots: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 5)).collect();
            let sql = format!(
                "SELECT at, kind, detail FROM device_events
                 WHERE device_id = $1 AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at <= $3)
                   AND kind IN ({})
                 ORDER BY at DESC, id DESC LIMIT $4",
                slots.join(", ")
            );
            let mut query = sqlx::query_as(&sql)
                .bind(device.as_str())
                .bind(since)
                .bind(through)
                .bind(q.limit);
            for k in kinds {
                query = query.bind(*k);
            }
            events = query.fetch_all(&self.pool).await?;
        }
        let mut requests: Vec<(i64, String, i64, String, String)> = Vec::new();
        if q.kind.requests() {
            requests = sqlx::query_as(
                "SELECT created_at, endpoint, code, request_id, body FROM mqtt_requests
                 WHERE device_id = $1 AND ($2 IS NULL OR created_at >= $2)
                   AND ($3 IS NULL OR created_at <= $3)
                 ORDER BY created_at DESC LIMIT $4",
            )
            .bind(device.as_str())
            .bind(since)
            .bind(through)
            .bind(q.limit)
            .fetch_all(&self.pool)
            .await?;
        }
        let mut out = Vec::with_capacity(events.len() + requests.len());
        for e in events {
            out.push(DeviceEvent {
                at: from_millis(e.at)?,
                kind: e.kind,
                detail: e.detail.unwrap_or_default(),
                code: None,
            });
        }
        for (at, endpoint, code, id, body) in requests {
            out.push(DeviceEvent {
                at: from_millis(at)?,
                kind: format!("request:{endpoint}"),
                detail: format!("id {id}: {body}"),
                code: Some(code),
            });
        }
        out.sort_by_key(|l| std::cmp::Reverse(l.at));
        out.truncate(usize::try_from(q.limit).unwrap_or(0));
        Ok(out)
    }

    /// When a charger last changed owner.
    pub(super) async fn owned_since_of(
        &self,
        device: &DeviceId,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT MAX(until) FROM ownership_history WHERE device_id = $1")
                .bind(device.as_str())
                .fetch_one(&self.pool)
                .await?;
        at.map(from_millis).transpose()
    }

    pub(super) async fn prune_device_events_before(
        &self,
        before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM device_events WHERE at < $1")
            .bind(to_millis(before))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub(super) async fn tag_page(&self, q: &TagQuery) -> StoreResult<Vec<Tag>> {
        let rows: Vec<TagRow> = sqlx::query_as(&format!(
            "SELECT {TAG_COLUMNS} FROM tags
             WHERE ($1 IS NULL OR owner_id = $1)
               AND ($2 IS NULL OR lower(uid) LIKE $2 ESCAPE '\\'
                    OR lower(COALESCE(label, '')) LIKE $2 ESCAPE '\\')
               AND ($3 IS NULL OR uid > $3 OR (uid = $3 AND owner_id > $4))
             ORDER BY uid, owner_id LIMIT $5"
        ))
        .bind(q.owner.as_ref().map(OwnerId::as_str))
        .bind(q.search.as_deref().map(contains_pattern))
        .bind(q.after.as_ref().map(|(uid, _)| uid.as_str()))
        .bind(q.after.as_ref().map_or("", |(_, owner)| owner.as_str()))
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        self.with_devices(rows, q.owner.as_ref(), None).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_patterns_take_wildcards_literally() {
        assert_eq!(super::contains_pattern("Acme_1%"), "%acme\\_1\\%%");
        assert_eq!(super::contains_pattern("a\\b"), "%a\\\\b%");
    }
}
