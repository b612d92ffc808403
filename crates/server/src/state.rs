use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hookwarden_store::{Account, Store};

use crate::config::Settings;
use crate::error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    /// API keys seen valid, so a busy producer does not cost a database read per request.
    /// Keys cannot be revoked yet, so a positive answer never goes stale.
    api_keys: Arc<RwLock<HashMap<String, Account>>>,
}

impl AppState {
    pub fn new(store: Store, settings: Settings) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
            api_keys: Arc::default(),
        }
    }

    pub async fn account_for_api_key(&self, api_key: &str) -> Result<Option<Account>, ApiError> {
        if let Some(account) = self
            .api_keys
            .read()
            .expect("api key cache lock poisoned")
            .get(api_key)
        {
            return Ok(Some(account.clone()));
        }
        let found = self.store.account_by_api_key(api_key).await?;
        if let Some(account) = &found {
            self.api_keys
                .write()
                .expect("api key cache lock poisoned")
                .insert(api_key.to_owned(), account.clone());
        }
        Ok(found)
    }
}
