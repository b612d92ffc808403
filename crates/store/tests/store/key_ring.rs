//! The master key ring: a database opens only with a ring that opens its secrets, a key file is
//! never silently replaced nor readable by others, values sealed before rings still open, and
//! re-sealing moves every secret under the first key. SQLite and PostgreSQL.

use hookwarden_core::AccountId;
use hookwarden_store::{
    testing, GrantedTokens, MasterKey, MasterKeyRing, MasterKeySource, OAuthState, Store,
    StoreError,
};
use secrecy::{ExposeSecret, SecretString};

use crate::new_connector;

fn ring(keys: &[&MasterKey]) -> MasterKeySource {
    MasterKeySource::Ring(MasterKeyRing::new(keys.iter().map(|k| (*k).clone()).collect()).unwrap())
}

/// Every kind of sealed value: a connector's key and signing secret, its previous signing
/// secret (after a rotation), its access and refresh tokens, a pending PKCE verifier.
async fn fill(store: &Store) -> AccountId {
    let (acme, _) = store.create_account("acme").await.unwrap();
    let (c, _) = store
        .upsert_connector(new_connector(&acme.id, "sf", "KeySecret123"))
        .await
        .unwrap();
    store.rotate_signing_secret(&acme.id, "sf").await.unwrap();
    let granted = GrantedTokens {
        credentials_version: c.credentials_version,
        access_token: Some(SecretString::from("access-tok".to_owned())),
        access_expires_at: Some(i64::MAX / 2),
        refresh_at: Some(i64::MAX / 2),
        refresh_token: Some(SecretString::from("refresh-tok".to_owned())),
        instance_url: Some("https://acme.my.salesforce.com".into()),
        scope: Some("api".into()),
        issued_at: Some(1_000),
        granted_at: chrono::Utc::now().timestamp_millis(),
    };
    store
        .save_granted_tokens(&c.id, None, &granted, "t")
        .await
        .unwrap();
    store
        .put_oauth_state(
            "state-1",
            &OAuthState {
                connector_id: c.id.clone(),
                account_id: acme.id.clone(),
                connector_name: "sf".into(),
                code_verifier: SecretString::from("v".repeat(64)),
                redirect_uri: "https://h.example/oauth/callback".into(),
                expires_at: chrono::Utc::now().timestamp_millis() + 600_000,
            },
        )
        .await
        .unwrap();
    acme.id
}

/// Every secret `fill` wrote opens with `store`'s ring.
async fn read_all(store: &Store, account: &AccountId) {
    let c = store.get_connector(account, "sf").await.unwrap().unwrap();
    assert!(c.signing_secret.expose_secret().starts_with("whsec_"));
    assert!(c.previous_signing_secret.is_some());
    let s = store.get_token_state(&c.id).await.unwrap().unwrap();
    assert_eq!(s.access_token.unwrap().expose_secret(), "access-tok");
    assert_eq!(s.refresh_token.unwrap().expose_secret(), "refresh-tok");
    let pending = store.take_oauth_state("state-1").await.unwrap().unwrap();
    assert_eq!(pending.code_verifier.expose_secret(), &"v".repeat(64));
}

/// Rewrite every sealed value as the store wrote it before rings: key id byte 1.
async fn make_legacy(url: &str) {
    const COLUMNS: &[(&str, &str, &str)] = &[
        ("connectors", "id", "key_sealed"),
        ("connectors", "id", "signing_sealed"),
        ("connectors", "id", "prev_signing_sealed"),
        ("token_state", "connector_id", "access_sealed"),
        ("token_state", "connector_id", "refresh_sealed"),
        ("oauth_states", "state_hash", "verifier_sealed"),
    ];
    macro_rules! rewrite {
        ($pool:expr) => {
            for (table, key, col) in COLUMNS {
                let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {key}, {col} FROM {table} WHERE {col} IS NOT NULL"
                )))
                .fetch_all(&$pool)
                .await
                .unwrap();
                assert!(!rows.is_empty(), "{table}.{col} has a value");
                for (id, mut sealed) in rows {
                    sealed[0] = 1;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET {col} = $1 WHERE {key} = $2"
                    )))
                    .bind(sealed)
                    .bind(id)
                    .execute(&$pool)
                    .await
                    .unwrap();
                }
            }
            $pool.close().await;
        };
    }
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        rewrite!(pool);
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        rewrite!(pool);
    }
}

