//! The charger API end to end: a charger (rumqttc + the protocol crate) boots,
//! authorizes, charges, is billed to the cent, enrolls tags, replays offline sessions,
//! changes owner, and obeys remote commands; REST is the operator's side.

use std::time::Duration;

use charger_e2e::mqtt::{open, request, Charger, Qos};
use charger_e2e::{
    assert_error, default_db, on_both_databases, spawn_app_on, spawn_app_with, TestApp, ADMIN_TOKEN,
};
use charger_protocol::FirmwareBundle;
use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

on_both_databases!(spawn_app_on =>
    a_driver_charges_and_is_billed_by_the_tariff_to_the_cent,
    authorization_refuses_blocked_expired_foreign_unknown_and_busy_tags,
    group_members_may_stop_each_others_sessions,
    an_offline_charger_replays_its_session_late_and_is_billed_by_its_own_times,
    session_errors_are_precise_and_change_nothing,
    a_repeated_session_start_id_never_makes_a_second_session,
    a_repeated_authorize_id_gets_the_kept_answer_even_after_the_tag_changed,
    a_request_answered_with_a_5xx_changes_nothing_and_its_repeat_is_answered_afresh,
    chargers_racing_for_a_one_session_tag_start_one_session,
    an_installer_card_enrolls_new_tags_at_the_charger,
    the_local_list_comes_as_deltas_since_the_chargers_version,
    remote_stop_and_start_are_answered_by_the_charger,
    a_sessions_samples_are_thinned_for_display,
);

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Owner `acme` with a default EUR tariff, `n` chargers (2 connectors each) and a driver tag.
pub(crate) async fn fleet(app: &TestApp, n: usize) -> Vec<FirmwareBundle> {
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
            "/api/v1/devices/bulk",
            ADMIN_TOKEN,
            json!({"owner": "acme", "prefix": "acme-", "count": n, "connectors": 2}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let bundles: Vec<FirmwareBundle> =
        serde_json::from_value(a.body["devices"].clone()).expect("bundles");
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
    tag(app, json!({"uid": "04a1b2c3", "owner": "acme"})).await;
    bundles
}

async fn tag(app: &TestApp, body: Value) {
    let a = app.post("/api/v1/tags", ADMIN_TOKEN, body).await;
    assert_eq!(a.status, 201, "{a:?}");
}

pub(crate) fn start(tag: &str, connector: i64, meter: i64, at: DateTime<Utc>) -> Value {
    json!({"tag": tag, "connector": connector, "meter_start_wh": meter, "started_at": ts(at)})
}

async fn a_driver_charges_and_is_billed_by_the_tariff_to_the_cent(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;

    let (code, body) = c
        .call(
            "boot",
            json!({"firmware": "2.4.1", "model": "MyBox Plus", "connectors": 1}),
        )
        .await;
    assert_eq!((code, &body["owner"]), (200, &json!("acme")), "{body}");

    let (code, body) = c
        .call("authorize", json!({"tag": "04a1b2c3", "connector": 1}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (&body["tag"], &body["status"]),
        (&json!("04A1B2C3"), &json!("accepted"))
    );

    let t0 = Utc::now() - Span::hours(2);
    let (code, body) = c
        .call("session-start", start("04A1B2C3", 1, 1_000, t0))
        .await;
    assert_eq!(code, 201, "{body}");
    let session = body["session_id"].as_i64().expect("session id");
    assert_eq!(body["tariff"]["currency"], "EUR");
    assert_eq!(body["tariff"]["energy_per_kwh"], "0.3");

    // Half an hour, 5 kWh: 1.50 energy + 0.60 time + 0.50 fee.
    let (code, body) = c
        .call(
            "meter-values",
            json!({"session_id": session, "samples": [
                {"at": ts(t0 + Span::minutes(15)), "energy_wh": 3_500, "power_w": 10_000},
                {"at": ts(t0 + Span::minutes(30)), "energy_wh": 6_000, "power_w": 10_000},
            ]}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"session_id": session, "energy_wh": 5_000, "net": "2.60", "currency": "EUR"})
    );

    // 12,345 Wh over 1 h 15 min 30 s: 3.7035 + 1.51 + 0.50 = 5.7135 -> 5.71 net,
    // tax 1.1991 -> 1.20, total 6.91.
    let (code, body) = c
        .call(
            "session-stop",
            json!({"session_id": session, "meter_stop_wh": 13_345,
                   "stopped_at": ts(t0 + Span::seconds(4_530)), "reason": "local"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"session_id": session, "energy_wh": 12_345, "duration_s": 4_530,
               "net": "5.71", "tax": "1.20", "total": "6.91", "currency": "EUR"})
    );
    let stored = app
        .app
        .service
        .store()
        .get_session(session)
        .await
        .expect("read")
        .expect("the session is stored");
    assert_eq!(stored.total.map(|d| d.to_string()), Some("6.91".into()));

    // Closed: more meter values are refused, and the tag is free again.
    let (code, body) = c
        .call(
            "meter-values",
            json!({"session_id": session, "samples": [{"at": ts(Utc::now()), "energy_wh": 14_000}]}),
        )
        .await;
    assert_eq!((code, &body["error"]), (409, &json!("session_closed")));
    let (code, _) = c
        .call("authorize", json!({"tag": "04A1B2C3", "connector": 1}))
        .await;
    assert_eq!(code, 200);
}

async fn authorization_refuses_blocked_expired_foreign_unknown_and_busy_tags(app: TestApp) {
    let bundles = fleet(&app, 2).await;
    let (b1, b2) = (&bundles[0], &bundles[1]);
    tag(
        &app,
        json!({"uid": "0000000B", "owner": "acme", "status": "blocked"}),
    )
    .await;
    tag(
        &app,
        json!({"uid": "0000000E", "owner": "acme",
                    "expires_at": ts(Utc::now() - Span::days(1))}),
    )
    .await;
    tag(
        &app,
        json!({"uid": "0000000D", "owner": "acme", "devices": [b2.device_id]}),
    )
    .await;
    tag(
        &app,
        json!({"uid": "00000002", "owner": "acme", "max_sessions": 2}),
    )
    .await;
    app.provision("beta", 1).await;
    tag(&app, json!({"uid": "000000F0", "owner": "beta"})).await;
    let mut c1 = Charger::connect(&app, b1).await;
    let mut c2 = Charger::connect(&app, b2).await;

    for (uid, code, error) in [
        ("0000000B", 403, "tag_blocked"),
        ("0000000E", 403, "tag_expired"),
        ("0000000D", 403, "tag_not_allowed"),
        // Another owner's card is unknown here: tags live in their owner's namespace.
        ("000000F0", 404, "not_found"),
        ("DEADBEEF", 404, "not_found"),
    ] {
        let (got, body) = c1
            .call("authorize", json!({"tag": uid, "connector": 1}))
            .await;
        assert_eq!(
            (got, body["error"].as_str()),
            (code, Some(error)),
            "{uid}: {body}"
        );
        // A live start re-checks the tag the same way.
        let (got, body) = c1.call("session-start", start(uid, 1, 0, Utc::now())).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (code, Some(error)),
            "{uid}: {body}"
        );
    }
    let (code, _) = c2
        .call("authorize", json!({"tag": "0000000D", "connector": 1}))
        .await;
    assert_eq!(code, 200, "allowed on the charger it is limited to");

    // The unknown tag is listed for enrollment, for its owner only.
    let beta = app
        .post("/api/v1/owners/beta/tokens", ADMIN_TOKEN, Value::Null)
        .await;
    let beta_token = beta.body["token"].as_str().expect("token").to_owned();
    let unknown = app.get("/api/v1/tags/unknown", ADMIN_TOKEN).await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.body[0]["uid"], "DEADBEEF");
    assert_eq!(unknown.body[0]["device"], b1.device_id.as_str());
    assert_eq!(unknown.body[0]["attempts"], 2);
    assert_eq!(
        app.get("/api/v1/tags/unknown", &beta_token).await.body,
        json!([])
    );

    // One session per tag by default: busy elsewhere is 409.
    let (code, body) = c1
        .call("session-start", start("04A1B2C3", 1, 0, Utc::now()))
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = c2
        .call("authorize", json!({"tag": "04A1B2C3", "connector": 1}))
        .await;
    assert_eq!((code, &body["error"]), (409, &json!("tag_busy")));
    // The connector is busy for anyone else.
    let (code, body) = c1
        .call("session-start", start("00000002", 1, 0, Utc::now()))
        .await;
    assert_eq!((code, &body["error"]), (409, &json!("connector_busy")));
    // A tag with a cap of 2 charges twice, not three times.
    let (code, _) = c1
        .call("session-start", start("00000002", 2, 0, Utc::now()))
        .await;
    assert_eq!(code, 201);
    let (code, _) = c2
        .call("session-start", start("00000002", 1, 0, Utc::now()))
        .await;
    assert_eq!(code, 201);
    let (code, body) = c2
        .call("authorize", json!({"tag": "00000002", "connector": 2}))
        .await;
    assert_eq!((code, &body["error"]), (409, &json!("tag_busy")));
}

