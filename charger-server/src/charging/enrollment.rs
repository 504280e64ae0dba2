//! `tag-enroll` (an installer card enrolls a new card from the charger),
//! `ownership-claim` (a transfer code moves the charger to its new owner, with new
//! credentials), `rekey` (new credentials, same owner) and
//! `local-list` (the tags a charger keeps for offline authorization, by delta).

use super::LocalListItem;
use chrono::{DateTime, Utc};

use super::{Charger, Reply, RequestContext, Superseded};
use crate::devices::parse_data;
use crate::error::{Error, Result};
use crate::ids::OwnerId;
use crate::secrets::hash_secret;
use crate::service::Service;
use crate::store::ChargerTx;
use crate::tags::{Tag, TagRole, TagStatus};
use charger_protocol::api;
use charger_protocol::rekey::parse_public_key;
use charger_protocol::{seal_credentials, NewCredentials};

/// Most local-list entries in one answer; the charger asks again while `more` is true.
pub const LOCAL_LIST_PAGE: usize = 200;

/// A `pub` must be 32 bytes of base64 (its low order is checked when it is used).
fn check_public_key(public: &str) -> Result<()> {
    if public.len() > 64 || parse_public_key(public).is_err() {
        return Err(Error::invalid(
            "pub",
            "must be a 32-byte X25519 public key in base64",
        ));
    }
    Ok(())
}

fn local_entry(tag: &Tag) -> api::LocalListTag {
    api::LocalListTag {
        tag: tag.uid.to_string(),
        role: tag.role,
        status: tag.status,
        max_sessions: tag.max_sessions,
        expires_at: tag.expires_at,
        group: tag.group.clone(),
    }
}

/// A page of changes to a charger's local list (see [`Service::local_list_delta`]).
#[derive(Debug, Clone)]
pub struct LocalListDelta {
    pub version: i64,
    pub reset: bool,
    pub more: bool,
    pub tags: Vec<Tag>,
    pub removed: Vec<crate::ids::TagUid>,
}

