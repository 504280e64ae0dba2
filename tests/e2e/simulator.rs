//! The simulator's scenarios against a real server: a charger charging a car, an
//! installer enrolling a card, an offline charger replaying its session, a remote stop.
//! Load mode with a small fleet, and the echo diagnostic it measures the broker with.
//! Short and bounded: energy flows at 3,600 simulated seconds per real second. Each
//! charger scenario runs in envelope v2 (the simulator's default) and in v1.

use std::time::Duration;

use charger_e2e::{spawn_app, TestApp, ADMIN_TOKEN};
use charger_firmware_sim::charger::Charger;
use charger_firmware_sim::script::{parse_script, run_step};
use charger_protocol::Version;
use serde_json::json;

async fn setup(app: &TestApp) -> Charger {
    let b = app.provision("acme", 1).await.remove(0);
    // Energy flows 3,600 times faster than real time: to the server, an 11 kW charge looks
    // like 39.6 MW, which it refuses from a 22 kW charger.
    let a = app
        .patch(
            &format!("/api/v1/devices/{}", b.device_id),
            ADMIN_TOKEN,
            json!({"max_power_w": 100_000_000}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["max_power_w"], 100_000_000);
    let a = app
        .post(
            "/api/v1/tariffs",
            ADMIN_TOKEN,
            json!({"id": "std", "owner": "acme", "currency": "EUR", "energy_per_kwh": "0.40",
                   "time_per_hour": "0", "session_fee": "0", "tax_rate": "0.2", "default": true}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    for (uid, role) in [("04A1B2C3", "driver"), ("11111111", "installer")] {
        let a = app
            .post(
                "/api/v1/tags",
                ADMIN_TOKEN,
                json!({"uid": uid, "owner": "acme", "role": role}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
    }
    let mut c = Charger::new(b, Some(app.app.mqtt_addr.to_string()));
    c.time_scale = 3600.0;
    c.replay_pause = Duration::from_millis(5);
    c
}

async fn play(c: &mut Charger, script: &str) {
    for step in parse_script(script).expect("script") {
        run_step(c, &step)
            .await
            .unwrap_or_else(|e| panic!("{step:?}: {e:#}\n{:#?}", c.events));
    }
}

fn saw(c: &Charger, line: &str) -> bool {
    c.events.iter().any(|e| e == line)
}

async fn a_charger_charges_a_car_and_is_billed(envelope: Version) {
    let app = spawn_app().await;
    let mut c = setup(&app).await;
    c.envelope = envelope;
    // 250 ms at 3,600x is 15 simulated minutes: 11 kW gives 2,750 Wh -> 1.10 EUR net.
    play(
        &mut c,
        "online\ntap 04a1b2c3\nplug\ncharge 250ms 11000\nunplug\n",
    )
    .await;
    assert!(saw(&c, "session-start -> 201"), "{:#?}", c.events);
    assert!(saw(&c, "running cost 1.10 EUR"), "{:#?}", c.events);
    assert!(
        saw(&c, "billed 2750 Wh: net 1.10 tax 0.22 total 1.32 EUR"),
        "{:#?}",
        c.events
    );
}

async fn an_installer_enrolls_a_card_that_then_charges(envelope: Version) {
    let app = spawn_app().await;
    let mut c = setup(&app).await;
    c.envelope = envelope;
    play(
        &mut c,
        "online\ntap 11111111\ntap 0a0b0c0d\ntap 11111111\ntap 0a0b0c0d\nplug\n",
    )
    .await;
    assert!(saw(&c, "installer mode on"), "{:#?}", c.events);
    assert!(saw(&c, "tag-enroll -> 201"), "{:#?}", c.events);
    assert!(saw(&c, "session-start -> 201"), "{:#?}", c.events);
}

async fn an_offline_charger_queues_its_session_and_replays_it_in_order(envelope: Version) {
    let app = spawn_app().await;
    let mut c = setup(&app).await;
    c.envelope = envelope;
    play(
        &mut c,
        "online\noffline\ntap 04A1B2C3\nplug\ncharge 100ms 7200\nunplug\ntap DEADBEEF\n",
    )
    .await;
    assert_eq!(c.queued(), 3, "{:#?}", c.events);
    assert!(saw(&c, "DEADBEEF refused offline"), "not in the local list");
    play(&mut c, "online\n").await;
    assert_eq!(c.queued(), 0);
    let replayed: Vec<&String> = c
        .events
        .iter()
        .filter(|e| e.starts_with("session-") || e.starts_with("meter-"))
        .collect();
    assert_eq!(
        replayed,
        vec![
            "session-start queued",
            "meter-values queued",
            "session-stop queued",
            "session-start -> 201",
            "meter-values -> 200",
            "session-stop -> 200"
        ]
    );
    let sessions = app.get("/api/v1/sessions", ADMIN_TOKEN).await;
    let s = &sessions.body["sessions"][0];
    assert_eq!(
        (s["offline"].clone(), s["energy_wh"].clone()),
        (json!(true), json!(720))
    );
}

async fn a_remote_stop_ends_the_session(envelope: Version) {
    let app = spawn_app().await;
    let mut c = setup(&app).await;
    c.envelope = envelope;
    play(&mut c, "online\ntap 04A1B2C3\nplug\ncharge 100ms 3600\n").await;
    let session = c.session_id().expect("a session");
    let path = format!(
        "{}/api/v1/devices/{}/commands/remote-stop",
        app.base, c.bundle.device_id
    );
    let http = app.http.clone();
    let rest = tokio::spawn(async move {
        http.post(path)
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"session_id": session}))
            .send()
            .await
            .expect("REST")
            .json::<serde_json::Value>()
            .await
            .expect("json")
    });
    play(&mut c, "commands 1500ms\n").await;
    let answer = rest.await.expect("joined");
    assert_eq!(answer["answer"], json!({"status": "accepted"}));
    assert!(saw(&c, "command remote-stop accepted"), "{:#?}", c.events);
    assert!(saw(&c, "session-stop -> 200"), "{:#?}", c.events);
    assert_eq!(c.session_id(), None);
}

/// Load mode: a small fleet plays a mix for a bounded time; the report adds up with what
/// the server stored.
#[tokio::test]
async fn load_mode_plays_a_fleet_and_its_report_matches_the_server() {
    use charger_firmware_sim::load::{run, LoadConfig};
    let app = spawn_app().await;
    let bundles = app.provision("acme", 6).await;
    let tags: Vec<String> = (0..3).map(|i| format!("BE00000{i}")).collect();
    for t in &tags {
        let a = app
            .post(
                "/api/v1/tags",
                ADMIN_TOKEN,
                json!({"uid": t, "owner": "acme", "max_sessions": 2}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
    }
    let config = LoadConfig {
        broker: Some(app.app.mqtt_addr.to_string()),
        mix: "authorize=2,session=1,status=1".parse().expect("mix"),
        duration: Duration::from_millis(1500),
        tags: tags.clone(),
        ..LoadConfig::default()
    };
    let report = run(&bundles, config).await.expect("load run");
    assert_eq!(report.connected, 6, "{}", report.text());
    assert!(report.errors.is_empty(), "{}", report.text());
    assert_eq!(report.reconnects, 0);
    let count = |e: &str| report.endpoints.get(e).map_or(0, |l| l.count);
    assert!(
        count("authorize") > 0 && count("status") > 0,
        "{}",
        report.text()
    );
    assert!(count("session-start") > 0, "{}", report.text());
    assert_eq!(
        report.requests,
        ["authorize", "status", "session-start", "session-stop"]
            .iter()
            .map(|e| count(e))
            .sum::<u64>()
    );
    // Every session the fleet started was stopped (one cut by the deadline is stopped
    // unmeasured), and billed.
    let mut stopped = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/sessions?limit=200&cursor={c}"),
            None => "/api/v1/sessions?limit=200".to_owned(),
        };
        let page = app.get(&path, ADMIN_TOKEN).await;
        assert_eq!(page.status, 200, "{page:?}");
        for s in page.body["sessions"].as_array().expect("sessions") {
            assert_eq!(s["status"], "stopped", "{s}");
            assert_eq!(
                s["energy_wh"],
                charger_firmware_sim::load::SESSION_WH,
                "{s}"
            );
            stopped += 1;
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(stopped, count("session-start"), "{}", report.text());
    assert!(count("session-stop") <= stopped);

    // A request budget ends the run by itself, long before the deadline.
    let config = LoadConfig {
        broker: Some(app.app.mqtt_addr.to_string()),
        mix: "authorize".parse().expect("mix"),
        duration: Duration::from_secs(30),
        max_requests: Some(40),
        tags,
        ..LoadConfig::default()
    };
    let report = run(&bundles, config).await.expect("load run");
    assert_eq!(report.requests, 40, "{}", report.text());
    assert!(report.errors.is_empty(), "{}", report.text());
    assert!(report.elapsed_s < 20.0, "{}", report.text());
}

/// The `echo` diagnostic sends the payload back only when the server enables it; then
/// it is an unknown endpoint like any other.
#[tokio::test]
async fn echo_is_answered_only_when_enabled() {
    use charger_firmware_sim::load::{run, LoadConfig};
    let config = |app: &TestApp| LoadConfig {
        broker: Some(app.app.mqtt_addr.to_string()),
        mix: "echo".parse().expect("mix"),
        duration: Duration::from_secs(30),
        max_requests: Some(20),
        ..LoadConfig::default()
    };
    let on = charger_e2e::spawn_app_with(charger_e2e::default_db(), |c| c.mqtt_echo = true)
        .await
        .expect("server");
    let bundles = on.provision("acme", 2).await;
    let report = run(&bundles, config(&on)).await.expect("load run");
    assert_eq!(report.requests, 20, "{}", report.text());
    assert!(report.errors.is_empty(), "{}", report.text());

    let off = spawn_app().await;
    let bundles = off.provision("acme", 2).await;
    let report = run(&bundles, config(&off)).await.expect("load run");
    assert_eq!(report.errors.get("404"), Some(&20), "{}", report.text());
}

/// Every scenario, in envelope v2 (the simulator's default) and in v1.
mod envelopes {
    use super::Version;

    #[tokio::test]
    async fn a_charger_charges_a_car_and_is_billed_v2() {
        super::a_charger_charges_a_car_and_is_billed(Version::V2).await;
    }

    #[tokio::test]
    async fn a_charger_charges_a_car_and_is_billed_v1() {
        super::a_charger_charges_a_car_and_is_billed(Version::V1).await;
    }

    #[tokio::test]
    async fn an_installer_enrolls_a_card_that_then_charges_v2() {
        super::an_installer_enrolls_a_card_that_then_charges(Version::V2).await;
    }

    #[tokio::test]
    async fn an_installer_enrolls_a_card_that_then_charges_v1() {
        super::an_installer_enrolls_a_card_that_then_charges(Version::V1).await;
    }

    #[tokio::test]
    async fn an_offline_charger_queues_its_session_and_replays_it_in_order_v2() {
        super::an_offline_charger_queues_its_session_and_replays_it_in_order(Version::V2).await;
    }

    #[tokio::test]
    async fn an_offline_charger_queues_its_session_and_replays_it_in_order_v1() {
        super::an_offline_charger_queues_its_session_and_replays_it_in_order(Version::V1).await;
    }

    #[tokio::test]
    async fn a_remote_stop_ends_the_session_v2() {
        super::a_remote_stop_ends_the_session(Version::V2).await;
    }

    #[tokio::test]
    async fn a_remote_stop_ends_the_session_v1() {
        super::a_remote_stop_ends_the_session(Version::V1).await;
    }
}
