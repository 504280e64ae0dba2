//! The round-3 hardening findings, each through the door it was found at (docs/security.md
//! names each test): anonymous clients, a flooding charger, exchanges that change
//! credentials, money and records, the contract, console sessions and tokens.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use charger_e2e::mqtt::{open_on, request, Charger, Login, Probe, Qos, Version};
use charger_e2e::{
    assert_error, closed_within, default_db, spawn_app_on, spawn_app_with, Db, TestApp, TestCa,
    ADMIN_TOKEN,
};
use charger_protocol::{FirmwareBundle, KeyExchange};
use chrono::{Duration as Span, Utc};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use super::charging::{fleet, start, ts};

const WAIT: Duration = Duration::from_secs(10);

/// A TCP connection to `to` from the loopback address `from` (127.0.0.x plays a source).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

/// An MQTT 3.1.1 CONNECT with client id = user name.
fn connect_packet(client_id: &str, password: &str) -> Vec<u8> {
    let mut connect = rumqttc::Connect::new(client_id);
    connect.keep_alive = 30;
    connect.set_login(client_id, password);
    let mut buf = bytes::BytesMut::new();
    connect.write(&mut buf).expect("encodes");
    buf.to_vec()
}

/// Logs a charger in from `from` over a raw socket; the CONNACK's return code, or None when
/// the socket was closed without one.
async fn login_from(from: [u8; 4], app: &TestApp, b: &FirmwareBundle) -> Option<(u8, TcpStream)> {
    let mut s = connect_from(from, app.app.mqtt_addr).await.ok()?;
    s.write_all(&connect_packet(&b.device_id, &b.mqtt.password))
        .await
        .ok()?;
    let mut ack = [0u8; 4];
    match tokio::time::timeout(WAIT, s.read_exact(&mut ack)).await {
        Ok(Ok(_)) => Some((ack[3], s)),
        _ => None,
    }
}

/// A REST client whose connections come from `from`.
fn rest_from(from: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(from))
        .timeout(WAIT)
        .build()
        .expect("client")
}

// --- 1. Anonymous clients -------------------------------------------------------------

/// A body sent a byte at a time is cut at the total deadline, whichever route it goes to,
/// and the API answers others meanwhile (the timer used to restart on every byte).
#[tokio::test]
async fn slow_bodies_are_cut_at_a_total_deadline_and_the_api_stays_up() {
    let app = spawn_app_with(Db::Sqlite, |c| c.http_body_timeout_ms = 1_000)
        .await
        .expect("server");
    let mut slow = Vec::new();
    for path in ["/login", "/api/v1/owners", "/broker/emqx/authn", "/nowhere"] {
        let mut s = TcpStream::connect(app.app.http_addr)
            .await
            .expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.expect("head");
        slow.push(s);
    }
    // Trickle a byte every 200 ms for 6 s: each connection must be closed long before.
    let started = Instant::now();
    let mut open = slow.len();
    while started.elapsed() < Duration::from_secs(6) && open > 0 {
        open = 0;
        for s in &mut slow {
            if s.write_all(b" ").await.is_ok() {
                open += 1;
            }
        }
        assert_eq!(app.get("/healthz", ADMIN_TOKEN).await.status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_millis(100)).await,
            "slow body {i} still open after 6 s"
        );
    }
    assert!(app.limit_hits("http_body_timeout").await >= 1);
}

/// The broker endpoints check their secret before reading a body: a caller without it gets
/// 401 at once, before it has sent its body (it used to be read first, then 400/422).
#[tokio::test]
async fn broker_endpoints_check_the_secret_before_the_body() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.broker_auth_secret = Some(charger_server::secrets::Secret::new("s".repeat(40)))
    })
    .await
    .expect("server");
    for path in ["/broker/emqx/authn", "/broker/emqx/authz"] {
        let mut s = TcpStream::connect(app.app.http_addr)
            .await
            .expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100000\r\n\r\n{{\"clientid\""
        );
        s.write_all(head.as_bytes()).await.expect("head");
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("answered before the body")
            .expect("read");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 401"), "{path}: {text}");
    }
}

/// A broker secret shorter than 32 bytes (or empty, as an environment file gives it) stops
/// the server at start, naming the setting.
#[tokio::test]
async fn a_short_or_empty_broker_secret_is_refused_at_start() {
    for secret in ["", "short-secret"] {
        let dir = charger_e2e::TempDir::new();
        let mut config = charger_server::Config::for_tests(dir.0.clone());
        config.broker_auth_secret = Some(charger_server::secrets::Secret::new(secret));
        let err = charger_server::App::start(config)
            .await
            .err()
            .expect("refused");
        let text = format!("{err:#}");
        assert!(
            text.starts_with("CHARGER_BROKER_AUTH_SECRET:") && text.contains("at least 32"),
            "{text}"
        );
    }
}

