//! The one SQL implementation of [`Store`], run on SQLite or PostgreSQL through sqlx's
//! `Any` driver. Placeholders are `$1, $2, ...`, which both databases accept; where the
//! dialects differ, [`Backend`] says which text to use.

mod access;
mod charging;
mod console;
mod sites;
mod transfers;

use std::collections::HashMap;
use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor as _, FromRow, Row as _};

use super::{from_millis, to_millis, Store, StoreError, StoreResult};
use crate::ids::{DeviceId, OwnerId, TagUid, TariffId};
use crate::records::billing::Tariff;
use crate::records::devices::{
    Connector, Device, DeviceAuth, DeviceSettings, NewDevice, PresenceChange, TransferOffer,
    TransferStatus,
};
use crate::records::money::Currency;
use crate::records::owners::{NewToken, Owner, TokenInfo, TokenScope};
use crate::records::tags::{Tag, TagRole, TagStatus, UnknownTag};

/// The database behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Picks the backend from a `DATABASE_URL`'s scheme.
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Why the database could not be opened; the message is meant for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported scheme in {0}; use sqlite://<file> or postgres://<user>@<host>/<db>")]
    Scheme(String),
    #[error("cannot open {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate {url}: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Bounds on every PostgreSQL session, so that a hung instance cannot hold the others up
/// for longer than they say (docs/operations.md, "A hung instance").
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `statement_timeout`, ms.
    pub statement_timeout_ms: u32,
    /// `lock_timeout`, ms.
    pub lock_timeout_ms: u32,
    /// `idle_in_transaction_session_timeout`, ms.
    pub idle_in_transaction_ms: u32,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            statement_timeout_ms: 60_000,
            lock_timeout_ms: 5_000,
            idle_in_transaction_ms: 5_000,
        }
    }
}

/// [`connect_with`] the default [`DbOptions`].
pub async fn connect(url: &str) -> Result<SqlStore, ConnectError> {
    connect_with(url, &DbOptions::default()).await
}

/// Opens the database named by `url`, creates a SQLite file if needed, applies the
/// migrations, and returns the store.
pub async fn connect_with(url: &str, options: &DbOptions) -> Result<SqlStore, ConnectError> {
    let shown = redact_url(url);
    let backend = Backend::from_url(url).ok_or_else(|| ConnectError::Scheme(shown.clone()))?;
    let open_err = |source| ConnectError::Open {
        url: shown.clone(),
        source,
    };
    let migrate_err = |source| ConnectError::Migrate {
        url: shown.clone(),
        source,
    };
    match backend {
        Backend::Sqlite => {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};
            let options = SqliteConnectOptions::from_str(url).map_err(open_err)?;
            create_private_file(options.get_filename()).map_err(|e| open_err(e.into()))?;
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Off while migrating: a migration that rebuilds a table (SQLite cannot
                // alter a primary key) drops the old one, which must cascade nothing.
                // Every foreign key is checked once they ran.
                .foreign_keys(false);
            let pool = SqlitePool::connect_with(options).await.map_err(open_err)?;
            SQLITE_MIGRATIONS.run(&pool).await.map_err(migrate_err)?;
            let broken: Vec<(String,)> =
                sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                    .fetch_all(&pool)
                    .await
                    .map_err(open_err)?;
            if let Some((table,)) = broken.first() {
                return Err(open_err(sqlx::Error::Protocol(format!(
                    "the migrated database breaks a foreign key in table {table}"
                ))));
            }
            pool.close().await;
        }
        Backend::Postgres => {
            use sqlx::Connection as _;
            // One plain connection first: its error says why (refused, auth, no such db),
            // where a pool would only report a time-out.
            let connect = sqlx::postgres::PgConnection::connect(url);
            let mut conn = tokio::time::timeout(Duration::from_secs(15), connect)
                .await
                .map_err(|_| open_err(sqlx::Error::PoolTimedOut))?
                .map_err(open_err)?;
            POSTGRES_MIGRATIONS
                .run(&mut conn)
                .await
                .map_err(migrate_err)?;
            conn.close().await.map_err(open_err)?;
        }
    }
    sqlx::any::install_default_drivers();
    let pg_options = options.clone();
    let pool = AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Sqlite => 16,
            Backend::Postgres => 16,
        })
        .acquire_timeout(Duration::from_secs(10))
        // No ping before each use of a pooled connection: a file does not go away, and on
        // Postgres a dead connection fails its statement (503) and is dropped anyway. The
        // ping was one more round trip on every request's path.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            let bounds = [
                ("statement_timeout", pg_options.statement_timeout_ms),
                ("lock_timeout", pg_options.lock_timeout_ms),
                (
                    "idle_in_transaction_session_timeout",
                    pg_options.idle_in_transaction_ms,
                ),
            ]
            .map(|(name, ms)| format!("SET {name} = {ms}"));
            Box::pin(async move {
                if backend == Backend::Postgres {
                    for bound in &bounds {
                        conn.execute(bound.as_str()).await?;
                    }
                }
                if backend == Backend::Sqlite {
                    // WAL is a property of the file (set above); these are per connection.
                    // synchronous=FULL: a commit survives power loss before it is answered.
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    // Reports read 100,000s of rows: sorts in memory, not temp files, and
                    // a 16 MiB page cache. The file is not memory-mapped: as the database
                    // grows, every connection remaps it, and the unmapping (with its TLB
                    // shootdowns on every CPU) cost the request path a quarter of its
                    // throughput (docs/benchmarks.md).
                    conn.execute("PRAGMA temp_store = MEMORY").await?;
                    conn.execute("PRAGMA cache_size = -16384").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(open_err)?;
    Ok(SqlStore {
        pool,
        backend,
        model: std::sync::Arc::new(super::ReadModel::default()),
    })
}

/// Creates an empty database file readable by this user only (0600) when there is none;
/// SQLite gives its WAL and shared-memory files the same mode.
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") || path.exists() {
        return Ok(());
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        open.mode(0o600);
    }
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// `postgres://user:secret@host/db` shown as `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The SQL store. Cheap to clone: it holds a connection pool.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// The authorize read model, filled by the read path's reads.
    model: std::sync::Arc<super::ReadModel>,
}

