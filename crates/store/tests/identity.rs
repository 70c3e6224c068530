//! Service users, and listing and updating credentials and API keys, against a real SQLite
//! file and — when `WARREN_TEST_DATABASE_URL` is set — against PostgreSQL, from one suite.

#[allow(dead_code)] // The shared helpers; this suite uses some of them.
#[macro_use]
mod support;

use support::TestDb;
use warren_store::api_keys::{ApiKeyUpdate, NewApiKey};
use warren_store::credentials::CredentialUpdate;
use warren_store::service_users::ServiceUserUpdate;
use warren_store::{NewCredential, StoreError};

on_both_backends!(
    service_user_roundtrip,
    service_user_names_are_checked_and_unique,
    delete_service_user_cascades_to_what_it_owns,
    lists_are_newest_first_and_page_by_id,
    credential_updates_replace_given_fields_only,
    api_key_metadata_owner_and_updates,
);

fn owned_by(owner: &str) -> NewCredential {
    NewCredential {
        owner_id: Some(owner.to_string()),
        ..NewCredential::default()
    }
}

async fn service_user_roundtrip(db: &TestDb) {
    let store = db.open().await;
    let user = store.create_service_user("site 1", true).await.unwrap();
    assert!(user.id.starts_with("service_"), "{}", user.id);
    assert!(user.active);
    assert_eq!(
        store.service_user(&user.id).await.unwrap(),
        Some(user.clone())
    );

    let off = store
        .update_service_user(
            &user.id,
            ServiceUserUpdate {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((off.name.as_str(), off.active), ("site 1", false));
    let renamed = store
        .update_service_user(
            &user.id,
            ServiceUserUpdate {
                name: Some("site one".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.active), ("site one", false));
    assert_eq!(
        store
            .update_service_user("service_nope", ServiceUserUpdate::default())
            .await
            .unwrap(),
        None
    );
    assert!(store.delete_service_user(&user.id).await.unwrap());
    assert!(!store.delete_service_user(&user.id).await.unwrap());
    assert_eq!(store.service_user(&user.id).await.unwrap(), None);
}

async fn service_user_names_are_checked_and_unique(db: &TestDb) {
    let store = db.open().await;
    for bad in ["", "  ", &"n".repeat(256)] {
        assert!(
            matches!(
                store.create_service_user(bad, true).await,
                Err(StoreError::Invalid { field: "name", .. })
            ),
            "{bad:?}"
        );
    }
    store
        .create_service_user(&"n".repeat(255), true)
        .await
        .unwrap();
    let a = store.create_service_user("a", true).await.unwrap();
    assert!(matches!(
        store.create_service_user("a", false).await,
        Err(StoreError::Conflict { .. })
    ));
    store.create_service_user("b", true).await.unwrap();
    assert!(matches!(
        store
            .update_service_user(
                &a.id,
                ServiceUserUpdate {
                    name: Some("b".into()),
                    ..Default::default()
                }
            )
            .await,
        Err(StoreError::Conflict { .. })
    ));
}

async fn delete_service_user_cascades_to_what_it_owns(db: &TestDb) {
    let store = db.open().await;
    let user = store.create_service_user("owner", true).await.unwrap();
    let other = store.create_service_user("other", true).await.unwrap();
    let (mine, token) = store.create_credential(owned_by(&user.id)).await.unwrap();
    let (theirs, _) = store.create_credential(owned_by(&other.id)).await.unwrap();
    let (key, key_token) = store
        .create_api_key_from(NewApiKey {
            owner_id: Some(user.id.clone()),
            ..NewApiKey::default()
        })
        .await
        .unwrap();
    let deleted = store
        .delete_service_user_cascade(&user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.credentials, vec![mine.id.clone()]);
    assert_eq!(deleted.api_keys, vec![key.id.clone()]);
    assert_eq!(store.credential_by_token(&token).await.unwrap(), None);
    assert_eq!(store.api_key_by_token(&key_token).await.unwrap(), None);
    assert!(store.credential(&theirs.id).await.unwrap().is_some());
    assert!(store.service_user(&other.id).await.unwrap().is_some());
    assert_eq!(
        store.delete_service_user_cascade(&user.id).await.unwrap(),
        None
    );
}

async fn lists_are_newest_first_and_page_by_id(db: &TestDb) {
    let store = db.open().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            store
                .create_credential(NewCredential {
                    description: format!("{i}"),
                    ..NewCredential::default()
                })
                .await
                .unwrap()
                .0
                .id,
        );
        store.create_api_key(&format!("{i}")).await.unwrap();
        store
            .create_service_user(&format!("u{i}"), true)
            .await
            .unwrap();
    }
    ids.sort();
    ids.reverse();
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store.list_credentials(before.as_deref(), 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|c| c.id.clone());
        seen.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(seen, ids, "bytewise id order, newest first");
    assert_eq!(store.list_api_keys(None, 100).await.unwrap().len(), 7);
    let users = store.list_service_users(None, 5).await.unwrap();
    assert_eq!(users.len(), 5);
    let rest = store
        .list_service_users(Some(&users[4].id), 5)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    assert!(users.windows(2).all(|w| w[0].id > w[1].id));
    assert!(users[4].id > rest[0].id);
}

async fn credential_updates_replace_given_fields_only(db: &TestDb) {
    let store = db.open().await;
    let (cred, _) = store
        .create_credential(NewCredential {
            description: "d".into(),
            metadata: "m".into(),
            acl: vec!["bind:a.example.com".into()],
            owner_id: None,
        })
        .await
        .unwrap();
    let updated = store
        .update_credential(
            &cred.id,
            CredentialUpdate {
                acl: Some(vec!["bind:*.b.example.com".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.acl, vec!["bind:*.b.example.com".to_string()]);
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("d", "m")
    );
    let updated = store
        .update_credential(
            &cred.id,
            CredentialUpdate {
                description: Some(String::new()),
                acl: Some(Vec::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("", "m")
    );
    assert!(updated.acl.is_empty());
    assert!(matches!(
        store
            .update_credential(
                &cred.id,
                CredentialUpdate {
                    acl: Some(vec!["nope".into()]),
                    ..Default::default()
                }
            )
            .await,
        Err(StoreError::Invalid { field: "acl", .. })
    ));
    assert!(matches!(
        store
            .update_credential(
                &cred.id,
                CredentialUpdate {
                    metadata: Some("m".repeat(4097)),
                    ..Default::default()
                }
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(
        store
            .update_credential("cr_gone", CredentialUpdate::default())
            .await
            .unwrap(),
        None
    );
}

async fn api_key_metadata_owner_and_updates(db: &TestDb) {
    let store = db.open().await;
    let (key, token) = store
        .create_api_key_from(NewApiKey {
            description: "d".into(),
            metadata: "{\"env\":\"dev\"}".into(),
            owner_id: Some("service_x".into()),
        })
        .await
        .unwrap();
    let found = store.api_key_by_token(&token).await.unwrap().unwrap();
    assert_eq!(found, key);
    assert_eq!(found.owner_id.as_deref(), Some("service_x"));
    let updated = store
        .update_api_key(
            &key.id,
            ApiKeyUpdate {
                metadata: Some("new".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("d", "new")
    );
    assert!(matches!(
        store
            .update_api_key(
                &key.id,
                ApiKeyUpdate {
                    description: Some("d".repeat(256)),
                    ..Default::default()
                }
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(
        store
            .update_api_key("ak_gone", ApiKeyUpdate::default())
            .await
            .unwrap(),
        None
    );
}
