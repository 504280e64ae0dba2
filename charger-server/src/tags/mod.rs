//! RFID tags: drivers' cards and installers' cards, with status, expiry, group, the
//! chargers they are limited to and a cap on concurrent sessions.

mod import;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};
use crate::ids::{DeviceId, OwnerId, TagUid};
use crate::service::{Principal, Service};

/// Most concurrent sessions a tag may be allowed.
pub const MAX_SESSIONS_LIMIT: i64 = 100;
/// Longest label or group name.
const MAX_TEXT_LEN: usize = 200;

/// What a tag is for, and whether it may be used: the wire types.
pub use crate::records::tags::{Tag, TagQuery, TagRole, TagStatus, UnknownTag};

/// `POST /api/v1/tags`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTagRequest {
    pub uid: TagUid,
    /// Required with the admin token; an owner token may omit it (never `null`).
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub owner: Option<OwnerId>,
    #[serde(default = "driver")]
    pub role: TagRole,
    #[serde(default = "active")]
    pub status: TagStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub group: Option<String>,
    #[serde(default)]
    pub devices: Vec<DeviceId>,
    pub max_sessions: Option<i64>,
    pub label: Option<String>,
}

fn driver() -> TagRole {
    TagRole::Driver
}

fn active() -> TagStatus {
    TagStatus::Active
}

/// `PATCH /api/v1/tags/{uid}`: absent fields stay, `null` clears a nullable field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTagRequest {
    #[serde(default, deserialize_with = "not_null")]
    pub role: Option<TagRole>,
    #[serde(default, deserialize_with = "not_null")]
    pub status: Option<TagStatus>,
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub group: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    pub devices: Option<Vec<DeviceId>>,
    #[serde(default, deserialize_with = "not_null")]
    pub max_sessions: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    pub label: Option<Option<String>>,
}

/// An optional field that, when present, may not be `null` (absent leaves it unchanged).
pub(crate) fn not_null<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom("may not be null")),
    }
}

/// Tells a present `null` (Some(None)) from an absent field (None).
fn nullable<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub(crate) fn check_text(field: &str, value: Option<String>) -> Result<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) => {
            // The length as sent (as the schema counts it), then without surrounding blanks.
            let sent = v.chars().count();
            let v = v.trim().to_owned();
            if v.is_empty() || sent > MAX_TEXT_LEN {
                Err(Error::invalid(field, "must be 1 to 200 characters"))
            } else {
                Ok(Some(v))
            }
        }
    }
}

fn check_max_sessions(n: i64) -> Result<i64> {
    if (1..=MAX_SESSIONS_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(Error::invalid("max_sessions", "must be between 1 and 100"))
    }
}

impl Service {
    /// Checks that every charger in a tag's scope exists and belongs to `owner`.
    async fn check_tag_devices(
        &self,
        owner: &OwnerId,
        devices: &[DeviceId],
    ) -> Result<Vec<DeviceId>> {
        let mut out: Vec<DeviceId> = devices.to_vec();
        out.sort();
        out.dedup();
        for id in &out {
            match self.store.get_device(id).await? {
                Some(d) if d.owner == *owner => {}
                _ => {
                    return Err(Error::invalid(
                        "devices",
                        format!("{id} is not a charger of owner {owner}"),
                    ))
                }
            }
        }
        Ok(out)
    }

