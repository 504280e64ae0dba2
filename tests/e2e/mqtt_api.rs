//! The charger API's envelope through MQTT: unreadable requests, wrong keys, unknown
//! endpoints, bad data, and idempotent repeats.

use std::time::Duration;

use charger_e2e::mqtt::{open, request, Login, Probe, Qos, Version};
use charger_e2e::{spawn_app, TestApp, ADMIN_TOKEN};
use charger_protocol::FirmwareBundle;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

async fn charger(app: &TestApp, b: &FirmwareBundle) -> Probe {
    let mut probe = Probe::connect(Version::V4, Login::device(app.app.mqtt_addr, b))
        .await
        .expect("connects");
    let filter = format!("{}/res/{}/+", b.owner, b.device_id);
    assert!(probe.subscribe(&filter, Qos::AtLeastOnce).await);
    probe
}

/// Sends `payload` to `endpoint` and returns the RES envelope (as JSON) and the opened body.
async fn ask(
    probe: &mut Probe,
    b: &FirmwareBundle,
    endpoint: &str,
    payload: Vec<u8>,
) -> (Value, Option<Value>) {
    let topic = format!("{}/req/{}/{endpoint}", b.owner, b.device_id);
    probe
        .publish(&topic, Qos::AtLeastOnce, false, payload)
        .await;
    let (res_topic, res) = probe.next_publish(WAIT).await.expect("a RES");
    assert_eq!(
        res_topic,
        format!("{}/res/{}/{endpoint}", b.owner, b.device_id)
    );
    let envelope: Value = serde_json::from_slice(&res).expect("RES JSON");
    let (_, body) = open(b, &res);
    (envelope, body)
}

fn boot(firmware: &str) -> Value {
    json!({"firmware": firmware, "model": "MyBox Plus", "connectors": 1})
}

#[tokio::test]
async fn unreadable_requests_get_400_with_the_id_when_readable_and_empty_data() {
    let app = spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let mut probe = charger(&app, b).await;
    let key = &b.key;
    let cases: Vec<(&str, Vec<u8>, Value)> = vec![
        ("invalid UTF-8", vec![0xff, 0xfe, b'{'], Value::Null),
        ("not JSON", b"{\"id\": 1,".to_vec(), Value::Null),
        ("not an object", b"[1, 2, 3]".to_vec(), Value::Null),
        (
            "missing id",
            format!("{{\"key\": \"{key}\", \"data\": {{}}}}").into_bytes(),
            Value::Null,
        ),
        (
            "float id",
            format!("{{\"id\": 1.5, \"key\": \"{key}\"}}").into_bytes(),
            Value::Null,
        ),
        (
            "bool id",
            format!("{{\"id\": true, \"key\": \"{key}\"}}").into_bytes(),
            Value::Null,
        ),
        (
            "id over 64 characters",
            format!("{{\"id\": \"{}\", \"key\": \"{key}\"}}", "x".repeat(65)).into_bytes(),
            Value::Null,
        ),
        (
            "missing key",
            b"{\"id\": 7, \"data\": {}}".to_vec(),
            json!(7),
        ),
        (
            "malformed key",
            b"{\"id\": \"a1\", \"key\": \"xyz\"}".to_vec(),
            json!("a1"),
        ),
    ];
    for (what, payload, id) in cases {
        let (res, body) = ask(&mut probe, b, "boot", payload).await;
        assert_eq!(res["status"], 0, "{what}: {res}");
        assert_eq!(res["code"], 400, "{what}: {res}");
        assert_eq!(res["id"], id, "{what}: {res}");
        assert_eq!(res["data"], "", "{what}: {res}");
        assert!(body.is_none());
    }
    // Nothing was stored, and the charger is still served.
    let a = app
        .get(&format!("/api/v1/devices/{}", b.device_id), ADMIN_TOKEN)
        .await;
    assert_eq!(a.body["firmware"], Value::Null);
    let (res, body) = ask(&mut probe, b, "boot", request(b, json!(1), boot("1.0.0"))).await;
    assert_eq!(res["code"], 200, "{res}");
    assert_eq!(body.expect("body")["owner"], "acme");
}

