//! The embedded broker through the network, driven by real MQTT clients: login, the ACL
//! probe matrix on MQTT 3.1.1 and 5.0 at QoS 0 and 1, presence, and freed router slots.

use std::time::Duration;

use charger_e2e::mqtt::{open, request, Login, Probe, Qos, Version};
use charger_e2e::{spawn_app, TestApp, ADMIN_TOKEN};
use charger_protocol::FirmwareBundle;
use rumqttd::Notification;
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

async fn wait_for_online(app: &TestApp, device: &str, online: bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a = app
            .get(&format!("/api/v1/devices/{device}"), ADMIN_TOKEN)
            .await;
        if a.body["online"] == online {
            return a.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{device} online={online} never seen: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_authenticated_charger_round_trips_a_request_on_3_1_1_and_5_0() {
    let app = spawn_app().await;
    let bundles = app.provision("acme", 2).await;
    for (version, b) in [(Version::V4, &bundles[0]), (Version::V5, &bundles[1])] {
        let probe = connected_charger(&app, version, b).await;
        let device = wait_for_online(&app, &b.device_id, true).await;
        assert_eq!(device["firmware"], "1.4.2");
        assert!(device["last_seen"].is_string());
        probe.disconnect().await;
        wait_for_online(&app, &b.device_id, false).await;
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
        "8 violations closed the connection"
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

    // No retained message is left for a later subscriber of REQ topics.
    let (mut tx, mut rx) = app
        .app
        .broker
        .link("test.retained-check")
        .await
        .expect("link");
    let rx = tokio::task::spawn_blocking(move || {
        tx.subscribe("+/req/+/+").expect("subscribe");
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + QUIET;
        while let Ok(Some(n)) = rx.recv_deadline(deadline) {
            if let Notification::Forward(f) = n {
                got.push(f.publish.topic);
            }
        }
        got
    });
    assert!(
        rx.await.expect("link task").is_empty(),
        "a retained REQ was kept"
    );
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
    wait_for_online(&app, &b.device_id, true).await;
}