async fn group_members_may_stop_each_others_sessions(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    for uid in ["0000A001", "0000A002"] {
        tag(
            &app,
            json!({"uid": uid, "owner": "acme", "group": "family"}),
        )
        .await;
    }
    tag(
        &app,
        json!({"uid": "0000B001", "owner": "acme", "group": "neighbours"}),
    )
    .await;
    let mut c = Charger::connect(&app, b).await;
    let (code, body) = c
        .call("session-start", start("0000A001", 1, 0, Utc::now()))
        .await;
    assert_eq!(code, 201);
    let session = body["session_id"].clone();

    let may_stop = |uid: &str| json!({"tag": uid, "connector": 1, "session_id": session});
    let (code, body) = c.call("authorize", may_stop("0000A001")).await;
    assert_eq!((code, &body["session_id"]), (200, &session), "its own tag");
    let (code, body) = c.call("authorize", may_stop("0000A002")).await;
    assert_eq!((code, &body["group"]), (200, &json!("family")), "{body}");
    let (code, body) = c.call("authorize", may_stop("0000B001")).await;
    assert_eq!((code, &body["error"]), (403, &json!("not_in_group")));
    let (code, body) = c.call("authorize", may_stop("04A1B2C3")).await;
    assert_eq!((code, &body["error"]), (403, &json!("not_in_group")));
}