impl SqlStore {
    /// A transaction that will write what it reads: on SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), since a deferred transaction that has read cannot start
    /// writing once another connection has committed (SQLITE_BUSY, whatever the timeout).
    pub(super) async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// The pool, for tests and benchmarks that need to look at the database directly.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// The divisor that splits a BIGINT column into two sums that cannot overflow.
const SPLIT: i64 = 1_000_000_000;

fn conflict_on_unique(what: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{what} already exists"))
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict(format!("{what} refers to something that does not exist"))
        }
        _ => StoreError::Database(e),
    }
}

fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value}"))
}

fn decimal(what: &str, s: &str) -> StoreResult<Decimal> {
    Decimal::from_str(s).map_err(|e| corrupt(what, e))
}

#[derive(FromRow)]
struct OwnerRow {
    id: String,
    name: String,
    created_at: i64,
}

impl OwnerRow {
    fn into_owner(self) -> StoreResult<Owner> {
        Ok(Owner {
            id: OwnerId::parse(&self.id).map_err(|e| corrupt("owner id", e))?,
            name: self.name,
            created_at: from_millis(self.created_at)?,
        })
    }
}

#[derive(FromRow)]
struct DeviceRow {
    id: String,
    owner_id: String,
    connectors: i64,
    max_power_w: i64,
    require_v2: i64,
    protocol: String,
    tariff_id: Option<String>,
    firmware: Option<String>,
    model: Option<String>,
    online: i64,
    last_seen: Option<i64>,
    created_at: i64,
    ocpp_registered: i64,
}

#[derive(FromRow)]
struct ConnectorRow {
    device_id: String,
    connector: i64,
    state: String,
    error: Option<String>,
    updated_at: i64,
}

impl ConnectorRow {
    fn into_connector(self) -> StoreResult<Connector> {
        Ok(Connector {
            id: self.connector,
            state: self.state,
            error: self.error,
            updated_at: from_millis(self.updated_at)?,
        })
    }
}

impl DeviceRow {
    fn into_device(self, connectors: Vec<Connector>) -> StoreResult<Device> {
        Ok(Device {
            id: DeviceId::parse(&self.id).map_err(|e| corrupt("device id", e))?,
            owner: OwnerId::parse(&self.owner_id).map_err(|e| corrupt("owner id", e))?,
            connector_count: self.connectors,
            max_power_w: self.max_power_w,
            require_v2: self.require_v2 != 0,
            protocol: protocol_of(&self.protocol)?,
            registration: (self.protocol != "mybox")
                .then(|| crate::records::devices::Registration::from_code(self.ocpp_registered)),
            connectors,
            tariff: self
                .tariff_id
                .map(|t| TariffId::parse(&t).map_err(|e| corrupt("tariff id", e)))
                .transpose()?,
            firmware: self.firmware,
            model: self.model,
            online: self.online != 0,
            last_seen: self.last_seen.map(from_millis).transpose()?,
            created_at: from_millis(self.created_at)?,
        })
    }
}

#[derive(FromRow)]
struct TagRow {
    uid: String,
    owner_id: String,
    role: String,
    status: String,
    expires_at: Option<i64>,
    group_name: Option<String>,
    max_sessions: i64,
    label: Option<String>,
    list_version: i64,
    created_at: i64,
    updated_at: i64,
}

impl TagRow {
    fn into_tag(self, devices: Vec<DeviceId>) -> StoreResult<Tag> {
        Ok(Tag {
            uid: TagUid::parse(&self.uid).map_err(|e| corrupt("tag uid", e))?,
            owner: OwnerId::parse(&self.owner_id).map_err(|e| corrupt("owner id", e))?,
            role: TagRole::from_str(&self.role).map_err(|e| corrupt("tag role", e))?,
            status: TagStatus::from_str(&self.status).map_err(|e| corrupt("tag status", e))?,
            expires_at: self.expires_at.map(from_millis).transpose()?,
            group: self.group_name,
            devices,
            max_sessions: self.max_sessions,
            label: self.label,
            list_version: self.list_version,
            created_at: from_millis(self.created_at)?,
            updated_at: from_millis(self.updated_at)?,
        })
    }
}

#[derive(FromRow)]
struct TariffRow {
    id: String,
    owner_id: String,
    currency: String,
    energy_per_kwh: String,
    time_per_hour: String,
    session_fee: String,
    tax_rate: String,
    is_default: i64,
    created_at: i64,
}

impl TariffRow {
    fn into_tariff(self) -> StoreResult<Tariff> {
        Ok(Tariff {
            id: TariffId::parse(&self.id).map_err(|e| corrupt("tariff id", e))?,
            owner: OwnerId::parse(&self.owner_id).map_err(|e| corrupt("owner id", e))?,
            currency: Currency::parse(&self.currency).map_err(|e| corrupt("currency", e))?,
            energy_per_kwh: decimal("energy_per_kwh", &self.energy_per_kwh)?,
            time_per_hour: decimal("time_per_hour", &self.time_per_hour)?,
            session_fee: decimal("session_fee", &self.session_fee)?,
            tax_rate: decimal("tax_rate", &self.tax_rate)?,
            default: self.is_default != 0,
            created_at: from_millis(self.created_at)?,
        })
    }
}

/// A stored protocol name.
pub(super) fn protocol_of(s: &str) -> StoreResult<crate::records::devices::Protocol> {
    crate::records::devices::Protocol::parse(s).ok_or_else(|| corrupt("protocol", s))
}

const DEVICE_AUTH_COLUMNS: &str =
    "id, owner_id, password_hash, key_version, require_v2, protocol, ocpp_registered, \
     prev_password_hash, prev_owner_id, prev_endpoint, prev_until";

#[derive(FromRow)]
struct DeviceAuthRow {
    id: String,
    owner_id: String,
    password_hash: String,
    key_version: i64,
    require_v2: i64,
    protocol: String,
    ocpp_registered: i64,
    prev_password_hash: Option<String>,
    prev_owner_id: Option<String>,
    prev_endpoint: Option<String>,
    prev_until: Option<i64>,
}

