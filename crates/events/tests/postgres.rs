//! The pipeline over PostgreSQL (`WARREN_TEST_DATABASE_URL`; skipped when unset), each test in
//! a fresh schema dropped at the end: ordered delivery through a refusing-then-up receiver,
//! parking and requeue, usage hours.

mod common;

use std::sync::Arc;

use common::{Receiver, config, destination, eventually, subscribe};
use serde_json::{Value, json};
use sqlx::Connection;
use time::macros::datetime;
use warren_events::{Events, ManualClock, SystemClock, types};
use warren_store::Store;

const PG_URL_ENV: &str = "WARREN_TEST_DATABASE_URL";

/// A fresh schema; dropped by [`Schema::drop_now`].
struct Schema {
    admin_url: String,
    name: String,
    url: String,
}

impl Schema {
    async fn create(test: &str) -> Option<Schema> {
        let Ok(admin_url) = std::env::var(PG_URL_ENV) else {
            eprintln!("skipping {test}: {PG_URL_ENV} is not set");
            return None;
        };
        let name = format!("warren_events_test_{:016x}", rand_suffix());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to WARREN_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut admin)
            .await
            .expect("create schema");
        admin.close().await.ok();
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options[search_path]={name}");
        Some(Schema {
            admin_url,
            name,
            url,
        })
    }

    async fn drop_now(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
                .execute(&mut admin)
                .await;
            admin.close().await.ok();
        }
    }
}

fn rand_suffix() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 40)
}

fn numbers(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["object"]["n"].as_u64().expect("object.n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_delivery_in_order_parking_and_usage() {
    let Some(schema) = Schema::create("postgres_delivery_in_order_parking_and_usage").await else {
        return;
    };
    let store = Store::connect(&schema.url).await.expect("store connects");

    // Refused, then up: everything, in order.
    let receiver = Receiver::down_at_first("pg").await;
    let dest = destination(
        &store,
        json!({"http": {"url": receiver.url(), "secret": "pg"}}),
    )
    .await;
    subscribe(&store, &[types::AGENT_SESSION_START], &[&dest]).await;
    let events = Events::new(store.clone(), config(), Arc::new(SystemClock));
    events.start().await.unwrap();
    for n in 0..30u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    events.flush().await;
    eventually("a failure recorded", || async {
        !events
            .destination_status(&dest)
            .await
            .unwrap()
            .last_error
            .is_empty()
    })
    .await;
    receiver.up().await;
    assert_eq!(
        numbers(&receiver.wait_for(30).await),
        (0..30).collect::<Vec<_>>()
    );
    eventually("all acknowledged", || async {
        events.destination_status(&dest).await.unwrap().pending == 0
    })
    .await;
    events.shutdown().await;

    // Down again until parked (a pipeline with few attempts), then requeued.
    let mut cfg = config();
    cfg.max_attempts = 2;
    let events = Events::new(store.clone(), cfg.clone(), Arc::new(SystemClock));
    events.start().await.unwrap();
    receiver.down().await;
    for n in 30..33u64 {
        events.emit(types::AGENT_SESSION_START, None, json!({"n": n}));
    }
    eventually("parked", || async {
        events.destination_status(&dest).await.unwrap().parked == 3
    })
    .await;
    receiver.up().await;
    assert_eq!(events.requeue_parked(&dest).await.unwrap(), 3);
    assert_eq!(
        numbers(&receiver.wait_for(33).await),
        (0..33).collect::<Vec<_>>()
    );
    events.shutdown().await;

    // Usage: two hours, two rows.
    let clock = Arc::new(ManualClock::new(datetime!(2026-05-01 08:30 UTC)));
    let events = Events::new(store.clone(), cfg, clock.clone());
    let counters = events
        .usage()
        .endpoint("tcp://1.tcp.example:20000", "cr_pg");
    counters.bytes_out(7);
    events.flush_usage().await.unwrap();
    clock.advance(time::Duration::hours(1));
    counters.bytes_out(9);
    counters.connection();
    events.flush_usage().await.unwrap();
    let rows = store
        .usage_between(
            datetime!(2026-05-01 00:00 UTC),
            datetime!(2026-05-02 00:00 UTC),
        )
        .await
        .unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.bytes_out, r.connections))
            .collect::<Vec<_>>(),
        vec![(7, 0), (9, 1)]
    );
    store.close().await;
    schema.drop_now().await;
}
