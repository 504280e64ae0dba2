//! Site load management through the real doors: sites over REST, OCPP 1.6J chargers
//! (PyPI `ocpp`'s `v16.ChargePoint`) that receive their limits as charging profiles, and
//! MyBox chargers that receive `charging-limit`. Every check of a fuse is made from the
//! chargers' side: the limits they were sent.

use std::collections::HashMap;
use std::time::Duration;

use charger_e2e::ocpp::{python, Agent};
use charger_e2e::{on_both_databases, spawn_app_with, Db, Rest, TestApp, ADMIN_TOKEN};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

on_both_databases!(spawn_fast =>
    five_ocpp_chargers_share_a_32_a_circuit_and_a_stop_frees_its_share,
    sites_are_the_owners_own_and_bad_input_is_refused,
    a_silent_charger_keeps_its_share_until_its_lease_ends_then_its_failsafe,
    a_201_station_gets_its_default_and_transaction_profiles_and_loses_them_off_the_site,
    a_charger_whose_composite_schedule_allows_more_than_given_is_flagged,
    a_start_storm_and_a_stop_storm_on_mixed_phases_stay_under_every_phase,
    a_charger_that_refuses_its_profiles_is_counted_at_its_rating,
    a_refusing_charger_leaves_no_failsafe_to_reserve,
    a_silent_charger_delays_no_decrease_on_its_own_site,
    a_silent_charger_on_one_site_delays_no_other_site,
    a_charger_moved_while_offline_counts_at_what_it_was_last_sent,
);

/// The server with the balancer ticking every 200 ms.
async fn spawn_fast(db: Db) -> Option<TestApp> {
    spawn_app_with(db, |c| c.site_tick_ms = 200).await
}