impl DeviceAuthRow {
    fn into_auth(self) -> StoreResult<(DeviceId, DeviceAuth)> {
        let superseded = match (
            self.prev_password_hash,
            self.prev_owner_id,
            self.prev_endpoint,
            self.prev_until,
        ) {
            (Some(password_hash), Some(owner), Some(endpoint), Some(until)) => {
                Some(crate::records::devices::SupersededLogin {
                    password_hash,
                    owner: OwnerId::parse(&owner).map_err(|e| corrupt("owner id", e))?,
                    endpoint,
                    until: from_millis(until)?,
                })
            }
            _ => None,
        };
        Ok((
            DeviceId::parse(&self.id).map_err(|e| corrupt("device id", e))?,
            DeviceAuth {
                owner: OwnerId::parse(&self.owner_id).map_err(|e| corrupt("owner id", e))?,
                password_hash: self.password_hash,
                key_version: self.key_version,
                require_v2: self.require_v2 != 0,
                protocol: protocol_of(&self.protocol)?,
                registration: crate::records::devices::Registration::from_code(
                    self.ocpp_registered,
                ),
                superseded,
            },
        ))
    }
}

const DEVICE_COLUMNS: &str =
    "id, owner_id, connectors, max_power_w, require_v2, protocol, tariff_id, firmware, model, online, \
     last_seen, created_at, ocpp_registered";
const TAG_COLUMNS: &str = "uid, owner_id, role, status, expires_at, group_name, max_sessions, \
                           label, list_version, created_at, updated_at";
const TARIFF_COLUMNS: &str = "id, owner_id, currency, energy_per_kwh, time_per_hour, \
                              session_fee, tax_rate, is_default, created_at";

impl SqlStore {
    async fn connectors_of(
        &self,
        owner: Option<&OwnerId>,
        device: Option<&DeviceId>,
    ) -> StoreResult<HashMap<String, Vec<Connector>>> {
        let rows: Vec<ConnectorRow> = sqlx::query_as(
            "SELECT c.device_id, c.connector, c.state, c.error, c.updated_at
             FROM connectors c JOIN devices d ON d.id = c.device_id
             WHERE ($1 IS NULL OR d.owner_id = $1) AND ($2 IS NULL OR d.id = $2)
             ORDER BY c.device_id, c.connector",
        )
        .bind(owner.map(OwnerId::as_str))
        .bind(device.map(DeviceId::as_str))
        .fetch_all(&self.pool)
        .await?;
        let mut map: HashMap<String, Vec<Connector>> = HashMap::new();
        for row in rows {
            let device = row.device_id.clone();
            map.entry(device).or_default().push(row.into_connector()?);
        }
        Ok(map)
    }

    /// The chargers tags are limited to, by (owner, uid).
    async fn tag_devices_of(
        &self,
        owner: Option<&OwnerId>,
        uid: Option<&TagUid>,
    ) -> StoreResult<HashMap<(String, String), Vec<DeviceId>>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT owner_id, uid, device_id FROM tag_devices
             WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR uid = $2)
             ORDER BY owner_id, uid, device_id",
        )
        .bind(owner.map(OwnerId::as_str))
        .bind(uid.map(TagUid::as_str))
        .fetch_all(&self.pool)
        .await?;
        let mut map: HashMap<(String, String), Vec<DeviceId>> = HashMap::new();
        for (owner, uid, device) in rows {
            let device = DeviceId::parse(&device).map_err(|e| corrupt("device id", e))?;
            map.entry((owner, uid)).or_default().push(device);
        }
        Ok(map)
    }

    /// The connectors of the devices `ids`, by device id (one query).
    async fn connectors_in(&self, ids: &[&str]) -> StoreResult<HashMap<String, Vec<Connector>>> {
        let mut map: HashMap<String, Vec<Connector>> = HashMap::new();
        if ids.is_empty() {
            return Ok(map);
        }
        let marks = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT device_id, connector, state, error, updated_at FROM connectors
             WHERE device_id IN ({marks}) ORDER BY device_id, connector"
        );
        let mut query = sqlx::query_as::<_, ConnectorRow>(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&self.pool).await? {
            let device = row.device_id.clone();
            map.entry(device).or_default().push(row.into_connector()?);
        }
        Ok(map)
    }

    /// Tag rows with their chargers.
    async fn with_devices(
        &self,
        rows: Vec<TagRow>,
        owner: Option<&OwnerId>,
        uid: Option<&TagUid>,
    ) -> StoreResult<Vec<Tag>> {
        let mut devices = self.tag_devices_of(owner, uid).await?;
        rows.into_iter()
            .map(|row| {
                let own = devices
                    .remove(&(row.owner_id.clone(), row.uid.clone()))
                    .unwrap_or_default();
                row.into_tag(own)
            })
            .collect()
    }
}

