//! Migrations that rewrite stored rows, run against rows written before them.

use hookwarden_core::Credentials;
use hookwarden_store::{testing, MasterKey, MasterKeySource, NewConnector, Store};
use secrecy::SecretString;
use sqlx::Connection;

/// The warning the key parser stored before connectors kept a flag for it.
const OLD_LINE_BREAK_WARNING: &str = "the key contains line breaks (base64 without -w 0); they were removed — encode with `base64 -w 0` or `hookwarden key encode`";

fn connector(
    account: &hookwarden_core::AccountId,
    name: &str,
    settings: serde_json::Value,
) -> NewConnector {
    NewConnector {
        account_id: account.clone(),
        name: name.to_owned(),
        url: "https://acme.my.salesforce.com/services/apexrest/OSS/callback".into(),
        events: vec!["PACKAGE_COMPLETE".into()],
        origins: vec!["OSS".into()],
        owner: None,
        refresh_token_idle_days: None,
        settings,
        warnings: vec![],
        credentials: Credentials::from_storage(
            "salesforce",
            Some("client_credentials"),
            SecretString::from(
                r#"{"host":"acme.my.salesforce.com","client_id":"cid","client_secret":"s"}"#,
            ),
        )
        .unwrap(),
    }
}

/// Forget that migration `version` ran, as a database written before it would be.
async fn unapply(url: &str, version: i64) {
    raw(
        url,
        &format!("DELETE FROM hookwarden_schema WHERE version = {version}"),
    )
    .await;
}

/// Run `sql` on the database behind the store's back.
async fn raw(url: &str, sql: &str) {
    let sql = sql.to_owned();
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
}

#[tokio::test]
async fn connectors_registered_with_a_wrapped_key_get_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let key = MasterKey::generate();
        let store = Store::open(&url, MasterKeySource::Given(key.clone()))
            .await
            .unwrap();
        let (acme, _) = store.create_account("acme").await.unwrap();
        let wrapped = serde_json::json!({
            "max_concurrency": 8,
            "key_warnings": [OLD_LINE_BREAK_WARNING, "the key lacks its '=' base64 padding; it was accepted"],
        });
        store
            .upsert_connector(connector(&acme.id, "wrapped", wrapped))
            .await
            .unwrap();
        store
            .upsert_connector(connector(
                &acme.id,
                "plain",
                serde_json::json!({"max_concurrency": 8}),
            ))
            .await
            .unwrap();
        store.close().await;

        unapply(&url, 8).await;
        let store = Store::open(&url, MasterKeySource::Given(key))
            .await
            .unwrap();
        let wrapped = store
            .get_connector(&acme.id, "wrapped")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(wrapped.settings["key_line_wrapped"], true, "on {url}");
        assert_eq!(
            wrapped.settings["max_concurrency"], 8,
            "the rest kept on {url}"
        );
        assert_eq!(
            wrapped.settings["key_warnings"][0], OLD_LINE_BREAK_WARNING,
            "the warnings kept on {url}"
        );
        let plain = store
            .get_connector(&acme.id, "plain")
            .await
            .unwrap()
            .unwrap();
        assert!(plain.settings.get("key_line_wrapped").is_none(), "on {url}");
        store.close().await;
    }
}

