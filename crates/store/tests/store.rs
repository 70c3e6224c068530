//! Every `Store` operation against a real SQLite file and — when
//! `WARREN_TEST_DATABASE_URL` is set — against PostgreSQL, from one suite.

#[macro_use]
mod support;

use std::collections::HashSet;

use support::TestDb;
use time::OffsetDateTime;
use warren_model::ids::{IdPrefix, id_body_unix_secs, parse_id};
use warren_model::{hash_token, looks_like_token};
use warren_store::{Backend, NewCredential, Store, StoreError};

on_both_backends!(
    connects_to_the_right_backend,
    credential_roundtrip,
    credential_lookup_rejects_wrong_tokens,
    stored_rows_hold_hashes_not_tokens,
    delete_credential_revokes,
    credential_field_limits,
    credential_acl_is_validated,
    operator_chosen_credential_token,
    api_key_roundtrip,
    operator_chosen_api_key_token,
    is_empty_until_first_credential_or_api_key,
    reopen_keeps_data_and_migrations_are_idempotent,
    concurrent_creates_get_distinct_ids,
);

fn new_credential(description: &str) -> NewCredential {
    NewCredential {
        description: description.to_string(),
        ..NewCredential::default()
    }
}

/// Flips the last character, keeping the token's shape.
fn tamper(token: &str) -> String {
    let mut t = token.to_string();
    let last = t.pop().unwrap();
    t.push(if last == 'a' { 'b' } else { 'a' });
    t
}

async fn connects_to_the_right_backend(db: &TestDb) {
    let store = db.open().await;
    let expected = match db {
        TestDb::Sqlite { .. } => Backend::Sqlite,
        TestDb::Postgres { .. } => Backend::Postgres,
    };
    assert_eq!(store.backend(), expected);
    assert!(format!("{store:?}").contains(&format!("{expected:?}")));
}

