//! Transfer offers and credential rotation on SQL.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, FromRow};

use super::{conflict_on_unique, corrupt, SqlStore};
use crate::ids::{DeviceId, OwnerId};
use crate::records::devices::{TransferOffer, TransferStatus};
use crate::store::{from_millis, to_millis, StoreResult};

const TRANSFER_COLUMNS: &str =
    "id, device_id, from_owner, to_owner, status, expires_at, created_at, updated_at";

#[derive(FromRow)]
struct TransferRow {
    id: String,
    device_id: String,
    from_owner: String,
    to_owner: String,
    status: String,
    expires_at: i64,
    created_at: i64,
    updated_at: i64,
}

impl TransferRow {
    fn into_offer(self) -> StoreResult<TransferOffer> {
        Ok(TransferOffer {
            device: DeviceId::parse(&self.device_id).map_err(|e| corrupt("device id", e))?,
            from: OwnerId::parse(&self.from_owner).map_err(|e| corrupt("owner id", e))?,
            to: OwnerId::parse(&self.to_owner).map_err(|e| corrupt("owner id", e))?,
            status: TransferStatus::parse(&self.status)
                .ok_or_else(|| corrupt("transfer status", &self.status))?,
            expires_at: from_millis(self.expires_at)?,
            created_at: from_millis(self.created_at)?,
            updated_at: from_millis(self.updated_at)?,
            id: self.id,
        })
    }
}

/// Moves a device from key version `expected` to the next with a new password hash, and
/// forgets superseded credentials; false when the device is gone or has moved on.
pub(super) async fn rotate_credentials(
    conn: &mut AnyConnection,
    device: &DeviceId,
    owner: &OwnerId,
    expected: i64,
    password_hash: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE devices SET password_hash = $2, key_version = key_version + 1,
                            prev_password_hash = NULL, prev_key_version = NULL,
                            prev_owner_id = NULL, prev_request_id = NULL, prev_endpoint = NULL,
                            prev_until = NULL
         WHERE id = $1 AND key_version = $3 AND owner_id = $4",
    )
    .bind(device.as_str())
    .bind(password_hash)
    .bind(expected)
    .bind(owner.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl SqlStore {
    pub(super) async fn insert_transfer_row(
        &self,
        o: &TransferOffer,
        per_receiver: u32,
        per_pair: u32,
    ) -> StoreResult<crate::store::NewTransfer> {
        use crate::store::NewTransfer;
        // Reads, then writes on what it read: the write lock first (see `begin_write`).
        let mut tx = self.begin_write().await?;
        // The charger must still be the sender's (a claim may have moved it meanwhile).
        let owner: Option<String> =
            sqlx::query_scalar("SELECT owner_id FROM devices WHERE id = $1")
                .bind(o.device.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if owner.as_deref() != Some(o.from.as_str()) {
            return Ok(NewTransfer::NotTheSenders);
        }
        // Offers past their time are open in name only: closed now, so that a new one may go.
        sqlx::query(
            "UPDATE transfers SET status = 'void', updated_at = $2
             WHERE device_id = $1 AND status IN ('offered', 'accepted') AND expires_at <= $2",
        )
        .bind(o.device.as_str())
        .bind(to_millis(o.created_at))
        .execute(&mut *tx)
        .await?;
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM transfers
             WHERE to_owner = $1 AND status IN ('offered', 'accepted') AND expires_at > $2",
        )
        .bind(o.to.as_str())
        .bind(to_millis(o.created_at))
        .fetch_one(&mut *tx)
        .await?;
        if open >= i64::from(per_receiver) {
            return Ok(NewTransfer::ReceiverFull);
        }
        let from_sender: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM transfers
             WHERE to_owner = $1 AND from_owner = $2 AND status IN ('offered', 'accepted')
               AND expires_at > $3",
        )
        .bind(o.to.as_str())
        .bind(o.from.as_str())
        .bind(to_millis(o.created_at))
        .fetch_one(&mut *tx)
        .await?;
        if from_sender >= i64::from(per_pair) {
            return Ok(NewTransfer::PairFull);
        }
        let inserted = sqlx::query(
            "INSERT INTO transfers (id, device_id, from_owner, to_owner, status, expires_at,
                                    created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&o.id)
        .bind(o.device.as_str())
        .bind(o.from.as_str())
        .bind(o.to.as_str())
        .bind(o.status.as_str())
        .bind(to_millis(o.expires_at))
        .bind(to_millis(o.created_at))
        .bind(to_millis(o.updated_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(NewTransfer::Stored)
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Ok(NewTransfer::ChargerHasOpenOffer)
            }
            Err(e) => Err(conflict_on_unique("transfer")(e)),
        }
    }

    pub(super) async fn get_transfer_row(&self, id: &str) -> StoreResult<Option<TransferOffer>> {
        let row: Option<TransferRow> = sqlx::query_as(&format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TransferRow::into_offer).transpose()
    }

    pub(super) async fn list_transfer_rows(
        &self,
        owner: Option<&OwnerId>,
        cursor: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> StoreResult<Vec<TransferOffer>> {
        let (after_at, after_id) = match cursor {
            Some((at, id)) => (Some(to_millis(at)), Some(id)),
            None => (None, None),
        };
        let rows: Vec<TransferRow> = sqlx::query_as(&format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers
             WHERE ($1 IS NULL OR from_owner = $1 OR to_owner = $1)
               AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id > $3))
             ORDER BY created_at DESC, id LIMIT $4"
        ))
        .bind(owner.map(OwnerId::as_str))
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TransferRow::into_offer).collect()
    }

    pub(super) async fn set_transfer_row_status(
        &self,
        id: &str,
        from: TransferStatus,
        to: TransferStatus,
        code_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE transfers SET status = $3, code_hash = COALESCE($4, code_hash), updated_at = $5
             WHERE id = $1 AND status = $2",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(code_hash)
        .bind(to_millis(now))
        .execute(&self.pool)
        .await
        .map_err(conflict_on_unique("claim code"))?;
        Ok(done.rows_affected() == 1)
    }
}
