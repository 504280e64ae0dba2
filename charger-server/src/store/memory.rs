//! The authorize read model: chargers and tags in memory, so that the charger API's
//! `authorize` needs no database read (docs/storage.md, "Authorize from memory").
//!
//! Entries are filled by the read path's own reads (a charger, a tag with its active
//! sessions), each stamped with the database's `authz_epoch` read in the same statement.
//! Triggers raise that counter in the transaction of every change an authorize depends on
//! (a charger's owner, connectors, keys, superseded credentials, its deletion; any tag and
//! the chargers it is limited to), so no write path can forget to. The model holds the
//! entries of one epoch only: a fill from a later epoch empties it first, and a fill from
//! an earlier one is not kept.
//!
//! An answer made from memory ([`MemoryTx`]) is not trusted yet: it carries its [`Basis`]
//! (the epoch and the active-session counts it used), and the batch that keeps it checks
//! the basis against the database in its own transaction
//! ([`ChargerTx::check_bases`]) before anything is published. A basis that no longer holds
//! (another instance blocked the tag, rotated the key, a session started elsewhere) sends
//! the request down the database path again. So a stale entry is never answered from,
//! whatever the number of instances, and no notification channel is needed for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ChargerTx, KeptResult, StoreError, StoreResult, StoredResult, UnknownTagNote};
use crate::ids::{DeviceId, OwnerId, TagUid, TariffId};
use crate::records::billing::Tariff;
use crate::records::charging::{
    Charger, LocalListPage, NewSession, Session, SessionRef, StopRecord,
};
use crate::records::tags::Tag;

/// Entries kept at most, chargers and tags together (`CHARGER_READ_MODEL_ENTRIES`).
pub const DEFAULT_ENTRIES: usize = 200_000;

/// A tag limited to more chargers than this is not kept (its `authorize` reads the
/// database): the cap counts entries, and this keeps each one small.
const MAX_TAG_DEVICES: usize = 32;

/// What an answer made from memory relied on, to check in the batch that keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basis {
    /// The `authz_epoch` its entries were read at.
    pub epoch: i64,
    /// The active sessions of each tag it looked at, as it counted them.
    pub counts: Vec<(OwnerId, TagUid, i64)>,
}

#[derive(Default)]
struct Inner {
    epoch: i64,
    chargers: HashMap<DeviceId, Charger>,
    tags: HashMap<(OwnerId, TagUid), (Tag, i64)>,
}

impl Inner {
    fn len(&self) -> usize {
        self.chargers.len() + self.tags.len()
    }

    /// Whether an entry read at `epoch` may go in (emptying the model for a later epoch);
    /// `replacing`: its key is in already (the cap does not stop it).
    fn admit(&mut self, epoch: i64, cap: usize, replacing: bool) -> bool {
        if epoch > self.epoch {
            self.chargers.clear();
            self.tags.clear();
            self.epoch = epoch;
        }
        if epoch < self.epoch {
            return false;
        }
        if !replacing && self.len() >= cap {
            crate::metrics::read_model("full");
            return false;
        }
        true
    }
}

/// The read model of one store.
pub struct ReadModel {
    inner: Mutex<Inner>,
    cap: AtomicUsize,
    /// Answers made from memory and published (their basis held).
    answered: AtomicU64,
}

impl Default for ReadModel {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            cap: AtomicUsize::new(DEFAULT_ENTRIES),
            answered: AtomicU64::new(0),
        }
    }
}

impl ReadModel {
    /// An answer made from memory held and is published.
    pub fn note_answered(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        crate::metrics::read_model("hit");
    }

