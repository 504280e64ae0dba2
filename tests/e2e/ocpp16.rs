//! OCPP 1.6J chargers end to end: PyPI `ocpp`'s `v16.ChargePoint` (which checks every
//! message both ways against the OCA schemas) through the WebSocket, the operator on REST.
//! Each test is named after the OCA 1.6 CSMS test case it covers (`tc_001_...`), or after
//! the idempotency and offline rule it proves.

use std::time::Duration;

use charger_e2e::ocpp::{python, Agent, Refused};
use charger_e2e::{on_both_databases, spawn_app_on, spawn_app_with, Db, TestApp, ADMIN_TOKEN};
use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use serde_json::{json, Value};

on_both_databases!(spawn_app_on =>
    tc_001_cold_boot_charge_point,
    tc_003_004_a_regular_session_is_billed_by_the_tariff_to_the_cent,
    tc_023_authorize_answers_invalid_expired_blocked_and_concurrent,
    a_retried_start_transaction_gets_the_same_transaction_id,
    a_stop_of_a_transaction_the_server_never_saw_is_recorded_disputed,
    an_implausible_stop_closes_the_session_disputed,
    tc_010_012_remote_start_and_stop_from_rest,
    tc_042_043_the_local_list_is_sent_full_then_differential,
    tc_073_rotation_pushes_the_authorization_key_first,
    malformed_calls_get_the_callerror_the_spec_names,
    a_charger_that_connects_again_is_served_on_the_new_socket,
    tc_013_to_067_operator_commands_reach_the_charger_as_ocpp_calls,
    tc_032_037_039_transactions_made_offline_are_billed_when_the_charger_returns,
);

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Owner `acme` with the default EUR tariff of the MyBox tests, tag 04A1B2C3, and OCPP
/// charger `acme-ocpp` (2 connectors); its password.
async fn fleet(app: &TestApp) -> String {
    let a = app
        .post(
            "/api/v1/owners",
            ADMIN_TOKEN,
            json!({"id": "acme", "name": "Acme"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app
        .post(
            "/api/v1/tariffs",
            ADMIN_TOKEN,
            json!({"id": "standard", "owner": "acme", "currency": "EUR",
                   "energy_per_kwh": "0.30", "time_per_hour": "1.20", "session_fee": "0.50",
                   "tax_rate": "0.21", "default": true}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "04a1b2c3", "owner": "acme"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    ocpp_charger(app, "acme-ocpp").await
}

/// Provisions an OCPP 1.6 charger of `acme`; its password.
async fn ocpp_charger(app: &TestApp, id: &str) -> String {
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": id, "owner": "acme", "connectors": 2, "protocol": "ocpp1.6"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["protocol"], "ocpp1.6", "{a:?}");
    assert_eq!(a.body["ocpp"]["path"], format!("/ocpp/{id}"));
    assert!(a.body.get("mqtt").is_none(), "no MQTT login: {a:?}");
    let password = a.body["ocpp"]["password"].as_str().expect("a password");
    assert_eq!(password.len(), 40);
    password.to_owned()
}

async fn booted(app: &TestApp, py: &std::path::Path, password: &str) -> Agent {
    let mut cp = Agent::connect(py, &app.base, "acme-ocpp", password).await;
    let boot = cp
        .call(
            "BootNotification",
            json!({"chargePointVendor": "Keba", "chargePointModel": "P30", "firmwareVersion": "1.2.3"}),
        )
        .await
        .expect("boot answered");
    assert_eq!(boot["status"], "Accepted", "{boot}");
    cp
}

fn sampled(value: &str, unit: &str) -> Value {
    json!({"value": value, "measurand": "Energy.Active.Import.Register", "unit": unit})
}

async fn tc_001_cold_boot_charge_point(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = Agent::connect(&py, &app.base, "acme-ocpp", &password).await;
    let boot = cp
        .call(
            "BootNotification",
            json!({"chargePointVendor": "Keba", "chargePointModel": "P30", "firmwareVersion": "1.2.3"}),
        )
        .await
        .expect("boot answered");
    assert_eq!(boot["status"], "Accepted");
    assert_eq!(boot["interval"], 300);
    for connector in 0..=2 {
        let r = cp
            .call(
                "StatusNotification",
                json!({"connectorId": connector, "errorCode": "NoError", "status": "Available"}),
            )
            .await;
        assert_eq!(r, Ok(json!({})));
    }
    let r = cp
        .call(
            "StatusNotification",
            json!({"connectorId": 2, "errorCode": "GroundFailure", "status": "Faulted", "info": "RCD tripped"}),
        )
        .await;
    assert_eq!(r, Ok(json!({})));
    let beat = cp.call("Heartbeat", json!({})).await.expect("heartbeat");
    let at: DateTime<Utc> = beat["currentTime"]
        .as_str()
        .expect("time")
        .parse()
        .expect("RFC 3339");
    assert!((Utc::now() - at).num_seconds().abs() < 60);

    let d = app.wait_for_online("acme-ocpp", true).await;
    assert_eq!(d["protocol"], "ocpp1.6");
    assert_eq!(d["firmware"], "1.2.3");
    assert_eq!(d["model"], "Keba P30");
    assert_eq!(d["connectors"][0]["state"], "available");
    assert_eq!(d["connectors"][1]["state"], "faulted");
    assert_eq!(d["connectors"][1]["error"], "GroundFailure: RCD tripped");
    cp.close().await;
    app.wait_for_online("acme-ocpp", false).await;
}

async fn tc_003_004_a_regular_session_is_billed_by_the_tariff_to_the_cent(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let auth = cp
        .call("Authorize", json!({"idTag": "04a1b2c3"}))
        .await
        .expect("authorize answered");
    assert_eq!(auth["idTagInfo"]["status"], "Accepted");

    let t0 = Utc::now() - Span::hours(2);
    let started = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 1000, "timestamp": ts(t0)}),
        )
        .await
        .expect("start answered");
    assert_eq!(started["idTagInfo"]["status"], "Accepted");
    let tx = started["transactionId"].as_i64().expect("a transaction id");

    // kWh, and the three phases summed where no total is given.
    let r = cp
        .call(
            "MeterValues",
            json!({"connectorId": 1, "transactionId": tx, "meterValue": [
                {"timestamp": ts(t0 + Span::minutes(15)), "sampledValue": [sampled("3.5", "kWh"),
                    {"value": "10", "measurand": "Power.Active.Import", "unit": "kW"}]},
                {"timestamp": ts(t0 + Span::minutes(30)), "sampledValue": [
                    {"value": "2000", "phase": "L1"}, {"value": "2000", "phase": "L2"},
                    {"value": "2000", "phase": "L3"}]},
            ]}),
        )
        .await;
    assert_eq!(r, Ok(json!({})));
    let s = app
        .get(&format!("/api/v1/sessions/{tx}"), ADMIN_TOKEN)
        .await;
    assert_eq!(s.status, 200, "{s:?}");
    assert_eq!(s.body["last_meter_wh"], 6000, "{s:?}");
    assert_eq!(s.body["running_net"], "2.60", "{s:?}");

    // The same numbers as the MyBox session: 12,345 Wh over 1 h 15 min 30 s.
    let stop = cp
        .call(
            "StopTransaction",
            json!({"transactionId": tx, "meterStop": 13_345, "idTag": "04A1B2C3",
                   "timestamp": ts(t0 + Span::seconds(4_530)), "reason": "EVDisconnected",
                   "transactionData": [{"timestamp": ts(t0 + Span::minutes(45)),
                                        "sampledValue": [sampled("9000", "Wh")]}]}),
        )
        .await
        .expect("stop answered");
    assert_eq!(stop["idTagInfo"]["status"], "Accepted");
    let s = app
        .get(&format!("/api/v1/sessions/{tx}"), ADMIN_TOKEN)
        .await;
    assert_eq!(s.status, 200, "{s:?}");
    assert_eq!(
        (
            &s.body["status"],
            &s.body["energy_wh"],
            &s.body["net"],
            &s.body["tax"],
            &s.body["total"]
        ),
        (
            &json!("stopped"),
            &json!(12_345),
            &json!("5.71"),
            &json!("1.20"),
            &json!("6.91")
        ),
        "{s:?}"
    );
    assert_eq!(s.body["device"], "acme-ocpp");
    assert_eq!(s.body["samples_total"], 3, "{s:?}");
    // In the billing report and its CSV like any other session.
    let from = ts(t0 - Span::hours(1));
    let to = ts(Utc::now() + Span::hours(1));
    let r = app
        .get(
            &format!("/api/v1/reports/billing?from={from}&to={to}&group_by=device"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.to_string().contains("acme-ocpp"), "{r:?}");
    assert!(r.body.to_string().contains("6.91"), "{r:?}");
    cp.close().await;
}

async fn tc_023_authorize_answers_invalid_expired_blocked_and_concurrent(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    for body in [
        json!({"uid": "0badbad0", "owner": "acme", "status": "blocked"}),
        json!({"uid": "0e0e0e0e", "owner": "acme", "expires_at": ts(Utc::now() - Span::days(1))}),
        json!({"uid": "0c0c0c0c", "owner": "acme", "group": "fleet-a"}),
    ] {
        let a = app.post("/api/v1/tags", ADMIN_TOKEN, body).await;
        assert_eq!(a.status, 201, "{a:?}");
    }
    let mut cp = booted(&app, &py, &password).await;
    let status = |v: Result<Value, (String, String)>| v.expect("answered")["idTagInfo"].clone();
    let unknown = status(cp.call("Authorize", json!({"idTag": "DEADBEEF"})).await);
    assert_eq!(unknown, json!({"status": "Invalid"}));
    let not_rfid = status(cp.call("Authorize", json!({"idTag": "not-a-card"})).await);
    assert_eq!(not_rfid, json!({"status": "Invalid"}));
    let blocked = status(cp.call("Authorize", json!({"idTag": "0BADBAD0"})).await);
    assert_eq!(blocked["status"], "Blocked");
    let expired = status(cp.call("Authorize", json!({"idTag": "0E0E0E0E"})).await);
    assert_eq!(expired["status"], "Expired");
    let grouped = status(cp.call("Authorize", json!({"idTag": "0C0C0C0C"})).await);
    assert_eq!(
        grouped,
        json!({"status": "Accepted", "parentIdTag": "fleet-a"})
    );
    // Charging on connector 1, the one-session tag is ConcurrentTx elsewhere.
    let started = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 0, "timestamp": ts(Utc::now())}),
        )
        .await
        .expect("start");
    assert_eq!(started["idTagInfo"]["status"], "Accepted");
    let busy = status(cp.call("Authorize", json!({"idTag": "04A1B2C3"})).await);
    assert_eq!(busy["status"], "ConcurrentTx");
    // The unknown card is waiting for enrollment.
    let seen = app
        .get("/api/v1/tags/unknown?owner=acme", ADMIN_TOKEN)
        .await;
    assert!(seen.body.to_string().contains("DEADBEEF"), "{seen:?}");
    cp.close().await;
}

