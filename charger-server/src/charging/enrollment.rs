//! `tag-enroll` (an installer card enrolls a new card from the charger),
//! `ownership-claim` (a transfer code moves the charger to its new owner) and
//! `local-list` (the tags a charger keeps for offline authorization, by delta).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{with_tag_extras, Charger, Reply};
use crate::devices::parse_data;
use crate::error::{Error, Result};
use crate::ids::{OwnerId, TagUid};
use crate::secrets::hash_secret;
use crate::service::Service;
use crate::store::ChargerTx;
use crate::tags::{Tag, TagRole, TagStatus};

/// Most local-list entries in one answer; the charger asks again while `more` is true.
pub const LOCAL_LIST_PAGE: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    installer_tag: TagUid,
    tag: TagUid,
    label: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimRequest {
    code: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalListRequest {
    version: i64,
}

/// One change of an owner's tag list: a tag as it is now, or a removed uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalListItem {
    Tag(Tag),
    Removed { uid: TagUid, version: i64 },
}

impl LocalListItem {
    pub fn version(&self) -> i64 {
        match self {
            LocalListItem::Tag(t) => t.list_version,
            LocalListItem::Removed { version, .. } => *version,
        }
    }
}

/// The owner's list version now, and its changes after a version, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalListPage {
    pub current: i64,
    pub items: Vec<LocalListItem>,
}

fn local_entry(tag: &Tag) -> serde_json::Value {
    with_tag_extras(
        serde_json::json!({
            "tag": tag.uid,
            "role": tag.role,
            "status": tag.status,
            "max_sessions": tag.max_sessions,
        }),
        tag,
    )
}

impl Service {
    pub(super) async fn tag_enroll(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: EnrollRequest = parse_data(data)?;
        let installer = tx.tag(&req.installer_tag).await?;
        let is_installer = installer.as_ref().is_some_and(|t| {
            t.role == TagRole::Installer
                && t.owner == charger.owner
                && t.status == TagStatus::Active
                && t.expires_at.is_none_or(|e| e > now)
                && (t.devices.is_empty() || t.devices.contains(&charger.id))
        });
        if !is_installer {
            return Err(Error::forbidden(
                "not_installer",
                "installer_tag is not an active installer card of this charger's owner",
            ));
        }
        if req.tag == req.installer_tag || tx.tag(&req.tag).await?.is_some() {
            return Err(Error::conflict(
                "tag_exists",
                "this tag uid is already enrolled",
            ));
        }
        let label = crate::tags::check_text("label", req.label)?;
        let tag = Tag {
            uid: req.tag,
            owner: charger.owner.clone(),
            role: TagRole::Driver,
            status: TagStatus::Active,
            expires_at: req.expires_at,
            group: None,
            devices: Vec::new(),
            max_sessions: 1,
            label,
            list_version: 0,
            created_at: now,
            updated_at: now,
        };
        tx.insert_tag(&tag).await?;
        tracing::info!(device = %charger.id, tag = %tag.uid, installer = %req.installer_tag, "tag enrolled at the charger");
        Ok(Reply::created(serde_json::json!({
            "tag": tag.uid,
            "owner": tag.owner,
        })))
    }

    pub(super) async fn ownership_claim(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: ClaimRequest = parse_data(data)?;
        let refused = || {
            Error::forbidden(
                "bad_code",
                "the code is unknown, used, expired or for another charger",
            )
        };
        if req.code.is_empty() || req.code.len() > 128 {
            return Err(refused());
        }
        let to: OwnerId = tx
            .claim_device(&charger.id, &hash_secret(&req.code), now)
            .await?
            .ok_or_else(refused)?;
        tracing::info!(device = %charger.id, from = %charger.owner, to = %to, "charger claimed by its new owner");
        Ok(Reply::ok(serde_json::json!({ "owner": to })))
    }

    pub(super) async fn local_list(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
    ) -> Result<Reply> {
        let req: LocalListRequest = parse_data(data)?;
        if req.version < 0 {
            return Err(Error::invalid("version", "must not be negative"));
        }
        let mut page = tx
            .local_list(&charger.owner, req.version, LOCAL_LIST_PAGE + 1)
            .await?;
        // A version the owner never had (the charger changed owner): start from scratch.
        let reset = req.version > page.current;
        if reset {
            page = tx
                .local_list(&charger.owner, 0, LOCAL_LIST_PAGE + 1)
                .await?;
        }
        let more = page.items.len() > LOCAL_LIST_PAGE;
        page.items.truncate(LOCAL_LIST_PAGE);
        let version = match (more, page.items.last()) {
            (true, Some(last)) => last.version(),
            _ => page.current,
        };
        let mut tags = Vec::new();
        let mut removed = Vec::new();
        for item in &page.items {
            match item {
                LocalListItem::Tag(t)
                    if t.devices.is_empty() || t.devices.contains(&charger.id) =>
                {
                    tags.push(local_entry(t))
                }
                // Limited to other chargers: gone from this one's list.
                LocalListItem::Tag(t) => removed.push(serde_json::json!(t.uid)),
                LocalListItem::Removed { uid, .. } => removed.push(serde_json::json!(uid)),
            }
        }
        Ok(Reply::ok(serde_json::json!({
            "version": version,
            "reset": reset,
            "more": more,
            "tags": tags,
            "removed": removed,
        })))
    }
}
