//! End-to-end tests: the real server on free loopback ports, real databases, real clients.
//!
//! `cargo test --workspace` runs them on SQLite; with `TEST_DATABASE_URL` set, the store
//! suite runs on PostgreSQL too and the REST tests run on PostgreSQL.

mod billing_inputs;
mod broker;
mod broker_auth;
mod charging;
mod console;
mod contract;
mod envelope_v2;
mod hardening;
mod http_limits;
mod migrations;
mod mqtt_api;
mod mqtt_limits;
mod namespaces;
mod ocpp16;
mod ocpp201;
mod ocpp_schemas;
mod openapi;
mod read_model;
mod refusals;
mod rest_provisioning;
mod retention;
mod scale_out;
mod sessions_reports;
mod simulator;
mod sites;
mod store_conformance;
mod transfers;
