//! `authorize`: may this tag start charging on this charger, or stop that session?
//!
//! Tags live in their owner's namespace: a charger sees only its owner's tags (another
//! owner's card is unknown here). To start, a tag must be known (an unknown one is recorded
//! for enrollment and gets 404), be active, not expired, allowed on this charger (403
//! each), and have fewer active sessions than its cap (409: already charging elsewhere).
//! To stop a session (`session_id` or `local_id` given), the tag must be the session's own
//! tag, or an active tag of the same owner in the same group as the session's tag.

use chrono::{DateTime, Utc};

use super::{check_connector, Charger, Reply, SessionRef, SessionStatus};
use crate::devices::parse_data;
use crate::error::{Error, Result};
use crate::ids::TagUid;
use crate::service::Service;
use crate::store::ChargerTx;
use crate::tags::{Tag, TagStatus};
use charger_protocol::api;

fn accepted(tag: &Tag, session_id: Option<i64>) -> api::AuthorizeResponse {
    api::AuthorizeResponse {
        tag: tag.uid.to_string(),
        status: "accepted".to_owned(),
        role: tag.role,
        expires_at: tag.expires_at,
        group: tag.group.clone(),
        session_id,
    }
}

impl Service {
    pub(super) async fn authorize(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::AuthorizeRequest = parse_data(data)?;
        let uid = super::sessions::tag_in("tag", &req.tag)?;
        check_connector(charger, req.connector)?;
        match SessionRef::from_fields(req.session_id, req.local_id)? {
            None => {
                let tag = self.tag_may_start(tx, charger, &uid, now).await?;
                Reply::typed(200, &accepted(&tag, None))
            }
            Some(session) => {
                let (tag, session_id) = self.tag_may_stop(tx, charger, &uid, &session, now).await?;
                Reply::typed(200, &accepted(&tag, Some(session_id)))
            }
        }
    }

    /// Whether a tag may start charging on this charger now, as a verdict: the tag, or the
    /// refusal (unknown 404, blocked, expired or not allowed here 403, busy 409). Only a
    /// failure to read is an error. An unknown tag is recorded for enrollment.
    pub async fn tag_verdict(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        uid: &TagUid,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<Tag, Error>> {
        match self.tag_may_start(tx, charger, uid, now).await {
            Ok(tag) => Ok(Ok(tag)),
            Err(e) if e.is_refusal() => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }

    /// [`Service::tag_verdict`] for a tag that may be charging in `session` already (a
    /// repeated start, a later event of its transaction): its own session does not make
    /// it busy.
    pub async fn tag_verdict_for(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        uid: &TagUid,
        now: DateTime<Utc>,
        session: &SessionRef,
    ) -> Result<std::result::Result<Tag, Error>> {
        let verdict = self.tag_verdict(tx, charger, uid, now).await?;
        if matches!(&verdict, Err(e) if e.code() == "tag_busy") {
            let own = tx
                .session(&charger.id, session)
                .await?
                .is_some_and(|s| s.status == SessionStatus::Active && s.tag == *uid);
            if own {
                if let Some(tag) = tx.tag(&charger.owner, uid).await? {
                    return Ok(Ok(tag));
                }
            }
        }
        Ok(verdict)
    }

    /// A known tag of the charger's owner, recording an unknown one (404).
    async fn known_tag(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        uid: &TagUid,
        now: DateTime<Utc>,
    ) -> Result<Tag> {
        match tx.tag(&charger.owner, uid).await? {
            Some(tag) => Ok(tag),
            None => Err(self.unknown_tag(tx, charger, uid, now).await),
        }
    }

    /// Records a tag nobody of the charger's owner knows; the error to answer (404).
    async fn unknown_tag(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        uid: &TagUid,
        now: DateTime<Utc>,
    ) -> Error {
        if let Err(e) = self
            .note_unknown_tag(tx, &charger.id, &charger.owner, uid, now)
            .await
        {
            return e;
        }
        tracing::info!(device = %charger.id, tag = %uid, "unknown tag refused");
        Error::not_found("tag")
    }

    /// The live checks of a start: 404, 403 or 409, else the tag.
    pub(super) async fn tag_may_start(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        uid: &TagUid,
        now: DateTime<Utc>,
    ) -> Result<Tag> {
        let Some((tag, active)) = tx.tag_with_active_sessions(&charger.owner, uid).await? else {
            return Err(self.unknown_tag(tx, charger, uid, now).await);
        };
        usable(&tag, now)?;
        if !tag.devices.is_empty() && !tag.devices.contains(&charger.id) {
            return Err(not_allowed());
        }
        if active >= tag.max_sessions {
            let message = if tag.max_sessions == 1 {
                "the tag is already charging elsewhere".to_owned()
            } else {
                format!(
                    "the tag already has {active} active sessions, its limit is {}",
                    tag.max_sessions
                )
            };
            return Err(Error::conflict("tag_busy", message));
        }
        Ok(tag)
    }

    /// Whether `uid` may stop `session` on this charger: its own tag, or a group member.
    async fn tag_may_stop(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        uid: &TagUid,
        session: &SessionRef,
        now: DateTime<Utc>,
    ) -> Result<(Tag, i64)> {
        let session = tx
            .session(&charger.id, session)
            .await?
            .ok_or_else(|| Error::not_found("session"))?;
        if session.status != SessionStatus::Active {
            return Err(Error::conflict("session_closed", "the session has stopped"));
        }
        let tag = self.known_tag(tx, charger, uid, now).await?;
        if session.tag == *uid {
            return Ok((tag, session.id));
        }
        usable(&tag, now)?;
        let starter = tx.tag(&session.owner, &session.tag).await?;
        let same_group = match (&tag.group, starter.as_ref().and_then(|s| s.group.as_ref())) {
            (Some(a), Some(b)) => a == b && starter.as_ref().is_some_and(|s| s.owner == tag.owner),
            _ => false,
        };
        if same_group {
            Ok((tag, session.id))
        } else {
            Err(Error::forbidden(
                "not_in_group",
                "only the tag that started the session or a member of its group may stop it",
            ))
        }
    }
}

fn not_allowed() -> Error {
    Error::forbidden("tag_not_allowed", "this tag may not charge on this charger")
}

/// Active and not expired (403 otherwise).
fn usable(tag: &Tag, now: DateTime<Utc>) -> Result<()> {
    if tag.status == TagStatus::Blocked {
        return Err(Error::forbidden("tag_blocked", "this tag is blocked"));
    }
    if tag.expires_at.is_some_and(|t| t <= now) {
        return Err(Error::forbidden("tag_expired", "this tag has expired"));
    }
    Ok(())
}
