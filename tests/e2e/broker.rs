//! The embedded broker through the network, driven by real MQTT clients: login, the ACL
//! probe matrix on MQTT 3.1.1 and 5.0 at QoS 0 and 1, presence, freed connection slots,
//! wills, and answers held to the in-flight window.

use std::time::Duration;

use charger_e2e::mqtt::{open, request, Login, Probe, Qos, Version};
use charger_e2e::{spawn_app, TestApp};
use charger_protocol::FirmwareBundle;
use serde_json::json;

const QUIET: Duration = Duration::from_millis(400);
const WAIT: Duration = Duration::from_secs(10);

fn boot_data() -> serde_json::Value {
    json!({"firmware": "1.4.2", "model": "MyBox Plus", "connectors": 1})
}

fn res_filter(b: &FirmwareBundle) -> String {
    format!("{}/res/{}/+", b.owner, b.device_id)
}

fn req_topic(b: &FirmwareBundle, endpoint: &str) -> String {
    format!("{}/req/{}/{endpoint}", b.owner, b.device_id)
}

/// Connects `b`, subscribes to its RES topics and proves a boot round trip.
async fn connected_charger(app: &TestApp, version: Version, b: &FirmwareBundle) -> Probe {
    let mut probe = Probe::connect(version, Login::device(app.app.mqtt_addr, b))
        .await
        .expect("charger connects");
    assert!(probe.subscribe(&res_filter(b), Qos::AtLeastOnce).await);
    boot_round_trip(&mut probe, b, json!(1)).await;
    probe
}

async fn boot_round_trip(probe: &mut Probe, b: &FirmwareBundle, id: serde_json::Value) {
    probe
        .publish(
            &req_topic(b, "boot"),
            Qos::AtLeastOnce,
            false,
            request(b, id.clone(), boot_data()),
        )
        .await;
    let (topic, payload) = probe.next_publish(WAIT).await.expect("a RES to boot");
    assert_eq!(topic, format!("{}/res/{}/boot", b.owner, b.device_id));
    let (res, body) = open(b, &payload);
    assert_eq!(res.code, 200, "{res:?}");
    assert_eq!(serde_json::to_value(&res.id).expect("id"), id);
    let body = body.expect("sealed body");
    assert_eq!(body["owner"], b.owner.as_str());
    assert!(body["heartbeat_s"].as_u64().is_some());
}

#[tokio::test]
async fn an_authenticated_charger_round_trips_a_request_on_3_1_1_and_5_0() {
    let app = spawn_app().await;
    let bundles = app.provision("acme", 2).await;
    for (version, b) in [(Version::V4, &bundles[0]), (Version::V5, &bundles[1])] {
        let probe = connected_charger(&app, version, b).await;
        let device = app.wait_for_online(&b.device_id, true).await;
        assert_eq!(device["firmware"], "1.4.2");
        assert!(device["last_seen"].is_string());
        probe.disconnect().await;
        app.wait_for_online(&b.device_id, false).await;
    }
}

#[tokio::test]
async fn a_wrong_key_gets_401_with_empty_data() {
    let app = spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let mut probe = connected_charger(&app, Version::V4, b).await;
    let mut wrong = b.clone();
    wrong.key = "00".repeat(32);
    probe
        .publish(
            &req_topic(b, "boot"),
            Qos::AtLeastOnce,
            false,
            request(&wrong, json!("k1"), boot_data()),
        )
        .await;
    let (_, payload) = probe.next_publish(WAIT).await.expect("RES");
    let (res, body) = open(b, &payload);
    assert_eq!((res.status, res.code), (0, 401));
    assert_eq!(res.data, "");
    assert!(body.is_none());
}

