//! The fairness benchmark (not a test): `cargo bench -p charger-server --bench fairness`.
//!
//! One charger (the victim) sends `status` requests one at a time, 10 a second, first alone, then while
//! another charger of the same owner floods the server with valid `status` requests as
//! fast as its socket takes them. It prints the victim's p50 and p99 in both runs and
//! their ratio, three times: with the per-charger rate limit at its defaults (20/s, burst
//! 40); with the flooder reconnecting after every 40 requests (the budget is the device
//! id's, so reconnecting does not refill it; round 2's budget was the connection's); and
//! with the limit lifted (as on the build before it existed). It also prints how many of
//! the flooder's requests the server took, against what its budget allows. Every phase is
//! bounded in count and time; the servers are killed at the end.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use charger_firmware_sim::link::Link;
use charger_protocol::FirmwareBundle;

/// Victim requests per run, paced at 10 a second (a charger's own rate limit is 20/s: a
/// victim faster than that would measure its own limit, not the flood).
const REQUESTS: usize = 200;
const PACE: Duration = Duration::from_millis(100);
/// The longest a victim request may wait before it counts as unanswered.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// The longest a flood lasts.
const FLOOD_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Run {
    p50: Duration,
    p99: Duration,
    unanswered: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The victim's run: `REQUESTS` sequential requests, stopping after 3 unanswered.
async fn victim(link: &mut Link) -> Run {
    let mut took = Vec::with_capacity(REQUESTS);
    let mut unanswered = 0;
    let mut next = tokio::time::Instant::now();
    for _ in 0..REQUESTS {
        tokio::time::sleep_until(next).await;
        next += PACE;
        let t = Instant::now();
        let data = serde_json::json!({"connector": 1, "state": "available"});
        match tokio::time::timeout(ANSWER_WAIT, link.request("status", data)).await {
            Ok(Ok(a)) if a.code == 200 => took.push(t.elapsed()),
            _ => {
                unanswered += 1;
                if unanswered >= 3 {
                    break;
                }
            }
        }
    }
    took.sort();
    Run {
        p50: percentile(&took, 0.5),
        p99: percentile(&took, 0.99),
        unanswered,
    }
}

/// Floods as `b` until `stop` (or the flood limit), reconnecting after every 40 requests:
/// a new connection each time, as a flooder that knows its limit was per connection would.
fn flood_reconnecting(
    b: &FirmwareBundle,
    broker: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    first_id: u64,
) {
    let b = b.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut n: u64 = first_id;
        let topic = format!("{}/req/{}/status", b.owner, b.device_id);
        while !stop.load(Ordering::Relaxed) && start.elapsed() < FLOOD_LIMIT {
            let mut opts =
                rumqttc::MqttOptions::new(&b.device_id, broker.ip().to_string(), broker.port());
            opts.set_credentials(&b.mqtt.username, &b.mqtt.password);
            let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 100);
            let mut net = rumqttc::NetworkOptions::new();
            net.set_tcp_nodelay(true);
            eventloop.set_network_options(net);
            for _ in 0..40 {
                n += 1;
                let payload = serde_json::json!({"id": n, "key": b.key,
                    "data": {"connector": 1, "state": "charging"}})
                .to_string();
                let _ = client.try_publish(&topic, rumqttc::QoS::AtMostOnce, false, payload);
            }
            let _ = client.try_disconnect();
            // Drive the connection until it has sent all and closed (or the server refused).
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await {
                    Ok(Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)))
                    | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {}
                    Err(_) => break,
                }
            }
        }
    });
}

/// Floods as `b` until `stop` (or the flood limit): QoS 0 `status` requests, no waiting.
fn flood(b: &FirmwareBundle, broker: std::net::SocketAddr, stop: Arc<AtomicBool>, first_id: u64) {
    let mut opts = rumqttc::MqttOptions::new(&b.device_id, broker.ip().to_string(), broker.port());
    opts.set_credentials(&b.mqtt.username, &b.mqtt.password);
    opts.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1000);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let events_stop = stop.clone();
    tokio::spawn(async move {
        while !events_stop.load(Ordering::Relaxed) && eventloop.poll().await.is_ok() {}
    });
    let topic = format!("{}/req/{}/status", b.owner, b.device_id);
    let key = b.key.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut n: u64 = first_id;
        while !stop.load(Ordering::Relaxed) && start.elapsed() < FLOOD_LIMIT {
            n += 1;
            let payload = serde_json::json!({"id": n, "key": key,
                "data": {"connector": 1, "state": "charging"}})
            .to_string();
            let publish = client.publish(&topic, rumqttc::QoS::AtMostOnce, false, payload);
            if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(200), publish).await {
                break;
            }
        }
    });
}

