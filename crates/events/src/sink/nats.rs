//! The `nats` sink: each event is published on `<subject>.<event_type>` (event types contain
//! a dot, so `warren.events` + `agent_session_start.v0` gives the tokens `warren`, `events`,
//! `agent_session_start`, `v0`).
//!
//! When a JetStream stream captures the subject (`stream_by_subject`), the event is published
//! through JetStream and the batch succeeds only once every publish is acknowledged (at least
//! once). Otherwise it is a core publish, and the batch succeeds once `flush` confirms the
//! server has everything. The client is kept between batches and rebuilt after a failure;
//! which subjects a stream captures is remembered for [`CAPTURE_CACHE_TTL`].

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::GetStreamByNameErrorKind;
use bytes::Bytes;
use tokio::time::Instant;
use warren_store::events::OutboxEntry;

/// How long the answer to "does a stream capture this subject?" is trusted.
const CAPTURE_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long connecting may take (the whole attempt is also bounded by `delivery_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct NatsSink {
    url: String,
    subject: String,
    conn: Option<(async_nats::Client, jetstream::Context)>,
    /// Subject → captured by a JetStream stream; cleared every [`CAPTURE_CACHE_TTL`].
    captured: HashMap<String, bool>,
    captured_since: Instant,
}

impl NatsSink {
    pub(crate) fn new(url: &str, subject: &str) -> NatsSink {
        NatsSink {
            url: url.to_owned(),
            subject: subject.to_owned(),
            conn: None,
            captured: HashMap::new(),
            captured_since: Instant::now(),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.conn = None;
        self.captured.clear();
    }

    async fn connection(&mut self) -> Result<(async_nats::Client, jetstream::Context), String> {
        if let Some((client, js)) = &self.conn
            && client.connection_state() == async_nats::connection::State::Connected
        {
            return Ok((client.clone(), js.clone()));
        }
        self.reset();
        let client = async_nats::ConnectOptions::new()
            .name("warren-events")
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(self.url.as_str())
            .await
            .map_err(|e| format!("cannot connect to NATS at {}: {e}", self.url))?;
        let js = jetstream::new(client.clone());
        self.conn = Some((client.clone(), js.clone()));
        Ok((client, js))
    }

    /// Whether a JetStream stream captures `subject` (false when the server has no JetStream).
    async fn is_captured(&mut self, js: &jetstream::Context, subject: &str) -> bool {
        if self.captured_since.elapsed() > CAPTURE_CACHE_TTL {
            self.captured.clear();
            self.captured_since = Instant::now();
        }
        if let Some(&known) = self.captured.get(subject) {
            return known;
        }
        match js.stream_by_subject(subject).await {
            Ok(_) => {
                self.captured.insert(subject.to_owned(), true);
                true
            }
            Err(e) if matches!(e.kind(), GetStreamByNameErrorKind::NotFound) => {
                self.captured.insert(subject.to_owned(), false);
                false
            }
            Err(e) => {
                // No JetStream on the server, or a transient failure: publish plainly (a stream,
                // if any, still captures it) and ask again next time.
                tracing::debug!(subject, error = %e, "JetStream stream lookup failed; core publish");
                false
            }
        }
    }

    pub(crate) async fn deliver(&mut self, rows: &[OutboxEntry]) -> Result<(), String> {
        let result = self.publish(rows).await;
        if result.is_err() {
            self.reset();
        }
        result
    }

    async fn publish(&mut self, rows: &[OutboxEntry]) -> Result<(), String> {
        let (client, js) = self.connection().await?;
        let mut acks = Vec::new();
        let events = rows.iter().flat_map(|row| {
            let subject = format!("{}.{}", self.subject, row.event_type);
            row.payload
                .split('\n')
                .map(|event| (subject.clone(), Bytes::copy_from_slice(event.as_bytes())))
                .collect::<Vec<_>>()
        });
        for (subject, payload) in events.collect::<Vec<_>>() {
            if self.is_captured(&js, &subject).await {
                let ack = js
                    .publish(subject.clone(), payload)
                    .await
                    .map_err(|e| format!("JetStream publish on {subject} failed: {e}"))?;
                acks.push((subject, ack));
            } else {
                client
                    .publish(subject.clone(), payload)
                    .await
                    .map_err(|e| format!("NATS publish on {subject} failed: {e}"))?;
            }
        }
        for (subject, ack) in acks {
            ack.await
                .map_err(|e| format!("JetStream did not acknowledge {subject}: {e}"))?;
        }
        client
            .flush()
            .await
            .map_err(|e| format!("NATS flush failed: {e}"))
    }
}