/// One source holding every socket it can (REST and MQTT logins) does not lock the others
/// out: its share is capped, and other sources log in and call REST as usual.
#[tokio::test]
async fn one_noisy_source_cannot_lock_out_the_others() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.http_max_connections = 60;
        c.http_max_connections_per_source = 10;
        c.mqtt_max_pending_logins = 60;
        c.mqtt_max_pending_logins_per_source = 10;
    })
    .await
    .expect("server");
    let bundles = fleet(&app, 3).await;
    // The noisy source opens 100 sockets to each listener and sends nothing.
    let mut noise = Vec::new();
    for _ in 0..100 {
        if let Ok(s) = connect_from([127, 0, 0, 1], app.app.http_addr).await {
            noise.push(s);
        }
        if let Ok(s) = connect_from([127, 0, 0, 1], app.app.mqtt_addr).await {
            noise.push(s);
        }
    }
    // Its share is held; the rest of its sockets are closed at once.
    let mut closed = 0;
    for s in &mut noise {
        if closed_within(s, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 150,
        "only {closed} of the noisy source's sockets were refused"
    );
    // Others are served: REST from 127.0.0.2, chargers from 127.0.0.3 and .4.
    let other = rest_from([127, 0, 0, 2]);
    for _ in 0..20 {
        let status = other
            .get(format!("{}/api/v1/owners", app.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("REST from another source")
            .status();
        assert_eq!(status, 200);
    }
    for (i, b) in bundles.iter().enumerate() {
        let from = [127, 0, 0, 3 + u8::try_from(i % 2).expect("small")];
        let (code, _) = login_from(from, &app, b).await.expect("a CONNACK");
        assert_eq!(code, 0, "charger {i} logs in from another source");
    }
    assert!(app.limit_hits("http_connections_per_source").await >= 1);
    assert!(app.limit_hits("mqtt_pending_logins_per_source").await >= 1);
}

/// Console sign-in is throttled per source: failed attempts spend the source's budget, then
/// even the right token is answered 429 from there, and another source still signs in.
#[tokio::test]
async fn console_sign_in_is_throttled_per_source() {
    let app = spawn_app_with(Db::Sqlite, |c| c.login_attempts_per_minute = 3)
        .await
        .expect("server");
    let login = |client: &reqwest::Client, token: &str| {
        client
            .post(format!("{}/login", app.base))
            .form(&[("token", token)])
            .send()
    };
    let here = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for _ in 0..3 {
        let r = login(&here, "cht_wrong").await.expect("login");
        assert_eq!(r.status(), 401);
    }
    let r = login(&here, ADMIN_TOKEN).await.expect("login");
    assert_eq!(r.status(), 429, "the source has spent its attempts");
    let there = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let r = login(&there, ADMIN_TOKEN).await.expect("login");
    assert_eq!(r.status(), 303, "another source signs in");
    assert!(app.limit_hits("login_attempts").await >= 1);
}

// --- 2. A flooding charger or leaked bundle ---------------------------------------------

/// Reconnecting does not refill a charger's request budget, its logins are budgeted by
/// device id, and a charger beside it is served throughout. Counts, not timings: the
/// flooder gets no more than its burst plus its rate over the time it flooded.
#[tokio::test]
async fn a_reconnecting_flooder_gets_its_rate_and_no_more() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let bundles = fleet(&app, 2).await;
    let (flooder, victim) = (&bundles[0], &bundles[1]);
    let started = Instant::now();
    let (mut logins, mut refused_logins, mut sent) = (0, 0, 0u64);
    let mut next_id = 0i64;
    while started.elapsed() < Duration::from_secs(4) {
        let Ok(probe) =
            Probe::connect(Version::V4, Login::device(app.app.mqtt_addr, flooder)).await
        else {
            refused_logins += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        logins += 1;
        for _ in 0..40 {
            next_id += 1;
            let payload = request(flooder, json!(next_id), json!({}));
            probe
                .publish(
                    &format!("acme/req/{}/heartbeat", flooder.device_id),
                    Qos::AtMostOnce,
                    false,
                    payload,
                )
                .await;
            sent += 1;
        }
        probe.disconnect().await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The victim is answered, every time.
    let mut v = Charger::connect(&app, victim).await;
    for _ in 0..20 {
        let (code, _) = v.call("heartbeat", json!({})).await;
        assert_eq!(code, 200);
    }
    // What the server took from the flooder: its kept answers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let taken = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM mqtt_requests WHERE device_id = '{}'",
            flooder.device_id
        ))
        .await;
    let allowed = 40.0 + 20.0 * (elapsed + 1.5);
    assert!(
        (taken as f64) <= allowed,
        "the flooder got {taken} requests through in {elapsed:.1} s (sent {sent}); at most {allowed:.0}"
    );
    assert!(logins <= 10, "{logins} logins within a minute");
    assert!(refused_logins >= 1, "the login budget refused none");
    assert!(app.limit_hits("mqtt_login_rate").await >= 1);
}

/// A will is a request: it draws on the device's budget, and is dropped (counted) when the
/// budget is spent.
#[tokio::test]
async fn wills_draw_on_the_devices_request_budget() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.mqtt_rate = 1;
        c.mqtt_burst = 2;
        c.mqtt_logins_per_minute = 100;
    })
    .await
    .expect("server");
    let b = &app.provision("acme", 1).await[0];
    let before = app.limit_hits("mqtt_will_dropped").await;
    for i in 0..6 {
        let mut s = TcpStream::connect(app.app.mqtt_addr)
            .await
            .expect("connect");
        let mut connect = rumqttc::Connect::new(&b.device_id);
        connect.keep_alive = 30;
        connect.set_login(&b.device_id, &b.mqtt.password);
        let will = rumqttc::LastWill::new(
            format!("acme/req/{}/offline", b.device_id),
            request(b, json!(format!("will-{i}")), json!({})),
            rumqttc::QoS::AtLeastOnce,
            false,
        );
        let mut buf = bytes::BytesMut::new();
        rumqttc::mqttbytes::v4::Connect {
            last_will: Some(will),
            ..connect
        }
        .write(&mut buf)
        .expect("encodes");
        s.write_all(&buf).await.expect("CONNECT");
        let mut ack = [0u8; 4];
        s.read_exact(&mut ack).await.expect("CONNACK");
        assert_eq!(ack[3], 0);
        drop(s); // an abnormal close: the will goes out, if the budget allows
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + WAIT;
    while app.limit_hits("mqtt_will_dropped").await < before + 3 {
        assert!(
            Instant::now() < deadline,
            "wills beyond the budget were not dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --- 3. Exchanges that change credentials --------------------------------------------

/// Six rotations at once: each either wins (201) or changes nothing (409); the version
/// moved once per win, and exactly one bundle handed out works: the last winner's.
#[tokio::test]
async fn concurrent_rotations_change_nothing_when_they_lose() {
    let app = spawn_app_on(default_db()).await.expect("server");
    let b = &app.provision("acme", 1).await[0];
    let path = format!("/api/v1/devices/{}/credentials", b.device_id);
    for round in 0..3 {
        let q = format!(
            "SELECT key_version FROM devices WHERE id = '{}'",
            b.device_id
        );
        let before = app.scalar(&q).await;
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let http = app.http.clone();
                let url = format!("{}{path}", app.base);
                tokio::spawn(async move {
                    let r = http
                        .post(url)
                        .bearer_auth(ADMIN_TOKEN)
                        .send()
                        .await
                        .expect("REST");
                    let status = r.status().as_u16();
                    (status, r.json::<Value>().await.unwrap_or(Value::Null))
                })
            })
            .collect();
        let mut won = Vec::new();
        for call in calls {
            let (status, body) = call.await.expect("joined");
            match status {
                201 => won.push(body),
                409 => assert_eq!(body["error"], "rotated_concurrently"),
                other => panic!("a rotation answered {other}: {body}"),
            }
        }
        assert!(!won.is_empty(), "round {round}: none won");
        assert_eq!(
            app.scalar(&q).await - before,
            i64::try_from(won.len()).expect("small"),
            "round {round}: a refused rotation moved the version"
        );
        let mut working = 0;
        for body in won {
            let nb: FirmwareBundle = serde_json::from_value(body).expect("bundle");
            if let Ok(p) = Probe::connect(Version::V4, Login::device(app.app.mqtt_addr, &nb)).await
            {
                working += 1;
                p.disconnect().await;
            }
        }
        assert_eq!(working, 1, "round {round}: {working} bundles work");
    }
}

/// A rekey whose answer is lost does not strand the charger: within the grace window it
/// logs in with its old credentials, repeats the same request id, reads the kept answer,
/// and comes back with the new ones. The old credentials cannot knock the new
/// connection off.
#[tokio::test]
async fn a_lost_rekey_answer_does_not_strand_the_charger() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let b = &app.provision("acme", 1).await[0];
    let exchange = KeyExchange::new();
    // The rekey goes out, and the charger loses power before reading its answer.
    {
        let probe = Probe::connect(Version::V4, Login::device(app.app.mqtt_addr, b))
            .await
            .expect("connects");
        probe
            .publish(
                &format!("acme/req/{}/rekey", b.device_id),
                Qos::AtLeastOnce,
                false,
                request(b, json!("rk-1"), json!({"pub": exchange.public_base64()})),
            )
            .await;
        // The charger is gone before it reads anything; the server has answered by then.
        let deadline = Instant::now() + WAIT;
        while app
            .scalar(&format!(
                "SELECT COUNT(*) FROM mqtt_requests WHERE device_id = '{}'",
                b.device_id
            ))
            .await
            == 0
        {
            assert!(Instant::now() < deadline, "the rekey was never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // After a reboot: the old password, the exchange's topic only, the same id.
    let mut probe = Probe::connect(Version::V5, Login::device(app.app.mqtt_addr, b))
        .await
        .expect("the old password logs in within the grace window");
    assert!(
        probe
            .subscribe(&format!("acme/res/{}/rekey", b.device_id), Qos::AtLeastOnce)
            .await
    );
    probe
        .publish(
            &format!("acme/req/{}/rekey", b.device_id),
            Qos::AtLeastOnce,
            false,
            request(b, json!("rk-1"), json!({"pub": exchange.public_base64()})),
        )
        .await;
    let (_, payload) = probe.next_publish(WAIT).await.expect("the kept answer");
    let (res, body) = open_on(b, "rekey", &payload);
    assert_eq!(res.code, 200);
    let body = body.expect("sealed with the old key");
    let creds = exchange
        .open(
            &b.device_id,
            "acme",
            body["pub"].as_str().expect("pub"),
            body["credentials"].as_str().expect("credentials"),
        )
        .expect("the charger's own key pair opens it");
    assert!(probe.closed_within(WAIT).await.is_some());
    let mut nb = b.clone();
    nb.mqtt.password = creds.password;
    nb.key = creds.key;
    let mut c = Charger::connect(&app, &nb).await;
    let (code, _) = c.call("heartbeat", json!({})).await;
    assert_eq!(code, 200, "the charger is back with its new credentials");
    // The old password, while the new one is connected: refused, nothing knocked off.
    let old = Probe::connect(Version::V5, Login::device(app.app.mqtt_addr, b)).await;
    assert!(old.is_err(), "superseded credentials displaced the charger");
    let (code, _) = c.call("heartbeat", json!({})).await;
    assert_eq!(code, 200);
}

// --- 4. Money and records ----------------------------------------------------------

/// A live start must be near the server's clock (15 minutes by default): a start dated
/// 2020 is refused naming `started_at` and records nothing; one made offline (with a
/// `local_id`) is recorded, disputed when older than the offline window.
#[tokio::test]
async fn a_live_start_far_behind_the_clock_is_refused() {
    let app = spawn_app_with(Db::Sqlite, |c| c.live_start_max_age_s = 900)
        .await
        .expect("server");
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let long_ago = "2020-01-01T00:00:00Z".parse().expect("time");
    let (code, body) = c
        .call("session-start", start("04A1B2C3", 1, 0, long_ago))
        .await;
    assert_eq!(
        (code, &body["field"]),
        (422, &json!("started_at")),
        "{body}"
    );
    let (code, body) = c
        .call(
            "session-start",
            start("04A1B2C3", 1, 0, Utc::now() - Span::minutes(10)),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let mut offline = start("04A1B2C3", 2, 0, long_ago);
    offline["local_id"] = json!("l-2020");
    let (code, _) = c.call("session-start", offline).await;
    assert_eq!(code, 201, "an offline start is never refused");
    let list = app.get("/api/v1/sessions?status=active", ADMIN_TOKEN).await;
    assert_eq!(list.body["sessions"].as_array().expect("list").len(), 2);
}

/// A disputed session is resolved by an operator: billed with corrected readings (checked
/// like a meter's, priced by its tariff snapshot), recorded with who and when, counted in
/// reports; the second operator gets 409; another disputed one is voided.
#[tokio::test]
async fn a_disputed_session_is_resolved_once_by_an_operator() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let b = &fleet(&app, 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let old = Utc::now() - Span::days(91);
    let mut ids = Vec::new();
    for (i, connector) in [1, 2].into_iter().enumerate() {
        let mut begin = start("04A1B2C3", connector, 0, old);
        begin["local_id"] = json!(format!("d-{i}"));
        assert_eq!(c.call("session-start", begin).await.0, 201);
        let (code, body) = c
            .call(
                "session-stop",
                json!({"local_id": format!("d-{i}"), "meter_stop_wh": 5_000,
                       "stopped_at": ts(old + Span::hours(1)), "reason": "local"}),
            )
            .await;
        assert_eq!((code, &body["disputed"]), (200, &json!(true)));
        ids.push(body["session_id"].as_i64().expect("id"));
    }
    let path = |id: i64| format!("/api/v1/sessions/{id}/resolution");
    // 5 kWh in an hour at 0.30/kWh + 1.20/h + 0.50: 1.50 + 1.20 + 0.50 = 3.20 net.
    let a = app
        .post(
            &path(ids[0]),
            ADMIN_TOKEN,
            json!({"action": "bill", "meter_stop_wh": 5_000, "note": "meter checked"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["status"], "stopped");
    assert_eq!(a.body["net"], "3.20");
    assert_eq!(a.body["resolution"]["action"], "billed");
    assert_eq!(a.body["resolution"]["by"], "admin");
    let again = app
        .post(&path(ids[0]), ADMIN_TOKEN, json!({"action": "void"}))
        .await;
    assert_error(&again, 409, "not_disputed");
    let a = app
        .post(&path(ids[1]), ADMIN_TOKEN, json!({"action": "void"}))
        .await;
    assert_eq!(
        (a.status, &a.body["status"]),
        (200, &json!("void")),
        "{a:?}"
    );
    let from = ts(old - Span::days(1)).replace('+', "%2B");
    let to = ts(Utc::now() + Span::days(1)).replace('+', "%2B");
    let report = app
        .get(
            &format!("/api/v1/reports/billing?from={from}&to={to}&group_by=device"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(report.body["totals"][0]["sessions"], 1, "{:?}", report.body);
    assert_eq!(report.body["totals"][0]["net"], "3.20");
}

/// The admin's report by tag keeps two owners' cards with one uid apart.
#[tokio::test]
async fn the_admin_report_by_tag_keeps_two_owners_cards_apart() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let acme = &fleet(&app, 1).await[0];
    let beta_token = app.owner_with_token("beta").await;
    let beta = &app.provision("beta", 1).await[0];
    for body in [
        json!({"id": "b-std", "currency": "EUR", "energy_per_kwh": "1", "time_per_hour": "0", "session_fee": "0", "tax_rate": "0", "default": true}),
    ] {
        assert_eq!(
            app.post("/api/v1/tariffs", &beta_token, body).await.status,
            201
        );
    }
    assert_eq!(
        app.post("/api/v1/tags", &beta_token, json!({"uid": "04A1B2C3"}))
            .await
            .status,
        201
    );
    for b in [acme, beta] {
        let mut c = Charger::connect(&app, b).await;
        let t0 = Utc::now() - Span::minutes(5);
        let (_, body) = c.call("session-start", start("04A1B2C3", 1, 0, t0)).await;
        let id = body["session_id"].as_i64().expect("id");
        let (code, _) = c
            .call("session-stop", json!({"session_id": id, "meter_stop_wh": 1_000, "stopped_at": ts(Utc::now()), "reason": "local"}))
            .await;
        assert_eq!(code, 200);
    }
    let from = ts(Utc::now() - Span::days(1)).replace('+', "%2B");
    let to = ts(Utc::now() + Span::days(1)).replace('+', "%2B");
    let q = format!("/api/v1/reports/billing?from={from}&to={to}&group_by=tag");
    let admin = app.get(&q, ADMIN_TOKEN).await;
    let groups: Vec<&str> = admin.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["group"].as_str().expect("group"))
        .collect();
    assert_eq!(groups, ["acme/04A1B2C3", "beta/04A1B2C3"]);
    let own = app.get(&q, &beta_token).await;
    assert_eq!(own.body["rows"][0]["group"], "04A1B2C3");
    assert_eq!(own.body["rows"].as_array().expect("rows").len(), 1);
}

/// A session that started before a sale stays the seller's: an offline start replayed after
/// the claim, dated before it, is the seller's, priced by the seller's tariff, with the
/// seller's card; since the buyer's charger could invent such sessions, it is disputed
/// until the seller's operator resolves it. And the buyer cannot read the seller's kept
/// answers by repeating the seller's request ids.
#[tokio::test]
async fn a_session_started_before_a_sale_stays_the_sellers() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let b = &fleet(&app, 1).await[0];
    let beta = app.owner_with_token("beta").await;
    let a = app
        .post("/api/v1/tariffs", &beta, json!({"id": "b-std", "currency": "CZK", "energy_per_kwh": "9", "time_per_hour": "0", "session_fee": "0", "tax_rate": "0", "default": true}))
        .await;
    assert_eq!(a.status, 201);
    let before_sale = Utc::now() - Span::minutes(30);
    let a = app
        .post(
            &format!("/api/v1/devices/{}/transfers", b.device_id),
            ADMIN_TOKEN,
            json!({"to": "beta"}),
        )
        .await;
    let offer = a.body["id"].as_str().expect("id").to_owned();
    let a = app
        .post(
            &format!("/api/v1/transfers/{offer}/accept"),
            &beta,
            Value::Null,
        )
        .await;
    let code_text = a.body["code"].as_str().expect("code").to_owned();
    let mut c = Charger::connect(&app, b).await;
    // Under the seller: its tag list, kept for request id 1.
    let (code, list) = c.call("local-list", json!({"version": 0})).await;
    assert_eq!(code, 200);
    assert_eq!(list["tags"][0]["tag"], "04A1B2C3");
    let exchange = KeyExchange::new();
    let (code, body) = c
        .call(
            "ownership-claim",
            json!({"code": code_text, "pub": exchange.public_base64()}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let creds = exchange
        .open(
            &b.device_id,
            "beta",
            body["pub"].as_str().expect("pub"),
            body["credentials"].as_str().expect("c"),
        )
        .expect("opens");
    let mut nb = b.clone();
    nb.owner = "beta".into();
    nb.mqtt.password = creds.password;
    nb.key = creds.key;
    let mut c = Charger::connect(&app, &nb).await;
    // The buyer repeats the seller's request id 1: not the seller's answer.
    let (code, body) = c
        .call_with_id(json!(1), "local-list", json!({"version": 0}))
        .await;
    assert_eq!(
        (code, &body["error"]),
        (409, &json!("request_id_reused")),
        "{body}"
    );
    assert!(!body.to_string().contains("04A1B2C3"));
    c.next_id = 100;
    // The queue from before the sale, replayed now.
    let mut begin = start("04A1B2C3", 1, 0, before_sale);
    begin["local_id"] = json!("pre-sale");
    let (code, body) = c.call("session-start", begin).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["tariff"]["currency"], "EUR", "the seller's tariff");
    let (code, body) = c
        .call("session-stop", json!({"local_id": "pre-sale", "meter_stop_wh": 1_000, "stopped_at": ts(before_sale + Span::minutes(10)), "reason": "local"}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["disputed"], true, "{body}");
    let id = body["session_id"].as_i64().expect("id");
    let s = app
        .get(&format!("/api/v1/sessions/{id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(s.body["owner"], "acme");
    assert!(
        s.body["dispute"]
            .as_str()
            .is_some_and(|d| d.contains("moved")),
        "{:?}",
        s.body
    );
    assert_eq!(
        app.get(&format!("/api/v1/sessions/{id}"), &beta)
            .await
            .status,
        404
    );
    // The seller's operator bills it as recorded: 1 kWh at 0.30 + 10 min at 1.20/h + 0.50.
    let a = app
        .post(
            &format!("/api/v1/sessions/{id}/resolution"),
            ADMIN_TOKEN,
            json!({"action": "bill"}),
        )
        .await;
    assert_eq!((a.status, &a.body["net"]), (200, &json!("1.00")), "{a:?}");
}

/// One open offer per charger, a cap on open offers per receiver id (whether it exists or
/// not) and per sender and receiver, and the list is paged.
#[tokio::test]
async fn offers_are_one_per_charger_capped_per_receiver_and_paged() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.transfers_per_receiver = 3;
        c.transfers_per_pair = 2;
    })
    .await
    .expect("server");
    let bundles = app.provision("acme", 6).await;
    let zed = app.provision("zed", 2).await;
    let offer = |device: &str, to: &str| {
        let app = &app;
        let (device, to) = (device.to_owned(), to.to_owned());
        async move {
            app.post(
                &format!("/api/v1/devices/{device}/transfers"),
                ADMIN_TOKEN,
                json!({"to": to}),
            )
            .await
        }
    };
    assert_eq!(offer(&bundles[0].device_id, "beta").await.status, 201);
    assert_error(
        &offer(&bundles[0].device_id, "gamma").await,
        409,
        "transfer_open",
    );
    assert_eq!(offer(&bundles[1].device_id, "beta").await.status, 201);
    // A sender may not fill the receiver's inbox alone...
    assert_error(
        &offer(&bundles[2].device_id, "beta").await,
        409,
        "too_many_offers",
    );
    // ...and the inbox has its own cap, whoever sends.
    assert_eq!(offer(&zed[0].device_id, "beta").await.status, 201);
    assert_error(
        &offer(&zed[1].device_id, "beta").await,
        409,
        "receiver_inbox_full",
    );
    // The same for an owner id nobody has.
    for b in &bundles[3..5] {
        assert_eq!(offer(&b.device_id, "ghost").await.status, 201);
    }
    assert_error(
        &offer(&bundles[5].device_id, "ghost").await,
        409,
        "too_many_offers",
    );
    // Five offers, pages of three.
    let first = app.get("/api/v1/transfers?limit=3", ADMIN_TOKEN).await;
    assert_eq!(first.body["transfers"].as_array().expect("page").len(), 3);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let second = app
        .get(
            &format!("/api/v1/transfers?limit=3&cursor={cursor}"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(second.body["transfers"].as_array().expect("page").len(), 2);
    assert!(second.body["next_cursor"].is_null());
}

// --- 5. The contract ---------------------------------------------------------------

/// Forty requests in flight with every answer acknowledged at once: forty answers, in every
/// burst (answers beyond the window used to be dropped).
#[tokio::test]
async fn a_burst_of_forty_gets_forty_answers() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.mqtt_rate = 1_000;
        c.mqtt_burst = 1_000;
    })
    .await
    .expect("server");
    let b = &app.provision("acme", 1).await[0];
    let mut probe = Probe::connect(Version::V4, Login::device(app.app.mqtt_addr, b))
        .await
        .expect("connects");
    assert!(
        probe
            .subscribe(&format!("acme/res/{}/+", b.device_id), Qos::AtLeastOnce)
            .await
    );
    let mut id = 0;
    for burst in 0..5 {
        for _ in 0..40 {
            id += 1;
            probe
                .publish(
                    &format!("acme/req/{}/heartbeat", b.device_id),
                    Qos::AtLeastOnce,
                    false,
                    request(b, json!(id), json!({})),
                )
                .await;
        }
        let mut answers = 0;
        while answers < 40 {
            match probe.next_publish(WAIT).await {
                Some(_) => answers += 1,
                None => panic!("burst {burst}: {answers} answers of 40"),
            }
        }
    }
}

/// A tag import over the body limit is answered 413 as JSON, like every other error.
#[tokio::test]
async fn an_oversized_tag_import_is_answered_in_json() {
    let app = spawn_app_with(Db::Sqlite, |c| c.http_max_body = 1024)
        .await
        .expect("server");
    let r = app
        .http
        .post(format!("{}/api/v1/tags/import", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/csv")
        .body(format!("uid\n{}", "0A0B0C0D\n".repeat(400)))
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.expect("a JSON body");
    assert_eq!(body["error"], "payload_too_large");
}

// --- 6. Sessions and tokens on the console and REST -----------------------------------

/// A token holds at most CHARGER_CONSOLE_SESSIONS_PER_TOKEN console sessions: signing in
/// again ends the oldest, so a valid token cannot fill the sessions table.
#[tokio::test]
async fn a_token_holds_a_bounded_number_of_console_sessions() {
    let app = spawn_app_with(Db::Sqlite, |c| c.console_sessions_per_token = 2)
        .await
        .expect("server");
    let token = app.owner_with_token("acme").await;
    let first = app.console_sign_in(&token).await;
    let second = app.console_sign_in(&token).await;
    assert_eq!(app.console_get(&first, "/").await.0, 200);
    let third = app.console_sign_in(&token).await;
    assert_eq!(
        app.console_get(&first, "/").await.0,
        303,
        "the oldest ended"
    );
    assert_eq!(app.console_get(&second, "/").await.0, 200);
    assert_eq!(app.console_get(&third, "/").await.0, 200);
    // Another token's sessions are its own.
    let other = app.console_sign_in(ADMIN_TOKEN).await;
    assert_eq!(app.console_get(&second, "/").await.0, 200);
    assert_eq!(app.console_get(&other, "/").await.0, 200);
    let rows = app.scalar("SELECT COUNT(*) FROM console_sessions").await;
    assert_eq!(rows, 3);
    assert!(app.limit_hits("console_sessions_ended").await >= 1);
}

/// The CSRF token on a console page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().expect("value").to_owned()
}

/// Signing out ends the session on the server: a copy of the cookie taken before is
/// refused afterwards.
#[tokio::test]
async fn signing_out_ends_the_console_session_on_the_server() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let cookie = app.console_sign_in(ADMIN_TOKEN).await;
    let (status, page) = app.console_get(&cookie, "/").await;
    assert_eq!(status, 200);
    let copy = cookie.clone();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/logout", app.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_of(&page))])
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 303);
    let (status, _) = app.console_get(&copy, "/").await;
    assert_eq!(status, 303, "the copied cookie opens nothing");
}

/// Tokens are listed (name, creation, last use; never the token) and revoked: a revoked
/// token is refused at once, over REST and in the console sessions it signed in.
#[tokio::test]
async fn a_revoked_token_stops_at_once_and_ends_its_console_sessions() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    app.owner_with_token("acme").await;
    let a = app
        .post(
            "/api/v1/owners/acme/tokens",
            ADMIN_TOKEN,
            json!({"name": "billing export"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let (token, id) = (
        a.body["token"].as_str().expect("token").to_owned(),
        a.body["id"].as_str().expect("id").to_owned(),
    );
    assert_eq!(app.get("/api/v1/devices", &token).await.status, 200);
    let cookie = app.console_sign_in(&token).await;
    let listed = app.get("/api/v1/owners/acme/tokens", &token).await;
    let mine = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(mine["name"], "billing export");
    assert!(mine["last_used_at"].is_string(), "{mine}");
    assert!(mine.get("token").is_none() && mine.get("token_hash").is_none());
    let other = app.owner_with_token("beta").await;
    assert_eq!(
        app.delete(&format!("/api/v1/owners/acme/tokens/{id}"), &other)
            .await
            .status,
        404
    );
    assert_eq!(
        app.delete(&format!("/api/v1/owners/acme/tokens/{id}"), &token)
            .await
            .status,
        204
    );
    assert_eq!(app.get("/api/v1/devices", &token).await.status, 401);
    let (status, _) = app.console_get(&cookie, "/").await;
    assert_eq!(status, 303, "the console session ended with its token");
}

/// Another site cannot sign a visitor in (login CSRF): a sign-in posted from another origin
/// is refused.
#[tokio::test]
async fn another_site_cannot_sign_a_visitor_in() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/login", app.base))
        .header("origin", "https://evil.example")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
}

/// Commands and rotations are recorded with their principal and outcome, and the charger's
/// page shows them; charger-provided text cannot reorder what follows it.
#[tokio::test]
async fn actions_on_a_charger_are_recorded_and_shown_with_their_principal() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let token = app.owner_with_token("acme").await;
    let b = &app.provision("acme", 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let (code, _) = c
        .call(
            "boot",
            json!({"firmware": "1.0\u{202E}evil", "model": "M", "connectors": 1}),
        )
        .await;
    assert_eq!(code, 200);
    // An unlock the charger rejects, through the owner's token.
    let rest = {
        let http = app.http.clone();
        let url = format!(
            "{}/api/v1/devices/{}/commands/unlock",
            app.base, b.device_id
        );
        let token = token.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"connector": 1}))
                .send()
                .await
                .expect("REST")
        })
    };
    let (_, payload) = c.probe.next_publish(WAIT).await.expect("the command");
    let (envelope, _) = open_on(b, "unlock", &payload);
    let id = serde_json::to_value(envelope.id.expect("id")).expect("id");
    c.probe
        .publish(
            &format!("acme/req/{}/unlock", b.device_id),
            Qos::AtLeastOnce,
            false,
            request(b, id, json!({"status": "rejected", "reason": "faulted"})),
        )
        .await;
    assert_eq!(rest.await.expect("joined").status(), 200);
    let cookie = app.console_sign_in(&token).await;
    let (status, page) = app
        .console_get(&cookie, &format!("/chargers/{}", b.device_id))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("command:unlock"), "the command is listed");
    assert!(page.contains("owner:acme"), "with its principal");
    assert!(
        page.contains("rejected (faulted)"),
        "and the charger's answer"
    );
    assert!(
        !page.contains('\u{202E}'),
        "a right-to-left override reached the page"
    );
    assert!(page.contains("1.0\u{FFFD}evil"));
}