#[tokio::test]
async fn unknown_endpoints_and_bad_data_get_sealed_errors() {
    let app = spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let mut probe = charger(&app, b).await;
    // `echo` is an API name, answered only when the diagnostic is on; other names are
    // refused by the broker itself (tests/e2e/broker.rs).
    let (res, body) = ask(&mut probe, b, "echo", request(b, json!(1), json!({}))).await;
    assert_eq!(
        (res["status"].clone(), res["code"].clone()),
        (json!(0), json!(404))
    );
    assert_eq!(body.expect("sealed error")["error"], "unknown_endpoint");
    let (res, body) = ask(
        &mut probe,
        b,
        "boot",
        request(b, json!(2), json!({"model": "X"})),
    )
    .await;
    assert_eq!(res["code"], 422, "{res}");
    let body = body.expect("sealed error");
    assert_eq!(body["error"], "invalid_input");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("firmware"),
        "{body}"
    );
    let (res, _) = ask(
        &mut probe,
        b,
        "boot",
        request(
            b,
            json!(3),
            json!({"firmware": 1, "model": "X", "connectors": 1}),
        ),
    )
    .await;
    assert_eq!(res["code"], 422, "{res}");
}

#[tokio::test]
async fn a_repeated_request_id_gets_the_stored_answer_and_changes_nothing() {
    let app = spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let mut probe = charger(&app, b).await;
    let device = format!("/api/v1/devices/{}", b.device_id);

    let (first, first_body) =
        ask(&mut probe, b, "boot", request(b, json!(42), boot("1.0.0"))).await;
    assert_eq!(first["code"], 200);
    // The same id again, even with another body: the stored answer, nothing changed.
    let (again, again_body) =
        ask(&mut probe, b, "boot", request(b, json!(42), boot("9.9.9"))).await;
    assert_eq!(again["code"], 200);
    assert_eq!(
        again_body, first_body,
        "the same answer, server_time included"
    );
    assert_ne!(
        again["data"], first["data"],
        "sealed again with a fresh nonce"
    );
    assert_eq!(
        app.get(&device, ADMIN_TOKEN).await.body["firmware"],
        "1.0.0"
    );

    // "42" (a string) is another request than 42 (an integer).
    let (res, _) = ask(
        &mut probe,
        b,
        "boot",
        request(b, json!("42"), boot("2.0.0")),
    )
    .await;
    assert_eq!(res["id"], "42");
    assert_eq!(
        app.get(&device, ADMIN_TOKEN).await.body["firmware"],
        "2.0.0"
    );

    // Errors are answers too: a repeated bad request gets the same 422.
    let (bad, bad_body) = ask(&mut probe, b, "boot", request(b, json!(7), json!({}))).await;
    assert_eq!(bad["code"], 422);
    let (bad_again, bad_again_body) =
        ask(&mut probe, b, "boot", request(b, json!(7), boot("3.0.0"))).await;
    assert_eq!(
        (bad_again["code"].clone(), bad_again_body),
        (json!(422), bad_body)
    );
    assert_eq!(
        app.get(&device, ADMIN_TOKEN).await.body["firmware"],
        "2.0.0"
    );
}

#[tokio::test]
async fn status_reports_set_connector_states() {
    let app = spawn_app().await;
    let b = &app.provision("acme", 1).await[0];
    let mut probe = charger(&app, b).await;
    let device = format!("/api/v1/devices/{}", b.device_id);
    let status = |id: i64, data: Value| request(b, json!(id), data);

    let (res, body) = ask(
        &mut probe,
        b,
        "status",
        status(1, json!({"connector": 1, "state": "charging"})),
    )
    .await;
    assert_eq!(res["code"], 200, "{res}");
    assert_eq!(body, Some(json!({})));
    let connector = &app.get(&device, ADMIN_TOKEN).await.body["connectors"][0];
    assert_eq!(connector["state"], "charging");
    assert_eq!(connector["error"], Value::Null);

    let (res, _) = ask(
        &mut probe,
        b,
        "status",
        status(
            2,
            json!({"connector": 1, "state": "faulted", "error": "GroundFailure"}),
        ),
    )
    .await;
    assert_eq!(res["code"], 200, "{res}");
    let connector = &app.get(&device, ADMIN_TOKEN).await.body["connectors"][0];
    assert_eq!(
        (connector["state"].clone(), connector["error"].clone()),
        (json!("faulted"), json!("GroundFailure"))
    );

    // Bad data: 422 naming the field, and nothing changes.
    for (id, data, field) in [
        (3, json!({"connector": 1, "state": "flying"}), "state"),
        (
            4,
            json!({"connector": 2, "state": "available"}),
            "connector",
        ),
        (5, json!({"state": "available"}), "connector"),
        (
            6,
            json!({"connector": "one", "state": "available"}),
            "connector",
        ),
    ] {
        let (res, body) = ask(&mut probe, b, "status", status(id, data)).await;
        assert_eq!(res["code"], 422, "{res}");
        let message = body.expect("sealed error")["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(field), "{field}: {message}");
    }
    assert_eq!(
        app.get(&device, ADMIN_TOKEN).await.body["connectors"][0]["state"],
        "faulted"
    );
}
