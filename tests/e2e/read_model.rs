//! Authorize from memory (docs/storage.md, "Authorize from memory"): answers come from
//! the read model once it holds the charger and the tag, and no answer is ever made from a
//! stale entry: a tag blocked, a key rotated, a session started, on this instance or on
//! another one, is seen by the very next request.

use charger_e2e::mqtt::Charger;
use charger_e2e::{on_both_databases, spawn_app_on, Db, TestApp, ADMIN_TOKEN};
use charger_protocol::FirmwareBundle;
use serde_json::{json, Value};

use crate::charging::{fleet, start, ts};

on_both_databases!(spawn_app_on =>
    authorize_is_answered_from_memory_and_never_from_a_stale_entry,
);

/// Answers this server made from memory so far.
fn answered(app: &charger_server::App) -> u64 {
    app.service.store().read_model().answered()
}

/// Authorizes `tag` on connector 1 with a fresh id: (code, error or status).
async fn authorize(c: &mut Charger, tag: &str, connector: i64) -> (u16, Value) {
    let (code, body) = c
        .call("authorize", json!({"tag": tag, "connector": connector}))
        .await;
    let what = if code == 200 {
        body["status"].clone()
    } else {
        body["error"].clone()
    };
    (code, what)
}

/// Authorizes until one answer came from memory (the first reads fill the model).
async fn warm(app: &charger_server::App, c: &mut Charger, tag: &str) {
    let before = answered(app);
    for _ in 0..3 {
        assert_eq!(authorize(c, tag, 1).await, (200, json!("accepted")));
    }
    assert!(
        answered(app) > before,
        "no authorize was answered from memory"
    );
}

async fn authorize_is_answered_from_memory_and_never_from_a_stale_entry(app: TestApp) {
    let bundles = fleet(&app, 2).await;
    let b = &bundles[0];
    let mut c = Charger::connect(&app, b).await;
    warm(&app.app, &mut c, "04A1B2C3").await;

    // Blocked: the very next request is refused, and allowed again once unblocked.
    let a = app
        .patch(
            "/api/v1/tags/04A1B2C3",
            ADMIN_TOKEN,
            json!({"status": "blocked"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        authorize(&mut c, "04A1B2C3", 1).await,
        (403, json!("tag_blocked"))
    );
    let a = app
        .patch(
            "/api/v1/tags/04A1B2C3",
            ADMIN_TOKEN,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    warm(&app.app, &mut c, "04A1B2C3").await;

    // Limited to the other charger: refused here at once.
    let a = app
        .patch(
            "/api/v1/tags/04A1B2C3",
            ADMIN_TOKEN,
            json!({"devices": [bundles[1].device_id]}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        authorize(&mut c, "04A1B2C3", 1).await,
        (403, json!("tag_not_allowed"))
    );
    let a = app
        .patch("/api/v1/tags/04A1B2C3", ADMIN_TOKEN, json!({"devices": []}))
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    warm(&app.app, &mut c, "04A1B2C3").await;

    // A session started on the other charger (no tag or key changed): the tag is busy
    // here at the very next request, and free again once it stopped.
    let mut other = Charger::connect(&app, &bundles[1]).await;
    let (code, body) = other
        .call("session-start", start("04A1B2C3", 1, 0, chrono::Utc::now()))
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        authorize(&mut c, "04A1B2C3", 1).await,
        (409, json!("tag_busy"))
    );
    let session = body["session_id"].clone();
    let (code, body) = other
        .call(
            "session-stop",
            json!({"session_id": session, "meter_stop_wh": 10,
                   "stopped_at": ts(chrono::Utc::now()), "reason": "local"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    warm(&app.app, &mut c, "04A1B2C3").await;

    // A repeated id still gets its kept answer, from memory or not.
    let data = json!({"tag": "04A1B2C3", "connector": 1});
    let (code, first) = c
        .call_with_id(json!("kept-1"), "authorize", data.clone())
        .await;
    assert_eq!(code, 200, "{first}");
    let again = c.call_with_id(json!("kept-1"), "authorize", data).await;
    assert_eq!(again, (200, first));

    // The key rotated: a request under the old key is refused at once, the new one works.
    rotated_key_is_refused_at_once(&app.rest, &app.app, &mut c, b).await;
}

/// Rotates `b`'s key through `rest`; on `server` (where `c` is connected, warm), a request
/// sealed with the old key is refused at once and one with the new key is accepted.
async fn rotated_key_is_refused_at_once(
    rest: &charger_e2e::Rest,
    server: &charger_server::App,
    c: &mut Charger,
    b: &FirmwareBundle,
) {
    warm(server, c, "04A1B2C3").await;
    let a = rest
        .post(
            &format!("/api/v1/devices/{}/credentials", b.device_id),
            ADMIN_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let new: FirmwareBundle = serde_json::from_value(a.body).expect("a bundle");
    // The new credentials log in; the requests are sealed with the old key first.
    let mut c2 = Charger::connect_to(server.mqtt_addr, &new, &new.owner).await;
    c2.next_id = c.next_id + 1_000;
    c2.b.key = b.key.clone();
    let (code, _) = authorize(&mut c2, "04A1B2C3", 1).await;
    assert_eq!(code, 401, "a request under the rotated key was not refused");
    c2.b.key = new.key.clone();
    assert_eq!(
        authorize(&mut c2, "04A1B2C3", 1).await,
        (200, json!("accepted"))
    );
}

/// Two instances on one PostgreSQL, the charger on the second: what the operator changes
/// through the first is seen by the second's very next request (no stale entry answers,
/// whether or not any notification reached it).
#[tokio::test]
async fn a_change_on_one_instance_is_seen_by_the_next_request_on_another() {
    let dir = charger_e2e::TempDir::new();
    let Some(db) = charger_e2e::fresh_database(Db::Postgres, &dir).await else {
        return;
    };
    let mut apps = Vec::new();
    for i in 0..2 {
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
    let a = &rest[0];
    let bundles = fleet_on(a).await;
    let bundle = &bundles[0];
    let mut c = Charger::connect_to(apps[1].mqtt_addr, bundle, &bundle.owner).await;
    warm(&apps[1], &mut c, "04A1B2C3").await;

    for (status, expected) in [
        ("blocked", (403, json!("tag_blocked"))),
        ("active", (200, json!("accepted"))),
        ("blocked", (403, json!("tag_blocked"))),
    ] {
        let r = a
            .patch(
                "/api/v1/tags/04A1B2C3",
                ADMIN_TOKEN,
                json!({"status": status}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(authorize(&mut c, "04A1B2C3", 1).await, expected);
        if status == "active" {
            warm(&apps[1], &mut c, "04A1B2C3").await;
        }
    }
    let r = a
        .patch(
            "/api/v1/tags/04A1B2C3",
            ADMIN_TOKEN,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // The key rotated on the first instance; the charger's requests reach the second.
    rotated_key_is_refused_at_once(a, &apps[1], &mut c, bundle).await;
    for app in apps {
        app.stop().await.expect("stops");
    }
}

/// [`fleet`] through one instance's REST API.
async fn fleet_on(rest: &charger_e2e::Rest) -> Vec<FirmwareBundle> {
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
            "/api/v1/devices/bulk",
            ADMIN_TOKEN,
            json!({"owner": "acme", "prefix": "acme-", "count": 1, "connectors": 2}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a2 = rest
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "04a1b2c3", "owner": "acme"}),
        )
        .await;
    assert_eq!(a2.status, 201, "{a2:?}");
    serde_json::from_value(a.body["devices"].clone()).expect("bundles")
}
