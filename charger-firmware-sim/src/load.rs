//! Load mode: many chargers from a bundle file, a request mix, a target rate.
//!
//! Every charger is its own MQTT connection ([`Link`]) with one request in flight, as a
//! real charger has. A shared schedule paces the fleet to the target rate (or not at
//! all). The run is bounded by a duration and, optionally, a request count, and stops by
//! itself. Latencies (PUBLISH of the REQ to the opened RES) go into HDR histograms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use charger_protocol::{api, FirmwareBundle};
use hdrhistogram::Histogram;
use rand::SeedableRng as _;
use serde::Serialize;
use serde_json::json;

use crate::link::Link;

/// One kind of work a charger does in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// The server's `echo` diagnostic (`CHARGER_MQTT_ECHO`): the broker's round trip.
    Echo,
    /// `authorize` a tag to start.
    Authorize,
    /// `session-start`, then `session-stop` (two requests, both durable).
    Session,
    /// `status` of connector 1.
    Status,
    /// `boot`.
    Boot,
}

impl Op {
    fn parse(s: &str) -> anyhow::Result<Op> {
        Ok(match s {
            "echo" => Op::Echo,
            "authorize" => Op::Authorize,
            "session" => Op::Session,
            "status" => Op::Status,
            "boot" => Op::Boot,
            _ => bail!("unknown operation {s:?}: use echo, authorize, session, status, boot"),
        })
    }

    /// Whether it needs a tag.
    fn needs_tag(self) -> bool {
        matches!(self, Op::Authorize | Op::Session)
    }
}

/// A weighted request mix, e.g. `authorize=8,session=1,status=1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix(Vec<(Op, u32)>);

impl std::str::FromStr for Mix {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Mix> {
        let mut parts = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => (
                    n.trim(),
                    w.trim()
                        .parse::<u32>()
                        .with_context(|| format!("weight of {n:?}"))?,
                ),
                None => (part, 1),
            };
            let op = Op::parse(name)?;
            if weight > 0 {
                parts.push((op, weight));
            }
        }
        if parts.is_empty() {
            bail!("the mix is empty");
        }
        Ok(Mix(parts))
    }
}

impl Mix {
    /// One operation.
    pub fn only(op: Op) -> Mix {
        Mix(vec![(op, 1)])
    }

    fn pick(&self, rng: &mut impl rand::Rng) -> Op {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut n = rng.gen_range(0..total.max(1));
        for (op, w) in &self.0 {
            if n < *w {
                return *op;
            }
            n -= w;
        }
        self.0[0].0
    }

    fn needs_tag(&self) -> bool {
        self.0.iter().any(|(op, _)| op.needs_tag())
    }
}

/// What a load run does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Broker address (host:port) instead of the bundles'.
    pub broker: Option<String>,
    /// The request mix.
    pub mix: Mix,
    /// Requests per second for the whole fleet; `None` is as fast as the chargers go
    /// (each charger keeps one request in flight).
    pub rate: Option<f64>,
    /// How long requests are sent (after everyone connected).
    pub duration: Duration,
    /// Stop after this many requests, if reached first.
    pub max_requests: Option<u64>,
    /// Tags to use; charger `i` uses tag `i mod n`. Needed by `authorize` and `session`.
    pub tags: Vec<String>,
    /// Chargers connecting at the same time.
    pub connect_concurrency: usize,
    /// Print a progress line every second (to standard error).
    pub progress: bool,
    /// The envelope the chargers speak.
    pub envelope: charger_protocol::Version,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            broker: None,
            mix: Mix::only(Op::Authorize),
            rate: None,
            duration: Duration::from_secs(10),
            max_requests: None,
            tags: Vec::new(),
            connect_concurrency: 512,
            progress: false,
            envelope: charger_protocol::Version::V2,
        }
    }
}

/// Latency figures of a set of requests, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// The end-of-run report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub chargers: usize,
    /// Chargers that were connected when requests started.
    pub connected: usize,
    /// Seconds it took them to connect.
    pub connect_s: f64,
    /// Seconds requests were sent for.
    pub elapsed_s: f64,
    /// Requests answered (any code).
    pub requests: u64,
    /// Answered requests per second.
    pub throughput: f64,
    /// Target rate, if any.
    pub target_rate: Option<f64>,
    /// All answered requests.
    pub latency: Latency,
    /// Per endpoint.
    pub endpoints: BTreeMap<String, Latency>,
    /// Requests that did not get the expected answer, by code (`"404"`, `"timeout"`,
    /// `"disconnected"`).
    pub errors: BTreeMap<String, u64>,
    /// Connections that were lost and made again.
    pub reconnects: u64,
}

