//! Warren's shared vocabulary: pure, deterministic, property-tested.
//!
//! Nothing here does IO or reads the clock: callers pass `now` and the random source.
//!
//! # Layout
//!
//! - [`ids`] — prefixed, time-ordered resource ids (`cr_…`, `ak_…`, `ts_…`) with
//!   27-character KSUID-shaped bodies.
//! - [`token`] — authtoken / API-key generation (`<id body>_<secret>`), shape checks
//!   (malformed vs. invalid), SHA-256 [`TokenHash`] with constant-time comparison.
//! - [`host`] — [`HostName`] validation and normalization, [`DomainPattern`] (exact or
//!   leading wildcard) matching and specificity, wildcard lookup keys for route tables.
//! - [`acl`] — authtoken ACL rules (`*`, `bind:<domain|addr|label>`) and their evaluation.
//! - [`cidr`] — IPv4/IPv6 CIDR blocks and IP policy rule evaluation (deny wins).
//! - [`fields`] — byte limits on `description` and `metadata`.
//! - `base62` (private) — the fixed-width, order-preserving encoding behind ids and tokens.

mod base62;

pub mod acl;
pub mod cidr;
pub mod fields;
pub mod host;
pub mod ids;
pub mod token;

pub use acl::{Acl, AclError, AclRule};
pub use host::{DomainPattern, HostError, HostName, wildcard_lookup_keys};
pub use ids::{IdError, IdPrefix, new_id, parse_id};
pub use token::{TokenHash, generate_token, hash_token, looks_like_token};
