//! Billing inputs a meter cannot produce: refused (422 naming the field) on a live
//! session, kept as `disputed` and billed nothing on an offline replay; reports whose
//! sums would overflow 64 bits still add up exactly.

use charger_e2e::mqtt::Charger;
use charger_e2e::{on_both_databases, spawn_app_on, TestApp, ADMIN_TOKEN};
use chrono::{Duration as Span, Utc};
use serde_json::{json, Value};

use super::charging::{fleet, start, ts};

on_both_databases!(spawn_app_on =>
    readings_no_meter_can_produce_are_refused_on_a_live_session,
    an_offline_replay_no_meter_could_make_is_kept_as_disputed_and_billed_nothing,
    reports_whose_sums_pass_64_bits_add_up_exactly,
);

async fn field_error(c: &mut Charger, endpoint: &str, data: Value, field: &str) {
    let (code, body) = c.call(endpoint, data.clone()).await;
    assert_eq!(
        (code, body["field"].as_str()),
        (422, Some(field)),
        "{endpoint} {data}: {body}"
    );
}

async fn readings_no_meter_can_produce_are_refused_on_a_live_session(app: TestApp) {
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let t0 = Utc::now() - Span::minutes(10);

    field_error(
        &mut c,
        "session-start",
        start("04A1B2C3", 1, -1, t0),
        "meter_start_wh",
    )
    .await;
    field_error(
        &mut c,
        "session-start",
        start("04A1B2C3", 1, 9_000_000_000_000_000_000, t0),
        "meter_start_wh",
    )
    .await;
    field_error(
        &mut c,
        "session-start",
        json!({"tag": "04A1B2C3", "connector": 1, "meter_start_wh": 0, "started_at": "0001-01-01T00:00:00Z"}),
        "started_at",
    )
    .await;
    let (code, body) = c
        .call("session-start", start("04A1B2C3", 1, 1_000, t0))
        .await;
    assert_eq!(code, 201, "{body}");
    let id = body["session_id"].as_i64().expect("id");
    let sample = |at: chrono::DateTime<Utc>, wh: i64, w: i64| json!({"session_id": id, "samples": [{"at": ts(at), "energy_wh": wh, "power_w": w}]});
    let now = Utc::now();
    // A sample from the year 9999, a power of 9e18 W, a reading of 9e15 Wh, and 9 kWh in
    // ten minutes from a 22 kW connector (54 kW).
    field_error(
        &mut c,
        "meter-values",
        json!({"session_id": id, "samples": [{"at": "9999-12-31T23:59:59Z", "energy_wh": 1_500}]}),
        "samples[0].at",
    )
    .await;
    field_error(
        &mut c,
        "meter-values",
        sample(now, 1_500, 9_000_000_000_000_000_000),
        "samples[0].power_w",
    )
    .await;
    field_error(
        &mut c,
        "meter-values",
        sample(now, 9_000_000_000_000_000, 11_000),
        "samples[0].energy_wh",
    )
    .await;
    field_error(
        &mut c,
        "meter-values",
        sample(now, 10_000, 11_000),
        "samples[0].energy_wh",
    )
    .await;
    // Samples out of time order within one request.
    field_error(
        &mut c,
        "meter-values",
        json!({"session_id": id, "samples": [
            {"at": ts(now - Span::minutes(1)), "energy_wh": 3_000},
            {"at": ts(now - Span::minutes(2)), "energy_wh": 3_100}]}),
        "samples[1].at",
    )
    .await;
    // A plausible sample: 3 kWh in ten minutes is 18 kW.
    let (code, body) = c.call("meter-values", sample(now, 4_000, 18_000)).await;
    assert_eq!(code, 200, "{body}");
    // After it: never back in time, never backwards on the meter.
    field_error(
        &mut c,
        "meter-values",
        sample(now - Span::seconds(30), 4_100, 18_000),
        "samples[0].at",
    )
    .await;
    field_error(
        &mut c,
        "meter-values",
        sample(now, 3_999, 18_000),
        "samples[0].energy_wh",
    )
    .await;

    let stop = |wh: i64, at: chrono::DateTime<Utc>| json!({"session_id": id, "meter_stop_wh": wh, "stopped_at": ts(at), "reason": "local"});
    // A stop at 9e18 Wh, a stop below the last sample, a stop before the last sample.
    field_error(
        &mut c,
        "session-stop",
        stop(9_000_000_000_000_000_000, now),
        "meter_stop_wh",
    )
    .await;
    field_error(&mut c, "session-stop", stop(100, now), "meter_stop_wh").await;
    field_error(
        &mut c,
        "session-stop",
        stop(4_000, now - Span::minutes(1)),
        "stopped_at",
    )
    .await;
    // The session is still there, and a real stop bills it.
    let (code, body) = c.call("session-stop", stop(4_200, now)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["energy_wh"], 3_200);
    assert!(body.get("disputed").is_none(), "{body}");
}