async fn a_retried_start_transaction_gets_the_same_transaction_id(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let t0 = Utc::now() - Span::minutes(5);
    let start =
        json!({"connectorId": 2, "idTag": "04A1B2C3", "meterStart": 500, "timestamp": ts(t0)});
    let mut cp = booted(&app, &py, &password).await;
    let first = cp
        .call("StartTransaction", start.clone())
        .await
        .expect("start");
    cp.close().await;
    // The answer was lost; the charger reconnects (no new boot) and retries.
    let mut cp = Agent::connect(&py, &app.base, "acme-ocpp", &password).await;
    let again = cp.call("StartTransaction", start).await.expect("retry");
    assert_eq!(first["transactionId"], again["transactionId"]);
    // Its own session does not make the tag busy: the retry is Accepted too.
    assert_eq!(again["idTagInfo"]["status"], "Accepted", "{again}");
    // A new transaction on the same connector before the first one's end was reported:
    // the first is closed disputed (its stop was lost), the new one is Accepted.
    let next = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 2, "idTag": "04A1B2C3", "meterStart": 900, "timestamp": ts(Utc::now())}),
        )
        .await
        .expect("next start");
    assert_eq!(next["idTagInfo"]["status"], "Accepted", "{next}");
    let old = app
        .get(
            &format!("/api/v1/sessions/{}", first["transactionId"]),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(old.body["status"], "disputed", "{old:?}");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sessions WHERE device_id = 'acme-ocpp'")
            .await,
        2
    );
    cp.close().await;
}