/// Owner `acme` with a default tariff and tags `04a1b2c0`..`04a1b2c9`.
async fn owner(app: &Rest) {
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
            "/api/v1/tariffs",
            ADMIN_TOKEN,
            json!({"id": "standard", "owner": "acme", "currency": "EUR",
                   "energy_per_kwh": "0.30", "time_per_hour": "0", "session_fee": "0",
                   "tax_rate": "0.21", "default": true}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    for i in 0..10 {
        let a = app
            .post(
                "/api/v1/tags",
                ADMIN_TOKEN,
                json!({"uid": format!("04a1b2c{i}"), "owner": "acme"}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
    }
}

/// A site of `acme` on a 3×`connection` A connection with one circuit of 3×`circuit` A;
/// (site id, circuit node id).
async fn site(app: &Rest, connection: u32, circuit: u32, failsafe: &str) -> (i64, i64) {
    site_leased(app, connection, circuit, failsafe, 120).await
}

/// [`site`] with a lease of `lease_s`.
async fn site_leased(
    app: &Rest,
    connection: u32,
    circuit: u32,
    failsafe: &str,
    lease_s: i64,
) -> (i64, i64) {
    let s = app
        .post(
            "/api/v1/sites",
            ADMIN_TOKEN,
            json!({"owner": "acme", "name": "Car park", "limits_a": [connection, connection, connection],
                   "failsafe": failsafe, "lease_s": lease_s}),
        )
        .await;
    assert_eq!(s.status, 201, "{s:?}");
    let id = s.body["id"].as_i64().expect("a site id");
    let v = app.get(&format!("/api/v1/sites/{id}"), ADMIN_TOKEN).await;
    assert_eq!(v.status, 200, "{v:?}");
    let root = v.body["nodes"][0]["id"].as_i64().expect("the connection");
    let n = app
        .post(
            &format!("/api/v1/sites/{id}/nodes"),
            ADMIN_TOKEN,
            json!({"parent": root, "name": "Circuit A", "limits_a": [circuit, circuit, circuit]}),
        )
        .await;
    assert_eq!(n.status, 201, "{n:?}");
    assert_eq!(
        n.body["limit_da"],
        json!([circuit * 10, circuit * 10, circuit * 10]),
        "{n:?}"
    );
    (id, n.body["id"].as_i64().expect("a node id"))
}

/// Provisions OCPP 1.6 charger `id` (one connector) and places it; its password.
async fn placed_ocpp(app: &Rest, id: &str, site: i64, node: i64) -> String {
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": id, "owner": "acme", "connectors": 1, "protocol": "ocpp1.6"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let p = app
        .put(
            &format!("/api/v1/devices/{id}/site"),
            ADMIN_TOKEN,
            json!({"site": site, "node": node, "rotation": ["L1", "L2", "L3"],
                   "max_current_a": 32}),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    assert_eq!(p.body["rotation"], json!(["L1", "L2", "L3"]), "{p:?}");
    a.body["ocpp"]["password"]
        .as_str()
        .expect("a password")
        .to_owned()
}

/// The limit of a 1.6 profile's first period, and of the period after its lease (if any).
fn limits(profile: &Value) -> (i64, Option<(i64, i64)>) {
    let periods = &profile["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"];
    let limit = |p: &Value| p["limit"].as_f64().expect("a limit") as i64;
    let first = limit(&periods[0]);
    let after = periods
        .get(1)
        .map(|p| (p["startPeriod"].as_i64().expect("a start"), limit(p)));
    (first, after)
}

/// Reads every profile the chargers were sent until `settled` holds of the latest TxProfile
/// limit of each (or 20 s pass). Then replays every limit they took, in the order they
/// took them, and checks that the latest limits never summed above `fuse`.
async fn until(
    agents: &mut [(String, Agent)],
    latest: &mut HashMap<String, i64>,
    fuse: i64,
    settled: impl Fn(&HashMap<String, i64>) -> bool,
) {
    until_leased(agents, latest, fuse, (120, 6), settled).await;
}

/// [`until`] for a site whose lease and failsafe are `after`.
async fn until_leased(
    agents: &mut [(String, Agent)],
    latest: &mut HashMap<String, i64>,
    fuse: i64,
    after: (i64, i64),
    settled: impl Fn(&HashMap<String, i64>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let start = latest.clone();
    let mut taken: Vec<(f64, String, i64)> = Vec::new();
    let mut now = latest.clone();
    while !settled(&now) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {now:?}"
        );
        for (id, cp) in agents.iter_mut() {
            while let Some((at, p)) = cp
                .received_at_within("SetChargingProfile", Duration::from_millis(20))
                .await
            {
                let purpose = &p["csChargingProfiles"]["chargingProfilePurpose"];
                if purpose == "TxProfile" {
                    let (first, then) = limits(&p);
                    taken.push((at, id.clone(), first));
                    // Never a step up after the lease: with the server gone, nobody rises
                    // while others are still above their failsafe.
                    assert!(then.is_some_and(|(_, a)| a <= first), "{p}");
                    // After the lease, at most the failsafe (the fuse shared by all, whole
                    // amperes; less while a charger that may draw its rating is counted)
                    // and at most its current.
                    let (lease, held) = then.expect("a period after the lease");
                    assert_eq!(lease, after.0, "{p}");
                    assert!(held <= after.1.min(first), "{p}");
                } else {
                    assert_eq!(purpose, "TxDefaultProfile", "{p}");
                    assert_eq!(p["connectorId"], 0, "{p}");
                    assert_eq!(limits(&p).0, 0, "failsafe zero: {p}");
                }
            }
        }
        taken.sort_by(|a, b| a.0.total_cmp(&b.0));
        now = start.clone();
        for (_, id, limit) in &taken {
            now.insert(id.clone(), *limit);
        }
    }
    let mut replay = start;
    for (at, id, limit) in &taken {
        replay.insert(id.clone(), *limit);
        let sum: i64 = replay.values().sum();
        assert!(
            sum <= fuse,
            "at {at} the chargers held {sum} A on a {fuse} A fuse: {replay:?}"
        );
    }
    *latest = now;
}

async fn five_ocpp_chargers_share_a_32_a_circuit_and_a_stop_frees_its_share(app: TestApp) {
    let Some(py) = python() else { return };
    owner(&app).await;
    let (site_id, circuit) = site(&app, 100, 32, "zero").await;
    let mut agents = Vec::new();
    for i in 0..5 {
        let id = format!("cp-{i}");
        let password = placed_ocpp(&app, &id, site_id, circuit).await;
        let mut cp = Agent::connect(&py, &app.base, &id, &password).await;
        let boot = cp
            .call(
                "BootNotification",
                json!({"chargePointVendor": "Keba", "chargePointModel": "P30"}),
            )
            .await
            .expect("boot answered");
        assert_eq!(boot["status"], "Accepted", "{boot}");
        // Placed on a site: its default profile holds it at 0 A without the server.
        let d = cp.received("SetChargingProfile").await;
        assert_eq!(
            d["csChargingProfiles"]["chargingProfilePurpose"], "TxDefaultProfile",
            "{d}"
        );
        assert_eq!(limits(&d).0, 0, "{d}");
        agents.push((id, cp));
    }
    let mut tx = HashMap::new();
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    for (i, (id, cp)) in agents.iter_mut().enumerate() {
        let started = cp
            .call(
                "StartTransaction",
                json!({"connectorId": 1, "idTag": format!("04A1B2C{i}"), "meterStart": 0,
                       "timestamp": now}),
            )
            .await
            .expect("start answered");
        assert_eq!(started["idTagInfo"]["status"], "Accepted", "{started}");
        tx.insert(
            id.clone(),
            started["transactionId"].as_i64().expect("an id"),
        );
    }
    // 32 A among five: 7, 7, 6, 6, 6; never more than 32 A on the chargers' side.
    let mut latest = HashMap::new();
    until(&mut agents, &mut latest, 32, |l| {
        l.len() == 5 && l.values().sum::<i64>() == 32
    })
    .await;
    let mut got: Vec<i64> = latest.values().copied().collect();
    got.sort_unstable();
    assert_eq!(got, vec![6, 6, 6, 7, 7]);
    let view = app
        .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(view.status, 200, "{view:?}");
    let sessions = view.body["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 5, "{view:?}");
    assert!(sessions
        .iter()
        .all(|s| s["acked"] == true && s["paused"] == false));
    assert_eq!(view.body["chargers"][0]["failsafe_da"], 60, "{view:?}");

    // One stops: the four left share the circuit, 8 A each, within a tick or two.
    let (gone, cp) = &mut agents[0];
    let stop = cp
        .call(
            "StopTransaction",
            json!({"transactionId": tx[gone.as_str()], "meterStop": 1000,
                   "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)}),
        )
        .await
        .expect("stop answered");
    assert!(stop.get("idTagInfo").is_none_or(Value::is_null), "{stop}");
    let gone = gone.clone();
    latest.remove(&gone);
    let mut rest: Vec<(String, Agent)> = agents.split_off(1);
    until(&mut rest, &mut latest, 32, |l| {
        l.len() == 4 && l.values().all(|a| *a == 8)
    })
    .await;
    for (_, cp) in agents.into_iter().chain(rest) {
        cp.close().await;
    }
}

async fn sites_are_the_owners_own_and_bad_input_is_refused(app: TestApp) {
    owner(&app).await;
    let (site_id, circuit) = site(&app, 63, 32, "reserve").await;
    let a = app
        .post(
            "/api/v1/owners",
            ADMIN_TOKEN,
            json!({"id": "other", "name": "Other"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let t = app
        .post("/api/v1/owners/other/tokens", ADMIN_TOKEN, Value::Null)
        .await;
    assert_eq!(t.status, 201, "{t:?}");
    let other = t.body["token"].as_str().expect("a token").to_owned();
    // Another owner sees no such site, and cannot add to it.
    let v = app.get(&format!("/api/v1/sites/{site_id}"), &other).await;
    assert_eq!(v.status, 404, "{v:?}");
    let l = app.get("/api/v1/sites", &other).await;
    assert_eq!(l.body, json!([]), "{l:?}");
    let n = app
        .post(
            &format!("/api/v1/sites/{site_id}/nodes"),
            &other,
            json!({"parent": circuit, "name": "x", "limits_a": [10, 10, 10]}),
        )
        .await;
    assert_eq!(n.status, 404, "{n:?}");
    // Its own charger cannot go on acme's site, nor acme's on its own.
    let d = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "theirs", "owner": "other", "connectors": 1, "protocol": "ocpp1.6"}),
        )
        .await;
    assert_eq!(d.status, 201, "{d:?}");
    let place = json!({"site": site_id, "node": circuit, "rotation": ["L1"], "max_current_a": 16});
    let p = app
        .put("/api/v1/devices/theirs/site", &other, place.clone())
        .await;
    assert_eq!(p.status, 404, "{p:?}");
    let p = app
        .put("/api/v1/devices/theirs/site", ADMIN_TOKEN, place.clone())
        .await;
    assert_eq!(p.status, 404, "{p:?}");
    // Bad input names its field.
    for (body, field) in [
        (
            json!({"owner": "acme", "name": "x", "limits_a": [7000, 1, 1], "failsafe": "zero"}),
            "limits_a",
        ),
        (
            json!({"owner": "acme", "name": "", "limits_a": [1, 1, 1], "failsafe": "zero"}),
            "name",
        ),
        (
            json!({"owner": "acme", "name": "x", "limits_a": [1, 1, 1], "failsafe": "zero", "lease_s": 5}),
            "lease_s",
        ),
        (
            json!({"owner": "acme", "name": "x", "limits_a": [1, 1, 1], "failsafe": "zero", "derating_percent": 0}),
            "derating_percent",
        ),
    ] {
        let r = app.post("/api/v1/sites", ADMIN_TOKEN, body).await;
        assert_eq!(r.status, 422, "{r:?}");
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("{field}: ")), "{r:?}");
    }
    let r = app
        .post(
            "/api/v1/sites",
            ADMIN_TOKEN,
            json!({"owner": "acme", "name": "x", "limits_a": [1, 1, 1], "failsafe": "maybe"}),
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    let d = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "mine", "owner": "acme", "connectors": 1}),
        )
        .await;
    assert_eq!(d.status, 201, "{d:?}");
    for (body, field) in [
        (
            json!({"site": site_id, "node": circuit, "rotation": ["L1", "L1"], "max_current_a": 16}),
            "rotation",
        ),
        (
            json!({"site": site_id, "node": circuit, "rotation": ["L4"], "max_current_a": 16}),
            "rotation",
        ),
        (
            json!({"site": site_id, "node": circuit, "rotation": ["L1"], "max_current_a": 5}),
            "max_current_a",
        ),
        (
            json!({"site": site_id, "node": 999_999, "rotation": ["L1"], "max_current_a": 16}),
            "node",
        ),
    ] {
        let r = app
            .put("/api/v1/devices/mine/site", ADMIN_TOKEN, body)
            .await;
        assert_eq!(r.status, 422, "{r:?}");
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("{field}: ")), "{r:?}");
    }
    // Derating rounds down: 25 A at 80 % is 20 A.
    let n = app
        .post(
            &format!("/api/v1/sites/{site_id}/nodes"),
            ADMIN_TOKEN,
            json!({"parent": circuit, "name": "Sub", "limits_a": [25, 25, 25], "derating_percent": 80}),
        )
        .await;
    assert_eq!(n.status, 201, "{n:?}");
    assert_eq!(n.body["limit_da"], json!([200, 200, 200]), "{n:?}");
    // A node moves nowhere; its limits change.
    let node = n.body["id"].as_i64().expect("id");
    let u = app
        .patch(
            &format!("/api/v1/sites/{site_id}/nodes/{node}"),
            ADMIN_TOKEN,
            json!({"name": "Sub", "limits_a": [16, 16, 16]}),
        )
        .await;
    assert_eq!(u.status, 200, "{u:?}");
    assert_eq!(u.body["limit_da"], json!([160, 160, 160]), "{u:?}");
    let p = app
        .put(
            "/api/v1/devices/mine/site",
            ADMIN_TOKEN,
            json!({"site": site_id, "node": node, "rotation": ["L2"], "max_current_a": 16}),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    let v = app
        .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(v.body["chargers"][0]["device"], "mine", "{v:?}");
    assert_eq!(v.body["chargers"][0]["rotation"], json!(["L2"]), "{v:?}");
    let r = app.delete("/api/v1/devices/mine/site", ADMIN_TOKEN).await;
    assert_eq!(r.status, 204, "{r:?}");
    // Again: already off (idempotent); another owner's charger is not found.
    let r = app.delete("/api/v1/devices/mine/site", ADMIN_TOKEN).await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = app.delete("/api/v1/devices/mine/site", &other).await;
    assert_eq!(r.status, 404, "{r:?}");
}

/// Five chargers as in the first scenario, started; (site, agents, latest limits, tx ids).
async fn five_charging(
    app: &TestApp,
    py: &std::path::Path,
    lease_s: i64,
) -> (
    i64,
    Vec<(String, Agent)>,
    HashMap<String, i64>,
    HashMap<String, i64>,
) {
    owner(app).await;
    let (site_id, circuit) = site_leased(app, 100, 32, "zero", lease_s).await;
    let mut agents = Vec::new();
    for i in 0..5 {
        let id = format!("cp-{i}");
        let password = placed_ocpp(app, &id, site_id, circuit).await;
        let mut cp = Agent::connect(py, &app.base, &id, &password).await;
        let boot = cp
            .call(
                "BootNotification",
                json!({"chargePointVendor": "Keba", "chargePointModel": "P30"}),
            )
            .await
            .expect("boot answered");
        assert_eq!(boot["status"], "Accepted", "{boot}");
        agents.push((id, cp));
    }
    let mut tx = HashMap::new();
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    for (i, (id, cp)) in agents.iter_mut().enumerate() {
        let started = cp
            .call(
                "StartTransaction",
                json!({"connectorId": 1, "idTag": format!("04A1B2C{i}"), "meterStart": 0,
                       "timestamp": now}),
            )
            .await
            .expect("start answered");
        tx.insert(
            id.clone(),
            started["transactionId"].as_i64().expect("an id"),
        );
    }
    let mut latest = HashMap::new();
    until_leased(&mut agents, &mut latest, 32, (lease_s, 6), |l| {
        l.len() == 5 && l.values().sum::<i64>() == 32
    })
    .await;
    (site_id, agents, latest, tx)
}

async fn a_silent_charger_keeps_its_share_until_its_lease_ends_then_its_failsafe(app: TestApp) {
    let Some(py) = python() else { return };
    let lease_s = 10;
    let (site_id, mut agents, mut latest, _) = five_charging(&app, &py, lease_s).await;
    // cp-0 goes silent (its socket drops) while charging at its share; after its lease its
    // profile holds its failsafe (6 A, or less if it was sent while a charger that might
    // draw its rating was counted).
    let silent = agents.remove(0);
    let held = latest.remove(&silent.0).expect("its share");
    let view = app
        .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
        .await;
    let after_lease = view.body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["device"] == "cp-0")
        .and_then(|s| s["failsafe_da"].as_i64())
        .expect("cp-0's failsafe")
        / 10;
    assert!(after_lease <= 6, "{view:?}");
    let gone_at = tokio::time::Instant::now();
    silent.1.close().await;
    app.wait_for_online(&silent.0, false).await;
    // Until its lease ends nobody else is raised: it may still draw its share.
    let lease_end = gone_at + Duration::from_secs(u64::try_from(lease_s).expect("lease"));
    while tokio::time::Instant::now() + Duration::from_millis(1500) < lease_end {
        for (id, cp) in agents.iter_mut() {
            if let Some(p) = cp
                .received_within("SetChargingProfile", Duration::from_millis(50))
                .await
            {
                let (first, _) = limits(&p);
                let before = latest[id.as_str()];
                assert!(
                    first <= before,
                    "{id} raised from {before} to {first} A while cp-0 may still draw {held} A"
                );
                latest.insert(id.clone(), first);
            }
        }
    }
    // Then it holds that: the four others share the rest, never more.
    until_leased(
        &mut agents,
        &mut latest,
        32 - after_lease,
        (lease_s, 6),
        |l| l.values().sum::<i64>() == 32 - after_lease,
    )
    .await;
    let view = app
        .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
        .await;
    let offline = view.body["chargers"]
        .as_array()
        .expect("chargers")
        .iter()
        .find(|c| c["device"] == "cp-0")
        .expect("cp-0");
    assert_eq!(offline["online"], false, "{view:?}");
    for (_, cp) in agents {
        cp.close().await;
    }
}

