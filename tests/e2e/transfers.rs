//! Ownership transfer with the receiver's consent and new credentials, the charger's own
//! `rekey`, and the operator's rotation: through REST for the owners and MQTT for the
//! charger, with the old bundle tried the way its former holder would.

use std::time::Duration;

use charger_e2e::mqtt::{request, Charger, Login, Probe, Qos, Version};
use charger_e2e::{assert_error, on_both_databases, spawn_app_on, TestApp, ADMIN_TOKEN};
use charger_protocol::{FirmwareBundle, KeyExchange};
use chrono::{Duration as Span, Utc};
use serde_json::{json, Value};

use super::charging::{fleet, start, ts};

const WAIT: Duration = Duration::from_secs(10);

on_both_databases!(spawn_app_on =>
    a_transfer_needs_the_receivers_consent_and_gives_the_charger_new_credentials,
    offers_can_be_declined_and_withdrawn_and_are_seen_only_by_their_two_owners,
    a_charger_rotates_its_own_credentials_with_rekey,
    an_operator_rotation_refuses_the_old_bundle_at_once,
);

/// Opens a claim's or rekey's answer with the charger's exchange: its new bundle.
fn new_bundle(old: &FirmwareBundle, exchange: &KeyExchange, body: &Value) -> FirmwareBundle {
    let owner = body["owner"].as_str().expect("owner");
    let creds = exchange
        .open(
            &old.device_id,
            owner,
            body["pub"].as_str().expect("pub"),
            body["credentials"].as_str().expect("credentials"),
        )
        .expect("the credentials open with the charger's key pair");
    let mut b = old.clone();
    b.owner = owner.to_owned();
    b.mqtt.password = creds.password;
    b.key = creds.key;
    b
}

/// The old bundle's holder cannot log in any more.
async fn login_refused(app: &TestApp, b: &FirmwareBundle) {
    let refused = Probe::connect(Version::V5, Login::device(app.app.mqtt_addr, b)).await;
    assert!(refused.is_err(), "the old password is refused");
}

