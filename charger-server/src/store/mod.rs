//! Storage: the [`Store`] trait, the only door to the database, and its SQL
//! implementation for SQLite and PostgreSQL.
//!
//! Both databases run the same SQL through sqlx's `Any` driver (see [`sql`]); each keeps
//! its own migrations in `migrations/sqlite` and `migrations/postgres`, with the same
//! numbers and names. The schema uses only types both databases and the `Any` driver
//! share: `BIGINT` (times in UTC milliseconds, energy in Wh, money in minor units) and
//! `TEXT` (ids, states, decimal prices). The scheme of `DATABASE_URL` picks the backend.

mod memory;
mod sql;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::{DeviceId, OwnerId, TagUid, TariffId};
use crate::records::audit::AuditEntry;
use crate::records::billing::Tariff;
use crate::records::charging::{
    Charger, LocalListPage, NewSession, Session, SessionRef, StopRecord,
};
use crate::records::charging::{MeterSample, ReportKey, ReportSum, SessionFilter, StoredCostLine};
use crate::records::devices::{
    Device, DeviceAuth, DeviceSettings, NewDevice, PresenceChange, TransferOffer, TransferStatus,
};
use crate::records::owners::{NewToken, Owner, TokenInfo, TokenScope};
use crate::records::sites::{AllocationRow, Failsafe, Placement, Site, SiteLoad, SiteNode};
use crate::records::tags::{Tag, UnknownTag};

pub use memory::{Basis, ReadModel};
pub use sql::{connect, connect_with, Backend, DbOptions, SqlStore};

/// What the store can fail with. Unique-constraint violations are `Conflict`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Corrupt(String),
    /// A write on a read-only [`ChargerTx`] (a bug: such requests write nothing).
    #[error("a write on a read-only connection")]
    ReadOnly,
    /// The read model cannot answer this (an entry it lacks, or a read it does not
    /// serve): the request goes to the database.
    #[error("not in the read model")]
    Miss,
}

impl StoreError {
    /// The database was busy, not broken: a deadlock broken by failing this transaction,
    /// a serialization failure, a lock or statement time-out (`CHARGER_PG_*`). The same
    /// work run again will most likely succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => matches!(
                e.code().as_deref(),
                Some("40P01" | "40001" | "55P03" | "57014")
            ),
            _ => false,
        }
    }
}

