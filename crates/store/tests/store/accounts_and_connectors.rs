//! Accounts found by their API key, and connectors registered, replaced, rotated, saved and
//! deleted, alone and at once.

use hookwarden_core::{ConnectorStatus, KeyName, Scope, Scopes};
use hookwarden_store::{KeyRevocation, StoreError};
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
        // Each key by its id: two keys made in the same millisecond have no order of their own.
        for key in [&key, &second] {
            let id = hookwarden_store::api_key_id(key);
            let info = listed.iter().find(|i| i.id == id).unwrap();
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

/// A key is made with the scopes (and name) it is given, listed with them, and its holder
/// found with them; `create_account` and `create_api_key` make `admin` keys.
#[tokio::test]
async fn keys_carry_their_scopes_and_name() {
    each_database(async |store, url| {
        let ingest = Scopes::parse(&["ingest"]).unwrap();
        let name = KeyName::parse("producer-eu").unwrap();
        let (acme, first, first_key) = store
            .create_account_with_key("acme", ingest, Some(&name))
            .await
            .unwrap();
        assert_eq!(first.scopes, ingest, "{url}");
        assert_eq!(first.name.as_deref(), Some("producer-eu"), "{url}");
        let read_ingest = Scopes::parse(&["read", "ingest"]).unwrap();
        let (second, second_key) = store
            .create_scoped_api_key(&acme.id, read_ingest, None)
            .await
            .unwrap();
        let (third, _) = store.create_api_key(&acme.id).await.unwrap();
        assert_eq!(third.scopes, Scopes::admin(), "{url}");
        let (_, _, globex_key) = store
            .create_account_with_key("globex", Scopes::admin(), None)
            .await
            .unwrap();

        // By id: keys made in the same millisecond have no order of their own.
        let mut listed: Vec<(String, Option<String>, Vec<&str>)> = store
            .list_api_keys(&acme.id)
            .await
            .unwrap()
            .into_iter()
            .map(|k| (k.id, k.name, k.scopes.names()))
            .collect();
        listed.sort();
        let mut made = vec![
            (
                first.id.clone(),
                Some("producer-eu".to_owned()),
                vec!["ingest"],
            ),
            (second.id.clone(), None, vec!["ingest", "read"]),
            (third.id.clone(), None, vec!["admin"]),
        ];
        made.sort();
        assert_eq!(listed, made, "{url}");
        let holder = store.api_key_holder(&first_key).await.unwrap().unwrap();
        assert_eq!(
            (holder.account.id, holder.key_id, holder.scopes),
            (acme.id.clone(), first.id.clone(), ingest),
            "{url}"
        );
        let holder = store.api_key_holder(&second_key).await.unwrap().unwrap();
        assert!(
            holder.scopes.allow(Scope::Read) && !holder.scopes.allow(Scope::Admin),
            "{url}"
        );
        let holder = store.api_key_holder(&globex_key).await.unwrap().unwrap();
        assert_eq!(holder.account.name, "globex", "{url}");
        assert!(store.api_key_holder("hwk_wrong").await.unwrap().is_none());
    })
    .await;
}

/// The account's last `admin` key cannot be revoked; any other key can, the last key of all
/// too when no admin key is left to lose.
#[tokio::test]
async fn the_last_admin_key_cannot_be_revoked() {
    each_database(async |store, url| {
        let (acme, admin_key) = store.create_account("acme").await.unwrap();
        let admin_id = hookwarden_store::api_key_id(&admin_key);
        let (ingest, _) = store
            .create_scoped_api_key(&acme.id, Scopes::parse(&["ingest"]).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(
            store.revoke_api_key(&acme.id, &admin_id).await.unwrap(),
            KeyRevocation::LastAdminKey,
            "an ingest key beside it does not count: {url}"
        );
        let (second_admin, _) = store.create_api_key(&acme.id).await.unwrap();
        assert_eq!(
            store.revoke_api_key(&acme.id, &admin_id).await.unwrap(),
            KeyRevocation::Revoked,
            "{url}"
        );
        assert_eq!(
            store
                .revoke_api_key(&acme.id, &second_admin.id)
                .await
                .unwrap(),
            KeyRevocation::LastAdminKey,
            "{url}"
        );
        assert_eq!(
            store.revoke_api_key(&acme.id, &ingest.id).await.unwrap(),
            KeyRevocation::Revoked,
            "{url}"
        );
        let left: Vec<String> = store
            .list_api_keys(&acme.id)
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(left, vec![second_admin.id.clone()], "{url}");

        // An account without an admin key (made so from the command line) can lose its last key.
        let (globex, only, _) = store
            .create_account_with_key("globex", Scopes::parse(&["read"]).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(
            store.revoke_api_key(&globex.id, &only.id).await.unwrap(),
            KeyRevocation::Revoked,
            "{url}"
        );
        assert_eq!(
            store
                .revoke_api_key(&globex.id, &second_admin.id)
                .await
                .unwrap(),
            KeyRevocation::NotFound,
            "another account's key: {url}"
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

/// `credentials_changed_at` moves with `credentials_version` (registration, a new key, a
/// save with new credentials) and nothing else; `signing_secret_changed_at` with the rotation;
/// the idle policy is kept as given.
#[tokio::test]
async fn credential_and_signing_secret_times_move_only_when_they_change() {
    each_database(async |store, url| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let mut new = new_connector(&acme.id, "sf", "secret-one-1234");
        new.refresh_token_idle_days = Some(30);
        let (first, _) = store.upsert_connector(new).await.unwrap();
        assert_eq!(first.credentials_changed_at, first.created_at, "{url}");
        assert_eq!(first.signing_secret_changed_at, first.created_at, "{url}");
        assert_eq!(first.refresh_token_idle_days, Some(30), "{url}");

        // Times are milliseconds: wait for the clock to move past them.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let mut renamed = first.clone();
        renamed.owner = Some("ops@acme.example".into());
        renamed.refresh_token_idle_days = None;
        let saved = store
            .save_connector(&renamed, false, first.seen())
            .await
            .unwrap();
        assert_eq!(
            saved.credentials_changed_at, first.credentials_changed_at,
            "{url}"
        );
        assert_eq!(saved.refresh_token_idle_days, None, "{url}");

        let rekeyed = store
            .save_connector(&saved, true, saved.seen())
            .await
            .unwrap();
        assert_eq!(rekeyed.credentials_version, first.credentials_version + 1);
        assert!(
            rekeyed.credentials_changed_at > first.credentials_changed_at,
            "{url}"
        );

        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // Registered again with another key: new credentials.
        let (replaced, _) = store
            .upsert_connector(new_connector(&acme.id, "sf", "secret-two-5678"))
            .await
            .unwrap();
        assert!(
            replaced.credentials_changed_at > rekeyed.credentials_changed_at,
            "{url}"
        );
        assert_eq!(
            replaced.signing_secret_changed_at,
            first.signing_secret_changed_at
        );

        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (rotated, _) = store
            .rotate_signing_secret(&acme.id, "sf")
            .await
            .unwrap()
            .unwrap();
        assert!(
            rotated.signing_secret_changed_at > first.signing_secret_changed_at,
            "{url}"
        );
        assert_eq!(
            rotated.credentials_changed_at, replaced.credentials_changed_at,
            "{url}"
        );
    })
    .await;
}
