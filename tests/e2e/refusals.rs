//! A refused request changes nothing (docs/security.md): for every state-changing door, a
//! snapshot of the database before and after a request answered 4xx is the same. The
//! snapshot leaves out what a refusal may write by design: its kept answer (so that a
//! repeat gets the same refusal), unknown-tag sightings, the audit log, presence.
//!
//! Every charger endpoint, every command and every state-changing REST call is tried the
//! way a faulty charger or a careless operator would.

use charger_e2e::mqtt::{Charger, Qos};
use charger_e2e::{spawn_app_on, Db, ADMIN_TOKEN};
use charger_protocol::KeyExchange;
use chrono::{Duration as Span, Utc};
use serde_json::{json, Value};

use super::charging::{fleet, start, ts};

/// An X25519 public key no secret can be agreed with (the all-zero point).
const LOW_ORDER_PUB: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// Runs `act`, which must be refused with `status`, and checks that nothing changed.
macro_rules! refused {
    ($app:expr, $what:expr, $status:expr, $act:expr) => {{
        let before = $app.snapshot().await;
        let got: u16 = $act;
        assert_eq!(got, $status, "{}", $what);
        let after = $app.snapshot().await;
        if before != after {
            let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
            let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
            panic!(
                "{} was refused with {} but changed the database:\n  before: {gone:#?}\n  after: {new:#?}",
                $what, got
            );
        }
    }};
}