async fn a_stop_of_a_transaction_the_server_never_saw_is_recorded_disputed(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let t0 = Utc::now() - Span::hours(1);
    let stop = json!({"transactionId": -1, "meterStop": 8_000, "idTag": "04A1B2C3",
                      "timestamp": ts(t0 + Span::minutes(40)),
                      "transactionData": [{"timestamp": ts(t0),
                          "sampledValue": [{"value": "2000", "context": "Transaction.Begin"}]}]});
    let r = cp
        .call("StopTransaction", stop.clone())
        .await
        .expect("answered");
    assert_eq!(r["idTagInfo"]["status"], "Accepted");
    // Repeated: the same record, not a second one.
    cp.call("StopTransaction", stop).await.expect("answered");
    let page = app
        .get("/api/v1/sessions?device=acme-ocpp", ADMIN_TOKEN)
        .await;
    let sessions = page.body["sessions"].as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 1, "{page:?}");
    assert_eq!(sessions[0]["status"], "disputed");
    assert_eq!(sessions[0]["energy_wh"], 6_000);
    assert_eq!(sessions[0]["connector"], 0);
    cp.close().await;
}

async fn an_implausible_stop_closes_the_session_disputed(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let t0 = Utc::now() - Span::minutes(10);
    let started = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 1000, "timestamp": ts(t0)}),
        )
        .await
        .expect("start");
    let tx = started["transactionId"].as_i64().expect("id");
    // 500 kWh in ten minutes on a 22 kW connector: no meter does that. OCPP cannot be
    // refused a stop: it is answered and the session is disputed, billed nothing.
    let r = cp
        .call(
            "StopTransaction",
            json!({"transactionId": tx, "meterStop": 501_000, "timestamp": ts(Utc::now())}),
        )
        .await;
    assert!(r.is_ok(), "{r:?}");
    let s = app
        .get(&format!("/api/v1/sessions/{tx}"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        (&s.body["status"], &s.body["total"]),
        (&json!("disputed"), &json!("0.00")),
        "{s:?}"
    );
    cp.close().await;
}

async fn command(app: &TestApp, name: &str, data: Value) -> charger_e2e::Answer {
    app.post(
        &format!("/api/v1/devices/acme-ocpp/commands/{name}"),
        ADMIN_TOKEN,
        data,
    )
    .await
}

