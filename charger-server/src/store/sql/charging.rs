//! [`ChargerTx`] on SQL: the charger API's reads and writes inside one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, FromRow, Transaction};

use super::{
    bump_list_version, corrupt, decimal, insert_tag_in, TagRow, TariffRow, TAG_COLUMNS,
    TARIFF_COLUMNS,
};
use crate::ids::{DeviceId, OwnerId, TagUid, TariffId};
use crate::records::billing::Tariff;
use crate::records::charging::{
    Charger, LocalListItem, LocalListPage, NewSession, Sample, Session, SessionRef, SessionStatus,
    StopRecord,
};
use crate::records::cost::Prices;
use crate::records::money::{to_minor, Currency};
use crate::records::tags::Tag;
use crate::store::{
    from_millis, to_millis, Basis, ChargerTx, KeptResult, ReadModel, StoreError, StoreResult,
    StoredResult, UnknownTagNote,
};

/// One open transaction of a batch of charger requests, or a read-only connection.
pub(super) struct SqlTx {
    conn: Conn,
    /// The authorize read model: a read-only connection fills it with what it reads.
    model: Option<std::sync::Arc<ReadModel>>,
    /// Unknown-tag sightings held back for the request path to record.
    held: Vec<UnknownTagNote>,
    /// Statements that changed data so far.
    writes: u64,
}

enum Conn {
    Tx(Transaction<'static, Any>),
    Read(PoolConnection<Any>),
}

impl SqlTx {
    /// A batch's transaction; `model` is emptied when a basis it checks is stale.
    pub(super) fn new(tx: Transaction<'static, Any>, model: std::sync::Arc<ReadModel>) -> Self {
        Self {
            conn: Conn::Tx(tx),
            model: Some(model),
            held: Vec::new(),
            writes: 0,
        }
    }

    /// Reads outside a transaction; [`ChargerTx::note_unknown_tag`] is held back. What it
    /// reads of chargers and tags goes into the read model (never what a transaction
    /// reads: it may be undone).
    pub(super) fn read(conn: PoolConnection<Any>, model: std::sync::Arc<ReadModel>) -> Self {
        Self {
            conn: Conn::Read(conn),
            model: Some(model),
            held: Vec::new(),
            writes: 0,
        }
    }

    fn c(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            Conn::Tx(tx) => tx,
            Conn::Read(conn) => conn,
        }
    }

    /// The transaction, for a statement that changes data (counted); a read-only
    /// connection refuses them.
    fn w(&mut self) -> StoreResult<&mut AnyConnection> {
        match &mut self.conn {
            Conn::Tx(tx) => {
                self.writes += 1;
                Ok(tx)
            }
            Conn::Read(_) => Err(StoreError::ReadOnly),
        }
    }

    /// The transaction, for bookkeeping that changes no data (savepoints, locks).
    fn t(&mut self) -> StoreResult<&mut AnyConnection> {
        match &mut self.conn {
            Conn::Tx(tx) => Ok(tx),
            Conn::Read(_) => Err(StoreError::ReadOnly),
        }
    }
}

pub(super) const SESSION_COLUMNS: &str =
    "id, device_id, connector, owner_id, tag_uid, local_id, status, \
    offline, meter_start_wh, meter_stop_wh, last_meter_wh, started_at, stopped_at, stop_reason, \
    tariff_id, currency, energy_per_kwh, time_per_hour, session_fee, tax_rate, energy_wh, \
    net_minor, tax_minor, total_minor, dispute, last_sample_at, resolved_by, resolved_at, \
    resolution";

#[derive(FromRow)]
pub(super) struct SessionRow {
    id: i64,
    device_id: String,
    connector: i64,
    owner_id: String,
    tag_uid: String,
    local_id: Option<String>,
    status: String,
    offline: i64,
    meter_start_wh: i64,
    meter_stop_wh: Option<i64>,
    last_meter_wh: i64,
    started_at: i64,
    stopped_at: Option<i64>,
    stop_reason: Option<String>,
    tariff_id: Option<String>,
    currency: String,
    energy_per_kwh: String,
    time_per_hour: String,
    session_fee: String,
    tax_rate: String,
    energy_wh: Option<i64>,
    net_minor: Option<i64>,
    tax_minor: Option<i64>,
    total_minor: Option<i64>,
    dispute: Option<String>,
    last_sample_at: Option<i64>,
    resolved_by: Option<String>,
    resolved_at: Option<i64>,
    resolution: Option<String>,
}

