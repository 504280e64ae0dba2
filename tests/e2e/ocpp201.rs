//! OCPP 2.0.1 chargers end to end: PyPI `ocpp`'s `v201.ChargePoint` (which checks every
//! message both ways against the OCA 2.0.1 schemas) through the WebSocket, the operator on
//! REST. Tests are named after the OCTT test cases they cover (`tc_b_01_...`).

use charger_e2e::ocpp::{bulk_bundles, python, spawn_command, Agent, Refused};
use charger_e2e::{on_both_databases, spawn_app_on, TestApp, ADMIN_TOKEN};
use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(spawn_app_on =>
    tc_b_01_cold_boot_and_the_subprotocol,
    tc_c_authorization_answers_the_201_statuses,
    tc_e_a_transaction_is_billed_to_the_cent_like_the_others,
    tc_e_a_transaction_whose_start_was_lost_is_recorded_from_its_other_events,
    tc_f_remote_start_stop_reset_and_rotation_from_rest,
    tc_b_02_b_30_pending_then_accepted_and_nothing_before,
    tc_e_53_events_replayed_out_of_order_bill_from_the_first_seq_no,
    tc_b_03_rejected_by_the_operator_then_accepted,
    tc_e_replays_in_any_order_and_tokens_of_other_kinds,
);

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Owner `acme` with the EUR tariff of the other tests, tag 04A1B2C3, and the 2.0.1
/// charger `acme-201` (2 EVSEs); its password.
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
            json!({"uid": "04a1b2c3", "owner": "acme", "group": "fleet-a"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "acme-201", "owner": "acme", "connectors": 2, "protocol": "ocpp2.0.1"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["protocol"], "ocpp2.0.1");
    a.body["ocpp"]["password"]
        .as_str()
        .expect("password")
        .to_owned()
}

fn url(app: &TestApp) -> String {
    format!("{}/ocpp/acme-201", app.base.replace("http", "ws"))
}

async fn booted(app: &TestApp, py: &std::path::Path, password: &str) -> Agent {
    let mut cp = Agent::connect_with(py, &url(app), "acme-201", Some(password), "ocpp2.0.1")
        .await
        .expect("connects");
    register(&mut cp).await;
    cp
}

fn boot_request() -> Value {
    json!({"reason": "PowerUp", "chargingStation": {"model": "Wallbox", "vendorName": "Alfen", "firmwareVersion": "6.1"}})
}

/// Boots a station: the first boot is Pending (the server asks for its configuration),
/// the next Accepted.
async fn register(cp: &mut Agent) {
    let boot = cp
        .call("BootNotification", boot_request())
        .await
        .expect("boot");
    if boot["status"] == "Pending" {
        cp.received("GetBaseReport").await;
        let boot = cp
            .call("BootNotification", boot_request())
            .await
            .expect("boot");
        assert_eq!(boot["status"], "Accepted", "{boot}");
    } else {
        assert_eq!(boot["status"], "Accepted", "{boot}");
    }
}

fn token(uid: &str) -> Value {
    json!({"idToken": uid, "type": "ISO14443"})
}

fn energy(wh: &str, unit: &str, at: DateTime<Utc>, context: &str) -> Value {
    json!({"timestamp": ts(at), "sampledValue": [{"value": wh.parse::<f64>().expect("number"),
        "context": context, "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": {"unit": unit}}]})
}

async fn tc_b_01_cold_boot_and_the_subprotocol(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let r = cp
        .call(
            "StatusNotification",
            json!({"timestamp": ts(Utc::now()), "connectorStatus": "Occupied", "evseId": 2, "connectorId": 1}),
        )
        .await;
    assert!(r.is_ok(), "{r:?}");
    let beat = cp.call("Heartbeat", json!({})).await.expect("heartbeat");
    assert!(beat["currentTime"].is_string());
    let d = app.wait_for_online("acme-201", true).await;
    assert_eq!(
        (&d["protocol"], &d["model"], &d["firmware"]),
        (&json!("ocpp2.0.1"), &json!("Alfen Wallbox"), &json!("6.1"))
    );
    assert_eq!(d["connectors"][1]["state"], "occupied");
    cp.close().await;
    // Offered both, a 2.0.1 charger gets 2.0.1; offered only 1.6, it is served 1.6.
    let cp = Agent::connect_with(
        &py,
        &url(&app),
        "acme-201",
        Some(&password),
        "ocpp2.0.1,ocpp1.6",
    )
    .await
    .expect("connects");
    cp.close().await;
    let mut cp = Agent::connect_with(&py, &url(&app), "acme-201", Some(&password), "ocpp1.6")
        .await
        .expect("connects with 1.6");
    let boot = cp
        .call(
            "BootNotification",
            json!({"chargePointVendor": "Alfen", "chargePointModel": "Wallbox"}),
        )
        .await
        .expect("1.6 boot");
    assert_eq!(boot["status"], "Accepted");
    cp.close().await;
    let r = Agent::connect_with(&py, &url(&app), "acme-201", Some(&password), "ocpp2.1").await;
    assert_eq!(r.err(), Some(Refused(400)));
}

async fn tc_c_authorization_answers_the_201_statuses(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "0badbad0", "owner": "acme", "status": "blocked"}),
        )
        .await;
    assert_eq!(a.status, 201);
    let mut cp = booted(&app, &py, &password).await;
    let ok = cp
        .call("Authorize", json!({"idToken": token("04a1b2c3")}))
        .await
        .expect("answered");
    assert_eq!(ok["idTokenInfo"]["status"], "Accepted", "{ok}");
    assert_eq!(ok["idTokenInfo"]["groupIdToken"]["idToken"], "fleet-a");
    let blocked = cp
        .call("Authorize", json!({"idToken": token("0BADBAD0")}))
        .await
        .expect("answered");
    assert_eq!(blocked["idTokenInfo"]["status"], "Blocked");
    let unknown = cp
        .call("Authorize", json!({"idToken": token("DEADBEEF")}))
        .await
        .expect("answered");
    assert_eq!(unknown["idTokenInfo"]["status"], "Unknown");
    let key_code = cp
        .call(
            "Authorize",
            json!({"idToken": {"idToken": "1234", "type": "KeyCode"}}),
        )
        .await
        .expect("answered");
    assert_eq!(key_code["idTokenInfo"]["status"], "Unknown");
    cp.close().await;
}

