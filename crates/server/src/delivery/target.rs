//! A connector as one batch of deliveries sees it: its record, retry schedule, credential,
//! signer and lane, read fresh per batch.

use std::sync::Arc;

use axum::http::HeaderValue;
use hookwarden_core::{Credentials, RetrySchedule};
use hookwarden_store::ConnectorRecord;
use secrecy::ExposeSecret;

use super::lanes::Lane;
use super::signing::Signer;
use super::workers::Workers;
use super::TokenSource;
use crate::api::validate::{DeliverySettings, Ordering};

/// How a delivery to the connector authenticates.
pub(super) enum Auth {
    Basic(HeaderValue),
    Bearer,
    /// A notification endpoint: no credential (a signature, or nothing for Slack).
    Nothing,
    Unusable(String),
}

/// A connector as one batch sees it: read fresh per batch, so a status change or a new key is
/// seen at the next claim.
pub(super) struct Target {
    pub(super) record: ConnectorRecord,
    pub(super) schedule: RetrySchedule,
    pub(super) auth: Auth,
    pub(super) signer: Signer,
    pub(super) lane: Arc<Lane>,
}

impl<T: TokenSource> Workers<T> {
    /// The connector's lane on this node, its limits this node's share of the connector's:
    /// with n delivery nodes on the database each sends at most `max_per_second / n` and
    /// `ceil(max_concurrency / n)` at once, so together they hold to the connector's limits
    /// (the concurrency within n - 1 of it). A change of share or of settings resizes the lane
    /// in place (`Lane::resize`).
    fn lane(&self, record: &ConnectorRecord, settings: &DeliverySettings) -> Arc<Lane> {
        let (max, rate) = share(
            settings.max_concurrency,
            settings.max_per_second,
            self.hub.turns().nodes(),
        );
        let mut lanes = self.lanes.lock().expect("lanes lock");
        if let Some(lane) = lanes.get(&record.id) {
            let now = lane.limits();
            if now.max_concurrency != max || now.max_per_second != rate {
                lane.resize(max, rate);
            }
            return lane.clone();
        }
        let lane = Arc::new(Lane::new(max, rate, &self.opts));
        lanes.insert(record.id.clone(), lane.clone());
        lane
    }

    /// The connector as this batch sees it; also notes whether it orders per package.
    pub(super) fn target(&self, record: ConnectorRecord) -> Target {
        let settings: DeliverySettings =
            serde_json::from_value(record.settings.clone()).unwrap_or_default();
        {
            let mut ordered = self.ordered.lock().expect("ordered lock");
            if settings.ordering == Ordering::PerPackage {
                if !ordered.contains(&record.id) {
                    ordered.insert(record.id.clone());
                }
            } else if ordered.contains(&record.id) {
                ordered.remove(&record.id);
            }
        }
        let schedule = match &settings.retry {
            Some(r) => RetrySchedule::new(r.schedule_s.clone(), r.jitter),
            None => RetrySchedule::default(),
        };
        // The default callback (`DEFAULT_CALLBACK_NAME`) is the one connector with a Basic key.
        let auth = if let Credentials::Basic(key) = &record.credentials {
            match HeaderValue::from_str(&format!("Basic {}", key.expose_secret())) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    Auth::Basic(v)
                }
                Err(_) => Auth::Unusable(
                    "the default callback's key has characters an HTTP header cannot carry; set it again (POST /api/callback) with printable ASCII".to_owned(),
                ),
            }
        } else if record.credentials.notification_format().is_some() {
            Auth::Nothing
        } else {
            Auth::Bearer
        };
        Target {
            lane: self.lane(&record, &settings),
            signer: Signer::for_connector(&record),
            schedule,
            auth,
            record,
        }
    }
}

/// One node's share of a connector's limits among `nodes` nodes.
fn share(max_concurrency: u32, max_per_second: Option<f64>, nodes: usize) -> (usize, Option<f64>) {
    let nodes = nodes.max(1);
    let max = (max_concurrency.max(1) as usize).div_ceil(nodes);
    (max, max_per_second.map(|r| r / nodes as f64))
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn each_node_takes_its_share_of_a_connectors_limits() {
        assert_eq!(share(8, Some(200.0), 1), (8, Some(200.0)));
        assert_eq!(share(8, Some(200.0), 2), (4, Some(100.0)));
        assert_eq!(share(8, None, 3), (3, None));
        // Never below one at a time.
        assert_eq!(share(1, Some(1.0), 4), (1, Some(0.25)));
        assert_eq!(share(0, None, 0), (1, None));
    }
}
