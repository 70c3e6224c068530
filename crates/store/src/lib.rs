//! Warren's persistence: one [`Store`] facade over SQLite (the default) or PostgreSQL.
//!
//! The store knows tables and rows, never HTTP or sessions. Secrets never reach it in a
//! storable form: tokens are hashed (SHA-256, [`warren_model::TokenHash`]) before any
//! query, only the hex hash is written, and nothing here logs a token.
//!
//! Conventions shared by every table:
//! - ids are `warren_model::ids` ids (`cr_…`, `ak_…`), text primary keys;
//! - times are stored as Unix seconds (UTC) in an integer column — identical on both
//!   backends, sortable, and exactly the resolution of ngrok's `created_at`;
//! - queries are runtime-checked `sqlx::query`/`query_as` with `$n` binds (both SQLite and
//!   PostgreSQL accept `$n`), so one SQL string serves both backends;
//! - migrations live per backend in `migrations/sqlite` and `migrations/postgres` and run
//!   on every [`Store::connect`] (already-applied ones are skipped).
//!
//! # Layout
//!
//! - [`db`] — [`Store`], [`Backend`], connecting (pool settings per backend) and migrations.
//! - [`credentials`] — the `credentials` table: authtokens with ACLs.
//! - [`api_keys`] — the `api_keys` table.
//! - [`reservations`] — the `reserved_domains` and `reserved_addrs` tables.
//! - [`ip_policies`] — IP policies, their rules, and IP restrictions.
//! - [`events`] — event destinations, subscriptions and the delivery outbox.
//! - [`usage`] — traffic per clock hour, endpoint and credential.
//! - [`error`] — [`StoreError`], the one error type.
//! - `common` (private) — field validation, clock, id/token minting, error mapping.

/// Runs `$body` with `$pool` bound to the backend's pool (`&SqlitePool` or `&PgPool`).
///
/// The body is compiled once per backend, so one SQL string and one set of binds serve
/// both; each module stays free of backend `match`es.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}

mod common;

pub mod api_keys;
pub mod credentials;
pub mod db;
pub mod error;
pub mod events;
pub mod ip_policies;
pub mod reservations;
pub mod service_users;
pub mod usage;

pub use api_keys::ApiKey;
pub use credentials::{Credential, NewCredential};
pub use db::{Backend, Store};
pub use error::StoreError;