/// After a claim or rekey, the old bundle logs in for the grace window only to repeat that
/// exchange (request `id` on `endpoint`, under `user`): any other subscription or request
/// is refused, and the repeat gets the kept answer (`kept`), after which the connection
/// is closed. Returns nothing the old bundle's holder could use.
async fn old_bundle_only_repeats(
    app: &TestApp,
    b: &FirmwareBundle,
    user: &str,
    endpoint: &str,
    id: i64,
    kept: &Value,
) {
    let mut probe = Probe::connect(Version::V5, Login::device(app.app.mqtt_addr, b))
        .await
        .expect("the superseded password logs in within the grace window");
    let dev = &b.device_id;
    assert!(
        !probe
            .subscribe(&format!("{user}/res/{dev}/+"), Qos::AtLeastOnce)
            .await,
        "no wildcard for superseded credentials"
    );
    assert!(
        !probe
            .subscribe(&format!("{user}/res/{dev}/boot"), Qos::AtLeastOnce)
            .await,
        "no other answer topic"
    );
    assert!(
        probe
            .subscribe(&format!("{user}/res/{dev}/{endpoint}"), Qos::AtLeastOnce)
            .await,
        "the exchange's own answer topic"
    );
    let mut c = Charger {
        probe,
        b: b.clone(),
        user: user.to_owned(),
        next_id: 50_000,
        v2: false,
    };
    // Another request on the same endpoint: 401, nothing done.
    let (code, _) = c
        .call(endpoint, json!({"pub": KeyExchange::new().public_base64()}))
        .await;
    assert_eq!(code, 401, "only the exchange itself may be repeated");
    // The repeat: the kept answer, then the connection closes.
    let (code, body) = c
        .call_with_id(
            json!(id),
            endpoint,
            json!({"pub": KeyExchange::new().public_base64()}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(&body, kept, "the kept answer, unchanged");
    assert!(c.probe.closed_within(WAIT).await.is_some());
}

async fn offer(app: &TestApp, token: &str, device: &str, to: &str) -> charger_e2e::Answer {
    app.post(
        &format!("/api/v1/devices/{device}/transfers"),
        token,
        json!({ "to": to }),
    )
    .await
}

async fn a_transfer_needs_the_receivers_consent_and_gives_the_charger_new_credentials(
    app: TestApp,
) {
    let bundles = fleet(&app, 2).await;
    let b = &bundles[0];
    let acme = {
        let a = app
            .post("/api/v1/owners/acme/tokens", ADMIN_TOKEN, Value::Null)
            .await;
        a.body["token"].as_str().expect("token").to_owned()
    };
    let beta = app.owner_with_token("beta").await;
    app.post(
        "/api/v1/tags",
        &beta,
        json!({"uid": "0BE7A001", "role": "driver"}),
    )
    .await;
    let mut c = Charger::connect(&app, b).await;
    let (_, body) = c
        .call(
            "session-start",
            start("04A1B2C3", 1, 0, Utc::now() - Span::minutes(30)),
        )
        .await;
    let session = body["session_id"].as_i64().expect("session");
    // The charger has a local list under acme, at some version.
    let (_, list) = c.call("local-list", json!({"version": 0})).await;
    let acme_version = list["version"].as_i64().expect("version");

    // An offer to an existing owner and one to nobody look alike: no owner ids leak.
    let real = offer(&app, &acme, &b.device_id, "beta").await;
    assert_eq!(real.status, 201, "{real:?}");
    let ghost = offer(&app, &acme, &bundles[1].device_id, "nobody-at-all").await;
    assert_eq!(ghost.status, 201, "{ghost:?}");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&real.body), keys(&ghost.body));
    assert_eq!(real.body["status"], "offered");
    assert!(
        real.body.get("code").is_none(),
        "the sender never sees a code"
    );
    let id = real.body["id"].as_str().expect("id").to_owned();

    // Nothing can be claimed before the receiver accepts; only the receiver may accept.
    let exchange = KeyExchange::new();
    let claim = |code: &str| json!({"code": code, "pub": exchange.public_base64()});
    let (code, body) = c.call("ownership-claim", claim("guess")).await;
    assert_eq!((code, &body["error"]), (403, &json!("bad_code")));
    let accept = format!("/api/v1/transfers/{id}/accept");
    assert_error(
        &app.post(&accept, &acme, Value::Null).await,
        403,
        "not_receiver",
    );
    assert_error(
        &app.post(&accept, ADMIN_TOKEN, Value::Null).await,
        403,
        "not_receiver",
    );
    let incoming = app.get("/api/v1/transfers", &beta).await;
    assert_eq!(incoming.status, 200, "{incoming:?}");
    let listed: Vec<&Value> = incoming.body["transfers"]
        .as_array()
        .expect("list")
        .iter()
        .collect();
    assert_eq!(listed.len(), 1, "beta sees only its offer: {listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0].get("code").is_none());
    let accepted = app.post(&accept, &beta, Value::Null).await;
    assert_eq!(accepted.status, 200, "{accepted:?}");
    assert_eq!(accepted.body["status"], "accepted");
    let code_text = accepted.body["code"].as_str().expect("code").to_owned();
    assert_error(
        &app.post(&accept, &beta, Value::Null).await,
        409,
        "transfer_closed",
    );
    let seen_by_sender = app.get(&format!("/api/v1/transfers/{id}"), &acme).await;
    assert!(
        seen_by_sender.body.get("code").is_none(),
        "{seen_by_sender:?}"
    );

    // The claim needs the charger's X25519 public key.
    let (code, body) = c.call("ownership-claim", json!({"code": code_text})).await;
    assert_eq!((code, &body["field"]), (422, &json!("pub")));
    let (code, body) = c
        .call("ownership-claim", json!({"code": code_text, "pub": "AAAA"}))
        .await;
    assert_eq!((code, &body["field"]), (422, &json!("pub")));

    // The claim: answered on the old topic, sealed with the old key (the old bundle's
    // holder can read the envelope), but the credentials inside open only with the
    // charger's own X25519 key.
    let claim_id = c.next_id;
    let (code, body) = c.call("ownership-claim", claim(&code_text)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["owner"], "beta");
    assert!(
        KeyExchange::new()
            .open(
                &b.device_id,
                "beta",
                body["pub"].as_str().expect("pub"),
                body["credentials"].as_str().expect("credentials"),
            )
            .is_err(),
        "a recorded exchange gives nothing away"
    );
    let nb = new_bundle(b, &exchange, &body);
    assert_ne!(nb.key, b.key);
    assert_ne!(nb.mqtt.password, b.mqtt.password);
    assert!(
        c.probe.closed_within(WAIT).await.is_some(),
        "the connection is closed once the answer is out"
    );

    // The seller's copy of the old bundle is useless now: within the grace window it can
    // only read the claim's answer again, which it cannot open.
    old_bundle_only_repeats(&app, b, "acme", "ownership-claim", claim_id, &body).await;
    let device = app
        .get(&format!("/api/v1/devices/{}", b.device_id), &beta)
        .await;
    assert_eq!(device.body["owner"], "beta");
    assert_eq!(
        app.get(&format!("/api/v1/devices/{}", b.device_id), &acme)
            .await
            .status,
        404
    );

    // Under the new owner, with the new credentials.
    let mut c = Charger::connect(&app, &nb).await;
    c.next_id = 1_000;
    let (code, body) = c
        .call(
            "boot",
            json!({"firmware": "2.4.1", "model": "MyBox Plus", "connectors": 2}),
        )
        .await;
    assert_eq!((code, &body["owner"]), (200, &json!("beta")));
    // The old key in a v1 envelope is refused.
    let stale = request(
        b,
        json!(5_000),
        json!({"connector": 1, "state": "available"}),
    );
    let (code, _) = c.send_raw("status", stale).await;
    assert_eq!(code, 401);
    // Its local list starts over with exactly beta's tags, whatever version it names.
    let (code, list) = c
        .call("local-list", json!({"version": acme_version + 1}))
        .await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["reset"], true, "{list}");
    let uids: Vec<&str> = list["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["tag"].as_str())
        .collect();
    assert_eq!(uids, vec!["0BE7A001"], "{list}");
    // Its history in beta's console starts at the sale: acme's requests (its cards' answers,
    // its local list, its prices) stay acme's; the admin sees everything.
    let cookie = app.console_sign_in(&beta).await;
    let path = format!("/chargers/{}/history?kind=requests", b.device_id);
    let (status, history) = app.console_get(&cookie, &path).await;
    assert_eq!(status, 200);
    assert!(history.contains(">request:local-list<"), "{history}");
    assert!(
        !history.contains(">request:session-start<") && !history.contains("04A1B2C3"),
        "the former owner's history is shown to the new one: {history}"
    );
    let admin = app.console_sign_in(ADMIN_TOKEN).await;
    let (_, all) = app.console_get(&admin, &path).await;
    assert!(all.contains(">request:session-start<"), "{all}");
    let (_, again) = c
        .call("local-list", json!({"version": list["version"]}))
        .await;
    assert_eq!(again["reset"], false, "{again}");
    // acme's tags are unknown here; the code is spent; the other charger's offer is open.
    let (code, _) = c
        .call("authorize", json!({"tag": "04A1B2C3", "connector": 2}))
        .await;
    assert_eq!(code, 404);
    let (code, _) = c.call("ownership-claim", claim(&code_text)).await;
    assert_eq!(code, 403);
    let listed = app.get("/api/v1/transfers", &acme).await;
    let statuses: Vec<&str> = listed.body["transfers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["status"].as_str())
        .collect();
    assert_eq!(statuses.len(), 2, "{listed:?}");
    assert!(
        statuses.contains(&"claimed") && statuses.contains(&"offered"),
        "{statuses:?}"
    );
    // The session started before the claim stays acme's and can be finished.
    let (code, _) = c
        .call(
            "session-stop",
            json!({"session_id": session, "meter_stop_wh": 1_000, "stopped_at": ts(Utc::now()), "reason": "local"}),
        )
        .await;
    assert_eq!(code, 200);
    let stored = app
        .app
        .service
        .store()
        .get_session(session)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.owner.as_str(), "acme");
}

async fn offers_can_be_declined_and_withdrawn_and_are_seen_only_by_their_two_owners(app: TestApp) {
    let b = &app.provision("acme", 1).await[0];
    let beta = app.owner_with_token("beta").await;
    let gamma = app.owner_with_token("gamma").await;
    let mut c = Charger::connect(&app, b).await;

    // Only the charger's owner (or the admin) may offer it.
    assert_error(
        &offer(&app, &gamma, &b.device_id, "gamma").await,
        404,
        "not_found",
    );
    let same = offer(&app, ADMIN_TOKEN, &b.device_id, "acme").await;
    assert_error(&same, 422, "invalid_input");

    // Declined: closed for good.
    let first = offer(&app, ADMIN_TOKEN, &b.device_id, "beta").await;
    let id = first.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.get(&format!("/api/v1/transfers/{id}"), &gamma)
            .await
            .status,
        404,
        "a third owner cannot see it"
    );
    assert_eq!(
        app.get("/api/v1/transfers", &gamma).await.body["transfers"],
        json!([])
    );
    assert_error(
        &app.post(
            &format!("/api/v1/transfers/{id}/withdraw"),
            &beta,
            Value::Null,
        )
        .await,
        403,
        "not_sender",
    );
    let declined = app
        .post(
            &format!("/api/v1/transfers/{id}/decline"),
            &beta,
            Value::Null,
        )
        .await;
    assert_eq!(declined.body["status"], "declined", "{declined:?}");
    assert_error(
        &app.post(
            &format!("/api/v1/transfers/{id}/accept"),
            &beta,
            Value::Null,
        )
        .await,
        409,
        "transfer_closed",
    );

    // Accepted, then withdrawn by the sender: the code no longer works.
    let second = offer(&app, ADMIN_TOKEN, &b.device_id, "beta").await;
    let id = second.body["id"].as_str().expect("id").to_owned();
    let accepted = app
        .post(
            &format!("/api/v1/transfers/{id}/accept"),
            &beta,
            Value::Null,
        )
        .await;
    let code_text = accepted.body["code"].as_str().expect("code").to_owned();
    let withdrawn = app
        .post(
            &format!("/api/v1/transfers/{id}/withdraw"),
            ADMIN_TOKEN,
            Value::Null,
        )
        .await;
    assert_eq!(withdrawn.status, 200, "{withdrawn:?}");
    assert_eq!(withdrawn.body["status"], "withdrawn");
    let exchange = KeyExchange::new();
    let (code, body) = c
        .call(
            "ownership-claim",
            json!({"code": code_text, "pub": exchange.public_base64()}),
        )
        .await;
    assert_eq!((code, &body["error"]), (403, &json!("bad_code")));
    assert_eq!(
        app.get(&format!("/api/v1/transfers/{id}"), &beta)
            .await
            .body["status"],
        "withdrawn"
    );
    assert_eq!(
        app.get("/api/v1/transfers/tr_unknown", &beta).await.status,
        404
    );
}

