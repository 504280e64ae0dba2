//! The REST listener's limits, tried the way a hostile or broken client would: HTTPS with
//! the configured certificate, connections that never finish their headers, more
//! connections than allowed, bodies over the limit, and error messages that would echo
//! what they were sent.

use std::time::{Duration, Instant};

use charger_e2e::mqtt::Charger;
use charger_e2e::{closed_within, default_db, spawn_app_with, TestCa, ADMIN_TOKEN};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_rest_api_speaks_https_with_the_configured_certificate() {
    let ca = TestCa::new();
    let (cert, key) = (ca.cert.clone(), ca.key.clone());
    let app = spawn_app_with(default_db(), |c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
    })
    .await
    .expect("server");
    let (status, body) = ca
        .https_get(app.app.http_addr, "/api/v1/owners", ADMIN_TOKEN)
        .await
        .expect("an HTTPS answer");
    assert_eq!(status, 200, "{body}");
    let (status, _) = ca
        .https_get(app.app.http_addr, "/api/v1/owners", "cht_wrong")
        .await
        .expect("an HTTPS answer");
    assert_eq!(status, 401);
    // Plain HTTP on the same port gets no HTTP answer: tokens never cross in clear text.
    let plain = app
        .http
        .get(format!("{}/healthz", app.base))
        .timeout(WAIT)
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| r.status() != 200),
        "{plain:?}"
    );
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed() {
    let app = spawn_app_with(default_db(), |c| c.http_header_timeout_ms = 300)
        .await
        .expect("server");
    let mut socks = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(app.app.http_addr)
            .await
            .expect("connect");
        if i % 2 == 0 {
            // Most of a request, never finished.
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .expect("write");
        }
        socks.push(s);
    }
    for (i, s) in socks.iter_mut().enumerate() {
        assert!(closed_within(s, WAIT).await, "connection {i} still open");
    }
    assert!(app.limit_hits("http_header_timeout").await >= 20);
    // The server still answers.
    assert_eq!(app.get("/healthz", ADMIN_TOKEN).await.status, 200);
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once_not_queued() {
    let app = spawn_app_with(default_db(), |c| c.http_max_connections = 4)
        .await
        .expect("server");
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            TcpStream::connect(app.app.http_addr)
                .await
                .expect("connect"),
        );
    }
    // Give the server a moment to take all four (polling: the fifth is refused).
    let deadline = Instant::now() + WAIT;
    loop {
        let mut fifth = TcpStream::connect(app.app.http_addr)
            .await
            .expect("connect");
        fifth
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(WAIT, fifth.read(&mut buf)).await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            break;
        }
        assert!(Instant::now() < deadline, "the fifth connection was served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
    // Slots come back: served again.
    let deadline = Instant::now() + WAIT;
    while app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.limit_hits("http_connections").await >= 1);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_messages_never_echo_input() {
    let app = spawn_app_with(default_db(), |c| c.http_max_body = 8192)
        .await
        .expect("server");
    let big = json!({"id": "acme", "name": "x".repeat(10_000)});
    let a = app.post("/api/v1/owners", ADMIN_TOKEN, big).await;
    assert_eq!(
        (a.status, &a.body["error"]),
        (413, &json!("payload_too_large")),
        "{a:?}"
    );

    // A value of 7,000 characters where an enum is expected: the 422 does not quote it.
    let a = app
        .post(
            "/api/v1/tags",
            ADMIN_TOKEN,
            json!({"uid": "04A1B2C3", "owner": "acme", "role": "r".repeat(7_000)}),
        )
        .await;
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.body.to_string().len() < 600,
        "{}",
        a.body.to_string().len()
    );

    // The same over MQTT, where the answer is also kept for repeats (9,000 characters:
    // the test client's own packet limit is 10 KiB).
    let b = &app.provision("acme", 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let (code, body) = c
        .call(
            "status",
            json!({"connector": 1, "state": "s".repeat(9_000)}),
        )
        .await;
    assert_eq!(code, 422);
    assert!(body.to_string().len() < 600, "{}", body.to_string().len());
}
