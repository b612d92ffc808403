//! Accounts found by their API key, and connectors registered, replaced, rotated, saved and
//! deleted, alone and at once.

use hookwarden_core::ConnectorStatus;
use hookwarden_store::StoreError;
use secrecy::ExposeSecret;

use crate::{each_database, new_connector};

#[tokio::test]
async fn accounts_are_found_by_their_api_key_only() {
    each_database(async |store, _| {
        let (account, key) = store.create_account("acme").await.unwrap();
        let found = store.account_by_api_key(&key).await.unwrap().unwrap();
        assert_eq!(found.id, account.id);
        assert!(store
            .account_by_api_key("hwk_wrong")
            .await
            .unwrap()
            .is_none());
        assert!(store.account_by_api_key("").await.unwrap().is_none());
    })
    .await;
}

/// A key is listed with its first characters (never the rest) and its last use, which a
/// lookup notes.
#[tokio::test]
async fn keys_are_listed_with_their_prefix_and_last_use() {
    each_database(async |store, url| {
        let (account, key) = store.create_account("acme").await.unwrap();
        let (_, second) = store.create_api_key(&account.id).await.unwrap();
        let listed = store.list_api_keys(&account.id).await.unwrap();
        assert_eq!(listed.len(), 2, "{url}");
        for (info, key) in listed.iter().zip([&key, &second]) {
            let prefix = info.prefix.as_deref().unwrap();
            assert!(
                prefix.starts_with("hwk_") && key.starts_with(prefix),
                "{url}"
            );
            assert!(prefix.len() < 12, "most of the key stays unknown: {prefix}");
            assert_eq!(info.last_used_at, None, "{url}");
        }
        store.account_by_api_key(&key).await.unwrap().unwrap();
        let listed = store.list_api_keys(&account.id).await.unwrap();
        let used = listed
            .iter()
            .find(|i| key.starts_with(i.prefix.as_deref().unwrap()))
            .unwrap();
        assert!(used.last_used_at.is_some(), "{url}: {listed:?}");
        assert!(
            listed.iter().any(|i| i.last_used_at.is_none()),
            "the other key was not used: {listed:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn connectors_register_replace_rotate_and_delete() {
    each_database(async |store, url| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let (other, _) = store.create_account("other").await.unwrap();

        let (first, created) = store
            .upsert_connector(new_connector(
                &acme.id,
                "salesforceOauth2",
                "secret-one-1234",
            ))
            .await
            .unwrap();
        assert!(created, "{url}");
        assert_eq!(first.status, ConnectorStatus::Active);
        assert!(first.signing_secret.expose_secret().starts_with("whsec_"));

        let (second, created) = store
            .upsert_connector(new_connector(
                &acme.id,
                "salesforceOauth2",
                "secret-two-5678",
            ))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(second.id, first.id, "a replace keeps the row");
        assert_eq!(second.credentials_version, first.credentials_version + 1);
        assert!(second
            .credentials
            .stored()
            .expose_secret()
            .contains("secret-two-5678"));
        assert_eq!(
            second.signing_secret.expose_secret(),
            first.signing_secret.expose_secret(),
            "a replace keeps the signing secret"
        );

        // Nothing crosses accounts.
        assert!(store
            .get_connector(&other.id, "salesforceOauth2")
            .await
            .unwrap()
            .is_none());
        assert!(!store
            .delete_connector(&other.id, "salesforceOauth2")
            .await
            .unwrap());

        let (rotated, fresh) = store
            .rotate_signing_secret(&acme.id, "salesforceOauth2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            rotated.signing_secret.expose_secret(),
            fresh.expose_secret()
        );
        assert_eq!(
            rotated
                .previous_signing_secret
                .as_ref()
                .unwrap()
                .expose_secret(),
            first.signing_secret.expose_secret()
        );

        let mut changed = rotated.clone();
        changed.status = ConnectorStatus::NeedsReauth;
        changed.events.push("PACKAGE_CREATE".into());
        let saved = store
            .save_connector(&changed, false, rotated.seen())
            .await
            .unwrap();
        // A second writer that read before the first one wrote does not undo it.
        let mut stale = rotated.clone();
        stale.events = vec!["DOCUMENT_SIGNED".into()];
        assert!(matches!(
            store.save_connector(&stale, false, rotated.seen()).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(saved.status, ConnectorStatus::NeedsReauth);
        assert_eq!(saved.events.len(), 2);
        assert_eq!(saved.credentials_version, rotated.credentials_version);

        assert_eq!(store.list_connectors(&acme.id).await.unwrap().len(), 1);
        assert!(store
            .delete_connector(&acme.id, "salesforceOauth2")
            .await
            .unwrap());
        assert!(store.list_connectors(&acme.id).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_leave_one_connector() {
    each_database(async |store, _| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let c = new_connector(&acme.id, "race", &format!("secret-{i}-abcdef"));
                tokio::spawn(async move { store.upsert_connector(c).await })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            let (_, was_created) = t.await.unwrap().unwrap();
            created += usize::from(was_created);
        }
        assert_eq!(created, 1);
        assert_eq!(store.list_connectors(&acme.id).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn account_connectors_see_every_connector_write_at_once() {
    each_database(async |store, url| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let names = |list: &[hookwarden_store::ConnectorRecord]| {
            list.iter()
                .map(|c| (c.name.clone(), c.status))
                .collect::<Vec<_>>()
        };
        assert!(store.account_connectors(&acme.id).await.unwrap().is_empty());
        let (a, _) = store
            .upsert_connector(new_connector(&acme.id, "alpha", "secret-1234"))
            .await
            .unwrap();
        assert_eq!(
            names(&store.account_connectors(&acme.id).await.unwrap()),
            [("alpha".to_owned(), ConnectorStatus::Active)],
            "{url}"
        );
        // Read twice (cached), then a status change made through the store.
        store.account_connectors(&acme.id).await.unwrap();
        assert!(store
            .set_connector_status(&a.id, ConnectorStatus::NeedsReauth, None)
            .await
            .unwrap());
        assert_eq!(
            names(&store.account_connectors(&acme.id).await.unwrap()),
            [("alpha".to_owned(), ConnectorStatus::NeedsReauth)]
        );
        let mut replaced = new_connector(&acme.id, "alpha", "secret-5678");
        replaced.events = vec!["DOCUMENT_SIGNED".into()];
        store.upsert_connector(replaced).await.unwrap();
        let now = store.account_connectors(&acme.id).await.unwrap();
        assert_eq!(now[0].events, ["DOCUMENT_SIGNED"]);
        assert_eq!(now[0].status, ConnectorStatus::Active);
        assert!(store.delete_connector(&acme.id, "alpha").await.unwrap());
        assert!(store.account_connectors(&acme.id).await.unwrap().is_empty());
    })
    .await;
}