#[tokio::test]
async fn bad_credentials_are_refused_at_connect() {
    let app = spawn_app().await;
    let bundles = app.provision("acme", 2).await;
    let (a, b) = (&bundles[0], &bundles[1]);
    let addr = app.app.mqtt_addr;
    for version in [Version::V4, Version::V5] {
        let cases = [
            (
                "wrong password",
                Login {
                    password: "nope",
                    ..Login::device(addr, a)
                },
            ),
            (
                "unknown device",
                Login {
                    client_id: "ghost-1",
                    username: "ghost-1",
                    ..Login::device(addr, a)
                },
            ),
            (
                "client id of another device",
                Login {
                    client_id: &b.device_id,
                    ..Login::device(addr, a)
                },
            ),
            (
                "empty password",
                Login {
                    password: "",
                    ..Login::device(addr, a)
                },
            ),
        ];
        for (what, login) in cases {
            let r = Probe::connect(version, login).await;
            assert!(r.is_err(), "{version:?} {what}: accepted");
        }
    }
    let refused = app
        .app
        .broker
        .as_ref()
        .expect("embedded broker")
        .metrics()
        .refused_logins
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused, 8);
}

/// Every forbidden subscription and publish, tried by `attacker` on `version` at `qos`
/// while `victim` works; nothing may reach the attacker, and the victim keeps working.
async fn probe_matrix(version: Version, qos: Qos) {
    let app = spawn_app().await;
    let acme = app.provision("acme", 2).await;
    let beta = app.provision("beta", 1).await;
    let (victim, attacker, foreign) = (&acme[0], &acme[1], &beta[0]);
    let mut victim_probe = connected_charger(&app, version, victim).await;
    let mut bad = connected_charger(&app, version, attacker).await;

    let forbidden_filters = [
        "#".to_owned(),
        "+/req/#".to_owned(),
        "+/res/#".to_owned(),
        format!("acme/res/{}/+", victim.device_id),
        format!("beta/res/{}/+", foreign.device_id),
        format!("acme/req/{}/+", attacker.device_id),
        // Its own topics, but a name outside the API.
        format!("acme/res/{}/not-an-endpoint", attacker.device_id),
        "$share/g/+/req/+/+".to_owned(),
        "$SYS/#".to_owned(),
    ];
    for filter in &forbidden_filters {
        assert!(
            !bad.subscribe(filter, qos).await,
            "{version:?}: {filter} granted"
        );
    }
    // More than 10 violations close a connection: the publish probes use a new one.
    assert!(
        bad.closed_within(QUIET).await.is_none(),
        "9 violations closed the connection"
    );
    bad.disconnect().await;
    drop(bad);
    let mut bad = connected_charger(&app, version, attacker).await;
    // Publishes the ACL must drop: another device's REQ, any RES topic.
    for topic in [
        req_topic(victim, "boot"),
        req_topic(foreign, "boot"),
        format!("acme/res/{}/boot", victim.device_id),
        format!("acme/res/{}/boot", attacker.device_id),
        // Its own REQ topic, but a name outside the API: the router never sees it.
        req_topic(attacker, "teleport"),
    ] {
        bad.publish(&topic, qos, false, request(victim, json!(99), boot_data()))
            .await;
    }
    // A retained publish to its own REQ topic is allowed but loses the retain flag.
    bad.publish(
        &req_topic(attacker, "boot"),
        qos,
        true,
        request(attacker, json!(5), boot_data()),
    )
    .await;
    let (_, own) = bad
        .next_publish(WAIT)
        .await
        .expect("own RES to the retained boot");
    assert_eq!(open(attacker, &own).0.code, 200);

    // The victim still works, and its traffic reaches nobody else.
    boot_round_trip(&mut victim_probe, victim, json!("after-probes")).await;
    assert!(
        victim_probe.publishes_within(QUIET).await.is_empty(),
        "the victim got a forged RES"
    );
    assert!(
        bad.publishes_within(QUIET).await.is_empty(),
        "the attacker received something"
    );
    // Nothing is retained: the server keeps no publish for later subscribers (it has no
    // router; a charger may subscribe only to its own answers).
}

#[tokio::test]
async fn acl_probe_matrix_3_1_1_qos0() {
    probe_matrix(Version::V4, Qos::AtMostOnce).await;
}

