//! The HTTP authentication and authorization an external EMQX 5 broker calls, with
//! requests shaped as EMQX sends them (the JSON bodies its templates make from
//! `${clientid}`, `${username}`, `${password}`, `${topic}`, `${action}`, and the secret in
//! a request header): the same logins and ACL as the embedded broker.

use charger_e2e::{default_db, spawn_app, spawn_app_with};
use serde_json::{json, Value};

const SECRET: &str = "broker-secret-for-tests-0123456789abcdef";

async fn call(
    app: &charger_e2e::TestApp,
    path: &str,
    secret: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = app.http.post(format!("{}{path}", app.base)).json(&body);
    if let Some(s) = secret {
        req = req.bearer_auth(s);
    }
    let res = req.send().await.expect("HTTP");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn emqx_gets_each_chargers_login_and_acl_from_the_server() {
    let app = spawn_app_with(default_db(), |c| {
        c.broker_auth_secret = Some(charger_server::secrets::Secret::new(SECRET));
    })
    .await
    .expect("server");
    let b = &app.provision("acme", 2).await[0];
    let other = "acme-00001";
    let login =
        json!({"clientid": b.device_id, "username": b.mqtt.username, "password": b.mqtt.password});

    // Only the broker, with its secret, may ask.
    assert_eq!(
        call(&app, "/broker/emqx/authn", None, login.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        call(&app, "/broker/emqx/authn", Some("wrong"), login.clone())
            .await
            .0,
        401
    );

    let (status, body) = call(&app, "/broker/emqx/authn", Some(SECRET), login).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&body["result"], &body["is_superuser"]),
        (&json!("allow"), &json!(false))
    );
    let acl = body["acl"].as_array().expect("acl");
    let has = |permission: &str, action: &str, topic: String| {
        acl.iter().any(|r| {
            r["permission"] == permission && r["action"] == action && r["topic"] == topic.as_str()
        })
    };
    assert!(has(
        "allow",
        "publish",
        format!("acme/req/{}/boot", b.device_id)
    ));
    assert!(has(
        "allow",
        "publish",
        format!("acme/req/{}/remote-stop", b.device_id)
    ));
    assert!(has(
        "allow",
        "subscribe",
        format!("eq acme/res/{}/+", b.device_id)
    ));
    assert!(!acl
        .iter()
        .any(|r| r["permission"] == "allow"
            && r["topic"].as_str().is_some_and(|t| t.contains(other))));
    assert_eq!(
        acl.last().expect("a last rule"),
        &json!({"permission": "deny", "action": "all", "topic": "#"})
    );

    // A wrong password, someone else's client id, an unknown charger: denied.
    for (clientid, username, password) in [
        (b.device_id.as_str(), b.mqtt.username.as_str(), "wrong"),
        (other, b.mqtt.username.as_str(), b.mqtt.password.as_str()),
        ("nobody", "nobody", "x"),
    ] {
        let (status, body) = call(
            &app,
            "/broker/emqx/authn",
            Some(SECRET),
            json!({"clientid": clientid, "username": username, "password": password}),
        )
        .await;
        assert_eq!(
            (status, &body["result"]),
            (200, &json!("deny")),
            "{clientid}"
        );
    }

    // Authorization, for brokers that ask per publish and subscribe.
    for (topic, action, result) in [
        (format!("acme/req/{}/boot", b.device_id), "publish", "allow"),
        (
            format!("acme/req/{}/teleport", b.device_id),
            "publish",
            "deny",
        ),
        (format!("acme/req/{other}/boot"), "publish", "deny"),
        (format!("acme/res/{}/boot", b.device_id), "publish", "deny"),
        (format!("acme/res/{}/+", b.device_id), "subscribe", "allow"),
        ("#".to_owned(), "subscribe", "deny"),
        ("$share/g/+/req/+/+".to_owned(), "subscribe", "deny"),
        (format!("acme/req/{}/boot", b.device_id), "all", "deny"),
    ] {
        let (status, body) = call(
            &app,
            "/broker/emqx/authz",
            Some(SECRET),
            json!({"clientid": b.device_id, "username": b.mqtt.username, "topic": topic, "action": action}),
        )
        .await;
        assert_eq!(
            (status, &body["result"]),
            (200, &json!(result)),
            "{action} {topic}"
        );
    }
}

#[tokio::test]
async fn without_a_broker_secret_every_call_is_refused() {
    let app = spawn_app().await;
    let (status, _) = call(
        &app,
        "/broker/emqx/authn",
        Some(SECRET),
        json!({"clientid": "x", "username": "x", "password": "x"}),
    )
    .await;
    assert_eq!(status, 401);
}
