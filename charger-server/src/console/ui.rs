//! What every console page shares: the layout and navigation, the answer with its
//! security headers, the live part's fragment (with an ETag, so that an unchanged page
//! costs a 304), and how numbers, money, times and charger text are shown.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::flash::Flash;
use super::User;
use crate::service::Principal;

/// What every page may load and do: only this server's own script, style and forms.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page: its title, whether its `#live` part refreshes itself, the flash to show once,
/// and its main content.
pub struct Page<'a> {
    pub title: String,
    pub user: Option<&'a User>,
    pub live: bool,
    pub flash: Option<Flash>,
    pub body: Markup,
}

/// The navigation, with where the reader is.
fn nav(u: &User, current: &str) -> Markup {
    let mut links = vec![
        ("/", "Fleet"),
        ("/sessions", "Sessions"),
        ("/sessions?status=disputed", "Disputes"),
        ("/billing", "Billing"),
        ("/tags", "Tags"),
        ("/tariffs", "Tariffs"),
        ("/sites", "Sites"),
        ("/transfers", "Transfers"),
    ];
    match &u.who {
        Principal::Admin => links.push(("/owners", "Owners")),
        Principal::Owner(_) => links.push(("/tokens", "Tokens")),
    }
    html! {
        nav aria-label="Main" {
            @for (href, label) in links {
                @if label == current {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
        }
    }
}

/// The whole HTML document of a page.
pub fn document(p: &Page<'_>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (p.title) " · MyBox console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body data-live=(if p.live { "on" } else { "off" }) {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "MyBox" }
                    @if let Some(u) = p.user {
                        (nav(u, section_of(&p.title)))
                        form.signout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(u.csrf);
                            span.who { "Signed in as " strong { (u.name()) } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    h1 { (p.title) }
                    @if let Some(f) = &p.flash { (flash(f)) }
                    (p.body)
                }
            }
        }
    }
}

/// Which navigation entry a page title belongs to.
fn section_of(title: &str) -> &str {
    let first = title.split_whitespace().next().unwrap_or("");
    match first {
        "Charger" | "History" | "Fleet" => "Fleet",
        "Session" | "Sessions" => "Sessions",
        "Disputed" => "Disputes",
        "Tag" | "Tags" => "Tags",
        "Tariff" | "Tariffs" => "Tariffs",
        "Site" | "Sites" => "Sites",
        "Owner" | "Owners" => "Owners",
        other => other,
    }
}

/// A flash, shown once: the text, and what it hands over (a bundle, a code, a token).
fn flash(f: &Flash) -> Markup {
    let class = if f.ok { "notice ok" } else { "notice bad" };
    let role = if f.ok { "status" } else { "alert" };
    html! {
        div class=(class) role=(role) {
            p { (plain(&f.text)) }
            @if let Some(b) = &f.bundle {
                p { strong { "This bundle is shown once:" } " give it to the charger now." }
                pre { (serde_json::to_string_pretty(b).unwrap_or_default()) }
            }
            @if let Some((device, code)) = &f.code {
                p { "Enter this code at charger " strong { (plain(device)) } " (shown once):" }
                p.code { code { (code) } }
            }
            @if let Some(token) = &f.token {
                p { strong { "This token is shown once:" } }
                p.code { code { (token) } }
            }
        }
    }
}

/// The answer with a page: its document, and the security headers every page carries;
/// `clear` removes the flash cookie once shown.
pub fn respond(p: Page<'_>, status: StatusCode, clear: Option<HeaderValue>) -> Response {
    let mut res = (status, document(&p)).into_response();
    secure_headers(res.headers_mut());
    if let Some(c) = clear {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// Security headers of every console answer.
pub fn secure_headers(h: &mut HeaderMap) {
    for (k, v) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
}

/// The live part of a page alone (what `console.js` fetches every few seconds), with an
/// ETag: when the part has not changed since the caller's copy, 304 and no body.
pub fn fragment(live: Markup, headers: &HeaderMap) -> Response {
    let text = live.into_string();
    let tag = etag_of(&text);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag);
    let mut res = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], text).into_response()
    };
    secure_headers(res.headers_mut());
    // Never kept by the browser (owner data stays off the disk after sign-out); the script
    // sends the ETag it has itself.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// The ETag of a live part's text.
fn etag_of(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!("\"{}\"", hex::encode(&digest[..12]))
}