async fn tc_010_012_remote_start_and_stop_from_rest(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    // Offline: 409, nothing sent.
    let a = command(
        &app,
        "remote-start",
        json!({"tag": "04A1B2C3", "connector": 1}),
    )
    .await;
    assert_eq!(
        (a.status, &a.body["error"]),
        (409, &json!("device_offline")),
        "{a:?}"
    );
    let mut cp = booted(&app, &py, &password).await;
    let rest = {
        let app_base = app.base.clone();
        let http = app.http.clone();
        tokio::spawn(async move {
            http.post(format!(
                "{app_base}/api/v1/devices/acme-ocpp/commands/remote-start"
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"tag": "04A1B2C3", "connector": 1}))
            .send()
            .await
            .expect("REST")
            .json::<Value>()
            .await
            .expect("JSON")
        })
    };
    let asked = cp.received("RemoteStartTransaction").await;
    assert_eq!(asked, json!({"connectorId": 1, "idTag": "04A1B2C3"}));
    let answered = rest.await.expect("REST task");
    assert_eq!(
        answered["answer"],
        json!({"status": "Accepted"}),
        "{answered}"
    );
    let started = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 0, "timestamp": ts(Utc::now())}),
        )
        .await
        .expect("start");
    let tx = started["transactionId"].as_i64().expect("id");
    // The server refuses to ask a start the connector cannot take.
    let a = command(
        &app,
        "remote-start",
        json!({"tag": "04A1B2C3", "connector": 1}),
    )
    .await;
    assert_eq!(a.status, 409, "{a:?}");

    cp.respond("RemoteStopTransaction", json!({"status": "Accepted"}))
        .await;
    let rest = {
        let app_base = app.base.clone();
        let http = app.http.clone();
        tokio::spawn(async move {
            http.post(format!(
                "{app_base}/api/v1/devices/acme-ocpp/commands/remote-stop"
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"session_id": tx}))
            .send()
            .await
            .expect("REST")
            .json::<Value>()
            .await
            .expect("JSON")
        })
    };
    assert_eq!(
        cp.received("RemoteStopTransaction").await,
        json!({"transactionId": tx})
    );
    assert_eq!(rest.await.expect("task")["answer"]["status"], "Accepted");
    // A charger that does not answer: 504; one that answers what OCPP does not define: 502.
    cp.respond("Reset", json!({"status": "Maybe"})).await;
    let a = command(&app, "reset", json!({"type": "Soft"})).await;
    assert_eq!(a.status, 502, "{a:?}");
    let a = command(&app, "reset", json!({"type": "Sideways"})).await;
    assert_eq!(a.status, 422, "{a:?}");
    // A slow charger: 504 (not offline), and the socket still serves.
    cp.respond("Reset", json!({"status": "Accepted", "__delay": 2}))
        .await;
    let a = app
        .post(
            "/api/v1/devices/acme-ocpp/commands/reset?timeout_ms=500",
            ADMIN_TOKEN,
            json!({"type": "Soft"}),
        )
        .await;
    assert_eq!(
        (a.status, &a.body["error"]),
        (504, &json!("device_timeout")),
        "{a:?}"
    );
    // The password is the credentials endpoint's: never set through configuration.
    let a = command(
        &app,
        "change-configuration",
        json!({"key": "AuthorizationKey", "value": "00".repeat(20)}),
    )
    .await;
    assert_eq!(a.status, 422, "{a:?}");
    // A connector the charger does not have is refused before anything is sent.
    let a = command(
        &app,
        "change-availability",
        json!({"connectorId": 9, "type": "Inoperative"}),
    )
    .await;
    assert_eq!(a.status, 422, "{a:?}");
    let a = command(&app, "format-disk", json!({})).await;
    assert_eq!(a.status, 404, "{a:?}");
    cp.close().await;
}

async fn tc_042_043_the_local_list_is_sent_full_then_differential(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let a = command(&app, "send-local-list", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["answer"]["status"], "Accepted", "{a:?}");
    cp.received("GetLocalListVersion").await;
    let full = cp.received("SendLocalList").await;
    assert_eq!(full["updateType"], "Full", "{full}");
    assert_eq!(full["localAuthorizationList"][0]["idTag"], "04A1B2C3");
    let v1 = full["listVersion"].as_i64().expect("version");
    // A new tag, a blocked one: the differential carries just them.
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "0a0a0a0a", "owner": "acme"}),
        )
        .await;
    assert_eq!(a.status, 201);
    let a = command(&app, "send-local-list", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(cp.received("GetLocalListVersion").await, json!({}));
    let diff = cp.received("SendLocalList").await;
    assert_eq!(diff["updateType"], "Differential", "{diff}");
    assert_eq!(
        diff["localAuthorizationList"].as_array().map(Vec::len),
        Some(1),
        "{diff}"
    );
    assert!(diff["listVersion"].as_i64() > Some(v1));
    // The charger's version does not match: a full list follows.
    cp.respond("SendLocalList", json!({"status": "VersionMismatch"}))
        .await;
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "0b0b0b0b", "owner": "acme"}),
        )
        .await;
    assert_eq!(a.status, 201);
    let a = command(&app, "send-local-list", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    let diff = cp.received("SendLocalList").await;
    assert_eq!(diff["updateType"], "Differential");
    let full = cp.received("SendLocalList").await;
    assert_eq!(full["updateType"], "Full", "{full}");
    assert_eq!(
        full["localAuthorizationList"].as_array().map(Vec::len),
        Some(3)
    );
    cp.close().await;
}

