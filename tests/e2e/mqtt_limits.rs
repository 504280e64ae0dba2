//! The broker's limits, tried the way a faulty charger or a hostile socket would: a
//! charger flooding requests is slowed, then disconnected, while another is answered
//! throughout; oversized CONNECTs and sockets that never log in are closed before login;
//! subscriptions are capped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use charger_e2e::mqtt::{request, Charger, Login, Probe, Qos, Version};
use charger_e2e::{closed_within, default_db, spawn_app_with};
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_flooding_charger_is_slowed_then_disconnected_while_another_is_answered() {
    let app = spawn_app_with(default_db(), |c| {
        c.mqtt_rate = 20;
        c.mqtt_burst = 40;
        c.mqtt_abuse_seconds = 2;
    })
    .await
    .expect("server");
    let bundles = app.provision("acme", 2).await;
    let (flooder, victim) = (&bundles[0], &bundles[1]);

    // The flooder: valid `status` requests as fast as its socket takes them, for at most
    // 8 s or 100,000 requests.
    let mut opts =
        rumqttc::MqttOptions::new(&flooder.device_id, "127.0.0.1", app.app.mqtt_addr.port());
    opts.set_credentials(&flooder.mqtt.username, &flooder.mqtt.password);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1000);
    let closed = Arc::new(AtomicBool::new(false));
    let seen_closed = closed.clone();
    let events = tokio::spawn(async move {
        while eventloop.poll().await.is_ok() {}
        seen_closed.store(true, Ordering::Relaxed);
    });
    let topic = format!("acme/req/{}/status", flooder.device_id);
    let flood_closed = closed.clone();
    let fb = flooder.clone();
    let queued = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flood_queued = queued.clone();
    let flood = tokio::spawn(async move {
        let start = Instant::now();
        let mut sent = 0u64;
        for i in 0..100_000 {
            if start.elapsed() > Duration::from_secs(8) || flood_closed.load(Ordering::Relaxed) {
                break;
            }
            let payload = request(&fb, json!(i), json!({"connector": 1, "state": "charging"}));
            let publish = client.publish(&topic, rumqttc::QoS::AtMostOnce, false, payload);
            match tokio::time::timeout(Duration::from_secs(1), publish).await {
                Ok(Ok(())) => {
                    sent += 1;
                    flood_queued.store(sent, Ordering::Relaxed);
                }
                Ok(Err(_)) => break,
                Err(_) => {} // the socket is held back: keep trying until the deadline
            }
        }
        sent
    });
    // The flood is under way once the flooder's client has 200 requests out or queued
    // (five times its burst; its socket sends them as fast as the server reads).
    let deadline = Instant::now() + WAIT;
    while queued.load(Ordering::Relaxed) < 200 {
        assert!(Instant::now() < deadline, "the flood never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The victim, during the flood: every request answered within seconds.
    let mut c = Charger::connect(&app, victim).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let (code, _) = tokio::time::timeout(
            Duration::from_secs(5),
            c.call("status", json!({"connector": 1, "state": "available"})),
        )
        .await
        .expect("the victim is answered within 5 s during the flood");
        assert_eq!(code, 200);
        slowest = slowest.max(t.elapsed());
    }
    eprintln!("victim's slowest answer during the flood: {slowest:?}");

    // The flooder is held to its rate, then disconnected for staying over it.
    let deadline = Instant::now() + WAIT;
    while !closed.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "the flooder was never disconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = flood.await.expect("flood task");
    events.abort();
    eprintln!("the flooder got {sent} requests onto its socket");
    assert!(app.limit_hits("mqtt_rate").await >= 1);
    assert!(app.limit_hits("mqtt_rate_disconnect").await >= 1);
    // And the victim still works after it.
    let (code, _) = c
        .call("status", json!({"connector": 1, "state": "available"}))
        .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn oversized_connects_and_sockets_that_never_log_in_are_closed() {
    let app = spawn_app_with(default_db(), |c| c.mqtt_max_pending_logins = 4)
        .await
        .expect("server");
    let addr = app.app.mqtt_addr;
    // Most of a 1 MiB CONNECT: closed as soon as its header says how big it is.
    let mut big = TcpStream::connect(addr).await.expect("connect");
    let mut header = vec![0x10, 0x80, 0x80, 0x40]; // remaining length 1,048,576
    header.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 30]);
    let _ = big.write_all(&header).await;
    let _ = big.write_all(&vec![b'x'; 64 * 1024]).await;
    assert!(
        closed_within(&mut big, WAIT).await,
        "oversized CONNECT kept"
    );
    assert!(app.limit_hits("mqtt_connect_size").await >= 1);

    // Four sockets logging in (silently) take every login slot: a fifth is closed at once.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let mut fifth = TcpStream::connect(addr).await.expect("connect");
        if closed_within(&mut fifth, Duration::from_millis(500)).await {
            break;
        }
        assert!(Instant::now() < deadline, "a fifth socket was left waiting");
    }
    assert!(app.limit_hits("mqtt_pending_logins").await >= 1);
    drop(idle);
    // The slots come back: a charger logs in.
    let b = &app.provision("acme", 1).await[0];
    let deadline = Instant::now() + WAIT;
    loop {
        if Probe::connect(Version::V4, Login::device(addr, b))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no login after the idle sockets went"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn subscriptions_are_capped_per_connection() {
    let app = spawn_app_with(default_db(), |c| c.mqtt_max_subscriptions = 3)
        .await
        .expect("server");
    let b = &app.provision("acme", 1).await[0];
    let mut probe = Probe::connect(Version::V5, Login::device(app.app.mqtt_addr, b))
        .await
        .expect("connects");
    let filter = |name: &str| format!("acme/res/{}/{name}", b.device_id);
    for name in ["boot", "status", "authorize"] {
        assert!(
            probe.subscribe(&filter(name), Qos::AtLeastOnce).await,
            "{name}"
        );
    }
    // The same filter again is no new subscription; a fourth distinct one is refused.
    assert!(probe.subscribe(&filter("boot"), Qos::AtLeastOnce).await);
    assert!(!probe.subscribe(&filter("+"), Qos::AtLeastOnce).await);
    assert!(app.limit_hits("mqtt_subscriptions").await >= 1);
    // The connection still works on the filters it holds.
    probe
        .publish(
            &format!("acme/req/{}/boot", b.device_id),
            Qos::AtLeastOnce,
            false,
            request(
                b,
                json!(1),
                json!({"firmware": "1", "model": "m", "connectors": 1}),
            ),
        )
        .await;
    assert!(probe.next_publish(WAIT).await.is_some(), "the boot answer");
}
