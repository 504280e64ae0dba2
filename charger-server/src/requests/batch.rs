//! Group commit of charger requests, and the read path.
//!
//! Requests queue up while the previous batch commits; a writer then takes up to
//! [`MAX_BATCH`] of them and runs them in one transaction, each inside a savepoint, so a
//! failing request rolls back alone. Each request's change and the answer kept for its
//! `(device, id)` are in the same transaction, and nothing is published before the commit
//! has returned: an answered request is durable (SQLite `synchronous=FULL`). One commit
//! (one fsync) serves the whole batch.
//!
//! A device's requests always go to the same writer, in the order the transport delivered
//! them, so an offline charger's replay (start, values, stop) is applied in order. SQLite
//! has one writer (it has one write lock anyway); Postgres has several.
//!
//! Requests that change nothing ([`READ_ENDPOINTS`]: `authorize`) take the read path:
//! several run at once on read-only connections, and the writer only keeps their answers
//! (and any unknown-tag sightings) in its next batch. They are still published only after
//! that commit, so a repeat always gets the kept answer.

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;

use charger_protocol::{
    open_request_v2, seal_response, seal_response_v2, DeviceKey, RequestId, ResponseEnvelope,
    Version,
};
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use super::{ChargerRequest as Job, Marks, Outcome, Transport};
use crate::charging::ENDPOINTS;
use crate::error::Error;
use crate::ids::DeviceId;
use crate::service::Service;
use crate::store::{
    Backend, Basis, ChargerTx, KeptResult, StoreError, StoredResult, UnknownTagNote,
};

/// Most requests in one transaction.
pub const MAX_BATCH: usize = 256;
/// Requests waiting per writer before the dispatcher waits (back-pressure on the chargers'
/// connections).
const QUEUE: usize = 16_384;
/// Endpoints answered on the read path.
pub const READ_ENDPOINTS: &[&str] = &["authorize"];

/// What a writer does with one queued item.
#[derive(Clone)]
enum Work {
    /// Runs the request in the batch's transaction.
    Run(Job),
    /// Keeps an answer the read path made.
    Keep(Kept),
}

/// An answer made on the read path, to keep before it is published.
#[derive(Clone)]
struct Kept {
    device: DeviceId,
    request_id: String,
    endpoint: String,
    result: StoredResult,
    key_version: i64,
    notes: Vec<UnknownTagNote>,
    seal: Sealer,
    /// Made from the read model: what it relied on, for the batch to check, and the
    /// request, to run in the batch instead should that not hold.
    check: Option<Box<(Basis, Job)>>,
}

/// What sealing an answer needs.
#[derive(Clone)]
struct Sealer {
    key: DeviceKey,
    id: RequestId,
    res_topic: String,
    /// The endpoint as a metrics label.
    endpoint: &'static str,
    /// The endpoint itself (v2 binds it into the answer's associated data).
    name: String,
    /// The answer goes in the request's envelope version.
    version: Version,
    received: std::time::Instant,
    /// The connection the request came on.
    conn: Option<i64>,
}

impl Sealer {
    /// An unsealed answer (`data` ""): 401, in the request's envelope version.
    fn refused(self, code: u16) -> Done {
        unsealed(
            self.res_topic,
            self.id,
            self.version,
            self.endpoint,
            self.received,
            code,
        )
    }

    fn done(self, code: u16, body: &str, revoke: Option<DeviceId>) -> Option<Done> {
        let sealed = match self.version {
            Version::V1 => seal_response(&self.key, self.id, code, body.as_bytes()),
            Version::V2 => seal_response_v2(&self.key, &self.name, self.id, code, body.as_bytes()),
        };
        let sealed = match sealed {
            Ok(res) => to_json(&res),
            Err(e) => {
                tracing::error!(error = %e, "cannot seal a response");
                return None;
            }
        };
        Some(sealed).map(|payload| Done {
            out: Outcome {
                topic: self.res_topic,
                payload,
                revoke,
                conn: self.conn,
            },
            endpoint: self.endpoint,
            code,
            received: self.received,
        })
    }
}