    pub async fn create_tag(&self, who: &Principal, req: CreateTagRequest) -> Result<Tag> {
        if req.uid.as_str() == crate::charging::NO_TAG {
            return Err(Error::invalid(
                "uid",
                "00000000 is reserved: it stands for no tag",
            ));
        }
        let owner = who.owner_for_new(req.owner)?;
        self.require_owner(&owner).await?;
        let devices = self.check_tag_devices(&owner, &req.devices).await?;
        let now = self.now();
        let tag = Tag {
            uid: req.uid,
            owner,
            role: req.role,
            status: req.status,
            expires_at: req.expires_at,
            group: check_text("group", req.group)?,
            devices,
            max_sessions: check_max_sessions(req.max_sessions.unwrap_or(1))?,
            label: check_text("label", req.label)?,
            list_version: 0,
            created_at: now,
            updated_at: now,
        };
        self.store
            .insert_tag(&tag)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict { .. } => {
                    Error::conflict("tag_exists", "this tag uid is already enrolled")
                }
                other => other,
            })?;
        tracing::info!(tag = %tag.uid, owner = %tag.owner, role = %tag.role, "tag created");
        self.get_tag(who, &tag.uid, Some(tag.owner.clone())).await
    }

    /// A tag of the caller's (uids are unique per owner; the admin names the owner with
    /// `owner` when several owners enrolled the same card).
    pub async fn get_tag(
        &self,
        who: &Principal,
        uid: &TagUid,
        owner: Option<OwnerId>,
    ) -> Result<Tag> {
        let found = match who.namespace(owner)? {
            Some(o) => self.store.get_tag(&o, uid).await?.into_iter().collect(),
            None => self.store.find_tags(uid).await?,
        };
        crate::billing::one_of("tag", found)
    }

    /// Tags refused at the caller's chargers because nobody knows them, newest first.
    pub async fn list_unknown_tags(&self, who: &Principal) -> Result<Vec<UnknownTag>> {
        Ok(self.store.list_unknown_tags(who.owner_filter()).await?)
    }

    pub async fn list_tags(&self, who: &Principal) -> Result<Vec<Tag>> {
        Ok(self.store.list_tags(who.owner_filter()).await?)
    }

    /// A page of the caller's tags whose uid or label contains `search`, after `after`
    /// (a uid and owner), by uid; and the cursor of the next page.
    pub async fn tags_page(
        &self,
        who: &Principal,
        search: Option<&str>,
        after: Option<(TagUid, OwnerId)>,
        limit: i64,
    ) -> Result<(Vec<Tag>, Option<(TagUid, OwnerId)>)> {
        if !(1..=500).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 500"));
        }
        let search = search
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| crate::error::bounded(s, 64));
        let mut tags = self
            .store
            .tag_page(&TagQuery {
                owner: who.owner_filter().cloned(),
                search,
                after,
                limit: limit + 1,
            })
            .await?;
        let more = tags.len() as i64 > limit;
        tags.truncate(usize::try_from(limit).unwrap_or(0));
        let next = more
            .then(|| tags.last().map(|t| (t.uid.clone(), t.owner.clone())))
            .flatten();
        Ok((tags, next))
    }

    pub async fn patch_tag(
        &self,
        who: &Principal,
        uid: &TagUid,
        owner: Option<OwnerId>,
        req: PatchTagRequest,
    ) -> Result<Tag> {
        let mut tag = self.get_tag(who, uid, owner).await?;
        if let Some(role) = req.role {
            tag.role = role;
        }
        if let Some(status) = req.status {
            tag.status = status;
        }
        if let Some(expires_at) = req.expires_at {
            tag.expires_at = expires_at;
        }
        if let Some(group) = req.group {
            tag.group = check_text("group", group)?;
        }
        if let Some(devices) = req.devices {
            tag.devices = self.check_tag_devices(&tag.owner, &devices).await?;
        }
        if let Some(n) = req.max_sessions {
            tag.max_sessions = check_max_sessions(n)?;
        }
        if let Some(label) = req.label {
            tag.label = check_text("label", label)?;
        }
        tag.updated_at = self.now();
        if !self.store.update_tag(&tag).await? {
            return Err(Error::not_found("tag"));
        }
        tracing::info!(tag = %tag.uid, status = %tag.status, "tag updated");
        self.get_tag(who, uid, Some(tag.owner)).await
    }

    pub async fn delete_tag(
        &self,
        who: &Principal,
        uid: &TagUid,
        owner: Option<OwnerId>,
    ) -> Result<()> {
        let tag = self.get_tag(who, uid, owner).await?;
        if !self.store.delete_tag(&tag.owner, uid, self.now()).await? {
            return Err(Error::not_found("tag"));
        }
        tracing::info!(tag = %uid, "tag deleted");
        Ok(())
    }
}