/// How the flooder floods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flood {
    OneConnection,
    Reconnecting,
}

fn measure(
    dir: &std::path::Path,
    bundles: &[FirmwareBundle],
    envs: &[(&str, &str)],
    how: Flood,
    first_id: u64,
) -> (Run, Run, u64, f64) {
    let server = support::start_server(dir, envs);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let result = runtime.block_on(async {
        let broker = server.mqtt.to_string();
        let mut link = Link::connect(&bundles[1], Some(&broker), None)
            .await
            .expect("victim connects");
        // Warm-up, not measured: the first requests pay for connections and caches.
        for _ in 0..10 {
            let data = serde_json::json!({"connector": 1, "state": "available"});
            let _ = link.request("status", data).await;
            tokio::time::sleep(PACE).await;
        }
        let alone = victim(&mut link).await;
        let before = support::requests_answered(dir, &bundles[0].device_id).await;
        let stop = Arc::new(AtomicBool::new(false));
        let flood_started = Instant::now();
        match how {
            Flood::OneConnection => flood(&bundles[0], server.mqtt, stop.clone(), first_id),
            Flood::Reconnecting => {
                flood_reconnecting(&bundles[0], server.mqtt, stop.clone(), first_id)
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let flooded = victim(&mut link).await;
        stop.store(true, Ordering::Relaxed);
        let flood_s = flood_started.elapsed().as_secs_f64();
        // What the server took from the flooder: its requests answered.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let taken = support::requests_answered(dir, &bundles[0].device_id).await - before;
        (alone, flooded, taken, flood_s)
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(server);
    result
}

fn main() {
    let dir = std::env::temp_dir().join(format!("charger-fairness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bundles_path = support::provision(&dir, "fair", 2);
    let bundles = charger_firmware_sim::read_bundles(std::io::BufReader::new(
        std::fs::File::open(&bundles_path).expect("bundles"),
    ))
    .expect("bundles");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("fairness benchmark: a victim's {REQUESTS} status requests (10/s, one at a time), alone and while another charger floods");
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10} {:>10} {:>16}",
        "server",
        "alone p50",
        "alone p99",
        "flood p50",
        "flood p99",
        "unanswered",
        "p50 ratio",
        "p99 ratio",
        "flooder taken"
    );
    let limited = vec![
        ("CHARGER_MQTT_RATE", "20"),
        ("CHARGER_MQTT_BURST", "40"),
        ("CHARGER_MQTT_ABUSE_SECONDS", "3600"),
        ("CHARGER_MQTT_LOGINS_PER_MINUTE", "10"),
    ];
    for (run, (label, envs, how)) in [
        (
            "rate limit on (20/s, burst 40)",
            limited.clone(),
            Flood::OneConnection,
        ),
        (
            "rate limit on, flooder reconnects every 40",
            limited.clone(),
            Flood::Reconnecting,
        ),
        (
            "rate limit lifted",
            vec![
                ("CHARGER_MQTT_RATE", "1000000"),
                ("CHARGER_MQTT_BURST", "1000000"),
            ],
            Flood::OneConnection,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        // Each run's request ids are its own (a repeated id would be answered from the
        // kept answers of an earlier run).
        let first_id = (run as u64 + 1) * 1_000_000_000;
        let (alone, flooded, taken, flood_s) = measure(&dir, &bundles, &envs, how, first_id);
        let ratio = |a: Duration, b: Duration| {
            if a.is_zero() || flooded.unanswered > 0 {
                "n/a".to_owned()
            } else {
                format!("{:.2}", b.as_secs_f64() / a.as_secs_f64())
            }
        };
        let budget = 40.0 + 20.0 * flood_s;
        println!(
            "{label:<44} {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>11} {:>10} {:>10} {:>7} in {:>4.1}s",
            ms(alone.p50),
            ms(alone.p99),
            ms(flooded.p50),
            ms(flooded.p99),
            flooded.unanswered,
            ratio(alone.p50, flooded.p50),
            ratio(alone.p99, flooded.p99),
            taken,
            flood_s,
        );
        if envs == limited {
            println!(
                "{:<44} the flooder's budget over {flood_s:.1} s is {budget:.0} requests: {}",
                "",
                if (taken as f64) <= budget * 1.05 {
                    "held"
                } else {
                    "EXCEEDED"
                }
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
