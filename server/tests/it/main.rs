//! The integration tests, one binary (one link of the server and its dependencies, not one per
//! file). Test names are `module::…::sqlite::name` and `module::…::postgres::name` for the HTTP
//! suite on each database (`both_backends!`); the PostgreSQL variants are `#[ignore]`d and run
//! with `--ignored postgres::`. The moto tests (`kms::`, `cognito::`) are `#[ignore]`d too and run
//! with `--ignored kms:: cognito::`; none of their names contains `postgres::`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[macro_use]
mod common;

mod alert_console;
mod anomaly;
mod api;
mod apikeys;
mod audit_chain;
mod audit_viewer;
mod brute_force;
mod canary;
mod cards;
mod cli;
mod cognito;
mod console;
mod documents;
mod household;
mod import;
mod incident;
mod journey;
mod jwt;
mod kms;
mod messages;
mod messages_staff;
mod metrics;
mod money;
mod plans;
mod reconcile;
mod record_views;
mod refunds;
mod rehearsal;
mod rekey;
mod reminders;
mod roles;
mod rotate;
mod routes;
mod sandbox;
mod security;
mod smtp;
mod spanish;
mod staff;
mod staff_api_keys;
mod staff_import;
mod stripe;
mod text_settings;
mod twilio;
mod two_servers;
mod view_as;
mod webhooks;