async fn credential_roundtrip(db: &TestDb) {
    let store = db.open().await;
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let new = NewCredential {
        description: "device 132".to_string(),
        metadata: r#"{"site":"factory1"}"#.to_string(),
        acl: vec![
            "bind:*.Factory1.example.com".to_string(),
            "bind:1.tcp.example.com:20002".to_string(),
        ],
        owner_id: Some("service_32ELIFubEAAGUeRtreNW6kr94Od".to_string()),
    };
    let (created, token) = store.create_credential(new.clone()).await.unwrap();
    let after = OffsetDateTime::now_utc().unix_timestamp();

    let body = parse_id(&created.id, IdPrefix::Credential).unwrap();
    assert!(looks_like_token(&token));
    assert_eq!(
        token.split_once('_').unwrap().0,
        body,
        "token opens with the id body"
    );
    assert_eq!(created.description, new.description);
    assert_eq!(created.metadata, new.metadata);
    assert_eq!(created.acl, new.acl, "rules are kept as given");
    assert_eq!(created.owner_id, new.owner_id);
    let at = created.created_at.unix_timestamp();
    assert!((before..=after).contains(&at));
    assert_eq!(id_body_unix_secs(body).unwrap(), u64::try_from(at).unwrap());

    assert_eq!(
        store.credential(&created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.credential_by_token(&token).await.unwrap(),
        Some(created.clone())
    );

    let (unowned, _) = store.create_credential(new_credential("")).await.unwrap();
    let unowned = store.credential(&unowned.id).await.unwrap().unwrap();
    assert_eq!(unowned.owner_id, None);
    assert!(unowned.acl.is_empty());
    assert_eq!(unowned.description, "");
}

async fn credential_lookup_rejects_wrong_tokens(db: &TestDb) {
    let store = db.open().await;
    let (created, token) = store.create_credential(new_credential("a")).await.unwrap();
    let (other, other_token) = store.create_credential(new_credential("b")).await.unwrap();

    assert_eq!(
        store.credential_by_token(&tamper(&token)).await.unwrap(),
        None
    );
    let body = token.split_once('_').unwrap().0;
    assert_eq!(store.credential_by_token(body).await.unwrap(), None);
    assert_eq!(store.credential_by_token("").await.unwrap(), None);
    assert_eq!(store.credential_by_token("short").await.unwrap(), None);
    assert_eq!(
        store.credential_by_token("has a space").await.unwrap(),
        None
    );
    assert_eq!(
        store.credential_by_token(&"x".repeat(300)).await.unwrap(),
        None
    );
    // The stored hash is not a token either.
    let hash = hash_token(&token).hex();
    assert_eq!(store.credential_by_token(&hash).await.unwrap(), None);
    // Each token finds its own credential only.
    assert_eq!(
        store.credential_by_token(&token).await.unwrap().unwrap().id,
        created.id
    );
    assert_eq!(
        store
            .credential_by_token(&other_token)
            .await
            .unwrap()
            .unwrap()
            .id,
        other.id
    );
    // An API key token does not authenticate an agent.
    let (_, key_token) = store.create_api_key("k").await.unwrap();
    assert_eq!(store.credential_by_token(&key_token).await.unwrap(), None);
    assert_eq!(store.api_key_by_token(&token).await.unwrap(), None);
    assert_eq!(store.credential("cr_doesnotexist").await.unwrap(), None);
}

async fn stored_rows_hold_hashes_not_tokens(db: &TestDb) {
    let store = db.open().await;
    let (credential, cred_token) = store.create_credential(new_credential("c")).await.unwrap();
    let operator_token = "operator-chosen-token-1234";
    store
        .create_credential_with_token(new_credential("op"), operator_token)
        .await
        .unwrap();
    let (key, key_token) = store.create_api_key("k").await.unwrap();
    store.close().await;

    let credentials = db.dump("credentials").await;
    let api_keys = db.dump("api_keys").await;
    assert_eq!(credentials.len(), 2);
    assert_eq!(api_keys.len(), 1);
    for (rows, token) in [
        (&credentials, cred_token.as_str()),
        (&credentials, operator_token),
        (&api_keys, key_token.as_str()),
    ] {
        let secret = token.rsplit_once('_').map_or(token, |(_, s)| s);
        for row in rows.iter() {
            assert!(!row.contains(token), "row holds a token: {row}");
            assert!(!row.contains(secret), "row holds a token secret: {row}");
        }
        let hash = hash_token(token).hex();
        assert!(
            rows.iter().any(|row| row.contains(&hash)),
            "hash of token stored"
        );
    }
    assert!(
        credentials
            .iter()
            .any(|row| row.starts_with(&credential.id))
    );
    assert!(api_keys[0].starts_with(&key.id));
}

async fn delete_credential_revokes(db: &TestDb) {
    let store = db.open().await;
    let (kept, kept_token) = store
        .create_credential(new_credential("kept"))
        .await
        .unwrap();
    let (gone, gone_token) = store
        .create_credential(new_credential("gone"))
        .await
        .unwrap();
    assert!(store.delete_credential(&gone.id).await.unwrap());
    assert!(!store.delete_credential(&gone.id).await.unwrap());
    assert!(!store.delete_credential("cr_neverexisted").await.unwrap());
    assert_eq!(store.credential(&gone.id).await.unwrap(), None);
    assert_eq!(store.credential_by_token(&gone_token).await.unwrap(), None);
    assert_eq!(
        store.credential_by_token(&kept_token).await.unwrap(),
        Some(kept)
    );
}

async fn credential_field_limits(db: &TestDb) {
    let store = db.open().await;
    let ok = NewCredential {
        description: "d".repeat(255),
        metadata: "m".repeat(4096),
        ..NewCredential::default()
    };
    let (created, _) = store.create_credential(ok.clone()).await.unwrap();
    assert_eq!(
        store
            .credential(&created.id)
            .await
            .unwrap()
            .unwrap()
            .metadata
            .len(),
        4096
    );

    let cases = [
        (
            "description",
            NewCredential {
                description: "d".repeat(256),
                ..ok.clone()
            },
        ),
        // 128 two-byte characters: 128 chars but 256 bytes.
        (
            "description",
            NewCredential {
                description: "é".repeat(128),
                ..ok.clone()
            },
        ),
        (
            "metadata",
            NewCredential {
                metadata: "m".repeat(4097),
                ..ok.clone()
            },
        ),
    ];
    for (field, new) in cases {
        match store.create_credential(new).await {
            Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected Invalid {{ field: {field} }}, got {other:?}"),
        }
    }
    assert!(matches!(
        store.create_api_key(&"d".repeat(256)).await,
        Err(StoreError::Invalid {
            field: "description",
            ..
        })
    ));
    assert_eq!(db.scalar("SELECT COUNT(*) FROM credentials").await, 1);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM api_keys").await, 0);
}

async fn credential_acl_is_validated(db: &TestDb) {
    let store = db.open().await;
    for bad in [
        "foo.example.com",
        "bind:",
        "bind:a_b.com",
        "bind:host:99999",
    ] {
        let new = NewCredential {
            acl: vec!["bind:ok.example.com".to_string(), bad.to_string()],
            ..NewCredential::default()
        };
        match store.create_credential(new).await {
            Err(StoreError::Invalid {
                field: "acl",
                reason,
            }) => {
                assert!(reason.contains("ERR_NGROK_600"), "{reason}");
            }
            other => panic!("{bad}: expected Invalid acl, got {other:?}"),
        }
    }
    let too_many = NewCredential {
        acl: vec!["bind:a.example.com".to_string(); 101],
        ..NewCredential::default()
    };
    assert!(matches!(
        store.create_credential(too_many).await,
        Err(StoreError::Invalid { field: "acl", .. })
    ));
    assert!(store.is_empty().await.unwrap(), "nothing was written");

    let rules = vec![
        "*".to_string(),
        "bind:app=*".to_string(),
        "bind:[::1]:22".to_string(),
    ];
    let new = NewCredential {
        acl: rules.clone(),
        ..NewCredential::default()
    };
    let (created, token) = store.create_credential(new).await.unwrap();
    assert_eq!(created.acl, rules);
    assert_eq!(
        store
            .credential_by_token(&token)
            .await
            .unwrap()
            .unwrap()
            .acl,
        rules
    );
}

async fn operator_chosen_credential_token(db: &TestDb) {
    let store = db.open().await;
    let token = "my-fleet-token:2025!";
    let created = store
        .create_credential_with_token(new_credential("from WARREN_AUTHTOKEN"), token)
        .await
        .unwrap();
    parse_id(&created.id, IdPrefix::Credential).unwrap();
    assert_eq!(
        store.credential_by_token(token).await.unwrap(),
        Some(created)
    );

    match store
        .create_credential_with_token(new_credential("again"), token)
        .await
    {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    for bad in [
        "Xy7!q",
        "has space in it",
        "tab\tinside!",
        "ünïcödé-token",
        &"x".repeat(257),
    ] {
        match store
            .create_credential_with_token(new_credential(""), bad)
            .await
        {
            Err(StoreError::Invalid {
                field: "token",
                reason,
            }) => {
                assert!(!reason.contains(bad), "reason echoes the token: {reason}");
            }
            other => panic!("{bad:?}: expected Invalid token, got {other:?}"),
        }
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM credentials").await, 1);
}

async fn api_key_roundtrip(db: &TestDb) {
    let store = db.open().await;
    let (key, token) = store.create_api_key("admin").await.unwrap();
    let body = parse_id(&key.id, IdPrefix::ApiKey).unwrap();
    assert_eq!(token.split_once('_').unwrap().0, body);
    assert_eq!(key.description, "admin");
    assert_eq!(key.metadata, "");
    assert_eq!(key.owner_id, None);
    assert_eq!(
        store.api_key_by_token(&token).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.api_key(&key.id).await.unwrap(), Some(key.clone()));
    assert_eq!(store.api_key_by_token(&tamper(&token)).await.unwrap(), None);
    assert_eq!(store.api_key_by_token("nope").await.unwrap(), None);

    assert!(store.delete_api_key(&key.id).await.unwrap());
    assert!(!store.delete_api_key(&key.id).await.unwrap());
    assert_eq!(store.api_key_by_token(&token).await.unwrap(), None);
    assert_eq!(store.api_key(&key.id).await.unwrap(), None);
}

async fn operator_chosen_api_key_token(db: &TestDb) {
    let store = db.open().await;
    let token = "operator-api-key-0001";
    let key = store
        .create_api_key_with_token("bootstrap", token)
        .await
        .unwrap();
    assert_eq!(store.api_key_by_token(token).await.unwrap(), Some(key));
    assert!(matches!(
        store.create_api_key_with_token("dup", token).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.create_api_key_with_token("bad", "sp ace token").await,
        Err(StoreError::Invalid { field: "token", .. })
    ));
    // The same string may be an authtoken too: the tables are separate namespaces.
    store
        .create_credential_with_token(new_credential(""), token)
        .await
        .unwrap();
}

async fn is_empty_until_first_credential_or_api_key(db: &TestDb) {
    let store = db.open().await;
    assert!(store.is_empty().await.unwrap());
    let (key, _) = store.create_api_key("admin").await.unwrap();
    assert!(!store.is_empty().await.unwrap());
    store.delete_api_key(&key.id).await.unwrap();
    assert!(store.is_empty().await.unwrap());
    store
        .create_credential(new_credential("first"))
        .await
        .unwrap();
    assert!(!store.is_empty().await.unwrap());
}

async fn reopen_keeps_data_and_migrations_are_idempotent(db: &TestDb) {
    let store = db.open().await;
    let (credential, token) = store
        .create_credential(new_credential("persisted"))
        .await
        .unwrap();
    let (key, key_token) = store.create_api_key("persisted").await.unwrap();
    store.close().await;
    let applied = db.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await;
    assert!(applied >= 1);

    for _ in 0..2 {
        let store = db.open().await;
        assert_eq!(
            store.credential_by_token(&token).await.unwrap(),
            Some(credential.clone())
        );
        assert_eq!(
            store.api_key_by_token(&key_token).await.unwrap(),
            Some(key.clone())
        );
        assert!(!store.is_empty().await.unwrap());
        store.close().await;
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await,
            applied
        );
    }
}

async fn concurrent_creates_get_distinct_ids(db: &TestDb) {
    let store = db.open().await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store: Store = store.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let (c, t) = store
                        .create_credential(new_credential(&format!("{i}")))
                        .await?;
                    Ok::<_, StoreError>((c.id, t))
                } else {
                    let (k, t) = store.create_api_key(&format!("{i}")).await?;
                    Ok((k.id, t))
                }
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut tokens = HashSet::new();
    for task in tasks {
        let (id, token) = task.await.unwrap().unwrap();
        assert!(ids.insert(id));
        assert!(tokens.insert(token));
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM credentials").await, 12);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM api_keys").await, 12);
}