#[tokio::test]
async fn acl_probe_matrix_3_1_1_qos1() {
    probe_matrix(Version::V4, Qos::AtLeastOnce).await;
}

#[tokio::test]
async fn acl_probe_matrix_5_0_qos0() {
    probe_matrix(Version::V5, Qos::AtMostOnce).await;
}

#[tokio::test]
async fn acl_probe_matrix_5_0_qos1() {
    probe_matrix(Version::V5, Qos::AtLeastOnce).await;
}

#[tokio::test]
async fn a_will_outside_the_devices_request_topics_is_refused() {
    let app = spawn_app().await;
    let bundles = app.provision("acme", 2).await;
    let (a, other) = (&bundles[0], &bundles[1]);
    let addr = app.app.mqtt_addr;
    for version in [Version::V4, Version::V5] {
        for will in [
            format!("acme/res/{}/boot", a.device_id),
            req_topic(other, "boot"),
            "#".to_owned(),
            "beta/req/x/boot".to_owned(),
        ] {
            let login = Login {
                will: Some((&will, "bye")),
                ..Login::device(addr, a)
            };
            assert!(
                Probe::connect(version, login).await.is_err(),
                "{version:?}: will {will} accepted"
            );
        }
        let own = req_topic(a, "status");
        let login = Login {
            will: Some((&own, "bye")),
            ..Login::device(addr, a)
        };
        let probe = Probe::connect(version, login)
            .await
            .expect("own REQ topic as will is fine");
        probe.disconnect().await;
    }
}

#[tokio::test]
async fn a_topic_alias_closes_the_connection() {
    let app = spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let mut probe = connected_charger(&app, Version::V5, b).await;
    probe
        .publish_with_alias(&req_topic(b, "boot"), 1, request(b, json!(2), boot_data()))
        .await;
    assert!(
        probe.closed_within(WAIT).await.is_some(),
        "a topic alias was accepted"
    );
    // The charger can come back and work.
    connected_charger(&app, Version::V5, b).await;
}

#[tokio::test]
async fn repeated_violations_disconnect_the_device() {
    let app = spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let mut probe = connected_charger(&app, Version::V4, b).await;
    for n in 0..20 {
        probe
            .publish(
                &format!("acme/res/{}/x{n}", b.device_id),
                Qos::AtMostOnce,
                false,
                vec![1],
            )
            .await;
    }
    assert!(
        probe.closed_within(WAIT).await.is_some(),
        "20 violations tolerated"
    );
}

#[tokio::test]
async fn a_second_connection_replaces_the_first() {
    let app = spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let mut first = connected_charger(&app, Version::V4, b).await;
    let mut second = connected_charger(&app, Version::V5, b).await;
    assert!(
        first.closed_within(WAIT).await.is_some(),
        "the first connection stayed"
    );
    boot_round_trip(&mut second, b, json!(3)).await;
    app.wait_for_online(&b.device_id, true).await;
}

/// A raw MQTT 3.1.1 CONNECT (rumqttc's codec: clean session, username and password,
/// optional QoS 0 will).
fn raw_connect(b: &FirmwareBundle, keep_alive: u16, will: Option<(&str, &str)>) -> Vec<u8> {
    let mut connect = rumqttc::Connect::new(b.device_id.as_str());
    connect.keep_alive = keep_alive;
    connect.set_login(b.mqtt.username.as_str(), b.mqtt.password.as_str());
    connect.last_will = will.map(|(topic, message)| {
        rumqttc::LastWill::new(topic, message.as_bytes(), rumqttc::QoS::AtMostOnce, false)
    });
    let mut buf = bytes::BytesMut::new();
    connect.write(&mut buf).expect("encodes");
    buf.to_vec()
}

