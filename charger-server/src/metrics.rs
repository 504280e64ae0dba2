//! Counters for `/metrics`, in the Prometheus text format (version 0.0.4).
//!
//! The charger API records every answered request (endpoint, code, latency from the
//! router's delivery to the answer's publication); the broker keeps its own counters
//! ([`crate::broker::BrokerMetrics`]); database errors are counted where they are mapped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Database errors seen anywhere (queries, transactions, commits).
pub static DB_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Counts one database error.
pub fn db_error() {
    DB_ERRORS.fetch_add(1, Ordering::Relaxed);
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
    /// A CONNECT over `CHARGER_MQTT_MAX_CONNECT_BYTES`: the socket is closed before login.
    MqttConnectSize,
    /// A socket closed at once: `CHARGER_MQTT_MAX_PENDING_LOGINS` sockets are logging in.
    MqttPendingLogins,
    /// A socket closed at once: the connection cap (`CHARGER_MQTT_MAX_CONNECTIONS`, or
    /// what the open-file limit allows) is reached, or accept failed (out of files).
    MqttConnections,
    /// A charger's request held back: over its rate (`CHARGER_MQTT_RATE`, `CHARGER_MQTT_BURST`).
    MqttRate,
    /// A charger disconnected: over its rate for `CHARGER_MQTT_ABUSE_SECONDS`.
    MqttRateDisconnect,
    /// A SUBSCRIBE filter refused: `CHARGER_MQTT_MAX_SUBSCRIPTIONS` held already.
    MqttSubscriptions,
    /// Kept answers deleted past the idempotency window (`CHARGER_REQUEST_LOG_DAYS`).
    RequestLog,
    /// Unknown-tag sightings dropped over `CHARGER_UNKNOWN_TAGS_PER_OWNER`.
    UnknownTags,
    /// A login an external broker asked about, refused.
    BrokerLoginRefused,
}

impl Limit {
    /// Every limit, in the order `/metrics` lists them.
    pub const ALL: &'static [Limit] = &[
        Limit::HttpHeaderTimeout,
        Limit::HttpConnections,
        Limit::HttpTlsHandshake,
        Limit::MqttConnectSize,
        Limit::MqttPendingLogins,
        Limit::MqttConnections,
        Limit::MqttRate,
        Limit::MqttRateDisconnect,
        Limit::MqttSubscriptions,
        Limit::RequestLog,
        Limit::UnknownTags,
        Limit::BrokerLoginRefused,
    ];

    /// The `limit` label.
    pub fn label(self) -> &'static str {
        match self {
            Limit::HttpHeaderTimeout => "http_header_timeout",
            Limit::HttpConnections => "http_connections",
            Limit::HttpTlsHandshake => "http_tls_handshake",
            Limit::MqttConnectSize => "mqtt_connect_size",
            Limit::MqttPendingLogins => "mqtt_pending_logins",
            Limit::MqttConnections => "mqtt_connections",
            Limit::MqttRate => "mqtt_rate",
            Limit::MqttRateDisconnect => "mqtt_rate_disconnect",
            Limit::MqttSubscriptions => "mqtt_subscriptions",
            Limit::RequestLog => "request_log_pruned",
            Limit::UnknownTags => "unknown_tags_dropped",
            Limit::BrokerLoginRefused => "broker_login_refused",
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

/// Writes a metric's HELP and TYPE lines.
pub(crate) fn help(out: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The charger API's request counters and latency histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// Records one answered request. `endpoint` must come from a bounded set.
    pub fn request(&self, endpoint: &str, code: u16, took: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((endpoint.to_owned(), code)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            l.entry(endpoint.to_owned())
                .or_default()
                .observe(took.as_secs_f64());
        }
    }

    /// The whole exposition.
    pub fn render(&self, sessions_active: Option<i64>) -> String {
        let mut out = String::new();
        let metric = help;
        metric(
            &mut out,
            "charger_limit_hits_total",
            "counter",
            "Times a limit refused, cut or slowed something, by limit (each is a setting).",
        );
        for limit in Limit::ALL {
            let _ = writeln!(
                out,
                "charger_limit_hits_total{{limit=\"{}\"}} {}",
                limit.label(),
                limit_hits(*limit)
            );
        }
        metric(
            &mut out,
            "charger_mqtt_requests_total",
            "counter",
            "Charger API requests answered, by endpoint and RES code.",
        );
        let requests = self.requests.lock().map(|r| r.clone()).unwrap_or_default();
        for ((endpoint, code), n) in &requests {
            let _ = writeln!(
                out,
                "charger_mqtt_requests_total{{endpoint=\"{endpoint}\",code=\"{code}\"}} {n}"
            );
        }
        metric(
            &mut out,
            "charger_mqtt_request_duration_seconds",
            "histogram",
            "From the request's delivery by the router to the publication of its answer (after the commit).",
        );
        let latency = self.latency.lock().map(|l| l.clone()).unwrap_or_default();
        for (endpoint, h) in &latency {
            for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(out, "charger_mqtt_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "charger_mqtt_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(
                out,
                "charger_mqtt_request_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "charger_mqtt_request_duration_seconds_count{{endpoint=\"{endpoint}\"}} {}",
                h.count
            );
        }
        if let Some(n) = sessions_active {
            metric(
                &mut out,
                "charger_sessions_active",
                "gauge",
                "Charging sessions open now.",
            );
            let _ = writeln!(out, "charger_sessions_active {n}");
        }
        metric(
            &mut out,
            "charger_db_errors_total",
            "counter",
            "Database errors (queries, transactions, commits).",
        );
        let _ = writeln!(
            out,
            "charger_db_errors_total {}",
            DB_ERRORS.load(Ordering::Relaxed)
        );
        out
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