/// The writers' queues (a device always maps to the same one) and the read path.
pub(super) struct Writers {
    queues: Arc<Vec<mpsc::Sender<Work>>>,
    readers: Arc<Semaphore>,
    service: Service,
    transport: Arc<dyn Transport>,
    marks: Option<Arc<Marks>>,
}

impl Writers {
    pub(super) async fn send(&self, job: Job) {
        if !READ_ENDPOINTS.contains(&job.endpoint.as_str()) {
            queue(&self.queues, Work::Run(job)).await;
            return;
        }
        // From memory first: no database read at all. What the read model cannot answer
        // (an entry it lacks, a refusal, a stop's session) goes to the database.
        if let Some(mut memory) = self.service.store().begin_memory() {
            if let Ok(Step::Computed(c)) = answer(
                &self.service,
                self.marks.as_deref(),
                memory.as_mut(),
                job.clone(),
            )
            .await
            {
                if let (true, Some(basis)) = (c.code < 500, memory.basis()) {
                    queue(
                        &self.queues,
                        Work::Keep(c.kept(Some(Box::new((basis, job))))),
                    )
                    .await;
                    return;
                }
            }
        }
        let Ok(permit) = self.readers.clone().acquire_owned().await else {
            return;
        };
        let (service, publisher, queues, marks) = (
            self.service.clone(),
            self.transport.clone(),
            self.queues.clone(),
            self.marks.clone(),
        );
        tokio::spawn(async move {
            let head = Head::of_job(&job);
            match read(&service, marks.as_deref(), job).await {
                Ok(Step::Drop) => {}
                Ok(Step::Answer(d)) => publish(&service, &publisher, d).await,
                Ok(Step::Computed(c)) if c.code >= 500 => {
                    let body = c.body.to_string();
                    if let Some(d) = c.seal.done(c.code, &body, None) {
                        publish(&service, &publisher, d).await;
                    }
                }
                Ok(Step::Computed(c)) => queue(&queues, Work::Keep(c.kept(None))).await,
                Err(e) => {
                    crate::metrics::db_error();
                    tracing::error!(error = %e, "read path failed; answered 503");
                    publish(&service, &publisher, head.unavailable()).await;
                }
            }
            drop(permit);
        });
    }
}

