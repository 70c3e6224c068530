//! Reserved domains and reserved TCP addresses against a real SQLite file and — when
//! `WARREN_TEST_DATABASE_URL` is set — against PostgreSQL.

// Shared with tests/store.rs; this suite uses only some of its helpers.
#[allow(dead_code)] // The shared helpers; this suite uses some of them.
#[macro_use]
mod support;

use support::TestDb;
use warren_store::StoreError;
use warren_store::reservations::{
    CertPolicy, NewReservedAddr, NewReservedDomain, ReservedAddrUpdate, ReservedDomainUpdate,
};

on_both_backends!(
    domain_roundtrip,
    domains_are_validated_and_unique,
    concurrent_domain_creates_have_one_winner,
    domain_coverage,
    lists_are_newest_first,
    addr_roundtrip_and_unique_ports,
);

fn domain(name: &str) -> NewReservedDomain {
    NewReservedDomain {
        domain: name.into(),
        ..Default::default()
    }
}

fn addr(port: u16) -> NewReservedAddr {
    NewReservedAddr {
        host: "localhost".into(),
        port,
        ..Default::default()
    }
}

async fn domain_roundtrip(db: &TestDb) {
    let store = db.open().await;
    let policy = CertPolicy {
        authority: "letsencrypt".into(),
        private_key_type: "ecdsa".into(),
    };
    let created = store
        .create_reserved_domain(NewReservedDomain {
            domain: "*.Site1.Example.com.".into(),
            region: "eu".into(),
            description: "d".into(),
            metadata: "m".into(),
            cert_policy: Some(policy.clone()),
        })
        .await
        .unwrap();
    assert!(created.id.starts_with("rd_"));
    assert_eq!(created.domain, "*.site1.example.com", "normalized");
    assert_eq!(
        store.reserved_domain(&created.id).await.unwrap(),
        Some(created.clone())
    );

    let updated = store
        .update_reserved_domain(
            &created.id,
            ReservedDomainUpdate {
                metadata: Some("m2".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("d", "m2")
    );
    assert_eq!(updated.cert_policy, Some(policy));
    let cleared = store
        .update_reserved_domain(
            &created.id,
            ReservedDomainUpdate {
                cert_policy: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.cert_policy, None);
    assert_eq!(cleared.metadata, "m2");
    assert!(
        store
            .update_reserved_domain("rd_missing", ReservedDomainUpdate::default())
            .await
            .unwrap()
            .is_none()
    );

    assert!(store.delete_reserved_domain(&created.id).await.unwrap());
    assert!(!store.delete_reserved_domain(&created.id).await.unwrap());
    assert_eq!(store.reserved_domain(&created.id).await.unwrap(), None);
}

async fn domains_are_validated_and_unique(db: &TestDb) {
    let store = db.open().await;
    for bad in ["", "app.*.x", "*-a.x", "*", "a..b", "a_b.c"] {
        let err = store.create_reserved_domain(domain(bad)).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Invalid {
                    field: "domain",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
    let err = store
        .create_reserved_domain(NewReservedDomain {
            domain: "ok.example.com".into(),
            description: "d".repeat(256),
            ..Default::default()
        })
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
        "{err}"
    );
    store
        .create_reserved_domain(domain("a.example.com"))
        .await
        .unwrap();
    let err = store
        .create_reserved_domain(domain("A.EXAMPLE.COM"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    // The wildcard is a different reservation.
    store
        .create_reserved_domain(domain("*.a.example.com"))
        .await
        .unwrap();
}

async fn concurrent_domain_creates_have_one_winner(db: &TestDb) {
    let store = db.open().await;
    let tries = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_reserved_domain(domain("race.example.com"))
                .await
        })
    });
    let results: Vec<_> = join_spawned(tries).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in results {
        if let Err(e) = r {
            assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
        }
    }
}

/// Awaits every spawned task.
async fn join_spawned<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

async fn domain_coverage(db: &TestDb) {
    let store = db.open().await;
    store
        .create_reserved_domain(domain("app.example.com"))
        .await
        .unwrap();
    store
        .create_reserved_domain(domain("*.site1.example.com"))
        .await
        .unwrap();
    for (host, covered) in [
        ("app.example.com", true),
        ("APP.example.com", true),
        ("other.example.com", false),
        ("x.app.example.com", false),
        ("cam1.site1.example.com", true),
        ("a.b.site1.example.com", true),
        ("*.site1.example.com", true),
        ("*.b.site1.example.com", false),
        ("site1.example.com", false),
        ("*.example.com", false),
        ("not a host", false),
        ("", false),
    ] {
        assert_eq!(
            store.domain_is_reserved(host).await.unwrap(),
            covered,
            "{host:?}"
        );
    }
}

async fn lists_are_newest_first(db: &TestDb) {
    let store = db.open().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .create_reserved_domain(domain(&format!("n{i}.example.com")))
                .await
                .unwrap()
                .id,
        );
    }
    ids.reverse();
    let ids_of = |v: Vec<warren_store::reservations::ReservedDomain>| -> Vec<String> {
        v.into_iter().map(|d| d.id).collect()
    };
    assert_eq!(
        ids_of(store.list_reserved_domains(None, 100).await.unwrap()),
        ids
    );
    assert_eq!(
        ids_of(store.list_reserved_domains(None, 2).await.unwrap()),
        ids[..2]
    );
    assert_eq!(
        ids_of(store.list_reserved_domains(Some(&ids[1]), 2).await.unwrap()),
        ids[2..4]
    );
    assert!(
        store
            .list_reserved_domains(Some(&ids[4]), 2)
            .await
            .unwrap()
            .is_empty()
    );
    // An unknown cursor pages by id order: nothing is older than the smallest id.
    assert!(
        store
            .list_reserved_domains(Some("rd_000000000000000000000000000"), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut addr_ids = Vec::new();
    for port in [30001, 30002, 30003] {
        addr_ids.push(store.create_reserved_addr(addr(port)).await.unwrap().id);
    }
    addr_ids.reverse();
    let listed: Vec<String> = store
        .list_reserved_addrs(Some(&addr_ids[0]), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, addr_ids[1..]);
}

async fn addr_roundtrip_and_unique_ports(db: &TestDb) {
    let store = db.open().await;
    let created = store
        .create_reserved_addr(NewReservedAddr {
            host: "tcp.example.com".into(),
            port: 20005,
            region: "us".into(),
            description: "d".into(),
            metadata: "m".into(),
        })
        .await
        .unwrap();
    assert!(created.id.starts_with("ra_"));
    assert_eq!(created.addr, "tcp.example.com:20005");
    assert_eq!(
        store.reserved_addr(&created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.reserved_addr_by_port(20005).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.reserved_addr_by_port(20006).await.unwrap(), None);
    let err = store.create_reserved_addr(addr(20005)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let err = store.create_reserved_addr(addr(0)).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let err = store
        .create_reserved_addr(NewReservedAddr {
            host: "bad host".into(),
            port: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    store.create_reserved_addr(addr(20001)).await.unwrap();
    assert_eq!(store.reserved_ports().await.unwrap(), [20001, 20005]);

    let updated = store
        .update_reserved_addr(
            &created.id,
            ReservedAddrUpdate {
                description: Some("d2".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("d2", "m")
    );
    assert!(store.delete_reserved_addr(&created.id).await.unwrap());
    assert_eq!(store.reserved_ports().await.unwrap(), [20001]);
    assert_eq!(store.reserved_addr(&created.id).await.unwrap(), None);
}