async fn tc_e_a_transaction_is_billed_to_the_cent_like_the_others(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let t0 = Utc::now() - Span::hours(2);
    let started = cp
        .call(
            "TransactionEvent",
            json!({"eventType": "Started", "timestamp": ts(t0), "triggerReason": "Authorized",
                   "seqNo": 0, "transactionInfo": {"transactionId": "tx-0001", "chargingState": "Charging"},
                   "evse": {"id": 1, "connectorId": 1}, "idToken": token("04A1B2C3"),
                   "meterValue": [energy("1000", "Wh", t0, "Transaction.Begin")]}),
        )
        .await
        .expect("started");
    assert_eq!(started["idTokenInfo"]["status"], "Accepted", "{started}");
    let updated = cp
        .call(
            "TransactionEvent",
            json!({"eventType": "Updated", "timestamp": ts(t0 + Span::minutes(30)),
                   "triggerReason": "MeterValuePeriodic", "seqNo": 1,
                   "transactionInfo": {"transactionId": "tx-0001"},
                   "meterValue": [energy("6", "kWh", t0 + Span::minutes(30), "Sample.Periodic")]}),
        )
        .await
        .expect("updated");
    // 5 kWh in half an hour: 1.50 + 0.60 + 0.50 = 2.60, with 21 % tax (0.55): the running
    // cost as the final one will be.
    assert_eq!(updated["totalCost"], 3.15, "{updated}");
    // A repeat of an event (the same seqNo) changes nothing.
    cp.call(
        "TransactionEvent",
        json!({"eventType": "Updated", "timestamp": ts(t0 + Span::minutes(30)),
               "triggerReason": "MeterValuePeriodic", "seqNo": 1,
               "transactionInfo": {"transactionId": "tx-0001"},
               "meterValue": [energy("6", "kWh", t0 + Span::minutes(30), "Sample.Periodic")]}),
    )
    .await
    .expect("repeat");
    let ended = cp
        .call(
            "TransactionEvent",
            json!({"eventType": "Ended", "timestamp": ts(t0 + Span::seconds(4_530)),
                   "triggerReason": "EVDeparted", "seqNo": 2,
                   "transactionInfo": {"transactionId": "tx-0001", "stoppedReason": "EVDisconnected"},
                   "meterValue": [energy("13.345", "kWh", t0 + Span::seconds(4_530), "Transaction.End")]}),
        )
        .await
        .expect("ended");
    assert_eq!(ended["totalCost"], 6.91, "{ended}");
    let page = app
        .get("/api/v1/sessions?device=acme-201", ADMIN_TOKEN)
        .await;
    let s = &page.body["sessions"][0];
    assert_eq!(
        (
            &s["status"],
            &s["energy_wh"],
            &s["total"],
            &s["stop_reason"],
            &s["connector"]
        ),
        (
            &json!("stopped"),
            &json!(12_345),
            &json!("6.91"),
            &json!("ev_disconnected"),
            &json!(1)
        ),
        "{page:?}"
    );
    cp.close().await;
}