/// Queues work for its device's writer.
async fn queue(queues: &[mpsc::Sender<Work>], work: Work) {
    let device = match &work {
        Work::Run(job) => &job.device,
        Work::Keep(kept) => &kept.device,
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    device.hash(&mut h);
    let n = queues.len().max(1) as u64;
    let i = usize::try_from(h.finish() % n).unwrap_or(0);
    if let Some(q) = queues.get(i) {
        let _ = q.send(work).await;
    }
}

async fn publish(service: &Service, transport: &Arc<dyn Transport>, d: Done) {
    transport.deliver(d.out).await;
    service
        .metrics()
        .request(d.endpoint, d.code, d.received.elapsed());
}

/// Starts the writer tasks and the read path. `marks`: behind an external broker, where
/// requests whose key checks out mark their charger seen.
pub(super) fn start(
    service: Service,
    transport: Arc<dyn Transport>,
    marks: Option<Arc<Marks>>,
) -> Writers {
    let (count, readers) = match service.store().backend() {
        // The pool has 16 connections: one for the writer, six readers, the rest for
        // REST. More readers only add threads contending for the CPU (docs/benchmarks.md).
        Backend::Sqlite => (1, 6),
        Backend::Postgres => (4, 8),
    };
    let queues = (0..count)
        .map(|_| {
            let (tx, mut rx) = mpsc::channel::<Work>(QUEUE);
            let service = service.clone();
            let transport = transport.clone();
            let marks = marks.clone();
            tokio::spawn(async move {
                let mut work = Vec::with_capacity(MAX_BATCH);
                loop {
                    if work.is_empty() {
                        if rx.recv_many(&mut work, MAX_BATCH).await == 0 {
                            break;
                        }
                    } else {
                        // Requests a batch sent back (answers from memory that did not
                        // hold) go first, with whatever else is waiting.
                        while work.len() < MAX_BATCH {
                            let Ok(w) = rx.try_recv() else { break };
                            work.push(w);
                        }
                    }
                    let (done, again) = run_batch(&service, marks.as_deref(), &mut work).await;
                    for d in done {
                        publish(&service, &transport, d).await;
                    }
                    work.extend(again.into_iter().map(Work::Run));
                }
            });
            tx
        })
        .collect();
    Writers {
        queues: Arc::new(queues),
        readers: Arc::new(Semaphore::new(readers)),
        service,
        transport,
        marks,
    }
}

/// An answer ready to publish once its batch has committed.
struct Done {
    out: Outcome,
    endpoint: &'static str,
    code: u16,
    received: std::time::Instant,
}

/// Runs `work` (drained) in one transaction; returns what to publish. When the database
/// fails (unreachable, the commit refused) nothing is kept and every request is answered
/// 503 with empty `data`: the chargers retry with the same ids.
///
/// The batch first runs without savepoints, its answers kept together in one insert at
/// the end (three statements fewer per request: the savepoint, its release, the insert of
/// its answer). Should a request need its own rollback (it failed with a 5xx, another
/// instance kept an answer to it first, or it is repeated within the batch), the whole
/// transaction is rolled back and the batch runs again, each request in a savepoint with
/// its answer kept at once.
async fn run_batch(
    service: &Service,
    marks: Option<&Marks>,
    work: &mut Vec<Work>,
) -> (Vec<Done>, Vec<Job>) {
    let count = work.len();
    let heads: Vec<Head> = work.iter().map(Head::of).collect();
    let items = std::mem::take(work);
    let outcome = if items.iter().any(|w| matches!(w, Work::Run(_))) {
        // A busy database (a deadlock with another instance's batch, a lock held by a hung
        // one) fails the whole transaction: the batch runs again, a few times, before
        // anything is answered 503.
        let mut tries = 0;
        loop {
            let last = tries == BUSY_RETRIES;
            let mut outcome = attempt(service, marks, items.clone(), Savepoints::Off).await;
            if let Err(Failure::Rollback) = &outcome {
                let mode = if last {
                    Savepoints::Last
                } else {
                    Savepoints::On
                };
                outcome = attempt(service, marks, items.clone(), mode).await;
            }
            let busy = match &outcome {
                Err(Failure::Busy) => true,
                Err(Failure::Store(_, e)) => e.is_transient(),
                _ => false,
            };
            if !busy || last {
                break outcome;
            }
            tries += 1;
            crate::metrics::db_retry();
            let pause = rand::random::<u64>() % (25 * tries as u64) + 5;
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    } else {
        attempt(service, marks, items, Savepoints::Off).await
    };
    match outcome {
        Ok(answered) => answered,
        Err(failure) => {
            crate::metrics::db_error();
            match failure {
                Failure::Store(what, e) => {
                    tracing::error!(error = %e, requests = count, "{what}; answered 503");
                }
                Failure::Rollback | Failure::Busy => {
                    tracing::error!(
                        requests = count,
                        "a request could not be undone; answered 503"
                    );
                }
            }
            (
                heads.into_iter().map(Head::unavailable).collect(),
                Vec::new(),
            )
        }
    }
}

/// How often a batch that met a busy database runs again before answering 503.
const BUSY_RETRIES: usize = 3;

/// Whether each request of a batch runs in a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Savepoints {
    Off,
    /// In savepoints; a request that met a busy database sends the batch round again.
    On,
    /// In savepoints, on the batch's last try: such a request is answered 503.
    Last,
}

/// Why a batch's transaction did not commit.
enum Failure {
    /// The database failed (what was being done, and the error).
    Store(&'static str, StoreError),
    /// A request needs its own rollback, and the batch ran without savepoints.
    Rollback,
    /// A request met a busy database (503): the batch runs again.
    Busy,
}

/// One try at a batch: its transaction, its requests, the read path's answers, the commit.
/// Returns what to publish, and the requests answered from memory whose basis did not
/// hold, to run in the next batch.
async fn attempt(
    service: &Service,
    marks: Option<&Marks>,
    items: Vec<Work>,
    savepoints: Savepoints,
) -> Result<(Vec<Done>, Vec<Job>), Failure> {
    let store = |what| move |e| Failure::Store(what, e);
    let mut tx = service
        .store()
        .begin()
        .await
        .map_err(store("cannot open a transaction"))?;
    let mut answered = Vec::with_capacity(items.len());
    let mut kept = Vec::new();
    // Without savepoints, answers are kept together at the end: a request repeated within
    // the batch would not see its first answer, so it sends the batch to the savepoints.
    let mut ids = std::collections::HashSet::new();
    for item in items {
        match item {
            Work::Run(job) => {
                let id = (job.device.clone(), job.envelope.id.json_text());
                if savepoints == Savepoints::Off && !ids.insert(id) {
                    return Err(Failure::Rollback);
                }
                answered.extend(one(service, marks, tx.as_mut(), job, savepoints).await?);
            }
            Work::Keep(k) => kept.push(k),
        }
    }
    // The unkept answers' rows go into the insert; each slot remembers where its row is.
    let mut rows = Vec::new();
    let slots: Vec<Slot> = answered
        .into_iter()
        .map(|a| match a {
            Answered::Ready(d) => Slot::Ready(d),
            Answered::Unkept(u) => {
                rows.push(u.row);
                Slot::Kept(rows.len() - 1, u.seal, u.revoke)
            }
        })
        .collect();
    if !rows.is_empty() {
        let saved = tx
            .save_request_results(&rows, service.now())
            .await
            .map_err(store("batch failed"))?;
        if saved.iter().any(Option::is_some) {
            // Another instance kept an answer to one of them first.
            return Err(Failure::Rollback);
        }
    }
    let mut done: Vec<Done> = slots
        .into_iter()
        .filter_map(|slot| match slot {
            Slot::Ready(d) => Some(d),
            Slot::Kept(i, seal, revoke) => {
                let result = &rows.get(i)?.result;
                seal.done(result.code, &result.body, revoke)
            }
        })
        .collect();
    let (answers, again) = keep(service, tx.as_mut(), kept)
        .await
        .map_err(store("batch failed"))?;
    done.extend(answers);
    tx.commit().await.map_err(store("batch commit failed"))?;
    Ok((done, again))
}

/// A request's answer within its batch.
enum Answered {
    /// Kept already (or not to be kept): ready to publish after the commit.
    Ready(Done),
    /// To keep with the batch's other answers (a batch without savepoints).
    Unkept(Unkept),
}

struct Unkept {
    row: KeptResult,
    seal: Sealer,
    revoke: Option<DeviceId>,
}

/// An answer of the batch in its place: ready, or sealed from the row kept at this index.
enum Slot {
    Ready(Done),
    Kept(usize, Sealer, Option<DeviceId>),
}

/// An answer without sealed data, ready to publish.
fn unsealed(
    topic: String,
    id: RequestId,
    version: Version,
    endpoint: &'static str,
    received: std::time::Instant,
    code: u16,
) -> Done {
    Done {
        out: Outcome {
            topic,
            payload: to_json(&ResponseEnvelope::unsealed(Some(id), version, code)),
            revoke: None,
            conn: None,
        },
        endpoint,
        code,
        received,
    }
}

/// What answering a request without the database needs.
struct Head {
    res_topic: String,
    id: RequestId,
    version: Version,
    endpoint: &'static str,
    received: std::time::Instant,
}

impl Head {
    fn of(work: &Work) -> Head {
        match work {
            Work::Run(job) => Head::of_job(job),
            Work::Keep(kept) => Head {
                res_topic: kept.seal.res_topic.clone(),
                id: kept.seal.id.clone(),
                version: kept.seal.version,
                endpoint: kept.seal.endpoint,
                received: kept.seal.received,
            },
        }
    }

    fn of_job(job: &Job) -> Head {
        Head {
            res_topic: job.res_topic.clone(),
            id: job.envelope.id.clone(),
            version: job.envelope.version(),
            endpoint: endpoint_label(&job.endpoint),
            received: job.received,
        }
    }

    /// 503, unsealed (without the database the device key's version is unknown).
    fn unavailable(self) -> Done {
        unsealed(
            self.res_topic,
            self.id,
            self.version,
            self.endpoint,
            self.received,
            503,
        )
    }
}

/// Keeps the read path's answers of one batch, in one statement (a repeat that got there
/// first wins), with the unknown-tag sightings they held back.
///
/// An answer made from memory is kept only if its basis holds in this transaction
/// ([`ChargerTx::check_bases`]); one whose basis does not hold, or whose request has an
/// answer kept already (which the database path reads with its key version), is returned
/// to run in the next batch instead, and nothing of it is published.
async fn keep(
    service: &Service,
    tx: &mut dyn ChargerTx,
    kept: Vec<Kept>,
) -> Result<(Vec<Done>, Vec<Job>), StoreError> {
    if kept.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let bases: Vec<Basis> = kept
        .iter()
        .filter_map(|k| k.check.as_ref().map(|c| c.0.clone()))
        .collect();
    let mut holds = tx.check_bases(&bases).await?.into_iter();
    let mut again = Vec::new();
    let mut fresh = Vec::with_capacity(kept.len());
    for k in kept {
        match k.check {
            Some(check) if !holds.next().unwrap_or(false) => {
                crate::metrics::read_model("stale");
                again.push(check.1);
            }
            _ => fresh.push(k),
        }
    }
    let notes: Vec<UnknownTagNote> = fresh.iter().flat_map(|k| k.notes.clone()).collect();
    record_notes(service, tx, &notes).await?;
    let (rows, rest): (Vec<KeptResult>, Vec<(Sealer, Option<Job>)>) = fresh
        .into_iter()
        .map(|k| {
            let row = KeptResult {
                device: k.device,
                request_id: k.request_id,
                endpoint: k.endpoint,
                result: k.result,
                key_version: k.key_version,
            };
            (row, (k.seal, k.check.map(|c| c.1)))
        })
        .unzip();
    let saved = tx.save_request_results(&rows, service.now()).await?;
    let mut done = Vec::with_capacity(rows.len());
    for ((row, saved), (seal, memory)) in rows.into_iter().zip(saved).zip(rest) {
        match (saved, memory) {
            (Some(_), Some(job)) => again.push(job),
            (saved, memory) => {
                if memory.is_some() {
                    service.store().read_model().note_answered();
                }
                let result = saved.unwrap_or(row.result);
                done.extend(seal.done(result.code, &result.body, None));
            }
        }
    }
    Ok((done, again))
}

/// Records unknown-tag sightings a request held back (whatever its outcome), within the
/// owner's cap.
async fn record_notes(
    service: &Service,
    tx: &mut dyn ChargerTx,
    notes: &[UnknownTagNote],
) -> Result<(), StoreError> {
    if notes.is_empty() {
        return Ok(());
    }
    let dropped = tx
        .record_unknown_tags(notes, service.limits.unknown_tags_per_owner)
        .await?;
    crate::metrics::limit_add(crate::metrics::Limit::UnknownTags, dropped);
    Ok(())
}

/// Where a request stands after its checks and its handler.
enum Step {
    /// Nothing to answer (deleted charger, former owner's topic).
    Drop,
    /// Answered without running the handler (401, a kept answer).
    Answer(Done),
    /// The handler's answer, not kept yet.
    Computed(Computed),
}

struct Computed {
    device: DeviceId,
    request_id: String,
    endpoint: String,
    /// The key version the request opened under (its kept answer is for that key only).
    key_version: i64,
    code: u16,
    body: serde_json::Value,
    /// The charger's credentials changed (a claim or a rekey): close it after the answer.
    claimed: bool,
    notes: Vec<UnknownTagNote>,
    seal: Sealer,
}

impl Computed {
    /// The answer, to keep in the batch; `check`: made from memory.
    fn kept(self, check: Option<Box<(Basis, Job)>>) -> Kept {
        Kept {
            device: self.device,
            request_id: self.request_id,
            endpoint: self.endpoint,
            result: StoredResult {
                code: self.code,
                body: self.body.to_string(),
            },
            key_version: self.key_version,
            notes: self.notes,
            seal: self.seal,
            check,
        }
    }
}

/// Whose key a request opened under.
enum Keyed {
    /// The charger's key now: the params.
    Current(Result<serde_json::Value, Error>),
    /// The key its last claim or rekey replaced, within the grace window.
    Superseded,
    /// Neither: the code to answer unsealed (401, or 426 for a v1 request of a charger
    /// that must speak v2, with the right key).
    Refused(u16),
}

/// Checks that the request comes from the key holder: v1 shows the key, v2's params open
/// under it. The current key first, then (within the grace window) the superseded one.
fn check_key(
    service: &Service,
    job: &Job,
    charger: &crate::charging::Charger,
    now: chrono::DateTime<chrono::Utc>,
) -> Keyed {
    let opens = |key: &DeviceKey| -> Option<Result<serde_json::Value, Error>> {
        match job.envelope.version() {
            Version::V1 => DeviceKey::from_hex(&job.envelope.key)
                .ok()
                .is_some_and(|p| p.ct_eq(key))
                .then(|| Ok(job.envelope.data.clone())),
            Version::V2 => open_request_v2(key, &job.endpoint, &job.envelope)
                .ok()
                .map(|plain| {
                    serde_json::from_slice::<serde_json::Value>(&plain)
                        .map_err(|_| Error::invalid("data", "the sealed params are not JSON"))
                }),
        }
    };
    let current = service.device_key(&job.device, charger.key_version);
    if let Some(params) = opens(&current) {
        if charger.require_v2 && job.envelope.version() == Version::V1 {
            tracing::info!(device = %job.device, endpoint = %job.endpoint, "v1 request from a charger that must speak v2");
            return Keyed::Refused(426);
        }
        return Keyed::Current(params);
    }
    if let Some(old) = charger.superseded.as_ref().filter(|s| s.until > now) {
        let key = service.device_key(&job.device, old.key_version);
        if opens(&key).is_some() && !(charger.require_v2 && job.envelope.version() == Version::V1) {
            return Keyed::Superseded;
        }
    }
    tracing::info!(device = %job.device, endpoint = %job.endpoint, "wrong key");
    Keyed::Refused(401)
}

/// The charger, the key check, a kept answer, the owner check, then the handler.
async fn answer(
    service: &Service,
    marks: Option<&Marks>,
    tx: &mut dyn ChargerTx,
    job: Job,
) -> Result<Step, StoreError> {
    let id = job.envelope.id.clone();
    let request_id = id.json_text();
    let Some((charger, kept)) = tx.charger(&job.device, &request_id).await? else {
        // Deleted after it connected; nothing to answer with.
        return Ok(Step::Drop);
    };
    let version = job.envelope.version();
    let mut seal = Sealer {
        key: service.device_key(&job.device, charger.key_version),
        id: id.clone(),
        res_topic: job.res_topic.clone(),
        endpoint: endpoint_label(&job.endpoint),
        name: job.endpoint.clone(),
        version,
        received: job.received,
        conn: job.conn,
    };
    let params = match check_key(service, &job, &charger, service.now()) {
        Keyed::Current(params) => params,
        Keyed::Refused(code) => return Ok(Step::Answer(seal.refused(code))),
        Keyed::Superseded => {
            // The old credentials may repeat the exchange that replaced them, under the
            // old owner's topics, and read its kept answer: nothing else.
            let Some(old) = &charger.superseded else {
                return Ok(Step::Answer(seal.refused(401)));
            };
            let repeat = job.user == old.owner.as_str()
                && job.endpoint == old.endpoint
                && request_id == old.request_id;
            let kept = kept
                .filter(|(_, v)| v.is_none_or(|v| v == old.key_version))
                .map(|(k, _)| k);
            return Ok(match (repeat, kept) {
                (true, Some(kept)) => {
                    seal.key = service.device_key(&job.device, old.key_version);
                    tracing::info!(device = %job.device, endpoint = %job.endpoint, "superseded credentials repeated their exchange");
                    seal.done(kept.code, &kept.body, Some(job.device.clone()))
                        .map_or(Step::Drop, Step::Answer)
                }
                _ => {
                    tracing::info!(device = %job.device, endpoint = %job.endpoint, "superseded credentials refused");
                    Step::Answer(seal.refused(401))
                }
            });
        }
    };
    // The key checks out: behind an external broker, the charger is seen (or gone).
    if let Some(marks) = marks {
        marks.seen(&job.device, &job.endpoint).await;
    }
    // Idempotency: a repeated (device, id) gets the kept answer and changes nothing; but
    // only under the key it was given under: after a claim or rekey, another key's
    // answers are not read out (a charger's new owner must not read its former owner's),
    // and the id is spent (409).
    if let Some((kept, version)) = kept {
        if version.is_some_and(|v| v != charger.key_version) {
            let body = json!({"error": "request_id_reused",
                "message": "this request id was used under earlier credentials; use a fresh one"});
            return Ok(seal
                .done(409, &body.to_string(), None)
                .map_or(Step::Drop, Step::Answer));
        }
        return Ok(seal
            .done(kept.code, &kept.body, None)
            .map_or(Step::Drop, Step::Answer));
    }
    if job.user != charger.owner.as_str() {
        // A request on the topics of the charger's former owner, sent before its
        // connection was revoked.
        tracing::info!(device = %job.device, "request under a former owner dropped");
        return Ok(Step::Drop);
    }
    let (code, body, revoke) = if ENDPOINTS.contains(&job.endpoint.as_str()) {
        let request = crate::charging::RequestContext {
            request_id: &request_id,
            endpoint: &job.endpoint,
        };
        let answer = match params {
            Ok(params) => {
                service
                    .charger_request(tx, &charger, &request, &params)
                    .await
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(reply) => (reply.code, reply.body, reply.revoke),
            // The read model lacked something (a tag, a session): the database answers.
            Err(Error::Internal(_)) if tx.basis().is_some() => return Err(StoreError::Miss),
            Err(e) => {
                let (code, body) = error_body(&e);
                (code, body, false)
            }
        }
    } else {
        (
            404,
            json!({"error": "unknown_endpoint", "message": format!("no endpoint {:?}", crate::telemetry::field(&job.endpoint))}),
            false,
        )
    };
    Ok(Step::Computed(Computed {
        device: job.device,
        request_id,
        key_version: charger.key_version,
        claimed: revoke,
        endpoint: job.endpoint,
        code,
        body,
        notes: tx.held_notes(),
        seal,
    }))
}

/// A read-path request on a read-only connection.
async fn read(service: &Service, marks: Option<&Marks>, job: Job) -> Result<Step, StoreError> {
    let mut conn = service.store().begin_read().await?;
    answer(service, marks, conn.as_mut(), job).await
}

/// One request. In a batch with savepoints: inside its own, its answer kept. Without:
/// its answer is returned unkept, for the batch to keep with the others. A store error
/// here fails the batch.
///
/// A refused request (any 4xx) changes nothing: handlers check before they write, and
/// should one have written before refusing, its changes are undone here (in a batch
/// without savepoints, the batch runs again with them). Its answer is still kept, and
/// the unknown-tag sightings it noted are recorded whatever its outcome.
async fn one(
    service: &Service,
    marks: Option<&Marks>,
    tx: &mut dyn ChargerTx,
    job: Job,
    savepoints: Savepoints,
) -> Result<Option<Answered>, Failure> {
    let store = |e| Failure::Store("batch failed", e);
    let on = savepoints != Savepoints::Off;
    if on {
        tx.savepoint().await.map_err(store)?;
    }
    let writes_before = tx.writes();
    let c = match answer(service, marks, tx, job).await.map_err(store)? {
        Step::Drop => {
            release(tx, on).await?;
            return Ok(None);
        }
        Step::Answer(d) => {
            release(tx, on).await?;
            return Ok(Some(Answered::Ready(d)));
        }
        Step::Computed(c) => c,
    };
    let wrote = tx.writes() > writes_before;
    let body = c.body.to_string();
    if c.code >= 500 {
        // Undone and not kept: the charger may retry and succeed.
        if !on {
            return Err(Failure::Rollback);
        }
        if c.code == 503 && savepoints == Savepoints::On {
            return Err(Failure::Busy);
        }
        tx.rollback_to_savepoint().await.map_err(store)?;
        record_notes(service, tx, &c.notes).await.map_err(store)?;
        return Ok(c.seal.done(c.code, &body, None).map(Answered::Ready));
    }
    if c.code >= 400 && wrote {
        tracing::warn!(device = %c.device, endpoint = %c.endpoint, code = c.code, "a refused request had written: undone");
        if !on {
            return Err(Failure::Rollback);
        }
        tx.rollback_to_savepoint().await.map_err(store)?;
        tx.savepoint().await.map_err(store)?;
    }
    record_notes(service, tx, &c.notes).await.map_err(store)?;
    let fresh = StoredResult { code: c.code, body };
    let revoke = c.claimed.then(|| c.device.clone());
    let row = KeptResult {
        device: c.device,
        request_id: c.request_id,
        endpoint: c.endpoint,
        result: fresh,
        key_version: c.key_version,
    };
    if !on {
        let seal = c.seal;
        return Ok(Some(Answered::Unkept(Unkept { row, seal, revoke })));
    }
    let saved = tx
        .save_request_result(&row, service.now())
        .await
        .map_err(store)?;
    let fresh = row.result;
    match saved {
        None => {
            release(tx, on).await?;
            Ok(c.seal
                .done(fresh.code, &fresh.body, revoke)
                .map(Answered::Ready))
        }
        Some(kept) => {
            // Another instance answered the same request first: its answer stands, and
            // what this run changed is undone.
            tx.rollback_to_savepoint().await.map_err(store)?;
            Ok(c.seal
                .done(kept.code, &kept.body, None)
                .map(Answered::Ready))
        }
    }
}

/// Releases a request's savepoint, if it has one.
async fn release(tx: &mut dyn ChargerTx, savepoint: bool) -> Result<(), Failure> {
    if savepoint {
        tx.release_savepoint()
            .await
            .map_err(|e| Failure::Store("batch failed", e))?;
    }
    Ok(())
}

/// Maps a domain error to a RES code and error body (5xx opaque, logged).
pub fn error_body(e: &Error) -> (u16, serde_json::Value) {
    let code = match e {
        Error::Invalid { .. } => 422,
        Error::NotFound { .. } => 404,
        Error::Conflict { .. } => 409,
        Error::Forbidden { .. } => 403,
        Error::Unauthorized => 401,
        Error::Timeout => 504,
        Error::BadAnswer(_) => 502,
        Error::Unavailable(_) => 503,
        Error::Internal(_) => 500,
    };
    let message = if code >= 500 {
        tracing::error!(error = %e, "request failed");
        "the server could not complete the request".to_owned()
    } else {
        e.to_string()
    };
    let mut body = json!({"error": e.code(), "message": message});
    if let Error::Invalid { field, .. } = e {
        body["field"] = field.clone().into();
    }
    (code, body)
}

/// The endpoint as a metrics label: one of the known ones, else "unknown".
pub fn endpoint_label(endpoint: &str) -> &'static str {
    ENDPOINTS
        .iter()
        .chain(crate::charging::COMMANDS)
        .find(|e| **e == endpoint)
        .copied()
        .unwrap_or("unknown")
}

pub fn to_json(res: &ResponseEnvelope) -> Vec<u8> {
    serde_json::to_vec(res).unwrap_or_default()
}
