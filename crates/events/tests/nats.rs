//! The `nats` sink against a real server (`WARREN_TEST_NATS_URL`; skipped when unset): core
//! publish for plain subscribers, JetStream publish with acks when a stream captures the
//! subject.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{WAIT, config, destination, eventually, fixture, subscribe};
use futures::StreamExt;
use serde_json::{Value, json};
use warren_events::{Events, SystemClock, types};

const NATS_URL_ENV: &str = "WARREN_TEST_NATS_URL";

fn nats_url(test: &str) -> Option<String> {
    match std::env::var(NATS_URL_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipping {test}: {NATS_URL_ENV} is not set");
            None
        }
    }
}

/// A subject prefix no other run uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}x{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_subscribers_get_events_per_type_subject() {
    let Some(url) = nats_url("core_subscribers_get_events_per_type_subject") else {
        return;
    };
    let subject = format!("warren.test.{}", unique("core"));
    let client = async_nats::connect(url.as_str())
        .await
        .expect("test connects to NATS");
    let mut sub = client.subscribe(format!("{subject}.>")).await.unwrap();
    client.flush().await.unwrap();

    let fx = fixture().await;
    let dest = destination(&fx.store, json!({"nats": {"url": url, "subject": subject}})).await;
    subscribe(
        &fx.store,
        &[types::AGENT_SESSION_START, types::AGENT_SESSION_STOP],
        &[&dest],
    )
    .await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    for n in 0..5u64 {
        let ty = if n % 2 == 0 {
            types::AGENT_SESSION_START
        } else {
            types::AGENT_SESSION_STOP
        };
        events.emit(ty, None, json!({"n": n}));
    }
    for n in 0..5u64 {
        let msg = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("event arrives")
            .expect("subscription open");
        let ty = if n % 2 == 0 {
            types::AGENT_SESSION_START
        } else {
            types::AGENT_SESSION_STOP
        };
        assert_eq!(msg.subject.as_str(), format!("{subject}.{ty}"));
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(v["object"]["n"], n);
        assert_eq!(v["event_type"], ty);
    }
    eventually("acknowledged", || async {
        events.destination_status(&dest).await.unwrap().pending == 0
    })
    .await;
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_stream_captures_events_with_acks() {
    let Some(url) = nats_url("jetstream_stream_captures_events_with_acks") else {
        return;
    };
    let name = unique("WARREN_TEST_");
    let subject = format!("warren.js.{}", name.to_lowercase());
    let client = async_nats::connect(url.as_str())
        .await
        .expect("test connects to NATS");
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject}.>")],
            max_age: Duration::from_secs(600),
            ..Default::default()
        })
        .await
        .expect("JetStream stream created");

    let fx = fixture().await;
    let dest = destination(&fx.store, json!({"nats": {"url": url, "subject": subject}})).await;
    subscribe(&fx.store, &[types::TCP_CONNECTION_CLOSED], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    for n in 0..7u64 {
        events.emit(types::TCP_CONNECTION_CLOSED, None, json!({"n": n}));
    }
    events.flush().await;
    eventually("all acknowledged", || async {
        events.destination_status(&dest).await.unwrap().pending == 0
    })
    .await;
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 7);
    for seq in 1..=7u64 {
        let msg = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(
            msg.subject.as_str(),
            format!("{subject}.{}", types::TCP_CONNECTION_CLOSED)
        );
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(v["object"]["n"], seq - 1);
    }
    events.shutdown().await;
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_recorded_failure() {
    // Needs no server: a port nothing listens on.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let fx = fixture().await;
    let dest = destination(
        &fx.store,
        json!({"nats": {"url": format!("nats://127.0.0.1:{port}"), "subject": "w"}}),
    )
    .await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    events.emit(types::AGENT_SESSION_START, None, json!({}));
    eventually("failure recorded", || async {
        events
            .destination_status(&dest)
            .await
            .unwrap()
            .last_error
            .contains("NATS")
    })
    .await;
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_rejection_fails_the_batch() {
    let Some(url) = nats_url("jetstream_rejection_fails_the_batch") else {
        return;
    };
    let name = unique("WARREN_TEST_FULL_");
    let subject = format!("warren.js.{}", name.to_lowercase());
    let client = async_nats::connect(url.as_str())
        .await
        .expect("test connects to NATS");
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{subject}.>")],
        max_messages: 2,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .expect("JetStream stream created");

    let fx = fixture().await;
    let dest = destination(&fx.store, json!({"nats": {"url": url, "subject": subject}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    for n in 0..3u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    // A core publish would be dropped silently by the full stream; JetStream says no.
    eventually("the rejection recorded", || async {
        events
            .destination_status(&dest)
            .await
            .unwrap()
            .last_error
            .contains("JetStream")
    })
    .await;
    // The stream took two; what it refused stays pending.
    assert!(events.destination_status(&dest).await.unwrap().pending >= 1);
    let mut stream = js.get_stream(&name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    events.shutdown().await;
    js.delete_stream(&name).await.unwrap();
}
