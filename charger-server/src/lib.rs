//! `charger-server`: the MyBox charging backend as one binary.
//!
//! A tour, from the edges in:
//!
//! - [`config`]: every setting as a flag and an environment variable.
//! - [`app`]: start-up; opens the secret and the database, binds the listeners, serves.
//! - [`broker`]: the embedded MQTT broker: our own connections (on rumqttd's codecs),
//!   which authenticate every charger, enforce the topic ACL, hand requests to the
//!   dispatcher and write its answers back.
//! - [`mqtt`]: the MQTT edge of the charger API: the transports (the embedded broker, or
//!   a client of an external broker) that parse, queue, seal and publish.
//! - [`requests`]: the charger request service (group commit, key check, kept answers,
//!   commands), the one home of the request path, behind a transport trait.
//! - [`api`]: the REST edge (axum), and [`console`], the web console on the same listener.
//!   Both parse, call one [`service::Service`] method and map the result; neither
//!   touches SQL.
//! - [`service`], [`owners`], [`devices`], [`tags`], [`billing`]: the domain layer. One
//!   [`error::Error`] for all of it, mapped once per edge.
//! - [`store`]: the storage trait and its SQL implementation for SQLite and PostgreSQL;
//!   the only place with SQL.
//! - [`limits`]: limits keyed by the identity they restrain (a source address, a device
//!   id), shared by the edges (docs/security.md).
//! - [`secrets`]: the server secret, device-key derivation (HKDF), password and token hashes.
//!
//! Money is `rust_decimal` (billed amounts stored as integer minor units), energy is
//! integer Wh, time is UTC.

pub mod api;
pub mod app;
pub mod audit;
pub mod billing;
pub mod broker;
pub mod charging;
pub mod config;
pub mod console;
pub mod devices;
pub mod error;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod mqtt;
pub mod ocpp;
pub mod owners;
pub mod records;
pub mod requests;
pub mod secrets;
pub mod service;
pub mod sites;
pub mod store;
pub mod tags;
pub mod telemetry;

pub use app::App;
pub use config::Config;