async fn tc_e_a_transaction_whose_start_was_lost_is_recorded_from_its_other_events(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let t0 = Utc::now() - Span::hours(3);
    // Queued offline; its Started never arrives. An Updated brings the idToken.
    for (seq, kind, wh, minutes) in [(1, "Updated", "2000", 10), (2, "Ended", "5000", 60)] {
        let mut event = json!({"eventType": kind, "timestamp": ts(t0 + Span::minutes(minutes)),
               "triggerReason": "MeterValuePeriodic", "seqNo": seq, "offline": true,
               "transactionInfo": {"transactionId": "offline-7"},
               "meterValue": [energy(wh, "Wh", t0 + Span::minutes(minutes), "Sample.Periodic")]});
        if seq == 1 {
            event["idToken"] = token("04A1B2C3");
            event["evse"] = json!({"id": 2});
        }
        cp.call("TransactionEvent", event).await.expect("answered");
    }
    let page = app
        .get("/api/v1/sessions?device=acme-201", ADMIN_TOKEN)
        .await;
    let s = &page.body["sessions"][0];
    assert_eq!(
        (&s["status"], &s["energy_wh"], &s["connector"]),
        (&json!("stopped"), &json!(3000), &json!(2)),
        "{page:?}"
    );
    // An Ended for a transaction never seen, without an idToken: recorded disputed.
    cp.call(
        "TransactionEvent",
        json!({"eventType": "Ended", "timestamp": ts(t0 + Span::minutes(90)),
               "triggerReason": "EVDeparted", "seqNo": 5, "offline": true,
               "transactionInfo": {"transactionId": "ghost-1"},
               "meterValue": [energy("9000", "Wh", t0 + Span::minutes(90), "Transaction.End")]}),
    )
    .await
    .expect("answered");
    let page = app
        .get(
            "/api/v1/sessions?device=acme-201&status=disputed",
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(
        page.body["sessions"].as_array().map(Vec::len),
        Some(1),
        "{page:?}"
    );
    cp.close().await;
}

async fn tc_f_remote_start_stop_reset_and_rotation_from_rest(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let rest = |command: &str, data: Value| spawn_command(&app, "acme-201", command, data);
    let start = rest("remote-start", json!({"tag": "04A1B2C3", "connector": 1}));
    let asked = cp.received("RequestStartTransaction").await;
    assert_eq!(
        (&asked["idToken"]["idToken"], &asked["evseId"]),
        (&json!("04A1B2C3"), &json!(1))
    );
    let (status, body) = start.await.expect("task");
    assert_eq!(
        (status, &body["answer"]["status"]),
        (200, &json!("Accepted")),
        "{body}"
    );
    let started = cp
        .call(
            "TransactionEvent",
            json!({"eventType": "Started", "timestamp": ts(Utc::now()), "triggerReason": "RemoteStart",
                   "seqNo": 0, "transactionInfo": {"transactionId": "remote-1", "remoteStartId": asked["remoteStartId"]},
                   "evse": {"id": 1}, "idToken": token("04A1B2C3"),
                   "meterValue": [energy("0", "Wh", Utc::now(), "Transaction.Begin")]}),
        )
        .await
        .expect("started");
    assert_eq!(started["idTokenInfo"]["status"], "Accepted");
    let page = app
        .get("/api/v1/sessions?device=acme-201", ADMIN_TOKEN)
        .await;
    let session = page.body["sessions"][0]["id"].as_i64().expect("session");
    let stop = rest("remote-stop", json!({"session_id": session}));
    assert_eq!(
        cp.received("RequestStopTransaction").await,
        json!({"transactionId": "remote-1"})
    );
    assert_eq!(stop.await.expect("task").0, 200);
    let reset = rest("reset", json!({"type": "Immediate"}));
    assert_eq!(cp.received("Reset").await, json!({"type": "Immediate"}));
    assert_eq!(reset.await.expect("task").0, 200);
    // The password is never set through commands, whatever the names' case (OCPP names are
    // case-insensitive); an EVSE the station does not have is refused wherever it is named.
    for (command, data) in [
        (
            "set-variables",
            json!({"setVariableData": [{"attributeValue": "x".repeat(20),
                   "component": {"name": "securityctrlr"},
                   "variable": {"name": "basicAUTHpassword"}}]}),
        ),
        (
            "set-variables",
            json!({"setVariableData": [{"attributeValue": "x".repeat(20),
                   "component": {"name": "SecurityCtrlr"},
                   "variable": {"name": "BasicAuthPa\u{17f}\u{17f}word"}}]}),
        ),
        (
            "set-variables",
            json!({"setVariableData": [{"attributeValue": "x".repeat(20),
                   "component": {"name": "SecurityCtrlr"},
                   "variable": {"name": "B\u{430}sicAuthPassword"}}]}),
        ),
        (
            "change-availability",
            json!({"operationalStatus": "Inoperative", "evse": {"id": 9}}),
        ),
        (
            "trigger-message",
            json!({"requestedMessage": "MeterValues", "evse": {"id": 9, "connectorId": 1}}),
        ),
        (
            "clear-charging-profile",
            json!({"chargingProfileCriteria": {"evseId": 9}}),
        ),
        (
            "get-variables",
            json!({"getVariableData": [{"component": {"name": "EVSE", "evse": {"id": 9}},
                   "variable": {"name": "Power"}}]}),
        ),
    ] {
        let (status, body) = rest(command, data).await.expect("task");
        assert_eq!(status, 422, "{command}: {body}");
    }
    // Command data is checked against 2.0.1's type before anything is sent: 422 naming it.
    let profile = |schedules: Value| {
        json!({"evseId": 1, "chargingProfile": {"id": 1, "stackLevel": 0,
               "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
               "chargingSchedule": schedules}})
    };
    let schedule = |limit: Value| {
        json!({"id": 1, "chargingRateUnit": "A",
               "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]})
    };
    for (command, bad) in [
        ("reset", json!({"type": "Sometimes"})),
        ("reset", json!({"type": "Immediate", "evse": 1})),
        ("reset", json!({})),
        // customData needs its vendorId.
        (
            "reset",
            json!({"type": "Immediate", "customData": {"x": 1}}),
        ),
        // Arrays within the schemas' minItems and maxItems.
        ("get-variables", json!({"getVariableData": []})),
        ("set-variables", json!({"setVariableData": []})),
        ("set-charging-profile", profile(json!([]))),
        (
            "set-charging-profile",
            profile(json!([
                schedule(json!(16)),
                schedule(json!(16)),
                schedule(json!(16)),
                schedule(json!(16))
            ])),
        ),
        // A limit has one decimal at most.
        (
            "set-charging-profile",
            profile(json!([schedule(json!(16.25))])),
        ),
        (
            "get-charging-profiles",
            json!({"requestId": 1, "chargingProfile": {"chargingProfileId": []}}),
        ),
    ] {
        let (status, body) = rest(command, bad).await.expect("task");
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"], "invalid_input", "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("data: ")),
            "{body}"
        );
    }
    let (status, body) = rest(
        "set-charging-profile",
        json!({"evseId": 1, "chargingProfile": {"id": 1, "stackLevel": 0,
               "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
               "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                                     "chargingSchedulePeriod": [{"startPeriod": 0, "limit": "sixteen"}]}]}}),
    )
    .await
    .expect("task");
    assert_eq!(status, 422, "{body}");
    // A rotation: SetVariables SecurityCtrlr.BasicAuthPassword first, then the socket closes.
    let rotated = app
        .post(
            "/api/v1/devices/acme-201/credentials",
            ADMIN_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 201, "{rotated:?}");
    assert_eq!(rotated.body["ocpp"]["pushed"], true, "{rotated:?}");
    let set = cp.received("SetVariables").await;
    assert_eq!(
        set["setVariableData"][0]["variable"]["name"],
        "BasicAuthPassword"
    );
    assert_eq!(
        set["setVariableData"][0]["attributeValue"],
        rotated.body["ocpp"]["password"]
    );
    assert_eq!(cp.wait_closed().await, Some(1000));
}

/// Three instances on one PostgreSQL database: a 2.0.1 charger's socket on one, a remote
/// stop, a reset, unavailability and a trigger through the others reach it (the holder
/// speaks 2.0.1); it moves to another and the first closes its socket.
#[tokio::test]
async fn three_instances_route_201_commands() {
    let Some(py) = python() else { return };
    let dir = charger_e2e::TempDir::new();
    let Some(db) = charger_e2e::fresh_database(charger_e2e::Db::Postgres, &dir).await else {
        return;
    };
    let mut apps = Vec::new();
    for i in 0..3 {
        let data = dir.0.join(format!("instance-{i}"));
        std::fs::create_dir_all(&data).expect("data dir");
        let mut config = charger_server::Config::for_tests(data);
        config.database_url = Some(charger_server::secrets::Secret::new(db.clone()));
        config.admin_token = Some(charger_server::secrets::Secret::new(ADMIN_TOKEN));
        config.secret_file = Some(dir.0.join("server.secret"));
        apps.push(
            charger_server::App::start(config)
                .await
                .expect("instance starts"),
        );
    }
    let rest: Vec<charger_e2e::Rest> = apps
        .iter()
        .map(|a| TestApp::rest_of(format!("http://{}", a.http_addr)))
        .collect();
    let a = rest[0]
        .post(
            "/api/v1/owners",
            ADMIN_TOKEN,
            json!({"id": "acme", "name": "Acme"}),
        )
        .await;
    assert_eq!(a.status, 201);
    let a = rest[0]
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "04a1b2c3", "owner": "acme"}),
        )
        .await;
    assert_eq!(a.status, 201);
    let a = rest[0]
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "acme-201", "owner": "acme", "connectors": 1, "protocol": "ocpp2.0.1"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let password = a.body["ocpp"]["password"]
        .as_str()
        .expect("password")
        .to_owned();
    let ws = |i: usize| format!("{}/ocpp/acme-201", rest[i].base.replace("http", "ws"));
    let mut first = Agent::connect_with(&py, &ws(0), "acme-201", Some(&password), "ocpp2.0.1")
        .await
        .expect("connects");
    register(&mut first).await;
    first
        .call(
            "TransactionEvent",
            json!({"eventType": "Started", "timestamp": ts(Utc::now()), "triggerReason": "Authorized",
                   "seqNo": 0, "transactionInfo": {"transactionId": "x-1"}, "evse": {"id": 1},
                   "idToken": token("04A1B2C3"),
                   "meterValue": [energy("0", "Wh", Utc::now(), "Transaction.Begin")]}),
        )
        .await
        .expect("started");
    let page = rest[2]
        .get("/api/v1/sessions?device=acme-201", ADMIN_TOKEN)
        .await;
    let session = page.body["sessions"][0]["id"].as_i64().expect("a session");
    let stop = spawn_command(
        &rest[2],
        "acme-201",
        "remote-stop",
        json!({"session_id": session}),
    );
    assert_eq!(
        first.received("RequestStopTransaction").await,
        json!({"transactionId": "x-1"})
    );
    assert_eq!(stop.await.expect("task").0, 200);
    // Reset, unavailability and a trigger through the two instances that do not hold it.
    for (via, command, action, data) in [
        (1, "reset", "Reset", json!({"type": "OnIdle"})),
        (
            2,
            "change-availability",
            "ChangeAvailability",
            json!({"operationalStatus": "Inoperative", "evse": {"id": 1}}),
        ),
        (
            1,
            "trigger-message",
            "TriggerMessage",
            json!({"requestedMessage": "Heartbeat"}),
        ),
    ] {
        let sent = spawn_command(&rest[via], "acme-201", command, data.clone());
        assert_eq!(first.received(action).await, data, "{command}");
        let (status, body) = sent.await.expect("task");
        assert_eq!(status, 200, "{command}: {body}");
    }
    let second = Agent::connect_with(&py, &ws(1), "acme-201", Some(&password), "ocpp2.0.1")
        .await
        .expect("connects to another instance");
    assert_eq!(first.wait_closed().await, Some(1000));
    second.close().await;
    for app in apps {
        app.stop().await.expect("stops");
    }
}

/// TC_D: the local list, from the owner's tags, in 2.0.1's shape: full first, then the
/// changes since the version the station holds.
#[tokio::test]
async fn tc_d_the_local_list_is_sent_full_then_differential() {
    let Some(py) = python() else { return };
    let app = spawn_app_on(charger_e2e::Db::Sqlite).await.expect("app");
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let send = |app: &TestApp| spawn_command(app, "acme-201", "send-local-list", json!({}));
    let sent = send(&app);
    assert_eq!(cp.received("GetLocalListVersion").await, json!({}));
    let full = cp.received("SendLocalList").await;
    assert_eq!(full["updateType"], "Full", "{full}");
    let entry = &full["localAuthorizationList"][0];
    assert_eq!(
        entry["idToken"],
        json!({"idToken": "04A1B2C3", "type": "ISO14443"})
    );
    assert_eq!(entry["idTokenInfo"]["status"], "Accepted");
    assert_eq!(entry["idTokenInfo"]["groupIdToken"]["idToken"], "fleet-a");
    let (status, body) = sent.await.expect("task");
    assert_eq!(
        (status, &body["answer"]["status"]),
        (200, &json!("Accepted")),
        "{body}"
    );
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "0a0a0a0a", "owner": "acme"}),
        )
        .await;
    assert_eq!(a.status, 201);
    let sent = send(&app);
    cp.received("GetLocalListVersion").await;
    let diff = cp.received("SendLocalList").await;
    assert_eq!(diff["updateType"], "Differential", "{diff}");
    assert_eq!(
        diff["localAuthorizationList"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(diff["versionNumber"].as_i64() > full["versionNumber"].as_i64());
    assert_eq!(sent.await.expect("task").0, 200);
    cp.close().await;
}

async fn tc_b_02_b_30_pending_then_accepted_and_nothing_before(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = Agent::connect_with(&py, &url(&app), "acme-201", Some(&password), "ocpp2.0.1")
        .await
        .expect("connects");
    // TC_B_30: nothing but BootNotification before the registration is accepted.
    let early = cp.call("Heartbeat", json!({})).await;
    assert_eq!(early.err().map(|e| e.0), Some("SecurityError".to_owned()));
    // TC_B_02: the first boot is Pending; the server reads the configuration meanwhile.
    let boot = cp
        .call("BootNotification", boot_request())
        .await
        .expect("boot");
    assert_eq!(
        (&boot["status"], &boot["interval"]),
        (&json!("Pending"), &json!(10)),
        "{boot}"
    );
    let asked = cp.received("GetBaseReport").await;
    assert_eq!(asked["reportBase"], "ConfigurationInventory");
    // The report comes in two parts; the server keeps the variables it uses (the
    // station's, or one of its EVSEs'), the Actual value only.
    let report = cp
        .call(
            "NotifyReport",
            json!({"requestId": asked["requestId"], "generatedAt": ts(Utc::now()), "seqNo": 0,
                   "tbc": true,
                   "reportData": [{"component": {"name": "OCPPCommCtrlr"},
                                   "variable": {"name": "HeartbeatInterval"},
                                   "variableAttribute": [{"value": "300"},
                                                         {"type": "MaxSet", "value": "9999"}]},
                                  {"component": {"name": "SecurityCtrlr"},
                                   "variable": {"name": "OrganizationName"},
                                   "variableAttribute": [{"value": "NotKeptOrg"}]}]}),
        )
        .await;
    assert!(r_ok(&report), "{report:?}");
    let report = cp
        .call(
            "NotifyReport",
            json!({"requestId": asked["requestId"], "generatedAt": ts(Utc::now()), "seqNo": 1,
                   "reportData": [{"component": {"name": "EVSE", "evse": {"id": 2}},
                                   "variable": {"name": "PhaseRotation"},
                                   "variableAttribute": [{"value": "TRS"}]},
                                  {"component": {"name": "EVSE", "evse": {"id": 9}},
                                   "variable": {"name": "PhaseRotation"},
                                   "variableAttribute": [{"value": "SRT"}]},
                                  {"component": {"name": "AuthCtrlr"},
                                   "variable": {"name": "LocalAuthorizeOffline"},
                                   "variableAttribute": [{"type": "Actual", "value": "true"}]}]}),
        )
        .await;
    assert!(r_ok(&report), "{report:?}");
    let cookie = app.console_sign_in(ADMIN_TOKEN).await;
    let (status, page) = app.console_get(&cookie, "/chargers/acme-201").await;
    assert_eq!(status, 200);
    let config = page
        .split("Station configuration")
        .nth(1)
        .expect("the station's configuration is shown");
    for shown in [
        "HeartbeatInterval",
        "300",
        "PhaseRotation",
        "TRS",
        "LocalAuthorizeOffline",
    ] {
        assert!(config.contains(shown), "{shown} in {config}");
    }
    for hidden in ["9999", "NotKeptOrg", "SRT"] {
        assert!(!page.contains(hidden), "{hidden} in {page}");
    }
    let pending = cp.call("Heartbeat", json!({})).await;
    assert_eq!(pending.err().map(|e| e.0), Some("SecurityError".to_owned()));
    // B02: while Pending, the station is only asked for its configuration (409 for the
    // rest, nothing sent), and what the server triggers is taken from it (B02.FR.09).
    let start = app
        .post(
            "/api/v1/devices/acme-201/commands/remote-start",
            ADMIN_TOKEN,
            json!({"tag": "04A1B2C3", "connector": 1}),
        )
        .await;
    assert_eq!(start.status, 409, "{start:?}");
    assert_eq!(start.body["error"], "registration_pending", "{start:?}");
    let trigger = spawn_command(
        &app,
        "acme-201",
        "trigger-message",
        json!({"requestedMessage": "StatusNotification"}),
    );
    assert_eq!(
        cp.received("TriggerMessage").await["requestedMessage"],
        "StatusNotification"
    );
    assert_eq!(trigger.await.expect("task").0, 200);
    let status = json!({"timestamp": ts(Utc::now()), "connectorStatus": "Available",
                        "evseId": 1, "connectorId": 1});
    assert!(cp.call("StatusNotification", status.clone()).await.is_ok());
    // Once: the next one is not triggered.
    let again = cp.call("StatusNotification", status).await;
    assert_eq!(again.err().map(|e| e.0), Some("SecurityError".to_owned()));
    let boot = cp
        .call("BootNotification", boot_request())
        .await
        .expect("boot");
    assert_eq!(boot["status"], "Accepted", "{boot}");
    assert!(cp.call("Heartbeat", json!({})).await.is_ok());
    cp.close().await;
    // Registered: a station that reconnects without booting is served.
    let mut cp = Agent::connect_with(&py, &url(&app), "acme-201", Some(&password), "ocpp2.0.1")
        .await
        .expect("connects");
    assert!(cp.call("Heartbeat", json!({})).await.is_ok());
    cp.close().await;
}

fn r_ok(r: &Result<Value, (String, String)>) -> bool {
    r.is_ok()
}

async fn tc_e_53_events_replayed_out_of_order_bill_from_the_first_seq_no(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let t0 = Utc::now() - Span::hours(4);
    let event_of = |transaction: &str, seq: i64, kind: &str, wh: &str, minutes: i64| {
        json!({"eventType": kind, "timestamp": ts(t0 + Span::minutes(minutes)),
               "triggerReason": "MeterValuePeriodic", "seqNo": seq, "offline": true,
               "transactionInfo": {"transactionId": transaction}, "evse": {"id": 1},
               "idToken": token("04A1B2C3"),
               "meterValue": [energy(wh, "Wh", t0 + Span::minutes(minutes), "Sample.Periodic")]})
    };
    let event =
        |seq: i64, kind: &str, wh: &str, minutes: i64| event_of("ooo-1", seq, kind, wh, minutes);
    // Replayed after an outage in the order 1, 0, 1 (again), 2.
    for e in [
        event(1, "Updated", "5000", 30),
        event(0, "Started", "2000", 0),
        event(1, "Updated", "5000", 30),
        event(2, "Ended", "8000", 60),
    ] {
        cp.call("TransactionEvent", e).await.expect("answered");
    }
    let page = app
        .get("/api/v1/sessions?device=acme-201", ADMIN_TOKEN)
        .await;
    let listed = page.body["sessions"].as_array().expect("sessions").clone();
    assert_eq!(listed.len(), 1, "{page:?}");
    let s = &listed[0];
    assert_eq!(
        (&s["status"], &s["energy_wh"]),
        (&json!("stopped"), &json!(6000)),
        "{s}"
    );
    let started: DateTime<Utc> = s["started_at"]
        .as_str()
        .expect("start")
        .parse()
        .expect("time");
    assert_eq!(started.timestamp_millis(), (t0).timestamp_millis(), "{s}");
    // A start event of a stopped session from long ago (a station rewriting a finished
    // bill): older than the offline window, it changes nothing.
    let first_total = s["total"].clone();
    let mut forged = event_of("ooo-1", 3, "Updated", "0", 0);
    forged["timestamp"] = json!("2023-01-01T00:00:00.000Z");
    forged["meterValue"][0]["timestamp"] = json!("2023-01-01T00:00:00.000Z");
    cp.call("TransactionEvent", forged).await.expect("answered");
    let after = sessions(&app).await;
    let s1 = after
        .iter()
        .find(|x| x["id"] == s["id"])
        .expect("the first");
    assert_eq!(
        (&s1["status"], &s1["energy_wh"], &s1["total"]),
        (&json!("stopped"), &json!(6000), &first_total),
        "{s1}"
    );
    // The same transaction replayed as 1, 2, 0, 2: its start arrives after its end. Its
    // bill was given at the end, so it is not billed again: it is disputed, for an
    // operator to correct, and the repeated end says no totalCost.
    for e in [
        event_of("ooo-2", 1, "Updated", "5000", 30),
        event_of("ooo-2", 2, "Ended", "8000", 60),
        event_of("ooo-2", 0, "Started", "2000", 0),
    ] {
        cp.call("TransactionEvent", e).await.expect("answered");
    }
    let again = cp
        .call(
            "TransactionEvent",
            event_of("ooo-2", 2, "Ended", "8000", 60),
        )
        .await
        .expect("answered");
    assert!(again["totalCost"].is_null(), "{again}");
    let all = sessions(&app).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let s2 = all
        .iter()
        .find(|x| x["local_id"] == "t-ooo-2")
        .expect("the second session");
    assert_eq!(s2["status"], "disputed", "{s2}");
    assert!(
        s2["dispute"]
            .as_str()
            .is_some_and(|d| d.contains("after its end")),
        "{s2}"
    );
    cp.close().await;
}

/// The console shows a 2.0.1 station and sends its commands in 2.0.1's terms.
#[tokio::test]
async fn the_console_commands_a_201_station() {
    let Some(py) = python() else { return };
    let app = spawn_app_on(charger_e2e::Db::Sqlite).await.expect("app");
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let cookie = app.console_sign_in(ADMIN_TOKEN).await;
    let (status, page) = app.console_get(&cookie, "/chargers/acme-201").await;
    assert_eq!(status, 200);
    assert!(page.contains("OCPP 2.0.1"), "{page}");
    assert!(page.contains("OnIdle"), "{page}");
    assert!(!page.contains("/commands/change-configuration"), "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token")
        .to_owned();
    let post = tokio::spawn({
        let url = format!(
            "{}/chargers/acme-201/commands/change-availability",
            app.base
        );
        let cookie = cookie.clone();
        let csrf = csrf.clone();
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client")
                .post(url)
                .header("cookie", cookie)
                .header("origin", "http://localhost")
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("ocpp", "2.0.1"),
                    ("connector", "1"),
                    ("type", "Inoperative"),
                ])
                .send()
                .await
                .expect("form")
                .status()
                .as_u16()
        }
    });
    assert_eq!(
        cp.received("ChangeAvailability").await,
        json!({"operationalStatus": "Inoperative", "evse": {"id": 1}})
    );
    assert_eq!(post.await.expect("task"), 303);
    // The operator rejects it from its page: its socket closes, and the page says so.
    assert!(page.contains("Reject the charger"), "{page}");
    let rejected = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/chargers/acme-201/registration", app.base))
        .header("cookie", &cookie)
        .header("origin", "http://localhost")
        .form(&[("csrf", csrf.as_str()), ("registration", "rejected")])
        .send()
        .await
        .expect("form");
    assert_eq!(rejected.status(), 303);
    assert!(cp.wait_closed().await.is_some());
    let (_, page) = app.console_get(&cookie, "/chargers/acme-201").await;
    assert!(page.contains("Accept the charger"), "{page}");
}

