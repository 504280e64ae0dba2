//! Broker benchmark (not a test): run with `cargo bench -p charger-server --bench broker`.
//!
//! It starts the release `charger-server` binary as its own process (SQLite, free
//! loopback ports), provisions 10,000 chargers, and prints:
//! 1. the QoS 1 round trip through our front-end (PUBLISH, handed to the dispatcher, PUBACK),
//!    sequential, p50/p99;
//! 2. the full `boot` request path (REQ to sealed RES: envelope, key check, a durable
//!    SQLite write, sealing), p50/p99, with its ratio to (1);
//! 3. the server's resident memory per idle connected charger, at 10,000 chargers, and
//!    the time it took them all to connect.
//!
//! Every loop is bounded in count and time; the server is killed at the end.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{rss_kib, start_server};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const CHARGERS: usize = 10_000;
const PUBACK_ROUNDS: usize = 20_000;
const BOOT_ROUNDS: usize = 3_000;
const WARMUP: usize = 500;
const TIME_LIMIT: Duration = Duration::from_secs(120);

#[derive(serde::Deserialize)]
struct Bundle {
    device_id: String,
    owner: String,
    key: String,
    mqtt: Mqtt,
}

#[derive(serde::Deserialize)]
struct Mqtt {
    password: String,
}

/// Encodes a packet with rumqttc's MQTT 3.1.1 codec (the simulator's client).
fn encode(
    write: impl FnOnce(&mut bytes::BytesMut) -> Result<usize, rumqttc::mqttbytes::Error>,
) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    write(&mut buf).expect("encodes");
    buf.to_vec()
}

fn connect_packet(b: &Bundle, keep_alive: u16) -> Vec<u8> {
    let mut connect = rumqttc::Connect::new(b.device_id.as_str());
    connect.keep_alive = keep_alive;
    connect.set_login(b.device_id.as_str(), b.mqtt.password.as_str());
    encode(|buf| connect.write(buf))
}

fn publish_qos1(topic: &str, pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut publish = rumqttc::Publish::new(topic, rumqttc::QoS::AtLeastOnce, payload);
    publish.pkid = pkid;
    encode(|buf| publish.write(buf))
}

fn subscribe(filter: &str) -> Vec<u8> {
    let mut sub = rumqttc::Subscribe::new(filter, rumqttc::QoS::AtLeastOnce);
    sub.pkid = 1;
    encode(|buf| sub.write(buf))
}

/// Reads one MQTT frame: (first byte, body).
async fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), read_frame_inner(s))
        .await
        .expect("a frame from the server within 10 s")
}

async fn read_frame_inner(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let first = s.read_u8().await.expect("frame");
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let b = s.read_u8().await.expect("length");
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.expect("body");
    (first, body)
}

async fn connect(addr: SocketAddr, b: &Bundle, keep_alive: u16) -> TcpStream {
    connect_with(addr, connect_packet(b, keep_alive)).await
}

async fn connect_with(addr: SocketAddr, packet: Vec<u8>) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("TCP connect");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(&packet).await.expect("CONNECT");
    let (first, body) = read_frame(&mut s).await;
    assert_eq!(
        (first, body.as_slice()),
        (0x20, &[0u8, 0][..]),
        "CONNACK success"
    );
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Sequential QoS 1 PUBLISH -> PUBACK round trips.
async fn puback_round_trips(addr: SocketAddr, b: &Bundle) -> Vec<Duration> {
    let mut s = connect(addr, b, 600).await;
    // `echo` (on in this server) answers without the database: the PUBACK is the
    // front-end's hand-off to the dispatcher.
    let topic = format!("{}/req/{}/echo", b.owner, b.device_id);
    let started = Instant::now();
    let mut out = Vec::with_capacity(PUBACK_ROUNDS);
    for n in 0..WARMUP + PUBACK_ROUNDS {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        let pkid = (n % 65_000 + 1) as u16;
        let t = Instant::now();
        s.write_all(&publish_qos1(&topic, pkid, b"{}"))
            .await
            .expect("publish");
        loop {
            let (first, body) = read_frame(&mut s).await;
            if first == 0x40 && body == pkid.to_be_bytes() {
                break;
            }
        }
        if n >= WARMUP {
            out.push(t.elapsed());
        }
    }
    out
}