impl Report {
    /// Total of `errors`.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut out = format!(
            "chargers      {} ({} connected in {:.2} s)\n\
             requests      {} in {:.2} s: {:.0}/s{}\n\
             latency       p50 {} us  p90 {} us  p99 {} us  p99.9 {} us  max {} us\n",
            self.chargers,
            self.connected,
            self.connect_s,
            self.requests,
            self.elapsed_s,
            self.throughput,
            self.target_rate
                .map(|r| format!(" (target {r:.0}/s)"))
                .unwrap_or_default(),
            self.latency.p50_us,
            self.latency.p90_us,
            self.latency.p99_us,
            self.latency.p999_us,
            self.latency.max_us,
        );
        for (endpoint, l) in &self.endpoints {
            out.push_str(&format!(
                "  {endpoint:<13} {:>8}  p50 {} us  p99 {} us\n",
                l.count, l.p50_us, l.p99_us
            ));
        }
        if self.errors.is_empty() {
            out.push_str("errors        none\n");
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            out.push_str(&format!("errors        {}\n", list.join(", ")));
        }
        out.push_str(&format!("reconnects    {}\n", self.reconnects));
        out
    }
}

/// What all chargers of a run share.
struct Shared {
    config: LoadConfig,
    started: Instant,
    /// Nanoseconds after `started` of the next send slot (paced runs).
    next_slot: AtomicU64,
    /// Requests handed out (bounded by `max_requests`).
    issued: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    reconnects: AtomicU64,
    connected: AtomicUsize,
    stop: AtomicBool,
    deadline: Instant,
    stats: Mutex<Stats>,
}

#[derive(Default)]
struct Stats {
    endpoints: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl Shared {
    /// Waits for the next send slot; false when the run is over.
    async fn permit(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return false;
        }
        if let Some(max) = self.config.max_requests {
            if self.issued.fetch_add(1, Ordering::Relaxed) >= max {
                return false;
            }
        }
        if let Some(rate) = self.config.rate.filter(|r| *r > 0.0) {
            let step = (1e9 / rate) as u64;
            let slot = self.next_slot.fetch_add(step, Ordering::Relaxed);
            let at = self.started + Duration::from_nanos(slot);
            if at >= self.deadline {
                return false;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        true
    }

    /// Counts one request: its latency when it was answered (`took`), its error if it
    /// did not get the expected answer.
    fn record(&self, endpoint: &'static str, took: Option<Duration>, error: Option<String>) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if error.is_some() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let Ok(mut s) = self.stats.lock() else {
            return;
        };
        if let Some(e) = error {
            *s.errors.entry(e).or_default() += 1;
        }
        let Some(took) = took else {
            return;
        };
        if !s.endpoints.contains_key(endpoint) {
            match new_histogram() {
                Ok(h) => {
                    s.endpoints.insert(endpoint, h);
                }
                Err(_) => return,
            }
        }
        if let Some(h) = s.endpoints.get_mut(endpoint) {
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
            let _ = h.record(us.min(h.high()));
        }
    }
}

/// 1 us to 60 s, three significant digits.
fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")
}

/// Connects `bundles` to the broker, `concurrency` at a time; returns the links (in
/// bundle order, `None` for a charger that could not connect before `limit`) and how
/// long it took.
pub async fn connect_all(
    bundles: &[FirmwareBundle],
    broker: Option<&str>,
    concurrency: usize,
    limit: Duration,
) -> (Vec<Option<Link>>, Duration) {
    let at = broker.map(str::to_owned);
    connect_players::<Link>(bundles, at.as_deref(), concurrency, limit).await
}

/// Connects OCPP chargers to the server at `server` (`ws://host:port`), each booted,
/// `concurrency` at a time, as [`connect_all`] does MQTT chargers.
pub async fn connect_ocpp_all(
    bundles: &[crate::ocpp::OcppBundle],
    server: &str,
    concurrency: usize,
    limit: Duration,
) -> (Vec<Option<crate::ocpp::OcppLink>>, Duration) {
    connect_players::<crate::ocpp::OcppLink>(bundles, Some(server), concurrency, limit).await
}