/// Under HTTPS every answer carries HSTS; billing CSV downloads are never cached.
#[tokio::test]
async fn https_answers_carry_hsts_and_csv_downloads_are_not_cached() {
    let ca = TestCa::new();
    let (cert, key) = (ca.cert.clone(), ca.key.clone());
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
    })
    .await
    .expect("server");
    let head = ca
        .https_head(app.app.http_addr, "/healthz")
        .await
        .expect("an HTTPS answer");
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age="),
        "{head}"
    );
    let plain = spawn_app_on(Db::Sqlite).await.expect("server");
    let from = ts(Utc::now() - Span::days(1)).replace('+', "%2B");
    let to = ts(Utc::now() + Span::days(1)).replace('+', "%2B");
    let r = plain
        .http
        .get(format!(
            "{}/api/v1/reports/billing?from={from}&to={to}&group_by=day&format=csv",
            plain.base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("CSV");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or("")),
        Some("no-store")
    );
}

// --- Found by the review of this round's changes ---------------------------------------

/// Whoever holds superseded credentials cannot spend the charger's own login budget: after
/// a dozen logins with the old password, the charger still logs in with its new one.
#[tokio::test]
async fn superseded_credentials_cannot_spend_the_chargers_login_budget() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let b = &app.provision("acme", 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let exchange = KeyExchange::new();
    let (code, body) = c
        .call("rekey", json!({"pub": exchange.public_base64()}))
        .await;
    assert_eq!(code, 200);
    assert!(c.probe.closed_within(WAIT).await.is_some());
    let creds = exchange
        .open(
            &b.device_id,
            "acme",
            body["pub"].as_str().expect("pub"),
            body["credentials"].as_str().expect("c"),
        )
        .expect("opens");
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..12 {
        match Probe::connect(Version::V4, Login::device(app.app.mqtt_addr, b)).await {
            Ok(p) => {
                ok += 1;
                p.disconnect().await;
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        ok <= 10 && refused >= 2,
        "{ok} old logins, {refused} refused"
    );
    let mut nb = b.clone();
    nb.mqtt.password = creds.password;
    nb.key = creds.key;
    let mut c = Charger::connect(&app, &nb).await;
    c.next_id = 1_000;
    assert_eq!(c.call("heartbeat", json!({})).await.0, 200);
}

/// Console sign-in attempts made at once cannot all pass on one budget token.
#[tokio::test]
async fn concurrent_sign_in_attempts_share_one_budget() {
    let app = spawn_app_with(Db::Sqlite, |c| c.login_attempts_per_minute = 3)
        .await
        .expect("server");
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let url = format!("{}/login", app.base);
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .form(&[("token", format!("cht_wrong_{i}"))])
                    .send()
                    .await
                    .expect("login")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut checked = 0;
    for a in attempts {
        if a.await.expect("joined") == 401 {
            checked += 1;
        }
    }
    assert!(
        checked <= 3,
        "{checked} attempts were checked; the budget is 3"
    );
}

/// An anonymous console POST is answered without its body being read, and a signed-in
/// user's console form is capped small (the tag import excepted).
#[tokio::test]
async fn console_forms_are_read_only_for_a_session_and_kept_small() {
    let app = spawn_app_on(Db::Sqlite).await.expect("server");
    let b = &app.provision("acme", 1).await[0];
    // Anonymous: a redirect to sign in, at once, before a 2 MB body is sent.
    let mut s = TcpStream::connect(app.app.http_addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /chargers/{}/credentials HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 2000000\r\n\r\ncsrf=",
        b.device_id
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("answered before the body")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 303"));
    // Signed in: a 100 KB form is over the console's limit.
    let cookie = app.console_sign_in(ADMIN_TOKEN).await;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/chargers/{}/credentials", app.base, b.device_id))
        .header("cookie", &cookie)
        .form(&[("csrf", "x".repeat(100_000))])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 413);
}