/// Rows written before diagnoses had codes (migration 9): a connector moved out of `active`
/// shows the generic diagnosis of its status, an attempt's sentence and a history entry's
/// cause read back `unclassified`.
#[tokio::test]
async fn rows_written_before_diagnosis_codes_read_back_unclassified() {
    use hookwarden_core::diagnosis::Code;
    use hookwarden_core::DiagnosisView;
    use hookwarden_store::{HistoryKind, NewHistoryEntry};

    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let key = MasterKey::generate();
        let store = Store::open(&url, MasterKeySource::Given(key.clone()))
            .await
            .unwrap();
        let (acme, _) = store.create_account("acme").await.unwrap();
        let (c, _) = store
            .upsert_connector(connector(&acme.id, "old", serde_json::json!({})))
            .await
            .unwrap();
        store
            .record_history(&NewHistoryEntry {
                connector_id: c.id.clone(),
                account_id: acme.id.clone(),
                at: 1,
                kind: HistoryKind::Grant,
                grant_type: Some("client_credentials".into()),
                outcome: "failed".into(),
                http_status: Some(400),
                error: Some("invalid_grant".into()),
                error_description: None,
                diagnosis_code: None,
                cause: Some("no Run As user".into()),
                fix: Some("set one".into()),
                duration_ms: 3,
                excerpt: None,
            })
            .await
            .unwrap();
        store.close().await;
        for sql in [
            format!(
                "UPDATE connectors SET status = 'disabled' WHERE id = '{}'",
                c.id.as_str()
            ),
            "INSERT INTO attempts (delivery_id, at, status_code, duration_ms, diagnosis, refreshed) \
             VALUES ('dlv_old', 1, 404, 5, 'the endpoint answered 404: check the url', 0)"
                .to_owned(),
        ] {
            raw(&url, &sql).await;
        }

        let store = Store::open(&url, MasterKeySource::Given(key))
            .await
            .unwrap();
        let old = store.get_connector(&acme.id, "old").await.unwrap().unwrap();
        assert_eq!(
            old.diagnosis(),
            Some(DiagnosisView::from(Code::EndpointGone)),
            "on {url}"
        );
        let attempts = store.attempts_of(&["dlv_old".into()]).await.unwrap();
        let d = attempts[0].diagnosis.clone().unwrap();
        assert_eq!(
            (d.code.as_str(), d.cause.as_str()),
            ("unclassified", "the endpoint answered 404: check the url"),
            "on {url}"
        );
        let history = store.list_history(&c.id, 10, None).await.unwrap();
        let d = history[0].entry.diagnosis().unwrap();
        assert_eq!(
            (d.code.as_str(), d.cause.as_str(), d.fix.as_str()),
            ("unclassified", "no Run As user", "set one"),
            "on {url}"
        );
        store.close().await;
    }
}

#[tokio::test]
async fn accounts_that_shared_a_name_are_told_apart_and_names_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let key = MasterKey::generate();
        let store = Store::open(&url, MasterKeySource::Given(key.clone()))
            .await
            .unwrap();
        let (first, _) = store.create_account("acme").await.unwrap();
        store.close().await;
        // Before names were unique, a second "acme" could be made.
        raw(&url, "DROP INDEX accounts_name").await;
        raw(
            &url,
            "INSERT INTO accounts (id, name, created_at) VALUES ('acc_zzz', 'acme', 1)",
        )
        .await;
        unapply(&url, 10).await;

        let store = Store::open(&url, MasterKeySource::Given(key))
            .await
            .unwrap();
        let names: Vec<(String, String)> = store
            .list_accounts()
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.id.as_str().to_owned(), a.name))
            .collect();
        assert!(
            names.contains(&(first.id.as_str().to_owned(), "acme".to_owned())),
            "{names:?} on {url}"
        );
        assert!(
            names.contains(&("acc_zzz".to_owned(), "acme (acc_zzz)".to_owned())),
            "{names:?} on {url}"
        );
        assert!(matches!(
            store.create_account("acme").await,
            Err(hookwarden_store::StoreError::Conflict(_))
        ));
        store.close().await;
    }
}

