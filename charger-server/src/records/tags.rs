//! RFID tags (OCPP idTags): an owner's cards, and the unknown ones seen at chargers.

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use charger_protocol::api::{TagRole, TagStatus};

use crate::ids::{DeviceId, OwnerId, TagUid};

/// An RFID tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub uid: TagUid,
    pub owner: OwnerId,
    pub role: TagRole,
    pub status: TagStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub group: Option<String>,
    /// The chargers the tag is limited to; empty means all of its owner's chargers.
    pub devices: Vec<DeviceId>,
    pub max_sessions: i64,
    pub label: Option<String>,
    /// The owner's local-list version at this tag's last change.
    pub list_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A tag refused at a charger because nobody knows it, kept so it can be enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownTag {
    pub uid: TagUid,
    pub device: DeviceId,
    /// The charger's owner when the tag was last refused.
    pub owner: OwnerId,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub attempts: i64,
}

/// What the store filters a page of tags by.
#[derive(Debug, Clone, Default)]
pub struct TagQuery {
    pub owner: Option<OwnerId>,
    /// Part of the uid or label (any case).
    pub search: Option<String>,
    /// Only tags after this (uid, owner) (the page's cursor).
    pub after: Option<(TagUid, OwnerId)>,
    pub limit: i64,
}