/// Bumps an owner's local-list version inside `tx` and returns the new version.
async fn bump_list_version(tx: &mut sqlx::AnyConnection, owner: &OwnerId) -> StoreResult<i64> {
    let row: AnyRow = sqlx::query(
        "UPDATE owners SET list_version = list_version + 1 WHERE id = $1 RETURNING list_version",
    )
    .bind(owner.as_str())
    .fetch_one(&mut *tx)
    .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Inserts a tag inside `tx`: bumps the owner's list version, clears a tombstone and the
/// uid's unknown-tag records of that owner.
async fn insert_tag_in(tx: &mut sqlx::AnyConnection, tag: &Tag) -> StoreResult<()> {
    let version = bump_list_version(tx, &tag.owner).await?;
    sqlx::query(&format!(
        "INSERT INTO tags ({TAG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(tag.uid.as_str())
    .bind(tag.owner.as_str())
    .bind(tag.role.as_str())
    .bind(tag.status.as_str())
    .bind(tag.expires_at.map(to_millis))
    .bind(tag.group.as_deref())
    .bind(tag.max_sessions)
    .bind(tag.label.as_deref())
    .bind(version)
    .bind(to_millis(tag.created_at))
    .bind(to_millis(tag.updated_at))
    .execute(&mut *tx)
    .await
    .map_err(conflict_on_unique("tag"))?;
    replace_tag_devices(tx, tag).await?;
    sqlx::query("DELETE FROM tag_removals WHERE owner_id = $1 AND uid = $2")
        .bind(tag.owner.as_str())
        .bind(tag.uid.as_str())
        .execute(&mut *tx)
        .await?;
    // Enrolled now: no longer an unknown tag of this owner.
    sqlx::query("DELETE FROM unknown_tags WHERE owner_id = $1 AND uid = $2")
        .bind(tag.owner.as_str())
        .bind(tag.uid.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn replace_tag_devices(tx: &mut sqlx::AnyConnection, tag: &Tag) -> StoreResult<()> {
    sqlx::query("DELETE FROM tag_devices WHERE owner_id = $1 AND uid = $2")
        .bind(tag.owner.as_str())
        .bind(tag.uid.as_str())
        .execute(&mut *tx)
        .await?;
    for device in &tag.devices {
        sqlx::query("INSERT INTO tag_devices (owner_id, uid, device_id) VALUES ($1, $2, $3)")
            .bind(tag.owner.as_str())
            .bind(tag.uid.as_str())
            .bind(device.as_str())
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique("tag device"))?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM server_meta WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn init_meta(&self, key: &str, value: &str) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO server_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        self.get_meta(key)
            .await?
            .ok_or_else(|| corrupt("server_meta", format!("{key} vanished")))
    }

    async fn insert_owner(&self, owner: &Owner) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO owners (id, name, list_version, created_at) VALUES ($1, $2, 0, $3)",
        )
        .bind(owner.id.as_str())
        .bind(&owner.name)
        .bind(to_millis(owner.created_at))
        .execute(&self.pool)
        .await
        .map_err(conflict_on_unique("owner"))?;
        Ok(())
    }

    async fn get_owner(&self, id: &OwnerId) -> StoreResult<Option<Owner>> {
        let row: Option<OwnerRow> =
            sqlx::query_as("SELECT id, name, created_at FROM owners WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(OwnerRow::into_owner).transpose()
    }

    async fn list_owners(&self) -> StoreResult<Vec<Owner>> {
        let rows: Vec<OwnerRow> =
            sqlx::query_as("SELECT id, name, created_at FROM owners ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(OwnerRow::into_owner).collect()
    }

    async fn insert_token(&self, token: &NewToken) -> StoreResult<()> {
        self.insert_token_row(token).await
    }

    async fn touch_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.touch_token_row(token_hash, now).await
    }

    async fn list_tokens(&self, owner: &OwnerId) -> StoreResult<Vec<TokenInfo>> {
        self.list_token_rows(owner).await
    }

    async fn delete_token(&self, owner: &OwnerId, id: &str) -> StoreResult<bool> {
        self.delete_token_row(owner, id).await
    }

    async fn insert_console_session(
        &self,
        id_hash: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
        keep: i64,
    ) -> StoreResult<u64> {
        self.insert_console_session_row(id_hash, token_hash, now, expires, keep)
            .await
    }

    async fn console_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        self.console_session_row(id_hash, now).await
    }

    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        self.delete_console_session_row(id_hash).await
    }

    async fn prune_console_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.prune_console_session_rows(now).await
    }

    async fn insert_audit(&self, entry: &crate::records::audit::AuditEntry) -> StoreResult<()> {
        self.insert_audit_row(entry).await
    }

    async fn list_audit(
        &self,
        device: &DeviceId,
        owner: Option<&OwnerId>,
        through: Option<DateTime<Utc>>,
        limit: i64,
    ) -> StoreResult<Vec<crate::records::audit::AuditEntry>> {
        self.list_audit_rows(device, owner, through, limit).await
    }

    async fn owned_since(&self, device: &DeviceId) -> StoreResult<Option<DateTime<Utc>>> {
        self.owned_since_of(device).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.prune_audit_rows(before).await
    }

    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<TokenScope>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT owner_id FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(owner,)| match owner {
            None => Ok(TokenScope::Admin),
            Some(o) => OwnerId::parse(&o)
                .map(TokenScope::Owner)
                .map_err(|e| corrupt("owner id", e)),
        })
        .transpose()
    }

    async fn has_admin_token(&self) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE owner_id IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn delete_admin_tokens(&self) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM api_tokens WHERE owner_id IS NULL")
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn insert_devices(&self, devices: &[NewDevice]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for d in devices {
            sqlx::query(
                "INSERT INTO devices (id, owner_id, connectors, password_hash, key_version, online, created_at, max_power_w, protocol)
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)",
            )
            .bind(d.id.as_str())
            .bind(d.owner.as_str())
            .bind(d.connectors)
            .bind(&d.password_hash)
            .bind(d.key_version)
            .bind(to_millis(d.created_at))
            .bind(d.max_power_w)
            .bind(d.protocol.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(&format!("device {}", d.id))(e))?;
            for connector in 1..=d.connectors {
                sqlx::query(
                    "INSERT INTO connectors (device_id, connector, state, updated_at) VALUES ($1, $2, 'unavailable', $3)",
                )
                .bind(d.id.as_str())
                .bind(connector)
                .bind(to_millis(d.created_at))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_device(&self, id: &DeviceId) -> StoreResult<Option<Device>> {
        let row: Option<DeviceRow> = sqlx::query_as(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut connectors = self.connectors_of(None, Some(id)).await?;
        let own = connectors.remove(&row.id).unwrap_or_default();
        row.into_device(own).map(Some)
    }

    async fn list_devices(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<Device>> {
        let rows: Vec<DeviceRow> = sqlx::query_as(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE ($1 IS NULL OR owner_id = $1) ORDER BY id"
        ))
        .bind(owner.map(OwnerId::as_str))
        .fetch_all(&self.pool)
        .await?;
        let mut connectors = self.connectors_of(owner, None).await?;
        rows.into_iter()
            .map(|row| {
                let own = connectors.remove(&row.id).unwrap_or_default();
                row.into_device(own)
            })
            .collect()
    }

    async fn get_device_auth(&self, id: &DeviceId) -> StoreResult<Option<DeviceAuth>> {
        let row: Option<DeviceAuthRow> = sqlx::query_as(&format!(
            "SELECT {DEVICE_AUTH_COLUMNS} FROM devices WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(DeviceAuthRow::into_auth)
            .transpose()
            .map(|r| r.map(|(_, auth)| auth))
    }

    async fn list_device_auth(&self) -> StoreResult<Vec<(DeviceId, DeviceAuth)>> {
        let rows: Vec<DeviceAuthRow> = sqlx::query_as(&format!(
            "SELECT {DEVICE_AUTH_COLUMNS} FROM devices ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(DeviceAuthRow::into_auth).collect()
    }

    async fn record_presence(&self, changes: &[PresenceChange]) -> StoreResult<()> {
        use crate::records::devices::PresenceKind;
        let mut tx = self.pool.begin().await?;
        for c in changes {
            let (sql, event) = match c.kind {
                PresenceKind::Connected => (
                    "UPDATE devices SET online = 1, online_conn = $2, last_seen = $3 WHERE id = $1",
                    Some("connected"),
                ),
                PresenceKind::Disconnected => (
                    "UPDATE devices SET online = 0, online_conn = NULL, last_seen = $3
                     WHERE id = $1 AND online_conn = $2",
                    Some("disconnected"),
                ),
                // Seen while offline (behind an external broker): online from now.
                PresenceKind::Seen => (
                    "UPDATE devices SET online = 1, online_conn = $2, last_seen = $3
                     WHERE id = $1 AND online = 0",
                    Some("online"),
                ),
            };
            let changed = sqlx::query(sql)
                .bind(c.device.as_str())
                .bind(c.conn)
                .bind(to_millis(c.at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 0 && c.kind == PresenceKind::Seen {
                sqlx::query("UPDATE devices SET last_seen = $2 WHERE id = $1")
                    .bind(c.device.as_str())
                    .bind(to_millis(c.at))
                    .execute(&mut *tx)
                    .await?;
            }
            if let (Some(kind), 1..) = (event, changed) {
                sqlx::query(
                    "INSERT INTO device_events (device_id, at, kind, detail) VALUES ($1, $2, $3, NULL)",
                )
                .bind(c.device.as_str())
                .bind(to_millis(c.at))
                .bind(kind)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_silent_devices_offline(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO device_events (device_id, at, kind, detail)
             SELECT id, $2, 'disconnected', 'silent for twice the heartbeat' FROM devices
             WHERE online = 1 AND (last_seen IS NULL OR last_seen < $1)",
        )
        .bind(to_millis(before))
        .bind(to_millis(Utc::now()))
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(
            "UPDATE devices SET online = 0, online_conn = NULL
             WHERE online = 1 AND (last_seen IS NULL OR last_seen < $1)",
        )
        .bind(to_millis(before))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn set_all_devices_offline(&self) -> StoreResult<u64> {
        Ok(
            sqlx::query("UPDATE devices SET online = 0, online_conn = NULL WHERE online = 1")
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn set_device_settings(
        &self,
        id: &DeviceId,
        owner: &OwnerId,
        settings: &DeviceSettings,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE devices SET max_power_w = COALESCE($2, max_power_w),
                                require_v2 = COALESCE($3, require_v2),
                                ocpp_registered = COALESCE($5, ocpp_registered)
             WHERE id = $1 AND owner_id = $4",
        )
        .bind(id.as_str())
        .bind(settings.max_power_w)
        .bind(settings.require_v2.map(i64::from))
        .bind(owner.as_str())
        .bind(settings.registration.map(|r| r.code()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_device_tariff(
        &self,
        id: &DeviceId,
        owner: &OwnerId,
        tariff: Option<&TariffId>,
    ) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE devices SET tariff_id = $2 WHERE id = $1 AND owner_id = $3")
            .bind(id.as_str())
            .bind(tariff.map(TariffId::as_str))
            .bind(owner.as_str())
            .execute(&self.pool)
            .await
            .map_err(conflict_on_unique("tariff assignment"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_tag(&self, tag: &Tag) -> StoreResult<()> {
        self.insert_tags(std::slice::from_ref(tag)).await
    }

    async fn insert_tags(&self, tags: &[Tag]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for tag in tags {
            insert_tag_in(&mut tx, tag).await.map_err(|e| match e {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("tag {} is already enrolled", tag.uid))
                }
                other => other,
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_tag(&self, owner: &OwnerId, uid: &TagUid) -> StoreResult<Option<Tag>> {
        let rows: Vec<TagRow> = sqlx::query_as(&format!(
            "SELECT {TAG_COLUMNS} FROM tags WHERE owner_id = $1 AND uid = $2"
        ))
        .bind(owner.as_str())
        .bind(uid.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(self.with_devices(rows, Some(owner), Some(uid)).await?.pop())
    }

    async fn find_tags(&self, uid: &TagUid) -> StoreResult<Vec<Tag>> {
        let rows: Vec<TagRow> = sqlx::query_as(&format!(
            "SELECT {TAG_COLUMNS} FROM tags WHERE uid = $1 ORDER BY owner_id"
        ))
        .bind(uid.as_str())
        .fetch_all(&self.pool)
        .await?;
        self.with_devices(rows, None, Some(uid)).await
    }

    async fn list_tags(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<Tag>> {
        let rows: Vec<TagRow> = sqlx::query_as(&format!(
            "SELECT {TAG_COLUMNS} FROM tags WHERE ($1 IS NULL OR owner_id = $1)
             ORDER BY uid, owner_id"
        ))
        .bind(owner.map(OwnerId::as_str))
        .fetch_all(&self.pool)
        .await?;
        self.with_devices(rows, owner, None).await
    }

    async fn update_tag(&self, tag: &Tag) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let version = bump_list_version(&mut tx, &tag.owner).await?;
        let done = sqlx::query(
            "UPDATE tags SET role = $2, status = $3, expires_at = $4, group_name = $5,
                 max_sessions = $6, label = $7, list_version = $8, updated_at = $9
             WHERE uid = $1 AND owner_id = $10",
        )
        .bind(tag.uid.as_str())
        .bind(tag.role.as_str())
        .bind(tag.status.as_str())
        .bind(tag.expires_at.map(to_millis))
        .bind(tag.group.as_deref())
        .bind(tag.max_sessions)
        .bind(tag.label.as_deref())
        .bind(version)
        .bind(to_millis(tag.updated_at))
        .bind(tag.owner.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        replace_tag_devices(&mut tx, tag).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_tag(
        &self,
        owner: &OwnerId,
        uid: &TagUid,
        _now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM tags WHERE owner_id = $1 AND uid = $2")
            .bind(owner.as_str())
            .bind(uid.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let version = bump_list_version(&mut tx, owner).await?;
        sqlx::query(
            "INSERT INTO tag_removals (owner_id, uid, list_version) VALUES ($1, $2, $3)
             ON CONFLICT (owner_id, uid) DO UPDATE SET list_version = excluded.list_version",
        )
        .bind(owner.as_str())
        .bind(uid.as_str())
        .bind(version)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_unknown_tags(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<UnknownTag>> {
        let rows: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT uid, device_id, owner_id, first_seen, last_seen, attempts FROM unknown_tags
             WHERE ($1 IS NULL OR owner_id = $1) ORDER BY last_seen DESC, uid, device_id
             LIMIT 1000",
        )
        .bind(owner.map(OwnerId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(uid, device, owner, first_seen, last_seen, attempts)| {
                Ok(UnknownTag {
                    uid: TagUid::parse(&uid).map_err(|e| corrupt("tag uid", e))?,
                    device: DeviceId::parse(&device).map_err(|e| corrupt("device id", e))?,
                    owner: OwnerId::parse(&owner).map_err(|e| corrupt("owner id", e))?,
                    first_seen: from_millis(first_seen)?,
                    last_seen: from_millis(last_seen)?,
                    attempts,
                })
            })
            .collect()
    }

    async fn insert_tariff(&self, tariff: &Tariff) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        if tariff.default {
            sqlx::query("UPDATE tariffs SET is_default = 0 WHERE owner_id = $1 AND is_default = 1")
                .bind(tariff.owner.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(&format!(
            "INSERT INTO tariffs ({TARIFF_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(tariff.id.as_str())
        .bind(tariff.owner.as_str())
        .bind(tariff.currency.code())
        .bind(tariff.energy_per_kwh.to_string())
        .bind(tariff.time_per_hour.to_string())
        .bind(tariff.session_fee.to_string())
        .bind(tariff.tax_rate.to_string())
        .bind(i64::from(tariff.default))
        .bind(to_millis(tariff.created_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique("tariff"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_tariff(&self, owner: &OwnerId, id: &TariffId) -> StoreResult<Option<Tariff>> {
        let row: Option<TariffRow> = sqlx::query_as(&format!(
            "SELECT {TARIFF_COLUMNS} FROM tariffs WHERE owner_id = $1 AND id = $2"
        ))
        .bind(owner.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(TariffRow::into_tariff).transpose()
    }

    async fn find_tariffs(&self, id: &TariffId) -> StoreResult<Vec<Tariff>> {
        let rows: Vec<TariffRow> = sqlx::query_as(&format!(
            "SELECT {TARIFF_COLUMNS} FROM tariffs WHERE id = $1 ORDER BY owner_id"
        ))
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TariffRow::into_tariff).collect()
    }

    async fn list_tariffs(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<Tariff>> {
        let rows: Vec<TariffRow> = sqlx::query_as(&format!(
            "SELECT {TARIFF_COLUMNS} FROM tariffs WHERE ($1 IS NULL OR owner_id = $1) ORDER BY id"
        ))
        .bind(owner.map(OwnerId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TariffRow::into_tariff).collect()
    }

    async fn insert_transfer(
        &self,
        offer: &TransferOffer,
        per_receiver: u32,
        per_pair: u32,
    ) -> StoreResult<super::NewTransfer> {
        self.insert_transfer_row(offer, per_receiver, per_pair)
            .await
    }

    async fn get_transfer(&self, id: &str) -> StoreResult<Option<TransferOffer>> {
        self.get_transfer_row(id).await
    }

    async fn list_transfers(
        &self,
        owner: Option<&OwnerId>,
        cursor: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> StoreResult<Vec<TransferOffer>> {
        self.list_transfer_rows(owner, cursor, limit).await
    }

    async fn set_transfer_status(
        &self,
        id: &str,
        from: TransferStatus,
        to: TransferStatus,
        code_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.set_transfer_row_status(id, from, to, code_hash, now)
            .await
    }

    async fn rotate_device_credentials(
        &self,
        id: &DeviceId,
        owner: &OwnerId,
        expected: i64,
        password_hash: &str,
    ) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await?;
        transfers::rotate_credentials(&mut conn, id, owner, expected, password_hash).await
    }

    async fn get_session(&self, id: i64) -> StoreResult<Option<crate::records::charging::Session>> {
        let row: Option<charging::SessionRow> = sqlx::query_as(&format!(
            "SELECT {} FROM sessions WHERE id = $1",
            charging::SESSION_COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(charging::SessionRow::into_session).transpose()
    }

    async fn list_sessions(
        &self,
        f: &crate::records::charging::SessionFilter,
    ) -> StoreResult<Vec<crate::records::charging::Session>> {
        let rows: Vec<charging::SessionRow> = sqlx::query_as(&format!(
            "SELECT {} FROM sessions
             WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR device_id = $2)
               AND ($3 IS NULL OR tag_uid = $3) AND ($4 IS NULL OR status = $4)
               AND ($5 IS NULL OR started_at >= $5) AND ($6 IS NULL OR started_at < $6)
               AND ($7 IS NULL OR id < $7)
             ORDER BY id DESC LIMIT $8",
            charging::SESSION_COLUMNS
        ))
        .bind(f.owner.as_ref().map(OwnerId::as_str))
        .bind(f.device.as_ref().map(DeviceId::as_str))
        .bind(f.tag.as_ref().map(TagUid::as_str))
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.from.map(to_millis))
        .bind(f.to.map(to_millis))
        .bind(f.before_id)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(charging::SessionRow::into_session)
            .collect()
    }

    async fn session_details(
        &self,
        id: i64,
        shown: i64,
    ) -> StoreResult<(
        Vec<crate::records::charging::MeterSample>,
        i64,
        Vec<crate::records::charging::StoredCostLine>,
    )> {
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM meter_samples WHERE session_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        // Every step-th sample (the first among them), and the last.
        let step = ((total + shown.max(1) - 1) / shown.max(1)).max(1);
        let samples: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT at, energy_wh, power_w FROM (
                 SELECT at, energy_wh, power_w, ROW_NUMBER() OVER (ORDER BY at) AS n
                 FROM meter_samples WHERE session_id = $1) s
             WHERE (n - 1) % $2 = 0 OR n = $3
             ORDER BY at",
        )
        .bind(id)
        .bind(step)
        .bind(total)
        .fetch_all(&self.pool)
        .await?;
        let lines: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT kind, quantity, unit_price, amount FROM session_cost_lines
             WHERE session_id = $1 ORDER BY kind",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let samples = samples
            .into_iter()
            .map(|(at, energy_wh, power_w)| {
                Ok(crate::records::charging::MeterSample {
                    at: crate::records::charging::rfc3339(from_millis(at)?),
                    energy_wh,
                    power_w,
                })
            })
            .collect::<StoreResult<_>>()?;
        let lines = lines
            .into_iter()
            .map(
                |(kind, quantity, unit_price, amount)| crate::records::charging::StoredCostLine {
                    kind,
                    quantity,
                    unit_price,
                    amount,
                },
            )
            .collect();
        Ok((samples, total, lines))
    }

    async fn billing_sums(
        &self,
        owner: Option<&OwnerId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        key: crate::records::charging::ReportKey,
    ) -> StoreResult<Vec<crate::records::charging::ReportSum>> {
        use crate::records::charging::ReportKey;
        // Grouped by the integer day (grouping 100,000s of rows by a text cast of it was 3x
        // slower on SQLite); only the output is cast to text.
        let (key_sql, key_out) = match key {
            ReportKey::Day => (
                "started_at / 86400000",
                "CAST(started_at / 86400000 AS TEXT)",
            ),
            ReportKey::Device => ("device_id", "device_id"),
            // Uids are unique per owner: two owners' cards with one uid are two groups.
            ReportKey::Tag => ("owner_id, tag_uid", "owner_id || '/' || tag_uid"),
        };
        // Each owner's sessions by start: the sessions_owner_started index; the admin's
        // report over all owners: sessions_started.
        let owner_sql = if owner.is_some() {
            "owner_id = $1"
        } else {
            "$1 IS NULL"
        };
        // Sums never wrap: each column is summed as its high part (value / 10^9) and its
        // low part (value % 10^9), each far from BIGINT's range even over billions of
        // rows, and put together exactly in 128 bits here.
        let split = |c: &str| {
            format!("CAST(SUM({c} / {SPLIT}) AS BIGINT), CAST(SUM({c} % {SPLIT}) AS BIGINT)")
        };
        let rows: Vec<AnyRow> = sqlx::query(&format!(
            "SELECT {key_out}, currency, COUNT(*), {}, {}, {}, {}
             FROM sessions
             WHERE {owner_sql} AND started_at >= $2 AND started_at < $3 AND status = 'stopped'
             GROUP BY {key_sql}, currency",
            split("energy_wh"),
            split("net_minor"),
            split("tax_minor"),
            split("total_minor"),
        ))
        .bind(owner.map(OwnerId::as_str))
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let wide = |i: usize| -> StoreResult<i128> {
                    let hi: i64 = row.try_get(i)?;
                    let lo: i64 = row.try_get(i + 1)?;
                    Ok(i128::from(hi) * i128::from(SPLIT) + i128::from(lo))
                };
                Ok(crate::records::charging::ReportSum {
                    key: row.try_get(0)?,
                    currency: row.try_get(1)?,
                    sessions: row.try_get(2)?,
                    energy_wh: wide(3)?,
                    net_minor: wide(5)?,
                    tax_minor: wide(7)?,
                    total_minor: wide(9)?,
                })
            })
            .collect()
    }

    async fn prune_request_log(&self, before: DateTime<Utc>, batch: usize) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM mqtt_requests WHERE (device_id, request_id) IN (
                 SELECT device_id, request_id FROM mqtt_requests WHERE created_at < $1 LIMIT $2)",
        )
        .bind(to_millis(before))
        .bind(i64::try_from(batch).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn device_page(
        &self,
        q: &crate::records::devices::DeviceQuery,
    ) -> StoreResult<Vec<Device>> {
        SqlStore::device_page(self, q).await
    }

    async fn fleet_counts(
        &self,
        owner: Option<&OwnerId>,
    ) -> StoreResult<crate::records::devices::FleetCounts> {
        self.fleet_counts_of(owner).await
    }

    async fn station_variables(
        &self,
        device: &DeviceId,
    ) -> StoreResult<Vec<crate::records::devices::StationVariable>> {
        self.station_variables_of(device).await
    }

    async fn recent_faults(
        &self,
        owner: Option<&OwnerId>,
        limit: i64,
    ) -> StoreResult<Vec<crate::records::devices::Fault>> {
        self.recent_faults_of(owner, limit).await
    }

    async fn device_history(
        &self,
        device: &DeviceId,
        q: &crate::records::devices::HistoryQuery,
    ) -> StoreResult<Vec<crate::records::devices::DeviceEvent>> {
        self.device_history_of(device, q).await
    }

    async fn prune_device_events(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.prune_device_events_before(before).await
    }

    async fn tag_page(&self, q: &crate::records::tags::TagQuery) -> StoreResult<Vec<Tag>> {
        SqlStore::tag_page(self, q).await
    }

    async fn update_tariff(&self, tariff: &Tariff) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if tariff.default {
            sqlx::query(
                "UPDATE tariffs SET is_default = 0
                 WHERE owner_id = $1 AND is_default = 1 AND id <> $2",
            )
            .bind(tariff.owner.as_str())
            .bind(tariff.id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query(
            "UPDATE tariffs SET currency = $3, energy_per_kwh = $4, time_per_hour = $5,
                                session_fee = $6, tax_rate = $7, is_default = $8
             WHERE owner_id = $1 AND id = $2",
        )
        .bind(tariff.owner.as_str())
        .bind(tariff.id.as_str())
        .bind(tariff.currency.code())
        .bind(tariff.energy_per_kwh.to_string())
        .bind(tariff.time_per_hour.to_string())
        .bind(tariff.session_fee.to_string())
        .bind(tariff.tax_rate.to_string())
        .bind(i64::from(tariff.default))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn resolve_session(
        &self,
        id: i64,
        resolution: &crate::records::charging::Resolution,
    ) -> StoreResult<bool> {
        charging::resolve(&self.pool, id, resolution).await
    }

    async fn count_active_sessions(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE status = 'active'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn create_site(
        &self,
        owner: &OwnerId,
        name: &str,
        failsafe: crate::records::sites::Failsafe,
        lease_s: i64,
        root: ([i64; 3], Option<i64>),
        now: DateTime<Utc>,
    ) -> StoreResult<crate::records::sites::Site> {
        self.insert_site(owner, name, failsafe, lease_s, root, now)
            .await
    }

    async fn sites(
        &self,
        owner: Option<&OwnerId>,
    ) -> StoreResult<Vec<crate::records::sites::Site>> {
        self.sites_of(owner).await
    }

    async fn get_site(&self, id: i64) -> StoreResult<Option<crate::records::sites::Site>> {
        self.site_by_id(id).await
    }

    async fn site_nodes(&self, site: i64) -> StoreResult<Vec<crate::records::sites::SiteNode>> {
        self.nodes_of(site).await
    }

    async fn add_site_node(
        &self,
        site: i64,
        parent: i64,
        name: &str,
        limit: [i64; 3],
        cap: Option<i64>,
    ) -> StoreResult<Option<crate::records::sites::SiteNode>> {
        self.insert_site_node(site, parent, name, limit, cap).await
    }

    async fn set_site_node(&self, node: &crate::records::sites::SiteNode) -> StoreResult<bool> {
        self.update_site_node(node).await
    }

    async fn place_charger(
        &self,
        site: i64,
        placement: &crate::records::sites::Placement,
    ) -> StoreResult<bool> {
        self.upsert_placement(site, placement).await
    }

    async fn unplace_charger(&self, device: &DeviceId) -> StoreResult<bool> {
        self.delete_placement(device).await
    }

    async fn placement(
        &self,
        device: &DeviceId,
    ) -> StoreResult<Option<(crate::records::sites::Placement, i64)>> {
        self.placement_of(device).await
    }

    async fn site_load(&self, site: i64) -> StoreResult<Option<crate::records::sites::SiteLoad>> {
        self.load_of_site(site).await
    }

    async fn claim_site(
        &self,
        site: i64,
        instance: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.claim_site_for(site, instance, until, now).await
    }

    async fn sites_with_chargers(&self) -> StoreResult<Vec<i64>> {
        self.sites_with_chargers_now().await
    }

    async fn sites_of(&self, devices: &[DeviceId]) -> StoreResult<Vec<i64>> {
        self.sites_of_chargers(devices).await
    }

    async fn write_allocation(
        &self,
        site: i64,
        row: &crate::records::sites::AllocationRow,
    ) -> StoreResult<()> {
        self.upsert_allocation(site, row).await
    }

    async fn leaving_chargers(&self) -> StoreResult<Vec<DeviceId>> {
        self.leaving_now().await
    }

    async fn forget_leaving(&self, device: &DeviceId) -> StoreResult<()> {
        self.delete_leaving(device).await
    }

    async fn set_schedule_check(&self, device: &DeviceId, check: &str) -> StoreResult<()> {
        self.update_schedule_check(device, check).await
    }

    async fn ack_allocation(
        &self,
        session: i64,
        current_da: i64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.ack_allocation_sent(session, current_da, lease_until)
            .await
    }

    async fn set_default_limit(&self, device: &DeviceId, da: Option<i64>) -> StoreResult<()> {
        self.update_default_limit(device, da).await
    }

    async fn prune_allocations(&self, site: i64) -> StoreResult<u64> {
        self.prune_site_allocations(site).await
    }

    async fn begin(&self) -> StoreResult<Box<dyn super::ChargerTx>> {
        let tx = match self.backend {
            // Take the write lock at once: a deferred transaction that reads, then writes,
            // fails with SQLITE_BUSY if another connection wrote in between.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Box::new(charging::SqlTx::new(tx, self.model.clone())))
    }

    async fn begin_read(&self) -> StoreResult<Box<dyn super::ChargerTx>> {
        Ok(Box::new(charging::SqlTx::read(
            self.pool.acquire().await?,
            self.model.clone(),
        )))
    }

    fn read_model(&self) -> &super::ReadModel {
        &self.model
    }

    async fn try_exclusive(
        &self,
        job: super::Exclusive,
    ) -> StoreResult<Option<super::ExclusiveGuard>> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(super::ExclusiveGuard::new(None)));
        }
        // A connection of its own, out of the pool: the lock lives as long as it does.
        let mut conn = self.pool.acquire().await?.detach();
        let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(job.key())
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then(|| super::ExclusiveGuard::new(Some(conn))))
    }

    fn begin_memory(&self) -> Option<Box<dyn super::ChargerTx>> {
        (!self.model.is_off()).then(|| Box::new(self.model.tx()) as Box<dyn super::ChargerTx>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_pick_the_backend_and_hide_passwords() {
        assert_eq!(
            Backend::from_url("sqlite://data/x.db"),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/d"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/d"), None);
        assert_eq!(redact_url("postgres://u:pw@h/d"), "postgres://u:***@h/d");
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
    }
}
