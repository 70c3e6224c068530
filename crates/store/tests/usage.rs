//! Usage per clock hour, endpoint and credential against a real SQLite file and — when
//! `WARREN_TEST_DATABASE_URL` is set — against PostgreSQL.

#[allow(dead_code)] // The shared helpers; this suite uses some of them.
#[macro_use]
mod support;

use support::TestDb;
use time::OffsetDateTime;
use warren_store::StoreError;
use warren_store::usage::UsageHour;

on_both_backends!(
    usage_adds_up_across_calls,
    hours_must_be_clock_hours,
    usage_between_is_half_open_and_ordered,
    counters_saturate,
    many_rows_in_one_call,
);

const H: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn delta(hour: i64, endpoint: &str, credential: &str, n: u64) -> UsageHour {
    UsageHour {
        hour,
        endpoint: endpoint.into(),
        credential_id: credential.into(),
        bytes_in: n,
        bytes_out: 2 * n,
        requests: 3 * n,
        connections: 4 * n,
    }
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

async fn usage_adds_up_across_calls(db: &TestDb) {
    let store = db.open().await;
    store
        .add_usage(&[
            delta(H, "https://a.example", "cr_1", 10),
            delta(H, "https://b.example", "cr_1", 1),
        ])
        .await
        .unwrap();
    store
        .add_usage(&[
            delta(H, "https://a.example", "cr_1", 5),
            // The same row twice in one call: summed.
            delta(H, "https://a.example", "cr_2", 1),
            delta(H, "https://a.example", "cr_2", 1),
        ])
        .await
        .unwrap();
    store.add_usage(&[]).await.unwrap();
    let rows = store.usage_between(at(H), at(H + 3600)).await.unwrap();
    assert_eq!(
        rows,
        vec![
            delta(H, "https://a.example", "cr_1", 15),
            delta(H, "https://a.example", "cr_2", 2),
            delta(H, "https://b.example", "cr_1", 1),
        ]
    );
}

async fn hours_must_be_clock_hours(db: &TestDb) {
    let store = db.open().await;
    for hour in [H + 1, H - 1800, -7] {
        let err = store
            .add_usage(&[delta(H, "e", "cr_1", 1), delta(hour, "e", "cr_1", 1)])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { field: "hour", .. }),
            "{hour}: {err:?}"
        );
    }
    assert!(
        store
            .usage_between(at(0), at(H * 2))
            .await
            .unwrap()
            .is_empty(),
        "a refused call writes nothing"
    );
    store
        .add_usage(&[delta(-3600, "e", "cr_1", 1)])
        .await
        .unwrap();
}

async fn usage_between_is_half_open_and_ordered(db: &TestDb) {
    let store = db.open().await;
    let hours = [H - 3600, H, H + 3600, H + 7200];
    for hour in hours.iter().rev() {
        store
            .add_usage(&[delta(*hour, "z", "cr_1", 1), delta(*hour, "a", "cr_1", 1)])
            .await
            .unwrap();
    }
    let rows = store.usage_between(at(H), at(H + 7200)).await.unwrap();
    let keys: Vec<(i64, &str)> = rows.iter().map(|r| (r.hour, r.endpoint.as_str())).collect();
    assert_eq!(
        keys,
        vec![(H, "a"), (H, "z"), (H + 3600, "a"), (H + 3600, "z")],
        "start included, end excluded, ordered by hour then endpoint"
    );
    // A start inside an hour excludes that hour (its row starts before `start`).
    let rows = store.usage_between(at(H + 1), at(H + 3601)).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.hour == H + 3600));
    assert!(store.usage_between(at(H), at(H)).await.unwrap().is_empty());
}

async fn counters_saturate(db: &TestDb) {
    let store = db.open().await;
    let mut big = delta(H, "e", "cr_1", 0);
    big.bytes_out = u64::MAX;
    big.bytes_in = i64::MAX as u64 - 1;
    store.add_usage(&[big.clone()]).await.unwrap();
    store.add_usage(&[big.clone(), big]).await.unwrap();
    let rows = store.usage_between(at(H), at(H + 3600)).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bytes_out, i64::MAX as u64);
    assert_eq!(rows[0].bytes_in, i64::MAX as u64);
    store.add_usage(&[delta(H, "e", "cr_1", 1)]).await.unwrap();
    let rows = store.usage_between(at(H), at(H + 3600)).await.unwrap();
    assert_eq!(rows[0].bytes_in, i64::MAX as u64, "still saturated");
    assert_eq!(rows[0].requests, 3);
}

async fn many_rows_in_one_call(db: &TestDb) {
    let store = db.open().await;
    // More rows than one statement takes.
    let deltas: Vec<UsageHour> = (0..1_200)
        .map(|i| delta(H, &format!("https://e{i:04}.example"), "cr_1", 1))
        .collect();
    store.add_usage(&deltas).await.unwrap();
    store.add_usage(&deltas).await.unwrap();
    let rows = store.usage_between(at(H), at(H + 3600)).await.unwrap();
    assert_eq!(rows.len(), 1_200);
    assert!(rows.iter().all(|r| r.bytes_in == 2 && r.connections == 8));
    assert_eq!(rows[0].endpoint, "https://e0000.example");
}
