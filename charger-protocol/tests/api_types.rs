//! The wire types against the docs: the worked examples' bodies round-trip through them
//! byte for byte, and the endpoint table of docs/mqtt-api.md names exactly the fields of
//! each `*Request` and `*Response`.

use std::collections::BTreeSet;

use charger_protocol::api::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/mqtt-api.md");
    std::fs::read_to_string(path).expect("docs/mqtt-api.md")
}

fn value_after(doc: &str, marker: &str, label: &str) -> String {
    let block = &doc[doc.find(marker).expect("marker")..];
    block
        .lines()
        .find_map(|l| l.strip_prefix(label).map(str::trim))
        .expect("label")
        .to_owned()
}

#[test]
fn the_worked_examples_bodies_round_trip() {
    let doc = doc();
    let body = value_after(&doc, "<!-- worked-example -->", "plaintext:");
    let parsed: AuthorizeResponse = serde_json::from_str(&body).expect("an authorize answer");
    assert_eq!(serde_json::to_string(&parsed).expect("json"), body);
    let params = value_after(&doc, "<!-- worked-example-v2 -->", "params:");
    let parsed: AuthorizeRequest = serde_json::from_str(&params).expect("authorize params");
    assert_eq!(serde_json::to_string(&parsed).expect("json"), params);
}

/// The top-level keys of a value's JSON.
fn keys<T: Serialize>(v: &T) -> BTreeSet<String> {
    match serde_json::to_value(v).expect("json") {
        serde_json::Value::Object(o) => o.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

/// The field names a table cell names: backticked identifiers outside parentheses and
/// braces (`status: "accepted"` counts as `status`).
fn names(cell: &str) -> BTreeSet<String> {
    let mut depth = 0;
    let mut flat = String::new();
    for c in cell.chars() {
        match c {
            '(' | '{' => depth += 1,
            ')' | '}' => depth -= 1,
            _ if depth == 0 => flat.push(c),
            _ => {}
        }
    }
    flat.split('`')
        .skip(1)
        .step_by(2)
        .map(|w| w.split(':').next().unwrap_or_default().trim().to_owned())
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

fn t() -> DateTime<Utc> {
    "2026-11-30T12:00:00Z".parse().expect("time")
}

/// (endpoint, request with every field, answer with every field)
fn full_examples() -> Vec<(Endpoint, BTreeSet<String>, BTreeSet<String>)> {
    let s = || "x".to_owned();
    let tariff = TariffSnapshot {
        id: Some(s()),
        currency: s(),
        energy_per_kwh: s(),
        time_per_hour: s(),
        session_fee: s(),
        tax_rate: s(),
    };
    let credentials = CredentialsResponse {
        owner: s(),
        public: s(),
        credentials: s(),
    };
    vec![
        (
            Endpoint::Boot,
            keys(&BootRequest {
                firmware: s(),
                model: s(),
                connectors: 1,
            }),
            keys(&BootResponse {
                server_time: t(),
                heartbeat_s: 1,
                owner: s(),
                connectors: 1,
            }),
        ),
        (
            Endpoint::Status,
            keys(&StatusRequest {
                connector: 1,
                state: ConnectorState::Faulted,
                error: Some(s()),
            }),
            keys(&Empty {}),
        ),
        (
            Endpoint::Authorize,
            keys(&AuthorizeRequest {
                tag: s(),
                connector: 1,
                session_id: Some(1),
                local_id: Some(s()),
            }),
            keys(&AuthorizeResponse {
                tag: s(),
                status: s(),
                role: TagRole::Driver,
                expires_at: Some(t()),
                group: Some(s()),
                session_id: Some(1),
            }),
        ),
        (
            Endpoint::SessionStart,
            keys(&SessionStartRequest {
                tag: s(),
                connector: 1,
                meter_start_wh: 0,
                started_at: t(),
                local_id: Some(s()),
            }),
            keys(&SessionStartResponse {
                session_id: 1,
                tariff,
            }),
        ),
        (
            Endpoint::MeterValues,
            keys(&MeterValuesRequest {
                session_id: Some(1),
                local_id: Some(s()),
                samples: vec![],
            }),
            keys(&MeterValuesResponse {
                session_id: 1,
                energy_wh: 1,
                net: s(),
                currency: s(),
            }),
        ),
        (
            Endpoint::SessionStop,
            keys(&SessionStopRequest {
                session_id: Some(1),
                local_id: Some(s()),
                meter_stop_wh: 1,
                stopped_at: t(),
                reason: StopReason::Local,
            }),
            keys(&SessionStopResponse {
                session_id: 1,
                energy_wh: 1,
                duration_s: 1,
                net: s(),
                tax: s(),
                total: s(),
                currency: s(),
                disputed: Some(true),
            }),
        ),
        (
            Endpoint::TagEnroll,
            keys(&TagEnrollRequest {
                installer_tag: s(),
                tag: s(),
                label: Some(s()),
                expires_at: Some(t()),
            }),
            keys(&TagEnrollResponse {
                tag: s(),
                owner: s(),
            }),
        ),
        (
            Endpoint::OwnershipClaim,
            keys(&OwnershipClaimRequest {
                code: s(),
                public: s(),
            }),
            keys(&credentials),
        ),
        (
            Endpoint::LocalList,
            keys(&LocalListRequest { version: 0 }),
            keys(&LocalListResponse {
                version: 0,
                reset: false,
                more: false,
                tags: vec![],
                removed: vec![],
            }),
        ),
        (
            Endpoint::Rekey,
            keys(&RekeyRequest { public: s() }),
            keys(&credentials),
        ),
        (
            Endpoint::Heartbeat,
            keys(&HeartbeatRequest {}),
            keys(&HeartbeatResponse { server_time: t() }),
        ),
        (
            Endpoint::Offline,
            keys(&OfflineRequest {}),
            keys(&OfflineResponse {}),
        ),
    ]
}

#[test]
fn the_endpoint_table_names_exactly_the_types_fields() {
    let doc = doc();
    let table = &doc[doc.find("## Endpoints").expect("the section")..];
    let examples = full_examples();
    assert_eq!(
        examples.len(),
        Endpoint::ALL.len(),
        "every endpoint has an example"
    );
    for (endpoint, request, answer) in examples {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", endpoint.as_str())))
            .unwrap_or_else(|| panic!("{} is in the table", endpoint.as_str()));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | name | data | success | errors |
        assert_eq!(names(cells[2]), request, "{}: data", endpoint.as_str());
        // `disputed` is stop's extra, documented under "Billing inputs".
        let mut documented = names(cells[3]);
        if endpoint == Endpoint::SessionStop {
            documented.insert("disputed".into());
        }
        assert_eq!(documented, answer, "{}: success", endpoint.as_str());
    }
}