#[tokio::test]
async fn every_refused_charger_request_and_command_changes_nothing() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let bundles = fleet(&app, 2).await;
    let (b, offline) = (&bundles[0], &bundles[1]);
    let beta = app.owner_with_token("beta").await;
    for (uid, role, status) in [
        ("0B10C4ED", "driver", "blocked"),
        ("0A11CE00", "installer", "active"),
        ("0B0B0B0B", "driver", "active"),
    ] {
        let a = app
            .post(
                "/api/v1/tags",
                ADMIN_TOKEN,
                json!({"uid": uid, "owner": "acme", "role": role, "status": status}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
    }
    let mut c = Charger::connect(&app, b).await;
    // Its connection is recorded (with its history event) before the snapshots start:
    // presence is written in batches, after the CONNACK.
    app.wait_for_online(&b.device_id, true).await;
    let t0 = Utc::now() - Span::minutes(10);
    let (code, body) = c
        .call("session-start", start("04A1B2C3", 1, 1_000, t0))
        .await;
    assert_eq!(code, 201, "{body}");
    let active = body["session_id"].as_i64().expect("session");
    // A stopped session, for the "closed" refusals.
    let (_, body) = c.call("session-start", start("0B0B0B0B", 2, 0, t0)).await;
    let closed = body["session_id"].as_i64().expect("session");
    let (code, _) = c
        .call(
            "session-stop",
            json!({"session_id": closed, "meter_stop_wh": 10, "stopped_at": ts(t0 + Span::minutes(1)), "reason": "local"}),
        )
        .await;
    assert_eq!(code, 200);
    // An accepted offer to beta, whose code a claim may carry.
    let a = app
        .post(
            &format!("/api/v1/devices/{}/transfers", b.device_id),
            ADMIN_TOKEN,
            json!({"to": "beta"}),
        )
        .await;
    let offer = a.body["id"].as_str().expect("offer").to_owned();
    let a = app
        .post(
            &format!("/api/v1/transfers/{offer}/accept"),
            &beta,
            Value::Null,
        )
        .await;
    let code_text = a.body["code"].as_str().expect("code").to_owned();

    let cases: Vec<(&str, &'static str, Value, u16)> = vec![
        ("boot without fields", "boot", json!({}), 422),
        (
            "boot with a long firmware",
            "boot",
            json!({"firmware": "x".repeat(101), "model": "m", "connectors": 2}),
            422,
        ),
        (
            "status of connector 9",
            "status",
            json!({"connector": 9, "state": "available"}),
            422,
        ),
        (
            "status of an unknown state",
            "status",
            json!({"connector": 1, "state": "dancing"}),
            422,
        ),
        (
            "a start with a blocked tag",
            "session-start",
            start("0B10C4ED", 2, 0, Utc::now()),
            403,
        ),
        (
            "a start with an unknown tag",
            "session-start",
            start("0DDBA115", 2, 0, Utc::now()),
            404,
        ),
        (
            "a start on a busy connector",
            "session-start",
            start("0B0B0B0B", 1, 0, Utc::now()),
            409,
        ),
        (
            "a start by a tag at its cap",
            "session-start",
            start("04A1B2C3", 2, 0, Utc::now()),
            409,
        ),
        (
            "a start ahead of the clock",
            "session-start",
            start("0B0B0B0B", 2, 0, Utc::now() + Span::hours(1)),
            422,
        ),
        (
            "values of an unknown session",
            "meter-values",
            json!({"session_id": 999_999, "samples": [{"at": ts(Utc::now()), "energy_wh": 2_000}]}),
            404,
        ),
        (
            "values going backwards",
            "meter-values",
            json!({"session_id": active, "samples": [{"at": ts(Utc::now()), "energy_wh": 10}]}),
            422,
        ),
        (
            "values of a closed session",
            "meter-values",
            json!({"session_id": closed, "samples": [{"at": ts(Utc::now()), "energy_wh": 20}]}),
            409,
        ),
        (
            "a stop going backwards",
            "session-stop",
            json!({"session_id": active, "meter_stop_wh": 10, "stopped_at": ts(Utc::now()), "reason": "local"}),
            422,
        ),
        (
            "a stop of an unknown session",
            "session-stop",
            json!({"session_id": 999_999, "meter_stop_wh": 10, "stopped_at": ts(Utc::now()), "reason": "local"}),
            404,
        ),
        (
            "a stop beyond the rated power",
            "session-stop",
            json!({"session_id": active, "meter_stop_wh": 900_000_000, "stopped_at": ts(Utc::now()), "reason": "local"}),
            422,
        ),
        (
            "an enrollment by a driver card",
            "tag-enroll",
            json!({"installer_tag": "0B0B0B0B", "tag": "0C0C0C0C"}),
            403,
        ),
        (
            "an enrollment of a known card",
            "tag-enroll",
            json!({"installer_tag": "0A11CE00", "tag": "0B0B0B0B"}),
            409,
        ),
        (
            "an enrollment of a bad uid",
            "tag-enroll",
            json!({"installer_tag": "0A11CE00", "tag": "xyz"}),
            422,
        ),
        (
            "a claim with a wrong code",
            "ownership-claim",
            json!({"code": "guess", "pub": KeyExchange::new().public_base64()}),
            403,
        ),
        (
            "a claim with a low-order key",
            "ownership-claim",
            json!({"code": code_text, "pub": LOW_ORDER_PUB}),
            422,
        ),
        (
            "a claim without a key",
            "ownership-claim",
            json!({"code": code_text}),
            422,
        ),
        (
            "a rekey with a low-order key",
            "rekey",
            json!({"pub": LOW_ORDER_PUB}),
            422,
        ),
        (
            "a rekey with a short key",
            "rekey",
            json!({"pub": "AAAA"}),
            422,
        ),
        (
            "a local list of a negative version",
            "local-list",
            json!({"version": -1}),
            422,
        ),
        ("a heartbeat with fields", "heartbeat", json!({"x": 1}), 422),
        ("an offline with fields", "offline", json!({"x": 1}), 422),
    ];
    for (what, endpoint, data, status) in cases {
        refused!(app, what, status, c.call(endpoint, data).await.0);
    }
    // A request that does not hold the key.
    let mut wrong = b.clone();
    wrong.key = "11".repeat(32);
    let payload = charger_e2e::mqtt::request(
        &wrong,
        json!(777),
        json!({"connector": 1, "state": "faulted"}),
    );
    refused!(
        app,
        "a status with a wrong key",
        401,
        c.send_raw("status", payload).await.0
    );

    // Commands: answered by the server before the charger is asked, or by the charger.
    let cmd = |device: &str, command: &str| format!("/api/v1/devices/{device}/commands/{command}");
    let rest = |path: String, body: Value| {
        let app = &app;
        async move { app.post(&path, ADMIN_TOKEN, body).await.status }
    };
    let d = b.device_id.as_str();
    refused!(
        app,
        "remote-start of an unknown tag",
        404,
        rest(
            cmd(d, "remote-start"),
            json!({"tag": "0DDBA115", "connector": 1})
        )
        .await
    );
    refused!(
        app,
        "remote-start on connector 9",
        422,
        rest(
            cmd(d, "remote-start"),
            json!({"tag": "04A1B2C3", "connector": 9})
        )
        .await
    );
    refused!(
        app,
        "remote-stop of an unknown session",
        404,
        rest(cmd(d, "remote-stop"), json!({"session_id": 999_999})).await
    );
    refused!(
        app,
        "remote-stop of a closed session",
        409,
        rest(cmd(d, "remote-stop"), json!({"session_id": closed})).await
    );
    refused!(
        app,
        "unlock of connector 0",
        422,
        rest(cmd(d, "unlock"), json!({"connector": 0})).await
    );
    refused!(
        app,
        "an unknown command",
        404,
        rest(cmd(d, "explode"), json!({})).await
    );
    refused!(
        app,
        "a command to an offline charger",
        409,
        rest(cmd(&offline.device_id, "unlock"), json!({"connector": 1})).await
    );
    // The charger itself refuses (its answer reaches the caller; the server changes nothing).
    let answer = {
        let path = cmd(d, "unlock");
        let app_http = app.http.clone();
        let url = format!("{}{path}", app.base);
        let call = tokio::spawn(async move {
            app_http
                .post(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"connector": 2}))
                .send()
                .await
                .expect("REST")
        });
        let (_, payload) = c
            .probe
            .next_publish(std::time::Duration::from_secs(10))
            .await
            .expect("the command");
        let (envelope, _) = charger_e2e::mqtt::open_on(b, "unlock", &payload);
        let id = serde_json::to_value(envelope.id.expect("id")).expect("id");
        c.probe
            .publish(
                &format!("acme/req/{d}/unlock"),
                Qos::AtLeastOnce,
                false,
                charger_e2e::mqtt::request(b, id, json!({"status": "rejected", "reason": "busy"})),
            )
            .await;
        call.await.expect("joined")
    };
    assert_eq!(answer.status(), 200);

    // The charger is still acme's, with its old credentials.
    let (code, _) = c
        .call("status", json!({"connector": 1, "state": "charging"}))
        .await;
    assert_eq!(code, 200, "the refused claim left the charger where it was");
}

