//! The rules a firmware engineer had to guess, now written down and tested: heartbeat,
//! the connector count, the owner in the MQTT 5 CONNACK, what a command's answer must
//! hold, and what becomes of an offline start whose `local_id` is not in the documented
//! form.

use std::time::Duration;

use charger_e2e::mqtt::{Charger, Qos};
use charger_e2e::{assert_error, on_both_databases, spawn_app_on, TestApp, ADMIN_TOKEN};
use chrono::{Duration as Span, Utc};
use serde_json::{json, Value};

use super::charging::{fleet, start, ts};

const WAIT: Duration = Duration::from_secs(10);

on_both_databases!(spawn_app_on =>
    heartbeat_and_boot_say_what_the_server_uses,
    an_offline_start_with_an_odd_local_id_is_kept_and_found_again,
    a_command_answer_outside_the_api_is_502_for_the_operator,
);

async fn heartbeat_and_boot_say_what_the_server_uses(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let (code, body) = c.call("heartbeat", json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["server_time"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let (code, body) = c.call("heartbeat", json!({"x": 1})).await;
    assert_eq!(code, 422, "{body}");
    // A charger that reports another connector count learns the one the server uses.
    let (code, body) = c
        .call(
            "boot",
            json!({"firmware": "1", "model": "m", "connectors": 4}),
        )
        .await;
    assert_eq!((code, &body["connectors"]), (200, &json!(2)), "{body}");
    let (code, body) = c
        .call("status", json!({"connector": 3, "state": "available"}))
        .await;
    assert_eq!((code, &body["field"]), (422, &json!("connector")));
}

async fn an_offline_start_with_an_odd_local_id_is_kept_and_found_again(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let t0 = Utc::now() - Span::hours(1);
    let odd = "session #7 (offline)";
    let (code, body) = c
        .call(
            "session-start",
            json!({"tag": "04A1B2C3", "connector": 1, "meter_start_wh": 0,
                   "started_at": ts(t0), "local_id": odd}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let session = body["session_id"].as_i64().expect("session");
    // The same odd id finds the same session, for its values and its stop.
    let (code, body) = c
        .call(
            "meter-values",
            json!({"local_id": odd, "samples": [{"at": ts(t0 + Span::minutes(10)), "energy_wh": 1_000}]}),
        )
        .await;
    assert_eq!(
        (code, &body["session_id"]),
        (200, &json!(session)),
        "{body}"
    );
    let (code, body) = c
        .call(
            "session-stop",
            json!({"local_id": odd, "meter_stop_wh": 2_000, "stopped_at": ts(t0 + Span::minutes(30)), "reason": "local"}),
        )
        .await;
    assert_eq!(
        (code, &body["session_id"]),
        (200, &json!(session)),
        "{body}"
    );
    // Beyond 256 bytes it is refused.
    let (code, body) = c
        .call(
            "session-start",
            start("04A1B2C3", 2, 0, t0)
                .as_object()
                .cloned()
                .map(|mut o| {
                    o.insert("local_id".into(), json!("x".repeat(300)));
                    Value::Object(o)
                })
                .expect("object"),
        )
        .await;
    assert_eq!((code, &body["field"]), (422, &json!("local_id")));
}

async fn a_command_answer_outside_the_api_is_502_for_the_operator(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let path = format!(
        "{}/api/v1/devices/{}/commands/unlock",
        app.base, b.device_id
    );
    for (answer, status) in [
        (json!({"status": "maybe"}), 502),
        (json!({"status": "rejected", "reason": "busy"}), 200),
        (json!({"status": "rejected", "reason": "because"}), 502),
        (json!({"status": "accepted"}), 200),
    ] {
        let rest = {
            let (http, path) = (app.http.clone(), path.clone());
            tokio::spawn(async move {
                http.post(path)
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"connector": 1}))
                    .send()
                    .await
                    .expect("REST")
            })
        };
        let (_, payload) = c.probe.next_publish(WAIT).await.expect("the command");
        let res: Value = serde_json::from_slice(&payload).expect("json");
        let reply = json!({"id": res["id"], "key": b.key, "data": answer});
        c.probe
            .publish(
                &format!("acme/req/{}/unlock", b.device_id),
                Qos::AtLeastOnce,
                false,
                serde_json::to_vec(&reply).expect("json"),
            )
            .await;
        let got = rest.await.expect("joined");
        assert_eq!(got.status().as_u16(), status, "{answer}");
        let body: Value = got.json().await.expect("json");
        if status == 502 {
            let a = charger_e2e::Answer { status, body };
            assert_error(&a, 502, "bad_device_answer");
        } else {
            assert_eq!(body["answer"], answer);
        }
    }
}

#[tokio::test]
async fn the_mqtt_5_connack_names_the_chargers_owner() {
    let app = charger_e2e::spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let mut opts =
        rumqttc::v5::MqttOptions::new(&b.device_id, "127.0.0.1", app.app.mqtt_addr.port());
    opts.set_credentials(&b.mqtt.username, &b.mqtt.password);
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(opts, 10);
    let connack = tokio::time::timeout(WAIT, async {
        loop {
            if let rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(c)) =
                eventloop.poll().await.expect("connects")
            {
                return c;
            }
        }
    })
    .await
    .expect("a CONNACK");
    let props = connack.properties.expect("properties");
    assert!(
        props
            .user_properties
            .contains(&("owner".to_owned(), "acme".to_owned())),
        "{:?}",
        props.user_properties
    );
}