async fn tc_073_rotation_pushes_the_authorization_key_first(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let a = app
        .post(
            "/api/v1/devices/acme-ocpp/credentials",
            ADMIN_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let new = a.body["ocpp"]["password"]
        .as_str()
        .expect("password")
        .to_owned();
    assert_eq!(a.body["ocpp"]["pushed"], true, "{a:?}");
    let pushed = cp.received("ChangeConfiguration").await;
    assert_eq!(pushed, json!({"key": "AuthorizationKey", "value": new}));
    assert_eq!(cp.wait_closed().await, Some(1000));
    let url = format!("{}/ocpp/acme-ocpp", app.base.replace("http", "ws"));
    let old = Agent::connect_with(&py, &url, "acme-ocpp", Some(&password), "ocpp1.6").await;
    assert_eq!(old.err(), Some(Refused(401)));
    let cp = Agent::connect(&py, &app.base, "acme-ocpp", &new).await;
    cp.close().await;
}

async fn malformed_calls_get_the_callerror_the_spec_names(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let cases = [
        (r#"[2,"m1","Teleport",{}]"#, "NotImplemented"),
        (r#"[2,"m2","SignCertificate",{"csr":"x"}]"#, "NotSupported"),
        (r#"[2,"m3","Authorize",{}]"#, "OccurenceConstraintViolation"),
        (
            r#"[2,"m4","Authorize",{"idTag":7}]"#,
            "TypeConstraintViolation",
        ),
        (
            r#"[2,"m5","Authorize",{"idTag":"04A1B2C3","x":1}]"#,
            "FormationViolation",
        ),
        (
            r#"[2,"m6","Authorize",{"idTag":"0123456789012345678901"}]"#,
            "PropertyConstraintViolation",
        ),
        (
            r#"[2,"m7","StatusNotification",{"connectorId":9,"errorCode":"NoError","status":"Available"}]"#,
            "PropertyConstraintViolation",
        ),
        (
            r#"[2,"m8","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z","sampledValue":[{"value":"lots"}]}]}]"#,
            "PropertyConstraintViolation",
        ),
        (r#"[2,"m9","Heartbeat"]"#, "FormationViolation"),
        (
            r#"[2,"m10","Authorize",{"idTag":"\ud800"}]"#,
            "FormationViolation",
        ),
    ];
    for (frame, code) in cases {
        let id = frame.split('"').nth(1).expect("id");
        let answer = cp.raw(id, frame).await.expect("answered");
        assert_eq!(answer[0], 4, "{frame}: {answer}");
        assert_eq!(answer[2], code, "{frame}: {answer}");
    }
    // Still served.
    assert!(cp.call("Heartbeat", json!({})).await.is_ok());
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("charger_ocpp_messages_total{action=\"Authorize\",outcome=\"OccurenceConstraintViolation\"} 1"),
        "{metrics}"
    );
    cp.close().await;
}

async fn a_charger_that_connects_again_is_served_on_the_new_socket(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut first = booted(&app, &py, &password).await;
    let mut second = Agent::connect(&py, &app.base, "acme-ocpp", &password).await;
    assert_eq!(first.wait_closed().await, Some(1000));
    assert!(second.call("Heartbeat", json!({})).await.is_ok());
    let a = command(&app, "unlock", json!({"connector": 1})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["answer"]["status"], "Unlocked");
    assert_eq!(
        second.received("UnlockConnector").await,
        json!({"connectorId": 1})
    );
    second.close().await;
}

/// The handshake: unknown ids 404, a MyBox charger's id 404, no or wrong Basic
/// credentials 401, no acceptable subprotocol refused, plain ws:// only when allowed.
#[tokio::test]
async fn tc_085_088_the_handshake_refuses_before_the_upgrade() {
    let Some(py) = python() else { return };
    let app = spawn_app_on(Db::Sqlite).await.expect("app");
    let password = fleet(&app).await;
    app.provision("acme", 1).await;
    let ws = app.base.replace("http", "ws");
    let url = |id: &str| format!("{ws}/ocpp/{id}");
    let refused = |r: Result<Agent, Refused>| r.err();
    assert_eq!(
        refused(
            Agent::connect_with(&py, &url("nobody"), "nobody", Some(&password), "ocpp1.6").await
        ),
        Some(Refused(404))
    );
    assert_eq!(
        refused(
            Agent::connect_with(
                &py,
                &url("acme-00000"),
                "acme-00000",
                Some(&password),
                "ocpp1.6"
            )
            .await
        ),
        Some(Refused(404))
    );
    assert_eq!(
        refused(Agent::connect_with(&py, &url("acme-ocpp"), "acme-ocpp", None, "ocpp1.6").await),
        Some(Refused(401))
    );
    assert_eq!(
        refused(
            Agent::connect_with(&py, &url("acme-ocpp"), "acme-ocpp", Some("00"), "ocpp1.6").await
        ),
        Some(Refused(401))
    );
    assert_eq!(
        refused(
            Agent::connect_with(
                &py,
                &url("acme-ocpp"),
                "acme-ocpp",
                Some(&password),
                "ocpp2.0.1"
            )
            .await
        ),
        Some(Refused(400))
    );
    let cp = Agent::connect_with(
        &py,
        &url("acme-ocpp"),
        "acme-ocpp",
        Some(&password.to_uppercase()),
        "ocpp1.6",
    )
    .await
    .expect("the password's hex digits in either case");
    cp.close().await;

    let strict = spawn_app_with(Db::Sqlite, |c| c.ocpp_allow_plain = false)
        .await
        .expect("app");
    let password = fleet(&strict).await;
    let url = format!("{}/ocpp/acme-ocpp", strict.base.replace("http", "ws"));
    assert_eq!(
        refused(Agent::connect_with(&py, &url, "acme-ocpp", Some(&password), "ocpp1.6").await),
        Some(Refused(403))
    );
    assert_eq!(strict.limit_hits("ocpp_plain_refused").await, 1);
    let _ = Duration::ZERO;
}

/// The OCPP limits hold their identity: a message over the cap closes the socket (1009);
/// wrong passwords do not spend the charger's handshake budget, right ones do (429 past
/// it), whatever socket they come on.
#[tokio::test]
async fn ocpp_limits_are_keyed_by_the_charger() {
    let Some(py) = python() else { return };
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.ocpp_max_message_bytes = 2048;
        c.mqtt_logins_per_minute = 3;
    })
    .await
    .expect("app");
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let big = format!(
        r#"[2,"big","DataTransfer",{{"vendorId":"x","data":"{}"}}]"#,
        "a".repeat(3000)
    );
    assert_eq!(cp.raw("big", &big).await, None);
    assert_eq!(cp.wait_closed().await, Some(1009));
    assert_eq!(app.limit_hits("ocpp_message_size").await, 1);
    let url = format!("{}/ocpp/acme-ocpp", app.base.replace("http", "ws"));
    for _ in 0..5 {
        let r = Agent::connect_with(&py, &url, "acme-ocpp", Some("0000"), "ocpp1.6").await;
        assert_eq!(r.err(), Some(Refused(401)));
    }
    for _ in 0..2 {
        let cp = Agent::connect(&py, &app.base, "acme-ocpp", &password).await;
        cp.close().await;
    }
    let r = Agent::connect_with(&py, &url, "acme-ocpp", Some(&password), "ocpp1.6").await;
    assert_eq!(r.err(), Some(Refused(429)));
    assert_eq!(app.limit_hits("ocpp_login_rate").await, 1);
}

/// Three instances on one PostgreSQL database: the charger's socket is on one, a REST
/// command through another reaches it; it connects to a third and the first closes its
/// socket; a rotation through any instance closes it wherever it is.
#[tokio::test]
async fn three_instances_route_commands_and_follow_the_charger() {
    let Some(py) = python() else { return };
    let dir = charger_e2e::TempDir::new();
    let Some(url) = charger_e2e::fresh_database(Db::Postgres, &dir).await else {
        return;
    };
    let mut apps = Vec::new();
    for i in 0..3 {
        let data = dir.0.join(format!("instance-{i}"));
        std::fs::create_dir_all(&data).expect("data dir");
        let mut config = charger_server::Config::for_tests(data);
        config.database_url = Some(charger_server::secrets::Secret::new(url.clone()));
        config.admin_token = Some(charger_server::secrets::Secret::new(ADMIN_TOKEN));
        config.secret_file = Some(dir.0.join("server.secret"));
        let app = charger_server::App::start(config)
            .await
            .expect("instance starts");
        apps.push(app);
    }
    let rest = |i: usize| TestApp::rest_of(format!("http://{}", apps[i].http_addr));
    let (a, b, c) = (rest(0), rest(1), rest(2));
    let password = fleet_on(&a).await;
    let mut first = Agent::connect(&py, &a.base, "acme-ocpp", &password).await;
    first
        .call(
            "BootNotification",
            json!({"chargePointVendor": "Keba", "chargePointModel": "P30"}),
        )
        .await
        .expect("boot");
    // Through the third instance: relayed to the first, which holds the socket.
    let asked = tokio::spawn({
        let c = c.base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{c}/api/v1/devices/acme-ocpp/commands/unlock"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"connector": 2}))
                .send()
                .await
                .expect("REST")
        }
    });
    assert_eq!(
        first.received("UnlockConnector").await,
        json!({"connectorId": 2})
    );
    let answer = asked.await.expect("task");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["answer"]["status"], "Unlocked");

    // The charger comes back through the second instance: the first closes its socket.
    let mut second = Agent::connect(&py, &b.base, "acme-ocpp", &password).await;
    assert_eq!(first.wait_closed().await, Some(1000));
    second.respond("Reset", json!({"status": "Accepted"})).await;
    // Presence is written in batches: online again once the second instance's lands.
    a.wait_for_online("acme-ocpp", true).await;
    let r = a
        .post(
            "/api/v1/devices/acme-ocpp/commands/reset",
            ADMIN_TOKEN,
            json!({"type": "Soft"}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["answer"]["status"]),
        (200, &json!("Accepted")),
        "{r:?}"
    );
    assert_eq!(second.received("Reset").await, json!({"type": "Soft"}));

    // A rotation through the third instance: pushed over the second's socket, then closed.
    let r = c
        .post(
            "/api/v1/devices/acme-ocpp/credentials",
            ADMIN_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["ocpp"]["pushed"], true, "{r:?}");
    assert_eq!(
        second.received("ChangeConfiguration").await["key"],
        "AuthorizationKey"
    );
    assert_eq!(second.wait_closed().await, Some(1000));
    for app in apps {
        app.stop().await.expect("stops");
    }
}