/// The live part's wrapper (what [`fragment`] answers).
pub fn live(inner: Markup) -> Markup {
    html! { div #live aria-live="polite" { (inner) } }
}

/// The live part in its page: carrying its fragment's ETag, so that the script's first
/// refresh is already a 304 when nothing changed.
pub fn live_in_page(inner: Markup) -> Markup {
    let tag = etag_of(&live(inner.clone()).into_string());
    html! { div #live aria-live="polite" data-etag=(tag) { (inner) } }
}

/// Text from chargers, cards or operators with the Unicode controls that reorder or hide
/// what follows (bidirectional overrides and isolates, zero-width marks) made visible as
/// U+FFFD, so a label cannot disguise itself or the text after it. Everything is escaped
/// by maud besides.
pub fn plain(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{061C}'
            | '\u{FEFF}' => '\u{FFFD}',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// An integer with thousands separators: `1234567` → `1,234,567`.
pub fn grouped(n: i128) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Energy in kWh with two decimals and separators: `95000` Wh → `95.00 kWh`,
/// `1234567` → `1,234.57 kWh` (rounded half away from zero, to the display only).
pub fn kwh(wh: i128) -> String {
    let sign = if wh < 0 { "-" } else { "" };
    let centi = (wh.unsigned_abs() + 5) / 10; // hundredths of a kWh
    let whole = i128::try_from(centi / 100).unwrap_or(i128::MAX);
    format!("{sign}{}.{:02} kWh", grouped(whole), centi % 100)
}

/// A decimal amount with separators and its currency: `1234.50` EUR → `1,234.50 EUR`.
pub fn money(amount: &str, currency: &str) -> String {
    let (sign, amount) = match amount.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", amount),
    };
    let (whole, fraction) = match amount.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (amount, None),
    };
    let whole = match whole.parse::<i128>() {
        Ok(n) => grouped(n),
        Err(_) => whole.to_owned(),
    };
    match fraction {
        Some(f) => format!("{sign}{whole}.{f} {currency}"),
        None => format!("{sign}{whole} {currency}"),
    }
}

/// A duration in words: `4530` s → `1 h 15 min 30 s`.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min {s} s"),
    }
}

/// A time, in UTC for the machine (`datetime`, and on hover), shown in the reader's time
/// zone by `console.js` (UTC without script).
pub fn time(t: DateTime<Utc>) -> Markup {
    let iso = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let utc = t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(iso) title=(utc) { (utc) } }
}

/// A time that may be missing.
pub fn time_or(t: Option<DateTime<Utc>>, missing: &str) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { (missing) },
    }
}

/// A time given as RFC 3339 text (as the session views carry them).
pub fn time_text(t: &str) -> Markup {
    match DateTime::parse_from_rfc3339(t) {
        Ok(t) => time(t.with_timezone(&Utc)),
        Err(_) => html! { (plain(t)) },
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(u: &User) -> Markup {
    html! { input type="hidden" name="csrf" value=(u.csrf); }
}

/// Online or offline, as a badge.
pub fn online(on: bool) -> Markup {
    html! {
        @if on { span.badge.on { "online" } } @else { span.badge.off { "offline" } }
    }
}

/// A connector's state (with its error code, when it reports one).
pub fn connector_state(state: &str, error: Option<&str>) -> Markup {
    let class = match state {
        "faulted" => "state faulted",
        "charging" => "state charging",
        "available" => "state available",
        _ => "state",
    };
    html! {
        span class=(class) { (plain(state)) }
        @if let Some(e) = error { " " span.error title="error code" { (plain(e)) } }
    }
}

/// A value for a link's query string, percent-encoded (`a b&c` → `a+b%26c`).
pub fn query_value(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shown_with_units_separators_and_currencies() {
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-1_000), "-1,000");
        assert_eq!(grouped(999), "999");
        assert_eq!(kwh(95_000), "95.00 kWh");
        assert_eq!(kwh(1_234_567), "1,234.57 kWh");
        assert_eq!(kwh(4), "0.00 kWh");
        assert_eq!(kwh(5), "0.01 kWh");
        assert_eq!(money("1234.50", "EUR"), "1,234.50 EUR");
        assert_eq!(money("5", "JPY"), "5 JPY");
        assert_eq!(money("-0.50", "EUR"), "-0.50 EUR");
        assert_eq!(money("-1234", "CZK"), "-1,234 CZK");
        assert_eq!(duration(4_530), "1 h 15 min 30 s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(61), "1 min 1 s");
        assert_eq!(plain("a\u{202E}b"), "a\u{FFFD}b");
        assert_eq!(query_value("acme-01"), "acme-01");
        assert_eq!(query_value("a b&c=d\r\n"), "a+b%26c%3Dd%0D%0A");
    }
}
