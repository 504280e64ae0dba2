//! `charger-firmware-sim`: plays MyBox chargers against the backend.
//!
//! - [`link`]: one charger's MQTT connection (REQ/RES, commands) on the protocol crate.
//! - [`charger`]: the charger itself: taps, plug, energy, offline queue, local list.
//! - [`load`]: many chargers, a request mix, a target rate, and the report.
//! - [`ocpp`]: OCPP 1.6J chargers: the WebSocket link and a scripted charger.
//! - [`script`]: the steps of scripted and interactive runs.
//! - [`read_bundles`]: the firmware bundle files the server issues.

pub mod charger;
pub mod link;
pub mod load;
pub mod ocpp;
pub mod script;

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{bail, Context as _};
use charger_protocol::FirmwareBundle;

/// Reads a JSON-lines bundle file (as `charger-server provision` writes it), checking
/// every bundle; an error names the line.
pub fn read_bundles(reader: impl BufRead) -> anyhow::Result<Vec<FirmwareBundle>> {
    let mut bundles = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let bundle: FirmwareBundle = serde_json::from_str(&line)
            .with_context(|| format!("line {}: not a firmware bundle", n + 1))?;
        bundle
            .validate()
            .with_context(|| format!("line {}: {}", n + 1, bundle.device_id))?;
        bundles.push(bundle);
    }
    if bundles.is_empty() {
        bail!("no bundles in the file");
    }
    Ok(bundles)
}

/// A one-screen summary: how many chargers, per owner, and the brokers they use.
pub fn summarize(bundles: &[FirmwareBundle]) -> String {
    let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
    let mut brokers: BTreeMap<String, usize> = BTreeMap::new();
    for b in bundles {
        *owners.entry(&b.owner).or_default() += 1;
        *brokers
            .entry(format!("{}:{}", b.mqtt.host, b.mqtt.port))
            .or_default() += 1;
    }
    let mut out = format!("{} chargers\n", bundles.len());
    for (owner, n) in owners {
        out.push_str(&format!("  owner {owner}: {n}\n"));
    }
    for (broker, n) in brokers {
        out.push_str(&format!("  broker {broker}: {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"device_id":"cp-1","owner":"acme","mqtt":{"host":"h","port":1883,"username":"cp-1","password":"p"},"key":"0000000000000000000000000000000000000000000000000000000000000000"}"#;

    #[test]
    fn reads_and_summarizes_a_bundle_file() {
        let text = format!("{GOOD}\n\n");
        let bundles = read_bundles(text.as_bytes()).expect("valid");
        assert_eq!(bundles.len(), 1);
        assert!(summarize(&bundles).contains("owner acme: 1"));
    }

    #[test]
    fn a_bad_line_is_named() {
        let text = format!("{GOOD}\n{{\"device_id\": 1}}\n");
        let err = read_bundles(text.as_bytes()).expect_err("invalid");
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        let wrong_key = GOOD.replace("\"key\":\"00", "\"key\":\"zz");
        let err = read_bundles(wrong_key.as_bytes()).expect_err("invalid");
        assert!(format!("{err:#}").contains("key"), "{err:#}");
    }
}
