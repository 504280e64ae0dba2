//! Envelope v2 end to end: the key never crosses the wire, requests are sealed, answers
//! and commands come back in v2, every plain field (the endpoint and the id's type
//! included) is bound, and an owner can require v2 for a charger.

use std::time::Duration;

use charger_e2e::mqtt::{open_on, request, request_v2, Charger, Qos};
use charger_e2e::{on_both_databases, spawn_app_on, TestApp, ADMIN_TOKEN};
use chrono::{Duration as Span, Utc};
use serde_json::{json, Value};

use super::charging::{fleet, start, ts};

const WAIT: Duration = Duration::from_secs(10);

on_both_databases!(spawn_app_on =>
    a_v2_charger_charges_without_its_key_on_the_wire,
    a_v2_request_moved_or_relabelled_is_refused_with_401,
    an_owner_can_require_v2_and_commands_follow_it,
);

async fn a_v2_charger_charges_without_its_key_on_the_wire(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    c.v2 = true;
    let payload = request_v2(
        b,
        "boot",
        json!(1),
        json!({"firmware": "2", "model": "m", "connectors": 2}),
    );
    let text = String::from_utf8(payload.clone()).expect("utf-8");
    assert!(!text.contains(&b.key), "the key is on the wire: {text}");
    assert!(
        !text.contains("firmware"),
        "the params are in clear: {text}"
    );
    let (code, body) = c.send_raw("boot", payload).await;
    assert_eq!((code, &body["owner"]), (200, &json!("acme")));
    c.next_id = 100; // ids are unique per charger: 1 was the boot's
    let (code, body) = c
        .call(
            "session-start",
            start("04A1B2C3", 1, 0, Utc::now() - Span::minutes(30)),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let session = body["session_id"].as_i64().expect("session");
    let (code, body) = c
        .call(
            "session-stop",
            json!({"session_id": session, "meter_stop_wh": 5_000, "stopped_at": ts(Utc::now()), "reason": "local"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["energy_wh"], 5_000);
    // The same charger may still speak v1 (no owner required v2).
    c.v2 = false;
    let (code, _) = c
        .call("status", json!({"connector": 1, "state": "available"}))
        .await;
    assert_eq!(code, 200);
}

async fn a_v2_request_moved_or_relabelled_is_refused_with_401(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let status = json!({"connector": 1, "state": "available"});
    // Sealed for `status`, sent to `boot`: it does not open there.
    let (code, body) = c
        .send_raw("boot", request_v2(b, "status", json!(10), status.clone()))
        .await;
    assert_eq!((code, body), (401, Value::Null));
    // Sealed with id 42, relabelled "42": another idempotency key, and it does not open.
    let mut moved: Value =
        serde_json::from_slice(&request_v2(b, "status", json!(42), status.clone())).expect("json");
    moved["id"] = json!("42");
    let (code, _) = c
        .send_raw("status", serde_json::to_vec(&moved).expect("json"))
        .await;
    assert_eq!(code, 401);
    // Sealed under another key.
    let mut other = b.clone();
    other.key = "22".repeat(32);
    let (code, _) = c
        .send_raw(
            "status",
            request_v2(&other, "status", json!(11), status.clone()),
        )
        .await;
    assert_eq!(code, 401);
    // v2 data that is not sealed: 400, answered in v2.
    let raw =
        serde_json::to_vec(&json!({"v": 2, "id": 12, "data": {"connector": 1}})).expect("json");
    c.probe
        .publish(
            &format!("acme/req/{}/status", b.device_id),
            Qos::AtLeastOnce,
            false,
            raw,
        )
        .await;
    let (_, payload) = c.probe.next_publish(WAIT).await.expect("a RES");
    let (res, _) = open_on(b, "status", &payload);
    assert_eq!((res.v, res.code, res.data.as_str()), (Some(2), 400, ""));
    // The genuine request still works.
    let (code, _) = c
        .send_raw("status", request_v2(b, "status", json!(13), status))
        .await;
    assert_eq!(code, 200);
}

async fn an_owner_can_require_v2_and_commands_follow_it(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let a = app
        .patch(
            &format!("/api/v1/devices/{}", b.device_id),
            ADMIN_TOKEN,
            json!({"require_v2": true}),
        )
        .await;
    assert_eq!(
        (a.status, &a.body["require_v2"]),
        (200, &json!(true)),
        "{a:?}"
    );
    let mut c = Charger::connect(&app, b).await;
    // v1 (the key in clear) is refused now, with 426 so that the charger can tell (a wrong
    // key is still 401); v2 is answered.
    let (code, body) = c
        .send_raw(
            "status",
            request(b, json!(1), json!({"connector": 1, "state": "available"})),
        )
        .await;
    assert_eq!((code, body), (426, Value::Null));
    let mut wrong = b.clone();
    wrong.key = "00".repeat(32);
    let (code, body) = c
        .send_raw(
            "status",
            request(
                &wrong,
                json!(2),
                json!({"connector": 1, "state": "available"}),
            ),
        )
        .await;
    assert_eq!((code, body), (401, Value::Null));
    c.v2 = true;
    let (code, body) = c
        .call(
            "session-start",
            start("04A1B2C3", 1, 0, Utc::now() - Span::minutes(5)),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let session = body["session_id"].as_i64().expect("session");

    // A remote stop goes out in v2, and the charger's v2 answer reaches the caller.
    let rest = {
        let http = app.http.clone();
        let url = format!(
            "{}/api/v1/devices/{}/commands/remote-stop",
            app.base, b.device_id
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"session_id": session}))
                .send()
                .await
                .expect("REST")
        })
    };
    let (topic, payload) = c.probe.next_publish(WAIT).await.expect("the command");
    assert_eq!(topic, format!("acme/res/{}/remote-stop", b.device_id));
    let (envelope, command) = open_on(b, "remote-stop", &payload);
    assert_eq!(envelope.v, Some(2));
    assert_eq!(command, Some(json!({"session_id": session})));
    let id = serde_json::to_value(envelope.id.expect("id")).expect("id");
    c.probe
        .publish(
            &format!("acme/req/{}/remote-stop", b.device_id),
            Qos::AtLeastOnce,
            false,
            request_v2(b, "remote-stop", id, json!({"status": "accepted"})),
        )
        .await;
    let reply = rest.await.expect("joined");
    assert_eq!(reply.status(), 200);
    let reply: Value = reply.json().await.expect("json");
    assert_eq!(reply["answer"], json!({"status": "accepted"}));

    // An answer in v1 (its key in clear) from a charger that must speak v2 is not taken:
    // the operator gets no answer (504), not the charger's word.
    let rest = {
        let http = app.http.clone();
        let url = format!(
            "{}/api/v1/devices/{}/commands/unlock?timeout_ms=1500",
            app.base, b.device_id
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"connector": 1}))
                .send()
                .await
                .expect("REST")
        })
    };
    let (_, payload) = c.probe.next_publish(WAIT).await.expect("the command");
    let (envelope, _) = open_on(b, "unlock", &payload);
    let id = serde_json::to_value(envelope.id.expect("id")).expect("id");
    c.probe
        .publish(
            &format!("acme/req/{}/unlock", b.device_id),
            Qos::AtLeastOnce,
            false,
            request(b, id, json!({"status": "accepted"})),
        )
        .await;
    let reply = rest.await.expect("joined");
    assert_eq!(reply.status(), 504, "a v1 answer is dropped");
}
