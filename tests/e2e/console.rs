//! The operator console in a real browser (headless Chromium, in a time zone that is not
//! UTC): an owner signs in, sees a charger come online, is told plainly when a remote start
//! with a blocked card is refused, starts a session remotely, watches its energy and
//! running cost grow without reloading, stops it (after a confirmation), reloads without
//! sending anything again, rotates credentials only after confirming, reads the charger's
//! history, the session with its duration and stop reason, one billing chart per currency
//! and the CSV; every page fits a phone's screen, with a 100-character firmware string.
//! At 10,000 chargers the fleet is paged and searched on the server and its live refresh
//! costs a 304 when nothing changed (sizes printed, recorded in docs/console.md).
//! Without a cookie every page sends to the sign-in; a form without its CSRF token is
//! refused.

use std::time::{Duration, Instant};

use charger_e2e::browser::Browser;
use charger_e2e::{spawn_app, TestApp, ADMIN_TOKEN};
use charger_firmware_sim::charger::Charger as Sim;
use charger_firmware_sim::script::{parse_script, run_step};
use fantoccini::{Client, Locator};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(25);
const DESKTOP: (u32, u32) = (1366, 900);
const PHONE: (u32, u32) = (390, 844);
/// The browser's time zone: +05:30 all year, so local times differ from UTC visibly.
const ZONE: &str = "Asia/Kolkata";

async fn play(c: &mut Sim, script: &str) {
    for step in parse_script(script).expect("script") {
        run_step(c, &step)
            .await
            .unwrap_or_else(|e| panic!("{step:?}: {e:#}\n{:#?}", c.events));
    }
}

/// The text of the first element of `class` in `source` (up to the next tag).
fn text_of<'a>(source: &'a str, class: &str) -> Option<&'a str> {
    let at = source.find(&format!("class=\"{class}\""))?;
    let rest = &source[at..];
    let start = rest.find('>')? + 1;
    rest[start..].split('<').next()
}

