//! The hookwarden server: the management API and the delivery workers over one `Store`, both
//! or one of them by the node's `Role`. `spawn` wires it from a config and an optional
//! already-bound listener, so tests start the whole server on port 0 in-process.

pub mod api;
pub mod auth;
pub mod caps;
pub mod config;
mod console;
pub mod delivery;
pub mod error;
pub mod keepalive;
pub mod limits;
pub mod metrics;
pub mod review;
pub mod runtime;
pub mod sqlite_lock;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use hookwarden_core::{Clock, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::{Config, Governance, Limits, MetricsAccess, Overrides, Role, Settings};
pub use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookwarden",
        description = "Delivers event callbacks to OAuth 2.0 protected endpoints and owns the credentials that takes. \
                       Every /api/** request carries `Authorization: Basic <api_key>` with a key that has the scope the operation names \
                       (its `security`): `ingest` posts events, `read` reads, `admin` does everything."
    ),
    tags(
        (name = "connectors", description = "OAuth 2.0 destinations (OneSpan Sign's callback connector API)"),
        (name = "default callback", description = "The account's Basic-key callback"),
        (name = "tokens", description = "Test, revoke and re-authenticate a connector; its grant history"),
        (name = "keys", description = "The account's API keys and their scopes: list, create, revoke"),
        (name = "notifications", description = "Operational webhooks: told when a connector breaks or recovers"),
        (name = "operations", description = "Health, metrics, this document")
    )
)]
struct ApiDoc;

/// The API's routes and their OpenAPI document, both from the handlers' annotations and each
/// route's declared scope (`auth::needs`).
fn api_and_document() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::connectors::router())
        .merge(api::default_callback::router())
        .merge(api::tokens::router())
        .merge(api::events::router())
        .merge(api::deliveries::router())
        .merge(api::keys::router())
        .merge(api::notifications::router())
        .merge(api::review::router())
        .routes(routes!(api::health::healthz))
        .routes(routes!(metrics::metrics_with_token))
        .split_for_parts();
    auth::add_security_scheme(&mut openapi);
    add_metrics_security_scheme(&mut openapi);
    (api, openapi)
}

/// The bearer token `/metrics` takes on the API's listener.
fn add_metrics_security_scheme(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
    let mut bearer = Http::new(HttpAuthScheme::Bearer);
    bearer.description = Some(
        "`Authorization: Bearer <metrics_token>`, the operator's token from the server's \
         configuration (HOOKWARDEN_METRICS_TOKEN); `metrics_listen` serves /metrics without one."
            .to_owned(),
    );
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(metrics::SECURITY_SCHEME, SecurityScheme::Http(bearer));
}

/// The OpenAPI document `GET /api/openapi.json` serves (`hookwarden openapi` prints it).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_and_document().1
}

/// The router of this node's role: the API, the console and its OpenAPI document at
/// `/api/openapi.json` (`api`, `all`), or `/healthz` and `/metrics` alone (`worker`).
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let app = if state.settings.role.serves_api() {
        api_router()
    } else {
        worker_router(state.settings.role)
    };
    limits::with_overload_limits(app, &state.settings.limits)
    .layer(DefaultBodyLimit::max(max_body))
    .layer(
        tower_http::trace::TraceLayer::new_for_http().make_span_with(
            // The path only: a query string can hold an OAuth code (`/oauth/callback?code=`).
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
            },
        ),
    )
    .with_state(state)
}

fn api_router() -> Router<AppState> {
    let (api, openapi) = api_and_document();
    let openapi_json = serde_json::to_value(&openapi).expect("the OpenAPI document serialises");
    api.route(
        "/api/openapi.json",
        get(move || {
            let doc = openapi_json.clone();
            async move { Json(doc) }
        }),
    )
    .merge(console::router())
    .fallback(api::not_found)
    .method_not_allowed_fallback(api::method_not_allowed)
}

/// A worker node answers what a load balancer and Prometheus ask, and sends everyone else
/// to an API node: clients with `503 wrong_role` in JSON, a browser on the console with a page
/// that says the same.
fn worker_router(role: Role) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(api::health::healthz))
        .route("/metrics", get(metrics::metrics_with_token))
        .fallback(move |uri: axum::http::Uri| async move {
            let path = uri.path();
            if path == "/console" || path.starts_with("/console/") {
                console::wrong_role_page(role)
            } else {
                axum::response::IntoResponse::into_response(api::wrong_role(role))
            }
        })
        .method_not_allowed_fallback(api::method_not_allowed)
}

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `metrics_listen` serves `/metrics` without a key, when it is set.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting, finish in-flight requests, and wait.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Serve until `signal` completes, then shut down gracefully (in-flight requests and
    /// deliveries finish); returns early if the server stops by itself.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::select! {
            joined = &mut self.task => match joined {
                Ok(result) => result,
                Err(e) => Err(std::io::Error::other(e)),
            },
            () = signal => self.shutdown().await,
        }
    }
}

/// Open the store, migrate, bind (unless a listener is given) and serve in the background.
pub async fn spawn(
    settings: Settings,
    listener: Option<TcpListener>,
) -> anyhow::Result<RunningServer> {
    spawn_with_clock(settings, listener, Arc::new(SystemClock)).await
}

/// `spawn` on another clock (tests: an `OffsetClock` they move forward, see `AppState::clock`).
pub async fn spawn_with_clock(
    settings: Settings,
    listener: Option<TcpListener>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<RunningServer> {
    // A role the database cannot serve is refused before anything is locked or opened.
    settings.role.check_database(&settings.database)?;
    // Before the database is opened: a second process must not migrate it or release the
    // leases of the first one's deliveries in flight.
    let serve_lock = sqlite_lock::take(&settings.database, settings.listen)?;
    let store = hookwarden_store::Store::open_with(
        &settings.database,
        settings.master_key.clone(),
        settings.store,
    )
    .await
    .map_err(|e| anyhow::anyhow!("database {}: {e}", redact_url(&settings.database)))?;
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?,
    };
    let addr = listener.local_addr()?;
    let metrics_listener = match settings.metrics.listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {at} (metrics_listen): {e}"))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    metrics::handle();
    // The bound address, not a requested port 0, is what the OAuth redirect must name.
    let mut settings = settings;
    settings.listen = addr;
    let state = AppState::try_with_clock(store, settings, clock)?;
    // An api node delivers nothing: its ingest commits, then NOTIFYs the worker nodes.
    let (engine, keep_alive) = if state.settings.role.delivers() {
        (
            Some(delivery::start(&state, state.tokens.clone()).await?),
            Some(keepalive::spawn(state.clone())),
        )
    } else {
        (None, None)
    };
    let app = router(state.clone());
    let metrics_task = metrics_listener.map(|listener| {
        let app = metrics::listener_router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await })
    });
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // The peer's address is what failed authentications are counted by.
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        })
        .await;
        if let Some(metrics_task) = metrics_task {
            metrics_task.abort();
        }
        // In-flight deliveries finish (or are handed back) before the process lets go.
        if let Some(keep_alive) = keep_alive {
            keep_alive.shutdown().await;
        }
        if let Some(engine) = engine {
            engine.shutdown().await;
        }
        // Only now may another `serve` take the SQLite file.
        drop(serve_lock);
        served
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        state,
        shutdown: Some(tx),
        task,
    })
}

/// A database URL for messages: the password, if any, replaced (one helper, the store's).
pub use hookwarden_store::redact_url;
