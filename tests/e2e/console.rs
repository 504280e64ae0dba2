//! The operator console in a real browser (headless Chromium): an owner signs in, sees a
//! charger come online when the simulator connects, watches a session's energy grow
//! without reloading, stops it remotely, downloads the billing CSV, and is refused another
//! owner's charger. Without a cookie every page sends to the sign-in; a form without its
//! CSRF token is refused.

use std::time::Duration;

use charger_e2e::browser::Browser;
use charger_e2e::{spawn_app, ADMIN_TOKEN};
use charger_firmware_sim::charger::Charger as Sim;
use charger_firmware_sim::script::{parse_script, run_step};
use fantoccini::Locator;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

async fn play(c: &mut Sim, script: &str) {
    for step in parse_script(script).expect("script") {
        run_step(c, &step)
            .await
            .unwrap_or_else(|e| panic!("{step:?}: {e:#}\n{:#?}", c.events));
    }
}

/// The number before " Wh" in the page's `.energy` element.
fn energy(source: &str) -> Option<i64> {
    let at = source.find("class=\"energy\"")?;
    let rest = &source[at..];
    let start = rest.find('>')? + 1;
    rest[start..].split(" Wh").next()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_watches_a_charger_stops_its_session_and_downloads_the_bill() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app().await;
    let acme = app.owner_with_token("acme").await;
    app.owner_with_token("beta").await;
    let b = app.provision("acme", 1).await.remove(0);
    let foreign = app.provision("beta", 1).await.remove(0);
    let a = app
        .patch(
            &format!("/api/v1/devices/{}", b.device_id),
            ADMIN_TOKEN,
            json!({"max_power_w": 100_000_000}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    for (path, body) in [
        (
            "/api/v1/tariffs",
            json!({"id": "std", "owner": "acme", "currency": "EUR", "energy_per_kwh": "0.40",
                   "time_per_hour": "0", "session_fee": "0", "tax_rate": "0.2", "default": true}),
        ),
        (
            "/api/v1/tags",
            json!({"uid": "04A1B2C3", "owner": "acme", "role": "driver"}),
        ),
    ] {
        let a = app.post(path, ADMIN_TOKEN, body).await;
        assert_eq!(a.status, 201, "{a:?}");
    }
    let c = &browser.client;

    // Not signed in: every page sends to the sign-in.
    c.goto(&format!("{}/chargers/{}", app.base, b.device_id))
        .await
        .expect("goto");
    let url = c.current_url().await.expect("url");
    assert_eq!(url.path(), "/login");
    browser.screenshot("sign-in").await;

    // Sign in with the owner's token.
    c.find(Locator::Id("token"))
        .await
        .expect("token field")
        .send_keys(&acme)
        .await
        .expect("type");
    c.find(Locator::Css("form.card button[type=submit]"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
    let fleet = browser
        .wait_for_source(WAIT, |s| {
            s.contains("Signed in as") && s.contains(&b.device_id)
        })
        .await;
    assert!(fleet.contains("offline"), "the charger starts offline");
    assert!(
        !fleet.contains(&foreign.device_id),
        "another owner's charger is listed"
    );

    // The charger connects: the fleet shows it online without a reload.
    let mut sim = Sim::new(b.clone(), Some(app.app.mqtt_addr.to_string()));
    sim.time_scale = 3600.0;
    play(&mut sim, "online\n").await;
    browser
        .wait_for_source(WAIT, |s| s.contains("badge on"))
        .await;
    browser.screenshot("fleet").await;

    // A session: its energy grows on the charger's page, live.
    play(&mut sim, "tap 04A1B2C3\nplug\ncharge 200ms 11000\n").await;
    let session = sim.session_id().expect("a session");
    c.goto(&format!("{}/chargers/{}", app.base, b.device_id))
        .await
        .expect("goto");
    let first = browser
        .wait_for_source(WAIT, |s| energy(s).is_some_and(|e| e > 0))
        .await;
    let first = energy(&first).expect("energy");
    play(&mut sim, "charge 200ms 11000\n").await;
    browser
        .wait_for_source(WAIT, |s| energy(s).is_some_and(|e| e > first))
        .await;
    browser.screenshot("charger").await;

    // Stop it from the console: the charger answers the command while the page waits.
    let serve = tokio::spawn(async move {
        play(&mut sim, "commands 8000ms\n").await;
        sim
    });
    c.find(Locator::Css(
        "form[action$='/commands/remote-stop'] button[type=submit]",
    ))
    .await
    .expect("the stop button")
    .click()
    .await
    .expect("stop");
    // A destructive action asks first.
    let asked = c.get_alert_text().await.expect("a confirmation");
    assert!(asked.starts_with("Stop session"), "{asked}");
    c.accept_alert().await.expect("confirmed");
    let answered = browser
        .wait_for_source(WAIT, |s| s.contains("The charger answered remote-stop"))
        .await;
    assert!(
        answered.contains("remote-stop: accepted"),
        "the charger's answer is shown"
    );
    let sim = serve.await.expect("simulator");
    assert_eq!(sim.session_id(), None, "{:#?}", sim.events);
    c.goto(&format!("{}/sessions/{session}", app.base))
        .await
        .expect("goto");
    browser
        .wait_for_source(WAIT, |s| s.contains("stopped") && s.contains("<svg"))
        .await;
    browser.screenshot("session").await;

    // The bill: the page, then its CSV, downloaded with the session cookie.
    c.goto(&format!("{}/billing?group_by=device", app.base))
        .await
        .expect("goto");
    browser
        .wait_for_source(WAIT, |s| s.contains("Download CSV"))
        .await;
    browser.screenshot("billing").await;
    let csv = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const href = document.querySelector('a[download]').getAttribute('href');
             fetch(href).then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .expect("download");
    let csv = csv.as_str().expect("CSV text");
    assert!(
        csv.starts_with("group,currency,sessions,energy_wh,net,tax,total\r\n"),
        "{csv}"
    );
    assert!(csv.contains(&format!("{},EUR,1,", b.device_id)), "{csv}");

    // Another owner's charger: not found, as over REST.
    c.goto(&format!("{}/chargers/{}", app.base, foreign.device_id))
        .await
        .expect("goto");
    let refused = browser.wait_for_source(WAIT, |s| s.contains("Error")).await;
    assert!(refused.contains("Error 404"), "{refused}");

    for page in ["tags", "transfers"] {
        c.goto(&format!("{}/{page}", app.base)).await.expect("goto");
        browser.wait_for_source(WAIT, |s| s.contains("<h1>")).await;
        browser.screenshot(page).await;
    }

    // On a phone's screen the charger's page still fits: nothing wider than the window.
    c.set_window_size(390, 844).await.expect("phone size");
    c.goto(&format!("{}/chargers/{}", app.base, b.device_id))
        .await
        .expect("goto");
    browser.wait_for_source(WAIT, |s| s.contains("<h1>")).await;
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .expect("widths");
    assert_eq!(
        overflow.as_i64(),
        Some(0),
        "the page scrolls sideways on a phone"
    );
    browser.screenshot("charger-phone").await;
}

/// A form posted without the session's CSRF token is refused, even with the cookie.
#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let app = spawn_app().await;
    let acme = app.owner_with_token("acme").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .post(format!("{}/login", app.base))
        .form(&[("token", acme.as_str())])
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 303);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = http
        .get(format!("{}/tags", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("tags");
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let forged = http
        .post(format!("{}/tags/import", app.base))
        .header("cookie", &cookie)
        .form(&[("csv", "uid\n04A1B2C3\n"), ("csrf", "0000")])
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 403);
    let bad = http
        .post(format!("{}/login", app.base))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .expect("bad login");
    assert_eq!(bad.status(), 401);
}
