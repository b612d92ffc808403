//! Secrets at rest: sealed in the SQLite file under a key file beside it, and in PostgreSQL
//! under a master key it cannot do without.

use hookwarden_store::{testing, MasterKey, MasterKeySource, Store, StoreError};
use secrecy::ExposeSecret;

use crate::new_connector;

#[tokio::test]
async fn secrets_are_sealed_at_rest_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("plain.db").display());
    let store = Store::open(&url, MasterKeySource::FileBesideDatabase)
        .await
        .unwrap();
    let (acme, _) = store.create_account("acme").await.unwrap();
    let (record, _) = store
        .upsert_connector(new_connector(
            &acme.id,
            "salesforceOauth2",
            "Sup3rSecretValueXYZ",
        ))
        .await
        .unwrap();
    let signing = record.signing_secret.expose_secret().to_owned();
    store.close().await;

    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("plain.db") && !path.to_string_lossy().ends_with(".key")
        {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!bytes.is_empty());
    for needle in ["Sup3rSecretValueXYZ", signing.as_str(), &signing[6..]] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} found in the database file"
        );
    }

    // The key file was created 0600 beside the database, and reopening reads it back.
    let key_file = dir.path().join("plain.db.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let reopened = Store::open(&url, MasterKeySource::FileBesideDatabase)
        .await
        .unwrap();
    let again = reopened
        .get_connector(&acme.id, "salesforceOauth2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.signing_secret.expose_secret(), signing);

    // Another master key cannot open the secrets: the database does not open, and says so.
    reopened.close().await;
    let wrong = Store::open(&url, MasterKeySource::Given(MasterKey::generate())).await;
    assert!(
        matches!(&wrong, Err(StoreError::MasterKey(m)) if m.contains("sealed with master key id")),
        "{wrong:?}"
    );
}

#[tokio::test]
async fn postgres_needs_a_master_key_and_seals_its_secrets() {
    let Some(url) = testing::fresh_postgres_url().await else {
        eprintln!("HOOKWARDEN_TEST_PG_URL not set: PostgreSQL part skipped");
        return;
    };
    assert!(matches!(
        Store::open(&url, MasterKeySource::FileBesideDatabase).await,
        Err(StoreError::MasterKey(_))
    ));
    let store = Store::open(&url, MasterKeySource::Given(MasterKey::generate()))
        .await
        .unwrap();
    let (acme, _) = store.create_account("acme").await.unwrap();
    store
        .upsert_connector(new_connector(
            &acme.id,
            "salesforceOauth2",
            "PgSecretValue0987",
        ))
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws('|', id, url, events, settings, encode(key_sealed, 'escape'), \
         encode(signing_sealed, 'escape')) FROM connectors",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(dump.len(), 1);
    assert!(!dump[0].contains("PgSecretValue0987"));
    assert!(!dump[0].contains("whsec_"));
}
