//! Sites for load management: their trees, where chargers hang, and what each running
//! session was last given.

use chrono::{DateTime, Utc};

use super::{corrupt, SqlStore};
use crate::ids::{DeviceId, OwnerId};
use crate::records::devices::Protocol;
use crate::records::sites::{
    parse_rotation, rotation_text, AllocationRow, Failsafe, PlacedCharger, Placement, Site,
    SiteLoad, SiteNode, SiteSession,
};
use crate::store::{from_millis, to_millis, StoreResult};

const SITE_COLUMNS: &str = "id, owner_id, name, failsafe, lease_s, created_at";
const NODE_COLUMNS: &str =
    "id, site_id, parent_id, name, limit_l1_da, limit_l2_da, limit_l3_da, power_cap_w";

type SiteRow = (i64, String, String, String, i64, i64);
type NodeRow = (i64, i64, Option<i64>, String, i64, i64, i64, Option<i64>);
/// device, node, rotation, max current, priority, default limit, schedule check.
type PlacementRow = (String, i64, String, i64, i64, Option<i64>, Option<String>);
/// A placement, then its site.
type PlacementSiteRow = (
    String,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    i64,
);
/// session, current, previous, acked, lease end, served at, drawn, failsafe.
type AllocationSqlRow = (i64, i64, i64, i64, i64, i64, Option<i64>, i64);
/// A placement, then its charger's protocol, presence and connector count.
type PlacedRow = (
    String,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    String,
    i64,
    i64,
);

fn site_of(r: SiteRow) -> StoreResult<Site> {
    Ok(Site {
        id: r.0,
        owner: OwnerId::parse(&r.1).map_err(|e| corrupt("owner id", e))?,
        name: r.2,
        failsafe: Failsafe::parse(&r.3).ok_or_else(|| corrupt("site failsafe", &r.3))?,
        lease_s: r.4,
        created_at: from_millis(r.5)?,
    })
}

fn node_of(r: NodeRow) -> SiteNode {
    SiteNode {
        id: r.0,
        site: r.1,
        parent: r.2,
        name: r.3,
        limit_da: [r.4, r.5, r.6],
        power_cap_w: r.7,
    }
}

impl SqlStore {
    pub(super) async fn insert_site(
        &self,
        owner: &OwnerId,
        name: &str,
        failsafe: Failsafe,
        lease_s: i64,
        root: ([i64; 3], Option<i64>),
        now: DateTime<Utc>,
    ) -> StoreResult<Site> {
        let mut tx = self.begin_write().await?;
        let row: SiteRow = sqlx::query_as(&format!(
            "INSERT INTO sites (owner_id, name, failsafe, lease_s, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING {SITE_COLUMNS}"
        ))
        .bind(owner.as_str())
        .bind(name)
        .bind(failsafe.as_str())
        .bind(lease_s)
        .bind(to_millis(now))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO site_nodes
                 (site_id, parent_id, name, limit_l1_da, limit_l2_da, limit_l3_da, power_cap_w)
             VALUES ($1, NULL, $2, $3, $4, $5, $6)",
        )
        .bind(row.0)
        .bind("connection")
        .bind(root.0[0])
        .bind(root.0[1])
        .bind(root.0[2])
        .bind(root.1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        site_of(row)
    }