async fn an_offline_charger_replays_its_session_late_and_is_billed_by_its_own_times(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    // Blocked since: an offline session has happened already and is recorded anyway.
    tag(
        &app,
        json!({"uid": "0000000B", "owner": "acme", "status": "blocked"}),
    )
    .await;
    let mut c = Charger::connect(&app, b).await;
    let t0 = Utc::now() - Span::days(3);
    let mut offline_start = start("0000000B", 1, 50_000, t0);
    offline_start["local_id"] = json!("off-1");

    let (code, body) = c.call("session-start", offline_start.clone()).await;
    assert_eq!(code, 201, "{body}");
    let session = body["session_id"].clone();
    // The charger retries under a new request id: the same session.
    let (code, body) = c.call("session-start", offline_start).await;
    assert_eq!((code, &body["session_id"]), (201, &session));

    let (code, body) = c
        .call(
            "meter-values",
            json!({"local_id": "off-1", "samples": [{"at": ts(t0 + Span::hours(1)), "energy_wh": 60_000}]}),
        )
        .await;
    assert_eq!((code, &body["energy_wh"]), (200, &json!(10_000)), "{body}");
    // Two hours by its own clock, three days ago: 20 kWh -> 6.00 + 2.40 + 0.50 = 8.90.
    let (code, body) = c
        .call(
            "session-stop",
            json!({"local_id": "off-1", "meter_stop_wh": 70_000,
                   "stopped_at": ts(t0 + Span::hours(2)), "reason": "ev_disconnected"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (
            &body["session_id"],
            &body["duration_s"],
            &body["net"],
            &body["tax"],
            &body["total"]
        ),
        (
            &session,
            &json!(7_200),
            &json!("8.90"),
            &json!("1.87"),
            &json!("10.77")
        )
    );
    // The same stop again (new request id): the same bill, nothing changes.
    let (code, again) = c
        .call(
            "session-stop",
            json!({"local_id": "off-1", "meter_stop_wh": 70_000,
                   "stopped_at": ts(t0 + Span::hours(2)), "reason": "ev_disconnected"}),
        )
        .await;
    assert_eq!((code, again), (200, body));
    let stored = app
        .app
        .service
        .store()
        .get_session(session.as_i64().expect("id"))
        .await
        .expect("read")
        .expect("stored");
    assert!(stored.offline);
}

async fn session_errors_are_precise_and_change_nothing(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let t0 = Utc::now() - Span::hours(1);
    let (_, body) = c
        .call("session-start", start("04A1B2C3", 1, 1_000, t0))
        .await;
    let session = body["session_id"].clone();

    let stop = |meter: i64| {
        json!({"session_id": session, "meter_stop_wh": meter, "stopped_at": ts(Utc::now()),
               "reason": "local"})
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "session-stop",
            json!({"session_id": 999_999, "meter_stop_wh": 5, "stopped_at": ts(Utc::now()), "reason": "local"}),
            404,
            "not_found",
        ),
        ("session-stop", stop(999), 422, "meter_stop_wh"),
        (
            "session-stop",
            json!({"session_id": session, "meter_stop_wh": 2_000, "stopped_at": ts(t0 - Span::minutes(1)), "reason": "local"}),
            422,
            "stopped_at",
        ),
        (
            "session-stop",
            json!({"session_id": session, "meter_stop_wh": 2_000, "stopped_at": ts(Utc::now()), "reason": "bored"}),
            422,
            "reason",
        ),
        (
            "session-stop",
            json!({"meter_stop_wh": 2_000, "stopped_at": ts(Utc::now()), "reason": "local"}),
            422,
            "session_id",
        ),
        (
            "meter-values",
            json!({"session_id": session, "samples": []}),
            422,
            "samples",
        ),
        (
            "meter-values",
            json!({"session_id": session, "samples": [{"at": ts(Utc::now()), "energy_wh": 10}]}),
            422,
            "samples[0].energy_wh",
        ),
        (
            "meter-values",
            json!({"session_id": session, "samples": [{"at": "yesterday", "energy_wh": 2_000}]}),
            422,
            "samples[0].at",
        ),
        (
            "session-start",
            json!({"tag": "04A1B2C3", "connector": 1, "meter_start_wh": 0}),
            422,
            "started_at",
        ),
        (
            "session-start",
            start("04A1B2C3", 9, 0, Utc::now()),
            422,
            "connector",
        ),
        ("session-start", start("xyz", 1, 0, Utc::now()), 422, "tag"),
        (
            "session-start",
            start("04A1B2C3", 2, 0, Utc::now() + Span::hours(1)),
            422,
            "started_at",
        ),
        ("authorize", json!({"tag": "04A1B2C3"}), 422, "connector"),
    ];
    for (endpoint, data, code, what) in cases {
        let (got, body) = c.call(endpoint, data.clone()).await;
        assert_eq!(got, code, "{endpoint} {data}: {body}");
        if code == 422 {
            assert_eq!(body["field"], what, "{endpoint} {data}: {body}");
        } else {
            assert_eq!(body["error"], what, "{endpoint} {data}: {body}");
        }
    }
    // The session is still open and stops normally.
    let (code, body) = c.call("session-stop", stop(2_000)).await;
    assert_eq!((code, &body["energy_wh"]), (200, &json!(1_000)), "{body}");
}

/// Publishes the same request (same id) `n` times back to back, as a QoS 1 redelivery
/// would, and returns the `n` answers (code, body).
async fn duplicates(
    c: &mut Charger,
    b: &FirmwareBundle,
    endpoint: &str,
    id: &str,
    data: &Value,
    n: usize,
) -> Vec<(u16, Value)> {
    let topic = format!("{}/req/{}/{endpoint}", b.owner, b.device_id);
    for _ in 0..n {
        c.probe
            .publish(
                &topic,
                Qos::AtLeastOnce,
                false,
                request(b, json!(id), data.clone()),
            )
            .await;
    }
    let mut answers = Vec::new();
    for _ in 0..n {
        let (_, payload) = c.probe.next_publish(WAIT).await.expect("RES");
        let (res, body) = open(b, &payload);
        answers.push((res.code, body.expect("body")));
    }
    answers
}

async fn a_repeated_session_start_id_never_makes_a_second_session(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let data = start("04A1B2C3", 1, 0, Utc::now());
    // The same request twice back to back (a QoS 1 redelivery), then a retry with another
    // body: one session, the same answer each time.
    let answers: Vec<Value> = duplicates(&mut c, b, "session-start", "s-1", &data, 2)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    let (code, retry) = c
        .call_with_id(
            json!("s-1"),
            "session-start",
            start("04A1B2C3", 2, 7, Utc::now()),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], retry);
    // The tag has exactly one active session: a second start elsewhere is busy.
    let (code, _) = c
        .call("session-start", start("04A1B2C3", 2, 0, Utc::now()))
        .await;
    assert_eq!(code, 409);
}