/// `n` MyBox chargers (the simulator) of `acme` on a circuit of 3×`circuit` A, online and
/// charging; the site's id and the chargers.
async fn mybox_site(
    app: &TestApp,
    n: usize,
    circuit: u32,
    lease_s: i64,
) -> (i64, Vec<charger_firmware_sim::charger::Charger>) {
    use charger_firmware_sim::charger::Charger;
    let bundles = app.provision("acme", n).await;
    let a = app
        .post(
            "/api/v1/tariffs",
            ADMIN_TOKEN,
            json!({"id": "std", "owner": "acme", "currency": "EUR", "energy_per_kwh": "0.40",
                   "time_per_hour": "0", "session_fee": "0", "tax_rate": "0.2", "default": true}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let (site_id, node) = site_leased(app, 100, circuit, "zero", lease_s).await;
    let mut chargers = Vec::new();
    for (i, b) in bundles.into_iter().enumerate() {
        let uid = format!("04A1B2D{i}");
        let a = app
            .post(
                "/api/v1/tags",
                ADMIN_TOKEN,
                json!({"uid": uid, "owner": "acme"}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        let p = app
            .put(
                &format!("/api/v1/devices/{}/site", b.device_id),
                ADMIN_TOKEN,
                json!({"site": site_id, "node": node, "rotation": ["L1", "L2", "L3"],
                       "max_current_a": 32}),
            )
            .await;
        assert_eq!(p.status, 200, "{p:?}");
        let mut c = Charger::new(b, Some(app.app.mqtt_addr.to_string()));
        c.online().await.expect("online");
        c.tap(&uid).await.expect("tap");
        c.plug().await.expect("plug");
        assert!(c.session_id().is_some(), "{:#?}", c.events);
        chargers.push(c);
    }
    (site_id, chargers)
}

/// Serves the chargers' commands until their limits (sorted) are `want`, checking after
/// each round that they never sum above `fuse`.
async fn mybox_until(
    chargers: &mut [charger_firmware_sim::charger::Charger],
    fuse: u32,
    want: &[u32],
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for c in chargers.iter_mut() {
            c.serve_commands(Duration::from_millis(100))
                .await
                .expect("commands");
        }
        let got: Vec<u32> = chargers.iter().map(|c| c.limit_a().unwrap_or(0)).collect();
        assert!(
            got.iter().sum::<u32>() <= fuse,
            "{got:?}: {:#?}",
            chargers.iter().map(|c| &c.events).collect::<Vec<_>>()
        );
        let mut sorted = got.clone();
        sorted.sort_unstable();
        if sorted == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {got:?}, want {want:?}"
        );
    }
}

/// Three MyBox chargers (the simulator) on a 3×20 A circuit: each gets `charging-limit`,
/// the sum of their limits stays under the fuse, and with the server gone each falls to
/// its failsafe when its lease ends, still under the fuse.
#[tokio::test]
async fn mybox_chargers_take_charging_limit_and_fall_to_their_failsafe_without_the_server() {
    let app = spawn_fast(Db::Sqlite).await.expect("server");
    let (site_id, mut chargers) = mybox_site(&app, 3, 20, 10).await;
    // 20 A among three: 7, 7, 6, acknowledged; never more than 20 A on the chargers' side.
    mybox_until(&mut chargers, 20, &[6, 7, 7]).await;
    // The failsafe: 20 A shared by three, in whole amperes (while a charger was placed but
    // not connected yet it was less: that one might have drawn its rating).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !chargers
        .iter()
        .all(|c| c.limit.as_ref().is_some_and(|(l, _)| l.failsafe_a == 6))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "failsafes not sent again"
        );
        for c in chargers.iter_mut() {
            c.serve_commands(Duration::from_millis(100))
                .await
                .expect("commands");
        }
    }
    for c in &chargers {
        assert!(
            c.events
                .iter()
                .any(|e| e == "command charging-limit accepted"),
            "{:#?}",
            c.events
        );
        let (limit, _) = c.limit.as_ref().expect("a limit");
        assert_eq!(limit.lease_s, 10);
        // The failsafe: 20 A shared by three, in whole amperes.
        assert_eq!(limit.failsafe_a, 6);
        assert_eq!(limit.connector, Some(1));
    }
    let view = app
        .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
        .await;
    let sessions = view.body["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 3, "{view:?}");
    assert!(sessions.iter().all(|s| s["acked"] == true), "{view:?}");

    // The server stops: within the lease every charger falls to its failsafe, 18 A in all.
    app.app.stop().await.expect("stops");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10 + 3);
    loop {
        let got: Vec<u32> = chargers.iter().map(|c| c.limit_a().unwrap_or(99)).collect();
        assert!(got.iter().sum::<u32>() <= 20, "{got:?}");
        if got == [6, 6, 6] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not at the failsafe within the lease: {got:?}"
        );
        // The simulator's limit follows its clock: look again shortly.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two MyBox chargers on 3×20 A: 10 A each. One car draws 3 A: its limit falls to 6 A
/// (what it draws plus 3 A, at least the minimum) and the other gets 14 A; when the car
/// draws up to its limit again, the two share evenly again.
#[tokio::test]
async fn a_car_that_draws_less_leaves_its_headroom_to_others_until_it_rises() {
    let app = spawn_fast(Db::Sqlite).await.expect("server");
    let (site_id, mut chargers) = mybox_site(&app, 2, 20, 60).await;
    mybox_until(&mut chargers, 20, &[10, 10]).await;
    // 3 A per phase: 2,070 W.
    chargers[0]
        .charge(Duration::from_millis(10), 3 * 230 * 3)
        .await
        .expect("charge");
    assert!(
        chargers[0]
            .events
            .iter()
            .any(|e| e.starts_with("meter-values -> 200")),
        "{:#?}",
        chargers[0].events
    );
    mybox_until(&mut chargers, 20, &[6, 14]).await;
    assert_eq!(chargers[0].limit_a(), Some(6));
    // It draws all it may (6 A): the cap is lifted, the two share again.
    chargers[0]
        .charge(Duration::from_millis(10), 22_000)
        .await
        .expect("charge");
    mybox_until(&mut chargers, 20, &[10, 10]).await;
    // What it drew under its lower limit is forgotten once it is raised: no swing back.
    for _ in 0..5 {
        for c in chargers.iter_mut() {
            c.serve_commands(Duration::from_millis(100))
                .await
                .expect("commands");
        }
        let got: Vec<u32> = chargers.iter().map(|c| c.limit_a().unwrap_or(0)).collect();
        assert_eq!(got, vec![10, 10]);
    }
    let view = app
        .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
        .await;
    assert!(
        view.body["sessions"][0].get("drawn_da").is_none(),
        "{view:?}"
    );
}

async fn a_201_station_gets_its_default_and_transaction_profiles_and_loses_them_off_the_site(
    app: TestApp,
) {
    let Some(py) = python() else { return };
    owner(&app).await;
    // Reserve: with the server gone, an idle connector may start at its failsafe, which is
    // therefore kept free for it while the server runs.
    let (site_id, circuit) = site(&app, 100, 16, "reserve").await;
    let a = app
        .post(
            "/api/v1/devices",
            ADMIN_TOKEN,
            json!({"id": "st-201", "owner": "acme", "connectors": 2, "protocol": "ocpp2.0.1"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let password = a.body["ocpp"]["password"]
        .as_str()
        .expect("password")
        .to_owned();
    let p = app
        .put(
            "/api/v1/devices/st-201/site",
            ADMIN_TOKEN,
            json!({"site": site_id, "node": circuit, "rotation": ["L1"], "max_current_a": 16}),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    let url = format!("{}/ocpp/st-201", app.base.replace("http", "ws"));
    let mut cp = Agent::connect_with(&py, &url, "st-201", Some(&password), "ocpp2.0.1")
        .await
        .expect("connects");
    let boot = json!({"reason": "PowerUp", "chargingStation": {"model": "W", "vendorName": "A"}});
    let mut answer = cp
        .call("BootNotification", boot.clone())
        .await
        .expect("boot");
    if answer["status"] == "Pending" {
        cp.received("GetBaseReport").await;
        answer = cp.call("BootNotification", boot).await.expect("boot");
    }
    assert_eq!(answer["status"], "Accepted", "{answer}");
    // 16 A single-phase for two connectors: a failsafe of 8 A each, the default.
    let d = cp.received("SetChargingProfile").await;
    assert_eq!(d["evseId"], 0, "{d}");
    let profile = &d["chargingProfile"];
    assert_eq!(profile["chargingProfilePurpose"], "TxDefaultProfile", "{d}");
    assert_eq!(
        profile["chargingSchedule"][0]["chargingRateUnit"], "A",
        "{d}"
    );
    assert_eq!(
        profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"], 8.0,
        "{d}"
    );
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let started = cp
        .call(
            "TransactionEvent",
            json!({"eventType": "Started", "timestamp": now, "triggerReason": "Authorized",
                   "seqNo": 0, "transactionInfo": {"transactionId": "tx-site-1"},
                   "evse": {"id": 1, "connectorId": 1},
                   "idToken": {"idToken": "04A1B2C0", "type": "ISO14443"},
                   "meterValue": [{"timestamp": now, "sampledValue": [{"value": 0,
                       "context": "Transaction.Begin"}]}]}),
        )
        .await
        .expect("started");
    assert_eq!(started["idTokenInfo"]["status"], "Accepted", "{started}");
    // The other connector's failsafe (8 A) stays reserved: this session gets 8 A, with
    // its own failsafe after the lease.
    let t = cp.received("SetChargingProfile").await;
    assert_eq!(t["evseId"], 1, "{t}");
    let profile = &t["chargingProfile"];
    assert_eq!(profile["chargingProfilePurpose"], "TxProfile", "{t}");
    assert_eq!(profile["transactionId"], "tx-site-1", "{t}");
    let periods = &profile["chargingSchedule"][0]["chargingSchedulePeriod"];
    assert_eq!(periods[0]["limit"], 8.0, "{t}");
    assert_eq!(periods[1], json!({"startPeriod": 120, "limit": 8.0}), "{t}");
    // Off the site, its default profile is cleared: it charges unconstrained again.
    let r = app.delete("/api/v1/devices/st-201/site", ADMIN_TOKEN).await;
    assert_eq!(r.status, 204, "{r:?}");
    let c = cp.received("ClearChargingProfile").await;
    assert_eq!(
        c["chargingProfileCriteria"]["chargingProfilePurpose"], "TxDefaultProfile",
        "{c}"
    );
    let c = cp.received("ClearChargingProfile").await;
    assert_eq!(
        c["chargingProfileCriteria"]["chargingProfilePurpose"], "TxProfile",
        "{c}"
    );
    // Lifted: the site forgets it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = app
            .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
            .await;
        if v.body["chargers"] == json!([]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cp.close().await;
}

async fn a_charger_whose_composite_schedule_allows_more_than_given_is_flagged(app: TestApp) {
    let Some(py) = python() else { return };
    owner(&app).await;
    let (site_id, circuit) = site(&app, 100, 16, "zero").await;
    let mut agents = Vec::new();
    // cp-0 shows 8 A (what it will be given); cp-1 shows 16 A: a profile of its own wins.
    for (i, shown) in [8, 16].into_iter().enumerate() {
        let id = format!("cp-{i}");
        let password = placed_ocpp(&app, &id, site_id, circuit).await;
        let mut cp = Agent::connect(&py, &app.base, &id, &password).await;
        cp.respond(
            "GetCompositeSchedule",
            json!({"status": "Accepted", "connectorId": 1,
                   "scheduleStart": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                   "chargingSchedule": {"chargingRateUnit": "A",
                       "chargingSchedulePeriod": [{"startPeriod": 0, "limit": shown}]}}),
        )
        .await;
        let boot = cp
            .call(
                "BootNotification",
                json!({"chargePointVendor": "Keba", "chargePointModel": "P30"}),
            )
            .await
            .expect("boot answered");
        assert_eq!(boot["status"], "Accepted", "{boot}");
        let started = cp
            .call(
                "StartTransaction",
                json!({"connectorId": 1, "idTag": format!("04A1B2C{i}"), "meterStart": 0,
                       "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)}),
            )
            .await
            .expect("start answered");
        assert_eq!(started["idTagInfo"]["status"], "Accepted", "{started}");
        agents.push(cp);
    }
    for cp in agents.iter_mut() {
        let asked = cp.received("GetCompositeSchedule").await;
        assert_eq!(asked["connectorId"], 1, "{asked}");
        assert_eq!(asked["chargingRateUnit"], "A", "{asked}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = app
            .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
            .await;
        let checks: Vec<Value> = view.body["chargers"]
            .as_array()
            .expect("chargers")
            .iter()
            .map(|c| c["schedule_check"].clone())
            .collect();
        if checks == [json!("ok"), json!("wrong")] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for cp in agents {
        cp.close().await;
    }
}

/// The latest TxProfile limit each charger took, replayed in the order they took them
/// (`taken`: when, which, how much); `check` is asked of every state on the way.
fn replay(
    taken: &mut [(f64, String, i64)],
    check: impl Fn(&HashMap<String, i64>) -> Result<(), String>,
) -> HashMap<String, i64> {
    taken.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut now = HashMap::new();
    for (at, id, limit) in taken.iter() {
        now.insert(id.clone(), *limit);
        if let Err(e) = check(&now) {
            panic!("at {at}: {e}: {now:?}");
        }
    }
    now
}

async fn a_start_storm_and_a_stop_storm_on_mixed_phases_stay_under_every_phase(app: TestApp) {
    let Some(py) = python() else { return };
    owner(&app).await;
    // A 3×25 A site: three single-phase chargers (one per phase) and three three-phase
    // chargers in the three rotations, all on the connection itself.
    let s = app
        .post(
            "/api/v1/sites",
            ADMIN_TOKEN,
            json!({"owner": "acme", "name": "Yard", "limits_a": [25, 25, 25], "failsafe": "zero"}),
        )
        .await;
    assert_eq!(s.status, 201, "{s:?}");
    let site_id = s.body["id"].as_i64().expect("id");
    let v = app
        .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
        .await;
    let root = v.body["nodes"][0]["id"].as_i64().expect("root");
    let wiring: [(&str, &[&str]); 6] = [
        ("one-l1", &["L1"]),
        ("one-l2", &["L2"]),
        ("one-l3", &["L3"]),
        ("three-a", &["L1", "L2", "L3"]),
        ("three-b", &["L2", "L3", "L1"]),
        ("three-c", &["L3", "L1", "L2"]),
    ];
    let mut agents = Vec::new();
    for (id, rotation) in wiring {
        let a = app
            .post(
                "/api/v1/devices",
                ADMIN_TOKEN,
                json!({"id": id, "owner": "acme", "connectors": 1, "protocol": "ocpp1.6"}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        let p = app
            .put(
                &format!("/api/v1/devices/{id}/site"),
                ADMIN_TOKEN,
                json!({"site": site_id, "node": root, "rotation": rotation, "max_current_a": 32}),
            )
            .await;
        assert_eq!(p.status, 200, "{p:?}");
        let password = a.body["ocpp"]["password"]
            .as_str()
            .expect("password")
            .to_owned();
        let mut cp = Agent::connect(&py, &app.base, id, &password).await;
        let boot = cp
            .call(
                "BootNotification",
                json!({"chargePointVendor": "K", "chargePointModel": "P"}),
            )
            .await
            .expect("boot");
        assert_eq!(boot["status"], "Accepted", "{boot}");
        agents.push((id.to_owned(), cp));
    }
    let phases_of = |id: &str| -> Vec<usize> {
        match id {
            "one-l1" => vec![0],
            "one-l2" => vec![1],
            "one-l3" => vec![2],
            _ => vec![0, 1, 2],
        }
    };
    let under_every_phase = |now: &HashMap<String, i64>| {
        let mut load = [0i64; 3];
        for (id, a) in now {
            for p in phases_of(id) {
                load[p] += a;
            }
        }
        match load.iter().all(|l| *l <= 25) {
            true => Ok(()),
            false => Err(format!("phases at {load:?} A on 25 A")),
        }
    };
    // The start storm: all six at once.
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let starts = agents.iter_mut().enumerate().map(|(i, (_, cp))| {
        let now = now.clone();
        async move {
            cp.call(
                "StartTransaction",
                json!({"connectorId": 1, "idTag": format!("04A1B2C{i}"), "meterStart": 0,
                       "timestamp": now}),
            )
            .await
            .expect("start answered")["transactionId"]
                .as_i64()
                .expect("an id")
        }
    });
    let tx: Vec<i64> = futures_util::future::join_all(starts).await;
    let mut taken: Vec<(f64, String, i64)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for (id, cp) in agents.iter_mut() {
            while let Some((at, p)) = cp
                .received_at_within("SetChargingProfile", Duration::from_millis(20))
                .await
            {
                if p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile" {
                    taken.push((at, id.clone(), limits(&p).0));
                }
            }
        }
        // (Checked once settled: a decrease still unread in another charger's pipe would
        // look like an overlap now.)
        let now = replay(&mut taken, |_| Ok(()));
        // Every session admitted at 6 A at least, and no phase has a whole ampere left
        // that one of its loads could take.
        let load = |p: usize| -> i64 {
            now.iter()
                .filter(|(id, _)| phases_of(id).contains(&p))
                .map(|(_, a)| a)
                .sum()
        };
        if now.len() == 6 && now.values().all(|a| *a >= 6) && (0..3).all(|p| load(p) >= 24) {
            replay(&mut taken, under_every_phase);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {now:?}"
        );
    }
    // The stop storm: the three three-phase chargers stop at once; each single-phase one
    // then gets its whole phase (25 A).
    let stop_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let stops = agents
        .iter_mut()
        .zip(&tx)
        .filter(|((id, _), _)| id.starts_with("three"))
        .map(|((_, cp), t)| {
            let stop_at = stop_at.clone();
            async move {
                cp.call(
                    "StopTransaction",
                    json!({"transactionId": t, "meterStop": 10, "timestamp": stop_at}),
                )
                .await
                .expect("stop answered");
            }
        });
    futures_util::future::join_all(stops).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for (id, cp) in agents.iter_mut() {
            while let Some((at, p)) = cp
                .received_at_within("SetChargingProfile", Duration::from_millis(20))
                .await
            {
                if p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile" {
                    taken.push((at, id.clone(), limits(&p).0));
                }
            }
        }
        // Stopped chargers draw nothing: they leave the sums.
        let mut now = replay(&mut taken, |_| Ok(()));
        now.retain(|id, _| id.starts_with("one"));
        if now.values().all(|a| *a == 25) && now.len() == 3 {
            // Stopped chargers draw nothing once stopped: the replay counts them at their
            // last limit, which is stricter still.
            let _ = replay(&mut taken, |_| Ok(()));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {now:?}"
        );
    }
    for (_, cp) in agents {
        cp.close().await;
    }
}

/// A charger that refuses every profile (no Smart Charging) charges at its rating: the
/// site counts it so, and the others on its circuit get what is left (nothing here), in a
/// site of either failsafe.
async fn a_charger_that_refuses_its_profiles_is_counted_at_its_rating(app: TestApp) {
    refusing_charger(app, "zero").await;
}

/// In a `reserve` site, the others' failsafe (their default while idle) is shared out of
/// what the refusing charger leaves: here 0 A.
async fn a_refusing_charger_leaves_no_failsafe_to_reserve(app: TestApp) {
    refusing_charger(app, "reserve").await;
}

async fn refusing_charger(app: TestApp, failsafe: &str) {
    let Some(py) = python() else { return };
    owner(&app).await;
    let (site_id, circuit) = site(&app, 100, 32, failsafe).await;
    let mut agents = Vec::new();
    for i in 0..3 {
        let id = format!("cp-{i}");
        let password = placed_ocpp(&app, &id, site_id, circuit).await;
        let mut cp = Agent::connect(&py, &app.base, &id, &password).await;
        if i == 0 {
            cp.respond("SetChargingProfile", json!({"status": "Rejected"}))
                .await;
        }
        let boot = cp
            .call(
                "BootNotification",
                json!({"chargePointVendor": "K", "chargePointModel": "P"}),
            )
            .await
            .expect("boot");
        assert_eq!(boot["status"], "Accepted", "{boot}");
        let started = cp
            .call(
                "StartTransaction",
                json!({"connectorId": 1, "idTag": format!("04A1B2C{i}"), "meterStart": 0,
                       "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)}),
            )
            .await
            .expect("start");
        assert_eq!(started["idTagInfo"]["status"], "Accepted", "{started}");
        agents.push((id, cp));
    }
    // cp-0 holds no profile: 32 A. Nothing is left for the two others, whatever they were
    // told on the way: the latest limit each took is 0 A.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut latest: HashMap<String, i64> = HashMap::new();
    loop {
        for (id, cp) in agents.iter_mut().skip(1) {
            while let Some(p) = cp
                .received_within("SetChargingProfile", Duration::from_millis(20))
                .await
            {
                let (first, after) = limits(&p);
                if p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile" {
                    latest.insert(id.clone(), first);
                    // Nothing left for a failsafe either.
                    assert_eq!(after.map(|a| a.1), Some(0), "{p}");
                } else {
                    latest.insert(format!("{id} default"), first);
                }
            }
        }
        let view = app
            .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
            .await;
        let paused = view.body["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .filter(|s| s["device"] != "cp-0" && s["paused"] == true && s["acked"] == true)
            .count();
        if paused == 2 && latest.values().all(|a| *a == 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{latest:?} {view:?}"
        );
    }
    for (_, cp) in agents {
        cp.close().await;
    }
}

/// A second site of `acme` with one circuit of 3×`circuit` A; (site, circuit).
async fn another_site(app: &TestApp, circuit: u32) -> (i64, i64) {
    let s = app
        .post(
            "/api/v1/sites",
            ADMIN_TOKEN,
            json!({"owner": "acme", "name": "Other", "limits_a": [100, 100, 100],
                   "failsafe": "zero", "lease_s": 120}),
        )
        .await;
    assert_eq!(s.status, 201, "{s:?}");
    let id = s.body["id"].as_i64().expect("id");
    let v = app.get(&format!("/api/v1/sites/{id}"), ADMIN_TOKEN).await;
    let root = v.body["nodes"][0]["id"].as_i64().expect("root");
    let n = app
        .post(
            &format!("/api/v1/sites/{id}/nodes"),
            ADMIN_TOKEN,
            json!({"parent": root, "name": "B", "limits_a": [circuit, circuit, circuit]}),
        )
        .await;
    assert_eq!(n.status, 201, "{n:?}");
    (id, n.body["id"].as_i64().expect("node"))
}

/// Boots a placed 1.6 charger and starts a transaction with tag `04A1B2C<i>`; its agent.
async fn charging(
    app: &TestApp,
    py: &std::path::Path,
    id: &str,
    password: &str,
    i: usize,
) -> Agent {
    let mut cp = Agent::connect(py, &app.base, id, password).await;
    let boot = cp
        .call(
            "BootNotification",
            json!({"chargePointVendor": "K", "chargePointModel": "P"}),
        )
        .await
        .expect("boot");
    assert_eq!(boot["status"], "Accepted", "{boot}");
    let started = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": format!("04A1B2C{i}"), "meterStart": 0,
                   "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)}),
        )
        .await
        .expect("start");
    assert_eq!(started["idTagInfo"]["status"], "Accepted", "{started}");
    cp
}

async fn a_silent_charger_on_one_site_delays_no_other_site(app: TestApp) {
    let Some(py) = python() else { return };
    owner(&app).await;
    // Site 1: a charger that takes 30 s to answer any profile (its socket stays open).
    let (site_a, circuit_a) = site(&app, 100, 32, "zero").await;
    let password = placed_ocpp(&app, "slow", site_a, circuit_a).await;
    let mut slow = Agent::connect(&py, &app.base, "slow", &password).await;
    slow.respond(
        "SetChargingProfile",
        json!({"status": "Accepted", "__delay": 30}),
    )
    .await;
    let boot = slow
        .call(
            "BootNotification",
            json!({"chargePointVendor": "K", "chargePointModel": "P"}),
        )
        .await
        .expect("boot");
    assert_eq!(boot["status"], "Accepted", "{boot}");
    // Site 2: a charger that starts meanwhile gets its default and its profile at once.
    let (site_b, circuit_b) = another_site(&app, 16).await;
    let password = placed_ocpp(&app, "quick", site_b, circuit_b).await;
    let asked = tokio::time::Instant::now();
    let mut quick = charging(&app, &py, "quick", &password, 1).await;
    let deadline = asked + Duration::from_secs(5);
    loop {
        let p = quick
            .received_within("SetChargingProfile", Duration::from_millis(100))
            .await;
        if p.is_some_and(|p| p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other site's charger waited for the silent one"
        );
    }
    quick.close().await;
    slow.close().await;
}

async fn a_charger_moved_while_offline_counts_at_what_it_was_last_sent(app: TestApp) {
    let Some(py) = python() else { return };
    owner(&app).await;
    let (site_a, circuit_a) = site(&app, 100, 32, "zero").await;
    let (site_b, circuit_b) = another_site(&app, 32).await;
    // M charges alone on site A: 32 A, for 120 s.
    let password = placed_ocpp(&app, "mover", site_a, circuit_a).await;
    let mut m = charging(&app, &py, "mover", &password, 0).await;
    loop {
        let p = m.received("SetChargingProfile").await;
        if p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile" {
            assert_eq!(limits(&p).0, 32, "{p}");
            break;
        }
    }
    // It goes offline and is moved onto site B's circuit, where two chargers charge.
    m.close().await;
    app.wait_for_online("mover", false).await;
    let p = app
        .put(
            "/api/v1/devices/mover/site",
            ADMIN_TOKEN,
            json!({"site": site_b, "node": circuit_b, "rotation": ["L1", "L2", "L3"],
                   "max_current_a": 32}),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    let mut others = Vec::new();
    for (i, id) in ["k1", "k2"].iter().enumerate() {
        let password = placed_ocpp(&app, id, site_b, circuit_b).await;
        others.push((
            id.to_string(),
            charging(&app, &py, id, &password, i + 1).await,
        ));
    }
    // M may still draw its 32 A until its lease ends: the two others get nothing.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut latest: HashMap<String, i64> = HashMap::new();
    while tokio::time::Instant::now() < until {
        for (id, cp) in others.iter_mut() {
            while let Some(p) = cp
                .received_within("SetChargingProfile", Duration::from_millis(50))
                .await
            {
                if p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile" {
                    latest.insert(id.clone(), limits(&p).0);
                }
            }
        }
    }
    assert_eq!(latest.values().sum::<i64>(), 0, "{latest:?}");
    assert_eq!(latest.len(), 2, "{latest:?}");
    for (_, cp) in others {
        cp.close().await;
    }
}

/// Three instances on one PostgreSQL, each holding one charger's socket: one instance at a
/// time allocates the site (its lease on the site's row), the others' chargers are told
/// through the instance that holds them, and the circuit holds from the chargers' side.
#[tokio::test]
async fn three_instances_share_a_site_out_once() {
    let Some(py) = python() else { return };
    let dir = charger_e2e::TempDir::new();
    let Some(db) = charger_e2e::fresh_database(Db::Postgres, &dir).await else {
        return;
    };
    let mut apps = Vec::new();
    for i in 0..3 {
        let data = dir.0.join(format!("instance-{i}"));
        std::fs::create_dir_all(&data).expect("data dir");
        let mut config = charger_server::Config::for_tests(data);
        config.database_url = Some(charger_server::secrets::Secret::new(db.clone()));
        config.admin_token = Some(charger_server::secrets::Secret::new(ADMIN_TOKEN));
        config.secret_file = Some(dir.0.join("server.secret"));
        config.site_tick_ms = 200;
        apps.push(
            charger_server::App::start(config)
                .await
                .expect("instance starts"),
        );
    }
    let rest: Vec<Rest> = apps
        .iter()
        .map(|a| TestApp::rest_of(format!("http://{}", a.http_addr)))
        .collect();
    owner(&rest[0]).await;
    let (site_id, circuit) = site(&rest[0], 100, 32, "zero").await;
    // All three placed first: a profile sent while fewer were placed would carry that
    // moment's larger failsafe share, and the bounds below are the final ones.
    let mut passwords = Vec::new();
    for (i, instance) in rest.iter().enumerate() {
        let id = format!("cp-{i}");
        passwords.push(placed_ocpp(instance, &id, site_id, circuit).await);
    }
    let mut agents = Vec::new();
    for ((i, instance), password) in rest.iter().enumerate().zip(passwords) {
        let id = format!("cp-{i}");
        let mut cp = Agent::connect(&py, &instance.base, &id, &password).await;
        let boot = cp
            .call(
                "BootNotification",
                json!({"chargePointVendor": "K", "chargePointModel": "P"}),
            )
            .await
            .expect("boot");
        assert_eq!(boot["status"], "Accepted", "{boot}");
        let started = cp
            .call(
                "StartTransaction",
                json!({"connectorId": 1, "idTag": format!("04A1B2C{i}"), "meterStart": 0,
                       "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)}),
            )
            .await
            .expect("start");
        assert_eq!(started["idTagInfo"]["status"], "Accepted", "{started}");
        agents.push((id, cp));
    }
    // 32 A among three: 11, 11, 10 (failsafe 10 A each).
    let mut latest = HashMap::new();
    until_leased(&mut agents, &mut latest, 32, (120, 10), |l| {
        l.len() == 3 && l.values().sum::<i64>() == 32
    })
    .await;
    let mut got: Vec<i64> = latest.values().copied().collect();
    got.sort_unstable();
    assert_eq!(got, vec![10, 11, 11]);
    for (_, cp) in agents {
        cp.close().await;
    }
    for app in apps {
        app.stop().await.expect("stops");
    }
}

async fn a_silent_charger_delays_no_decrease_on_its_own_site(app: TestApp) {
    let Some(py) = python() else { return };
    owner(&app).await;
    let (site_id, circuit) = site(&app, 100, 32, "zero").await;
    let v = app
        .get(&format!("/api/v1/sites/{site_id}"), ADMIN_TOKEN)
        .await;
    let root = v.body["nodes"][0]["id"].as_i64().expect("root");
    let n = app
        .post(
            &format!("/api/v1/sites/{site_id}/nodes"),
            ADMIN_TOKEN,
            json!({"parent": root, "name": "B", "limits_a": [32, 32, 32]}),
        )
        .await;
    assert_eq!(n.status, 201, "{n:?}");
    let other = n.body["id"].as_i64().expect("node");
    // An idle charger on the other circuit that answers no profile for 30 s.
    let password = placed_ocpp(&app, "slow", site_id, other).await;
    let mut slow = Agent::connect(&py, &app.base, "slow", &password).await;
    slow.respond(
        "SetChargingProfile",
        json!({"status": "Accepted", "__delay": 30}),
    )
    .await;
    let boot = slow
        .call(
            "BootNotification",
            json!({"chargePointVendor": "K", "chargePointModel": "P"}),
        )
        .await
        .expect("boot");
    assert_eq!(boot["status"], "Accepted", "{boot}");
    let password = placed_ocpp(&app, "hi", site_id, circuit).await;
    let mut hi = charging(&app, &py, "hi", &password, 1).await;
    loop {
        let p = hi.received("SetChargingProfile").await;
        if p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile" {
            assert_eq!(limits(&p).0, 32, "{p}");
            break;
        }
    }
    // Its circuit is lowered to 16 A: the decrease reaches it at once.
    let changed = tokio::time::Instant::now();
    let u = app
        .patch(
            &format!("/api/v1/sites/{site_id}/nodes/{circuit}"),
            ADMIN_TOKEN,
            json!({"name": "Circuit A", "limits_a": [16, 16, 16]}),
        )
        .await;
    assert_eq!(u.status, 200, "{u:?}");
    loop {
        let p = hi
            .received_within("SetChargingProfile", Duration::from_millis(100))
            .await;
        if p.is_some_and(|p| limits(&p).0 == 16) {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "the decrease waited for the silent charger"
        );
    }
    hi.close().await;
    slow.close().await;
}
