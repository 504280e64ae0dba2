//! Counters for `/metrics`, rendered in the Prometheus text format (version 0.0.4) by the
//! `metrics` crate's Prometheus exporter.
//!
//! The charger API records every answered request (endpoint, code, latency from the
//! router's delivery to the answer's publication); the broker keeps its own counters
//! ([`crate::broker::BrokerMetrics`]); database errors are counted where they are mapped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use metrics::{Key, KeyName, Label, Level, Metadata, Recorder as _, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Database errors seen anywhere (queries, transactions, commits).
pub static DB_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Batches run again because the database was busy (a deadlock, a lock or statement
/// time-out, a serialization failure) instead of answering 503.
pub static DB_RETRIES: AtomicU64 = AtomicU64::new(0);

/// Counts one batch run again on a busy database.
pub fn db_retry() {
    DB_RETRIES.fetch_add(1, Ordering::Relaxed);
}

/// Counts one database error.
pub fn db_error() {
    DB_ERRORS.fetch_add(1, Ordering::Relaxed);
}

/// Site limits the balancer sent, acknowledged and not.
static SITE_COMMANDS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Counts one site limit sent to a charger, acknowledged or not.
pub fn site_command(acknowledged: bool) {
    SITE_COMMANDS[usize::from(acknowledged)].fetch_add(1, Ordering::Relaxed);
}

/// Answers of the authorize read model: "hit" (made from memory), "miss" (an entry it
/// lacked: the database path), "stale" (made from memory, refused by its batch's check:
/// the database path again), "full" (an entry not kept: `CHARGER_READ_MODEL_ENTRIES`).
static READ_MODEL: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
const READ_MODEL_OUTCOMES: [&str; 4] = ["hit", "miss", "stale", "full"];

/// Counts one outcome of the read model (one of [`READ_MODEL_OUTCOMES`]).
pub fn read_model(outcome: &str) {
    if outcome == "full" {
        limit_hit(Limit::ReadModelEntries);
    }
    if let Some(i) = READ_MODEL_OUTCOMES.iter().position(|o| *o == outcome) {
        if let Some(c) = READ_MODEL.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A limit that refused, cut or slowed something: each has a setting (README,
/// docs/operations.md) and is counted in `charger_limit_hits_total{limit="..."}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// An HTTP client did not send its request headers in time (`CHARGER_HTTP_HEADER_TIMEOUT_MS`).
    HttpHeaderTimeout,
    /// An HTTP connection refused: too many open (`CHARGER_HTTP_MAX_CONNECTIONS`).
    HttpConnections,
    /// A TLS handshake on the REST listener failed or took too long.
    HttpTlsHandshake,
    /// An HTTP connection refused: its source holds `CHARGER_HTTP_MAX_CONNECTIONS_PER_SOURCE`.
    HttpConnectionsPerSource,
    /// A request body not sent within `CHARGER_HTTP_BODY_TIMEOUT_MS` (a total deadline): 408.
    HttpBodyTimeout,
    /// A console sign-in refused: its source is over `CHARGER_LOGIN_ATTEMPTS_PER_MINUTE`.
    LoginAttempts,
    /// A CONNECT over `CHARGER_MQTT_MAX_CONNECT_BYTES`: the socket is closed before login.
    MqttConnectSize,
    /// A socket closed at once: `CHARGER_MQTT_MAX_PENDING_LOGINS` sockets are logging in.
    MqttPendingLogins,
    /// A socket closed at once: its source has `CHARGER_MQTT_MAX_PENDING_LOGINS_PER_SOURCE`
    /// sockets logging in.
    MqttPendingLoginsPerSource,
    /// A charger's login refused: over `CHARGER_MQTT_LOGINS_PER_MINUTE` for its device id.
    MqttLoginRate,
    /// A charger's will dropped: its device id was over its request rate.
    MqttWillDropped,
    /// A socket closed at once: the connection cap (`CHARGER_MQTT_MAX_CONNECTIONS`, or
    /// what the open-file limit allows) is reached, or accept failed (out of files).
    MqttConnections,
    /// A charger's request held back: over its rate (`CHARGER_MQTT_RATE`, `CHARGER_MQTT_BURST`).
    MqttRate,
    /// A charger disconnected: over its rate for `CHARGER_MQTT_ABUSE_SECONDS`.
    MqttRateDisconnect,
    /// A SUBSCRIBE filter refused: `CHARGER_MQTT_MAX_SUBSCRIPTIONS` held already.
    MqttSubscriptions,
    /// An answer dropped: `CHARGER_MQTT_MAX_INFLIGHT` answers were unacknowledged and as
    /// many waiting on the charger's connection.
    MqttInflight,
    /// Kept answers deleted past the idempotency window (`CHARGER_REQUEST_LOG_DAYS`).
    RequestLog,
    /// Unknown-tag sightings dropped over `CHARGER_UNKNOWN_TAGS_PER_OWNER`.
    UnknownTags,
    /// A login an external broker asked about, refused.
    BrokerLoginRefused,
    /// Console sessions ended because their token signed in again beyond
    /// `CHARGER_CONSOLE_SESSIONS_PER_TOKEN`.
    ConsoleSessions,
    /// An OCPP handshake refused 503: `CHARGER_OCPP_MAX_CONNECTIONS` sockets are open.
    OcppConnections,
    /// An OCPP handshake refused 503: its source holds
    /// `CHARGER_OCPP_MAX_CONNECTIONS_PER_SOURCE` sockets.
    OcppConnectionsPerSource,
    /// An OCPP handshake refused 429: over `CHARGER_MQTT_LOGINS_PER_MINUTE` for its charger.
    OcppLoginRate,
    /// An OCPP handshake refused 403: plain ws:// without `CHARGER_OCPP_ALLOW_PLAIN`.
    OcppPlain,
    /// An OCPP socket closed (1009): a message over `CHARGER_OCPP_MAX_MESSAGE_BYTES`.
    OcppMessageSize,
    /// An OCPP charger's CALL held back: over its rate (`CHARGER_MQTT_RATE`, `CHARGER_MQTT_BURST`).
    OcppRate,
    /// An OCPP charger disconnected: over its rate for `CHARGER_MQTT_ABUSE_SECONDS`.
    OcppRateDisconnect,
    /// What an OCPP 2.0.1 station told of a transaction before its idToken forgotten: over
    /// `CHARGER_OCPP_PENDING_TRANSACTIONS` for the station, or too many stations.
    OcppPendingTransactions,
    /// An entry of the authorize read model not kept: it holds
    /// `CHARGER_READ_MODEL_ENTRIES` (that authorize reads the database).
    ReadModelEntries,
}

impl Limit {
    /// Every limit, in the order `/metrics` lists them.
    pub const ALL: &'static [Limit] = &[
        Limit::HttpHeaderTimeout,
        Limit::HttpConnections,
        Limit::HttpTlsHandshake,
        Limit::HttpConnectionsPerSource,
        Limit::HttpBodyTimeout,
        Limit::LoginAttempts,
        Limit::MqttConnectSize,
        Limit::MqttPendingLogins,
        Limit::MqttPendingLoginsPerSource,
        Limit::MqttLoginRate,
        Limit::MqttWillDropped,
        Limit::MqttConnections,
        Limit::MqttRate,
        Limit::MqttRateDisconnect,
        Limit::MqttSubscriptions,
        Limit::MqttInflight,
        Limit::RequestLog,
        Limit::UnknownTags,
        Limit::BrokerLoginRefused,
        Limit::ConsoleSessions,
        Limit::OcppConnections,
        Limit::OcppConnectionsPerSource,
        Limit::OcppLoginRate,
        Limit::OcppPlain,
        Limit::OcppMessageSize,
        Limit::OcppRate,
        Limit::OcppRateDisconnect,
        Limit::OcppPendingTransactions,
        Limit::ReadModelEntries,
    ];

    /// The `limit` label.
    pub fn label(self) -> &'static str {
        match self {
            Limit::HttpHeaderTimeout => "http_header_timeout",
            Limit::HttpConnections => "http_connections",
            Limit::HttpTlsHandshake => "http_tls_handshake",
            Limit::HttpConnectionsPerSource => "http_connections_per_source",
            Limit::HttpBodyTimeout => "http_body_timeout",
            Limit::LoginAttempts => "login_attempts",
            Limit::MqttConnectSize => "mqtt_connect_size",
            Limit::MqttPendingLogins => "mqtt_pending_logins",
            Limit::MqttPendingLoginsPerSource => "mqtt_pending_logins_per_source",
            Limit::MqttLoginRate => "mqtt_login_rate",
            Limit::MqttWillDropped => "mqtt_will_dropped",
            Limit::MqttConnections => "mqtt_connections",
            Limit::MqttRate => "mqtt_rate",
            Limit::MqttRateDisconnect => "mqtt_rate_disconnect",
            Limit::MqttSubscriptions => "mqtt_subscriptions",
            Limit::MqttInflight => "mqtt_inflight",
            Limit::RequestLog => "request_log_pruned",
            Limit::UnknownTags => "unknown_tags_dropped",
            Limit::BrokerLoginRefused => "broker_login_refused",
            Limit::ConsoleSessions => "console_sessions_ended",
            Limit::OcppConnections => "ocpp_connections",
            Limit::OcppConnectionsPerSource => "ocpp_connections_per_source",
            Limit::OcppLoginRate => "ocpp_login_rate",
            Limit::OcppPlain => "ocpp_plain_refused",
            Limit::OcppMessageSize => "ocpp_message_size",
            Limit::OcppPendingTransactions => "ocpp_pending_transactions",
            Limit::OcppRate => "ocpp_rate",
            Limit::OcppRateDisconnect => "ocpp_rate_disconnect",
            Limit::ReadModelEntries => "read_model_entries",
        }
    }
}

static LIMIT_HITS: [AtomicU64; Limit::ALL.len()] = [const { AtomicU64::new(0) }; Limit::ALL.len()];

/// Counts one hit of `limit`.
pub fn limit_hit(limit: Limit) {
    limit_add(limit, 1);
}

/// Counts `n` hits of `limit` (rows pruned, for instance).
pub fn limit_add(limit: Limit, n: u64) {
    if let Some(i) = Limit::ALL.iter().position(|l| *l == limit) {
        if let Some(c) = LIMIT_HITS.get(i) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Counts one hit of `limit` and logs `what` at warning level, at most once per
/// [`LOG_EVERY_S`] seconds per limit (a flood of refusals is one line, not a flood of lines).
pub fn limit_hit_logged(limit: Limit, what: &str) {
    limit_hit(limit);
    let Some(i) = Limit::ALL.iter().position(|l| *l == limit) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Some(last) = LIMIT_LOGGED.get(i) {
        let before = last.load(Ordering::Relaxed);
        if now >= before + LOG_EVERY_S
            && last
                .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(limit = limit.label(), total = limit_hits(limit), "{what}");
        }
    }
}

/// Seconds between two log lines of the same limit.
pub const LOG_EVERY_S: u64 = 10;

static LIMIT_LOGGED: [AtomicU64; Limit::ALL.len()] =
    [const { AtomicU64::new(0) }; Limit::ALL.len()];

/// The hits of `limit` so far.
pub fn limit_hits(limit: Limit) -> u64 {
    Limit::ALL
        .iter()
        .position(|l| *l == limit)
        .and_then(|i| LIMIT_HITS.get(i))
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const REQUESTS: &str = "charger_mqtt_requests_total";
const DURATION: &str = "charger_mqtt_request_duration_seconds";

/// Every metric's name and HELP text.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "charger_read_model_total",
        "Authorize answers of the read model, by outcome: hit (from memory), miss, stale (its batch's check refused it), full.",
    ),
    (
        "charger_limit_hits_total",
        "Times a limit refused, cut or slowed something, by limit (each is a setting).",
    ),
    (
        REQUESTS,
        "Charger API requests answered, by endpoint and RES code.",
    ),
    (
        DURATION,
        "From the request's delivery by the broker to the publication of its answer (after the commit).",
    ),
    ("charger_sessions_active", "Charging sessions open now."),
    (
        "charger_ocpp_messages_total",
        "OCPP CALLs taken from chargers, by action and outcome (result, or the CALLERROR code sent).",
    ),
    ("charger_ocpp_connections", "OCPP chargers connected to this instance now."),
    (
        "charger_db_errors_total",
        "Database errors (queries, transactions, commits).",
    ),
    (
        "charger_db_retries_total",
        "Charger request batches run again because the database was busy (deadlock, lock or statement time-out).",
    ),
    ("charger_mqtt_connections", "Chargers connected now."),
    (
        "charger_mqtt_connections_total",
        "Charger connections accepted.",
    ),
    (
        "charger_mqtt_refused_logins_total",
        "CONNECTs refused (bad credentials).",
    ),
    (
        "charger_mqtt_acl_denied_total",
        "Publishes and subscriptions refused by the topic ACL.",
    ),
    (
        "charger_mqtt_violation_disconnects_total",
        "Connections closed for repeated ACL violations.",
    ),
];

/// The `/metrics` exposition: the `metrics` crate's Prometheus exporter, one per service
/// (so that servers in one process, as in the tests, count apart). Request counters and
/// latency histograms are recorded into it as they happen; the other counters (limits,
/// database errors, the broker's) live in atomics and are copied in when scraped.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// The request counter and latency histogram of each (endpoint, code), registered
    /// once: the hot path then only bumps atomics.
    requests: Mutex<HashMap<(&'static str, u16), RequestHandles>>,
}

/// One (endpoint, code)'s request counter and its endpoint's latency histogram.
type RequestHandles = (metrics::Counter, metrics::Histogram);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        // Fails only for an empty bucket list, which BUCKETS is not.
        let recorder = match PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), BUCKETS)
        {
            Ok(with_buckets) => with_buckets.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        for (name, help) in DESCRIPTIONS {
            let (name, help) = (KeyName::from_const_str(name), SharedString::const_str(help));
            // The exporter keeps one description per name, whatever its type.
            recorder.describe_counter(name, None, help);
        }
        let handle = recorder.handle();
        Self {
            recorder,
            handle,
            requests: Mutex::new(HashMap::new()),
        }
    }
}

fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.clone()))
        .collect();
    Key::from_parts(name, labels)
}

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

impl Metrics {
    /// Records one OCPP CALL taken: its action (from a bounded set, or "unknown") and
    /// outcome ("result" or the CALLERROR code).
    pub fn ocpp_message(&self, action: &'static str, outcome: &'static str) {
        let labels = [
            ("action", action.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        self.recorder
            .register_counter(&key("charger_ocpp_messages_total", &labels), &METADATA)
            .increment(1);
    }

    /// Records one answered request. `endpoint` must come from a bounded set.
    pub fn request(&self, endpoint: &'static str, code: u16, took: Duration) {
        let Ok(mut handles) = self.requests.lock() else {
            return;
        };
        let (counter, histogram) = handles.entry((endpoint, code)).or_insert_with(|| {
            let labels = [
                ("endpoint", endpoint.to_owned()),
                ("code", code.to_string()),
            ];
            (
                self.recorder
                    .register_counter(&key(REQUESTS, &labels), &METADATA),
                self.recorder
                    .register_histogram(&key(DURATION, &labels[..1]), &METADATA),
            )
        });
        counter.increment(1);
        histogram.record(took.as_secs_f64());
    }

    /// Sets a counter kept elsewhere (an atomic) to its current value.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, String)], value: u64) {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
            .absolute(value);
    }

    /// Sets a gauge.
    pub fn gauge(&self, name: &'static str, value: f64) {
        self.recorder
            .register_gauge(&key(name, &[]), &METADATA)
            .set(value);
    }

    /// The whole exposition (Prometheus text format 0.0.4), with the open sessions when
    /// they could be counted.
    pub fn render(&self, sessions_active: Option<i64>) -> String {
        for limit in Limit::ALL {
            self.counter(
                "charger_limit_hits_total",
                &[("limit", limit.label().to_owned())],
                limit_hits(*limit),
            );
        }
        self.counter(
            "charger_db_errors_total",
            &[],
            DB_ERRORS.load(Ordering::Relaxed),
        );
        self.counter(
            "charger_db_retries_total",
            &[],
            DB_RETRIES.load(Ordering::Relaxed),
        );
        for (i, outcome) in ["unacknowledged", "acknowledged"].iter().enumerate() {
            self.counter(
                "charger_site_limits_total",
                &[("outcome", (*outcome).to_owned())],
                SITE_COMMANDS[i].load(Ordering::Relaxed),
            );
        }
        for (i, outcome) in READ_MODEL_OUTCOMES.iter().enumerate() {
            self.counter(
                "charger_read_model_total",
                &[("outcome", (*outcome).to_owned())],
                READ_MODEL[i].load(Ordering::Relaxed),
            );
        }
        if let Some(n) = sessions_active {
            self.gauge("charger_sessions_active", n as f64);
        }
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_counters_and_cumulative_histograms() {
        let m = Metrics::default();
        m.request("boot", 200, Duration::from_micros(400));
        m.request("boot", 200, Duration::from_millis(30));
        m.request("authorize", 404, Duration::from_micros(100));
        let text = m.render(Some(3));
        assert!(text.contains("charger_mqtt_requests_total{endpoint=\"boot\",code=\"200\"} 2"));
        assert!(text.contains("charger_mqtt_requests_total{endpoint=\"authorize\",code=\"404\"} 1"));
        assert!(text.contains(
            "charger_mqtt_request_duration_seconds_bucket{endpoint=\"boot\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "charger_mqtt_request_duration_seconds_bucket{endpoint=\"boot\",le=\"0.05\"} 2"
        ));
        assert!(text.contains("charger_mqtt_request_duration_seconds_count{endpoint=\"boot\"} 2"));
        assert!(text.contains("charger_sessions_active 3"));
        assert!(text.contains("# TYPE charger_db_errors_total counter"));
    }
}
