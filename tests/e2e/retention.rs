//! What the server keeps is bounded: answers kept for repeated requests go after the
//! idempotency window, and unknown-tag sightings are capped per owner.

use charger_e2e::mqtt::Charger;
use charger_e2e::{on_both_databases, spawn_app_with, Db, TestApp, ADMIN_TOKEN};
use chrono::{Duration as Span, Utc};
use serde_json::json;

use super::charging::fleet;

async fn spawn(db: Db) -> Option<TestApp> {
    spawn_app_with(db, |c| c.unknown_tags_per_owner = 5).await
}

on_both_databases!(spawn =>
    kept_answers_go_after_the_idempotency_window,
    unknown_tag_sightings_are_capped_per_owner,
);

async fn kept_answers_go_after_the_idempotency_window(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let authorize = json!({"tag": "04A1B2C3", "connector": 1});
    let (code, _) = c
        .call_with_id(json!(7), "authorize", authorize.clone())
        .await;
    assert_eq!(code, 200);
    let a = app
        .patch(
            "/api/v1/tags/04A1B2C3",
            ADMIN_TOKEN,
            json!({"status": "blocked"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    // Within the window, a repeat gets the kept answer.
    let (code, _) = c
        .call_with_id(json!(7), "authorize", authorize.clone())
        .await;
    assert_eq!(code, 200);
    // Nothing younger than the window goes.
    assert_eq!(
        app.app
            .service
            .prune_request_log(Utc::now())
            .await
            .expect("prune"),
        0
    );
    // Past the window (30 days by default) the kept answer is gone: a repeat is answered
    // afresh.
    let pruned = app
        .app
        .service
        .prune_request_log(Utc::now() + Span::days(31))
        .await
        .expect("prune");
    assert!(pruned >= 1, "{pruned}");
    let (code, body) = c.call_with_id(json!(7), "authorize", authorize).await;
    assert_eq!((code, &body["error"]), (403, &json!("tag_blocked")));
}

async fn unknown_tag_sightings_are_capped_per_owner(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let other = &app.provision("beta", 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let mut o = Charger::connect(&app, other).await;
    let (code, _) = o
        .call("authorize", json!({"tag": "0B0B0B0B", "connector": 1}))
        .await;
    assert_eq!(code, 404);
    for n in 0..8 {
        let uid = format!("DEAD00{n:02X}");
        let (code, _) = c
            .call("authorize", json!({"tag": uid, "connector": 1}))
            .await;
        assert_eq!(code, 404);
    }
    let listed = app.get("/api/v1/tags/unknown", ADMIN_TOKEN).await;
    let uids: Vec<&str> = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter(|t| t["owner"] == "acme")
        .filter_map(|t| t["uid"].as_str())
        .collect();
    assert_eq!(uids.len(), 5, "acme keeps its 5 newest: {uids:?}");
    assert!(
        uids.contains(&"DEAD0007") && !uids.contains(&"DEAD0000"),
        "{uids:?}"
    );
    assert!(
        listed
            .body
            .as_array()
            .expect("list")
            .iter()
            .any(|t| t["uid"] == "0B0B0B0B"),
        "another owner's sightings are untouched"
    );
}
