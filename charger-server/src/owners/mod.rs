//! Owners (the `<user>` of the MQTT topics) and API tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::OwnerId;
use crate::secrets::{hash_secret, random_token, verify_secret, Secret};
use crate::service::{Principal, Service};

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

/// `POST /api/v1/owners`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOwnerRequest {
    pub id: OwnerId,
    pub name: String,
}

/// Longest owner name accepted.
const MAX_NAME_LEN: usize = 200;
/// Prefix of every API token, so a leaked one is easy to recognise.
const TOKEN_PREFIX: &str = "cht_";

impl Service {
    pub async fn create_owner(&self, who: &Principal, req: CreateOwnerRequest) -> Result<Owner> {
        who.require_admin()?;
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
            return Err(Error::invalid("name", "must be 1 to 200 characters"));
        }
        let owner = Owner {
            id: req.id,
            name: name.to_owned(),
            created_at: self.now(),
        };
        self.store.insert_owner(&owner).await?;
        tracing::info!(owner = %owner.id, "owner created");
        Ok(owner)
    }

    pub async fn get_owner(&self, who: &Principal, id: &OwnerId) -> Result<Owner> {
        match self.store.get_owner(id).await? {
            Some(o) if who.can_see(&o.id) => Ok(o),
            _ => Err(Error::not_found("owner")),
        }
    }

    pub async fn list_owners(&self, who: &Principal) -> Result<Vec<Owner>> {
        match who {
            Principal::Admin => Ok(self.store.list_owners().await?),
            Principal::Owner(o) => Ok(self.store.get_owner(o).await?.into_iter().collect()),
        }
    }

    /// Issues a new token scoped to `owner`; the token is returned once, only its hash is kept.
    pub async fn create_owner_token(&self, who: &Principal, owner: &OwnerId) -> Result<Secret> {
        who.require_admin()?;
        self.require_owner(owner).await?;
        let token = format!("{TOKEN_PREFIX}{}", random_token(32));
        self.store
            .insert_token(&hash_secret(&token), Some(owner), self.now())
            .await?;
        tracing::info!(owner = %owner, "owner token issued");
        Ok(Secret::new(token))
    }

    /// Generates and stores a new admin token, returned once. Used on first start when
    /// no `CHARGER_ADMIN_TOKEN` is set, and by `charger-server rotate-admin-token`.
    pub async fn issue_admin_token(&self, replace_existing: bool) -> Result<Secret> {
        if replace_existing {
            self.store.delete_admin_tokens().await?;
        }
        let token = format!("{TOKEN_PREFIX}{}", random_token(32));
        self.store
            .insert_token(&hash_secret(&token), None, self.now())
            .await?;
        Ok(Secret::new(token))
    }

    /// Whether an admin token is already stored.
    pub async fn has_admin_token(&self) -> Result<bool> {
        Ok(self.store.has_admin_token().await?)
    }

    /// Resolves a bearer token. `configured_admin` is the hash of `CHARGER_ADMIN_TOKEN`.
    pub async fn authenticate(
        &self,
        token: &str,
        configured_admin: Option<&str>,
    ) -> Result<Principal> {
        if let Some(admin_hash) = configured_admin {
            if verify_secret(token, admin_hash) {
                return Ok(Principal::Admin);
            }
        }
        match self.store.find_token(&hash_secret(token)).await? {
            Some(TokenScope::Admin) => Ok(Principal::Admin),
            Some(TokenScope::Owner(o)) => Ok(Principal::Owner(o)),
            None => Err(Error::Unauthorized),
        }
    }
}
