//! Owners (the `<user>` of the MQTT topics) and API tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::OwnerId;
pub use crate::records::owners::{NewToken, Owner, TokenInfo, TokenScope};
use crate::secrets::{hash_secret, random_token, verify_secret, Secret};
use crate::service::{Principal, Service};

/// `POST /api/v1/owners/{owner}/tokens` (the body is optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// What the token is for (1-200 characters), shown when tokens are listed.
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub name: Option<String>,
}

/// A new token, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub id: String,
    pub owner: OwnerId,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// How often a token's `last_used_at` is written at most.
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

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
        // The length as sent (as the schema counts it), then without surrounding blanks.
        let name = req.name.trim();
        if name.is_empty() || req.name.chars().count() > MAX_NAME_LEN {
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
    pub async fn create_owner_token(
        &self,
        who: &Principal,
        owner: &OwnerId,
        req: CreateTokenRequest,
    ) -> Result<IssuedToken> {
        who.require_admin()?;
        let name = crate::tags::check_text("name", req.name)?;
        self.require_owner(owner).await?;
        let token = format!("{TOKEN_PREFIX}{}", random_token(32));
        let row = NewToken {
            id: format!("tok_{}", random_token(12)),
            token_hash: hash_secret(&token),
            owner: Some(owner.clone()),
            name,
            created_at: self.now(),
        };
        self.store.insert_token(&row).await?;
        self.audit(
            who,
            Some(owner),
            None,
            "token:create",
            Some(row.id.clone()),
            "ok",
        )
        .await;
        Ok(IssuedToken {
            token,
            id: row.id,
            owner: owner.clone(),
            name: row.name,
            created_at: row.created_at,
        })
    }

    /// An owner's tokens (the admin's view of any owner, an owner's of its own).
    pub async fn list_owner_tokens(
        &self,
        who: &Principal,
        owner: &OwnerId,
    ) -> Result<Vec<TokenInfo>> {
        self.get_owner(who, owner).await?;
        Ok(self.store.list_tokens(owner).await?)
    }

    /// Revokes one of an owner's tokens: it is refused from now on, and the console
    /// sessions signed in with it end.
    pub async fn revoke_owner_token(
        &self,
        who: &Principal,
        owner: &OwnerId,
        id: &str,
    ) -> Result<()> {
        self.get_owner(who, owner).await?;
        if id.len() > 64 || !self.store.delete_token(owner, id).await? {
            return Err(Error::not_found("token"));
        }
        self.audit(
            who,
            Some(owner),
            None,
            "token:revoke",
            Some(id.to_owned()),
            "ok",
        )
        .await;
        Ok(())
    }

    /// Generates and stores a new admin token, returned once. Used on first start when
    /// no `CHARGER_ADMIN_TOKEN` is set, and by `charger-server rotate-admin-token`.
    pub async fn issue_admin_token(&self, replace_existing: bool) -> Result<Secret> {
        if replace_existing {
            self.store.delete_admin_tokens().await?;
        }
        let token = format!("{TOKEN_PREFIX}{}", random_token(32));
        let row = NewToken {
            id: format!("tok_{}", random_token(12)),
            token_hash: hash_secret(&token),
            owner: None,
            name: Some("admin".to_owned()),
            created_at: self.now(),
        };
        self.store.insert_token(&row).await?;
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
        self.authenticate_hash(&hash_secret(token), configured_admin)
            .await
    }

    /// Resolves a token by its hash (a console session keeps only that).
    pub async fn authenticate_hash(
        &self,
        token_hash: &str,
        configured_admin: Option<&str>,
    ) -> Result<Principal> {
        use subtle::ConstantTimeEq as _;
        if let Some(admin_hash) = configured_admin {
            if bool::from(token_hash.as_bytes().ct_eq(admin_hash.as_bytes())) {
                return Ok(Principal::Admin);
            }
        }
        let principal = match self.store.find_token(token_hash).await? {
            Some(TokenScope::Admin) => Principal::Admin,
            Some(TokenScope::Owner(o)) => Principal::Owner(o),
            None => return Err(Error::Unauthorized),
        };
        self.touch_token(token_hash).await;
        Ok(principal)
    }

    /// Records a token's use, at most once a minute per token (a write per REST call
    /// would cost more than it tells).
    async fn touch_token(&self, token_hash: &str) {
        let due = match self.token_uses.lock() {
            Ok(mut uses) => {
                let now = std::time::Instant::now();
                let due = uses
                    .get(token_hash)
                    .is_none_or(|t| now.duration_since(*t) >= TOUCH_EVERY);
                if due {
                    if uses.len() >= 10_000 {
                        uses.retain(|_, t| now.duration_since(*t) < TOUCH_EVERY);
                    }
                    uses.insert(token_hash.to_owned(), now);
                }
                due
            }
            Err(_) => false,
        };
        if due {
            if let Err(e) = self.store.touch_token(token_hash, self.now()).await {
                tracing::warn!(error = %e, "a token's last use not recorded");
            }
        }
    }

    /// Starts a console session for a token: returns the cookie's id (random; only its
    /// hash is stored) and when it expires.
    pub async fn start_console_session(
        &self,
        token: &str,
        configured_admin: Option<&str>,
        hours: i64,
    ) -> Result<(Principal, String)> {
        let principal = self.authenticate(token, configured_admin).await?;
        let id = random_token(32);
        let now = self.now();
        let ended = self
            .store
            .insert_console_session(
                &hash_secret(&id),
                &hash_secret(token),
                now,
                now + chrono::Duration::hours(hours),
                i64::from(self.limits.console_sessions_per_token),
            )
            .await?;
        if ended > 0 {
            crate::metrics::limit_add(crate::metrics::Limit::ConsoleSessions, ended);
            tracing::info!(
                principal = %principal.audit_name(),
                ended,
                "a token signed in again: its oldest console sessions ended \
                 (CHARGER_CONSOLE_SESSIONS_PER_TOKEN)"
            );
        }
        Ok((principal, id))
    }

    /// The principal of a console session's cookie id (Unauthorized when it has ended,
    /// expired, or its token was revoked).
    pub async fn console_session(
        &self,
        id: &str,
        configured_admin: Option<&str>,
    ) -> Result<Principal> {
        if id.is_empty() || id.len() > 128 {
            return Err(Error::Unauthorized);
        }
        let token_hash = self
            .store
            .console_session(&hash_secret(id), self.now())
            .await?
            .ok_or(Error::Unauthorized)?;
        self.authenticate_hash(&token_hash, configured_admin).await
    }

    /// Deletes expired console sessions.
    pub async fn prune_console_sessions(&self) -> Result<u64> {
        Ok(self.store.prune_console_sessions(self.now()).await?)
    }

    /// Ends a console session (sign-out): its cookie is refused from now on.
    pub async fn end_console_session(&self, id: &str) -> Result<()> {
        Ok(self.store.delete_console_session(&hash_secret(id)).await?)
    }
}
