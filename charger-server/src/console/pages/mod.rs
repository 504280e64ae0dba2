//! The console's pages, one file each: its handlers and its views.

mod access;
mod billing;
mod charger;
mod fleet;
mod sessions;
mod sites;
mod tags;
mod tariffs;
mod transfers;

use axum::response::Response;
use axum::Router;

use super::Viewer;
use crate::api::ApiState;
use crate::error::Error;
use crate::ids::DeviceId;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .merge(fleet::routes())
        .merge(charger::routes())
        .merge(sessions::routes())
        .merge(billing::routes())
        .merge(tags::routes())
        .merge(tariffs::routes())
        .merge(sites::routes())
        .merge(transfers::routes())
        .merge(access::routes())
}

/// A charger id from a path, or the page that says there is no such charger.
#[allow(clippy::result_large_err)]
fn device_id(v: Viewer, id: &str) -> Result<(Viewer, DeviceId), Response> {
    match DeviceId::parse(id) {
        Ok(id) => Ok((v, id)),
        Err(_) => Err(v.error(&Error::not_found("device"))),
    }
}
