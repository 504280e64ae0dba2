//! API tokens, console sessions and the audit log on SQL.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{conflict_on_unique, corrupt, SqlStore};
use crate::ids::{DeviceId, OwnerId};
use crate::records::audit::AuditEntry;
use crate::records::owners::{NewToken, TokenInfo};
use crate::store::{from_millis, to_millis, StoreResult};

#[derive(FromRow)]
struct TokenRow {
    id: String,
    owner_id: Option<String>,
    name: Option<String>,
    created_at: i64,
    last_used_at: Option<i64>,
}

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    principal: String,
    owner_id: Option<String>,
    device_id: Option<String>,
    action: String,
    detail: Option<String>,
    outcome: String,
}

impl SqlStore {
    pub(super) async fn insert_token_row(&self, t: &NewToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, owner_id, created_at, id, name)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.token_hash)
        .bind(t.owner.as_ref().map(OwnerId::as_str))
        .bind(to_millis(t.created_at))
        .bind(&t.id)
        .bind(t.name.as_deref())
        .execute(&self.pool)
        .await
        .map_err(conflict_on_unique("token"))?;
        Ok(())
    }

    pub(super) async fn touch_token_row(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(to_millis(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn list_token_rows(&self, owner: &OwnerId) -> StoreResult<Vec<TokenInfo>> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, owner_id, name, created_at, last_used_at FROM api_tokens
             WHERE owner_id = $1 ORDER BY created_at, id",
        )
        .bind(owner.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.id,
                    owner: r
                        .owner_id
                        .map(|o| OwnerId::parse(&o).map_err(|e| corrupt("owner id", e)))
                        .transpose()?,
                    name: r.name,
                    created_at: from_millis(r.created_at)?,
                    last_used_at: r.last_used_at.map(from_millis).transpose()?,
                })
            })
            .collect()
    }

    /// Deletes an owner's token and the console sessions signed in with it.
    pub(super) async fn delete_token_row(&self, owner: &OwnerId, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let hash: Option<String> = sqlx::query_scalar(
            "DELETE FROM api_tokens WHERE owner_id = $1 AND id = $2 RETURNING token_hash",
        )
        .bind(owner.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(hash) = hash else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn insert_console_session_row(
        &self,
        id_hash: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
        keep: i64,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(token_hash)
        .bind(to_millis(now))
        .bind(to_millis(expires))
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique("console session"))?;
        let ended = sqlx::query(
            "DELETE FROM console_sessions WHERE token_hash = $1 AND id_hash NOT IN (
                 SELECT id_hash FROM console_sessions WHERE token_hash = $1
                 ORDER BY created_at DESC, id_hash LIMIT $2)",
        )
        .bind(token_hash)
        .bind(keep)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }

    pub(super) async fn console_session_row(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT token_hash FROM console_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await?)
    }

    pub(super) async fn delete_console_session_row(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn prune_console_session_rows(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
                .bind(to_millis(now))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    pub(super) async fn insert_audit_row(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, principal, owner_id, device_id, action, detail, outcome)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(to_millis(e.at))
        .bind(&e.principal)
        .bind(e.owner.as_ref().map(OwnerId::as_str))
        .bind(e.device.as_ref().map(DeviceId::as_str))
        .bind(&e.action)
        .bind(e.detail.as_deref())
        .bind(&e.outcome)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn list_audit_rows(
        &self,
        device: &DeviceId,
        owner: Option<&OwnerId>,
        through: Option<DateTime<Utc>>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at, principal, owner_id, device_id, action, detail, outcome
             FROM audit_log WHERE device_id = $1 AND ($2 IS NULL OR owner_id = $2)
                              AND ($3 IS NULL OR at <= $3)
             ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(device.as_str())
        .bind(owner.map(OwnerId::as_str))
        .bind(through.map(to_millis))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.id,
                    at: from_millis(r.at)?,
                    principal: r.principal,
                    owner: r
                        .owner_id
                        .map(|o| OwnerId::parse(&o).map_err(|e| corrupt("owner id", e)))
                        .transpose()?,
                    device: r
                        .device_id
                        .map(|d| DeviceId::parse(&d).map_err(|e| corrupt("device id", e)))
                        .transpose()?,
                    action: r.action,
                    detail: r.detail,
                    outcome: r.outcome,
                })
            })
            .collect()
    }

    pub(super) async fn prune_audit_rows(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(to_millis(before))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