/// Sequential `boot` requests: REQ -> sealed RES.
async fn boot_round_trips(addr: SocketAddr, b: &Bundle) -> Vec<Duration> {
    let mut s = connect(addr, b, 600).await;
    s.write_all(&subscribe(&format!("{}/res/{}/+", b.owner, b.device_id)))
        .await
        .expect("subscribe");
    loop {
        let (first, _) = read_frame(&mut s).await;
        if first == 0x90 {
            break;
        }
    }
    let topic = format!("{}/req/{}/boot", b.owner, b.device_id);
    let started = Instant::now();
    let mut out = Vec::with_capacity(BOOT_ROUNDS);
    for n in 0..WARMUP + BOOT_ROUNDS {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        let payload = serde_json::json!({
            "id": n, "key": b.key,
            "data": {"firmware": "1.0.0", "model": "MyBox", "connectors": 1}
        })
        .to_string();
        let pkid = (n % 65_000 + 1) as u16;
        let t = Instant::now();
        s.write_all(&publish_qos1(&topic, pkid, payload.as_bytes()))
            .await
            .expect("publish");
        loop {
            let (first, body) = read_frame(&mut s).await;
            if first >> 4 == 3 {
                // The RES comes at the subscription's QoS 1: acknowledge it, as a
                // charger must, or the router stops delivering after its in-flight limit.
                if first & 0x06 == 0x02 {
                    let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    let pkid = [body[2 + topic_len], body[3 + topic_len]];
                    s.write_all(&[0x40, 2, pkid[0], pkid[1]])
                        .await
                        .expect("PUBACK");
                }
                break;
            }
        }
        if n >= WARMUP {
            out.push(t.elapsed());
        }
    }
    out
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.50);
    println!(
        "{name:<34} n={:<6} p50={:>8.1} us  p90={:>8.1} us  p99={:>8.1} us  max={:>9.1} us",
        samples.len(),
        micros(p50),
        micros(percentile(&samples, 0.90)),
        micros(percentile(&samples, 0.99)),
        micros(*samples.last().expect("samples")),
    );
    p50
}

fn main() {
    let dir = std::env::temp_dir().join(format!("charger-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bundles_path = support::provision(&dir, "bench", CHARGERS);
    let bundles: Vec<Bundle> = std::fs::read_to_string(&bundles_path)
        .expect("bundles")
        .lines()
        .map(|l| serde_json::from_str(l).expect("bundle"))
        .collect();

    let server = start_server(&dir, &[("CHARGER_MQTT_ECHO", "true")]);
    let addr = server.mqtt;
    let pid = server.child.id();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("charger-server broker benchmark: {CHARGERS} chargers, server pid {pid}, {addr}");

    runtime.block_on(async {
        let puback = report(
            "QoS 1 PUBLISH->PUBACK (front-end)",
            puback_round_trips(addr, &bundles[0]).await,
        );
        let boot = report(
            "boot REQ->RES (full path, durable)",
            boot_round_trips(addr, &bundles[1]).await,
        );
        println!(
            "boot p50 / PUBACK p50 = {:.2}",
            boot.as_secs_f64() / puback.as_secs_f64()
        );

        // Idle chargers: resident memory per connection.
        let before = rss_kib(pid);
        let started = Instant::now();
        let mut sockets = Vec::with_capacity(CHARGERS);
        let mut pending = Vec::new();
        for chunk in bundles[2..].chunks(256) {
            for b in chunk {
                pending.push(connect_with(addr, connect_packet(b, 600)));
            }
            for s in futures_join(std::mem::take(&mut pending)).await {
                sockets.push(s);
            }
            if started.elapsed() > TIME_LIMIT {
                break;
            }
        }
        let connected_in = started.elapsed();
        // Let the server settle before reading its memory: idle worker threads of the
        // runtime's blocking pool exit after 10 s.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let after = rss_kib(pid);
        let n = sockets.len() as u64;
        println!(
            "idle chargers: {n} connected in {:.2} s; server RSS {before} KiB -> {after} KiB; \
             {:.2} KiB per idle charger",
            connected_in.as_secs_f64(),
            (after.saturating_sub(before)) as f64 / n as f64
        );
        drop(sockets);
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Awaits a batch of connects concurrently.
async fn futures_join<F: std::future::Future<Output = TcpStream> + Send + 'static>(
    futures: Vec<F>,
) -> Vec<TcpStream> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("connect task"));
    }
    out
}