    pub(super) async fn sites_of(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<Site>> {
        let rows: Vec<SiteRow> = sqlx::query_as(&format!(
            "SELECT {SITE_COLUMNS} FROM sites WHERE ($1 IS NULL OR owner_id = $1) ORDER BY id"
        ))
        .bind(owner.map(OwnerId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(site_of).collect()
    }

    pub(super) async fn site_by_id(&self, id: i64) -> StoreResult<Option<Site>> {
        let row: Option<SiteRow> =
            sqlx::query_as(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(site_of).transpose()
    }

    pub(super) async fn nodes_of(&self, site: i64) -> StoreResult<Vec<SiteNode>> {
        let rows: Vec<NodeRow> = sqlx::query_as(&format!(
            "SELECT {NODE_COLUMNS} FROM site_nodes WHERE site_id = $1 ORDER BY id"
        ))
        .bind(site)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(node_of).collect())
    }

    /// A node under `parent`, which must be one of `site`'s (None otherwise).
    pub(super) async fn insert_site_node(
        &self,
        site: i64,
        parent: i64,
        name: &str,
        limit: [i64; 3],
        cap: Option<i64>,
    ) -> StoreResult<Option<SiteNode>> {
        let row: Option<NodeRow> = sqlx::query_as(&format!(
            "INSERT INTO site_nodes
                 (site_id, parent_id, name, limit_l1_da, limit_l2_da, limit_l3_da, power_cap_w)
             SELECT $1, id, $3, $4, $5, $6, $7 FROM site_nodes WHERE id = $2 AND site_id = $1
             RETURNING {NODE_COLUMNS}"
        ))
        .bind(site)
        .bind(parent)
        .bind(name)
        .bind(limit[0])
        .bind(limit[1])
        .bind(limit[2])
        .bind(cap)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(node_of))
    }

    /// Changes a node's name and limits; false when it is not one of its site's.
    pub(super) async fn update_site_node(&self, node: &SiteNode) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE site_nodes SET name = $3, limit_l1_da = $4, limit_l2_da = $5,
                                   limit_l3_da = $6, power_cap_w = $7
             WHERE id = $1 AND site_id = $2",
        )
        .bind(node.id)
        .bind(node.site)
        .bind(&node.name)
        .bind(node.limit_da[0])
        .bind(node.limit_da[1])
        .bind(node.limit_da[2])
        .bind(node.power_cap_w)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Places a charger on a node of a site of its own owner (checked in the write: false
    /// when the charger, the node or their owners do not match).
    pub(super) async fn upsert_placement(&self, site: i64, p: &Placement) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO site_chargers (device_id, node_id, rotation, max_current_da, priority)
             SELECT d.id, n.id, $3, $4, $5
             FROM devices d, site_nodes n, sites s
             WHERE d.id = $1 AND n.id = $2 AND n.site_id = $6 AND s.id = n.site_id
               AND s.owner_id = d.owner_id
             ON CONFLICT (device_id) DO UPDATE SET
                 node_id = excluded.node_id, rotation = excluded.rotation,
                 max_current_da = excluded.max_current_da, priority = excluded.priority,
                 default_da = NULL, schedule_check = NULL, leaving = 0",
        )
        .bind(p.device.as_str())
        .bind(p.node)
        .bind(rotation_text(&p.rotation))
        .bind(p.max_current_da)
        .bind(i64::from(p.priority))
        .bind(site)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete_placement(&self, device: &DeviceId) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE site_chargers SET leaving = 1 WHERE device_id = $1 AND leaving = 0",
        )
        .bind(device.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A charger's placement and its site.
    pub(super) async fn placement_of(
        &self,
        device: &DeviceId,
    ) -> StoreResult<Option<(Placement, i64)>> {
        let row: Option<PlacementSiteRow> = sqlx::query_as(
            "SELECT c.device_id, c.node_id, c.rotation, c.max_current_da, c.priority,
                    c.default_da, c.schedule_check, n.site_id
             FROM site_chargers c JOIN site_nodes n ON n.id = c.node_id
             WHERE c.device_id = $1 AND c.leaving = 0",
        )
        .bind(device.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let site = r.7;
            Ok((placement_of_row((r.0, r.1, r.2, r.3, r.4, r.5, r.6))?, site))
        })
        .transpose()
    }

