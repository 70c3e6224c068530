//! Sinks: where a delivery worker hands a batch of outbox rows. Each sink owns its connection
//! state (kept between batches) and reports failure as a short, human-readable reason that is
//! stored with the rows.

mod file;
mod http;
mod nats;

use warren_store::events::OutboxEntry;

use crate::EventsConfig;
use crate::target::Target;

/// The sink of one destination.
pub(crate) enum Sink {
    Http(http::HttpSink),
    File(file::FileSink),
    /// Boxed: the NATS client state is much larger than the other sinks.
    Nats(Box<nats::NatsSink>),
    /// A kind Warren does not deliver to (never routed; kept for completeness).
    Unsupported(&'static str),
}

impl Sink {
    pub(crate) fn new(target: &Target, config: &EventsConfig) -> Sink {
        let _ = config;
        match target {
            Target::Http { url, secret } => Sink::Http(http::HttpSink::new(url, secret)),
            Target::File {
                path,
                max_bytes,
                max_files,
            } => Sink::File(file::FileSink::new(path, *max_bytes, *max_files)),
            Target::Nats { url, subject } => {
                Sink::Nats(Box::new(nats::NatsSink::new(url, subject)))
            }
            Target::Cloud { kind, .. } => Sink::Unsupported(kind),
        }
    }

    /// Delivers `rows` (in order); `Ok` only once the destination has them all.
    pub(crate) async fn deliver(&mut self, rows: &[OutboxEntry]) -> Result<(), String> {
        match self {
            Sink::Http(s) => s.deliver(rows).await,
            Sink::File(s) => s.deliver(rows).await,
            Sink::Nats(s) => s.deliver(rows).await,
            Sink::Unsupported(kind) => Err(format!("Warren does not deliver to {kind} targets")),
        }
    }

    /// Forgets connection state after an attempt was abandoned midway (timeout).
    pub(crate) fn reset(&mut self) {
        match self {
            Sink::Http(s) => s.reset(),
            Sink::Nats(s) => s.reset(),
            Sink::File(_) | Sink::Unsupported(_) => {}
        }
    }
}

/// The event envelopes of `rows`, in order (a row holds one or more, as JSON lines).
pub(crate) fn each_event(rows: &[OutboxEntry]) -> impl Iterator<Item = &str> {
    rows.iter().flat_map(|row| row.payload.split('\n'))
}

/// How many events `rows` hold.
pub(crate) fn event_count(rows: &[OutboxEntry]) -> usize {
    rows.iter().map(|row| row.events as usize).sum()
}