#[tokio::test]
async fn a_database_refuses_to_open_with_a_ring_that_cannot_open_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let (old, other) = (MasterKey::generate(), MasterKey::generate());
        let store = Store::open(&url, ring(&[&old])).await.unwrap();
        let account = fill(&store).await;
        store.close().await;

        let e = Store::open(&url, ring(&[&other])).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, StoreError::MasterKey(_)), "{url}: {e:?}");
        assert!(
            text.contains(&format!(
                "sealed with master key id 0x{:02x}; the configured keys have ids 0x{:02x}",
                old.id(),
                other.id()
            )) && text.contains("HOOKWARDEN_MASTER_KEYS"),
            "{url}: {text}"
        );
        // With the old key anywhere in the ring it opens, and so does every secret.
        let store = Store::open(&url, ring(&[&other, &old])).await.unwrap();
        read_all(&store, &account).await;
        store.close().await;
    }
}

#[tokio::test]
async fn values_sealed_before_rings_still_open_and_are_resealed() {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let store = Store::open(&url, ring(&[&old])).await.unwrap();
        let account = fill(&store).await;
        store.close().await;
        make_legacy(&url).await;

        // The old key alone, as before rings: everything opens, and counts as to be re-sealed.
        let store = Store::open(&url, ring(&[&old])).await.unwrap();
        let dry = store.reseal_secrets(true).await.unwrap();
        assert_eq!(dry.resealed(), 6, "{url}: {dry:?}");
        store.close().await;

        // The new key first: the legacy values open with the old one, and move to the new.
        let store = Store::open(&url, ring(&[&new, &old])).await.unwrap();
        let report = store.reseal_secrets(false).await.unwrap();
        let counts: Vec<(&str, u64, u64, u64)> = report
            .tables
            .iter()
            .map(|t| (t.table, t.resealed, t.already_first, t.unopenable))
            .collect();
        assert_eq!(
            counts,
            [
                ("connectors", 3, 0, 0),
                ("token_state", 2, 0, 0),
                ("oauth_states", 1, 0, 0)
            ],
            "{url}"
        );
        assert!(report.unopenable.is_empty());
        let again = store.reseal_secrets(false).await.unwrap();
        assert_eq!(again.resealed(), 0, "{url}: {again:?}");
        assert_eq!(again.tables.iter().map(|t| t.already_first).sum::<u64>(), 6);
        store.close().await;

        // The old key can go.
        let store = Store::open(&url, ring(&[&new])).await.unwrap();
        read_all(&store, &account).await;
        store.close().await;
        let e = Store::open(&url, ring(&[&old])).await.unwrap_err();
        assert!(
            e.to_string().contains(&format!("0x{:02x}", new.id())),
            "{e}"
        );
    }
}