/// Keys made before scopes existed (migration 12) could do everything: they become `admin`,
/// without a name, and keep working.
#[tokio::test]
async fn keys_made_before_scopes_become_admin() {
    use hookwarden_core::{Scope, Scopes};

    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let key = MasterKey::generate();
        let store = Store::open(&url, MasterKeySource::Given(key.clone()))
            .await
            .unwrap();
        let (acme, api_key) = store.create_account("acme").await.unwrap();
        store.close().await;
        // The table as it was before migration 12, with a key written then.
        raw(&url, "ALTER TABLE api_keys DROP COLUMN scopes").await;
        raw(&url, "ALTER TABLE api_keys DROP COLUMN name").await;
        raw(
            &url,
            &format!(
                "INSERT INTO api_keys (key_hash, account_id, created_at) \
                 VALUES ('{}', '{}', 1)",
                "ab".repeat(32),
                acme.id.as_str()
            ),
        )
        .await;
        unapply(&url, 12).await;

        let store = Store::open(&url, MasterKeySource::Given(key))
            .await
            .unwrap();
        let keys = store.list_api_keys(&acme.id).await.unwrap();
        assert_eq!(keys.len(), 2, "on {url}");
        for info in &keys {
            assert_eq!(info.scopes, Scopes::admin(), "{info:?} on {url}");
            assert_eq!(info.name, None, "on {url}");
        }
        let holder = store.api_key_holder(&api_key).await.unwrap().unwrap();
        assert!(holder.scopes.allow(Scope::Admin), "on {url}");
        store.close().await;
    }
}

/// Connectors from before migration 14 get their creation time as the time their credentials
/// changed, and their last rotation (24 h before the old secret stops signing) or their
/// creation as the time their signing secret was made; no idle policy.
#[tokio::test]
async fn connectors_from_before_credential_times_get_their_creation_or_rotation() {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let key = MasterKey::generate();
        let store = Store::open(&url, MasterKeySource::Given(key.clone()))
            .await
            .unwrap();
        let (acme, _) = store.create_account("acme").await.unwrap();
        for name in ["plain", "rotated"] {
            store
                .upsert_connector(connector(&acme.id, name, serde_json::json!({})))
                .await
                .unwrap();
        }
        store.close().await;
        // The table as it was before migration 14, with rows written then.
        for column in [
            "credentials_changed_at",
            "signing_secret_changed_at",
            "refresh_token_idle_days",
        ] {
            raw(
                &url,
                &format!("ALTER TABLE connectors DROP COLUMN {column}"),
            )
            .await;
        }
        raw(&url, "UPDATE connectors SET created_at = 1000000").await;
        raw(
            &url,
            "UPDATE connectors SET prev_signing_until = 5000000 + 86400000 WHERE name = 'rotated'",
        )
        .await;
        unapply(&url, 14).await;

        let store = Store::open(&url, MasterKeySource::Given(key))
            .await
            .unwrap();
        for (name, signing) in [("plain", 1_000_000), ("rotated", 5_000_000)] {
            let c = store.get_connector(&acme.id, name).await.unwrap().unwrap();
            assert_eq!(c.credentials_changed_at, 1_000_000, "{name} on {url}");
            assert_eq!(c.signing_secret_changed_at, signing, "{name} on {url}");
            assert_eq!(c.refresh_token_idle_days, None, "{name} on {url}");
        }
        store.close().await;
    }
}

/// Nodes that start together on an empty PostgreSQL database: each migrates under the advisory
/// lock, so one applies every migration and the others find them applied; none fails on a table
/// another is creating, and every version is recorded once.
#[tokio::test]
async fn nodes_starting_together_migrate_a_postgres_database_once() {
    let Some(url) = testing::fresh_postgres_url().await else {
        eprintln!("HOOKWARDEN_TEST_PG_URL not set: PostgreSQL part skipped");
        return;
    };
    let key = MasterKey::generate();
    // Spawned all at once; awaited in turn.
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let (url, key) = (url.clone(), key.clone());
            tokio::spawn(async move { Store::open(&url, MasterKeySource::Given(key)).await })
        })
        .collect();
    for opened in opens {
        opened.await.unwrap().expect("every node starts");
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT version, COUNT(*) FROM hookwarden_schema GROUP BY version ORDER BY version",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let versions: Vec<i64> = rows.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, testing::migration_versions());
    assert!(rows.iter().all(|(_, n)| *n == 1), "{rows:?}");
}
