//! Usage metering: per-endpoint counters the data plane bumps with relaxed atomics, added to
//! the store's `usage_hours` per clock hour by a flusher (and at shutdown).
//!
//! An endpoint is identified by its public URL and the credential serving it. The flusher
//! attributes what accumulated since the previous flush to the clock hour of the flush; it also
//! flushes at every hour boundary, so attribution is exact to within one flush interval.
//!
//! This module only keeps counters and turns them into deltas; [`crate::Events`] owns the
//! flusher and the store writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use warren_store::usage::UsageHour;

use crate::clock::Clock;

/// Counters of one endpoint (shared by the data plane; bump with the methods).
#[derive(Debug, Default)]
pub struct EndpointUsage {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) connections: AtomicU64,
}

impl EndpointUsage {
    /// Bytes from a visitor toward the agent.
    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }
    /// Bytes from the agent toward a visitor.
    pub fn bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }
    /// One HTTP request completed.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    /// One visitor connection handed to the agent.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the counters (leaving zeros): `[bytes_in, bytes_out, requests, connections]`.
    fn take(&self) -> [u64; 4] {
        [
            self.bytes_in.swap(0, Ordering::Relaxed),
            self.bytes_out.swap(0, Ordering::Relaxed),
            self.requests.swap(0, Ordering::Relaxed),
            self.connections.swap(0, Ordering::Relaxed),
        ]
    }

    /// Adds taken counters back (after a failed store write).
    fn give_back(&self, d: &UsageHour) {
        self.bytes_in.fetch_add(d.bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(d.bytes_out, Ordering::Relaxed);
        self.requests.fetch_add(d.requests, Ordering::Relaxed);
        self.connections.fetch_add(d.connections, Ordering::Relaxed);
    }

    fn is_zero(&self) -> bool {
        self.bytes_in.load(Ordering::Relaxed) == 0
            && self.bytes_out.load(Ordering::Relaxed) == 0
            && self.requests.load(Ordering::Relaxed) == 0
            && self.connections.load(Ordering::Relaxed) == 0
    }
}

/// (public URL, credential id).
type EndpointKey = (String, String);

/// Every endpoint's counters.
pub struct UsageMeter {
    clock: Arc<dyn Clock>,
    /// One entry per endpoint seen since its counters were last idle and unreferenced; pruned
    /// by [`UsageMeter::prune`] after each successful flush.
    endpoints: Mutex<HashMap<EndpointKey, Arc<EndpointUsage>>>,
}

/// Counters taken from the meter, waiting to be written; give them back if the write fails.
pub(crate) struct TakenUsage {
    pub(crate) deltas: Vec<UsageHour>,
    counters: Vec<Arc<EndpointUsage>>,
}

impl TakenUsage {
    /// Adds every delta back to its counters.
    pub(crate) fn give_back(self) {
        for (counter, delta) in self.counters.iter().zip(&self.deltas) {
            counter.give_back(delta);
        }
    }
}

impl UsageMeter {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> UsageMeter {
        UsageMeter {
            clock,
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointKey, Arc<EndpointUsage>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is used as is.
        self.endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The counters of `url` served with `credential_id` (the same counters for the same pair,
    /// so a reconnecting agent keeps adding to them).
    pub fn endpoint(&self, url: &str, credential_id: &str) -> Arc<EndpointUsage> {
        self.map()
            .entry((url.to_owned(), credential_id.to_owned()))
            .or_default()
            .clone()
    }

    /// The start of the clock's current hour, Unix seconds.
    pub fn current_hour(&self) -> i64 {
        let now = self.clock.now().unix_timestamp();
        now - now.rem_euclid(3600)
    }

    /// Takes every non-zero counter as a delta for the current clock hour.
    pub(crate) fn take(&self) -> TakenUsage {
        let hour = self.current_hour();
        let entries: Vec<(EndpointKey, Arc<EndpointUsage>)> = self
            .map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut taken = TakenUsage {
            deltas: Vec::new(),
            counters: Vec::new(),
        };
        for ((endpoint, credential_id), counter) in entries {
            let [bytes_in, bytes_out, requests, connections] = counter.take();
            if bytes_in == 0 && bytes_out == 0 && requests == 0 && connections == 0 {
                continue;
            }
            taken.deltas.push(UsageHour {
                hour,
                endpoint,
                credential_id,
                bytes_in,
                bytes_out,
                requests,
                connections,
            });
            taken.counters.push(counter);
        }
        taken
    }

    /// Forgets endpoints nobody holds any more whose counters are all zero.
    pub(crate) fn prune(&self) {
        self.map()
            .retain(|_, counter| Arc::strong_count(counter) > 1 || !counter.is_zero());
    }

    /// How many endpoints are tracked (for tests of the memory bound).
    pub fn tracked(&self) -> usize {
        self.map().len()
    }
}
