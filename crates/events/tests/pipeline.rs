//! The event pipeline end to end over a real SQLite file: emit/record → outbox → webhook and
//! file sinks, retries, restarts, parking, independence of destinations, usage, routing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Receiver, config, destination, eventually, fixture, subscribe};
use serde_json::{Value, json};
use time::macros::datetime;
use warren_events::{Events, ManualClock, SystemClock, types};

fn numbers(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["object"]["n"].as_u64().expect("object.n"))
        .collect()
}

/// Every event emitted so far, once the `file` destination `dest` writing to `path` has them.
async fn file_events(events: &Events, dest: &str, path: &std::path::Path) -> Vec<Value> {
    events.flush().await;
    eventually("file written", || async {
        events.destination_status(dest).await.unwrap().pending == 0
    })
    .await;
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_every_event_in_order_signed() {
    let fx = fixture().await;
    let receiver = Receiver::start("s3cret").await;
    let dest = destination(
        &fx.store,
        json!({"http": {"url": receiver.url(), "secret": "s3cret"}}),
    )
    .await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-02 03:04:05.678 UTC)));
    let events = Events::new(fx.store.clone(), config(), clock);
    events.start().await.unwrap();

    assert!(events.wants(types::AGENT_SESSION_START));
    assert!(!events.wants(types::HTTP_REQUEST_COMPLETE));
    for n in 0..100u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    let got = receiver.wait_for(100).await;
    assert_eq!(numbers(&got), (0..100).collect::<Vec<_>>());
    assert_eq!(receiver.bad_signatures(), 0);
    let first = &got[0];
    assert_eq!(first["event_type"], types::AGENT_SESSION_START);
    assert_eq!(first["event_timestamp"], "2026-01-02T03:04:05Z");
    assert_eq!(first["account_id"], "ac_warren");
    assert!(first["principal"].is_null());
    assert!(first["event_id"].as_str().unwrap().starts_with("ev_"));
    // Batches of at most 16 events, all over one kept-alive connection.
    assert!(receiver.batches() >= 7, "{}", receiver.batches());
    assert_eq!(receiver.connections(), 1);

    eventually("nothing pending", || async {
        events.destination_status(&dest).await.unwrap().pending == 0
    })
    .await;
    let mut metrics = String::new();
    events.encode_metrics(&mut metrics);
    assert!(
        metrics.contains(&format!(
            "warren_event_deliveries_total{{destination=\"{dest}\"}} 100"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("warren_events_emitted_total{type=\"agent_session_start.v0\"} 100"));
    assert!(metrics.contains("warren_events_dropped_total 0"));
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_is_in_the_outbox_before_it_returns() {
    let fx = fixture().await;
    let receiver = Receiver::down_at_first("").await;
    let dest = destination(&fx.store, json!({"http": {"url": receiver.url()}})).await;
    let ty = types::audit("ip_policy", "created");
    subscribe(&fx.store, &[ty], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    let principal = warren_events::Principal {
        id: "usr_1".into(),
        subject: "ops@example.com".into(),
        source: "API".into(),
        credential: None,
    };
    events
        .record(ty, Some(principal), json!({"n": 7}))
        .await
        .unwrap();
    let status = events.destination_status(&dest).await.unwrap();
    assert!(status.delivered);
    assert_eq!(status.pending, 1);
    receiver.up().await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0]["principal"]["subject"], "ops@example.com");
    assert_eq!(got[0]["object"]["n"], 7);
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_then_up_delivers_everything_in_order() {
    let fx = fixture().await;
    let receiver = Receiver::down_at_first("k").await;
    let dest = destination(
        &fx.store,
        json!({"http": {"url": receiver.url(), "secret": "k"}}),
    )
    .await;
    subscribe(&fx.store, &[types::AGENT_SESSION_STOP], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    for n in 0..40u64 {
        events.emit(types::AGENT_SESSION_STOP, None, json!({"n": n}));
    }
    events.flush().await;
    eventually("a failed attempt recorded", || async {
        !events
            .destination_status(&dest)
            .await
            .unwrap()
            .last_error
            .is_empty()
    })
    .await;
    let status = events.destination_status(&dest).await.unwrap();
    assert_eq!(status.pending, 40);
    assert!(
        status.last_error.contains("connect"),
        "{}",
        status.last_error
    );
    // More events while down, then the receiver comes up.
    for n in 40..60u64 {
        events.emit(types::AGENT_SESSION_STOP, None, json!({"n": n}));
    }
    receiver.up().await;
    let got = receiver.wait_for(60).await;
    assert_eq!(numbers(&got), (0..60).collect::<Vec<_>>());
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_status_is_retried_and_reported() {
    let fx = fixture().await;
    let receiver = Receiver::start("").await;
    receiver.fail_with(503);
    let dest = destination(&fx.store, json!({"http": {"url": receiver.url()}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    events.emit(types::AGENT_SESSION_START, None, json!({"n": 1}));
    eventually("the 503 recorded", || async {
        events
            .destination_status(&dest)
            .await
            .unwrap()
            .last_error
            .contains("503")
    })
    .await;
    receiver.fail_with(0);
    assert_eq!(numbers(&receiver.wait_for(1).await), vec![1]);
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_events_survive_a_restart() {
    let fx = fixture().await;
    let receiver = Receiver::down_at_first("").await;
    let dest = destination(&fx.store, json!({"http": {"url": receiver.url()}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    {
        let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
        events.start().await.unwrap();
        for n in 0..25u64 {
            events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
        }
        events.shutdown().await;
        // Emitted after shutdown: ignored, never half-written.
        events.emit(types::AGENT_SESSION_START, None, json!({"n": 999}));
    }
    fx.store.close().await;

    let store = warren_store::Store::connect(&fx.url).await.unwrap();
    let events = Events::new(store, config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    assert_eq!(events.destination_status(&dest).await.unwrap().pending, 25);
    receiver.up().await;
    let got = receiver.wait_for(25).await;
    assert_eq!(numbers(&got), (0..25).collect::<Vec<_>>());
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_after_max_attempts_then_requeued() {
    let fx = fixture().await;
    let receiver = Receiver::down_at_first("").await;
    let dest = destination(&fx.store, json!({"http": {"url": receiver.url()}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let mut cfg = config();
    cfg.max_attempts = 3;
    let events = Events::new(fx.store.clone(), cfg, Arc::new(SystemClock));
    events.start().await.unwrap();
    for n in 0..5u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    events.flush().await;
    eventually("parked", || async {
        events.destination_status(&dest).await.unwrap().parked == 5
    })
    .await;
    let status = events.destination_status(&dest).await.unwrap();
    assert_eq!(status.pending, 0);
    assert!(!status.last_error.is_empty());
    let mut metrics = String::new();
    events.encode_metrics(&mut metrics);
    assert!(
        metrics.contains(&format!(
            "warren_events_parked_total{{destination=\"{dest}\"}} 5"
        )),
        "{metrics}"
    );

    // Later events go on past the parked ones.
    receiver.up().await;
    events.emit(types::AGENT_SESSION_START, None, json!({"n": 5}));
    assert_eq!(numbers(&receiver.wait_for(1).await), vec![5]);

    assert_eq!(events.requeue_parked(&dest).await.unwrap(), 5);
    let got = receiver.wait_for(6).await;
    assert_eq!(numbers(&got), vec![5, 0, 1, 2, 3, 4]);
    let status = events.destination_status(&dest).await.unwrap();
    assert_eq!(status.parked, 0);
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_destination_down_does_not_delay_another() {
    let fx = fixture().await;
    let down = Receiver::down_at_first("").await;
    let up = Receiver::start("").await;
    let d1 = destination(&fx.store, json!({"http": {"url": down.url()}})).await;
    let d2 = destination(&fx.store, json!({"http": {"url": up.url()}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&d1, &d2]).await;
    let mut cfg = config();
    // A long backoff for the dead one: the live one must not wait on it.
    cfg.backoff_base = Duration::from_secs(60);
    cfg.backoff_max = Duration::from_secs(60);
    let events = Events::new(fx.store.clone(), cfg, Arc::new(SystemClock));
    events.start().await.unwrap();
    for n in 0..10u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    assert_eq!(numbers(&up.wait_for(10).await), (0..10).collect::<Vec<_>>());
    let status = events.destination_status(&d1).await.unwrap();
    assert_eq!(status.pending, 10);
    for n in 10..20u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    assert_eq!(numbers(&up.wait_for(20).await), (0..20).collect::<Vec<_>>());
    assert!(down.events().is_empty());
    eventually("the live destination shows no lag", || async {
        let mut metrics = String::new();
        events.encode_metrics(&mut metrics);
        metrics.contains(&format!(
            "warren_event_delivery_lag_seconds{{destination=\"{d2}\"}} 0"
        )) && metrics.contains(&format!(
            "warren_event_delivery_failures_total{{destination=\"{d1}\"}} 1"
        ))
    })
    .await;
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_writes_json_lines_and_rotates() {
    let fx = fixture().await;
    let path = fx.dir.path().join("events.jsonl");
    let dest = destination(
        &fx.store,
        json!({"file": {"path": path.display().to_string(), "max_bytes": 4096, "max_files": 2}}),
    )
    .await;
    subscribe(&fx.store, &[types::TCP_CONNECTION_CLOSED], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    let filler = "x".repeat(300);
    for n in 0..60u64 {
        events.emit(
            types::TCP_CONNECTION_CLOSED,
            None,
            json!({"n": n, "pad": filler}),
        );
    }
    events.flush().await;
    eventually("all written", || async {
        events.destination_status(&dest).await.unwrap().pending == 0
    })
    .await;
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let live = read(path.clone());
    let one = read(path.with_extension("jsonl.1"));
    let two = read(path.with_extension("jsonl.2"));
    assert!(!path.with_extension("jsonl.3").exists());
    for f in [&live, &one, &two] {
        assert!(
            f.len() as u64 <= 4096,
            "a file exceeds max_bytes: {}",
            f.len()
        );
    }
    // The newest events are in the live file, in order, one JSON object per line.
    let lines: Vec<Value> = [two, one, live]
        .iter()
        .flat_map(|f| {
            f.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let ns = numbers(&lines);
    assert_eq!(*ns.last().unwrap(), 59);
    assert!(ns.windows(2).all(|w| w[1] == w[0] + 1), "{ns:?}");
    assert!(ns.len() < 60, "older files dropped");
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_missing_directory_is_a_clear_failure() {
    let fx = fixture().await;
    let path = fx.dir.path().join("no/such/dir/events.jsonl");
    let dest = destination(
        &fx.store,
        json!({"file": {"path": path.display().to_string()}}),
    )
    .await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    events.emit(types::AGENT_SESSION_START, None, json!({"n": 0}));
    eventually("the failure recorded", || async {
        events
            .destination_status(&dest)
            .await
            .unwrap()
            .last_error
            .contains("does not exist")
    })
    .await;
    assert!(!fx.dir.path().join("no").exists());
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_subscribed_means_nothing_wanted() {
    let fx = fixture().await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    for ty in types::all() {
        assert!(!events.wants(&ty), "{ty}");
    }
    events.emit(types::HTTP_REQUEST_COMPLETE, None, json!({}));
    events.flush().await;
    let mut metrics = String::new();
    events.encode_metrics(&mut metrics);
    assert!(metrics.contains("warren_events_emitted_total{type=\"http_request_complete.v0\"} 0"));

    // A cloud destination is stored but never routed.
    let cloud = destination(&fx.store, json!({"datadog": {"api_key": "k"}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&cloud]).await;
    events.subscriptions_changed().await.unwrap();
    assert!(!events.wants(types::AGENT_SESSION_START));
    assert!(!events.destination_status(&cloud).await.unwrap().delivered);

    // A live tail wants everything while it exists.
    let mut live = events.live();
    assert!(events.wants(types::TCP_CONNECTION_CLOSED));
    events.emit(types::TCP_CONNECTION_CLOSED, None, json!({"n": 3}));
    let got = tokio::time::timeout(Duration::from_secs(5), live.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.object_value()["n"], 3);
    drop(live);
    assert!(!events.wants(types::TCP_CONNECTION_CLOSED));
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_changed_starts_routing() {
    let fx = fixture().await;
    let receiver = Receiver::start("").await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    let dest = destination(&fx.store, json!({"http": {"url": receiver.url()}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    assert!(!events.wants(types::AGENT_SESSION_START));
    events.subscriptions_changed().await.unwrap();
    assert!(events.wants(types::AGENT_SESSION_START));
    events.emit(types::AGENT_SESSION_START, None, json!({"n": 1}));
    assert_eq!(numbers(&receiver.wait_for(1).await), vec![1]);
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_traffic_but_keeps_lifecycle_events() {
    let fx = fixture().await;
    let path = fx.dir.path().join("q.jsonl");
    let dest = destination(
        &fx.store,
        json!({"file": {"path": path.display().to_string()}}),
    )
    .await;
    subscribe(
        &fx.store,
        &[types::HTTP_REQUEST_COMPLETE, types::AGENT_SESSION_START],
        &[&dest],
    )
    .await;
    let mut cfg = config();
    cfg.queue_capacity = 4;
    // Not started: nothing drains the queue, so it fills.
    let events = Events::new(fx.store.clone(), cfg, Arc::new(SystemClock));
    events.subscriptions_changed().await.unwrap();
    for n in 0..10u64 {
        events.emit(types::HTTP_REQUEST_COMPLETE, None, json!({"n": n}));
    }
    for n in 10..13u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    let mut metrics = String::new();
    events.encode_metrics(&mut metrics);
    assert!(
        metrics.contains("warren_events_dropped_total 6"),
        "{metrics}"
    );
    events.start().await.unwrap();
    let lines = file_events(&events, &dest, &path).await;
    assert_eq!(numbers(&lines), vec![0, 1, 2, 3, 10, 11, 12]);
    events.shutdown().await;
}

#[tokio::test]
async fn usage_is_added_per_clock_hour() {
    let fx = fixture().await;
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 10:59:00 UTC)));
    let events = Events::new(fx.store.clone(), config(), clock.clone());
    events.start().await.unwrap();
    let busy = events.usage().endpoint("https://a.example", "cr_1");
    let idle = events.usage().endpoint("https://idle.example", "cr_2");
    assert!(Arc::ptr_eq(
        &busy,
        &events.usage().endpoint("https://a.example", "cr_1")
    ));
    busy.bytes_in(10);
    busy.bytes_out(100);
    busy.request();
    busy.connection();
    events.flush_usage().await.unwrap();
    clock.advance(time::Duration::minutes(2));
    busy.bytes_out(5);
    events.flush_usage().await.unwrap();
    busy.bytes_out(1);
    events.shutdown().await;

    let rows = fx
        .store
        .usage_between(
            datetime!(2026-03-01 00:00 UTC),
            datetime!(2026-03-02 00:00 UTC),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0].hour,
        datetime!(2026-03-01 10:00 UTC).unix_timestamp()
    );
    assert_eq!(
        (
            rows[0].bytes_in,
            rows[0].bytes_out,
            rows[0].requests,
            rows[0].connections
        ),
        (10, 100, 1, 1)
    );
    assert_eq!(
        rows[1].hour,
        datetime!(2026-03-01 11:00 UTC).unix_timestamp()
    );
    assert_eq!(rows[1].bytes_out, 6);
    assert!(rows.iter().all(|r| r.endpoint != "https://idle.example"));
    drop(idle);
}

#[tokio::test]
async fn idle_unreferenced_endpoints_are_forgotten() {
    let fx = fixture().await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    let counters = events.usage().endpoint("https://gone.example", "cr_1");
    counters.bytes_out(1);
    drop(counters);
    assert_eq!(events.usage().tracked(), 1);
    events.flush_usage().await.unwrap();
    assert_eq!(events.usage().tracked(), 0);
    let held = events.usage().endpoint("https://held.example", "cr_1");
    events.flush_usage().await.unwrap();
    assert_eq!(events.usage().tracked(), 1);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_times_out() {
    let fx = fixture().await;
    // Accepts connections and reads nothing back: every request hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let dest = destination(
        &fx.store,
        json!({"http": {"url": format!("http://{addr}/")}}),
    )
    .await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let mut cfg = config();
    cfg.delivery_timeout = Duration::from_millis(300);
    let events = Events::new(fx.store.clone(), cfg, Arc::new(SystemClock));
    events.start().await.unwrap();
    events.emit(types::AGENT_SESSION_START, None, json!({"n": 0}));
    eventually("the timeout recorded", || async {
        events
            .destination_status(&dest)
            .await
            .unwrap()
            .last_error
            .contains("timed out")
    })
    .await;
    assert_eq!(events.destination_status(&dest).await.unwrap().pending, 1);
    events.shutdown().await;
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_target_takes_over_pending_events() {
    let fx = fixture().await;
    let dead = Receiver::down_at_first("").await;
    let live = Receiver::start("").await;
    let dest = destination(&fx.store, json!({"http": {"url": dead.url()}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    for n in 0..3u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    events.flush().await;
    let target = warren_events::Target::parse(&json!({"http": {"url": live.url()}})).unwrap();
    fx.store
        .update_event_destination(
            &dest,
            warren_store::events::EventDestinationUpdate {
                target: Some(target.to_stored_json().to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    events.subscriptions_changed().await.unwrap();
    assert_eq!(numbers(&live.wait_for(3).await), vec![0, 1, 2]);
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_max_bytes_gets_a_file_of_its_own() {
    let fx = fixture().await;
    let path = fx.dir.path().join("big.jsonl");
    let dest = destination(
        &fx.store,
        json!({"file": {"path": path.display().to_string(), "max_bytes": 4096, "max_files": 1}}),
    )
    .await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    events.emit(types::AGENT_SESSION_START, None, json!({"n": 0}));
    events.emit(
        types::AGENT_SESSION_START,
        None,
        json!({"n": 1, "pad": "y".repeat(5000)}),
    );
    events.emit(types::AGENT_SESSION_START, None, json!({"n": 2}));
    events.flush().await;
    eventually("written", || async {
        events.destination_status(&dest).await.unwrap().pending == 0
    })
    .await;
    let lines = |p: std::path::PathBuf| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // n=0 was rotated out by the big one, which was then rotated out by n=2 (max_files 1
    // keeps one rotated file).
    assert_eq!(numbers(&lines(path.clone())), vec![2]);
    assert_eq!(numbers(&lines(path.with_extension("jsonl.1"))), vec![1]);
    assert!(!path.with_extension("jsonl.2").exists());
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_idle_is_no_failure() {
    let fx = fixture().await;
    let receiver = Receiver::start("").await;
    let dest = destination(&fx.store, json!({"http": {"url": receiver.url()}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    events.emit(types::AGENT_SESSION_START, None, json!({"n": 0}));
    receiver.wait_for(1).await;
    // The receiver restarts: the kept-alive connection is gone.
    receiver.down().await;
    receiver.up().await;
    events.emit(types::AGENT_SESSION_START, None, json!({"n": 1}));
    assert_eq!(numbers(&receiver.wait_for(2).await), vec![0, 1]);
    assert_eq!(receiver.connections(), 2);
    let mut metrics = String::new();
    events.encode_metrics(&mut metrics);
    assert!(
        metrics.contains(&format!(
            "warren_event_delivery_failures_total{{destination=\"{dest}\"}} 0"
        )),
        "{metrics}"
    );
    events.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_right_after_delivery_leaves_nothing_pending() {
    let fx = fixture().await;
    let receiver = Receiver::down_at_first("").await;
    let dest = destination(&fx.store, json!({"http": {"url": receiver.url()}})).await;
    subscribe(&fx.store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    for n in 0..30u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    events.flush().await;
    receiver.up().await;
    receiver.wait_for(30).await;
    events.shutdown().await;
    assert_eq!(events.destination_status(&dest).await.unwrap().pending, 0);
}

/// The writer packs consecutive events of one type for a destination into one outbox row;
/// interleaved types, two destinations with different subscriptions, and batches cut at
/// `batch_max` must still deliver every event once, in emission order, with its own type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_one_type_keep_order_across_types_and_destinations() {
    let fx = fixture().await;
    let receiver = Receiver::start("s3cret").await;
    let hook = destination(
        &fx.store,
        json!({"http": {"url": receiver.url(), "secret": "s3cret"}}),
    )
    .await;
    let path = fx.dir.path().join("events.jsonl");
    let file = destination(
        &fx.store,
        json!({"file": {"path": path.display().to_string()}}),
    )
    .await;
    let both = [types::HTTP_REQUEST_COMPLETE, types::AGENT_SESSION_START];
    subscribe(&fx.store, &both, &[&hook]).await;
    subscribe(&fx.store, &[types::HTTP_REQUEST_COMPLETE], &[&file]).await;
    let events = Events::new(fx.store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();

    // Runs of 1 to 40 events per type (longer than batch_max = 16), alternating types.
    let mut sent = Vec::new();
    let mut n = 0u64;
    for (i, len) in [1u64, 40, 3, 1, 17, 16, 2, 33].iter().enumerate() {
        let ty = both[i % 2];
        for _ in 0..*len {
            events.emit(ty, None, json!({"n": n}));
            sent.push((n, ty));
            n += 1;
        }
    }
    let got = receiver.wait_for(sent.len()).await;
    let got: Vec<(u64, String)> = got
        .iter()
        .map(|e| {
            let ty = e["event_type"].as_str().unwrap().to_owned();
            (e["object"]["n"].as_u64().unwrap(), ty)
        })
        .collect();
    let want: Vec<(u64, String)> = sent.iter().map(|(n, t)| (*n, t.to_string())).collect();
    assert_eq!(got, want);
    assert!(
        receiver.max_batch() <= 16,
        "a webhook batch holds at most batch_max events: {}",
        receiver.max_batch()
    );

    let lines = file_events(&events, &file, &path).await;
    let want: Vec<u64> = sent
        .iter()
        .filter(|(_, t)| *t == types::HTTP_REQUEST_COMPLETE)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(numbers(&lines), want);
    assert!(
        lines
            .iter()
            .all(|l| l["event_type"] == types::HTTP_REQUEST_COMPLETE)
    );
    let mut metrics = String::new();
    events.encode_metrics(&mut metrics);
    assert!(
        metrics.contains(&format!(
            "warren_event_deliveries_total{{destination=\"{hook}\"}} {}",
            sent.len()
        )),
        "{metrics}"
    );
    events.shutdown().await;
}