async fn a_charger_rotates_its_own_credentials_with_rekey(app: TestApp) {
    let b = &app.provision("acme", 1).await[0];
    let mut c = Charger::connect(&app, b).await;
    let (code, body) = c.call("rekey", json!({})).await;
    assert_eq!((code, &body["field"]), (422, &json!("pub")));
    let exchange = KeyExchange::new();
    let rekey_id = c.next_id;
    let (code, body) = c
        .call("rekey", json!({"pub": exchange.public_base64()}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["owner"], "acme");
    let nb = new_bundle(b, &exchange, &body);
    assert!(c.probe.closed_within(WAIT).await.is_some());
    old_bundle_only_repeats(&app, b, "acme", "rekey", rekey_id, &body).await;
    let mut c = Charger::connect(&app, &nb).await;
    c.next_id = 100;
    let (code, _) = c
        .call("status", json!({"connector": 1, "state": "available"}))
        .await;
    assert_eq!(code, 200);
}

async fn an_operator_rotation_refuses_the_old_bundle_at_once(app: TestApp) {
    let b = &app.provision("acme", 1).await[0];
    let acme = {
        let a = app
            .post("/api/v1/owners/acme/tokens", ADMIN_TOKEN, Value::Null)
            .await;
        a.body["token"].as_str().expect("token").to_owned()
    };
    let gamma = app.owner_with_token("gamma").await;
    let mut c = Charger::connect(&app, b).await;
    let path = format!("/api/v1/devices/{}/credentials", b.device_id);
    assert_eq!(app.post(&path, &gamma, Value::Null).await.status, 404);

    let a = app.post(&path, &acme, Value::Null).await;
    assert_eq!(a.status, 201, "{a:?}");
    let nb: FirmwareBundle = serde_json::from_value(a.body).expect("a bundle");
    assert_eq!(nb.device_id, b.device_id);
    assert_ne!(nb.key, b.key);
    assert_ne!(nb.mqtt.password, b.mqtt.password);
    assert!(
        c.probe.closed_within(WAIT).await.is_some(),
        "the open connection is closed at once"
    );
    login_refused(&app, b).await;

    let mut c = Charger::connect(&app, &nb).await;
    let stale = request(b, json!(1), json!({"connector": 1, "state": "available"}));
    let (code, _) = c.send_raw("status", stale).await;
    assert_eq!(code, 401, "the old key is refused");
    let (code, _) = c
        .call_with_id(
            json!(2),
            "status",
            json!({"connector": 1, "state": "available"}),
        )
        .await;
    assert_eq!(code, 200);
}