impl Service {
    pub(super) async fn tag_enroll(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::TagEnrollRequest = parse_data(data)?;
        let installer_tag = super::sessions::tag_in("installer_tag", &req.installer_tag)?;
        let new_tag = super::sessions::tag_in("tag", &req.tag)?;
        let installer = tx.tag(&charger.owner, &installer_tag).await?;
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
        if new_tag == installer_tag || tx.tag(&charger.owner, &new_tag).await?.is_some() {
            return Err(Error::conflict(
                "tag_exists",
                "this tag uid is already enrolled",
            ));
        }
        let label = crate::tags::check_text("label", req.label)?;
        let tag = Tag {
            uid: new_tag,
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
        tracing::info!(device = %charger.id, tag = %tag.uid, installer = %installer_tag, "tag enrolled at the charger");
        Reply::typed(
            201,
            &api::TagEnrollResponse {
                tag: tag.uid.to_string(),
                owner: tag.owner.to_string(),
            },
        )
    }

    /// `ownership-claim`: everything is checked first (the key, the code, the sealing of
    /// the new credentials), then the credentials change (compare-and-swap on the version)
    /// and the charger moves, in this request's transaction: a refused claim changes
    /// nothing.
    pub(super) async fn ownership_claim(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        request: &RequestContext<'_>,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::OwnershipClaimRequest = parse_data(data)?;
        check_public_key(&req.public)?;
        let refused = || {
            Error::forbidden(
                "bad_code",
                "the code is unknown, not accepted by the receiving owner, used, expired or for another charger",
            )
        };
        if req.code.is_empty() || req.code.len() > 128 {
            return Err(refused());
        }
        let code_hash = hash_secret(&req.code);
        let to: OwnerId = tx
            .claim_target(&charger.id, &code_hash, now)
            .await?
            .ok_or_else(refused)?;
        let (body, password_hash) = self.new_credentials(charger, &to, &req.public)?;
        self.replace_credentials(tx, charger, request, &password_hash, now)
            .await?;
        if tx
            .claim_device(&charger.id, &code_hash, now)
            .await?
            .as_ref()
            != Some(&to)
        {
            // Withdrawn on another instance since it was read: nothing is kept.
            return Err(Error::conflict(
                "transfer_closed",
                "the offer changed while it was claimed",
            ));
        }
        tracing::info!(device = %charger.id, from = %charger.owner, to = %to, "charger claimed by its new owner");
        Ok(Reply::revoking(body))
    }

    /// `rekey`: new credentials for the charger, as a claim gives, without a move.
    pub(super) async fn rekey(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        request: &RequestContext<'_>,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::RekeyRequest = parse_data(data)?;
        check_public_key(&req.public)?;
        let (body, password_hash) = self.new_credentials(charger, &charger.owner, &req.public)?;
        self.replace_credentials(tx, charger, request, &password_hash, now)
            .await?;
        tracing::info!(device = %charger.id, "charger rotated its credentials");
        Ok(Reply::revoking(body))
    }

    /// The charger's next password and key, sealed under the X25519 exchange with the
    /// charger's `public` key: the answer `{"owner", "pub", "credentials"}` and the new
    /// password's hash. Nothing is stored (422 `pub` for a key no secret can be agreed
    /// with, such as a low-order point).
    fn new_credentials(
        &self,
        charger: &Charger,
        owner: &OwnerId,
        public: &str,
    ) -> Result<(serde_json::Value, String)> {
        let version = charger.key_version + 1;
        let password = self.secret.device_password(charger.id.as_str(), version);
        let credentials = NewCredentials {
            password,
            key: self.device_key(&charger.id, version).to_hex(),
        };
        let sealed = seal_credentials(charger.id.as_str(), owner.as_str(), public, &credentials)
            .map_err(|_| Error::invalid("pub", "is not a usable X25519 public key"))?;
        let body = serde_json::to_value(api::CredentialsResponse {
            owner: owner.to_string(),
            public: sealed.public,
            credentials: sealed.credentials,
        })
        .map_err(|e| Error::Internal(format!("an answer that is not JSON: {e}")))?;
        Ok((body, hash_secret(&credentials.password)))
    }

    /// Moves the charger to its next key version (compare-and-swap: 409, nothing changed,
    /// when another rotation came first), keeping the old credentials for the grace
    /// window, only to repeat this request.
    async fn replace_credentials(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        request: &RequestContext<'_>,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let grace = i64::try_from(self.limits.credentials_grace_s).unwrap_or(i64::MAX);
        let superseded = Superseded {
            key_version: charger.key_version,
            owner: charger.owner.clone(),
            request_id: request.request_id.to_owned(),
            endpoint: request.endpoint.to_owned(),
            until: now + chrono::Duration::seconds(grace),
        };
        if !tx
            .set_device_credentials(&charger.id, charger.key_version, password_hash, &superseded)
            .await?
        {
            return Err(Error::conflict(
                "rotated_concurrently",
                "the credentials changed meanwhile; ask again with a new request",
            ));
        }
        Ok(())
    }

    pub(super) async fn local_list(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
    ) -> Result<Reply> {
        let req: api::LocalListRequest = parse_data(data)?;
        let delta = self.local_list_delta(tx, charger, req.version).await?;
        Reply::typed(
            200,
            &api::LocalListResponse {
                version: delta.version,
                reset: delta.reset,
                more: delta.more,
                tags: delta.tags.iter().map(local_entry).collect(),
                removed: delta.removed.iter().map(ToString::to_string).collect(),
            },
        )
    }

    /// [`Service::local_list_delta`] in a transaction of its own, for a charger by id.
    pub async fn local_list_delta_of(
        &self,
        device: &crate::ids::DeviceId,
        version: i64,
    ) -> Result<LocalListDelta> {
        let mut tx = self.store.begin().await?;
        let charger = tx
            .charger(device, "")
            .await?
            .map(|(c, _)| c)
            .ok_or_else(|| Error::not_found("device"))?;
        let delta = self
            .local_list_delta(tx.as_mut(), &charger, version)
            .await?;
        tx.commit().await?;
        Ok(delta)
    }

    /// What changed in the charger's local list since `version` (at most
    /// [`LOCAL_LIST_PAGE`] changes; `more` when there are more): the tags to hold and the
    /// uids to drop, and the version they bring it to. `reset`: the charger must start
    /// over from an empty list (it changed owner, or names a version its owner never had).
    pub async fn local_list_delta(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        version: i64,
    ) -> Result<LocalListDelta> {
        if version < 0 {
            return Err(Error::invalid("version", "must not be negative"));
        }
        let mut page = tx
            .local_list(&charger.owner, version, LOCAL_LIST_PAGE + 1)
            .await?;
        let reset = charger.list_reset || version > page.current;
        if charger.list_reset {
            tx.clear_list_reset(&charger.id).await?;
        }
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
        for item in page.items {
            match item {
                LocalListItem::Tag(t)
                    if t.devices.is_empty() || t.devices.contains(&charger.id) =>
                {
                    tags.push(t)
                }
                // Limited to other chargers: gone from this one's list.
                LocalListItem::Tag(t) => removed.push(t.uid),
                LocalListItem::Removed { uid, .. } => removed.push(uid),
            }
        }
        Ok(LocalListDelta {
            version,
            reset,
            more,
            tags,
            removed,
        })
    }
}