/// Connects with a raw socket and returns it after a successful CONNACK. A refusal for
/// lack of slots is retried for a while, as a charger would: "server unavailable" from the
/// router, or the socket closed at once at the connection cap. Slots of connections killed
/// a moment ago come back once the server has seen them go.
async fn raw_session(addr: std::net::SocketAddr, connect: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let give_up = std::time::Instant::now() + WAIT;
    loop {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("TCP connect");
        s.set_nodelay(true).expect("nodelay");
        let mut ack = [0u8; 4];
        let acked = match s.write_all(connect).await {
            Ok(()) => tokio::time::timeout(WAIT, s.read_exact(&mut ack))
                .await
                .expect("CONNACK or close in time"),
            Err(e) => Err(e),
        };
        if acked.is_err() && std::time::Instant::now() < give_up {
            // Closed at once: the connection cap.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        acked.expect("CONNACK");
        if ack == [0x20, 2, 0, 3] && std::time::Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert_eq!(ack, [0x20, 2, 0, 0], "CONNACK success");
        return s;
    }
}

#[tokio::test]
async fn abrupt_disconnects_free_their_slots() {
    // 32 connection slots: 8 live connections, and up to 8 whose abrupt end the server
    // has not seen yet. 10,000 distinct chargers each connect and are killed once: that
    // only works if every closed connection gives its slot back.
    let app = charger_e2e::spawn_app_with(charger_e2e::default_db(), |c| {
        c.mqtt_max_connections = 32;
    })
    .await
    .expect("server");
    const PARALLEL: usize = 8;
    const CHARGERS: usize = 10_000;
    let bundles = app.provision("acme", CHARGERS).await;
    let addr = app.app.mqtt_addr;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for chunk in bundles.chunks(CHARGERS / PARALLEL) {
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for b in &chunk {
                let s = raw_session(addr, &raw_connect(b, 30, None)).await;
                // Abrupt: reset the socket instead of a DISCONNECT. A zero linger resets at
                // once; it does not block the thread the way a non-zero one would.
                #[allow(deprecated)]
                s.set_linger(Some(Duration::ZERO)).expect("linger");
                drop(s);
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(240), t)
            .await
            .expect("cycles finish in time")
            .expect("cycle task");
    }
    eprintln!("{CHARGERS} connect/kill cycles in {:?}", started.elapsed());
    let deadline = tokio::time::Instant::now() + WAIT;
    while app
        .app
        .broker
        .as_ref()
        .expect("embedded broker")
        .connected()
        != 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections left open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The router still has room for a full set at once.
    let mut live = Vec::new();
    for b in &bundles[..PARALLEL] {
        live.push(connected_charger(&app, Version::V4, b).await);
    }
}

#[tokio::test]
async fn keep_alive_expiry_closes_the_socket_publishes_the_will_and_marks_offline() {
    use tokio::io::AsyncReadExt as _;
    let app = spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let device = format!("/api/v1/devices/{}", b.device_id);
    // The will is a complete request: the connector reports a fault once the charger is
    // gone, which only happens if the will reaches the request pipeline.
    let will_topic = req_topic(b, "status");
    let will = request(
        b,
        json!("will-1"),
        json!({"connector": 1, "state": "faulted", "error": "GroundFailure"}),
    );
    let will = String::from_utf8(will).expect("JSON");

    let mut s = raw_session(
        app.app.mqtt_addr,
        &raw_connect(b, 1, Some((&will_topic, &will))),
    )
    .await;
    app.wait_for_online(&b.device_id, true).await;
    // Silence: no PINGREQ. The broker must close the socket after 1.5 × 1 s.
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "socket still open: {read:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "closed too early"
    );
    app.wait_for_online(&b.device_id, false).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let connector =
            app.get(&device, charger_e2e::ADMIN_TOKEN).await.body["connectors"][0].clone();
        if connector["state"] == "faulted" {
            assert_eq!(connector["error"], "GroundFailure");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the will did not reach the pipeline: {connector}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn answers_beyond_the_in_flight_window_wait_for_acknowledgements() {
    use tokio::io::AsyncWriteExt as _;
    // A charger that does not acknowledge its answers gets `CHARGER_MQTT_MAX_INFLIGHT` of
    // them; the next ones wait, in order, and come once it acknowledges.
    let app = charger_e2e::spawn_app_with(charger_e2e::default_db(), |c| {
        c.mqtt_max_inflight = 2;
        c.mqtt_echo = true;
    })
    .await
    .expect("server");
    let b = &app.provision("acme", 1).await[0];
    let mut s = raw_session(app.app.mqtt_addr, &raw_connect(b, 30, None)).await;
    let mut out = bytes::BytesMut::new();
    let mut subscribe = rumqttc::Subscribe::new(res_filter(b), rumqttc::QoS::AtLeastOnce);
    subscribe.pkid = 1;
    subscribe.write(&mut out).expect("encodes");
    for i in 0..4u16 {
        let mut publish = rumqttc::Publish::new(
            req_topic(b, "echo"),
            rumqttc::QoS::AtLeastOnce,
            vec![b'0' + i as u8],
        );
        publish.pkid = 10 + i;
        publish.write(&mut out).expect("encodes");
    }
    s.write_all(&out).await.expect("write");
    let mut inbuf = bytes::BytesMut::new();
    let first = read_packets(&mut s, &mut inbuf, Duration::from_secs(1)).await;
    let answers = |packets: &[rumqttc::Packet]| -> Vec<(u16, Vec<u8>)> {
        packets
            .iter()
            .filter_map(|p| match p {
                rumqttc::Packet::Publish(p) => Some((p.pkid, p.payload.to_vec())),
                _ => None,
            })
            .collect()
    };
    let acks = first
        .iter()
        .filter(|p| matches!(p, rumqttc::Packet::PubAck(_)))
        .count();
    assert_eq!(acks, 4, "every request acknowledged: {first:?}");
    let held = answers(&first);
    assert_eq!(
        held.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        vec![b"0".to_vec(), b"1".to_vec()],
        "two answers in flight: {first:?}"
    );
    out.clear();
    for (pkid, _) in &held {
        rumqttc::PubAck::new(*pkid)
            .write(&mut out)
            .expect("encodes");
    }
    s.write_all(&out).await.expect("write");
    let rest = answers(&read_packets(&mut s, &mut inbuf, Duration::from_secs(1)).await);
    assert_eq!(
        rest.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        vec![b"2".to_vec(), b"3".to_vec()],
        "the waiting answers come after the acknowledgements"
    );
    assert!(
        rest.iter().all(|(pkid, _)| *pkid != 0),
        "QoS 1, with packet ids"
    );
}

#[tokio::test]
async fn qos_2_requests_are_taken_once_and_unsubscribing_stops_the_answers() {
    use tokio::io::AsyncWriteExt as _;
    let app = charger_e2e::spawn_app_with(charger_e2e::default_db(), |c| {
        c.mqtt_echo = true;
    })
    .await
    .expect("server");
    let b = &app.provision("acme", 1).await[0];
    let mut s = raw_session(app.app.mqtt_addr, &raw_connect(b, 30, None)).await;
    let mut inbuf = bytes::BytesMut::new();
    let mut out = bytes::BytesMut::new();
    // Subscribed at QoS 2: answers come at QoS 1, the server's highest.
    let mut subscribe = rumqttc::Subscribe::new(res_filter(b), rumqttc::QoS::ExactlyOnce);
    subscribe.pkid = 1;
    subscribe.write(&mut out).expect("encodes");
    let mut publish = rumqttc::Publish::new(
        req_topic(b, "echo"),
        rumqttc::QoS::ExactlyOnce,
        b"q2".to_vec(),
    );
    publish.pkid = 7;
    publish.write(&mut out).expect("encodes");
    s.write_all(&out).await.expect("write");
    let got = read_packets(&mut s, &mut inbuf, Duration::from_millis(800)).await;
    let suback = got.iter().find_map(|p| match p {
        rumqttc::Packet::SubAck(a) => Some(a.return_codes.clone()),
        _ => None,
    });
    assert_eq!(
        suback,
        Some(vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|p| matches!(p, rumqttc::Packet::PubRec(r) if r.pkid == 7)),
        "PUBREC for the QoS 2 request: {got:?}"
    );
    let answers: Vec<_> = got
        .iter()
        .filter_map(|p| match p {
            rumqttc::Packet::Publish(p) => Some((p.qos, p.payload.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(answers, vec![(rumqttc::QoS::AtLeastOnce, b"q2".to_vec())]);
    out.clear();
    rumqttc::PubRel::new(7).write(&mut out).expect("encodes");
    let mut unsubscribe = rumqttc::Unsubscribe::new(res_filter(b));
    unsubscribe.pkid = 2;
    unsubscribe.write(&mut out).expect("encodes");
    let mut publish = rumqttc::Publish::new(
        req_topic(b, "echo"),
        rumqttc::QoS::AtLeastOnce,
        b"late".to_vec(),
    );
    publish.pkid = 8;
    publish.write(&mut out).expect("encodes");
    s.write_all(&out).await.expect("write");
    let got = read_packets(&mut s, &mut inbuf, Duration::from_millis(800)).await;
    assert!(
        got.iter()
            .any(|p| matches!(p, rumqttc::Packet::PubComp(c) if c.pkid == 7)),
        "PUBCOMP after PUBREL: {got:?}"
    );
    assert!(
        got.iter()
            .any(|p| matches!(p, rumqttc::Packet::UnsubAck(a) if a.pkid == 2)),
        "UNSUBACK: {got:?}"
    );
    assert!(
        got.iter()
            .any(|p| matches!(p, rumqttc::Packet::PubAck(a) if a.pkid == 8)),
        "the request is still taken: {got:?}"
    );
    assert!(
        !got.iter().any(|p| matches!(p, rumqttc::Packet::Publish(_))),
        "no answer without a subscription: {got:?}"
    );
}

/// Reads MQTT 3.1.1 packets from a raw session for `within`.
async fn read_packets(
    s: &mut tokio::net::TcpStream,
    buf: &mut bytes::BytesMut,
    within: Duration,
) -> Vec<rumqttc::Packet> {
    use tokio::io::AsyncReadExt as _;
    let deadline = tokio::time::Instant::now() + within;
    let mut packets = Vec::new();
    loop {
        while let Ok(p) = rumqttc::Packet::read(buf, 1 << 20) {
            packets.push(p);
        }
        match tokio::time::timeout_at(deadline, s.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return packets,
        }
    }
}

/// Runs a Mosquitto client; `None` when Mosquitto's clients are not installed (outside CI).
async fn mosquitto(program: &str, args: &[String]) -> Option<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(20), out).await {
        Ok(Ok(out)) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{program} is missing in CI: .ci/run installs mosquitto-clients"
            );
            eprintln!("{program} not installed: skipping the Mosquitto probes");
            None
        }
        Ok(Err(e)) => panic!("{program}: {e}"),
        Err(_) => panic!("{program} did not end in time"),
    }
}

#[tokio::test]
async fn mosquitto_clients_get_nothing_they_should_not() {
    let app = spawn_app().await;
    let acme = app.provision("acme", 2).await;
    let (victim, attacker) = (&acme[0], &acme[1]);
    let port = app.app.mqtt_addr.port().to_string();
    let base = |b: &FirmwareBundle, version: &str| -> Vec<String> {
        [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            version,
            "-i",
            &b.device_id,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "-u".into(),
            b.mqtt.username.clone(),
            "-P".into(),
            b.mqtt.password.clone(),
        ])
        .collect()
    };
    let mut victim_probe = connected_charger(&app, Version::V4, victim).await;
    for version in ["mqttv311", "mqttv5"] {
        // The spy subscribes to everything and listens while the victim works.
        let mut spy_args = base(attacker, version);
        spy_args.extend(
            ["-v", "-W", "3", "-t", "#", "-t", "+/req/#", "-t", "+/res/#"]
                .iter()
                .map(|s| s.to_string()),
        );
        spy_args.push("-t".into());
        spy_args.push(res_filter(victim));
        let spy = tokio::spawn(async move { mosquitto("mosquitto_sub", &spy_args).await });
        // A forged request from the attacker onto the victim's REQ topic.
        let mut forge = base(attacker, version);
        forge.extend(["-q", "1", "-t"].iter().map(|s| s.to_string()));
        forge.push(req_topic(victim, "boot"));
        forge.push("-m".into());
        forge.push(String::from_utf8(request(victim, json!("forged"), boot_data())).expect("utf8"));
        let Some(_) = mosquitto("mosquitto_pub", &forge).await else {
            return;
        };
        boot_round_trip(&mut victim_probe, victim, json!(version)).await;
        let seen = spy.await.expect("spy task").unwrap_or_default();
        assert!(seen.trim().is_empty(), "{version}: the spy saw {seen:?}");
        assert!(
            victim_probe.publishes_within(QUIET).await.is_empty(),
            "{version}: forged RES"
        );
    }
    // And the positive case through Mosquitto's own codec: a sealed answer to a request.
    let mut rr = base(victim, "mqttv5");
    rr.extend(["-W", "5", "-t"].iter().map(|s| s.to_string()));
    rr.push(req_topic(victim, "boot"));
    rr.push("-e".into());
    rr.push(format!("{}/res/{}/boot", victim.owner, victim.device_id));
    rr.push("-m".into());
    rr.push(String::from_utf8(request(victim, json!(77), boot_data())).expect("utf8"));
    drop(victim_probe);
    let out = mosquitto("mosquitto_rr", &rr)
        .await
        .expect("mosquitto_rr ran");
    let (res, body) = open(victim, out.trim().as_bytes());
    assert_eq!(res.code, 200, "{out}");
    assert_eq!(body.expect("sealed body")["owner"], "acme");
}

#[tokio::test]
async fn mqtt_over_tls_round_trips_a_request() {
    use rumqttc::{Event, Packet, TlsConfiguration, Transport};
    let certs = charger_e2e::TestCa::new();
    let ca = certs.ca.clone();
    // MQTT over TLS only: the REST API stays plain here (CHARGER_HTTP_TLS=off).
    let app = charger_e2e::spawn_app_with(charger_e2e::default_db(), |c| {
        c.tls_cert = Some(certs.cert.clone());
        c.tls_key = Some(certs.key.clone());
        c.http_tls = charger_server::config::HttpTls::Off;
    })
    .await
    .expect("server");
    let tls_addr = app.app.mqtt_tls_addr.expect("TLS listener");
    let b = &app.provision("acme", 1).await[0];

    // Plain MQTT on the TLS port gets no CONNACK.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(tls_addr)
            .await
            .expect("connect");
        s.write_all(&raw_connect(b, 30, None)).await.expect("write");
        let mut buf = [0u8; 4];
        let read = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("answer in time");
        assert!(
            !matches!(read, Ok(4) if buf == [0x20, 2, 0, 0]),
            "plaintext accepted on TLS"
        );
    }

    let mut opts = rumqttc::MqttOptions::new(&b.device_id, "127.0.0.1", tls_addr.port());
    opts.set_credentials(&b.mqtt.username, &b.mqtt.password);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: std::fs::read(&ca).expect("CA certificate"),
        alpn: None,
        client_auth: None,
    }));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 10);
    client
        .subscribe(res_filter(b), rumqttc::QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    client
        .publish(
            req_topic(b, "boot"),
            rumqttc::QoS::AtLeastOnce,
            false,
            request(b, json!(1), boot_data()),
        )
        .await
        .expect("publish");
    let res = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return p.payload.to_vec(),
                Ok(_) => {}
                Err(e) => panic!("TLS connection failed: {e}"),
            }
        }
    })
    .await
    .expect("a RES over TLS");
    let (res, body) = open(b, &res);
    assert_eq!(res.code, 200);
    assert_eq!(body.expect("sealed body")["owner"], "acme");
}