/// The simulator's load runs play 2.0.1 stations (the bundle's subprotocol): each boots
/// (Pending, the base report asked for, then Accepted), authorizes and runs transactions
/// as TransactionEvent Started and Ended, with no error, each billed.
#[tokio::test]
async fn the_simulator_plays_201_stations_in_load_runs() {
    let app = spawn_app_on(charger_e2e::Db::Sqlite).await.expect("app");
    fleet(&app).await;
    let bundles = bulk_bundles(&app, "acme", "sim-", 2, "ocpp2.0.1").await;
    assert_eq!(bundles[0].ocpp.subprotocol, "ocpp2.0.1");
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "be000000", "owner": "acme", "max_sessions": 100}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let config = charger_firmware_sim::load::LoadConfig {
        broker: Some(app.base.replace("http", "ws")),
        mix: "authorize=3,session=1,echo=1,status=1"
            .parse()
            .expect("mix"),
        duration: Duration::from_secs(1),
        tags: vec!["BE000000".into()],
        ..Default::default()
    };
    let report = charger_firmware_sim::load::run_ocpp(&bundles, config)
        .await
        .expect("load");
    assert_eq!(report.connected, 2);
    assert!(report.requests > 10, "{}", report.text());
    assert_eq!(report.error_count(), 0, "{}", report.text());
    let page = app
        .get("/api/v1/sessions?device=sim-00000&limit=200", ADMIN_TOKEN)
        .await;
    let sessions = page.body["sessions"].as_array().expect("sessions").clone();
    assert!(!sessions.is_empty(), "{page:?}");
    for s in &sessions {
        assert_eq!(
            (&s["status"], &s["energy_wh"]),
            (
                &json!("stopped"),
                &json!(charger_firmware_sim::load::SESSION_WH)
            ),
            "{s}"
        );
    }
}

