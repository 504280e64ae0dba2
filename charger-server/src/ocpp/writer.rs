//! The group commit of the OCPP CALLs that write, from every socket of either version.

use serde_json::Value;

use charger_protocol::ocpp::{ErrorCode, Version};

use super::{CallError, Hub};
use crate::charging::{Charger, ChargerWork};
use crate::error::Error;
use crate::ids::DeviceId;

type CallResult = std::result::Result<Value, CallError>;

/// A CALL that writes, for the group commit.
pub(super) struct Job {
    device: DeviceId,
    version: Version,
    action: &'static str,
    body: Value,
    reply: tokio::sync::oneshot::Sender<CallResult>,
}

/// Most CALLs committed together.
const BATCH: usize = 128;

/// The group commit: CALLs that write, from every socket, taken as they queue up and run
/// one after the other in one transaction (each in a savepoint, undone alone when it is
/// answered with a CALLERROR), committed once; each answer goes out after the commit.
pub(super) fn start_writer(hub: std::sync::Weak<Hub>) -> tokio::sync::mpsc::Sender<Job> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(4096);
    tokio::spawn(async move {
        let mut jobs = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut jobs, BATCH).await > 0 {
            let Some(hub) = hub.upgrade() else { break };
            let results = run_batch(&hub, &jobs).await;
            for (job, result) in jobs.drain(..).zip(results) {
                let _ = job.reply.send(result);
            }
        }
    });
    tx
}

pub(super) fn internal() -> CallError {
    CallError::new(ErrorCode::InternalError, "internal error")
}

fn gone() -> CallError {
    CallError::new(
        ErrorCode::SecurityError,
        "this charger is not provisioned any more",
    )
}

async fn dispatch(hub: &Hub, tx: &mut ChargerWork, charger: &Charger, job: &Job) -> CallResult {
    match job.version {
        Version::V16 => super::v16::dispatch(hub, tx, charger, job.action, &job.body).await,
        Version::V201 => super::v201::dispatch(hub, tx, charger, job.action, &job.body).await,
    }
}

async fn run_batch(hub: &Hub, jobs: &[Job]) -> Vec<CallResult> {
    let failed = |e: Error| {
        tracing::error!(error = %e, calls = jobs.len(), "OCPP CALLs not committed");
        jobs.iter().map(|_| Err(internal())).collect()
    };
    let mut tx = match hub.service.begin_work().await {
        Ok(tx) => tx,
        Err(e) => return failed(e),
    };
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Err(e) = tx.savepoint().await {
            return failed(e.into());
        }
        let result = match hub.service.charger_in(tx.as_mut(), &job.device).await {
            Ok(Some(charger)) => dispatch(hub, &mut tx, &charger, job).await,
            // Deleted while connected.
            Ok(None) => Err(gone()),
            Err(e) => Err(e.into()),
        };
        let kept = if result.is_ok() {
            tx.release_savepoint().await
        } else {
            tx.rollback_to_savepoint().await
        };
        if let Err(e) = kept {
            return failed(e.into());
        }
        results.push(result);
    }
    match hub.service.commit(tx).await {
        Ok(()) => results,
        Err(e) => failed(e),
    }
}

/// The CALLs that read or change the charger's records: an authorization on a read-only
/// connection (it changes nothing but the unknown tags it sees), the others through the
/// group commit.
pub(super) async fn in_transaction(
    hub: &Hub,
    device: &DeviceId,
    version: Version,
    action: &'static str,
    body: &Value,
) -> CallResult {
    if action == "Authorize" {
        let (mut tx, charger) = match hub.service.begin_charger_read(device).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(gone()),
            Err(e) => return Err(e.into()),
        };
        let answer = match version {
            Version::V16 => super::v16::authorize(hub, &mut tx, &charger, body).await?,
            Version::V201 => super::v201::authorize(hub, &mut tx, &charger, body).await?,
        };
        hub.service.commit(tx).await?;
        return Ok(answer);
    }
    let Some(writer) = hub.writer.get() else {
        return Err(internal());
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        device: device.clone(),
        version,
        action,
        body: body.clone(),
        reply,
    };
    if writer.send(job).await.is_err() {
        return Err(internal());
    }
    answer.await.unwrap_or_else(|_| Err(internal()))
}