#[tokio::test]
async fn every_refused_rest_call_changes_nothing() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let bundles = fleet(&app, 1).await;
    let d = bundles[0].device_id.clone();
    let beta = app.owner_with_token("beta").await;
    let acme = {
        let a = app
            .post(
                "/api/v1/owners/acme/tokens",
                ADMIN_TOKEN,
                json!({"name": "ops"}),
            )
            .await;
        a.body["token"].as_str().expect("token").to_owned()
    };
    // A disputed session: an offline start older than the window.
    let mut c = Charger::connect(&app, &bundles[0]).await;
    app.wait_for_online(&bundles[0].device_id, true).await;
    let old = Utc::now() - Span::days(91);
    let mut begin = start("04A1B2C3", 1, 0, old);
    begin["local_id"] = json!("old-1");
    assert_eq!(c.call("session-start", begin).await.0, 201);
    let (code, body) = c
        .call(
            "session-stop",
            json!({"local_id": "old-1", "meter_stop_wh": 1_000, "stopped_at": ts(old + Span::minutes(10)), "reason": "local"}),
        )
        .await;
    assert_eq!((code, &body["disputed"]), (200, &json!(true)), "{body}");
    let disputed = body["session_id"].as_i64().expect("session");
    let (_, body) = c
        .call("session-start", start("04A1B2C3", 2, 0, Utc::now()))
        .await;
    let active = body["session_id"].as_i64().expect("session");
    let a = app
        .post(
            &format!("/api/v1/devices/{d}/transfers"),
            &acme,
            json!({"to": "beta"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let offer = a.body["id"].as_str().expect("offer").to_owned();

    type Call = (&'static str, reqwest::Method, String, String, Value, u16);
    let post = reqwest::Method::POST;
    let cases: Vec<Call> = vec![
        (
            "an owner that exists",
            post.clone(),
            "/api/v1/owners".into(),
            ADMIN_TOKEN.into(),
            json!({"id": "acme", "name": "Again"}),
            409,
        ),
        (
            "an owner made by an owner",
            post.clone(),
            "/api/v1/owners".into(),
            acme.clone(),
            json!({"id": "gamma", "name": "G"}),
            403,
        ),
        (
            "an owner without a name",
            post.clone(),
            "/api/v1/owners".into(),
            ADMIN_TOKEN.into(),
            json!({"id": "gamma", "name": " "}),
            422,
        ),
        (
            "a token made by an owner",
            post.clone(),
            "/api/v1/owners/acme/tokens".into(),
            acme.clone(),
            Value::Null,
            403,
        ),
        (
            "a token with a long name",
            post.clone(),
            "/api/v1/owners/acme/tokens".into(),
            ADMIN_TOKEN.into(),
            json!({"name": "n".repeat(201)}),
            422,
        ),
        (
            "a token revoked twice",
            reqwest::Method::DELETE,
            "/api/v1/owners/acme/tokens/tok_nope".into(),
            ADMIN_TOKEN.into(),
            Value::Null,
            404,
        ),
        (
            "another owner's token revoked",
            reqwest::Method::DELETE,
            "/api/v1/owners/acme/tokens/tok_nope".into(),
            beta.clone(),
            Value::Null,
            404,
        ),
        (
            "a device that exists",
            post.clone(),
            "/api/v1/devices".into(),
            ADMIN_TOKEN.into(),
            json!({"id": d, "owner": "acme", "connectors": 1}),
            409,
        ),
        (
            "a device of 99 connectors",
            post.clone(),
            "/api/v1/devices".into(),
            ADMIN_TOKEN.into(),
            json!({"id": "new-1", "owner": "acme", "connectors": 99}),
            422,
        ),
        (
            "a device with a null owner",
            post.clone(),
            "/api/v1/devices".into(),
            ADMIN_TOKEN.into(),
            json!({"id": "new-1", "owner": null, "connectors": 1}),
            422,
        ),
        (
            "a bulk of none",
            post.clone(),
            "/api/v1/devices/bulk".into(),
            ADMIN_TOKEN.into(),
            json!({"owner": "acme", "prefix": "x-", "count": 0}),
            422,
        ),
        (
            "a bulk over an existing id",
            post.clone(),
            "/api/v1/devices/bulk".into(),
            ADMIN_TOKEN.into(),
            json!({"owner": "acme", "prefix": "acme-", "count": 3}),
            409,
        ),
        (
            "a device of 0 W",
            reqwest::Method::PATCH,
            format!("/api/v1/devices/{d}"),
            ADMIN_TOKEN.into(),
            json!({"max_power_w": 0}),
            422,
        ),
        (
            "another owner's device",
            reqwest::Method::PATCH,
            format!("/api/v1/devices/{d}"),
            beta.clone(),
            json!({"require_v2": true}),
            404,
        ),
        (
            "an unknown tariff assigned",
            reqwest::Method::PUT,
            format!("/api/v1/devices/{d}/tariff"),
            ADMIN_TOKEN.into(),
            json!({"tariff": "nope"}),
            404,
        ),
        (
            "an offer to its own owner",
            post.clone(),
            format!("/api/v1/devices/{d}/transfers"),
            acme.clone(),
            json!({"to": "acme"}),
            422,
        ),
        (
            "a second open offer",
            post.clone(),
            format!("/api/v1/devices/{d}/transfers"),
            acme.clone(),
            json!({"to": "gamma"}),
            409,
        ),
        (
            "an accept by the sender",
            post.clone(),
            format!("/api/v1/transfers/{offer}/accept"),
            acme.clone(),
            Value::Null,
            403,
        ),
        (
            "a decline by the admin",
            post.clone(),
            format!("/api/v1/transfers/{offer}/decline"),
            ADMIN_TOKEN.into(),
            Value::Null,
            403,
        ),
        (
            "a withdrawal by the receiver",
            post.clone(),
            format!("/api/v1/transfers/{offer}/withdraw"),
            beta.clone(),
            Value::Null,
            403,
        ),
        (
            "another owner's rotation",
            post.clone(),
            format!("/api/v1/devices/{d}/credentials"),
            beta.clone(),
            Value::Null,
            404,
        ),
        (
            "a tag that exists",
            post.clone(),
            "/api/v1/tags".into(),
            acme.clone(),
            json!({"uid": "04A1B2C3"}),
            409,
        ),
        (
            "a tag of an unknown role",
            post.clone(),
            "/api/v1/tags".into(),
            acme.clone(),
            json!({"uid": "0C0C0C0C", "role": "boss"}),
            422,
        ),
        (
            "a tag with a null owner",
            post.clone(),
            "/api/v1/tags".into(),
            ADMIN_TOKEN.into(),
            json!({"uid": "0C0C0C0C", "owner": null}),
            422,
        ),
        (
            "a tag patched badly",
            reqwest::Method::PATCH,
            "/api/v1/tags/04A1B2C3".into(),
            acme.clone(),
            json!({"max_sessions": 0}),
            422,
        ),
        (
            "an unknown tag patched",
            reqwest::Method::PATCH,
            "/api/v1/tags/0C0C0C0C".into(),
            acme.clone(),
            json!({"status": "blocked"}),
            404,
        ),
        (
            "an unknown tag deleted",
            reqwest::Method::DELETE,
            "/api/v1/tags/0C0C0C0C".into(),
            acme.clone(),
            Value::Null,
            404,
        ),
        (
            "a tariff that exists",
            post.clone(),
            "/api/v1/tariffs".into(),
            ADMIN_TOKEN.into(),
            json!({"id": "standard", "owner": "acme", "currency": "EUR", "energy_per_kwh": "0.3", "time_per_hour": "0", "session_fee": "0", "tax_rate": "0"}),
            409,
        ),
        (
            "a tariff priced 1e3",
            post.clone(),
            "/api/v1/tariffs".into(),
            ADMIN_TOKEN.into(),
            json!({"id": "sci", "owner": "acme", "currency": "EUR", "energy_per_kwh": "1e3", "time_per_hour": "0", "session_fee": "0", "tax_rate": "0"}),
            422,
        ),
        (
            "a tariff priced -0",
            post.clone(),
            "/api/v1/tariffs".into(),
            ADMIN_TOKEN.into(),
            json!({"id": "neg", "owner": "acme", "currency": "EUR", "energy_per_kwh": "-0", "time_per_hour": "0", "session_fee": "0", "tax_rate": "0"}),
            422,
        ),
        (
            "a resolution of an active session",
            post.clone(),
            format!("/api/v1/sessions/{active}/resolution"),
            acme.clone(),
            json!({"action": "void"}),
            409,
        ),
        (
            "a resolution billing backwards",
            post.clone(),
            format!("/api/v1/sessions/{disputed}/resolution"),
            acme.clone(),
            json!({"action": "bill", "meter_start_wh": 500, "meter_stop_wh": 100}),
            422,
        ),
        (
            "a resolution by another owner",
            post.clone(),
            format!("/api/v1/sessions/{disputed}/resolution"),
            beta.clone(),
            json!({"action": "void"}),
            404,
        ),
    ];
    for (what, method, path, token, body, status) in cases {
        let body = (!body.is_null()).then_some(body);
        refused!(
            app,
            what,
            status,
            app.request(method, &path, Some(&token), body.as_ref())
                .await
                .status
        );
    }
    // A CSV import with one bad row imports nothing.
    let import = |csv: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(format!("{}/api/v1/tags/import", app.base))
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "text/csv")
                .body(csv)
                .send()
                .await
                .expect("import")
                .status()
                .as_u16()
        }
    };
    refused!(
        app,
        "an import with a bad row",
        422,
        import("uid,owner\n0D0D0D0D,acme\nnot-a-uid,acme\n").await
    );
}