/// [`fleet`] through a REST client of one instance.
async fn fleet_on(rest: &charger_e2e::Rest) -> String {
    let a = rest
        .post(
            "/api/v1/owners",
            ADMIN_TOKEN,
            json!({"id": "acme", "name": "Acme"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = rest
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "acme-ocpp", "owner": "acme", "connectors": 2, "protocol": "ocpp1.6"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    a.body["ocpp"]["password"]
        .as_str()
        .expect("password")
        .to_owned()
}

/// The console shows the protocol and the OCPP states, and sends the OCPP commands.
#[tokio::test]
async fn the_console_shows_and_commands_an_ocpp_charger() {
    let Some(py) = python() else { return };
    let app = spawn_app_on(Db::Sqlite).await.expect("app");
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    cp.call(
        "StatusNotification",
        json!({"connectorId": 1, "errorCode": "NoError", "status": "SuspendedEV"}),
    )
    .await
    .expect("status");
    let cookie = app.console_sign_in(ADMIN_TOKEN).await;
    let (status, page) = app.console_get(&cookie, "/chargers/acme-ocpp").await;
    assert_eq!(status, 200);
    assert!(page.contains("OCPP 1.6J"), "{page}");
    assert!(page.contains("suspended_ev"), "{page}");
    assert!(
        page.contains("/chargers/acme-ocpp/commands/reset"),
        "{page}"
    );
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token")
        .to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let post = tokio::spawn({
        let url = format!("{}/chargers/acme-ocpp/commands/reset", app.base);
        async move {
            http.post(url)
                .header("cookie", cookie)
                .header("origin", "http://localhost")
                .form(&[("csrf", csrf.as_str()), ("type", "Hard")])
                .send()
                .await
                .expect("form")
        }
    });
    assert_eq!(cp.received("Reset").await, json!({"type": "Hard"}));
    assert_eq!(post.await.expect("task").status(), 303);
    cp.close().await;
}

/// The simulator plays an OCPP 1.6 charger (`run --protocol ocpp1.6`): a session online,
/// one made offline and replayed in order (the stop names the id the replayed start got),
/// and a short load run of authorizations and sessions.
#[tokio::test]
async fn the_simulator_plays_ocpp_chargers() {
    use charger_firmware_sim::ocpp::OcppCharger;
    use charger_firmware_sim::script::{parse_script, run_ocpp_step};
    let app = spawn_app_on(Db::Sqlite).await.expect("app");
    fleet(&app).await;
    let bundles = charger_e2e::ocpp::bulk_bundles(&app, "acme", "sim-", 3, "ocpp1.6").await;
    let server = app.base.replace("http", "ws");
    let mut charger = OcppCharger::new(bundles[0].clone(), server.clone());
    charger.time_scale = 1.0;
    let script = parse_script(
        "online\ntap 04a1b2c3\nplug\ncharge 1s 11000\nunplug\n\
         offline\ntap 04a1b2c3\nplug\ncharge 1s 7200\nunplug\nonline\n",
    )
    .expect("script");
    for step in &script {
        run_ocpp_step(&mut charger, step).await.expect("step");
    }
    let page = app
        .get("/api/v1/sessions?device=sim-00000", ADMIN_TOKEN)
        .await;
    let sessions = page.body["sessions"].as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 2, "{page:?} {:?}", charger.events);
    for s in &sessions {
        assert_eq!(s["status"], "stopped", "{s} {:?}", charger.events);
        assert!(s["energy_wh"].as_i64() > Some(0), "{s}");
    }

    let config = charger_firmware_sim::load::LoadConfig {
        broker: Some(server),
        mix: "authorize=3,session=1,echo=1".parse().expect("mix"),
        duration: Duration::from_secs(1),
        tags: vec!["04A1B2C3".into()],
        ..Default::default()
    };
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "be000000", "owner": "acme", "max_sessions": 100}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let config = charger_firmware_sim::load::LoadConfig {
        tags: vec!["BE000000".into()],
        ..config
    };
    let report = charger_firmware_sim::load::run_ocpp(&bundles[1..], config)
        .await
        .expect("load");
    assert_eq!(report.connected, 2);
    assert!(report.requests > 10, "{}", report.text());
    assert_eq!(report.error_count(), 0, "{}", report.text());
}

/// Sends `command` with `data` through REST while the charger answers; the CALL's payload
/// the charger received and the REST answer.
async fn round_trip(
    app: &TestApp,
    cp: &mut Agent,
    command: &str,
    action: &str,
    data: Value,
) -> (Value, Value) {
    let rest = tokio::spawn({
        let url = format!("{}/api/v1/devices/acme-ocpp/commands/{command}", app.base);
        let http = app.http.clone();
        let command = command.to_owned();
        async move {
            let r = http
                .post(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&data)
                .send()
                .await
                .expect("REST");
            assert_eq!(r.status(), 200, "{command}");
            r.json::<Value>().await.expect("JSON")
        }
    });
    let got = cp.received(action).await;
    let answer = rest.await.expect("task");
    (got, answer["answer"].clone())
}

async fn tc_013_to_067_operator_commands_reach_the_charger_as_ocpp_calls(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    // TC_013/TC_014: hard and soft reset.
    for kind in ["Hard", "Soft"] {
        let (got, answer) =
            round_trip(&app, &mut cp, "reset", "Reset", json!({"type": kind})).await;
        assert_eq!(
            (got, answer),
            (json!({"type": kind}), json!({"status": "Accepted"}))
        );
    }
    // TC_017: unlock.
    let (got, answer) = round_trip(
        &app,
        &mut cp,
        "unlock",
        "UnlockConnector",
        json!({"connector": 2}),
    )
    .await;
    assert_eq!(
        (got, answer),
        (json!({"connectorId": 2}), json!({"status": "Unlocked"}))
    );
    // TC_019/TC_021: configuration read and changed.
    cp.respond(
        "GetConfiguration",
        json!({"configurationKey": [{"key": "HeartbeatInterval", "readonly": false, "value": "300"}]}),
    )
    .await;
    let (got, answer) = round_trip(
        &app,
        &mut cp,
        "get-configuration",
        "GetConfiguration",
        json!({"key": ["HeartbeatInterval"]}),
    )
    .await;
    assert_eq!(got, json!({"key": ["HeartbeatInterval"]}));
    assert_eq!(answer["configurationKey"][0]["value"], "300");
    let (got, answer) = round_trip(
        &app,
        &mut cp,
        "change-configuration",
        "ChangeConfiguration",
        json!({"key": "MeterValueSampleInterval", "value": "60"}),
    )
    .await;
    assert_eq!(
        got,
        json!({"key": "MeterValueSampleInterval", "value": "60"})
    );
    assert_eq!(answer, json!({"status": "Accepted"}));
    // Availability, cache.
    let (got, _) = round_trip(
        &app,
        &mut cp,
        "change-availability",
        "ChangeAvailability",
        json!({"connectorId": 0, "type": "Inoperative"}),
    )
    .await;
    assert_eq!(got, json!({"connectorId": 0, "type": "Inoperative"}));
    let (_, answer) = round_trip(&app, &mut cp, "clear-cache", "ClearCache", json!({})).await;
    assert_eq!(answer, json!({"status": "Accepted"}));
    // TC_054: trigger message; the charger then sends what was asked.
    let (got, _) = round_trip(
        &app,
        &mut cp,
        "trigger-message",
        "TriggerMessage",
        json!({"requestedMessage": "StatusNotification", "connectorId": 1}),
    )
    .await;
    assert_eq!(
        got,
        json!({"requestedMessage": "StatusNotification", "connectorId": 1})
    );
    // TC_056/TC_057/TC_066/TC_067: smart charging, with charging rates in tenths.
    let profile = json!({"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 7, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16.5}, {"startPeriod": 3600, "limit": 6}]}}});
    let (got, answer) = round_trip(
        &app,
        &mut cp,
        "set-charging-profile",
        "SetChargingProfile",
        profile,
    )
    .await;
    assert_eq!(
        got["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"],
        16.5
    );
    assert_eq!(answer, json!({"status": "Accepted"}));
    cp.respond("GetCompositeSchedule", json!({"status": "Accepted", "connectorId": 1,
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.5}]}})).await;
    let (_, answer) = round_trip(
        &app,
        &mut cp,
        "get-composite-schedule",
        "GetCompositeSchedule",
        json!({"connectorId": 1, "duration": 3600}),
    )
    .await;
    assert_eq!(
        answer["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"],
        16.5
    );
    let (got, _) = round_trip(
        &app,
        &mut cp,
        "clear-charging-profile",
        "ClearChargingProfile",
        json!({"id": 7}),
    )
    .await;
    assert_eq!(got, json!({"id": 7}));
    // A limit with more than one decimal is refused before it is sent.
    let a = command(
        &app,
        "set-charging-profile",
        json!({"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 8, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {"chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 0.123}]}}}),
    )
    .await;
    assert_eq!(a.status, 422, "{a:?}");
    // TC_064: a DataTransfer from the charger to an unknown vendor.
    let r = cp
        .call(
            "DataTransfer",
            json!({"vendorId": "com.example", "messageId": "x"}),
        )
        .await;
    assert_eq!(r.expect("answered")["status"], "UnknownVendorId");
    cp.close().await;
}

