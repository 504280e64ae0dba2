//! Sessions, billing reports and metrics over REST, with sessions made by real chargers
//! over MQTT.

use charger_e2e::mqtt::Charger;
use charger_e2e::{assert_error, on_both_databases, spawn_app_with, Db, TestApp, ADMIN_TOKEN};
use charger_protocol::FirmwareBundle;
use chrono::{DateTime, Duration as Span, SecondsFormat, TimeZone as _, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr as _;

/// The server, with an offline window wide enough for the fixed dates of the report test
/// (an older offline start would be recorded as disputed, outside every report).
async fn spawn(db: Db) -> Option<TestApp> {
    spawn_app_with(db, |c| c.offline_max_age_days = 3_650).await
}

on_both_databases!(spawn =>
    sessions_page_by_cursor_without_skips_or_repeats_while_sessions_are_added,
    sessions_filter_scope_and_show_their_samples_and_cost_lines,
    billing_reports_sum_to_the_cent_in_json_and_csv,
    metrics_count_requests_connections_and_sessions,
);

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An owner with a default tariff in `currency`, one charger, and tag `uid`; returns the
/// charger's bundle and the owner's token.
async fn owner(app: &TestApp, id: &str, currency: &str, uid: &str) -> (FirmwareBundle, String) {
    let token = app.owner_with_token(id).await;
    let a = app
        .post(
            "/api/v1/tariffs",
            &token,
            json!({"id": format!("{id}-std"), "currency": currency, "energy_per_kwh": "0.333",
                   "time_per_hour": "1.10", "session_fee": "0.05", "tax_rate": "0.19",
                   "default": true}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"id": format!("{id}-c1"), "connectors": 2, "max_power_w": 1_000_000}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let bundle: FirmwareBundle = serde_json::from_value(a.body).expect("bundle");
    let a = app.post("/api/v1/tags", &token, json!({"uid": uid})).await;
    assert_eq!(a.status, 201, "{a:?}");
    (bundle, token)
}

/// A finished session started at `at` (an offline replay, so any time works).
async fn session(c: &mut Charger, uid: &str, local: &str, at: DateTime<Utc>, wh: i64) -> i64 {
    let (code, body) = c
        .call(
            "session-start",
            json!({"tag": uid, "connector": 1, "meter_start_wh": 100, "started_at": ts(at), "local_id": local}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let id = body["session_id"].as_i64().expect("id");
    let (code, _) = c
        .call(
            "meter-values",
            json!({"session_id": id, "samples": [{"at": ts(at + Span::minutes(5)), "energy_wh": 100 + wh / 2, "power_w": 7_400}]}),
        )
        .await;
    assert_eq!(code, 200);
    let (code, body) = c
        .call(
            "session-stop",
            json!({"session_id": id, "meter_stop_wh": 100 + wh, "stopped_at": ts(at + Span::minutes(37)), "reason": "local"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    id
}

fn ids(page: &Value) -> Vec<i64> {
    page["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["id"].as_i64().expect("id"))
        .collect()
}

async fn sessions_page_by_cursor_without_skips_or_repeats_while_sessions_are_added(app: TestApp) {
    let (b, token) = owner(&app, "acme", "EUR", "0000AA01").await;
    let mut c = Charger::connect(&app, &b).await;
    let t0 = Utc::now() - Span::days(10);
    let mut made = Vec::new();
    for i in 0..17 {
        made.push(
            session(
                &mut c,
                "0000AA01",
                &format!("l{i}"),
                t0 + Span::hours(i),
                1_000,
            )
            .await,
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut extra = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/sessions?limit=5&cursor={c}"),
            None => "/api/v1/sessions?limit=5".to_owned(),
        };
        let page = app.get(&path, &token).await;
        assert_eq!(page.status, 200, "{page:?}");
        seen.extend(ids(&page.body));
        // Sessions keep arriving between pages.
        extra += 1;
        session(
            &mut c,
            "0000AA01",
            &format!("x{extra}"),
            t0 + Span::days(1),
            10,
        )
        .await;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected = made.clone();
    expected.reverse();
    assert_eq!(
        seen, expected,
        "each session once, newest first, none added mid-way"
    );

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=abc", "cursor"),
        ("status=charging", "status"),
        ("from=yesterday", "from"),
    ] {
        let a = app.get(&format!("/api/v1/sessions?{query}"), &token).await;
        assert_error(&a, 422, "invalid_input");
        assert!(
            a.body["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{query}: {a:?}"
        );
    }
}

async fn sessions_filter_scope_and_show_their_samples_and_cost_lines(app: TestApp) {
    let (b, acme) = owner(&app, "acme", "EUR", "0000AA01").await;
    let (b2, beta) = owner(&app, "beta", "EUR", "0000BB01").await;
    let mut c = Charger::connect(&app, &b).await;
    let mut c2 = Charger::connect(&app, &b2).await;
    let t0 = Utc::now() - Span::days(3);
    let s1 = session(&mut c, "0000AA01", "a", t0, 2_000).await;
    let s2 = session(&mut c2, "0000BB01", "b", t0 + Span::days(1), 3_000).await;
    // One still charging.
    let (_, body) = c
        .call("session-start", json!({"tag": "0000AA01", "connector": 2, "meter_start_wh": 0, "started_at": ts(Utc::now())}))
        .await;
    let open = body["session_id"].as_i64().expect("id");

    assert_eq!(
        ids(&app.get("/api/v1/sessions", ADMIN_TOKEN).await.body),
        vec![open, s2, s1]
    );
    assert_eq!(
        ids(&app.get("/api/v1/sessions", &acme).await.body),
        vec![open, s1]
    );
    assert_eq!(
        ids(&app.get("/api/v1/sessions", &beta).await.body),
        vec![s2]
    );
    assert_eq!(
        ids(&app
            .get("/api/v1/sessions?status=active", ADMIN_TOKEN)
            .await
            .body),
        vec![open]
    );
    assert_eq!(
        ids(&app
            .get("/api/v1/sessions?device=beta-c1", ADMIN_TOKEN)
            .await
            .body),
        vec![s2]
    );
    assert_eq!(
        ids(&app
            .get("/api/v1/sessions?tag=0000aa01", ADMIN_TOKEN)
            .await
            .body),
        vec![open, s1]
    );
    let window = format!(
        "/api/v1/sessions?from={}&to={}",
        ts(t0 + Span::hours(12)).replace('+', "%2B"),
        ts(t0 + Span::days(2))
    );
    assert_eq!(ids(&app.get(&window, ADMIN_TOKEN).await.body), vec![s2]);

    let one = app.get(&format!("/api/v1/sessions/{s1}"), &acme).await;
    assert_eq!(one.status, 200, "{one:?}");
    let s = &one.body;
    assert_eq!(
        (s["device"].clone(), s["owner"].clone(), s["tag"].clone()),
        (json!("acme-c1"), json!("acme"), json!("0000AA01"))
    );
    assert_eq!(
        (
            s["status"].clone(),
            s["energy_wh"].clone(),
            s["offline"].clone()
        ),
        (json!("stopped"), json!(2_000), json!(true))
    );
    assert_eq!(s["samples"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["samples"][0]["power_w"], 7_400);
    let kinds: Vec<&str> = s["cost_lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, vec!["energy", "session_fee", "time"]);
    // The exact lines add up to the net before its one rounding.
    let exact: Decimal = s["cost_lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| Decimal::from_str(l["amount"].as_str().expect("amount")).expect("decimal"))
        .sum();
    let net = Decimal::from_str(s["net"].as_str().expect("net")).expect("net");
    assert_eq!(
        exact.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        net
    );

    // Scoping: another owner's session is 404, never a row.
    assert_error(
        &app.get(&format!("/api/v1/sessions/{s1}"), &beta).await,
        404,
        "not_found",
    );
    assert_error(
        &app.get("/api/v1/sessions/999999", ADMIN_TOKEN).await,
        404,
        "not_found",
    );
    assert_error(
        &app.get("/api/v1/sessions/abc", ADMIN_TOKEN).await,
        404,
        "not_found",
    );
    assert_eq!(app.get("/api/v1/sessions", "cht_nope").await.status, 401);
}

fn day(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("date")
}

async fn billing_reports_sum_to_the_cent_in_json_and_csv(app: TestApp) {
    let (b, acme) = owner(&app, "acme", "EUR", "0000AA01").await;
    let (b2, beta) = owner(&app, "beta", "JPY", "0000BB01").await;
    let mut c = Charger::connect(&app, &b).await;
    let mut c2 = Charger::connect(&app, &b2).await;
    let mut n = 0;
    for (at, wh) in [
        (day(2026, 9, 30, 23), 1_234),
        (day(2026, 10, 1, 0), 7_777),
        (day(2026, 10, 1, 13), 333),
        (day(2026, 10, 15, 8), 12_345),
        (day(2026, 11, 2, 9), 999),
    ] {
        n += 1;
        session(&mut c, "0000AA01", &format!("e{n}"), at, wh).await;
        session(&mut c2, "0000BB01", &format!("j{n}"), at, wh * 3).await;
    }
    let from = "2026-10-01T00:00:00Z";
    let to = "2026-11-01T00:00:00Z";
    let report = |group: &str, token: &str| {
        let path = format!("/api/v1/reports/billing?from={from}&to={to}&group_by={group}");
        let token = token.to_owned();
        let app = &app;
        async move { app.get(&path, &token).await }
    };

    // acme in October: three sessions, on two days, one month.
    let by_day = report("day", &acme).await;
    assert_eq!(by_day.status, 200, "{by_day:?}");
    let groups: Vec<&str> = by_day.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["group"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(groups, vec!["2026-10-01", "2026-10-15"]);
    let sessions = app
        .get(
            &format!("/api/v1/sessions?from={from}&to={to}&status=stopped"),
            &acme,
        )
        .await;
    let sum = |field: &str| -> Decimal {
        sessions.body["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .map(|s| Decimal::from_str(s[field].as_str().expect("money")).expect("decimal"))
            .sum()
    };
    for group in ["day", "month", "device", "tag"] {
        let r = report(group, &acme).await;
        assert_eq!(r.status, 200, "{group}: {r:?}");
        let totals = r.body["totals"].as_array().expect("totals");
        assert_eq!(totals.len(), 1, "{group}: one currency");
        let t = &totals[0];
        assert_eq!(
            (t["currency"].clone(), t["sessions"].clone()),
            (json!("EUR"), json!(3))
        );
        for field in ["net", "tax", "total"] {
            let row_sum: Decimal = r.body["rows"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|row| Decimal::from_str(row[field].as_str().expect("money")).expect("decimal"))
                .sum();
            let total = Decimal::from_str(t[field].as_str().expect("money")).expect("decimal");
            assert_eq!(total, row_sum, "{group} {field}: totals are the rows' sum");
            assert_eq!(total, sum(field), "{group} {field}: and the sessions' sum");
        }
    }
    assert_eq!(
        report("month", &acme).await.body["rows"][0]["group"],
        "2026-10"
    );
    assert_eq!(
        report("device", &acme).await.body["rows"][0]["group"],
        "acme-c1"
    );
    assert_eq!(
        report("tag", &acme).await.body["rows"][0]["group"],
        "0000AA01"
    );

    // The admin sees both owners: one currency per row, totals per currency.
    let all = report("month", ADMIN_TOKEN).await;
    let currencies: Vec<&str> = all.body["totals"]
        .as_array()
        .expect("totals")
        .iter()
        .map(|t| t["currency"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(currencies, vec!["EUR", "JPY"]);
    let jpy = &all.body["totals"][1];
    assert!(
        !jpy["total"].as_str().expect("total").contains('.'),
        "yen have no minor unit: {jpy}"
    );
    assert_eq!(
        report("month", &beta).await.body["totals"][0]["currency"],
        "JPY"
    );

    // CSV: by Accept or format=csv; RFC 4180 with a header row.
    let path = format!("/api/v1/reports/billing?from={from}&to={to}&group_by=day");
    let csv = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("GET");
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/csv"));
    let text = csv.text().await.expect("body");
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(text.ends_with("\r\n"));
    assert_eq!(lines[0], "group,currency,sessions,energy_wh,net,tax,total");
    let json_rows = report("day", ADMIN_TOKEN).await.body;
    let expected_rows = json_rows["rows"].as_array().expect("rows").len()
        + json_rows["totals"].as_array().expect("totals").len();
    assert_eq!(lines.len(), 1 + expected_rows);
    for line in &lines[1..] {
        assert_eq!(line.split(',').count(), 7, "{line}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("total,EUR,3,")),
        "{text}"
    );
    let via_format = app.get(&format!("{path}&format=csv"), ADMIN_TOKEN).await;
    assert_eq!(via_format.status, 200);

    for (query, status) in [
        (format!("from={to}&to={from}&group_by=day"), 422),
        (format!("from={from}&to={to}&group_by=week"), 422),
        (format!("from={from}&group_by=day"), 422),
        (format!("from={from}&to={to}&group_by=day&format=xml"), 422),
    ] {
        let a = app
            .get(&format!("/api/v1/reports/billing?{query}"), ADMIN_TOKEN)
            .await;
        assert_error(&a, status, "invalid_input");
    }
    assert_eq!(
        app.get(
            &format!("/api/v1/reports/billing?from={from}&to={to}&group_by=day"),
            "cht_nope"
        )
        .await
        .status,
        401
    );
}

async fn metrics_count_requests_connections_and_sessions(app: TestApp) {
    let (b, _) = owner(&app, "acme", "EUR", "0000AA01").await;
    let mut c = Charger::connect(&app, &b).await;
    c.call(
        "boot",
        json!({"firmware": "1", "model": "m", "connectors": 2}),
    )
    .await;
    c.call("authorize", json!({"tag": "DEADBEEF", "connector": 1}))
        .await;
    c.call("session-start", json!({"tag": "0000AA01", "connector": 1, "meter_start_wh": 0, "started_at": ts(Utc::now())})).await;
    let m = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(m.status(), 200);
    assert!(m.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/plain"));
    let text = m.text().await.expect("text");
    for needle in [
        "charger_mqtt_requests_total{endpoint=\"boot\",code=\"200\"} 1",
        "charger_mqtt_requests_total{endpoint=\"authorize\",code=\"404\"} 1",
        "charger_mqtt_requests_total{endpoint=\"session-start\",code=\"201\"} 1",
        "charger_mqtt_request_duration_seconds_count{endpoint=\"boot\"} 1",
        "charger_mqtt_connections 1",
        "charger_sessions_active 1",
        "charger_mqtt_refused_logins_total 0",
        "charger_mqtt_acl_denied_total{kind=\"publish\"} 0",
        "charger_db_errors_total",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
}
