//! Bulk tag import from CSV (`POST /api/v1/tags/import`, `Content-Type: text/csv`).
//!
//! RFC 4180: a header row naming the columns (`uid` required; `owner`, `role`, `status`,
//! `expires_at`, `group`, `devices`, `max_sessions`, `label` optional, in any order),
//! quoted fields with `""` for a quote, CRLF or LF line ends. `devices` lists charger ids
//! separated by `;`. Empty cells take the defaults of `POST /api/v1/tags`. All rows or
//! none: the first bad row is a 422 naming its line and column.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{check_max_sessions, check_text, Tag, TagRole, TagStatus};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, OwnerId, TagUid};
use crate::service::{Principal, Service};

/// Most rows one import may hold.
pub const MAX_IMPORT_ROWS: usize = 10_000;

const COLUMNS: &[&str] = &[
    "uid",
    "owner",
    "role",
    "status",
    "expires_at",
    "group",
    "devices",
    "max_sessions",
    "label",
];

/// Splits CSV text into records of fields (RFC 4180, read by the `csv` crate), with the
/// line each record starts on; empty lines are skipped, records may differ in length (the
/// caller names the row that does).
pub fn parse_csv(text: &str) -> std::result::Result<Vec<(usize, Vec<String>)>, String> {
    // The reader is lenient with stray quotes; in RFC 4180 they always pair up (a quoted
    // field's two, and `""` inside it), so an odd count is a field left open.
    if text.bytes().filter(|b| *b == b'"').count() % 2 == 1 {
        return Err("a quoted field is not closed".to_owned());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => format!("line {}: {}", p.line(), csv_error(&e)),
            None => csv_error(&e),
        })?;
        // The line the record starts on, from its byte offset (which may point at the
        // line end before it: skip that).
        let mut start = record
            .position()
            .and_then(|p| usize::try_from(p.byte()).ok())
            .unwrap_or(0);
        while matches!(text.as_bytes().get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        let line = 1 + text
            .get(..start)
            .map_or(0, |before| before.bytes().filter(|b| *b == b'\n').count());
        records.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(records)
}

/// A CSV error without its position (given apart) or input.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
        _ => "not readable as CSV".to_owned(),
    }
}

impl Service {
    /// Imports tags from CSV, all or none; returns how many were created.
    pub async fn import_tags(&self, who: &Principal, csv: &str) -> Result<usize> {
        let records = parse_csv(csv).map_err(|e| Error::invalid("csv", e))?;
        let Some(((_, header), rows)) = records.split_first() else {
            return Err(Error::invalid("csv", "is empty: a header row is required"));
        };
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            let name = name.trim();
            if !COLUMNS.contains(&name) {
                return Err(Error::invalid(
                    "csv",
                    format!(
                        "line 1: unknown column {name:?}; columns are {}",
                        COLUMNS.join(", ")
                    ),
                ));
            }
            if index.insert(name, i).is_some() {
                return Err(Error::invalid(
                    "csv",
                    format!("line 1: column {name:?} twice"),
                ));
            }
        }
        if !index.contains_key("uid") {
            return Err(Error::invalid("csv", "line 1: the uid column is required"));
        }
        if rows.is_empty() || rows.len() > MAX_IMPORT_ROWS {
            return Err(Error::invalid(
                "csv",
                "must hold 1 to 10000 rows after the header",
            ));
        }
        let now = self.now();
        let mut tags = Vec::with_capacity(rows.len());
        let mut seen = std::collections::HashSet::new();
        for (line, row) in rows {
            if row.len() != header.len() {
                return Err(Error::invalid(
                    "csv",
                    format!(
                        "line {line}: {} fields, the header has {}",
                        row.len(),
                        header.len()
                    ),
                ));
            }
            let cell = |name: &str| {
                index
                    .get(name)
                    .map(|i| row[*i].trim())
                    .filter(|v| !v.is_empty())
            };
            let bad = |column: &str, e: String| {
                Error::invalid("csv", format!("line {line}, {column}: {e}"))
            };
            let uid =
                TagUid::parse(cell("uid").unwrap_or("")).map_err(|e| bad("uid", e.to_string()))?;
            if uid.as_str() == crate::charging::NO_TAG {
                return Err(bad(
                    "uid",
                    "00000000 is reserved: it stands for no tag".into(),
                ));
            }
            if !seen.insert(uid.clone()) {
                return Err(bad("uid", "appears twice in the file".into()));
            }
            let owner = cell("owner")
                .map(OwnerId::parse)
                .transpose()
                .map_err(|e| bad("owner", e.to_string()))?;
            let owner = who
                .owner_for_new(owner)
                .map_err(|e| bad("owner", e.to_string()))?;
            let role = match cell("role") {
                None => TagRole::Driver,
                Some(r) => r.parse().map_err(|e: String| bad("role", e))?,
            };
            let status = match cell("status") {
                None => TagStatus::Active,
                Some(s) => s.parse().map_err(|e: String| bad("status", e))?,
            };
            let expires_at = cell("expires_at")
                .map(|t| DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)))
                .transpose()
                .map_err(|e| bad("expires_at", e.to_string()))?;
            let devices = cell("devices")
                .map(|d| {
                    d.split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(DeviceId::parse)
                        .collect::<Result<Vec<_>>>()
                })
                .transpose()
                .map_err(|e| bad("devices", e.to_string()))?
                .unwrap_or_default();
            let max_sessions = match cell("max_sessions") {
                None => 1,
                Some(n) => check_max_sessions(
                    n.parse::<i64>()
                        .map_err(|e| bad("max_sessions", e.to_string()))?,
                )
                .map_err(|e| bad("max_sessions", e.to_string()))?,
            };
            tags.push(Tag {
                uid,
                role,
                status,
                expires_at,
                group: check_text("group", cell("group").map(str::to_owned))
                    .map_err(|e| bad("group", e.to_string()))?,
                devices: self
                    .check_tag_devices(&owner, &devices)
                    .await
                    .map_err(|e| bad("devices", e.to_string()))?,
                owner,
                max_sessions,
                label: check_text("label", cell("label").map(str::to_owned))
                    .map_err(|e| bad("label", e.to_string()))?,
                list_version: 0,
                created_at: now,
                updated_at: now,
            });
        }
        for owner in tags
            .iter()
            .map(|t| t.owner.clone())
            .collect::<std::collections::BTreeSet<_>>()
        {
            self.require_owner(&owner).await?;
        }
        self.store
            .insert_tags(&tags)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict { message, .. } => Error::conflict("tag_exists", message),
                other => other,
            })?;
        tracing::info!(count = tags.len(), "tags imported");
        Ok(tags.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_follow_rfc_4180() {
        let text = "uid,label\r\n04A1B2C3,\"Van, \"\"blue\"\"\"\r\n0A0B0C0D,\"two\nlines\"\n\n";
        let records = parse_csv(text).expect("parses");
        assert_eq!(
            records,
            vec![
                (1, vec!["uid".to_owned(), "label".to_owned()]),
                (2, vec!["04A1B2C3".to_owned(), "Van, \"blue\"".to_owned()]),
                (3, vec!["0A0B0C0D".to_owned(), "two\nlines".to_owned()]),
            ]
        );
        assert_eq!(parse_csv("x,y").expect("no final newline").len(), 1);
        assert!(parse_csv("a,\"b\n").is_err(), "a quoted field left open");
    }
}
