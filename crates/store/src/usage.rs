//! The `usage_hours` table: traffic per clock hour, per endpoint and credential.
//!
//! Rows are added to, never rewritten: [`Store::add_usage`] adds deltas to the row of their
//! (hour, endpoint, credential), creating it when needed, so several flushes within one hour —
//! or several nodes — sum up. An endpoint is *active* in an hour when its row for that hour has
//! `bytes_out > 0` (traffic flowed out of it toward visitors).

use time::OffsetDateTime;

use crate::{Store, StoreError};

/// Traffic of one endpoint and credential within one clock hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageHour {
    /// Start of the clock hour (UTC, minutes and seconds zero).
    pub hour: i64,
    /// The endpoint's public URL (stable across reconnects; the endpoint's identity here).
    pub endpoint: String,
    /// The credential (`cr_…`) whose agent served it.
    pub credential_id: String,
    /// Bytes from visitors toward the agent.
    pub bytes_in: u64,
    /// Bytes from the agent toward visitors.
    pub bytes_out: u64,
    /// HTTP requests completed.
    pub requests: u64,
    /// Visitor connections handed to the agent.
    pub connections: u64,
}

impl Store {
    /// Adds each delta to its (hour, endpoint, credential) row, in one transaction. `hour` of
    /// every delta must be the start of a clock hour as Unix seconds.
    pub async fn add_usage(&self, deltas: &[UsageHour]) -> Result<(), StoreError> {
        let _ = deltas;
        unimplemented!("store helper")
    }

    /// Every row whose hour starts in `[start, end)`, ordered by hour, endpoint, credential.
    pub async fn usage_between(
        &self,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<Vec<UsageHour>, StoreError> {
        let _ = (start, end);
        unimplemented!("store helper")
    }
}