    /// Answers made from memory and published so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Keeps at most `entries` (0: answers nothing from memory).
    pub fn set_cap(&self, entries: usize) {
        self.cap.store(entries, Ordering::Relaxed);
        if entries == 0 {
            self.forget_all();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves maps that are still whole: take them on.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A charger read at `epoch`.
    pub(crate) fn fill_charger(&self, epoch: i64, charger: &Charger) {
        let cap = self.cap.load(Ordering::Relaxed);
        let mut inner = self.lock();
        let replacing = inner.chargers.contains_key(&charger.id);
        if inner.admit(epoch, cap, replacing) {
            inner.chargers.insert(charger.id.clone(), charger.clone());
        }
    }

    /// A tag and its active sessions, read at `epoch`.
    pub(crate) fn fill_tag(&self, epoch: i64, tag: &Tag, active: i64) {
        if tag.devices.len() > MAX_TAG_DEVICES {
            return;
        }
        let cap = self.cap.load(Ordering::Relaxed);
        let mut inner = self.lock();
        let key = (tag.owner.clone(), tag.uid.clone());
        let replacing = inner.tags.contains_key(&key);
        if inner.admit(epoch, cap, replacing) {
            inner.tags.insert(key, (tag.clone(), active));
        }
    }

    /// A transaction saw the database at `epoch`: entries of an earlier one go. The
    /// model's epoch stays (that transaction may not commit); the next fill sets it.
    pub(crate) fn forget_before(&self, epoch: i64) {
        let mut inner = self.lock();
        if inner.epoch < epoch {
            inner.chargers.clear();
            inner.tags.clear();
        }
    }

    pub fn forget_all(&self) {
        let mut inner = self.lock();
        inner.chargers.clear();
        inner.tags.clear();
    }

    /// Whether it is off (`CHARGER_READ_MODEL_ENTRIES` 0).
    pub fn is_off(&self) -> bool {
        self.cap.load(Ordering::Relaxed) == 0
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A [`ChargerTx`] that answers from memory.
    pub(crate) fn tx(self: &std::sync::Arc<Self>) -> MemoryTx {
        MemoryTx {
            model: self.clone(),
            basis: None,
        }
    }
}

/// A read-only [`ChargerTx`] over the read model: it knows a charger (never a kept answer:
/// the batch's insert finds one) and a tag with its active sessions; anything else, or an
/// entry it lacks, is [`StoreError::Miss`], and the request goes to the database.
pub struct MemoryTx {
    model: std::sync::Arc<ReadModel>,
    basis: Option<Basis>,
}

impl MemoryTx {
    /// Every lookup of one answer must come from one epoch.
    fn at(&mut self, epoch: i64) -> StoreResult<&mut Basis> {
        let basis = self.basis.get_or_insert_with(|| Basis {
            epoch,
            counts: Vec::new(),
        });
        if basis.epoch != epoch {
            return Err(StoreError::Miss);
        }
        Ok(basis)
    }
}

#[async_trait]
impl ChargerTx for MemoryTx {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        Ok(())
    }

    fn held_notes(&mut self) -> Vec<UnknownTagNote> {
        Vec::new()
    }

    fn is_read_only(&self) -> bool {
        true
    }

    fn writes(&self) -> u64 {
        0
    }

    fn basis(&self) -> Option<Basis> {
        self.basis.clone()
    }

    async fn charger(
        &mut self,
        id: &DeviceId,
        _request_id: &str,
    ) -> StoreResult<Option<(Charger, Option<(StoredResult, Option<i64>)>)>> {
        let found = {
            let inner = self.model.lock();
            inner.chargers.get(id).map(|c| (inner.epoch, c.clone()))
        };
        let Some((epoch, charger)) = found else {
            crate::metrics::read_model("miss");
            return Err(StoreError::Miss);
        };
        self.at(epoch)?;
        Ok(Some((charger, None)))
    }

    async fn tag_with_active_sessions(
        &mut self,
        owner: &OwnerId,
        uid: &TagUid,
    ) -> StoreResult<Option<(Tag, i64)>> {
        let found = {
            let inner = self.model.lock();
            inner
                .tags
                .get(&(owner.clone(), uid.clone()))
                .map(|(t, n)| (inner.epoch, t.clone(), *n))
        };
        let Some((epoch, tag, active)) = found else {
            crate::metrics::read_model("miss");
            return Err(StoreError::Miss);
        };
        self.at(epoch)?
            .counts
            .push((owner.clone(), uid.clone(), active));
        Ok(Some((tag, active)))
    }

    async fn check_bases(&mut self, _bases: &[Basis]) -> StoreResult<Vec<bool>> {
        Err(StoreError::Miss)
    }

    async fn savepoint(&mut self) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn release_savepoint(&mut self) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn request_result(
        &mut self,
        _device: &DeviceId,
        _request_id: &str,
    ) -> StoreResult<Option<StoredResult>> {
        Err(StoreError::Miss)
    }

    async fn save_request_result(
        &mut self,
        _row: &KeptResult,
        _now: DateTime<Utc>,
    ) -> StoreResult<Option<StoredResult>> {
        Err(StoreError::Miss)
    }

    async fn save_request_results(
        &mut self,
        _results: &[KeptResult],
        _now: DateTime<Utc>,
    ) -> StoreResult<Vec<Option<StoredResult>>> {
        Err(StoreError::Miss)
    }

    async fn set_device_boot(
        &mut self,
        _id: &DeviceId,
        _firmware: &str,
        _model: &str,
    ) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn set_connector_state(
        &mut self,
        _id: &DeviceId,
        _connector: i64,
        _state: &str,
        _error: Option<&str>,
        _now: DateTime<Utc>,
    ) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn tag(&mut self, _owner: &OwnerId, _uid: &TagUid) -> StoreResult<Option<Tag>> {
        Err(StoreError::Miss)
    }

    async fn lock_start(
        &mut self,
        _owner: &OwnerId,
        _uid: &TagUid,
        _device: &DeviceId,
        _connector: i64,
    ) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn insert_tag(&mut self, _tag: &Tag) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn note_unknown_tag(
        &mut self,
        _device: &DeviceId,
        _owner: &OwnerId,
        _uid: &TagUid,
        _now: DateTime<Utc>,
    ) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn record_unknown_tags(
        &mut self,
        _notes: &[UnknownTagNote],
        _keep: usize,
    ) -> StoreResult<u64> {
        Err(StoreError::Miss)
    }

    async fn active_session_on(
        &mut self,
        _device: &DeviceId,
        _connector: i64,
    ) -> StoreResult<Option<i64>> {
        Err(StoreError::Miss)
    }

    async fn insert_session(&mut self, _session: &NewSession) -> StoreResult<Option<i64>> {
        Err(StoreError::Miss)
    }

    async fn session(
        &mut self,
        _device: &DeviceId,
        _which: &SessionRef,
    ) -> StoreResult<Option<Session>> {
        Err(StoreError::Miss)
    }

    async fn add_meter_samples(
        &mut self,
        _session: i64,
        _samples: &[crate::records::charging::Sample],
        _last_meter_wh: i64,
        _last_sample_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn stop_session(&mut self, _session: i64, _stop: &StopRecord) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn dispute_stopped_session(&mut self, _session: i64, _reason: &str) -> StoreResult<bool> {
        Err(StoreError::Miss)
    }

    async fn amend_session_start(
        &mut self,
        _session: i64,
        _started_at: DateTime<Utc>,
        _meter_start_wh: i64,
    ) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn claim_target(
        &mut self,
        _device: &DeviceId,
        _code_hash: &str,
        _now: DateTime<Utc>,
    ) -> StoreResult<Option<OwnerId>> {
        Err(StoreError::Miss)
    }

    async fn claim_device(
        &mut self,
        _device: &DeviceId,
        _code_hash: &str,
        _now: DateTime<Utc>,
    ) -> StoreResult<Option<OwnerId>> {
        Err(StoreError::Miss)
    }

    async fn set_device_credentials(
        &mut self,
        _device: &DeviceId,
        _expected: i64,
        _password_hash: &str,
        _superseded: &crate::records::charging::Superseded,
    ) -> StoreResult<bool> {
        Err(StoreError::Miss)
    }

    async fn owner_at(
        &mut self,
        _device: &DeviceId,
        _at: DateTime<Utc>,
    ) -> StoreResult<Option<(OwnerId, Option<TariffId>)>> {
        Err(StoreError::Miss)
    }

    async fn tariff_of(
        &mut self,
        _owner: &OwnerId,
        _id: Option<&TariffId>,
    ) -> StoreResult<Option<Tariff>> {
        Err(StoreError::Miss)
    }

    async fn clear_list_reset(&mut self, _device: &DeviceId) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn note_drawn(&mut self, _session: i64, _drawn_da: i64) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn set_station_variables(
        &mut self,
        _device: &DeviceId,
        _variables: &[crate::records::devices::StationVariable],
    ) -> StoreResult<()> {
        Err(StoreError::Miss)
    }

    async fn register_ocpp(
        &mut self,
        _device: &DeviceId,
    ) -> StoreResult<crate::records::devices::Registration> {
        Err(StoreError::Miss)
    }

    async fn local_list(
        &mut self,
        _owner: &OwnerId,
        _since: i64,
        _limit: usize,
    ) -> StoreResult<LocalListPage> {
        Err(StoreError::Miss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tags::{TagRole, TagStatus};

    fn tag(uid: &str, devices: usize) -> Tag {
        let now = chrono::Utc::now();
        Tag {
            uid: TagUid::parse(uid).expect("uid"),
            owner: OwnerId::parse("acme").expect("owner"),
            role: TagRole::Driver,
            status: TagStatus::Active,
            expires_at: None,
            group: None,
            devices: (0..devices)
                .map(|i| DeviceId::parse(&format!("d-{i}")).expect("device"))
                .collect(),
            max_sessions: 1,
            label: None,
            list_version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    fn has_tag(model: &ReadModel, t: &Tag) -> bool {
        model
            .lock()
            .tags
            .contains_key(&(t.owner.clone(), t.uid.clone()))
    }

    #[test]
    fn entries_are_of_one_epoch_bounded_and_small() {
        let model = ReadModel::default();
        let (a, b) = (tag("0000000A", 2), tag("0000000B", 0));
        model.fill_tag(5, &a, 0);
        assert!(has_tag(&model, &a));
        // An earlier epoch's read is not kept; a later one's empties the model first.
        model.fill_tag(4, &b, 0);
        assert!(!has_tag(&model, &b));
        model.fill_tag(6, &b, 0);
        assert!(has_tag(&model, &b) && !has_tag(&model, &a));
        // A tag limited to many chargers is not kept (each entry stays small).
        let wide = tag("0000000C", MAX_TAG_DEVICES + 1);
        model.fill_tag(6, &wide, 0);
        assert!(!has_tag(&model, &wide));
        // The cap: a new entry beyond it is not kept; 0 turns the model off.
        model.set_cap(1);
        model.fill_tag(6, &a, 0);
        assert!(!has_tag(&model, &a));
        model.set_cap(0);
        assert!(model.is_off() && model.is_empty());
    }
}