impl SessionRow {
    pub(super) fn into_session(self) -> StoreResult<Session> {
        let currency = Currency::parse(&self.currency).map_err(|e| corrupt("currency", e))?;
        let money =
            |minor: Option<i64>| minor.map(|m| crate::records::money::from_minor(m, &currency));
        Ok(Session {
            id: self.id,
            device: DeviceId::parse(&self.device_id).map_err(|e| corrupt("device id", e))?,
            connector: self.connector,
            owner: OwnerId::parse(&self.owner_id).map_err(|e| corrupt("owner id", e))?,
            tag: TagUid::parse(&self.tag_uid).map_err(|e| corrupt("tag uid", e))?,
            local_id: self.local_id,
            status: SessionStatus::parse(&self.status)
                .ok_or_else(|| corrupt("session status", &self.status))?,
            offline: self.offline != 0,
            meter_start_wh: self.meter_start_wh,
            meter_stop_wh: self.meter_stop_wh,
            last_meter_wh: self.last_meter_wh,
            started_at: from_millis(self.started_at)?,
            stopped_at: self.stopped_at.map(from_millis).transpose()?,
            stop_reason: self.stop_reason,
            dispute: self.dispute,
            last_sample_at: self.last_sample_at.map(from_millis).transpose()?,
            resolution: match (self.resolution, self.resolved_by, self.resolved_at) {
                (Some(action), Some(by), Some(at)) => Some(crate::records::charging::Resolved {
                    action,
                    by,
                    at: from_millis(at)?,
                }),
                _ => None,
            },
            tariff: self
                .tariff_id
                .map(|t| TariffId::parse(&t).map_err(|e| corrupt("tariff id", e)))
                .transpose()?,
            energy_wh: self.energy_wh,
            net: money(self.net_minor),
            tax: money(self.tax_minor),
            total: money(self.total_minor),
            prices: Prices {
                energy_per_kwh: decimal("energy_per_kwh", &self.energy_per_kwh)?,
                time_per_hour: decimal("time_per_hour", &self.time_per_hour)?,
                session_fee: decimal("session_fee", &self.session_fee)?,
                tax_rate: decimal("tax_rate", &self.tax_rate)?,
                currency,
            },
        })
    }
}

/// The `i`th parameter (from 1) of a statement whose parameters each appear once, in
/// order: `?` on SQLite, `$i` on PostgreSQL. sqlx's SQLite driver looks every named
/// parameter up by a linear scan (and SQLite does when it prepares), which is quadratic
/// in a multi-row statement: with a batch's 900 parameters it took most of the writer's
/// time. Anonymous ones are bound by position.
fn placeholder(sqlite: bool, i: usize) -> String {
    if sqlite {
        "?".to_owned()
    } else {
        format!("${i}")
    }
}

/// The bill's lines (a handful) in one statement.
pub(super) async fn insert_cost_lines(
    conn: &mut AnyConnection,
    session: i64,
    bill: &crate::records::cost::Bill,
) -> StoreResult<()> {
    if bill.lines.is_empty() {
        return Ok(());
    }
    let values = (0..bill.lines.len())
        .map(|i| {
            let p = i * 4;
            format!("($1, ${}, ${}, ${}, ${})", p + 2, p + 3, p + 4, p + 5)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO session_cost_lines (session_id, kind, quantity, unit_price, amount)
         VALUES {values}"
    );
    let mut query = sqlx::query(&sql).bind(session);
    for line in &bill.lines {
        query = query
            .bind(line.kind.as_str())
            .bind(line.quantity.to_string())
            .bind(line.unit_price.to_string())
            .bind(line.amount.to_string());
    }
    query.execute(conn).await?;
    Ok(())
}

/// Records a resolution (see [`crate::store::Store::resolve_session`]).
pub(super) async fn resolve(
    pool: &sqlx::AnyPool,
    id: i64,
    r: &crate::records::charging::Resolution,
) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE sessions SET status = $2, meter_start_wh = $3, meter_stop_wh = $4,
             last_meter_wh = $4, started_at = $5, stopped_at = $6, energy_wh = $7,
             net_minor = $8, tax_minor = $9, total_minor = $10, resolution = $11,
             resolved_by = $12, resolved_at = $13
         WHERE id = $1 AND status = 'disputed'",
    )
    .bind(id)
    .bind(r.status.as_str())
    .bind(r.meter_start_wh)
    .bind(r.meter_stop_wh)
    .bind(to_millis(r.started_at))
    .bind(to_millis(r.stopped_at))
    .bind(r.bill.energy_wh)
    .bind(minor(r.bill.net, &r.currency)?)
    .bind(minor(r.bill.tax, &r.currency)?)
    .bind(minor(r.bill.total, &r.currency)?)
    .bind(r.action)
    .bind(&r.by)
    .bind(to_millis(r.at))
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM session_cost_lines WHERE session_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    insert_cost_lines(&mut tx, id, &r.bill).await?;
    tx.commit().await?;
    Ok(true)
}

fn minor(amount: rust_decimal::Decimal, currency: &Currency) -> StoreResult<i64> {
    to_minor(amount, currency).ok_or_else(|| corrupt("amount not in minor units", amount))
}

impl SqlTx {
    async fn tag_devices(&mut self, owner: &str, uid: &str) -> StoreResult<Vec<DeviceId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT device_id FROM tag_devices WHERE owner_id = $1 AND uid = $2
             ORDER BY device_id",
        )
        .bind(owner)
        .bind(uid)
        .fetch_all(self.c())
        .await?;
        rows.into_iter()
            .map(|(d,)| DeviceId::parse(&d).map_err(|e| corrupt("device id", e)))
            .collect()
    }

    /// Runs a statement that changes no data (a savepoint).
    /// Whether this is SQLite (for SQL text that differs).
    fn is_sqlite(&mut self) -> bool {
        self.c().backend_name() == "SQLite"
    }

    async fn exec(&mut self, sql: &str) -> StoreResult<()> {
        sqlx::query(sql).execute(self.t()?).await?;
        Ok(())
    }
}

