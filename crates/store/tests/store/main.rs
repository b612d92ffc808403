//! The Store's contract, run on SQLite always and on PostgreSQL when HOOKWARDEN_TEST_PG_URL is set.
//!
//! One test binary in five modules: accounts and their connectors, secrets at rest, opening and
//! migrating a database (and the wake-ups between nodes sharing one), the delivery queue, and
//! retention.

mod accounts_and_connectors;
mod databases;
mod key_ring;
mod queue;
mod retention;
mod secrets;

use hookwarden_core::Credentials;
use hookwarden_store::{testing, MasterKey, MasterKeySource, NewConnector, Store};
use secrecy::SecretString;

fn new_connector(account: &hookwarden_core::AccountId, name: &str, secret: &str) -> NewConnector {
    NewConnector {
        account_id: account.clone(),
        name: name.to_owned(),
        url: "https://acme.my.salesforce.com/services/apexrest/OSS/callback".into(),
        events: vec!["PACKAGE_COMPLETE".into()],
        origins: vec!["OSS".into()],
        owner: None,
        refresh_token_idle_days: None,
        settings: serde_json::json!({}),
        warnings: vec![],
        credentials: Credentials::from_storage(
            "salesforce",
            Some("client_credentials"),
            SecretString::from(format!(
                r#"{{"host":"acme.my.salesforce.com","client_id":"cid","client_secret":"{secret}"}}"#
            )),
        )
        .unwrap(),
    }
}

async fn each_database(test: impl AsyncFn(Store, &str)) {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let key = MasterKeySource::Given(MasterKey::generate());
        let store = Store::open(&url, key).await.unwrap();
        test(store.clone(), &url).await;
        store.close().await;
    }
}
