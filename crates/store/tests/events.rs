//! Event destinations, subscriptions and the delivery outbox against a real SQLite file and —
//! when `WARREN_TEST_DATABASE_URL` is set — against PostgreSQL.

#[allow(dead_code)] // The shared helpers; this suite uses some of them.
#[macro_use]
mod support;

use std::time::Instant;

use support::TestDb;
use time::OffsetDateTime;
use warren_store::StoreError;
use warren_store::events::{
    DestinationDelete, EventDestinationUpdate, EventSubscriptionUpdate, NewEventDestination,
    NewEventSubscription, NewOutboxEvent,
};

on_both_backends!(
    destination_roundtrip,
    destination_text_limits,
    destinations_page_newest_first,
    subscription_roundtrip_and_dedup,
    subscription_unknown_destinations_are_invalid,
    subscriptions_page_newest_first,
    destination_in_use_cannot_be_deleted,
    outbox_keeps_order_per_destination,
    outbox_failures_parking_and_requeue,
    outbox_delivered_rows_leave,
    outbox_rows_carry_runs_of_events,
    deleting_a_destination_clears_its_outbox,
    enqueue_skips_destinations_deleted_meanwhile,
    enqueue_a_thousand_events_in_one_call,
    delete_races_subscription_create,
);

fn destination(description: &str) -> NewEventDestination {
    NewEventDestination {
        description: description.into(),
        metadata: String::new(),
        format: "json".into(),
        target: r#"{"debug_log":{}}"#.into(),
    }
}

fn subscription(sources: &[&str], destinations: &[&str]) -> NewEventSubscription {
    NewEventSubscription {
        description: String::new(),
        metadata: String::new(),
        sources: sources.iter().map(|s| s.to_string()).collect(),
        destination_ids: destinations.iter().map(|s| s.to_string()).collect(),
    }
}