async fn connect_players<P: Player>(
    bundles: &[P::Bundle],
    at: Option<&str>,
    concurrency: usize,
    limit: Duration,
) -> (Vec<Option<P>>, Duration) {
    let started = Instant::now();
    let deadline = started + limit;
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = bundles
        .iter()
        .cloned()
        .map(|b| {
            let gate = gate.clone();
            let at = at.map(str::to_owned);
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.ok()?;
                player_until::<P>(&b, at.as_deref(), deadline).await.ok()
            })
        })
        .collect();
    let mut links = Vec::with_capacity(tasks.len());
    for t in tasks {
        links.push(t.await.ok().flatten());
    }
    (links, started.elapsed())
}

/// Connects, retrying (as a charger does) until `deadline`.
pub async fn connect_until(
    bundle: &FirmwareBundle,
    broker: Option<&str>,
    deadline: Instant,
) -> anyhow::Result<Link> {
    player_until::<Link>(bundle, broker, deadline).await
}

async fn player_until<P: Player>(
    bundle: &P::Bundle,
    at: Option<&str>,
    deadline: Instant,
) -> anyhow::Result<P> {
    let mut pause = Duration::from_millis(50);
    loop {
        match P::connect(bundle, at).await {
            Ok(link) => return Ok(link),
            Err(e) if Instant::now() + pause >= deadline => return Err(e),
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// A charger the load plays, over its protocol: it connects, and does one operation of
/// the mix (recording it in `shared`).
trait Player: Sized + Send + 'static {
    type Bundle: Clone + Send + Sync + 'static;
    /// Connects to the broker or server `at` (or the bundle's own).
    fn connect(
        bundle: &Self::Bundle,
        at: Option<&str>,
    ) -> impl std::future::Future<Output = anyhow::Result<Self>> + Send;
    fn is_closed(&self) -> bool;
    /// Does `op`; false when the run is over.
    fn play(
        &mut self,
        shared: &Shared,
        op: Op,
        tag: &str,
        meter_wh: &mut i64,
    ) -> impl std::future::Future<Output = bool> + Send;
}

impl Player for Link {
    type Bundle = FirmwareBundle;

    async fn connect(bundle: &FirmwareBundle, at: Option<&str>) -> anyhow::Result<Link> {
        Link::connect(bundle, at, None).await
    }

    fn is_closed(&self) -> bool {
        self.closed().is_some()
    }

    async fn play(&mut self, shared: &Shared, op: Op, tag: &str, meter_wh: &mut i64) -> bool {
        self.version = shared.config.envelope;
        mqtt_op(shared, self, op, tag, meter_wh).await
    }
}

/// Runs the load: connects every charger, sends the mix for the configured time, and
/// reports. `bundles` are the chargers to play.
pub async fn run(bundles: &[FirmwareBundle], config: LoadConfig) -> anyhow::Result<Report> {
    run_players::<Link>(bundles, config).await
}

/// Runs the load with OCPP 1.6J chargers on the server at `config.broker` (a WebSocket
/// base URL, e.g. `ws://127.0.0.1:8080`): `authorize` is Authorize, `session`
/// StartTransaction then StopTransaction, `status` StatusNotification, `boot`
/// BootNotification, `echo` Heartbeat.
pub async fn run_ocpp(
    bundles: &[crate::ocpp::OcppBundle],
    config: LoadConfig,
) -> anyhow::Result<Report> {
    if config.broker.is_none() {
        bail!("OCPP chargers need the server's WebSocket address (--server ws://host:port)");
    }
    run_players::<crate::ocpp::OcppLink>(bundles, config).await
}

async fn run_players<P: Player>(
    bundles: &[P::Bundle],
    config: LoadConfig,
) -> anyhow::Result<Report> {
    if bundles.is_empty() {
        bail!("no chargers to play");
    }
    if config.mix.needs_tag() && config.tags.is_empty() {
        bail!("authorize and session need tags (--tags FILE, one uid per line)");
    }
    let connect_limit = Duration::from_secs(120);
    let (links, connect_took) = connect_players::<P>(
        bundles,
        config.broker.as_deref(),
        config.connect_concurrency,
        connect_limit,
    )
    .await;
    let connected = links.iter().filter(|l| l.is_some()).count();
    if connected == 0 {
        bail!("no charger could connect");
    }
    if config.progress {
        eprintln!(
            "{connected} of {} chargers connected in {:.2} s",
            bundles.len(),
            connect_took.as_secs_f64()
        );
    }
    let started = Instant::now();
    let shared = Arc::new(Shared {
        deadline: started + config.duration,
        config,
        started,
        next_slot: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        connected: AtomicUsize::new(connected),
        stop: AtomicBool::new(false),
        stats: Mutex::new(Stats::default()),
    });
    let progress = shared.config.progress.then(|| {
        let shared = shared.clone();
        let total = bundles.len();
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = shared.done.load(Ordering::Relaxed);
                eprintln!(
                    "[{:>4.0}s] {done} requests  {}/s  errors {}  connected {}/{total}",
                    shared.started.elapsed().as_secs_f64(),
                    done - last,
                    shared.failed.load(Ordering::Relaxed),
                    shared.connected.load(Ordering::Relaxed),
                );
                last = done;
            }
        })
    });
    let tasks: Vec<_> = links
        .into_iter()
        .enumerate()
        .filter_map(|(i, link)| link.map(|l| (i, l)))
        .map(|(i, link)| {
            let shared = shared.clone();
            let bundle = bundles[i].clone();
            tokio::spawn(async move { charger_loop::<P>(i, bundle, link, shared).await })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    // Requests still in flight at the deadline may finish up to a timeout later; the
    // rate is over the sending window.
    let elapsed = started.elapsed().min(shared.config.duration);
    if let Some(p) = progress {
        p.abort();
    }
    let stats = shared
        .stats
        .lock()
        .map_err(|_| anyhow!("statistics lock poisoned"))?;
    let mut all = new_histogram()?;
    let mut endpoints = BTreeMap::new();
    for (endpoint, h) in &stats.endpoints {
        let _ = all.add(h);
        endpoints.insert((*endpoint).to_owned(), Latency::of(h));
    }
    let requests = all.len();
    Ok(Report {
        chargers: bundles.len(),
        connected,
        connect_s: connect_took.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        requests,
        throughput: requests as f64 / elapsed.as_secs_f64().max(1e-9),
        target_rate: shared.config.rate,
        latency: Latency::of(&all),
        endpoints,
        errors: stats.errors.clone(),
        reconnects: shared.reconnects.load(Ordering::Relaxed),
    })
}

/// One charger: the mix, one request at a time, reconnecting when the link drops.
async fn charger_loop<P: Player>(index: usize, bundle: P::Bundle, link: P, shared: Arc<Shared>) {
    let mut link = Some(link);
    let tag = (!shared.config.tags.is_empty())
        .then(|| shared.config.tags[index % shared.config.tags.len()].clone());
    let mut meter_wh: i64 = 0;
    let mut rng = rand::rngs::StdRng::from_entropy();
    let at = shared.config.broker.clone();
    loop {
        let Some(l) = link.as_mut().filter(|l| !l.is_closed()) else {
            // Lost: reconnect (bounded by the run's deadline).
            shared
                .connected
                .fetch_sub(usize::from(link.is_some()), Ordering::Relaxed);
            link = None;
            if Instant::now() >= shared.deadline || shared.stop.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(l) = player_until::<P>(&bundle, at.as_deref(), shared.deadline).await {
                shared.reconnects.fetch_add(1, Ordering::Relaxed);
                shared.connected.fetch_add(1, Ordering::Relaxed);
                link = Some(l);
            }
            continue;
        };
        if !shared.permit().await {
            return;
        }
        let op = shared.config.mix.pick(&mut rng);
        let tag = tag.clone().unwrap_or_default();
        if !l.play(&shared, op, &tag, &mut meter_wh).await {
            return;
        }
    }
}

/// One operation of the mix over MQTT; false when the run is over.
async fn mqtt_op(shared: &Shared, l: &mut Link, op: Op, tag: &str, meter_wh: &mut i64) -> bool {
    let tag = tag.to_owned();
    match op {
        Op::Echo => {
            call(shared, l, "echo", json!({}), 200).await;
        }
        Op::Authorize => {
            call(
                shared,
                l,
                "authorize",
                to_params(&api::AuthorizeRequest {
                    tag: tag.clone(),
                    connector: 1,
                    session_id: None,
                    local_id: None,
                }),
                200,
            )
            .await;
        }
        Op::Status => {
            call(
                shared,
                l,
                "status",
                to_params(&api::StatusRequest {
                    connector: 1,
                    state: api::ConnectorState::Available,
                    error: None,
                }),
                200,
            )
            .await;
        }
        Op::Boot => {
            let data = to_params(&api::BootRequest {
                firmware: "sim-1.0".into(),
                model: "MyBox sim".into(),
                connectors: 1,
            });
            call(shared, l, "boot", data, 200).await;
        }
        Op::Session => {
            let start = to_params(&api::SessionStartRequest {
                tag: tag.clone(),
                connector: 1,
                meter_start_wh: *meter_wh,
                started_at: chrono::Utc::now(),
                local_id: None,
            });
            let Some(answer) = call(shared, l, "session-start", start, 201).await else {
                return true;
            };
            let Some(id) = answer.body["session_id"].as_i64() else {
                return true;
            };
            // A session that lasts milliseconds: the energy a meter can report in no
            // time (the server refuses more than the connector can deliver).
            *meter_wh += SESSION_WH;
            if !shared.permit().await {
                // The run ended between the two: stop the session anyway, unmeasured,
                // so that the charger's connector is free for the next run.
                let _ = l.request("session-stop", stop_data(id, *meter_wh)).await;
                return false;
            }
            call(shared, l, "session-stop", stop_data(id, *meter_wh), 200).await;
        }
    }
    true
}

impl Player for crate::ocpp::OcppLink {
    type Bundle = crate::ocpp::OcppBundle;

    async fn connect(bundle: &Self::Bundle, at: Option<&str>) -> anyhow::Result<Self> {
        let server = at.ok_or_else(|| anyhow!("no server address"))?;
        let mut link = crate::ocpp::OcppLink::connect(server, bundle).await?;
        let boot = link.boot().await?;
        if boot["status"] != "Accepted" {
            bail!("BootNotification: {}", boot["status"]);
        }
        Ok(link)
    }

    fn is_closed(&self) -> bool {
        self.closed
    }

    async fn play(&mut self, shared: &Shared, op: Op, tag: &str, meter_wh: &mut i64) -> bool {
        if self.v201 {
            return play_201(self, shared, op, tag, meter_wh).await;
        }
        let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        match op {
            Op::Echo => {
                ocpp_call(shared, self, "Heartbeat", json!({})).await;
            }
            Op::Authorize => {
                ocpp_call(shared, self, "Authorize", json!({"idTag": tag})).await;
            }
            Op::Status => {
                let data = json!({"connectorId": 1, "errorCode": "NoError", "status": "Available"});
                ocpp_call(shared, self, "StatusNotification", data).await;
            }
            Op::Boot => {
                let data = json!({"chargePointVendor": "Sim", "chargePointModel": "OCPP sim"});
                ocpp_call(shared, self, "BootNotification", data).await;
            }
            Op::Session => {
                let start = json!({"connectorId": 1, "idTag": tag, "meterStart": *meter_wh, "timestamp": now()});
                let Some(answer) = ocpp_call(shared, self, "StartTransaction", start).await else {
                    return true;
                };
                let Some(id) = answer["transactionId"].as_i64() else {
                    return true;
                };
                *meter_wh += SESSION_WH;
                let stop = json!({"transactionId": id, "meterStop": *meter_wh, "timestamp": now()});
                if !shared.permit().await {
                    let _ = self.call("StopTransaction", stop).await;
                    return false;
                }
                ocpp_call(shared, self, "StopTransaction", stop).await;
            }
        }
        true
    }
}

/// One operation of an OCPP 2.0.1 station: a transaction is a TransactionEvent Started
/// (with the idToken and the meter's register) and an Ended one.
async fn play_201(
    link: &mut crate::ocpp::OcppLink,
    shared: &Shared,
    op: Op,
    tag: &str,
    meter_wh: &mut i64,
) -> bool {
    let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let token = json!({"idToken": tag, "type": "ISO14443"});
    match op {
        Op::Echo => {
            ocpp_call(shared, link, "Heartbeat", json!({})).await;
        }
        Op::Authorize => {
            ocpp_call(shared, link, "Authorize", json!({"idToken": token})).await;
        }
        Op::Status => {
            let data = json!({"timestamp": now(), "connectorStatus": "Available",
                              "evseId": 1, "connectorId": 1});
            ocpp_call(shared, link, "StatusNotification", data).await;
        }
        Op::Boot => {
            let data = json!({"reason": "PowerUp",
                              "chargingStation": {"vendorName": "Sim", "model": "OCPP 2.0.1 sim"}});
            ocpp_call(shared, link, "BootNotification", data).await;
        }
        Op::Session => {
            let transaction = format!("sim-{:016x}", rand::random::<u64>());
            let event = |kind: &str, seq: i64, wh: i64, context: &str| {
                let at = now();
                json!({"eventType": kind, "timestamp": at, "triggerReason": "Authorized",
                       "seqNo": seq, "transactionInfo": {"transactionId": transaction},
                       "evse": {"id": 1, "connectorId": 1}, "idToken": token,
                       "meterValue": [{"timestamp": at, "sampledValue": [
                           {"value": wh, "context": context,
                            "measurand": "Energy.Active.Import.Register"}]}]})
            };
            let start = event("Started", 0, *meter_wh, "Transaction.Begin");
            if ocpp_call(shared, link, "TransactionEvent", start)
                .await
                .is_none()
            {
                return true;
            }
            *meter_wh += SESSION_WH;
            let end = event("Ended", 1, *meter_wh, "Transaction.End");
            if !shared.permit().await {
                let _ = link.call("TransactionEvent", end).await;
                return false;
            }
            ocpp_call(shared, link, "TransactionEvent", end).await;
        }
    }
    true
}

/// Sends one OCPP CALL, records its latency (a CALLERROR or a refused tag is an error).
async fn ocpp_call(
    shared: &Shared,
    link: &mut crate::ocpp::OcppLink,
    action: &'static str,
    payload: serde_json::Value,
) -> Option<serde_json::Value> {
    let t = Instant::now();
    match link.call(action, payload).await {
        Ok(answer) => {
            let refused = answer["idTagInfo"]["status"]
                .as_str()
                .or(answer["idTokenInfo"]["status"].as_str())
                .filter(|s| *s != "Accepted")
                .map(|s| format!("{action} {s}"));
            shared.record(action, Some(t.elapsed()), refused.clone());
            refused.is_none().then_some(answer)
        }
        Err(e) => {
            let text = e.to_string();
            let why = if text.contains("CALLERROR") {
                format!("{action} CALLERROR")
            } else if text.contains("no answer") {
                "timeout".to_owned()
            } else {
                link.closed = true;
                "disconnected".to_owned()
            };
            shared.record(action, None, Some(why));
            None
        }
    }
}

/// Energy of each load-mode session, in Wh: within the server's tolerance for a session
/// of (almost) no duration.
pub const SESSION_WH: i64 = 10;

fn stop_data(id: i64, meter_wh: i64) -> serde_json::Value {
    to_params(&api::SessionStopRequest {
        session_id: Some(id),
        local_id: None,
        meter_stop_wh: meter_wh,
        stopped_at: chrono::Utc::now(),
        reason: api::StopReason::Local,
    })
}

/// A request's params as JSON, from its wire type.
fn to_params<T: serde::Serialize>(req: &T) -> serde_json::Value {
    serde_json::to_value(req).unwrap_or_default()
}

/// Sends one request, records its latency and whether it got `expect`.
async fn call(
    shared: &Shared,
    link: &mut Link,
    endpoint: &'static str,
    data: serde_json::Value,
    expect: u16,
) -> Option<crate::link::Answer> {
    let t = Instant::now();
    match link.request(endpoint, data).await {
        Ok(a) => {
            let error = (a.code != expect).then(|| a.code.to_string());
            shared.record(endpoint, Some(t.elapsed()), error);
            (a.code == expect).then_some(a)
        }
        Err(e) => {
            let why = if e.to_string().contains("no answer") {
                "timeout"
            } else {
                "disconnected"
            };
            // Not answered: counted as an error, not as a latency.
            shared.record(endpoint, None, Some(why.to_owned()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_with_weights() {
        let mix: Mix = "authorize=8, session=1,status".parse().expect("mix");
        assert_eq!(
            mix,
            Mix(vec![(Op::Authorize, 8), (Op::Session, 1), (Op::Status, 1)])
        );
        assert!("fly=1".parse::<Mix>().is_err());
        assert!("authorize=x".parse::<Mix>().is_err());
        assert!("authorize=0".parse::<Mix>().is_err());
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix: Mix = "echo=3,boot=1".parse().expect("mix");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let echoes = (0..4000).filter(|_| mix.pick(&mut rng) == Op::Echo).count();
        assert!((2800..3200).contains(&echoes), "{echoes}");
    }
}