async fn tc_032_037_039_transactions_made_offline_are_billed_when_the_charger_returns(
    app: TestApp,
) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    // The charger lost power and its network; it comes back and sends, in order, what it
    // queued: a start two hours back, its values, its stop (reason PowerLoss).
    let mut cp = Agent::connect(&py, &app.base, "acme-ocpp", &password).await;
    let t0 = Utc::now() - Span::hours(3);
    let started = cp
        .call("StartTransaction", json!({"connectorId": 2, "idTag": "04A1B2C3", "meterStart": 20_000, "timestamp": ts(t0)}))
        .await
        .expect("start");
    let tx = started["transactionId"].as_i64().expect("id");
    cp.call(
        "MeterValues",
        json!({"connectorId": 2, "transactionId": tx, "meterValue": [
        {"timestamp": ts(t0 + Span::minutes(30)), "sampledValue": [
            {"value": "1.5", "measurand": "Energy.Active.Import.Interval", "unit": "kWh"}]}]}),
    )
    .await
    .expect("values");
    cp.call(
        "StopTransaction",
        json!({"transactionId": tx, "meterStop": 24_000,
            "timestamp": ts(t0 + Span::hours(1)), "reason": "PowerLoss"}),
    )
    .await
    .expect("stop");
    let s = app
        .get(&format!("/api/v1/sessions/{tx}"), ADMIN_TOKEN)
        .await;
    // 4 kWh over 1 h: 1.20 energy + 1.20 time + 0.50 fee = 2.90 net, 0.61 tax, 3.51 total.
    assert_eq!(
        (
            &s.body["status"],
            &s.body["energy_wh"],
            &s.body["net"],
            &s.body["total"],
            &s.body["stop_reason"]
        ),
        (
            &json!("stopped"),
            &json!(4000),
            &json!("2.90"),
            &json!("3.51"),
            &json!("power_loss")
        ),
        "{s:?}"
    );
    assert_eq!(s.body["samples"][0]["energy_wh"], 21_500, "{s:?}");
    cp.close().await;
}

