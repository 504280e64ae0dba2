//! A server killed with SIGKILL under load loses no session whose answer a charger
//! received: after the restart, every answered request repeated with its id gets the same
//! answer, and every session a charger was told about exists.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use charger_protocol::{open_response, DeviceKey, FirmwareBundle, ResponseEnvelope};
use serde_json::{json, Value};
use support::{command, Server, TempDir};
use tokio::sync::mpsc;

const ADMIN: &str = "cht_durability_test_admin_token_0123456789";
const WAIT: Duration = Duration::from_secs(10);

fn start_server(dir: &std::path::Path) -> Server {
    let mut cmd = command(dir);
    cmd.env("CHARGER_ADMIN_TOKEN", ADMIN);
    support::start_command(cmd)
}

fn addr_from(server: &mut Server, message: &str, field: &str) -> String {
    let line = server.wait_for(message);
    let start = line.find(field).expect("address field") + field.len();
    line[start..]
        .split_whitespace()
        .next()
        .expect("address")
        .to_owned()
}

/// A charger on rumqttc: sends a REQ and waits for its RES.
struct Charger {
    client: rumqttc::AsyncClient,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    b: FirmwareBundle,
    task: tokio::task::JoinHandle<()>,
}

impl Charger {
    async fn connect(mqtt: &str, b: &FirmwareBundle) -> Option<Charger> {
        let (host, port) = mqtt.rsplit_once(':')?;
        let mut opts = rumqttc::MqttOptions::new(&b.device_id, host, port.parse().ok()?);
        opts.set_credentials(&b.mqtt.username, &b.mqtt.password);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 16);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = tx.send(p.payload.to_vec());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let filter = format!("{}/res/{}/+", b.owner, b.device_id);
        client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .await
            .ok()?;
        tokio::time::timeout(WAIT, ready).await.ok()?.ok()?;
        Some(Charger {
            client,
            rx,
            b: b.clone(),
            task,
        })
    }

    /// (code, body) of the answer, or None when the server did not answer (it died).
    async fn call(&mut self, id: i64, endpoint: &str, data: &Value) -> Option<(u16, Value)> {
        let topic = format!("{}/req/{}/{endpoint}", self.b.owner, self.b.device_id);
        let payload = json!({"id": id, "key": self.b.key, "data": data}).to_string();
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .ok()?;
        loop {
            let raw = tokio::time::timeout(Duration::from_secs(3), self.rx.recv())
                .await
                .ok()??;
            let res: ResponseEnvelope = serde_json::from_slice(&raw).expect("RES");
            if res.id != Some(charger_protocol::RequestId::Int(id)) {
                continue;
            }
            let key = DeviceKey::from_hex(&self.b.key).expect("key");
            let body = open_response(&key, &res).expect("authentic");
            return Some((res.code, serde_json::from_slice(&body).expect("JSON")));
        }
    }
}