    pub(super) async fn sites_of_chargers(&self, devices: &[DeviceId]) -> StoreResult<Vec<i64>> {
        // Ids per statement (one parameter each).
        const CHUNK: usize = 200;
        let mut sites = Vec::new();
        for chunk in devices.chunks(CHUNK) {
            let list = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT DISTINCT n.site_id
                 FROM site_chargers c JOIN site_nodes n ON n.id = c.node_id
                 WHERE c.leaving = 0 AND c.device_id IN ({list})"
            );
            let mut query = sqlx::query_as::<_, (i64,)>(&sql);
            for d in chunk {
                query = query.bind(d.as_str());
            }
            sites.extend(query.fetch_all(&self.pool).await?.into_iter().map(|(s,)| s));
        }
        sites.sort_unstable();
        sites.dedup();
        Ok(sites)
    }

    pub(super) async fn load_of_site(&self, id: i64) -> StoreResult<Option<SiteLoad>> {
        let Some(site) = self.site_by_id(id).await? else {
            return Ok(None);
        };
        let nodes = self.nodes_of(id).await?;
        let rows: Vec<PlacedRow> = sqlx::query_as(
            "SELECT c.device_id, c.node_id, c.rotation, c.max_current_da, c.priority,
                        c.default_da, c.schedule_check, d.protocol, d.online, d.connectors
                 FROM site_chargers c
                 JOIN site_nodes n ON n.id = c.node_id
                 JOIN devices d ON d.id = c.device_id
                 WHERE n.site_id = $1 AND c.leaving = 0 ORDER BY c.device_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let chargers = rows
            .into_iter()
            .map(|r| {
                Ok(PlacedCharger {
                    placement: placement_of_row((r.0, r.1, r.2, r.3, r.4, r.5, r.6))?,
                    protocol: Protocol::parse(&r.7).ok_or_else(|| corrupt("protocol", &r.7))?,
                    online: r.8 != 0,
                    connector_count: r.9,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let sessions: Vec<(i64, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT s.id, s.device_id, s.connector, s.local_id
             FROM sessions s
             JOIN site_chargers c ON c.device_id = s.device_id
             JOIN site_nodes n ON n.id = c.node_id
             WHERE n.site_id = $1 AND c.leaving = 0 AND s.status = 'active' ORDER BY s.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let sessions = sessions
            .into_iter()
            .map(|(id, device, connector, local_id)| {
                Ok(SiteSession {
                    id,
                    device: DeviceId::parse(&device).map_err(|e| corrupt("device id", e))?,
                    connector,
                    local_id,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let rows: Vec<AllocationSqlRow> = sqlx::query_as(
            // By session, not by the site that wrote it: a charger moved between sites
            // (or while offline) keeps what it was last sent.
            "SELECT a.session_id, a.current_da, a.previous_da, a.acked, a.lease_until,
                    a.served_at, a.drawn_da, a.failsafe_da
             FROM site_allocations a
             JOIN sessions s ON s.id = a.session_id
             JOIN site_chargers c ON c.device_id = s.device_id
             JOIN site_nodes n ON n.id = c.node_id
             WHERE n.site_id = $1 AND c.leaving = 0 AND s.status = 'active'
             ORDER BY a.session_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let allocations = rows
            .into_iter()
            .map(|r| {
                Ok(AllocationRow {
                    session: r.0,
                    current_da: r.1,
                    previous_da: r.2,
                    acked: r.3 != 0,
                    lease_until: from_millis(r.4)?,
                    served_at: from_millis(r.5)?,
                    drawn_da: r.6,
                    failsafe_da: r.7,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(SiteLoad {
            site,
            nodes,
            chargers,
            sessions,
            allocations,
        }))
    }

    /// Takes (or keeps) the right to allocate `site` until `until`, unless another
    /// instance holds it now.
    pub(super) async fn claim_site_for(
        &self,
        site: i64,
        instance: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE sites SET allocator = $2, allocator_until = $3
             WHERE id = $1 AND (allocator IS NULL OR allocator = $2 OR allocator_until < $4)",
        )
        .bind(site)
        .bind(instance)
        .bind(to_millis(until))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The sites with a charger on them.
    pub(super) async fn sites_with_chargers_now(&self) -> StoreResult<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT DISTINCT n.site_id FROM site_chargers c
             JOIN site_nodes n ON n.id = c.node_id WHERE c.leaving = 0 ORDER BY n.site_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub(super) async fn upsert_allocation(
        &self,
        site: i64,
        row: &AllocationRow,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO site_allocations
                 (session_id, site_id, current_da, previous_da, acked, lease_until, served_at,
                  failsafe_da)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (session_id) DO UPDATE SET
                 site_id = excluded.site_id, current_da = excluded.current_da,
                 previous_da = excluded.previous_da, acked = excluded.acked,
                 lease_until = excluded.lease_until, served_at = excluded.served_at,
                 failsafe_da = excluded.failsafe_da,
                 drawn_da = CASE WHEN excluded.current_da <= site_allocations.current_da
                                 THEN site_allocations.drawn_da END",
        )
        .bind(row.session)
        .bind(site)
        .bind(row.current_da)
        .bind(row.previous_da)
        .bind(i64::from(row.acked))
        .bind(to_millis(row.lease_until))
        .bind(to_millis(row.served_at))
        .bind(row.failsafe_da)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Chargers taken off their site whose limits are not lifted yet.
    pub(super) async fn leaving_now(&self) -> StoreResult<Vec<DeviceId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT device_id FROM site_chargers WHERE leaving = 1 ORDER BY device_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(d,)| DeviceId::parse(&d).map_err(|e| corrupt("device id", e)))
            .collect()
    }

    /// Forgets a charger that left its site once its limits were lifted (unless it was
    /// placed again meanwhile).
    pub(super) async fn delete_leaving(&self, device: &DeviceId) -> StoreResult<()> {
        sqlx::query("DELETE FROM site_chargers WHERE device_id = $1 AND leaving = 1")
            .bind(device.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn update_schedule_check(
        &self,
        device: &DeviceId,
        check: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE site_chargers SET schedule_check = $2 WHERE device_id = $1")
            .bind(device.as_str())
            .bind(check)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn ack_allocation_sent(
        &self,
        session: i64,
        current_da: i64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE site_allocations SET acked = 1, previous_da = current_da
             WHERE session_id = $1 AND current_da = $2 AND lease_until = $3",
        )
        .bind(session)
        .bind(current_da)
        .bind(to_millis(lease_until))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn update_default_limit(
        &self,
        device: &DeviceId,
        da: Option<i64>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE site_chargers SET default_da = $2 WHERE device_id = $1")
            .bind(device.as_str())
            .bind(da)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the allocations of `site`'s sessions that are no longer running.
    pub(super) async fn prune_site_allocations(&self, site: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM site_allocations WHERE site_id = $1 AND session_id NOT IN
                 (SELECT id FROM sessions WHERE status = 'active')",
        )
        .bind(site)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

fn placement_of_row(r: PlacementRow) -> StoreResult<Placement> {
    Ok(Placement {
        device: DeviceId::parse(&r.0).map_err(|e| corrupt("device id", e))?,
        node: r.1,
        rotation: parse_rotation(&r.2).ok_or_else(|| corrupt("rotation", &r.2))?,
        max_current_da: r.3,
        priority: i32::try_from(r.4).map_err(|_| corrupt("priority", r.4))?,
        default_da: r.5,
        schedule_check: r.6,
    })
}