async fn a_request_answered_with_a_5xx_changes_nothing_and_its_repeat_is_answered_afresh(
    app: TestApp,
) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    // A stored price no tariff could have: reading it is an internal error.
    let broken = app
        .sql("UPDATE tariffs SET energy_per_kwh = 'not a price' WHERE id = 'standard'")
        .await;
    assert_eq!(broken, 1);
    let data = start("04A1B2C3", 1, 0, Utc::now());
    let (code, body) = c
        .call_with_id(json!("s-5xx"), "session-start", data.clone())
        .await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["error"], "internal", "{body}");
    // Nothing of it stayed: no session, the connector is free.
    let sessions = app.get("/api/v1/sessions", ADMIN_TOKEN).await;
    assert_eq!(sessions.body["sessions"], json!([]), "{:?}", sessions.body);
    app.sql("UPDATE tariffs SET energy_per_kwh = '0.30' WHERE id = 'standard'")
        .await;
    // The same id again: the 500 was not kept, so the start happens now.
    let (code, body) = c.call_with_id(json!("s-5xx"), "session-start", data).await;
    assert_eq!(code, 201, "{body}");
}

async fn chargers_racing_for_a_one_session_tag_start_one_session(app: TestApp) {
    // Eight chargers start with the same card at the same moment. On PostgreSQL their
    // requests run in several writers' transactions at once: the database must make them
    // check one after the other (the tag's cap, enforced across writers and instances).
    let bundles = fleet(&app, 8).await;
    let mut chargers = Vec::new();
    for b in &bundles {
        chargers.push(Charger::connect(&app, b).await);
    }
    for round in 0..10u32 {
        let uid = format!("0C0C{round:04X}");
        tag(
            &app,
            json!({"uid": uid, "owner": "acme", "max_sessions": 1}),
        )
        .await;
        let tasks: Vec<_> = chargers
            .drain(..)
            .map(|mut c| {
                let data = start(&uid, 1, 0, Utc::now());
                tokio::spawn(async move {
                    let (code, body) = c.call("session-start", data).await;
                    (c, code, body)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let (c, code, body) = t.await.expect("charger task");
            match code {
                201 => winners.push((i, body["session_id"].clone())),
                409 => assert_eq!(body["error"], "tag_busy", "{body}"),
                _ => panic!("round {round}: {code} {body}"),
            }
            chargers.push(c);
        }
        assert_eq!(winners.len(), 1, "round {round}: sessions {winners:?}");
        let (i, session) = winners.remove(0);
        let stop = json!({"session_id": session, "meter_stop_wh": 10, "stopped_at": ts(Utc::now()), "reason": "local"});
        let (code, body) = chargers[i].call("session-stop", stop).await;
        assert_eq!(code, 200, "{body}");
    }
}

async fn a_repeated_authorize_id_gets_the_kept_answer_even_after_the_tag_changed(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let data = json!({"tag": "04A1B2C3", "connector": 1});
    // Duplicates in flight at once (a QoS 1 redelivery) on the read path: one answer.
    let answers = duplicates(&mut c, b, "authorize", "a-1", &data, 3).await;
    assert_eq!(answers[0].0, 200, "{:?}", answers[0]);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    // Blocked now: a new request is refused, the repeat still gets the kept answer.
    let a = app
        .patch(
            "/api/v1/tags/04A1B2C3",
            ADMIN_TOKEN,
            json!({"status": "blocked"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let (code, body) = c.call("authorize", data.clone()).await;
    assert_eq!(
        (code, &body["error"]),
        (403, &json!("tag_blocked")),
        "{body}"
    );
    let (code, body) = c.call_with_id(json!("a-1"), "authorize", data).await;
    assert_eq!((code, body), answers[0].clone());
    // An unknown tag tapped on the read path is still listed for the operator.
    let (code, _) = c
        .call("authorize", json!({"tag": "0BADCAFE", "connector": 1}))
        .await;
    assert_eq!(code, 404);
    let unknown = app.get("/api/v1/tags/unknown", ADMIN_TOKEN).await;
    assert!(
        unknown.body.to_string().contains("0BADCAFE"),
        "{:?}",
        unknown.body
    );
}

async fn an_installer_card_enrolls_new_tags_at_the_charger(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    tag(
        &app,
        json!({"uid": "11111111", "owner": "acme", "role": "installer"}),
    )
    .await;
    app.provision("beta", 1).await;
    tag(
        &app,
        json!({"uid": "22222222", "owner": "beta", "role": "installer"}),
    )
    .await;
    let mut c = Charger::connect(&app, b).await;

    let (code, body) = c
        .call("authorize", json!({"tag": "11111111", "connector": 1}))
        .await;
    assert_eq!((code, &body["role"]), (200, &json!("installer")));
    let (code, body) = c
        .call(
            "tag-enroll",
            json!({"installer_tag": "11111111", "tag": "0a0b0c0d", "label": "van 7"}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body, json!({"tag": "0A0B0C0D", "owner": "acme"}));
    let (code, _) = c
        .call("authorize", json!({"tag": "0A0B0C0D", "connector": 1}))
        .await;
    assert_eq!(code, 200, "the new tag charges at once");
    let listed = app.get("/api/v1/tags/0A0B0C0D", ADMIN_TOKEN).await;
    assert_eq!(
        (listed.body["role"].clone(), listed.body["label"].clone()),
        (json!("driver"), json!("van 7"))
    );

    for (installer, new, code, error) in [
        ("04A1B2C3", "0E0E0E0E", 403, "not_installer"),
        ("22222222", "0E0E0E0E", 403, "not_installer"),
        ("99999999", "0E0E0E0E", 403, "not_installer"),
        ("11111111", "0A0B0C0D", 409, "tag_exists"),
    ] {
        let (got, body) = c
            .call(
                "tag-enroll",
                json!({"installer_tag": installer, "tag": new}),
            )
            .await;
        assert_eq!(
            (got, body["error"].as_str()),
            (code, Some(error)),
            "{installer}: {body}"
        );
    }
    let (code, body) = c
        .call(
            "tag-enroll",
            json!({"installer_tag": "11111111", "tag": "0E0E"}),
        )
        .await;
    assert_eq!((code, &body["field"]), (422, &json!("tag")));
    assert_eq!(
        app.get("/api/v1/tags/0E0E0E0E", ADMIN_TOKEN).await.status,
        404
    );
}

async fn the_local_list_comes_as_deltas_since_the_chargers_version(app: TestApp) {
    let b = &fleet(&app, 2).await[0];
    tag(
        &app,
        json!({"uid": "0000000B", "owner": "acme", "group": "g"}),
    )
    .await;
    let mut c = Charger::connect(&app, b).await;
    let (code, full) = c.call("local-list", json!({"version": 0})).await;
    assert_eq!(code, 200, "{full}");
    assert_eq!(full["tags"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        (&full["reset"], &full["more"]),
        (&json!(false), &json!(false))
    );
    let v1 = full["version"].as_i64().expect("version");

    // Nothing changed: an empty delta.
    let (_, same) = c.call("local-list", json!({"version": v1})).await;
    assert_eq!(
        (same["tags"].clone(), same["removed"].clone()),
        (json!([]), json!([]))
    );

    // Block one, delete one, limit a third to the other charger.
    let a = app
        .patch(
            "/api/v1/tags/0000000B",
            ADMIN_TOKEN,
            json!({"status": "blocked"}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        app.delete("/api/v1/tags/04A1B2C3", ADMIN_TOKEN)
            .await
            .status,
        204
    );
    let other = app.get("/api/v1/devices", ADMIN_TOKEN).await.body[1]["id"].clone();
    tag(
        &app,
        json!({"uid": "0000000C", "owner": "acme", "devices": [other]}),
    )
    .await;
    let (_, delta) = c.call("local-list", json!({"version": v1})).await;
    assert_eq!(
        delta["tags"],
        json!([{"tag": "0000000B", "role": "driver", "status": "blocked", "max_sessions": 1, "group": "g"}])
    );
    assert_eq!(delta["removed"], json!(["04A1B2C3", "0000000C"]));
    assert!(delta["version"].as_i64() > Some(v1));

    // A version this owner never had: start again from scratch.
    let (_, reset) = c.call("local-list", json!({"version": 1_000_000})).await;
    assert_eq!(reset["reset"], true);
    assert_eq!(reset["tags"].as_array().map(Vec::len), Some(1));
    let (code, body) = c.call("local-list", json!({"version": -1})).await;
    assert_eq!((code, &body["field"]), (422, &json!("version")));
}

async fn remote_stop_and_start_are_answered_by_the_charger(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let (_, body) = c
        .call(
            "session-start",
            start("04A1B2C3", 1, 0, Utc::now() - Span::minutes(10)),
        )
        .await;
    let session = body["session_id"].as_i64().expect("session");
    let path = |command: &str| format!("/api/v1/devices/{}/commands/{command}", b.device_id);

    // The charger obeys: it answers the command, then stops its session.
    let rest = {
        let http = app.http.clone();
        let url = format!("{}{}", app.base, path("remote-stop"));
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
    let (envelope, command) = open(b, &payload);
    assert_eq!(command, Some(json!({"session_id": session})));
    let answer = json!({"id": envelope.id, "key": b.key, "data": {"status": "accepted"}});
    c.probe
        .publish(
            &format!("acme/req/{}/remote-stop", b.device_id),
            Qos::AtLeastOnce,
            false,
            serde_json::to_vec(&answer).expect("json"),
        )
        .await;
    let reply = rest.await.expect("joined");
    assert_eq!(reply.status(), 200);
    let reply: Value = reply.json().await.expect("json");
    assert_eq!(reply["answer"], json!({"status": "accepted"}));
    let (code, _) = c
        .call("session-stop", json!({"session_id": session, "meter_stop_wh": 500, "stopped_at": ts(Utc::now()), "reason": "remote"}))
        .await;
    assert_eq!(code, 200);
    // Stopped already: 409 before anything is sent.
    let a = app
        .post(
            &path("remote-stop"),
            ADMIN_TOKEN,
            json!({"session_id": session}),
        )
        .await;
    assert_error(&a, 409, "session_closed");

    // A charger that does not answer: 504 after the timeout.
    let a = app
        .post(
            &format!("{}?timeout_ms=300", path("remote-start")),
            ADMIN_TOKEN,
            json!({"tag": "04A1B2C3", "connector": 1}),
        )
        .await;
    assert_error(&a, 504, "device_timeout");
    // Bad commands and data, and an offline charger.
    assert_error(
        &app.post(&path("self-destruct"), ADMIN_TOKEN, json!({}))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &app.post(&path("unlock"), ADMIN_TOKEN, json!({"connector": 7}))
            .await,
        422,
        "invalid_input",
    );
    c.probe.disconnect().await;
    app.wait_for_online(&b.device_id, false).await;
    assert_error(
        &app.post(&path("unlock"), ADMIN_TOKEN, json!({"connector": 1}))
            .await,
        409,
        "device_offline",
    );
    // Another owner's token cannot see the charger at all.
    let token = app.owner_with_token("gamma").await;
    assert_error(
        &app.post(&path("unlock"), &token, json!({"connector": 1}))
            .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_payload_over_the_limit_gets_413_and_the_charger_stays_served() {
    let app = spawn_app_with(default_db(), |c| c.mqtt_max_payload = 2_048)
        .await
        .expect("app");
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let big = request(
        b,
        json!(1),
        json!({"firmware": "x".repeat(4_000), "model": "m", "connectors": 1}),
    );
    let topic = format!("acme/req/{}/boot", b.device_id);
    c.probe.publish(&topic, Qos::AtLeastOnce, false, big).await;
    let (_, payload) = c.probe.next_publish(WAIT).await.expect("RES");
    let envelope: Value = serde_json::from_slice(&payload).expect("json");
    // The id is read from the oversized payload, so the charger can match the answer.
    assert_eq!(
        envelope,
        json!({"id": 1, "status": 0, "code": 413, "data": ""})
    );
    let (code, _) = c
        .call(
            "boot",
            json!({"firmware": "1", "model": "m", "connectors": 1}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        app.get(&format!("/api/v1/devices/{}", b.device_id), ADMIN_TOKEN)
            .await
            .body["firmware"],
        "1"
    );
}

/// A session with thousands of samples is answered with about a thousand, evenly spread,
/// the first and the last kept, and says how many it has.
async fn a_sessions_samples_are_thinned_for_display(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let t0 = Utc::now() - Span::hours(2);
    let (code, body) = c.call("session-start", start("04A1B2C3", 1, 0, t0)).await;
    assert_eq!(code, 201, "{body}");
    let session = body["session_id"].as_i64().expect("session id");
    let mut n = 0i64;
    for _ in 0..25 {
        let samples: Vec<Value> = (0..100)
            .map(|_| {
                n += 1;
                json!({"at": ts(t0 + Span::seconds(n)), "energy_wh": n * 5})
            })
            .collect();
        let (code, body) = c
            .call(
                "meter-values",
                json!({"session_id": session, "samples": samples}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let a = app
        .get(&format!("/api/v1/sessions/{session}"), ADMIN_TOKEN)
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["samples_total"], 2_500);
    let samples = a.body["samples"].as_array().expect("samples");
    assert!(
        (800..=1_001).contains(&samples.len()),
        "{} samples",
        samples.len()
    );
    assert_eq!(samples[0]["energy_wh"], 5);
    assert_eq!(samples[samples.len() - 1]["energy_wh"], 12_500);
    let energies: Vec<i64> = samples
        .iter()
        .map(|s| s["energy_wh"].as_i64().expect("energy"))
        .collect();
    assert!(energies.windows(2).all(|w| w[0] < w[1]), "in time order");
}