/// The energy shown in the page's first `.energy` element ("2,200.00 kWh"), in Wh.
fn energy_wh(source: &str) -> Option<i64> {
    let text = text_of(source, "energy")?.strip_suffix(" kWh")?;
    let (whole, hundredths) = text
        .replace(',', "")
        .split_once('.')
        .map(|(w, h)| (w.parse::<i64>().ok(), h.parse::<i64>().ok()))?;
    Some(whole? * 1000 + hundredths? * 10)
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let field = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn goto(browser: &Browser, base: &str, path: &str) -> String {
    browser
        .client
        .goto(&format!("{base}{path}"))
        .await
        .expect("goto");
    browser.wait_for_source(WAIT, |s| s.contains("<h1>")).await
}

async fn path_now(c: &Client) -> String {
    let url = c.current_url().await.expect("url");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

async fn sign_in(browser: &Browser, base: &str, token: &str) {
    let c = &browser.client;
    c.goto(&format!("{base}/login")).await.expect("goto");
    type_into(c, "#token", token).await;
    click(c, "form.card button[type=submit]").await;
    browser
        .wait_for_source(WAIT, |s| s.contains("Signed in as"))
        .await;
}

/// How many times `needle` occurs in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

async fn setup(app: &TestApp) -> (String, Vec<charger_protocol::FirmwareBundle>, String) {
    let acme = app.owner_with_token("acme").await;
    app.owner_with_token("beta").await;
    let chargers = app.provision("acme", 2).await;
    let foreign = app.provision("beta", 1).await.remove(0);
    for b in &chargers {
        let a = app
            .patch(
                &format!("/api/v1/devices/{}", b.device_id),
                ADMIN_TOKEN,
                json!({"max_power_w": 100_000_000}),
            )
            .await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    for (path, body) in [
        (
            "/api/v1/tariffs",
            json!({"id": "std", "owner": "acme", "currency": "EUR", "energy_per_kwh": "0.40",
                   "time_per_hour": "0", "session_fee": "0", "tax_rate": "0.2", "default": true}),
        ),
        (
            "/api/v1/tariffs",
            json!({"id": "czk", "owner": "acme", "currency": "CZK", "energy_per_kwh": "9.50",
                   "time_per_hour": "0", "session_fee": "5", "tax_rate": "0.21", "default": false}),
        ),
        (
            "/api/v1/tags",
            json!({"uid": "04A1B2C3", "owner": "acme", "role": "driver"}),
        ),
        (
            "/api/v1/tags",
            json!({"uid": "0BADCAFE", "owner": "acme", "role": "driver", "status": "blocked"}),
        ),
    ] {
        let a = app.post(path, ADMIN_TOKEN, body).await;
        assert_eq!(a.status, 201, "{a:?}");
    }
    let a = app
        .put(
            &format!("/api/v1/devices/{}/tariff", chargers[1].device_id),
            ADMIN_TOKEN,
            json!({"tariff": "czk"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    (acme, chargers, foreign.device_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_runs_a_charger_from_the_console_on_a_desk_and_on_a_phone() {
    let Some(browser) = Browser::start_in(ZONE).await else {
        return;
    };
    let app = spawn_app().await;
    let (acme, chargers, foreign) = setup(&app).await;
    let (b, b2) = (chargers[0].clone(), chargers[1].clone());
    let base = app.base.clone();
    let c = &browser.client;
    c.set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .expect("desktop size");
    let charger_page = format!("/chargers/{}", b.device_id);

    // Not signed in: every page sends to the sign-in.
    c.goto(&format!("{base}{charger_page}"))
        .await
        .expect("goto");
    assert_eq!(path_now(c).await, "/login");
    browser.screenshot("sign-in").await;

    sign_in(&browser, &base, &acme).await;
    let fleet = browser
        .wait_for_source(WAIT, |s| s.contains(&b.device_id))
        .await;
    assert!(fleet.contains("badge off"), "the charger starts offline");
    assert!(
        !fleet.contains(&foreign),
        "another owner's charger is listed"
    );

    // The charger connects, reporting a 100-character firmware string: the fleet shows it
    // online without a reload.
    let firmware = format!("mybox-fw-{}", "x".repeat(91));
    assert_eq!(firmware.len(), 100);
    let mut sim = Sim::new(b.clone(), Some(app.app.mqtt_addr.to_string()));
    sim.time_scale = 3600.0;
    sim.firmware = firmware.clone();
    play(&mut sim, "online\n").await;
    browser
        .wait_for_source(WAIT, |s| s.contains("badge on"))
        .await;

    // A remote start with a blocked card: the refusal is shown, nothing is sent.
    goto(&browser, &base, &charger_page).await;
    type_into(c, "#start-tag", "0BADCAFE").await;
    click(
        c,
        "form[action$='/commands/remote-start'] button[type=submit]",
    )
    .await;
    let refused = browser
        .wait_for_source(WAIT, |s| s.contains("notice bad"))
        .await;
    assert!(
        refused.contains("remote-start was not done: this tag is blocked"),
        "{}",
        text_of(&refused, "notice bad").unwrap_or_default()
    );
    assert_eq!(path_now(c).await, charger_page, "post/redirect/get");

    // A remote start with a good card: the charger accepts and a session starts.
    let serve = tokio::spawn(async move {
        play(&mut sim, "commands 8000ms\n").await;
        sim
    });
    type_into(c, "#start-tag", "04A1B2C3").await;
    click(
        c,
        "form[action$='/commands/remote-start'] button[type=submit]",
    )
    .await;
    let started = browser
        .wait_for_source(WAIT, |s| s.contains("notice ok"))
        .await;
    let mut sim = serve.await.expect("simulator");
    let session = sim.session_id().expect("a session");
    assert!(
        started.contains(&format!(
            "The charger accepted remote-start, and session #{session} started on connector 1."
        )),
        "{}",
        text_of(&started, "notice ok").unwrap_or_default()
    );

    // Its energy and running cost grow on the charger's page, live, in kWh and EUR.
    play(&mut sim, "charge 200ms 11000\n").await;
    let first = browser
        .wait_for_source(WAIT, |s| energy_wh(s).is_some_and(|e| e > 0))
        .await;
    let first_wh = energy_wh(&first).expect("energy");
    play(&mut sim, "charge 200ms 11000\n").await;
    let grown = browser
        .wait_for_source(WAIT, |s| energy_wh(s).is_some_and(|e| e > first_wh))
        .await;
    let cost = text_of(&grown, "cost").expect("the running cost");
    assert!(cost.ends_with(" EUR"), "{cost}");
    assert_ne!(cost, "0.00 EUR", "{cost}");
    assert!(
        grown.contains(&firmware),
        "the firmware string is shown whole"
    );

    // Times are in the browser's zone, with UTC on hover.
    let shown = c
        .execute(
            "const t = document.querySelector('time.local');
             return t ? [t.getAttribute('datetime'), t.textContent, t.title] : null;",
            vec![],
        )
        .await
        .expect("a time");
    let shown: Vec<String> = serde_json::from_value(shown).expect("a local time");
    let at = chrono::DateTime::parse_from_rfc3339(&shown[0]).expect("datetime");
    let kolkata = chrono::FixedOffset::east_opt(5 * 3600 + 1800).expect("offset");
    assert_eq!(
        shown[1],
        at.with_timezone(&kolkata)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        "{shown:?}"
    );
    assert!(shown[2].ends_with(" UTC"), "{shown:?}");
    browser.screenshot("charger-charging").await;
    c.set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("phone size");
    browser.screenshot("charger-charging-phone").await;
    c.set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .expect("desktop size");

    // Stop it: a confirmation first, then the outcome once, on the charger's page.
    let serve = tokio::spawn(async move {
        play(&mut sim, "commands 8000ms\n").await;
        sim
    });
    click(
        c,
        "form[action$='/commands/remote-stop'] button[type=submit]",
    )
    .await;
    let asked = c.get_alert_text().await.expect("a confirmation");
    assert!(asked.starts_with("Stop session"), "{asked}");
    c.accept_alert().await.expect("confirmed");
    browser
        .wait_for_source(WAIT, |s| s.contains("The charger accepted remote-stop."))
        .await;
    assert_eq!(path_now(c).await, charger_page, "post/redirect/get");
    let sim = serve.await.expect("simulator");
    assert_eq!(sim.session_id(), None, "{:#?}", sim.events);
    // The Stop button is gone once the charger has stopped (the live part follows it).
    let stopped = browser
        .wait_for_source(WAIT, |s| !s.contains("/commands/remote-stop"))
        .await;
    assert!(stopped.contains("No session in progress."));
    // A reload shows the page, and sends nothing again.
    c.refresh().await.expect("reload");
    let reloaded = browser.wait_for_source(WAIT, |s| s.contains("<h1>")).await;
    assert!(
        !reloaded.contains("The charger accepted remote-stop."),
        "shown once"
    );
    assert_eq!(count(&reloaded, ">command:remote-stop<"), 1, "stopped once");
    // (the refused start is recorded too, with its reason)
    assert_eq!(
        count(&reloaded, ">command:remote-start<"),
        2,
        "started once"
    );
    assert_eq!(count(&reloaded, ">tag_blocked<"), 1, "the refused start");

    // Rotation asks first; dismissed, nothing happens.
    click(c, "form[action$='/credentials'] button[type=submit]").await;
    let asked = c.get_alert_text().await.expect("a confirmation");
    assert!(asked.starts_with("Rotate the credentials?"), "{asked}");
    c.dismiss_alert().await.expect("dismissed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(path_now(c).await, charger_page);
    assert!(!c
        .source()
        .await
        .expect("source")
        .contains(">credentials:rotate<"));
    // Confirmed: the new bundle is shown once; a reload does not rotate again.
    click(c, "form[action$='/credentials'] button[type=submit]").await;
    c.accept_alert().await.expect("confirmed");
    let rotated = browser
        .wait_for_source(WAIT, |s| s.contains("New credentials."))
        .await;
    assert!(
        rotated.contains("This bundle is shown once"),
        "the bundle is shown"
    );
    assert_eq!(path_now(c).await, charger_page, "post/redirect/get");
    c.refresh().await.expect("reload");
    let reloaded = browser.wait_for_source(WAIT, |s| s.contains("<h1>")).await;
    assert!(
        !reloaded.contains("New credentials."),
        "the bundle is shown once"
    );
    assert_eq!(count(&reloaded, ">credentials:rotate<"), 1, "rotated once");

    // The charger's history: connections, status changes, requests, commands, filtered.
    let history = goto(&browser, &base, &format!("{charger_page}/history")).await;
    for kind in ["connected", "status", "request:boot", "command:remote-stop"] {
        assert!(
            history.contains(&format!(">{kind}<")),
            "{kind} in the history"
        );
    }
    c.find(Locator::Css("#kind"))
        .await
        .expect("filter")
        .select_by_value("connections")
        .await
        .expect("select");
    click(c, "form.filters button[type=submit]").await;
    let connections = browser
        .wait_for_source(WAIT, |s| {
            s.contains("kind=connections") || s.contains("value=\"connections\" selected")
        })
        .await;
    assert!(connections.contains(">connected<"), "{connections}");
    assert!(!connections.contains(">request:boot<"), "filtered");

    // The session: stopped remotely, its duration, energy in kWh, cost lines in EUR.
    let page = goto(&browser, &base, &format!("/sessions/{session}")).await;
    assert!(page.contains("<svg"), "the energy chart");
    for fact in ["Duration", "Stop reason", "remote", " kWh", " EUR"] {
        assert!(page.contains(fact), "{fact} on the session's page");
    }
    assert!(!page.contains("disputed (disputed)"));

    // A second charger on the CZK tariff: while it charges its page shows the Stop button;
    // when the car leaves, the live part drops it without a reload.
    let mut sim2 = Sim::new(b2.clone(), Some(app.app.mqtt_addr.to_string()));
    sim2.time_scale = 3600.0;
    play(
        &mut sim2,
        "online\ntap 04A1B2C3\nplug\ncharge 200ms 11000\n",
    )
    .await;
    goto(&browser, &base, &format!("/chargers/{}", b2.device_id)).await;
    browser
        .wait_for_source(WAIT, |s| s.contains("/commands/remote-stop"))
        .await;
    play(&mut sim2, "unplug\n").await;
    browser
        .wait_for_source(WAIT, |s| {
            !s.contains("/commands/remote-stop") && s.contains("No session in progress.")
        })
        .await;

    // Billing: one chart per currency, each with its axis, values and labels; the CSV.
    let billing = goto(&browser, &base, "/billing?group_by=device").await;
    assert_eq!(
        count(&billing, "<svg class=\"chart\""),
        2,
        "a chart per currency"
    );
    for currency in ["EUR", "CZK"] {
        assert!(
            billing.contains(&format!("Total billed in {currency} per device")),
            "{currency} chart"
        );
    }
    assert!(
        billing.contains(&format!(">{}<", b.device_id)),
        "bar labels"
    );
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
    assert!(csv.contains(&format!("{},CZK,1,", b2.device_id)), "{csv}");

    // A tariff created and changed from the console, each answered with a redirect.
    goto(&browser, &base, "/tariffs").await;
    type_into(c, "#new-id", "night").await;
    type_into(c, "#e-new", "0.25").await;
    click(c, "form[action='/tariffs'] button[type=submit]").await;
    browser
        .wait_for_source(WAIT, |s| s.contains("Tariff night created."))
        .await;
    assert_eq!(path_now(c).await, "/tariffs");
    c.find(Locator::XPath("//summary[contains(., 'Change czk')]"))
        .await
        .expect("the czk tariff's form")
        .click()
        .await
        .expect("open");
    type_into(c, "#e-czk", "9.75").await;
    click(c, "form[action='/tariffs/czk'] button[type=submit]").await;
    let changed = browser
        .wait_for_source(WAIT, |s| s.contains("Tariff czk changed"))
        .await;
    assert!(changed.contains("9.75 CZK"), "the new price is listed");

    // Another owner's charger: not found, as over REST.
    c.goto(&format!("{base}/chargers/{foreign}"))
        .await
        .expect("goto");
    let refused = browser.wait_for_source(WAIT, |s| s.contains("Error")).await;
    assert!(refused.contains("Error 404"), "{refused}");

    // Every page, at a desk and on a phone: nothing wider than the window, navigation
    // targets at least 44 px tall, and a focus ring that shows.
    let pages = [
        ("fleet", "/".to_owned()),
        ("charger", charger_page.clone()),
        ("history", format!("{charger_page}/history")),
        ("sessions", "/sessions".to_owned()),
        ("session", format!("/sessions/{session}")),
        ("disputes", "/sessions?status=disputed".to_owned()),
        ("billing", "/billing?group_by=device".to_owned()),
        ("tags", "/tags".to_owned()),
        ("tariffs", "/tariffs".to_owned()),
        ("transfers", "/transfers".to_owned()),
        ("tokens", "/tokens".to_owned()),
    ];
    for ((w, h), suffix) in [(DESKTOP, ""), (PHONE, "-phone")] {
        c.set_window_size(w, h).await.expect("window size");
        for (name, path) in &pages {
            goto(&browser, &base, path).await;
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
                "{name} scrolls sideways at {w}x{h}"
            );
            browser.screenshot(&format!("{name}{suffix}")).await;
        }
    }
    // (still at the phone's size, on the last page)
    let smallest = c
        .execute(
            "return Math.min(...Array.from(document.querySelectorAll('header nav a, header button'))
                 .map(a => a.getBoundingClientRect().height));",
            vec![],
        )
        .await
        .expect("heights");
    assert!(
        smallest.as_f64().is_some_and(|h| h >= 44.0),
        "navigation targets {smallest}"
    );
    goto(&browser, &base, "/tags").await;
    c.find(Locator::Css(
        "main input[type=text], main input:not([type=hidden])",
    ))
    .await
    .expect("a field")
    .click()
    .await
    .expect("focus");
    c.active_element()
        .await
        .expect("focused")
        .send_keys("\u{e004}")
        .await
        .expect("tab");
    let ring = c
        .execute(
            "const s = getComputedStyle(document.activeElement);
             return [s.outlineStyle, s.outlineColor, s.outlineWidth];",
            vec![],
        )
        .await
        .expect("outline");
    assert_eq!(
        ring,
        json!(["solid", "rgb(26, 26, 140)", "3px"]),
        "focus ring"
    );

    // The admin's pages: owners and their tokens.
    click(c, "form.signout button[type=submit]").await;
    browser
        .wait_for_source(WAIT, |s| s.contains("Sign in with"))
        .await;
    sign_in(&browser, &base, ADMIN_TOKEN).await;
    for ((w, h), suffix) in [(DESKTOP, ""), (PHONE, "-phone")] {
        c.set_window_size(w, h).await.expect("window size");
        let owners = goto(&browser, &base, "/owners").await;
        assert!(
            owners.contains(">acme<") && owners.contains(">beta<"),
            "owners listed"
        );
        browser.screenshot(&format!("owners{suffix}")).await;
    }
}

/// At 10,000 chargers the fleet page is one page of 50, searched on the server, and its
/// live refresh is a fragment whose repeat costs a 304 when nothing changed. The sizes and
/// times are printed (docs/console.md records them), never asserted as times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_chargers_are_paged_searched_and_refreshed_cheaply() {
    const FLEET: usize = 10_000;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app().await;
    let token = app.owner_with_token("big").await;
    let bundles = app.provision("big", FLEET).await;
    assert_eq!(bundles.len(), FLEET);
    let base = app.base.clone();
    let c = &browser.client;
    sign_in(&browser, &base, &token).await;

    // The first page: 50 chargers, and a link to the next 50.
    let t = Instant::now();
    let first = goto(&browser, &base, "/").await;
    let load_ms = t.elapsed().as_millis();
    let rows = count(&first, "href=\"/chargers/big-");
    assert_eq!(rows, 50, "one page of chargers");
    assert!(
        first.contains("10,000"),
        "the overview counts the whole fleet"
    );
    browser.screenshot("fleet-10000").await;
    let sizes = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             (async () => {
               const page = await fetch('/', {cache: 'no-store'});
               const pageBytes = (await page.arrayBuffer()).byteLength;
               const frag = await fetch('/?fragment=live', {cache: 'no-store'});
               const fragBytes = (await frag.arrayBuffer()).byteLength;
               const etag = frag.headers.get('ETag');
               const again = await fetch('/?fragment=live', {cache: 'no-store', headers: {'If-None-Match': etag}});
               const againBytes = (await again.arrayBuffer()).byteLength;
               done([pageBytes, fragBytes, again.status, againBytes, etag !== null]);
             })();",
            vec![],
        )
        .await
        .expect("sizes");
    let sizes: (u64, u64, u16, u64, bool) = serde_json::from_value(sizes).expect("numbers");
    let (page_bytes, fragment_bytes, status, unchanged_bytes, etag) = sizes;
    assert!(etag, "the fragment has an ETag");
    assert_eq!(
        (status, unchanged_bytes),
        (304, 0),
        "an unchanged fragment is a 304"
    );
    assert!(page_bytes < 200_000, "{page_bytes} bytes for one page");

    // The browser's own refreshes over 12 s: what they cost on the wire (the page carries
    // its live part's ETag, so even the first is a 304 when nothing changed).
    c.execute("performance.clearResourceTimings();", vec![])
        .await
        .expect("clear");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let refreshes = c
        .execute(
            "return performance.getEntriesByType('resource')
               .filter(e => e.name.includes('fragment=live'))
               .map(e => [e.transferSize, e.encodedBodySize, e.responseStatus || 0]);",
            vec![],
        )
        .await
        .expect("timings");
    let refreshes: Vec<(u64, u64, u16)> = serde_json::from_value(refreshes).expect("entries");
    let timed: Vec<_> = refreshes.iter().filter(|r| r.2 != 0 || r.0 != 0).collect();
    assert!(
        !timed.is_empty(),
        "the page refreshed itself: {refreshes:?}"
    );
    assert!(
        timed.iter().all(|r| r.1 == 0),
        "an unchanged fleet is refreshed with 304s only: {refreshes:?}"
    );
    let wire: u64 = timed.iter().map(|r| r.0).sum();
    let per_refresh = wire / timed.len() as u64;
    println!(
        "console at {FLEET} chargers: first page {page_bytes} bytes, loaded in {load_ms} ms; \
         live fragment {fragment_bytes} bytes; unchanged refresh {status} with {unchanged_bytes} \
         body bytes; the tab's own refreshes {refreshes:?}, {per_refresh} bytes each on the \
         wire, {} KB an hour per open tab",
        per_refresh * 720 / 1000
    );

    // The next page: 50 others.
    click(c, "a[href*='after=']").await;
    let next = browser
        .wait_for_source(WAIT, |s| s.contains("href=\"/chargers/big-00051\""))
        .await;
    assert_eq!(count(&next, "href=\"/chargers/big-"), 50);
    assert!(
        !next.contains("href=\"/chargers/big-00001\""),
        "{}",
        &next[..200]
    );

    // Search on the server: one charger of 10,000.
    let last = bundles.last().expect("a charger").device_id.clone();
    type_into(c, "#q", &last).await;
    let t = Instant::now();
    click(c, "form.filters button[type=submit]").await;
    let found = browser
        .wait_for_source(WAIT, |s| {
            s.contains("name=\"q\"") && count(s, "href=\"/chargers/big-") == 1
        })
        .await;
    println!(
        "console at {FLEET} chargers: a search answered in {} ms",
        t.elapsed().as_millis()
    );
    assert!(found.contains(&format!("href=\"/chargers/{last}\"")));
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

/// An owner sets a site up from the console (a site, a circuit, a charger placed on it) and
/// reads it at a desk and on a phone: its tree with each node's limit and what is given per
/// phase, its chargers with their failsafe, its sessions with their allocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_sets_a_site_up_and_reads_its_load_in_the_console() {
    let Some(browser) = Browser::start_in(ZONE).await else {
        return;
    };
    let app = spawn_app().await;
    let (acme, chargers, foreign) = setup(&app).await;
    let base = app.base.clone();
    let c = &browser.client;
    c.set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .expect("desktop size");
    sign_in(&browser, &base, &acme).await;
    goto(&browser, &base, "/sites").await;
    type_into(c, "#site-name", "Car park").await;
    for p in ["L1", "L2", "L3"] {
        type_into(c, &format!("#site-{p}"), "100").await;
    }
    type_into(c, "#site-derating", "80").await;
    click(c, "form.card button[type=submit]").await;
    let page = browser
        .wait_for_source(WAIT, |s| s.contains("Site Car park created"))
        .await;
    assert!(
        page.contains("L1 0 A of 80 A"),
        "derated connection: {page}"
    );
    let site_path = path_now(c).await;
    assert!(site_path.starts_with("/sites/"), "{site_path}");

    // A circuit under the connection.
    type_into(c, "#node-name", "Circuit A").await;
    for p in ["L1", "L2", "L3"] {
        type_into(c, &format!("#node-{p}"), "32").await;
    }
    click(c, "form[action$='/nodes'] button[type=submit]").await;
    browser
        .wait_for_source(WAIT, |s| s.contains("Circuit A added"))
        .await;
    // A charger on it (the circuit is the last node); another owner's is not found.
    let circuit = c
        .execute(
            "const o = document.querySelectorAll('#place-node option'); return o[o.length - 1].value;",
            vec![],
        )
        .await
        .expect("the circuit");
    let pick = format!(
        "document.querySelector('#place-node').value = '{}';",
        circuit.as_str().expect("a value")
    );
    for (device, ok) in [
        (chargers[0].device_id.as_str(), true),
        (foreign.as_str(), false),
    ] {
        type_into(c, "#place-device", device).await;
        c.execute(&pick, vec![]).await.expect("pick the circuit");
        click(c, "form[action$='/place'] button[type=submit]").await;
        let page = browser
            .wait_for_source(WAIT, |s| s.contains("placed.") || s.contains("not found"))
            .await;
        assert_eq!(page.contains(&format!("{device} placed.")), ok, "{page}");
    }
    let view = app.get(&format!("/api/v1{site_path}"), ADMIN_TOKEN).await;
    assert_eq!(
        view.body["chargers"][0]["device"],
        chargers[0].device_id.as_str(),
        "{view:?}"
    );
    assert_eq!(
        view.body["chargers"].as_array().map(Vec::len),
        Some(1),
        "{view:?}"
    );
    let page = goto(&browser, &base, &site_path).await;
    assert!(
        page.contains("L1 0 A of 32 A"),
        "the circuit's bars: {page}"
    );
    assert!(page.contains("No session is running"), "{page}");
    assert!(page.contains(">32 A<"), "the charger's failsafe: {page}");

    for ((w, h), suffix) in [(DESKTOP, ""), (PHONE, "-phone")] {
        c.set_window_size(w, h).await.expect("window size");
        for (name, path) in [("sites", "/sites".to_owned()), ("site", site_path.clone())] {
            goto(&browser, &base, &path).await;
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
                "{name} scrolls sideways at {w}x{h}"
            );
            browser.screenshot(&format!("{name}{suffix}")).await;
        }
    }
}