// ---- SQLite-only behaviour ----

#[tokio::test]
async fn sqlite_creates_a_missing_file_in_wal_mode() {
    let db = TestDb::sqlite();
    let path = db.sqlite_path().unwrap().clone();
    assert!(!path.exists());
    let store = db.open().await;
    assert!(path.exists());
    store.create_api_key("x").await.unwrap();
    let mode: String = {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn sqlite_file_bytes_never_contain_a_token() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let mut tokens = Vec::new();
    for i in 0..5 {
        tokens.push(
            store
                .create_credential(new_credential(&format!("{i}")))
                .await
                .unwrap()
                .1,
        );
        tokens.push(store.create_api_key("k").await.unwrap().1);
    }
    // Look at the file and its WAL while the pool is open, and again after close.
    for phase in ["open", "closed"] {
        if phase == "closed" {
            store.close().await;
        }
        let path = db.sqlite_path().unwrap();
        let mut bytes = std::fs::read(path).unwrap();
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        for token in &tokens {
            let secret = token.rsplit_once('_').unwrap().1;
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "token secret found in database bytes ({phase})"
            );
        }
    }
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    let (credential, token) = store
        .create_credential(new_credential("mem"))
        .await
        .unwrap();
    assert_eq!(
        store.credential_by_token(&token).await.unwrap(),
        Some(credential)
    );
}

#[tokio::test]
async fn unsupported_urls_are_rejected_without_echoing_them() {
    for url in ["mysql://root:hunter2@localhost/db", "hunter2", ""] {
        match Store::connect(url).await {
            Err(err @ StoreError::UnsupportedUrl { .. }) => {
                assert!(!err.to_string().contains("hunter2"), "{err}");
            }
            other => panic!("{url}: expected UnsupportedUrl, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("no/such/dir/warren.db").display()
    );
    assert!(matches!(
        Store::connect(&url).await,
        Err(StoreError::Database(_))
    ));
}
