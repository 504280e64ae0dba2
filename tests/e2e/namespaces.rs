//! Owner namespaces: a tag uid and a tariff id are unique per owner. The same card
//! enrolled by two owners is two independent tags; nothing one owner's charger does can
//! refuse, block or reveal another owner's tags; the admin names the owner where an id
//! alone is ambiguous.

use charger_e2e::mqtt::Charger;
use charger_e2e::{assert_error, on_both_databases, spawn_app_on, TestApp, ADMIN_TOKEN};
use chrono::{Duration as Span, Utc};
use serde_json::{json, Value};

use super::charging::{start, ts};

on_both_databases!(spawn_app_on =>
    the_same_card_and_tariff_id_under_two_owners_stay_independent,
);

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let a = app.post(path, token, body).await;
    assert_eq!(a.status, 201, "{path}: {a:?}");
    a.body
}

async fn the_same_card_and_tariff_id_under_two_owners_stay_independent(app: TestApp) {
    let acme = app.owner_with_token("acme").await;
    let beta = app.owner_with_token("beta").await;
    let mut chargers = Vec::new();
    for token in [&acme, &beta] {
        let id = if *token == acme { "acme-1" } else { "beta-1" };
        let bundle = post(
            &app,
            "/api/v1/devices",
            token,
            json!({"id": id, "connectors": 2}),
        )
        .await;
        let bundle: charger_protocol::FirmwareBundle =
            serde_json::from_value(bundle).expect("bundle");
        // The same card and the same tariff id, enrolled by each owner: no 409, no leak.
        post(&app, "/api/v1/tags", token, json!({"uid": "04A1B2C3"})).await;
        post(
            &app,
            "/api/v1/tariffs",
            token,
            json!({"id": "std", "currency": "EUR", "energy_per_kwh": "0.30", "time_per_hour": "0",
                   "session_fee": "0", "tax_rate": "0", "default": true}),
        )
        .await;
        chargers.push(Charger::connect(&app, &bundle).await);
    }
    post(&app, "/api/v1/tags", &beta, json!({"uid": "0BBBBBBB"})).await;
    let (a, b) = chargers.split_at_mut(1);
    let (ca, cb) = (&mut a[0], &mut b[0]);

    // acme's charger replays an offline session on beta's card, and starts a live one on
    // the shared card: beta's own chargers are not affected.
    let t0 = ts(Utc::now() - Span::minutes(20));
    let (code, body) = ca
        .call(
            "session-start",
            json!({"tag": "0BBBBBBB", "connector": 1, "meter_start_wh": 0, "started_at": t0, "local_id": "off-1"}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = ca
        .call("session-start", start("04A1B2C3", 2, 0, Utc::now()))
        .await;
    assert_eq!(code, 201, "{body}");
    for uid in ["0BBBBBBB", "04A1B2C3"] {
        let (code, body) = cb
            .call("authorize", json!({"tag": uid, "connector": 1}))
            .await;
        assert_eq!(
            code, 200,
            "{uid} is beta's and free at beta's charger: {body}"
        );
    }
    // acme's charger never learns of beta's card: unknown there.
    let (code, _) = ca
        .call("authorize", json!({"tag": "0BBBBBBB", "connector": 1}))
        .await;
    assert_eq!(code, 404);
    // beta does not see acme's sessions, even the one on its card's uid.
    let sessions = app.get("/api/v1/sessions", &beta).await;
    assert_eq!(sessions.body["sessions"], json!([]), "{sessions:?}");
    // Each owner's local list has its own card.
    let (_, list) = cb.call("local-list", json!({"version": 0})).await;
    assert_eq!(list["tags"].as_array().map(Vec::len), Some(2), "{list}");

    // REST: an owner token reaches its own enrollment; naming another owner is 404; the
    // admin must name the owner when the uid is ambiguous.
    let mine = app.get("/api/v1/tags/04A1B2C3", &beta).await;
    assert_eq!((mine.status, &mine.body["owner"]), (200, &json!("beta")));
    assert_eq!(
        app.get("/api/v1/tags/04A1B2C3?owner=acme", &beta)
            .await
            .status,
        404
    );
    let ambiguous = app.get("/api/v1/tags/04A1B2C3", ADMIN_TOKEN).await;
    assert_error(&ambiguous, 422, "invalid_input");
    assert!(
        ambiguous.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("owner:")),
        "{ambiguous:?}"
    );
    let a = app.get("/api/v1/tags/0BBBBBBB", ADMIN_TOKEN).await;
    assert_eq!(
        (a.status, &a.body["owner"]),
        (200, &json!("beta")),
        "an unambiguous uid"
    );
    let blocked = app
        .patch(
            "/api/v1/tags/04A1B2C3?owner=acme",
            ADMIN_TOKEN,
            json!({"status": "blocked"}),
        )
        .await;
    assert_eq!(
        (blocked.status, &blocked.body["owner"]),
        (200, &json!("acme"))
    );
    let theirs = app
        .get("/api/v1/tags/04A1B2C3?owner=beta", ADMIN_TOKEN)
        .await;
    assert_eq!(
        theirs.body["status"], "active",
        "beta's enrollment is untouched"
    );
    let deleted = app
        .delete("/api/v1/tags/04A1B2C3?owner=beta", ADMIN_TOKEN)
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        app.get("/api/v1/tags/04A1B2C3?owner=acme", ADMIN_TOKEN)
            .await
            .status,
        200
    );

    // Tariffs: each owner's `std`, and a device takes its own owner's.
    assert_error(
        &app.get("/api/v1/tariffs/std", ADMIN_TOKEN).await,
        422,
        "invalid_input",
    );
    let t = app.get("/api/v1/tariffs/std?owner=acme", ADMIN_TOKEN).await;
    assert_eq!((t.status, &t.body["owner"]), (200, &json!("acme")));
    let d = app
        .put(
            "/api/v1/devices/beta-1/tariff",
            &beta,
            json!({"tariff": "std"}),
        )
        .await;
    assert_eq!((d.status, &d.body["tariff"]), (200, &json!("std")), "{d:?}");
    let d = app
        .put(
            "/api/v1/devices/beta-1/tariff",
            &beta,
            json!({"tariff": "other"}),
        )
        .await;
    assert_eq!(d.status, 404, "{d:?}");
}