async fn an_offline_replay_no_meter_could_make_is_kept_as_disputed_and_billed_nothing(
    app: TestApp,
) {
    let b = &fleet(&app, 1).await[0];
    let a = app
        .patch(
            "/api/v1/tags/04A1B2C3",
            ADMIN_TOKEN,
            json!({"max_sessions": 5}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let mut c = Charger::connect(&app, b).await;
    let now = Utc::now();
    let offline = |local: &str, at: &str, wh: i64| json!({"tag": "04A1B2C3", "connector": 1, "meter_start_wh": wh, "started_at": at, "local_id": local});
    let stop = |local: &str, wh: i64, at: &str| json!({"local_id": local, "meter_stop_wh": wh, "stopped_at": at, "reason": "local"});

    // Started in the year 0001: recorded (the car has charged), disputed, billed nothing.
    let (code, body) = c
        .call("session-start", offline("y1", "0001-01-01T00:00:00Z", 0))
        .await;
    assert_eq!(code, 201, "{body}");
    let ancient = body["session_id"].as_i64().expect("id");
    let (code, body) = c.call("session-stop", stop("y1", 5_000, &ts(now))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (&body["disputed"], &body["net"], &body["total"]),
        (&json!(true), &json!("0.00"), &json!("0.00"))
    );
    // The same stop again gets the same answer.
    let (code, again) = c.call("session-stop", stop("y1", 5_000, &ts(now))).await;
    assert_eq!((code, &again), (200, &body));

    // Plausible start, a stop of 9e15 Wh an hour later: disputed, not lost, not billed.
    let t = ts(now - Span::hours(1));
    let (code, body) = c.call("session-start", offline("big", &t, 100)).await;
    assert_eq!(code, 201, "{body}");
    let big = body["session_id"].as_i64().expect("id");
    let (code, body) = c
        .call("session-stop", stop("big", 9_000_000_000_000_000, &ts(now)))
        .await;
    assert_eq!((code, &body["disputed"]), (200, &json!(true)), "{body}");

    // Older than the offline window (90 days): disputed.
    let t = ts(now - Span::days(91));
    let (code, _) = c.call("session-start", offline("stale", &t, 0)).await;
    assert_eq!(code, 201);
    let t_stop = ts(now - Span::days(91) + Span::minutes(30));
    let (code, body) = c.call("session-stop", stop("stale", 1_000, &t_stop)).await;
    assert_eq!((code, &body["disputed"]), (200, &json!(true)), "{body}");

    // A sound offline replay is billed as usual.
    let t = ts(now - Span::hours(2));
    c.call("session-start", offline("fine", &t, 0)).await;
    let (code, body) = c
        .call(
            "session-stop",
            stop("fine", 1_000, &ts(now - Span::hours(1))),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.get("disputed").is_none());
    assert_eq!(body["net"], "2.00", "{body}");

    // The operator sees the disputed ones, with why; reports leave them out.
    let listed = app
        .get("/api/v1/sessions?status=disputed", ADMIN_TOKEN)
        .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let sessions = listed.body["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 3, "{listed:?}");
    let ancient_row = sessions
        .iter()
        .find(|s| s["id"] == ancient)
        .expect("the ancient session");
    assert_eq!(ancient_row["status"], "disputed");
    assert_eq!(ancient_row["net"], "0.00");
    assert!(
        ancient_row["dispute"]
            .as_str()
            .is_some_and(|d| d.contains("started_at")),
        "{ancient_row}"
    );
    assert!(sessions.iter().any(|s| s["id"] == big));
    let from = ts(now - Span::days(400));
    let to = ts(now + Span::days(1));
    let report = app
        .get(
            &format!("/api/v1/reports/billing?from={from}&to={to}&group_by=device"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(report.status, 200, "{report:?}");
    assert_eq!(report.body["totals"][0]["sessions"], 1, "{report:?}");
    assert_eq!(report.body["totals"][0]["net"], "2.00", "{report:?}");
    // The tag is free again: a disputed stop ends the session.
    let (code, _) = c
        .call("authorize", json!({"tag": "04A1B2C3", "connector": 1}))
        .await;
    assert_eq!(code, 200);
}

async fn reports_whose_sums_pass_64_bits_add_up_exactly(app: TestApp) {
    let token = app.owner_with_token("rich").await;
    let a = app
        .post(
            "/api/v1/tariffs",
            &token,
            json!({"id": "steep", "currency": "KWD", "energy_per_kwh": "1000000",
                   "time_per_hour": "0", "session_fee": "0", "tax_rate": "0.21", "default": true}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"id": "rich-1", "connectors": 8, "max_power_w": 1_000_000_000}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let b: charger_protocol::FirmwareBundle = serde_json::from_value(a.body).expect("bundle");
    let a = app
        .post(
            "/api/v1/tags",
            &token,
            json!({"uid": "0A0B0C0D", "max_sessions": 8}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let mut c = Charger::connect(&app, &b).await;
    let t0 = Utc::now() - Span::days(45);
    let now = Utc::now();
    // Eight sessions of the largest reading (10^12 Wh, plausible for a 1 GW connector over
    // 45 days) at the highest price: each 10^15 KWD net, 1.21e18 fils in total; the eight
    // 9.68e18 fils, past the 9.22e18 of a signed 64-bit integer.
    for connector in 1..=8 {
        // Started 45 days ago: only a start made offline may be that old.
        let mut begin = start("0A0B0C0D", connector, 0, t0);
        begin["local_id"] = json!(format!("big-{connector}"));
        let (code, body) = c.call("session-start", begin).await;
        assert_eq!(code, 201, "{body}");
        let id = body["session_id"].as_i64().expect("id");
        let (code, body) = c
            .call(
                "session-stop",
                json!({"session_id": id, "meter_stop_wh": 1_000_000_000_000_i64, "stopped_at": ts(now), "reason": "local"}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["total"], "1210000000000000.000", "{body}");
    }
    let from = ts(now - Span::days(60));
    let to = ts(now + Span::days(1));
    for group in ["day", "month", "device", "tag"] {
        let report = app
            .get(
                &format!("/api/v1/reports/billing?from={from}&to={to}&group_by={group}"),
                &token,
            )
            .await;
        assert_eq!(report.status, 200, "{group}: {report:?}");
        let total = &report.body["totals"][0];
        assert_eq!(total["sessions"], 8, "{report:?}");
        assert_eq!(total["energy_wh"], 8_000_000_000_000_i64);
        assert_eq!(total["net"], "8000000000000000.000", "{report:?}");
        assert_eq!(total["tax"], "1680000000000000.000", "{report:?}");
        assert_eq!(total["total"], "9680000000000000.000", "{report:?}");
    }
}