/// Security profile 2: with a certificate the charger connects over wss:// (trusting the
/// server's CA), Basic auth inside TLS.
#[tokio::test]
async fn the_charger_connects_over_wss_with_the_servers_certificate() {
    use charger_server::devices::{Bundle, CreateDeviceRequest, Protocol};
    use charger_server::owners::CreateOwnerRequest;
    use charger_server::service::Principal;
    let Some(py) = python() else { return };
    let ca = charger_e2e::TestCa::new();
    let (cert, key) = (ca.cert.clone(), ca.key.clone());
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
        c.ocpp_allow_plain = false;
    })
    .await
    .expect("app");
    let s = &app.app.service;
    s.create_owner(
        &Principal::Admin,
        CreateOwnerRequest {
            id: charger_server::ids::OwnerId::parse("acme").expect("id"),
            name: "Acme".into(),
        },
    )
    .await
    .expect("owner");
    let bundle = s
        .create_device(
            &Principal::Admin,
            serde_json::from_value::<CreateDeviceRequest>(
                json!({"id": "acme-ocpp", "owner": "acme", "connectors": 1, "protocol": "ocpp1.6"}),
            )
            .expect("request"),
        )
        .await
        .expect("device");
    let Bundle::Ocpp(bundle) = bundle else {
        panic!("an OCPP bundle")
    };
    assert_eq!(bundle.protocol, Protocol::Ocpp16);
    let url = format!(
        "wss://localhost:{}/ocpp/acme-ocpp",
        app.app.http_addr.port()
    );
    let mut cp = Agent::connect_trusting(
        &py,
        &url,
        "acme-ocpp",
        Some(&bundle.ocpp.password),
        "ocpp1.6",
        Some(&ca.ca),
    )
    .await
    .expect("connects over wss");
    let boot = cp
        .call(
            "BootNotification",
            json!({"chargePointVendor": "Keba", "chargePointModel": "P30"}),
        )
        .await
        .expect("boot");
    assert_eq!(boot["status"], "Accepted");
    cp.close().await;
}