impl Drop for Charger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request a charger made and the answer it got.
type Answered = Vec<(i64, String, Value, (u16, Value))>;

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Charges in a loop (start, values, stop, with increasing ids) until the server stops
/// answering; returns every answered request.
async fn charge_until_killed(mut c: Charger, tag: String, count: Arc<AtomicUsize>) -> Answered {
    let mut answered = Answered::new();
    let mut id = 0;
    let mut meter = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        id += 1;
        let start =
            json!({"tag": tag, "connector": 1, "meter_start_wh": meter, "started_at": now_text()});
        let Some(ans) = c.call(id, "session-start", &start).await else {
            break;
        };
        assert_eq!(ans.0, 201, "{ans:?}");
        let session = ans.1["session_id"].clone();
        answered.push((id, "session-start".into(), start, ans));
        count.fetch_add(1, Ordering::Relaxed);
        // Sessions of milliseconds: the few Wh a meter can report in no time (the server
        // refuses more than the connector can deliver).
        meter += 5;
        id += 1;
        let values =
            json!({"session_id": session, "samples": [{"at": now_text(), "energy_wh": meter}]});
        let Some(ans) = c.call(id, "meter-values", &values).await else {
            break;
        };
        answered.push((id, "meter-values".into(), values, ans));
        count.fetch_add(1, Ordering::Relaxed);
        meter += 5;
        id += 1;
        let stop = json!({"session_id": session, "meter_stop_wh": meter, "stopped_at": now_text(), "reason": "local"});
        let Some(ans) = c.call(id, "session-stop", &stop).await else {
            break;
        };
        assert_eq!(ans.0, 200, "{ans:?}");
        answered.push((id, "session-stop".into(), stop, ans));
        count.fetch_add(1, Ordering::Relaxed);
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_answered_session() {
    const CHARGERS: usize = 16;
    let dir = TempDir::new();
    let mut server = start_server(&dir.0);
    let http = addr_from(&mut server, "REST API listening", "http_addr=");
    let mqtt = addr_from(&mut server, "MQTT broker listening", "mqtt_addr=");
    let rest = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        rest.post(format!("http://{http}{path}"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    let a = post("/api/v1/owners", json!({"id": "acme", "name": "Acme"}))
        .await
        .expect("REST");
    assert_eq!(a.status(), 201);
    let a = post(
        "/api/v1/tariffs",
        json!({"id": "t", "owner": "acme", "currency": "EUR", "energy_per_kwh": "0.25",
               "time_per_hour": "0", "session_fee": "0.10", "tax_rate": "0.2", "default": true}),
    )
    .await
    .expect("REST");
    assert_eq!(a.status(), 201);
    let a = post(
        "/api/v1/devices/bulk",
        json!({"owner": "acme", "prefix": "k-", "count": CHARGERS}),
    )
    .await
    .expect("REST");
    let body: Value = a.json().await.expect("JSON");
    let bundles: Vec<FirmwareBundle> =
        serde_json::from_value(body["devices"].clone()).expect("bundles");
    let mut tags = Vec::new();
    for i in 0..CHARGERS {
        let uid = format!("{:08X}", 0xA000_0000_u32 + u32::try_from(i).expect("small"));
        let a = post("/api/v1/tags", json!({"uid": uid, "owner": "acme"}))
            .await
            .expect("REST");
        assert_eq!(a.status(), 201);
        tags.push(uid);
    }

    // Load, then SIGKILL mid-flight.
    let mut runs = Vec::new();
    let count = Arc::new(AtomicUsize::new(0));
    for (b, tag) in bundles.iter().zip(&tags) {
        let c = Charger::connect(&mqtt, b).await.expect("connects");
        runs.push(tokio::spawn(charge_until_killed(
            c,
            tag.clone(),
            count.clone(),
        )));
    }
    // Kill once the fleet is well under way (or after 20 s, whatever it reached).
    let give_up = Instant::now() + Duration::from_secs(20);
    while count.load(Ordering::Relaxed) < CHARGERS * 30 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let mut answered = Vec::new();
    for r in runs {
        answered.push(r.await.expect("charger task"));
    }
    let total: usize = answered.iter().map(Vec::len).sum();
    eprintln!("{total} requests answered before the kill");
    assert!(total >= CHARGERS * 3, "the load ran: {total}");
    drop(server);

    // Restart on the same data: every answered request, repeated, gets the same answer.
    let mut server = start_server(&dir.0);
    let mqtt = addr_from(&mut server, "MQTT broker listening", "mqtt_addr=");
    for (b, requests) in bundles.iter().zip(&answered) {
        let mut c = Charger::connect(&mqtt, b).await.expect("reconnects");
        for (id, endpoint, data, first) in requests {
            let again = c
                .call(*id, endpoint, data)
                .await
                .expect("answered after restart");
            assert_eq!(&again, first, "{} {endpoint} id {id}", b.device_id);
        }
        // Every session the charger was told about exists (a fresh id: 409 closed, or
        // 200 for the one left open; never 404).
        let mut fresh = 1_000_000;
        for (_, endpoint, data, (_, body)) in requests {
            if endpoint == "session-start" {
                fresh += 1;
                // A reading the open session can take: its start plus the 10 Wh a meter
                // may report in no time (at least its one sample, 5 Wh over the start).
                let wh = data["meter_start_wh"].as_i64().expect("start") + 10;
                let probe = json!({"session_id": body["session_id"], "samples": [{"at": now_text(), "energy_wh": wh}]});
                let (code, _) = c.call(fresh, "meter-values", &probe).await.expect("answer");
                assert!(
                    code == 409 || code == 200,
                    "session {} lost: {code}",
                    body["session_id"]
                );
            }
        }
    }
}