/// A store error as the domain's: the one place it is mapped.
impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        use crate::error::Error;
        match e {
            StoreError::Conflict(message) => Error::conflict("conflict", message),
            // The database cannot be reached (down, restarting, the pool waited in
            // vain): 503, the caller may retry.
            StoreError::Database(
                e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed),
            ) => {
                crate::metrics::db_error();
                tracing::warn!(error = %e, "the database is unreachable");
                Error::Unavailable("the database is unreachable; retry later".to_owned())
            }
            e if e.is_transient() => {
                crate::metrics::db_error();
                tracing::warn!(error = %e, "the database was busy");
                Error::Unavailable("the database was busy; retry".to_owned())
            }
            StoreError::Database(e) => {
                crate::metrics::db_error();
                Error::Internal(format!("database: {e}"))
            }
            StoreError::Corrupt(message) => Error::Internal(format!("stored data: {message}")),
            StoreError::ReadOnly | StoreError::Miss => Error::Internal(e.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the services persist. Implementations keep each method atomic.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// A value of the `server_meta` table.
    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>>;
    /// Sets `key` to `value` unless it is set; returns the value in force afterwards.
    async fn init_meta(&self, key: &str, value: &str) -> StoreResult<String>;

    async fn insert_owner(&self, owner: &Owner) -> StoreResult<()>;
    async fn get_owner(&self, id: &OwnerId) -> StoreResult<Option<Owner>>;
    async fn list_owners(&self) -> StoreResult<Vec<Owner>>;

    /// Stores an API token's hash; `owner` None is an admin token.
    async fn insert_token(&self, token: &NewToken) -> StoreResult<()>;
    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<TokenScope>>;
    /// Records a token's use.
    async fn touch_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// An owner's tokens (never their hashes), oldest first.
    async fn list_tokens(&self, owner: &OwnerId) -> StoreResult<Vec<TokenInfo>>;
    /// Revokes an owner's token (and ends the console sessions signed in with it); false
    /// when it has no such token.
    async fn delete_token(&self, owner: &OwnerId, id: &str) -> StoreResult<bool>;

    /// Starts a console session (the hash of its cookie's id, the hash of its token), and
    /// ends the oldest sessions of that token beyond the newest `keep`; how many it ended.
    async fn insert_console_session(
        &self,
        id_hash: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
        keep: i64,
    ) -> StoreResult<u64>;
    /// The token hash of an unexpired console session.
    async fn console_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>>;
    /// Ends a console session.
    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Deletes expired console sessions; returns how many.
    async fn prune_console_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Records who did what.
    async fn insert_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// A charger's recent audit entries (of one owner, or all), newest first.
    /// A charger's audit entries (of one owner, or all) up to `through`, newest first.
    async fn list_audit(
        &self,
        device: &DeviceId,
        owner: Option<&OwnerId>,
        through: Option<DateTime<Utc>>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// When a charger last changed owner (its current owner's since), if it ever did.
    async fn owned_since(&self, device: &DeviceId) -> StoreResult<Option<DateTime<Utc>>>;
    /// Deletes audit entries older than `before`; returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Whether any admin token is stored.
    async fn has_admin_token(&self) -> StoreResult<bool>;
    /// Removes every stored admin token (rotation).
    async fn delete_admin_tokens(&self) -> StoreResult<u64>;

    /// Inserts devices and their connectors in one transaction: all or none.
    async fn insert_devices(&self, devices: &[NewDevice]) -> StoreResult<()>;
    async fn get_device(&self, id: &DeviceId) -> StoreResult<Option<Device>>;
    /// All devices, or one owner's, ordered by id.
    async fn list_devices(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<Device>>;
    /// What the broker needs to check a CONNECT.
    async fn get_device_auth(&self, id: &DeviceId) -> StoreResult<Option<DeviceAuth>>;
    /// Every device's credentials (an external broker's reconciliation).
    async fn list_device_auth(&self) -> StoreResult<Vec<(DeviceId, DeviceAuth)>>;
    /// Applies presence changes in order, in one transaction (group commit).
    async fn record_presence(&self, changes: &[PresenceChange]) -> StoreResult<()>;
    /// Marks every device offline (start-up of the embedded broker: nobody is connected).
    /// Marks offline the online devices last seen before `before`; returns how many.
    async fn set_silent_devices_offline(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    async fn set_all_devices_offline(&self) -> StoreResult<u64>;
    /// Changes a device's settings (those given), if it still belongs to `owner`; false
    /// otherwise (gone, or moved to another owner meanwhile).
    async fn set_device_settings(
        &self,
        id: &DeviceId,
        owner: &OwnerId,
        settings: &DeviceSettings,
    ) -> StoreResult<bool>;
    /// Assigns (or clears) a device's tariff, if it still belongs to `owner`; false
    /// otherwise.
    async fn set_device_tariff(
        &self,
        id: &DeviceId,
        owner: &OwnerId,
        tariff: Option<&TariffId>,
    ) -> StoreResult<bool>;

    /// Inserts a tag and bumps its owner's local-list version.
    async fn insert_tag(&self, tag: &Tag) -> StoreResult<()>;
    /// Inserts tags in one transaction: all or none.
    async fn insert_tags(&self, tags: &[Tag]) -> StoreResult<()>;
    /// A tag of `owner` (uids are unique per owner).
    async fn get_tag(&self, owner: &OwnerId, uid: &TagUid) -> StoreResult<Option<Tag>>;
    /// Every owner's enrollment of `uid` (the admin's look-up without an owner).
    async fn find_tags(&self, uid: &TagUid) -> StoreResult<Vec<Tag>>;
    async fn list_tags(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<Tag>>;
    /// Replaces a tag's mutable fields and bumps the local-list version; false if absent.
    async fn update_tag(&self, tag: &Tag) -> StoreResult<bool>;
    /// Deletes a tag, leaving a local-list tombstone; false if absent.
    async fn delete_tag(
        &self,
        owner: &OwnerId,
        uid: &TagUid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Unknown tags refused at chargers (of one owner, or all), newest first.
    async fn list_unknown_tags(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<UnknownTag>>;

    /// Inserts a tariff; a default one replaces its owner's previous default.
    async fn insert_tariff(&self, tariff: &Tariff) -> StoreResult<()>;
    /// A tariff of `owner` (ids are unique per owner).
    async fn get_tariff(&self, owner: &OwnerId, id: &TariffId) -> StoreResult<Option<Tariff>>;
    /// Every owner's tariff with this id (the admin's look-up without an owner).
    async fn find_tariffs(&self, id: &TariffId) -> StoreResult<Vec<Tariff>>;
    async fn list_tariffs(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<Tariff>>;

    /// Stores a new transfer offer, unless its charger has an open one already (expired
    /// ones are closed first) or its receiver id has `per_receiver` open ones.
    async fn insert_transfer(
        &self,
        offer: &TransferOffer,
        per_receiver: u32,
        per_pair: u32,
    ) -> StoreResult<NewTransfer>;
    async fn get_transfer(&self, id: &str) -> StoreResult<Option<TransferOffer>>;
    /// Offers sent by or to `owner` (all for None), newest first, after `cursor` (the
    /// creation time and id of the last one of the previous page), at most `limit`.
    async fn list_transfers(
        &self,
        owner: Option<&OwnerId>,
        cursor: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> StoreResult<Vec<TransferOffer>>;
    /// Moves offer `id` from status `from` to `to` (setting the code's hash when given);
    /// false when it was not in `from` any more.
    async fn set_transfer_status(
        &self,
        id: &str,
        from: TransferStatus,
        to: TransferStatus,
        code_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Moves a device of `owner` from key version `expected` to the next with a new
    /// password hash, and forgets superseded credentials (an operator's rotation gives no
    /// grace); false (nothing changed) when the device is gone, moved to another owner, or
    /// its version is not `expected`.
    async fn rotate_device_credentials(
        &self,
        id: &DeviceId,
        owner: &OwnerId,
        expected: i64,
        password_hash: &str,
    ) -> StoreResult<bool>;

    /// A session by its id.
    async fn get_session(&self, id: i64) -> StoreResult<Option<Session>>;
    /// Sessions matching `filter`, newest (highest id) first, at most `filter.limit`.
    async fn list_sessions(&self, filter: &SessionFilter) -> StoreResult<Vec<Session>>;
    /// A session's meter samples (by time; about `shown` of them, evenly thinned, the
    /// first and last kept), how many it has, and its cost lines.
    async fn session_details(
        &self,
        id: i64,
        shown: i64,
    ) -> StoreResult<(Vec<MeterSample>, i64, Vec<StoredCostLine>)>;
    /// Sums of stopped sessions that started in `[from, to)`, by `key` and currency.
    async fn billing_sums(
        &self,
        owner: Option<&OwnerId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        key: ReportKey,
    ) -> StoreResult<Vec<ReportSum>>;
    /// Sessions charging now (all owners).
    async fn count_active_sessions(&self) -> StoreResult<i64>;
    /// A page of chargers, searched and filtered on the database, by id.
    async fn device_page(
        &self,
        q: &crate::records::devices::DeviceQuery,
    ) -> StoreResult<Vec<Device>>;
    /// How many chargers (of one owner, or all) are online, charging, faulted.
    async fn fleet_counts(
        &self,
        owner: Option<&OwnerId>,
    ) -> StoreResult<crate::records::devices::FleetCounts>;
    /// An OCPP 2.0.1 station's kept configuration variables, by component, EVSE, variable.
    async fn station_variables(
        &self,
        device: &DeviceId,
    ) -> StoreResult<Vec<crate::records::devices::StationVariable>>;
    /// The connectors' latest reported errors, newest first.
    async fn recent_faults(
        &self,
        owner: Option<&OwnerId>,
        limit: i64,
    ) -> StoreResult<Vec<crate::records::devices::Fault>>;
    /// A charger's history, newest first: its events and answered requests of the query's
    /// kind and times (`limit` of each at most, merged, cut to `limit`).
    async fn device_history(
        &self,
        device: &DeviceId,
        q: &crate::records::devices::HistoryQuery,
    ) -> StoreResult<Vec<crate::records::devices::DeviceEvent>>;
    /// Deletes chargers' events older than `before`; returns how many.
    async fn prune_device_events(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// A page of tags, searched on the database, by uid and owner.
    async fn tag_page(&self, q: &crate::records::tags::TagQuery) -> StoreResult<Vec<Tag>>;
    /// Replaces a tariff's prices and default flag (a default one makes its owner's other
    /// default not one); false when the owner has no such tariff.
    async fn update_tariff(&self, tariff: &Tariff) -> StoreResult<bool>;
    /// Records an operator's resolution of a disputed session (its bill and cost lines);
    /// false (nothing changed) when it is not disputed any more.
    async fn resolve_session(
        &self,
        id: i64,
        resolution: &crate::records::charging::Resolution,
    ) -> StoreResult<bool>;

    /// Deletes up to `batch` kept answers older than `before` (the idempotency window);
    /// returns how many.
    async fn prune_request_log(&self, before: DateTime<Utc>, batch: usize) -> StoreResult<u64>;

    /// Opens the transaction a batch of charger requests runs in (on SQLite it takes the
    /// write lock at once: `BEGIN IMMEDIATE`).
    /// A site for `owner`, with its connection (the root node) at `root`'s limits (dA) and
    /// power cap (W).
    async fn create_site(
        &self,
        owner: &OwnerId,
        name: &str,
        failsafe: Failsafe,
        lease_s: i64,
        root: ([i64; 3], Option<i64>),
        now: DateTime<Utc>,
    ) -> StoreResult<Site>;
    /// Sites (of one owner, or all), by id.
    async fn sites(&self, owner: Option<&OwnerId>) -> StoreResult<Vec<Site>>;
    async fn get_site(&self, id: i64) -> StoreResult<Option<Site>>;
    /// A site's nodes, parents before children.
    async fn site_nodes(&self, site: i64) -> StoreResult<Vec<SiteNode>>;
    /// A node under `parent`, which must be one of `site`'s (None otherwise).
    async fn add_site_node(
        &self,
        site: i64,
        parent: i64,
        name: &str,
        limit: [i64; 3],
        cap: Option<i64>,
    ) -> StoreResult<Option<SiteNode>>;
    /// Changes a node's name, limits and cap; false when it is not its site's.
    async fn set_site_node(&self, node: &SiteNode) -> StoreResult<bool>;
    /// Places a charger on one of `site`'s nodes (its default limit is given again); false
    /// unless the charger and the site have one owner, checked in the write.
    async fn place_charger(&self, site: i64, placement: &Placement) -> StoreResult<bool>;
    /// Takes a charger off its site (its limits are lifted later: it is leaving); false
    /// when it was on none.
    async fn unplace_charger(&self, device: &DeviceId) -> StoreResult<bool>;
    /// A charger's placement and its site.
    async fn placement(&self, device: &DeviceId) -> StoreResult<Option<(Placement, i64)>>;
    /// Everything the allocator reads of a site.
    async fn site_load(&self, site: i64) -> StoreResult<Option<SiteLoad>>;
    /// Takes or keeps the right to allocate `site` until `until` (false: another instance
    /// holds it now).
    async fn claim_site(
        &self,
        site: i64,
        instance: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The sites with a charger on them.
    async fn sites_with_chargers(&self) -> StoreResult<Vec<i64>>;
    /// The sites these chargers are placed on (not leaving), each once: one query for a
    /// whole run's worth of chargers whose sessions changed.
    async fn sites_of(&self, devices: &[DeviceId]) -> StoreResult<Vec<i64>>;
    /// Notes that a session's charger accepted the limit sent with `current_da` and
    /// `lease_until` (not a newer one written since).
    async fn ack_allocation(
        &self,
        session: i64,
        current_da: i64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Writes what a running session was given.
    async fn write_allocation(&self, site: i64, row: &AllocationRow) -> StoreResult<()>;
    /// Chargers taken off their site (or sold) whose limits are not lifted yet.
    async fn leaving_chargers(&self) -> StoreResult<Vec<DeviceId>>;
    /// Forgets a charger that left its site, once its limits were lifted.
    async fn forget_leaving(&self, device: &DeviceId) -> StoreResult<()>;
    /// Notes what a charger's composite schedule showed (`ok`, `wrong`, `unknown`).
    async fn set_schedule_check(&self, device: &DeviceId, check: &str) -> StoreResult<()>;
    /// Notes the default limit a charger was given since its boot.
    async fn set_default_limit(&self, device: &DeviceId, da: Option<i64>) -> StoreResult<()>;
    /// Forgets the allocations of a site's sessions that are no longer running.
    async fn prune_allocations(&self, site: i64) -> StoreResult<u64>;
    async fn begin(&self) -> StoreResult<Box<dyn ChargerTx>>;
    /// A read-only [`ChargerTx`] outside any transaction, for requests that change
    /// nothing (`authorize`): its writes are refused, except unknown-tag sightings,
    /// which it holds back for [`ChargerTx::held_notes`].
    async fn begin_read(&self) -> StoreResult<Box<dyn ChargerTx>>;
    /// A read-only [`ChargerTx`] over the authorize read model ([`ReadModel`]), which
    /// answers [`StoreError::Miss`] for anything it does not hold; None when it is off.
    fn begin_memory(&self) -> Option<Box<dyn ChargerTx>>;
    /// The authorize read model (its size is a setting).
    fn read_model(&self) -> &ReadModel;
    /// Holds, until the guard is dropped, the right to do `job` alone among every instance
    /// on this database (on PostgreSQL a session advisory lock, released with its
    /// connection even if the holder is killed; SQLite has one instance); None when another
    /// instance holds it.
    async fn try_exclusive(&self, job: Exclusive) -> StoreResult<Option<ExclusiveGuard>>;
}

/// Jobs that one instance at a time does ([`Store::try_exclusive`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusive {
    /// Making the external broker's accounts agree with the database.
    BrokerReconcile,
}

impl Exclusive {
    /// Its advisory lock key (fixed: every instance must use the same).
    pub(crate) fn key(self) -> i64 {
        match self {
            // "mybox" in ASCII, then the job's number.
            Exclusive::BrokerReconcile => 0x6d79_626f_7800_0001,
        }
    }
}

/// The right to do an [`Exclusive`] job; dropping it gives the right up.
pub struct ExclusiveGuard {
    /// The connection that holds the lock (closed on drop, which releases it).
    _held: Option<sqlx::AnyConnection>,
}

impl ExclusiveGuard {
    pub(crate) fn new(held: Option<sqlx::AnyConnection>) -> Self {
        Self { _held: held }
    }
}

/// What became of a new transfer offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewTransfer {
    Stored,
    /// The charger is not the sender's (any more).
    NotTheSenders,
    /// Its charger has an open offer already.
    ChargerHasOpenOffer,
    /// Its receiver id has as many open offers as it may.
    ReceiverFull,
    /// Its sender has as many open offers to that receiver id as it may.
    PairFull,
}

/// A request's result to keep: [`ChargerTx::save_request_results`].
#[derive(Debug, Clone)]
pub struct KeptResult {
    pub device: DeviceId,
    /// The request id's JSON text.
    pub request_id: String,
    pub endpoint: String,
    pub result: StoredResult,
    /// The key version the request was made under.
    pub key_version: i64,
}

/// An unknown tag tapped on a charger, held back by a read-only [`ChargerTx`] for the
/// writer to record.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownTagNote {
    pub device: DeviceId,
    pub owner: OwnerId,
    pub uid: TagUid,
    pub at: DateTime<Utc>,
}

/// A transaction of the charger API: a batch of requests, each inside a savepoint, and
/// one commit for all of them (group commit).
#[async_trait]
pub trait ChargerTx: Send {
    /// Starts a request: a savepoint it can be rolled back to alone.
    async fn savepoint(&mut self) -> StoreResult<()>;
    /// Undoes the request since [`ChargerTx::savepoint`].
    async fn rollback_to_savepoint(&mut self) -> StoreResult<()>;
    /// Keeps the request's changes (until the commit).
    async fn release_savepoint(&mut self) -> StoreResult<()>;
    /// Commits the batch: durably (SQLite `synchronous=FULL`, Postgres' default).
    async fn commit(self: Box<Self>) -> StoreResult<()>;
    /// The unknown-tag sightings it held back, for the caller to record.
    fn held_notes(&mut self) -> Vec<UnknownTagNote>;
    /// Whether it is a read-only connection (from [`Store::begin_read`]).
    fn is_read_only(&self) -> bool;
    /// What its answers relied on, when it answered from memory ([`Store::begin_memory`]).
    fn basis(&self) -> Option<Basis>;
    /// Whether each basis still holds in this transaction: the database's `authz_epoch`
    /// is the one it was read at, and each tag it looked at has the active sessions it
    /// counted. Brings the read model up to what it read.
    async fn check_bases(&mut self, bases: &[Basis]) -> StoreResult<Vec<bool>>;

    /// The charger, as its requests need it, with the answer kept for its request
    /// `request_id` (the id's JSON text), if any, and the key version it was given under
    /// (None for answers kept before that was recorded): one query for all.
    async fn charger(
        &mut self,
        id: &DeviceId,
        request_id: &str,
    ) -> StoreResult<Option<(Charger, Option<(StoredResult, Option<i64>)>)>>;
    /// The stored result of request `request_id` (its id's JSON text) of `device`.
    async fn request_result(
        &mut self,
        device: &DeviceId,
        request_id: &str,
    ) -> StoreResult<Option<StoredResult>>;
    /// Keeps a request's result unless one is kept already (another instance answered the
    /// same request first; on Postgres this waits for its commit): None when this one is
    /// now kept, else the one in force.
    async fn save_request_result(
        &mut self,
        row: &KeptResult,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<StoredResult>>;
    /// Keeps several requests' results in one statement (the answers the read path made
    /// for one batch): for each, in order, None when it is now kept, else the one in force.
    async fn save_request_results(
        &mut self,
        results: &[KeptResult],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Option<StoredResult>>>;
    async fn set_device_boot(
        &mut self,
        id: &DeviceId,
        firmware: &str,
        model: &str,
    ) -> StoreResult<()>;
    async fn set_connector_state(
        &mut self,
        id: &DeviceId,
        connector: i64,
        state: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// A tag of `owner`: a charger sees only its owner's tags.
    async fn tag(&mut self, owner: &OwnerId, uid: &TagUid) -> StoreResult<Option<Tag>>;
    /// A tag of `owner` with its active sessions (another owner's sessions never count):
    /// one query for both, the hot path of `authorize`.
    async fn tag_with_active_sessions(
        &mut self,
        owner: &OwnerId,
        uid: &TagUid,
    ) -> StoreResult<Option<(Tag, i64)>>;
    /// Holds, until this transaction ends, what a live session start checks: the tag's
    /// active sessions (of its owner) and the connector. On PostgreSQL two transaction-scoped
    /// advisory locks, always in that order, so that starts racing on other writers or
    /// instances check one after the other; SQLite's one writer holds the database anyway.
    async fn lock_start(
        &mut self,
        owner: &OwnerId,
        uid: &TagUid,
        device: &DeviceId,
        connector: i64,
    ) -> StoreResult<()>;
    /// Inserts a tag (enrollment): bumps its owner's list version, clears a tombstone and
    /// the uid's unknown-tag records of that owner.
    async fn insert_tag(&mut self, tag: &Tag) -> StoreResult<()>;
    /// Notes a tag refused at `device` because nobody knows it. Held back (see
    /// [`ChargerTx::held_notes`]): the request path records it once the request's outcome
    /// is known, so that a refused request's rollback does not undo it.
    async fn note_unknown_tag(
        &mut self,
        device: &DeviceId,
        owner: &OwnerId,
        uid: &TagUid,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Records (or counts again) unknown-tag sightings, then keeps only the `keep` most
    /// recent sightings of each owner; returns how many it dropped.
    async fn record_unknown_tags(
        &mut self,
        notes: &[UnknownTagNote],
        keep: usize,
    ) -> StoreResult<u64>;
    /// Statements that changed data so far (a refused request must not have made any).
    fn writes(&self) -> u64;
    /// The active session on a connector, if any.
    async fn active_session_on(
        &mut self,
        device: &DeviceId,
        connector: i64,
    ) -> StoreResult<Option<i64>>;
    /// Inserts a session; returns its id, or None when the charger already has a session
    /// with this `local_id` (another writer or instance recorded the same offline start
    /// first; the transaction stays usable).
    async fn insert_session(&mut self, session: &NewSession) -> StoreResult<Option<i64>>;
    /// A session of `device` by its id or local id.
    async fn session(
        &mut self,
        device: &DeviceId,
        which: &SessionRef,
    ) -> StoreResult<Option<Session>>;
    /// Adds samples (a repeated timestamp is kept once) and sets the last meter reading
    /// and the time of the latest sample.
    async fn add_meter_samples(
        &mut self,
        session: i64,
        samples: &[crate::records::charging::Sample],
        last_meter_wh: i64,
        last_sample_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Closes a session with its bill and cost lines (as `disputed`, billed nothing, when
    /// the stop names a dispute).
    async fn stop_session(&mut self, session: i64, stop: &StopRecord) -> StoreResult<()>;
    /// Moves an active session's start back to an earlier time and reading (a station's
    /// start event that arrived after later ones).
    /// A stopped session made disputed for this reason: nothing billed (its cost lines
    /// gone) until an operator resolves it; false when it is not stopped any more.
    async fn dispute_stopped_session(&mut self, session: i64, reason: &str) -> StoreResult<bool>;
    async fn amend_session_start(
        &mut self,
        session: i64,
        started_at: DateTime<Utc>,
        meter_start_wh: i64,
    ) -> StoreResult<()>;
    /// The receiving owner of an accepted, unexpired offer of `device` with this code
    /// (a read: nothing changes).
    async fn claim_target(
        &mut self,
        device: &DeviceId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OwnerId>>;
    /// Uses the code of an accepted, unexpired offer of `device`: the charger moves to the
    /// offer's receiver (its tariff and tag limits of the old owner dropped, its other
    /// offers void, its next local list reset, the old owner remembered until `now` for
    /// sessions that started before). Returns the new owner, or None when no such offer
    /// matches (then nothing changed).
    async fn claim_device(
        &mut self,
        device: &DeviceId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OwnerId>>;
    /// Moves a device from key version `expected` to the next, with a new password hash,
    /// keeping the superseded password for a grace window (`superseded`); false (nothing
    /// changed) when its version is not `expected` any more.
    async fn set_device_credentials(
        &mut self,
        device: &DeviceId,
        expected: i64,
        password_hash: &str,
        superseded: &crate::records::charging::Superseded,
    ) -> StoreResult<bool>;
    /// The owner `device` had at `at`, with the tariff it had set for it, when that was
    /// before a move (None: the current owner).
    async fn owner_at(
        &mut self,
        device: &DeviceId,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(OwnerId, Option<TariffId>)>>;
    /// A tariff of `owner`: `id`, or its default when None.
    async fn tariff_of(
        &mut self,
        owner: &OwnerId,
        id: Option<&TariffId>,
    ) -> StoreResult<Option<Tariff>>;
    /// The charger has been told to start its local list over.
    async fn clear_list_reset(&mut self, device: &DeviceId) -> StoreResult<()>;
    /// Notes the most current per phase a session's car drew (dA), for its site.
    async fn note_drawn(&mut self, session: i64, drawn_da: i64) -> StoreResult<()>;
    /// Keeps (replaces) these configuration variables of an OCPP 2.0.1 station.
    async fn set_station_variables(
        &mut self,
        device: &DeviceId,
        variables: &[crate::records::devices::StationVariable],
    ) -> StoreResult<()>;
    /// An OCPP charger booted: marks it registered when it was Pending; its registration
    /// before this boot (Pending: its first boot; Rejected stays so).
    async fn register_ocpp(
        &mut self,
        device: &DeviceId,
    ) -> StoreResult<crate::records::devices::Registration>;
    /// The owner's list version and up to `limit` changes after `since`, oldest first.
    async fn local_list(
        &mut self,
        owner: &OwnerId,
        since: i64,
        limit: usize,
    ) -> StoreResult<LocalListPage>;
}

/// The answer given to an MQTT request: its code and plaintext JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    pub code: u16,
    pub body: String,
}

/// UTC milliseconds since the epoch, the schema's time representation.
pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp out of range: {ms}")))
}
