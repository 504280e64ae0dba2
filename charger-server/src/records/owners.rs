//! Owners and their API tokens.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::OwnerId;

/// A business that owns chargers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub id: OwnerId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// What a stored token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    Admin,
    Owner(OwnerId),
}

/// An API token to store (its hash only).
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Its public id (`tok_...`), to list and revoke it.
    pub id: String,
    pub token_hash: String,
    /// None: an admin token.
    pub owner: Option<OwnerId>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An API token as listed: never the token or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub owner: Option<OwnerId>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Its last use (REST or console), to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
}