fn event(kind: &str, n: usize, destinations: &[&str]) -> NewOutboxEvent {
    NewOutboxEvent {
        event_type: kind.into(),
        payload: format!(r#"{{"n":{n}}}"#),
        events: 1,
        destination_ids: destinations.iter().map(|s| s.to_string()).collect(),
    }
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

async fn destination_roundtrip(db: &TestDb) {
    let store = db.open().await;
    let created = store
        .create_event_destination(NewEventDestination {
            description: "d".into(),
            metadata: r#"{"m":1}"#.into(),
            format: "json".into(),
            target: r#"{"http":{"url":"http://127.0.0.1:1/x"}}"#.into(),
        })
        .await
        .unwrap();
    assert!(created.id.starts_with("ed_"), "{}", created.id);
    assert_eq!(
        store.event_destination(&created.id).await.unwrap(),
        Some(created.clone())
    );

    let updated = store
        .update_event_destination(
            &created.id,
            EventDestinationUpdate {
                target: Some(r#"{"debug_log":{}}"#.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.target, r#"{"debug_log":{}}"#);
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("d", r#"{"m":1}"#),
        "fields not given stay"
    );
    assert_eq!(updated.created_at, created.created_at);

    assert_eq!(
        store
            .update_event_destination("ed_missing", EventDestinationUpdate::default())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.all_event_destinations().await.unwrap(), vec![updated]);
    assert_eq!(
        store.delete_event_destination(&created.id).await.unwrap(),
        DestinationDelete::Deleted
    );
    assert_eq!(
        store.delete_event_destination(&created.id).await.unwrap(),
        DestinationDelete::NotFound
    );
    assert_eq!(store.event_destination(&created.id).await.unwrap(), None);
}

async fn destination_text_limits(db: &TestDb) {
    let store = db.open().await;
    let mut new = destination(&"d".repeat(256));
    let err = store
        .create_event_destination(new.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "description",
                ..
            }
        ),
        "{err:?}"
    );
    new.description = "d".repeat(255);
    new.metadata = "m".repeat(4097);
    let err = store
        .create_event_destination(new.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "metadata",
                ..
            }
        ),
        "{err:?}"
    );
    new.metadata = "m".repeat(4096);
    let created = store.create_event_destination(new).await.unwrap();

    let err = store
        .update_event_destination(
            &created.id,
            EventDestinationUpdate {
                description: Some("x".repeat(256)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");

    let err = store
        .create_event_subscription(NewEventSubscription {
            metadata: "m".repeat(4097),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "metadata",
                ..
            }
        ),
        "{err:?}"
    );
    let sub = store
        .create_event_subscription(NewEventSubscription::default())
        .await
        .unwrap();
    let err = store
        .update_event_subscription(
            &sub.id,
            EventSubscriptionUpdate {
                description: Some("x".repeat(256)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "description",
                ..
            }
        ),
        "{err:?}"
    );
}

async fn destinations_page_newest_first(db: &TestDb) {
    let store = db.open().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .create_event_destination(destination(&format!("d{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let page = |v: Vec<warren_store::events::EventDestination>| -> Vec<String> {
        v.into_iter().map(|d| d.id).collect()
    };
    let first = page(store.list_event_destinations(None, 2).await.unwrap());
    assert_eq!(first, vec![ids[4].clone(), ids[3].clone()]);
    let second = page(
        store
            .list_event_destinations(Some(&first[1]), 2)
            .await
            .unwrap(),
    );
    assert_eq!(second, vec![ids[2].clone(), ids[1].clone()]);
    let last = page(
        store
            .list_event_destinations(Some(&second[1]), 2)
            .await
            .unwrap(),
    );
    assert_eq!(last, vec![ids[0].clone()]);
    assert!(
        store
            .list_event_destinations(None, -1)
            .await
            .unwrap()
            .is_empty(),
        "a negative limit lists nothing"
    );
    let all = page(store.all_event_destinations().await.unwrap());
    assert_eq!(all, ids, "oldest first");
}

async fn subscription_roundtrip_and_dedup(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let b = store
        .create_event_destination(destination("b"))
        .await
        .unwrap();
    let created = store
        .create_event_subscription(NewEventSubscription {
            description: "s".into(),
            metadata: "m".into(),
            sources: vec![
                "http_request_complete.v0".into(),
                "agent_session_start.v0".into(),
                "http_request_complete.v0".into(),
            ],
            destination_ids: vec![b.id.clone(), a.id.clone(), b.id.clone()],
        })
        .await
        .unwrap();
    assert!(created.id.starts_with("esb_"), "{}", created.id);
    assert_eq!(
        created.sources,
        vec!["http_request_complete.v0", "agent_session_start.v0"],
        "repeats dropped, first kept, order kept"
    );
    assert_eq!(created.destination_ids, vec![b.id.clone(), a.id.clone()]);
    assert_eq!(
        store.event_subscription(&created.id).await.unwrap(),
        Some(created.clone())
    );

    let updated = store
        .update_event_subscription(
            &created.id,
            EventSubscriptionUpdate {
                sources: Some(vec!["tcp_connection_closed.v0".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.sources, vec!["tcp_connection_closed.v0"]);
    assert_eq!(updated.destination_ids, created.destination_ids, "kept");
    assert_eq!(updated.description, "s");

    let updated = store
        .update_event_subscription(
            &created.id,
            EventSubscriptionUpdate {
                destination_ids: Some(vec![a.id.clone()]),
                metadata: Some("m2".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.destination_ids, vec![a.id.clone()]);
    assert_eq!(updated.sources, vec!["tcp_connection_closed.v0"], "kept");
    assert_eq!(updated.metadata, "m2");

    let empty = store
        .update_event_subscription(
            &created.id,
            EventSubscriptionUpdate {
                sources: Some(Vec::new()),
                destination_ids: Some(Vec::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(empty.sources.is_empty() && empty.destination_ids.is_empty());

    assert_eq!(
        store
            .update_event_subscription("esb_missing", EventSubscriptionUpdate::default())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.all_event_subscriptions().await.unwrap(), vec![empty]);
    assert!(store.delete_event_subscription(&created.id).await.unwrap());
    assert!(!store.delete_event_subscription(&created.id).await.unwrap());
    assert_eq!(store.event_subscription(&created.id).await.unwrap(), None);
}

async fn subscription_unknown_destinations_are_invalid(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let err = store
        .create_event_subscription(subscription(
            &["agent_session_start.v0"],
            &[&a.id, "ed_nosuchdestination"],
        ))
        .await
        .unwrap_err();
    match &err {
        StoreError::Invalid {
            field: "destination_ids",
            reason,
        } => assert!(reason.contains("ed_nosuchdestination"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        store.all_event_subscriptions().await.unwrap().is_empty(),
        "nothing half-written"
    );

    let sub = store
        .create_event_subscription(subscription(&["agent_session_start.v0"], &[&a.id]))
        .await
        .unwrap();
    let err = store
        .update_event_subscription(
            &sub.id,
            EventSubscriptionUpdate {
                description: Some("changed".into()),
                destination_ids: Some(vec!["ed_gone".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "destination_ids",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.event_subscription(&sub.id).await.unwrap(),
        Some(sub),
        "a refused update changes nothing"
    );
}

async fn subscriptions_page_newest_first(db: &TestDb) {
    let store = db.open().await;
    let d = store
        .create_event_destination(destination("d"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let source = format!("type_{i}.v0");
        ids.push(
            store
                .create_event_subscription(subscription(&[&source], &[&d.id]))
                .await
                .unwrap()
                .id,
        );
    }
    let first = store.list_event_subscriptions(None, 3).await.unwrap();
    assert_eq!(
        first.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![&ids[4], &ids[3], &ids[2]]
    );
    for (s, i) in first.iter().zip([4, 3, 2]) {
        assert_eq!(
            s.sources,
            vec![format!("type_{i}.v0")],
            "lists loaded per row"
        );
        assert_eq!(s.destination_ids, vec![d.id.clone()]);
    }
    let rest = store
        .list_event_subscriptions(Some(&first[2].id), 3)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![&ids[1], &ids[0]]
    );
    let all = store.all_event_subscriptions().await.unwrap();
    assert_eq!(all.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(all[0].sources, vec!["type_0.v0"]);
}

async fn destination_in_use_cannot_be_deleted(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let b = store
        .create_event_destination(destination("b"))
        .await
        .unwrap();
    let sub = store
        .create_event_subscription(subscription(&["agent_session_start.v0"], &[&a.id, &b.id]))
        .await
        .unwrap();
    store
        .enqueue_events(&[event("agent_session_start.v0", 1, &[&a.id])], at(100))
        .await
        .unwrap();
    assert_eq!(
        store.delete_event_destination(&a.id).await.unwrap(),
        DestinationDelete::InUse
    );
    assert!(store.event_destination(&a.id).await.unwrap().is_some());
    assert_eq!(
        store.outbox_stats(&a.id).await.unwrap().pending,
        1,
        "a refused delete keeps the outbox"
    );

    store
        .update_event_subscription(
            &sub.id,
            EventSubscriptionUpdate {
                destination_ids: Some(vec![b.id.clone()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.delete_event_destination(&a.id).await.unwrap(),
        DestinationDelete::Deleted
    );
    assert_eq!(
        store.delete_event_destination(&b.id).await.unwrap(),
        DestinationDelete::InUse
    );
    assert!(store.delete_event_subscription(&sub.id).await.unwrap());
    assert_eq!(
        store.delete_event_destination(&b.id).await.unwrap(),
        DestinationDelete::Deleted
    );
}

async fn outbox_keeps_order_per_destination(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let b = store
        .create_event_destination(destination("b"))
        .await
        .unwrap();
    store
        .enqueue_events(
            &[
                event("e.v0", 0, &[&a.id, &b.id]),
                event("e.v0", 1, &[&b.id]),
                event("e.v0", 2, &[&a.id]),
            ],
            at(1_000),
        )
        .await
        .unwrap();
    store
        .enqueue_events(&[event("f.v0", 3, &[&a.id, &b.id])], at(1_001))
        .await
        .unwrap();
    store.enqueue_events(&[], at(1_002)).await.unwrap();

    let rows_a = store.outbox_pending(&a.id, 10).await.unwrap();
    let payloads: Vec<&str> = rows_a.iter().map(|r| r.payload.as_str()).collect();
    assert_eq!(payloads, vec![r#"{"n":0}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
    assert!(rows_a.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(rows_a.iter().all(|r| r.destination_id == a.id));
    assert_eq!(rows_a[0].event_type, "e.v0");
    assert_eq!(rows_a[2].event_type, "f.v0");
    assert_eq!(rows_a[0].attempts, 0);
    assert_eq!(rows_a[0].created_at, at(1_000));
    assert_eq!(rows_a[0].next_attempt_at, at(1_000));
    assert_eq!(rows_a[2].created_at, at(1_001));
    assert_eq!(rows_a[0].last_error, "");

    let rows_b = store.outbox_pending(&b.id, 10).await.unwrap();
    let payloads: Vec<&str> = rows_b.iter().map(|r| r.payload.as_str()).collect();
    assert_eq!(payloads, vec![r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":3}"#]);
    assert!(
        rows_a[0].seq < rows_b[0].seq,
        "within one event, destinations in the order listed"
    );

    let limited = store.outbox_pending(&a.id, 2).await.unwrap();
    assert_eq!(limited, rows_a[..2].to_vec());
    assert!(store.outbox_pending(&a.id, -5).await.unwrap().is_empty());
    assert!(
        store
            .outbox_pending("ed_other", 10)
            .await
            .unwrap()
            .is_empty()
    );

    let stats = store.outbox_stats(&a.id).await.unwrap();
    assert_eq!(stats.pending, 3);
    assert_eq!(stats.parked, 0);
    assert_eq!(stats.oldest_pending_at, Some(at(1_000)));
    assert_eq!(stats.last_error, "");
    assert_eq!(
        store.outbox_stats("ed_other").await.unwrap(),
        Default::default()
    );
}

async fn outbox_failures_parking_and_requeue(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let events: Vec<_> = (0..4).map(|n| event("e.v0", n, &[&a.id])).collect();
    store.enqueue_events(&events, at(2_000)).await.unwrap();
    let rows = store.outbox_pending(&a.id, 10).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();

    store
        .outbox_failed(&seqs[..2], "connection refused", at(2_010))
        .await
        .unwrap();
    store
        .outbox_failed(&seqs[..2], "HTTP 503", at(2_030))
        .await
        .unwrap();
    store.outbox_failed(&[], "ignored", at(1)).await.unwrap();
    let rows = store.outbox_pending(&a.id, 10).await.unwrap();
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(rows[1].attempts, 2);
    assert_eq!(rows[0].last_error, "HTTP 503");
    assert_eq!(rows[0].next_attempt_at, at(2_030));
    assert_eq!(rows[2].attempts, 0, "others untouched");
    assert_eq!(rows[2].next_attempt_at, at(2_000));
    assert_eq!(
        store.outbox_stats(&a.id).await.unwrap().last_error,
        "HTTP 503"
    );

    store.outbox_park(&seqs[..2], "gave up").await.unwrap();
    let pending = store.outbox_pending(&a.id, 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs[2..].to_vec(),
        "parked rows are skipped"
    );
    let parked = store.outbox_parked(&a.id, 10).await.unwrap();
    assert_eq!(parked.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs[..2]);
    assert_eq!(parked[0].last_error, "gave up");
    assert_eq!(parked[0].attempts, 3, "parking counts as an attempt");
    let stats = store.outbox_stats(&a.id).await.unwrap();
    assert_eq!((stats.pending, stats.parked), (2, 2));
    assert_eq!(stats.oldest_pending_at, Some(at(2_000)));
    assert_eq!(stats.last_error, "gave up");
    assert_eq!(store.outbox_parked(&a.id, 1).await.unwrap().len(), 1);

    assert_eq!(store.outbox_requeue_parked(&a.id).await.unwrap(), 2);
    assert_eq!(store.outbox_requeue_parked(&a.id).await.unwrap(), 0);
    let rows = store.outbox_pending(&a.id, 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs,
        "requeued rows keep their place"
    );
    assert_eq!(rows[0].attempts, 0);
    assert_eq!(rows[0].last_error, "");
    assert_eq!(rows[0].next_attempt_at, at(2_000), "due at once");
    let stats = store.outbox_stats(&a.id).await.unwrap();
    assert_eq!((stats.pending, stats.parked), (4, 0));
    assert!(store.outbox_parked(&a.id, 10).await.unwrap().is_empty());
}

async fn outbox_delivered_rows_leave(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let events: Vec<_> = (0..2_500).map(|n| event("e.v0", n, &[&a.id])).collect();
    store.enqueue_events(&events, at(3_000)).await.unwrap();
    let rows = store.outbox_pending(&a.id, 10_000).await.unwrap();
    assert_eq!(rows.len(), 2_500);
    // More seqs than one statement takes: chunks, one transaction.
    let delivered: Vec<i64> = rows[..2_100].iter().map(|r| r.seq).collect();
    store.outbox_delivered(&delivered).await.unwrap();
    store.outbox_delivered(&delivered).await.unwrap();
    store.outbox_delivered(&[]).await.unwrap();
    let left = store.outbox_pending(&a.id, 10_000).await.unwrap();
    assert_eq!(left, rows[2_100..].to_vec());
    assert_eq!(store.outbox_stats(&a.id).await.unwrap().pending, 400);
}

async fn deleting_a_destination_clears_its_outbox(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let b = store
        .create_event_destination(destination("b"))
        .await
        .unwrap();
    let events: Vec<_> = (0..10).map(|n| event("e.v0", n, &[&a.id, &b.id])).collect();
    store.enqueue_events(&events, at(4_000)).await.unwrap();
    let seqs: Vec<i64> = store
        .outbox_pending(&a.id, 3)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    store.outbox_park(&seqs, "parked").await.unwrap();
    assert_eq!(db.scalar("SELECT COUNT(*) FROM event_outbox").await, 20);

    assert_eq!(
        store.delete_event_destination(&a.id).await.unwrap(),
        DestinationDelete::Deleted
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM event_outbox").await,
        10,
        "pending and parked rows of the deleted destination are gone"
    );
    assert_eq!(store.outbox_stats(&a.id).await.unwrap(), Default::default());
    assert_eq!(store.outbox_stats(&b.id).await.unwrap().pending, 10);
}

async fn enqueue_skips_destinations_deleted_meanwhile(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let b = store
        .create_event_destination(destination("b"))
        .await
        .unwrap();
    store.delete_event_destination(&b.id).await.unwrap();
    // The caller's routing snapshot still names `b`.
    store
        .enqueue_events(
            &[
                event("e.v0", 0, &[&a.id, &b.id]),
                event("e.v0", 1, &[&b.id]),
                event("e.v0", 2, &[&a.id]),
            ],
            at(5_000),
        )
        .await
        .unwrap();
    let rows = store.outbox_pending(&a.id, 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.payload.as_str()).collect::<Vec<_>>(),
        vec![r#"{"n":0}"#, r#"{"n":2}"#]
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM event_outbox").await, 2);
    // Only vanished destinations: nothing to write, no error.
    store
        .enqueue_events(&[event("e.v0", 3, &[&b.id])], at(5_001))
        .await
        .unwrap();
    assert_eq!(db.scalar("SELECT COUNT(*) FROM event_outbox").await, 2);
}

async fn enqueue_a_thousand_events_in_one_call(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let b = store
        .create_event_destination(destination("b"))
        .await
        .unwrap();
    let payload = format!(r#"{{"object":"event","pad":"{}"}}"#, "x".repeat(400));
    let events: Vec<NewOutboxEvent> = (0..1_000)
        .map(|n| NewOutboxEvent {
            event_type: "http_request_complete.v0".into(),
            payload: payload.replace("event", &format!("event-{n}")),
            events: 1,
            destination_ids: if n % 2 == 0 {
                vec![a.id.clone(), b.id.clone()]
            } else {
                vec![a.id.clone()]
            },
        })
        .collect();
    let started = Instant::now();
    store.enqueue_events(&events, at(6_000)).await.unwrap();
    let took = started.elapsed();
    // Reported, not asserted: timing depends on the machine.
    eprintln!(
        "enqueue of 1,000 events / 1,500 rows on {}: {took:?} ({:.0} rows/s)",
        store.backend(),
        1_500.0 / took.as_secs_f64()
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM event_outbox").await, 1_500);
    let rows_a = store.outbox_pending(&a.id, 2_000).await.unwrap();
    assert_eq!(rows_a.len(), 1_000);
    for (n, row) in rows_a.iter().enumerate() {
        assert!(
            row.payload.contains(&format!("event-{n}\"")),
            "row {n} out of order"
        );
    }
    assert!(rows_a.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(store.outbox_pending(&b.id, 2_000).await.unwrap().len(), 500);
}

/// A row holding a run of events counts each of them in pending, parked and requeued.
async fn outbox_rows_carry_runs_of_events(db: &TestDb) {
    let store = db.open().await;
    let a = store
        .create_event_destination(destination("a"))
        .await
        .unwrap();
    let run = NewOutboxEvent {
        event_type: "http_request_complete.v0".into(),
        payload: (0..3)
            .map(|n| format!(r#"{{"n":{n}}}"#))
            .collect::<Vec<_>>()
            .join("\n"),
        events: 3,
        destination_ids: vec![a.id.clone()],
    };
    let single = event("agent_session_start.v0", 3, &[&a.id]);
    store
        .enqueue_events(&[run.clone(), single], at(7_000))
        .await
        .unwrap();
    let rows = store.outbox_pending(&a.id, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].events, rows[0].payload.as_str()),
        (3, run.payload.as_str())
    );
    assert_eq!(
        (rows[1].events, rows[1].payload.as_str()),
        (1, r#"{"n":3}"#)
    );
    assert_eq!(store.outbox_stats(&a.id).await.unwrap().pending, 4);
    // Reads stop at an event count: the first row always, then rows while the total fits.
    let head = store.outbox_pending(&a.id, 2).await.unwrap();
    assert_eq!(
        head.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [rows[0].seq]
    );
    let head = store.outbox_pending(&a.id, 3).await.unwrap();
    assert_eq!(head.len(), 1, "3 events fit, the next row's would make 4");
    assert_eq!(store.outbox_pending(&a.id, 4).await.unwrap().len(), 2);

    store.outbox_park(&[rows[0].seq], "gave up").await.unwrap();
    let stats = store.outbox_stats(&a.id).await.unwrap();
    assert_eq!((stats.pending, stats.parked), (1, 3));
    assert_eq!(store.outbox_requeue_parked(&a.id).await.unwrap(), 3);
    let stats = store.outbox_stats(&a.id).await.unwrap();
    assert_eq!((stats.pending, stats.parked), (4, 0));
}

/// A subscription naming a destination and that destination's deletion, racing: whichever
/// wins, the store never ends with a subscription naming a deleted destination.
async fn delete_races_subscription_create(db: &TestDb) {
    let store = db.open().await;
    for round in 0..10 {
        let d = store
            .create_event_destination(destination(&format!("d{round}")))
            .await
            .unwrap();
        let create = {
            let store = store.clone();
            let id = d.id.clone();
            tokio::spawn(async move {
                store
                    .create_event_subscription(subscription(&["e.v0"], &[&id]))
                    .await
            })
        };
        let delete = {
            let store = store.clone();
            let id = d.id.clone();
            tokio::spawn(async move { store.delete_event_destination(&id).await })
        };
        let created = create.await.unwrap();
        let deleted = delete.await.unwrap().unwrap();
        match (&created, deleted) {
            (Ok(_), DestinationDelete::InUse) => {}
            (Err(StoreError::Invalid { field, .. }), DestinationDelete::Deleted) => {
                assert_eq!(*field, "destination_ids");
            }
            other => panic!("round {round}: inconsistent outcome {other:?}"),
        }
        let subs = store.all_event_subscriptions().await.unwrap();
        for sub in subs {
            for id in &sub.destination_ids {
                assert!(
                    store.event_destination(id).await.unwrap().is_some(),
                    "subscription {} names deleted {id}",
                    sub.id
                );
            }
        }
    }
}