#[async_trait]
impl ChargerTx for SqlTx {
    async fn savepoint(&mut self) -> StoreResult<()> {
        self.exec("SAVEPOINT request").await
    }

    async fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        self.exec("ROLLBACK TO SAVEPOINT request").await?;
        self.exec("RELEASE SAVEPOINT request").await
    }

    async fn release_savepoint(&mut self) -> StoreResult<()> {
        self.exec("RELEASE SAVEPOINT request").await
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        if let Conn::Tx(tx) = self.conn {
            tx.commit().await?;
        }
        Ok(())
    }

    fn held_notes(&mut self) -> Vec<UnknownTagNote> {
        std::mem::take(&mut self.held)
    }

    fn is_read_only(&self) -> bool {
        matches!(self.conn, Conn::Read(_))
    }

    fn basis(&self) -> Option<Basis> {
        None
    }

    async fn check_bases(&mut self, bases: &[Basis]) -> StoreResult<Vec<bool>> {
        // Pairs per statement: two parameters each.
        const CHUNK: usize = 200;
        if bases.is_empty() {
            return Ok(Vec::new());
        }
        let (epoch,): (i64,) = sqlx::query_as("SELECT epoch FROM authz_epoch WHERE id = 1")
            .fetch_one(self.c())
            .await?;
        if bases.iter().any(|b| b.epoch != epoch) {
            if let Some(model) = &self.model {
                model.forget_before(epoch);
            }
        }
        let mut pairs: Vec<(&OwnerId, &TagUid)> = bases
            .iter()
            .filter(|b| b.epoch == epoch)
            .flat_map(|b| b.counts.iter().map(|(o, u, _)| (o, u)))
            .collect();
        pairs.sort();
        pairs.dedup();
        let mut active = std::collections::HashMap::new();
        for chunk in pairs.chunks(CHUNK) {
            let sqlite = self.is_sqlite();
            let wheres = (0..chunk.len())
                .map(|i| {
                    format!(
                        "(owner_id = {} AND tag_uid = {})",
                        placeholder(sqlite, 2 * i + 1),
                        placeholder(sqlite, 2 * i + 2)
                    )
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            let sql = format!(
                "SELECT owner_id, tag_uid, COUNT(*) FROM sessions
                 WHERE status = 'active' AND ({wheres})
                 GROUP BY owner_id, tag_uid"
            );
            let mut query = sqlx::query_as::<_, (String, String, i64)>(&sql);
            for (owner, uid) in chunk {
                query = query.bind(owner.as_str()).bind(uid.as_str());
            }
            for (owner, uid, n) in query.fetch_all(self.c()).await? {
                active.insert((owner, uid), n);
            }
        }
        Ok(bases
            .iter()
            .map(|b| {
                b.epoch == epoch
                    && b.counts.iter().all(|(owner, uid, n)| {
                        let key = (owner.as_str().to_owned(), uid.as_str().to_owned());
                        active.get(&key).copied().unwrap_or(0) == *n
                    })
            })
            .collect())
    }

    async fn charger(
        &mut self,
        id: &DeviceId,
        request_id: &str,
    ) -> StoreResult<Option<(Charger, Option<(StoredResult, Option<i64>)>)>> {
        #[derive(FromRow)]
        struct Row {
            owner_id: String,
            connectors: i64,
            tariff_id: Option<String>,
            key_version: i64,
            list_reset: i64,
            max_power_w: i64,
            require_v2: i64,
            prev_key_version: Option<i64>,
            prev_owner_id: Option<String>,
            prev_request_id: Option<String>,
            prev_endpoint: Option<String>,
            prev_until: Option<i64>,
            code: Option<i64>,
            body: Option<String>,
            kept_key_version: Option<i64>,
            epoch: i64,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT d.owner_id, d.connectors, d.tariff_id, d.key_version, d.list_reset,
                    d.max_power_w, d.require_v2, d.prev_key_version, d.prev_owner_id,
                    d.prev_request_id, d.prev_endpoint, d.prev_until, r.code, r.body,
                    r.key_version AS kept_key_version,
                    (SELECT epoch FROM authz_epoch WHERE id = 1) AS epoch
             FROM devices d
             LEFT JOIN mqtt_requests r ON r.device_id = d.id AND r.request_id = $2
             WHERE d.id = $1",
        )
        .bind(id.as_str())
        .bind(request_id)
        .fetch_optional(self.c())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let superseded = match (
            r.prev_key_version,
            r.prev_owner_id,
            r.prev_request_id,
            r.prev_endpoint,
            r.prev_until,
        ) {
            (Some(key_version), Some(owner), Some(request_id), Some(endpoint), Some(until)) => {
                Some(crate::records::charging::Superseded {
                    key_version,
                    owner: OwnerId::parse(&owner).map_err(|e| corrupt("owner id", e))?,
                    request_id,
                    endpoint,
                    until: from_millis(until)?,
                })
            }
            _ => None,
        };
        let charger = Charger {
            id: id.clone(),
            owner: OwnerId::parse(&r.owner_id).map_err(|e| corrupt("owner id", e))?,
            connectors: r.connectors,
            tariff: r
                .tariff_id
                .map(|t| TariffId::parse(&t).map_err(|e| corrupt("tariff id", e)))
                .transpose()?,
            key_version: r.key_version,
            list_reset: r.list_reset != 0,
            max_power_w: r.max_power_w,
            require_v2: r.require_v2 != 0,
            superseded,
        };
        let kept = match (r.code, r.body) {
            (Some(code), Some(body)) => Some((
                StoredResult {
                    code: u16::try_from(code).map_err(|e| corrupt("request code", e))?,
                    body,
                },
                r.kept_key_version,
            )),
            _ => None,
        };
        if let (Conn::Read(_), Some(model)) = (&self.conn, &self.model) {
            model.fill_charger(r.epoch, &charger);
        }
        Ok(Some((charger, kept)))
    }

    async fn request_result(
        &mut self,
        device: &DeviceId,
        request_id: &str,
    ) -> StoreResult<Option<StoredResult>> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT code, body FROM mqtt_requests WHERE device_id = $1 AND request_id = $2",
        )
        .bind(device.as_str())
        .bind(request_id)
        .fetch_optional(self.c())
        .await?;
        row.map(|(code, body)| {
            let code = u16::try_from(code).map_err(|e| corrupt("request code", e))?;
            Ok(StoredResult { code, body })
        })
        .transpose()
    }

    async fn save_request_result(
        &mut self,
        row: &KeptResult,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<StoredResult>> {
        let inserted = sqlx::query(
            "INSERT INTO mqtt_requests (device_id, request_id, endpoint, code, body, created_at,
                                        key_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (device_id, request_id) DO NOTHING",
        )
        .bind(row.device.as_str())
        .bind(row.request_id.as_str())
        .bind(row.endpoint.as_str())
        .bind(i64::from(row.result.code))
        .bind(&row.result.body)
        .bind(to_millis(now))
        .bind(row.key_version)
        .execute(self.w()?)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(None);
        }
        let kept = self.request_result(&row.device, &row.request_id).await?;
        kept.map(Some)
            .ok_or_else(|| corrupt("request log", "a conflicting answer vanished"))
    }

    async fn save_request_results(
        &mut self,
        results: &[KeptResult],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Option<StoredResult>>> {
        // Rows per statement: 7 parameters each, well under SQLite's limit.
        const CHUNK: usize = 128;
        let mut out = Vec::with_capacity(results.len());
        for chunk in results.chunks(CHUNK) {
            let sqlite = self.is_sqlite();
            let values = (0..chunk.len())
                .map(|i| {
                    let p = |k: usize| placeholder(sqlite, i * 7 + k);
                    format!(
                        "({}, {}, {}, {}, {}, {}, {})",
                        p(1),
                        p(2),
                        p(3),
                        p(4),
                        p(5),
                        p(6),
                        p(7)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO mqtt_requests (device_id, request_id, endpoint, code, body, created_at,
                                            key_version)
                 VALUES {values}
                 ON CONFLICT (device_id, request_id) DO NOTHING"
            );
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(r.device.as_str())
                    .bind(r.request_id.as_str())
                    .bind(r.endpoint.as_str())
                    .bind(i64::from(r.result.code))
                    .bind(r.result.body.as_str())
                    .bind(to_millis(now))
                    .bind(r.key_version);
            }
            // Every row new (the rule): one statement. Otherwise (a repeat in the same
            // batch, or a request another instance answered first) it is undone and each
            // row is kept on its own, learning which answer is in force.
            self.exec("SAVEPOINT kept").await?;
            let inserted = query.execute(self.w()?).await?.rows_affected();
            if usize::try_from(inserted).is_ok_and(|n| n == chunk.len()) {
                self.exec("RELEASE SAVEPOINT kept").await?;
                out.extend(chunk.iter().map(|_| None));
                continue;
            }
            self.exec("ROLLBACK TO SAVEPOINT kept").await?;
            self.exec("RELEASE SAVEPOINT kept").await?;
            for r in chunk {
                let kept = self.save_request_result(r, now).await?;
                out.push(kept);
            }
        }
        Ok(out)
    }

    async fn set_device_boot(
        &mut self,
        id: &DeviceId,
        firmware: &str,
        model: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE devices SET firmware = $2, model = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(firmware)
            .bind(model)
            .execute(self.w()?)
            .await?;
        // A boot forgets the default limit a site gave it: it is given again.
        sqlx::query(
            "UPDATE site_chargers SET default_da = NULL, schedule_check = NULL WHERE device_id = $1",
        )
            .bind(id.as_str())
            .execute(self.w()?)
            .await?;
        Ok(())
    }

    async fn set_connector_state(
        &mut self,
        id: &DeviceId,
        connector: i64,
        state: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        // A change (not a repeat of the same state) is an event of the charger's history.
        let detail = format!(
            "connector {connector}: {state}{}",
            error.map(|e| format!(" ({e})")).unwrap_or_default()
        );
        sqlx::query(
            "INSERT INTO device_events (device_id, at, kind, detail)
             SELECT $1, $5, 'status', $6
             WHERE NOT EXISTS (SELECT 1 FROM connectors WHERE device_id = $1 AND connector = $2
                               AND state = $3 AND error IS NOT DISTINCT FROM $4)",
        )
        .bind(id.as_str())
        .bind(connector)
        .bind(state)
        .bind(error)
        .bind(to_millis(now))
        .bind(detail)
        .execute(self.w()?)
        .await?;
        sqlx::query(
            "UPDATE connectors SET state = $3, error = $4, updated_at = $5
             WHERE device_id = $1 AND connector = $2",
        )
        .bind(id.as_str())
        .bind(connector)
        .bind(state)
        .bind(error)
        .bind(to_millis(now))
        .execute(self.w()?)
        .await?;
        Ok(())
    }

    async fn tag_with_active_sessions(
        &mut self,
        owner: &OwnerId,
        uid: &TagUid,
    ) -> StoreResult<Option<(Tag, i64)>> {
        // One row per charger the tag is limited to (one with NULL when it is not).
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            tag: TagRow,
            device_id: Option<String>,
            active: i64,
            epoch: i64,
        }
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT t.*, td.device_id,
                    (SELECT COUNT(*) FROM sessions s
                     WHERE s.owner_id = $1 AND s.tag_uid = $2 AND s.status = 'active') AS active,
                    (SELECT epoch FROM authz_epoch WHERE id = 1) AS epoch
             FROM (SELECT {TAG_COLUMNS} FROM tags WHERE owner_id = $1 AND uid = $2) t
             LEFT JOIN tag_devices td ON td.owner_id = $1 AND td.uid = $2
             ORDER BY td.device_id"
        ))
        .bind(owner.as_str())
        .bind(uid.as_str())
        .fetch_all(self.c())
        .await?;
        let mut rows = rows.into_iter();
        let Some(first) = rows.next() else {
            return Ok(None);
        };
        let devices = first
            .device_id
            .into_iter()
            .chain(rows.filter_map(|r| r.device_id))
            .map(|d| DeviceId::parse(&d).map_err(|e| corrupt("device id", e)))
            .collect::<StoreResult<Vec<_>>>()?;
        let tag = first.tag.into_tag(devices)?;
        if let (Conn::Read(_), Some(model)) = (&self.conn, &self.model) {
            model.fill_tag(first.epoch, &tag, first.active);
        }
        Ok(Some((tag, first.active)))
    }

    async fn lock_start(
        &mut self,
        owner: &OwnerId,
        uid: &TagUid,
        device: &DeviceId,
        connector: i64,
    ) -> StoreResult<()> {
        if self.c().backend_name() != "PostgreSQL" {
            return Ok(());
        }
        // Evaluated left to right: the tag's lock, then the connector's.
        let _: (i32,) = sqlx::query_as(
            "SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0)) AS tag,
                                   pg_advisory_xact_lock(hashtextextended($2, 0)) AS connector) AS l",
        )
        .bind(format!("mybox:tag:{owner}:{uid}"))
        .bind(format!("mybox:connector:{device}:{connector}"))
        .fetch_one(self.t()?)
        .await?;
        Ok(())
    }

    async fn tag(&mut self, owner: &OwnerId, uid: &TagUid) -> StoreResult<Option<Tag>> {
        let row: Option<TagRow> = sqlx::query_as(&format!(
            "SELECT {TAG_COLUMNS} FROM tags WHERE owner_id = $1 AND uid = $2"
        ))
        .bind(owner.as_str())
        .bind(uid.as_str())
        .fetch_optional(self.c())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let devices = self.tag_devices(owner.as_str(), uid.as_str()).await?;
        row.into_tag(devices).map(Some)
    }

    async fn insert_tag(&mut self, tag: &Tag) -> StoreResult<()> {
        insert_tag_in(self.w()?, tag).await
    }

    async fn note_unknown_tag(
        &mut self,
        device: &DeviceId,
        owner: &OwnerId,
        uid: &TagUid,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.held.push(UnknownTagNote {
            device: device.clone(),
            owner: owner.clone(),
            uid: uid.clone(),
            at: now,
        });
        Ok(())
    }

    async fn record_unknown_tags(
        &mut self,
        notes: &[UnknownTagNote],
        keep: usize,
    ) -> StoreResult<u64> {
        let mut dropped = 0;
        for n in notes {
            sqlx::query(
                "INSERT INTO unknown_tags (device_id, uid, owner_id, first_seen, last_seen, attempts)
                 VALUES ($1, $2, $3, $4, $4, 1)
                 ON CONFLICT (device_id, uid) DO UPDATE
                 SET last_seen = excluded.last_seen, owner_id = excluded.owner_id,
                     -- A sighting under the charger's former owner starts over under the new one.
                     first_seen = CASE WHEN unknown_tags.owner_id = excluded.owner_id
                                       THEN unknown_tags.first_seen ELSE excluded.first_seen END,
                     attempts = CASE WHEN unknown_tags.owner_id = excluded.owner_id
                                     THEN unknown_tags.attempts + 1 ELSE 1 END",
            )
            .bind(n.device.as_str())
            .bind(n.uid.as_str())
            .bind(n.owner.as_str())
            .bind(to_millis(n.at))
            .execute(self.w()?)
            .await?;
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM unknown_tags WHERE owner_id = $1")
                    .bind(n.owner.as_str())
                    .fetch_one(self.c())
                    .await?;
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            if count <= keep {
                continue;
            }
            // The oldest sightings beyond the owner's cap go.
            let gone = sqlx::query(
                "DELETE FROM unknown_tags WHERE owner_id = $1 AND (device_id, uid) IN (
                     SELECT device_id, uid FROM unknown_tags WHERE owner_id = $1
                     ORDER BY last_seen DESC, device_id, uid LIMIT $3 OFFSET $2)",
            )
            .bind(n.owner.as_str())
            .bind(keep)
            .bind(count - keep)
            .execute(self.w()?)
            .await?;
            dropped += gone.rows_affected();
        }
        Ok(dropped)
    }

    fn writes(&self) -> u64 {
        self.writes
    }

    async fn active_session_on(
        &mut self,
        device: &DeviceId,
        connector: i64,
    ) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM sessions
             WHERE device_id = $1 AND connector = $2 AND status = 'active'
             ORDER BY id LIMIT 1",
        )
        .bind(device.as_str())
        .bind(connector)
        .fetch_optional(self.c())
        .await?)
    }

    async fn tariff_of(
        &mut self,
        owner: &OwnerId,
        id: Option<&TariffId>,
    ) -> StoreResult<Option<Tariff>> {
        let row: Option<TariffRow> = match id {
            Some(id) => {
                sqlx::query_as(&format!(
                    "SELECT {TARIFF_COLUMNS} FROM tariffs WHERE owner_id = $1 AND id = $2"
                ))
                .bind(owner.as_str())
                .bind(id.as_str())
                .fetch_optional(self.c())
                .await?
            }
            None => {
                sqlx::query_as(&format!(
                    "SELECT {TARIFF_COLUMNS} FROM tariffs WHERE owner_id = $1 AND is_default = 1"
                ))
                .bind(owner.as_str())
                .fetch_optional(self.c())
                .await?
            }
        };
        row.map(TariffRow::into_tariff).transpose()
    }

    async fn owner_at(
        &mut self,
        device: &DeviceId,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(OwnerId, Option<TariffId>)>> {
        // The first move after `at`: the owner until then.
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT owner_id, tariff_id FROM ownership_history
             WHERE device_id = $1 AND until > $2 ORDER BY until LIMIT 1",
        )
        .bind(device.as_str())
        .bind(to_millis(at))
        .fetch_optional(self.c())
        .await?;
        row.map(|(owner, tariff)| {
            Ok((
                OwnerId::parse(&owner).map_err(|e| corrupt("owner id", e))?,
                tariff
                    .map(|t| TariffId::parse(&t).map_err(|e| corrupt("tariff id", e)))
                    .transpose()?,
            ))
        })
        .transpose()
    }

    async fn insert_session(&mut self, s: &NewSession) -> StoreResult<Option<i64>> {
        let p = &s.prices;
        // A racing duplicate offline start is not an error that would abort a PostgreSQL
        // transaction (and with it the whole batch): it inserts nothing.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO sessions (device_id, connector, owner_id, tag_uid, local_id, status,
                 offline, meter_start_wh, last_meter_wh, started_at, tariff_id, currency,
                 minor_units, energy_per_kwh, time_per_hour, session_fee, tax_rate, created_at,
                 dispute)
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7, $8, $9, $10, $11, $12, $13, $14,
                 $15, $16, $17)
             ON CONFLICT (device_id, local_id) WHERE local_id IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .bind(s.device.as_str())
        .bind(s.connector)
        .bind(s.owner.as_str())
        .bind(s.tag.as_str())
        .bind(s.local_id.as_deref())
        .bind(i64::from(s.offline))
        .bind(s.meter_start_wh)
        .bind(to_millis(s.started_at))
        .bind(s.tariff.as_ref().map(TariffId::as_str))
        .bind(p.currency.code())
        .bind(i64::from(p.currency.minor_units()))
        .bind(p.energy_per_kwh.to_string())
        .bind(p.time_per_hour.to_string())
        .bind(p.session_fee.to_string())
        .bind(p.tax_rate.to_string())
        .bind(to_millis(s.created_at))
        .bind(s.dispute.as_deref())
        .fetch_optional(self.w()?)
        .await
        .map_err(super::conflict_on_unique("session"))?;
        Ok(id)
    }

    async fn session(
        &mut self,
        device: &DeviceId,
        which: &SessionRef,
    ) -> StoreResult<Option<Session>> {
        let row: Option<SessionRow> = match which {
            SessionRef::Id(id) => {
                sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE device_id = $1 AND id = $2"
                ))
                .bind(device.as_str())
                .bind(*id)
                .fetch_optional(self.c())
                .await?
            }
            SessionRef::Local(local) => {
                sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE device_id = $1 AND local_id = $2"
                ))
                .bind(device.as_str())
                .bind(local.as_str())
                .fetch_optional(self.c())
                .await?
            }
        };
        row.map(SessionRow::into_session).transpose()
    }

    async fn dispute_stopped_session(&mut self, session: i64, reason: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET status = 'disputed', dispute = $2,
                 net_minor = 0, tax_minor = 0, total_minor = 0
             WHERE id = $1 AND status = 'stopped'",
        )
        .bind(session)
        .bind(reason)
        .execute(self.w()?)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM session_cost_lines WHERE session_id = $1")
            .bind(session)
            .execute(self.w()?)
            .await?;
        Ok(true)
    }

    async fn amend_session_start(
        &mut self,
        session: i64,
        started_at: DateTime<Utc>,
        meter_start_wh: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET started_at = $2, meter_start_wh = $3
             WHERE id = $1 AND status = 'active'",
        )
        .bind(session)
        .bind(to_millis(started_at))
        .bind(meter_start_wh)
        .execute(self.w()?)
        .await?;
        Ok(())
    }

    async fn add_meter_samples(
        &mut self,
        session: i64,
        samples: &[Sample],
        last_meter_wh: i64,
        last_sample_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        for s in samples {
            sqlx::query(
                "INSERT INTO meter_samples (session_id, at, energy_wh, power_w)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (session_id, at) DO NOTHING",
            )
            .bind(session)
            .bind(to_millis(s.at))
            .bind(s.energy_wh)
            .bind(s.power_w)
            .execute(self.w()?)
            .await?;
        }
        sqlx::query("UPDATE sessions SET last_meter_wh = $2, last_sample_at = $3 WHERE id = $1")
            .bind(session)
            .bind(last_meter_wh)
            .bind(to_millis(last_sample_at))
            .execute(self.w()?)
            .await?;
        Ok(())
    }

    async fn stop_session(&mut self, session: i64, stop: &StopRecord) -> StoreResult<()> {
        let currency = &stop.currency;
        let bill = &stop.bill;
        let done = sqlx::query(
            "UPDATE sessions SET status = $9, meter_stop_wh = $2, stopped_at = $3,
                 stop_reason = $4, energy_wh = $5, net_minor = $6, tax_minor = $7,
                 total_minor = $8, last_meter_wh = $2, dispute = $10
             WHERE id = $1 AND status = 'active'",
        )
        .bind(session)
        .bind(stop.meter_stop_wh)
        .bind(to_millis(stop.stopped_at))
        .bind(stop.reason.as_str())
        .bind(bill.energy_wh)
        .bind(minor(bill.net, currency)?)
        .bind(minor(bill.tax, currency)?)
        .bind(minor(bill.total, currency)?)
        .bind(if stop.dispute.is_some() {
            SessionStatus::Disputed.as_str()
        } else {
            SessionStatus::Stopped.as_str()
        })
        .bind(stop.dispute.as_deref())
        .execute(self.w()?)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict("the session is not active".into()));
        }
        insert_cost_lines(self.w()?, session, bill).await
    }

    async fn claim_target(
        &mut self,
        device: &DeviceId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OwnerId>> {
        let to: Option<String> = sqlx::query_scalar(
            "SELECT to_owner FROM transfers
             WHERE code_hash = $1 AND device_id = $2 AND status = 'accepted' AND expires_at > $3",
        )
        .bind(code_hash)
        .bind(device.as_str())
        .bind(to_millis(now))
        .fetch_optional(self.c())
        .await?;
        to.map(|to| OwnerId::parse(&to).map_err(|e| corrupt("owner id", e)))
            .transpose()
    }

    async fn claim_device(
        &mut self,
        device: &DeviceId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OwnerId>> {
        // The offer is taken only if it is still accepted and unexpired (a withdrawal on
        // another instance may have come first): then nothing else changes.
        let to: Option<String> = sqlx::query_scalar(
            "UPDATE transfers SET status = 'claimed', updated_at = $4
             WHERE code_hash = $1 AND device_id = $2 AND status = 'accepted' AND expires_at > $3
             RETURNING to_owner",
        )
        .bind(code_hash)
        .bind(device.as_str())
        .bind(to_millis(now))
        .bind(to_millis(now))
        .fetch_optional(self.w()?)
        .await?;
        let Some(to) = to else { return Ok(None) };
        let to = OwnerId::parse(&to).map_err(|e| corrupt("owner id", e))?;
        sqlx::query(
            "UPDATE transfers SET status = 'void', updated_at = $2
             WHERE device_id = $1 AND status IN ('offered', 'accepted')",
        )
        .bind(device.as_str())
        .bind(to_millis(now))
        .execute(self.w()?)
        .await?;
        // The old owner, until now: sessions that started before are its own.
        sqlx::query(
            "INSERT INTO ownership_history (device_id, owner_id, tariff_id, until)
             SELECT id, owner_id, tariff_id, $2 FROM devices WHERE id = $1
             ON CONFLICT (device_id, until) DO NOTHING",
        )
        .bind(device.as_str())
        .bind(to_millis(now))
        .execute(self.w()?)
        .await?;
        sqlx::query(
            "UPDATE devices SET owner_id = $2, tariff_id = NULL, list_reset = 1 WHERE id = $1",
        )
        .bind(device.as_str())
        .bind(to.as_str())
        .execute(self.w()?)
        .await?;
        // The old owner's site is not the new owner's: the charger leaves it (its limits
        // are lifted by the site balancer).
        sqlx::query("UPDATE site_chargers SET leaving = 1 WHERE device_id = $1")
            .bind(device.as_str())
            .execute(self.w()?)
            .await?;
        // The old owner's tags limited to this charger lose it: a list change for them.
        let limited: Vec<(String, String)> =
            sqlx::query_as("SELECT uid, owner_id FROM tag_devices WHERE device_id = $1")
                .bind(device.as_str())
                .fetch_all(self.c())
                .await?;
        sqlx::query("DELETE FROM tag_devices WHERE device_id = $1")
            .bind(device.as_str())
            .execute(self.w()?)
            .await?;
        for (uid, owner) in limited {
            let owner = OwnerId::parse(&owner).map_err(|e| corrupt("owner id", e))?;
            let version = bump_list_version(self.w()?, &owner).await?;
            sqlx::query("UPDATE tags SET list_version = $3 WHERE owner_id = $1 AND uid = $2")
                .bind(owner.as_str())
                .bind(uid)
                .bind(version)
                .execute(self.w()?)
                .await?;
        }
        Ok(Some(to))
    }

    async fn set_device_credentials(
        &mut self,
        device: &DeviceId,
        expected: i64,
        password_hash: &str,
        superseded: &crate::records::charging::Superseded,
    ) -> StoreResult<bool> {
        // The right-hand sides see the row as it was: the old hash and version become the
        // superseded ones.
        let done = sqlx::query(
            "UPDATE devices SET prev_password_hash = password_hash,
                                prev_key_version = key_version,
                                prev_owner_id = $4, prev_request_id = $5, prev_endpoint = $6,
                                prev_until = $7,
                                password_hash = $2, key_version = key_version + 1
             WHERE id = $1 AND key_version = $3",
        )
        .bind(device.as_str())
        .bind(password_hash)
        .bind(expected)
        .bind(superseded.owner.as_str())
        .bind(superseded.request_id.as_str())
        .bind(superseded.endpoint.as_str())
        .bind(to_millis(superseded.until))
        .execute(self.w()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn clear_list_reset(&mut self, device: &DeviceId) -> StoreResult<()> {
        sqlx::query("UPDATE devices SET list_reset = 0 WHERE id = $1 AND list_reset <> 0")
            .bind(device.as_str())
            .execute(self.w()?)
            .await?;
        Ok(())
    }

    async fn note_drawn(&mut self, session: i64, drawn_da: i64) -> StoreResult<()> {
        sqlx::query("UPDATE site_allocations SET drawn_da = $2 WHERE session_id = $1")
            .bind(session)
            .bind(drawn_da)
            .execute(self.w()?)
            .await?;
        Ok(())
    }

    async fn set_station_variables(
        &mut self,
        device: &DeviceId,
        variables: &[crate::records::devices::StationVariable],
    ) -> StoreResult<()> {
        for v in variables {
            sqlx::query(
                "INSERT INTO station_variables
                     (device_id, component, evse_id, variable, value, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (device_id, component, evse_id, variable)
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(device.as_str())
            .bind(&v.component)
            .bind(v.evse)
            .bind(&v.variable)
            .bind(&v.value)
            .bind(to_millis(v.updated_at))
            .execute(self.w()?)
            .await?;
        }
        Ok(())
    }

    async fn register_ocpp(
        &mut self,
        device: &DeviceId,
    ) -> StoreResult<crate::records::devices::Registration> {
        let done = sqlx::query(
            "UPDATE devices SET ocpp_registered = 1 WHERE id = $1 AND ocpp_registered = 0",
        )
        .bind(device.as_str())
        .execute(self.w()?)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(crate::records::devices::Registration::Pending);
        }
        let code: i64 = sqlx::query_scalar("SELECT ocpp_registered FROM devices WHERE id = $1")
            .bind(device.as_str())
            .fetch_one(self.c())
            .await?;
        Ok(crate::records::devices::Registration::from_code(code))
    }

    async fn local_list(
        &mut self,
        owner: &OwnerId,
        since: i64,
        limit: usize,
    ) -> StoreResult<LocalListPage> {
        let current: i64 = sqlx::query_scalar("SELECT list_version FROM owners WHERE id = $1")
            .bind(owner.as_str())
            .fetch_one(self.c())
            .await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<TagRow> = sqlx::query_as(&format!(
            "SELECT {TAG_COLUMNS} FROM tags WHERE owner_id = $1 AND list_version > $2
             ORDER BY list_version LIMIT $3"
        ))
        .bind(owner.as_str())
        .bind(since)
        .bind(limit)
        .fetch_all(self.c())
        .await?;
        let removals: Vec<(String, i64)> = sqlx::query_as(
            "SELECT uid, list_version FROM tag_removals WHERE owner_id = $1 AND list_version > $2
             ORDER BY list_version LIMIT $3",
        )
        .bind(owner.as_str())
        .bind(since)
        .bind(limit)
        .fetch_all(self.c())
        .await?;
        let mut items = Vec::with_capacity(rows.len() + removals.len());
        for row in rows {
            let devices = self.tag_devices(&row.owner_id, &row.uid).await?;
            items.push(LocalListItem::Tag(row.into_tag(devices)?));
        }
        for (uid, version) in removals {
            let uid = TagUid::parse(&uid).map_err(|e| corrupt("tag uid", e))?;
            items.push(LocalListItem::Removed { uid, version });
        }
        items.sort_by_key(LocalListItem::version);
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(LocalListPage { current, items })
    }
}