/// TC_B_03 (the CSMS's side): an operator rejects a registered station over REST; its
/// socket closes, its next boot is Rejected (with the retry interval), nothing else it
/// sends is taken (SecurityError) and no command is sent to it (409); accepted again,
/// its next boot is Accepted. A MyBox charger has no registration (422).
async fn tc_b_03_rejected_by_the_operator_then_accepted(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let cp = booted(&app, &py, &password).await;
    let a = app
        .patch(
            "/api/v1/devices/acme-201",
            ADMIN_TOKEN,
            json!({"registration": "rejected"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["registration"], "rejected", "{a:?}");
    let mut cp = cp;
    assert!(cp.wait_closed().await.is_some());
    let mut cp = Agent::connect_with(&py, &url(&app), "acme-201", Some(&password), "ocpp2.0.1")
        .await
        .expect("connects");
    let early = cp.call("Heartbeat", json!({})).await;
    assert_eq!(early.err().map(|e| e.0), Some("SecurityError".to_owned()));
    let boot = cp
        .call("BootNotification", boot_request())
        .await
        .expect("boot");
    assert_eq!(
        (&boot["status"], &boot["interval"]),
        (&json!("Rejected"), &json!(300)),
        "{boot}"
    );
    let after = cp
        .call(
            "StatusNotification",
            json!({"timestamp": ts(Utc::now()),
        "connectorStatus": "Available", "evseId": 1, "connectorId": 1}),
        )
        .await;
    assert_eq!(after.err().map(|e| e.0), Some("SecurityError".to_owned()));
    // Nor a report nobody asked for: a rejected station writes nothing.
    let report = cp
        .call(
            "NotifyReport",
            json!({"requestId": 1, "generatedAt": ts(Utc::now()), "seqNo": 0,
                   "reportData": [{"component": {"name": "AuthCtrlr"},
                                   "variable": {"name": "MasterPassGroupId"},
                                   "variableAttribute": [{"value": "rejected-wrote-this"}]}]}),
        )
        .await;
    assert_eq!(report.err().map(|e| e.0), Some("SecurityError".to_owned()));
    let refused = app
        .post(
            "/api/v1/devices/acme-201/commands/reset",
            ADMIN_TOKEN,
            json!({"type": "Immediate"}),
        )
        .await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert_eq!(
        refused.body["error"], "registration_rejected",
        "{refused:?}"
    );
    let a = app
        .patch(
            "/api/v1/devices/acme-201",
            ADMIN_TOKEN,
            json!({"registration": "accepted"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let boot = cp
        .call("BootNotification", boot_request())
        .await
        .expect("boot");
    assert_eq!(boot["status"], "Accepted", "{boot}");
    assert!(cp.call("Heartbeat", json!({})).await.is_ok());
    cp.close().await;
    // Made pending again, a 2.0.1 station that connects on 1.6 boots first all the same.
    let a = app
        .patch(
            "/api/v1/devices/acme-201",
            ADMIN_TOKEN,
            json!({"registration": "pending"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let mut v16 = Agent::connect_with(&py, &url(&app), "acme-201", Some(&password), "ocpp1.6")
        .await
        .expect("connects on 1.6");
    let early = v16.call("Heartbeat", json!({})).await;
    assert_eq!(early.err().map(|e| e.0), Some("SecurityError".to_owned()));
    v16.close().await;
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "acme-mybox", "owner": "acme", "connectors": 1}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app
        .patch(
            "/api/v1/devices/acme-mybox",
            ADMIN_TOKEN,
            json!({"registration": "rejected"}),
        )
        .await;
    assert_eq!(a.status, 422, "{a:?}");
    let a = app
        .patch(
            "/api/v1/devices/acme-201",
            ADMIN_TOKEN,
            json!({"registration": "sometimes"}),
        )
        .await;
    assert_eq!(a.status, 422, "{a:?}");
}

/// Events replayed in other orders, and tokens that are no tag: (A) 1 without the token,
/// then 0 with it, then 2: billed from seqNo 0's reading; (B) the Ended first, without a
/// token, then 0 and 1: one session for the transaction, disputed and closed, its tag not
/// left busy; (C) a token of another kind (Central, or an eMAID shaped like a uid): the
/// answer says Unknown, the transaction is still recorded (disputed), and its end carries
/// no totalCost (0 would say it was free).
async fn tc_e_replays_in_any_order_and_tokens_of_other_kinds(app: TestApp) {
    let Some(py) = python() else { return };
    let password = fleet(&app).await;
    let mut cp = booted(&app, &py, &password).await;
    let t0 = Utc::now() - Span::hours(3);
    let event = |tx: &str, seq: i64, kind: &str, token: Option<Value>, wh: i64, minutes: i64| {
        let mut e = json!({"eventType": kind, "timestamp": ts(t0 + Span::minutes(minutes)),
               "triggerReason": "MeterValuePeriodic", "seqNo": seq, "offline": true,
               "transactionInfo": {"transactionId": tx}, "evse": {"id": 1},
               "meterValue": [energy(&wh.to_string(), "Wh", t0 + Span::minutes(minutes), "Sample.Periodic")]});
        if let Some(t) = token {
            e["idToken"] = t;
        }
        e
    };
    // (A)
    for e in [
        event("a", 1, "Updated", None, 21_000, 30),
        event("a", 0, "Started", Some(token("04A1B2C3")), 20_000, 0),
        event("a", 2, "Ended", None, 23_000, 60),
    ] {
        cp.call("TransactionEvent", e).await.expect("answered");
    }
    let all = sessions(&app).await;
    let a = all
        .iter()
        .find(|s| s["local_id"] == "t-a")
        .expect("session a");
    assert_eq!(
        (&a["status"], &a["meter_start_wh"], &a["energy_wh"]),
        (&json!("stopped"), &json!(20_000), &json!(3_000)),
        "{a}"
    );
    // (B)
    let ended = cp
        .call(
            "TransactionEvent",
            event("b", 2, "Ended", None, 33_000, 120),
        )
        .await
        .expect("answered");
    assert!(ended["totalCost"].is_null(), "{ended}");
    for e in [
        event("b", 0, "Started", Some(token("04A1B2C3")), 30_000, 65),
        event("b", 1, "Updated", None, 31_000, 90),
    ] {
        cp.call("TransactionEvent", e).await.expect("answered");
    }
    let all = sessions(&app).await;
    let b: Vec<&Value> = all.iter().filter(|s| s["local_id"] == "t-b").collect();
    assert_eq!(b.len(), 1, "{all:?}");
    assert_eq!(b[0]["status"], "disputed", "{all:?}");
    assert!(
        all.iter().all(|s| s["status"] != "active"),
        "nothing is left open: {all:?}"
    );
    let auth = cp
        .call("Authorize", json!({"idToken": token("04A1B2C3")}))
        .await
        .expect("authorize");
    assert_eq!(auth["idTokenInfo"]["status"], "Accepted", "{auth}");
    // (C)
    let emaid = cp
        .call(
            "Authorize",
            json!({"idToken": {"idToken": "04A1B2C3", "type": "eMAID"}}),
        )
        .await
        .expect("authorize");
    assert_eq!(emaid["idTokenInfo"]["status"], "Unknown", "{emaid}");
    let central = json!({"idToken": "not-a-uid", "type": "Central"});
    let started = cp
        .call(
            "TransactionEvent",
            event("c", 0, "Started", Some(central.clone()), 40_000, 130),
        )
        .await
        .expect("answered");
    assert_eq!(started["idTokenInfo"]["status"], "Unknown", "{started}");
    let ended = cp
        .call(
            "TransactionEvent",
            event("c", 1, "Ended", Some(central), 41_000, 150),
        )
        .await
        .expect("answered");
    assert!(ended["totalCost"].is_null(), "{ended}");
    let all = sessions(&app).await;
    let c = all
        .iter()
        .find(|s| s["local_id"] == "t-c")
        .expect("session c");
    // The placeholder it is recorded under is no card: never a sighting, never a tag.
    let unknown = app.get("/api/v1/tags/unknown", ADMIN_TOKEN).await;
    assert!(
        !unknown.body.to_string().contains("00000000"),
        "{unknown:?}"
    );
    let reserved = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "00000000", "owner": "acme"}),
        )
        .await;
    assert_eq!(reserved.status, 422, "{reserved:?}");
    // (E) What a station tells before its tokens is kept for 16 transactions at most
    // (CHARGER_OCPP_PENDING_TRANSACTIONS): the 17th makes it forget the oldest, counted;
    // that transaction starts from the event that brings its token, as after a restart.
    for n in 0..17 {
        let tx = format!("e-{n}");
        cp.call(
            "TransactionEvent",
            event(&tx, 0, "Started", None, 60_000, 175),
        )
        .await
        .expect("answered");
    }
    // (The counter is the process's: the other database's run may count too.)
    let metrics = app.get_text("/metrics").await;
    let hits = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("charger_limit_hits_total{limit=\"ocpp_pending_transactions\"} ")
        })
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(hits.is_some_and(|n| n >= 1), "{metrics}");
    for tx in ["e-0", "e-16"] {
        cp.call(
            "TransactionEvent",
            event(tx, 1, "Ended", Some(token("04A1B2C3")), 61_000, 235),
        )
        .await
        .expect("answered");
    }
    let all = sessions(&app).await;
    let start = |tx: &str| {
        all.iter()
            .find(|s| s["local_id"] == format!("t-{tx}"))
            .map(|s| s["meter_start_wh"].clone())
    };
    assert_eq!(start("e-0"), Some(json!(61_000)), "forgotten: {all:?}");
    assert_eq!(start("e-16"), Some(json!(60_000)), "kept: {all:?}");
    // (D) A start whose reading was never told (lost with a restart, or never sent): the
    // transaction is recorded, but its energy is unknown, so it is disputed, never billed
    // from 0.
    let mut started = event("d", 0, "Started", Some(token("04A1B2C3")), 0, 160);
    started.as_object_mut().expect("event").remove("meterValue");
    cp.call("TransactionEvent", started)
        .await
        .expect("answered");
    cp.call(
        "TransactionEvent",
        event("d", 1, "Ended", None, 50_000, 170),
    )
    .await
    .expect("answered");
    let all = sessions(&app).await;
    let d = all
        .iter()
        .find(|s| s["local_id"] == "t-d")
        .expect("session d");
    assert_eq!(d["status"], "disputed", "{d}");
    assert_eq!(
        (&c["status"], &c["energy_wh"]),
        (&json!("disputed"), &json!(1_000)),
        "{c}"
    );
    cp.close().await;
}

async fn sessions(app: &TestApp) -> Vec<Value> {
    let page = app
        .get("/api/v1/sessions?device=acme-201&limit=50", ADMIN_TOKEN)
        .await;
    page.body["sessions"].as_array().expect("sessions").clone()
}

/// A station played frame by frame: a malformed answer to the server's CALL is 502 at
/// once (not a wait for the deadline); meter values of an EVSE it lacks, and customData
/// without its vendorId, are CALLERRORs; its Close is answered with a Close (RFC 6455).
#[tokio::test]
async fn raw_frames_malformed_answers_and_the_close_handshake() {
    use base64::Engine as _;
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_on(charger_e2e::Db::Sqlite).await.expect("app");
    let password = fleet(&app).await;
    let mut request = url(&app).into_client_request().expect("request");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("acme-201:{password}"));
    request.headers_mut().insert(
        "Authorization",
        format!("Basic {basic}").parse().expect("header"),
    );
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "ocpp2.0.1".parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connects");
    async fn next_text(
        ws: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("a frame in time")
                .expect("open")
                .expect("frame");
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).expect("JSON");
            }
        }
    }
    let boot = json!([2, "b1", "BootNotification", boot_request()]).to_string();
    ws.send(Message::Text(boot.clone().into()))
        .await
        .expect("send");
    // Pending, and the server asks for the base report (in either order).
    let mut got_answer = false;
    let mut got_call = false;
    while !(got_answer && got_call) {
        let f = next_text(&mut ws).await;
        if f[0] == 3 {
            assert_eq!(f[2]["status"], "Pending", "{f}");
            got_answer = true;
        } else {
            assert_eq!(f[2], "GetBaseReport", "{f}");
            let answer = json!([3, f[1], {"status": "Accepted"}]).to_string();
            ws.send(Message::Text(answer.into())).await.expect("send");
            got_call = true;
        }
    }
    let boot = json!([2, "b2", "BootNotification", boot_request()]).to_string();
    ws.send(Message::Text(boot.into())).await.expect("send");
    assert_eq!(next_text(&mut ws).await[2]["status"], "Accepted");
    // A command whose answer is malformed: 502, well before the 10 s deadline.
    let started = std::time::Instant::now();
    let reset = spawn_command(&app, "acme-201", "reset", json!({"type": "Immediate"}));
    let call = next_text(&mut ws).await;
    assert_eq!(call[2], "Reset", "{call}");
    let bad = json!([3, call[1]]).to_string();
    ws.send(Message::Text(bad.into())).await.expect("send");
    let (status, body) = reset.await.expect("task");
    assert_eq!(status, 502, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "not the deadline"
    );
    // The station's own CALLs are checked as the schemas say.
    for (id, action, payload, code) in [
        (
            "m1",
            "MeterValues",
            json!({"evseId": 7, "meterValue": [{"timestamp": ts(Utc::now()),
                   "sampledValue": [{"value": 1}]}]}),
            "PropertyConstraintViolation",
        ),
        (
            "m2",
            "MeterValues",
            json!({"evseId": 1, "meterValue": []}),
            "",
        ),
        ("h1", "Heartbeat", json!({"customData": {"x": 1}}), ""),
    ] {
        let frame = json!([2, id, action, payload]).to_string();
        ws.send(Message::Text(frame.into())).await.expect("send");
        let f = next_text(&mut ws).await;
        assert_eq!((&f[0], &f[1]), (&json!(4), &json!(id)), "{f}");
        if !code.is_empty() {
            assert_eq!(f[2], code, "{f}");
        }
    }
    ws.send(Message::Close(None)).await.expect("close");
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(_) = m {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(answered, "the server answers a Close with a Close");
}