#[tokio::test]
async fn values_no_key_opens_are_listed_not_changed() {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let store = Store::open(&url, ring(&[&old])).await.unwrap();
        let account = fill(&store).await;
        store.close().await;
        // One access token damaged (its last byte): the check at open samples the connector's
        // values for this key id and passes; the rotation finds the damaged one.
        let sql = "UPDATE token_state SET access_sealed = $1";
        let c = {
            let s = Store::open(&url, ring(&[&old])).await.unwrap();
            let c = s.get_connector(&account, "sf").await.unwrap().unwrap();
            s.close().await;
            c
        };
        let damaged = |mut v: Vec<u8>| {
            let last = v.len() - 1;
            v[last] ^= 0xff;
            v
        };
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let v: Vec<u8> = sqlx::query_scalar("SELECT access_sealed FROM token_state")
                .fetch_one(&pool)
                .await
                .unwrap();
            sqlx::query(sql)
                .bind(damaged(v))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let v: Vec<u8> = sqlx::query_scalar("SELECT access_sealed FROM token_state")
                .fetch_one(&pool)
                .await
                .unwrap();
            sqlx::query(sql)
                .bind(damaged(v))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        let store = Store::open(&url, ring(&[&new, &old])).await.unwrap();
        let report = store.reseal_secrets(false).await.unwrap();
        assert_eq!(report.tables[1].table, "token_state");
        assert_eq!(
            (report.tables[1].resealed, report.tables[1].unopenable),
            (1, 1),
            "{url}: {report:?}"
        );
        assert_eq!(report.unopenable.len(), 1);
        let u = &report.unopenable[0];
        assert_eq!(
            (u.table, u.column, u.row.as_str(), u.key_id.clone()),
            (
                "token_state",
                "access_sealed",
                c.id.as_str(),
                format!("0x{:02x}", old.id())
            )
        );
        store.close().await;
    }
}

#[tokio::test]
async fn a_missing_key_file_is_created_only_for_a_database_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hw.db").display());
    let key_file = dir.path().join("hw.db.key");
    let store = Store::open(&url, MasterKeySource::FileBesideDatabase)
        .await
        .unwrap();
    assert!(key_file.exists(), "created for a new database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (acme, _) = store.create_account("acme").await.unwrap();
    store
        .upsert_connector(new_connector(&acme.id, "sf", "KeySecret123"))
        .await
        .unwrap();
    store.close().await;

    std::fs::remove_file(&key_file).unwrap();
    let e = Store::open(&url, MasterKeySource::FileBesideDatabase)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("the key file {} is missing", key_file.display()))
            && e.contains("No new key was created"),
        "{e}"
    );
    assert!(
        !key_file.exists(),
        "no new key file while sealed rows exist"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_key_file_others_may_read_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hw.db").display());
    let key_file = dir.path().join("hw.db.key");
    Store::open(&url, MasterKeySource::FileBesideDatabase)
        .await
        .unwrap()
        .close()
        .await;
    for mode in [0o644, 0o620, 0o604] {
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = Store::open(&url, MasterKeySource::FileBesideDatabase)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("(mode {mode:03o})"))
                && e.contains(&format!("chmod 600 {}", key_file.display())),
            "{e}"
        );
    }
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    Store::open(&url, MasterKeySource::FileBesideDatabase)
        .await
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn a_postgres_url_with_a_password_never_shows_it() {
    // The test server (trust authentication) refuses a database that does not exist at once;
    // without one, a port nothing listens on (sqlx retries it for 10 s).
    let host = std::env::var("HOOKWARDEN_TEST_PG_URL")
        .ok()
        .and_then(|u| {
            let rest = u.split_once("://")?.1;
            let authority = rest.split('/').next()?;
            Some(authority.rsplit('@').next()?.to_owned())
        })
        .unwrap_or_else(|| "127.0.0.1:1".to_owned());
    for url in [
        format!("postgres://postgres:Sup3rPassw0rd@{host}/hw_no_such_database"),
        format!("postgres://postgres@{host}/hw_no_such_database?password=Sup3rPassw0rd"),
    ] {
        let e = Store::open(&url, ring(&[&MasterKey::generate()]))
            .await
            .unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("Sup3rPassw0rd"), "{text}");
        assert!(text.contains("***"), "{text}");
    }
    // A URL that does not parse, password and all.
    let e = Store::open(
        "postgres://app:Sup3rPassw0rd@[bad/hw",
        ring(&[&MasterKey::generate()]),
    )
    .await
    .unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains("Sup3rPassw0rd") && text.contains("***"),
        "{text}"
    );
}
