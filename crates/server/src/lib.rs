//! Pipewright's HTTP server: GitLab API v4 under `/api/v4` (the runner API included), git
//! smart HTTP at `/{namespace}/{project}.git`, the web UI at GitLab's page URLs, and health
//! endpoints.
//! It owns request parsing, authentication, permissions and GitLab's response shapes; it never
//! writes SQL (that is the store's) and never touches a repository's files directly (that is
//! the git crate's). Modules are by feature, in layers that import downwards only: handlers
//! (`api/`, `web/`, `git_http.rs`, …) over the domain (`domain/`, which decides things) over
//! the foundation (state, errors, parameters, auth); `error.rs` is the one place errors become
//! HTTP.

pub mod api;
pub mod auth;
pub mod basic_auth;
pub mod bootstrap;
pub mod client_address;
pub mod config_cache;
pub mod domain;
pub mod entities;
pub mod error;
pub mod git_http;
pub mod health;
pub mod maintenance;
pub mod malformed;
pub mod metrics;
pub mod pagination;
pub mod params;
pub mod permissions;
pub mod project_cache;
pub mod rate_limit;
pub mod routes;
pub mod sealing;
pub mod secrets;
pub mod sign_in;
pub mod state;
pub mod validate;
pub mod web;
pub mod webhook_delivery;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use pipewright_git::Repositories;
use pipewright_store::Store;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use state::{AppState, ServerConfig};

/// How long another replica's change to hooks or variables may take to be seen here.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Builds the application state: the store, the repositories under `data_dir/repositories`,
/// and the server key (created on first start).
pub fn app_state(config: ServerConfig, store: Arc<dyn Store>) -> anyhow::Result<AppState> {
    let repos = Repositories::new(config.data_dir.join("repositories"));
    let sealer = sealing::Sealer::load_or_create(&config.secret_key_file)?;
    let rate_limiter = rate_limit::RateLimiter::new(config.pipeline_limit_per_project_user_sha);
    Ok(AppState {
        store,
        repos: Arc::new(repos),
        config: Arc::new(config),
        sealer: Arc::new(sealer),
        config_cache: Arc::new(config_cache::ConfigCache::default()),
        rate_limiter: Arc::new(rate_limiter),
        job_available: Arc::new(tokio::sync::Notify::new()),
        push_processing: Arc::new(tokio::sync::Mutex::new(())),
        hooks_cache: Arc::new(project_cache::ProjectCache::new(CACHE_TTL)),
        variables_cache: Arc::new(project_cache::ProjectCache::new(CACHE_TTL)),
        payload_cache: Arc::new(project_cache::ProjectCache::new(CACHE_TTL)),
        ci_config_path_cache: Arc::new(project_cache::ProjectCache::new(CACHE_TTL)),
        metrics: Arc::new(metrics::Metrics::new()),
    })
}

/// Every route the server answers, as data (`routes.rs`): the router is built from it and the
/// authorization matrix test iterates it.
pub fn route_table(config: &ServerConfig) -> Vec<routes::Route> {
    let git_limit = config.max_git_body_bytes;
    let mut table = health::routes();
    table.extend(
        git_http::routes()
            .into_iter()
            .map(|route| route.body_limit(git_limit)),
    );
    table.extend(api::routes(config.max_artifacts_bytes));
    table.extend(web::routes());
    table
}

/// The router: exactly the route table, and the fallbacks.
pub fn router(state: AppState) -> Router {
    routes::build(route_table(&state.config))
        // Unknown API paths answer as Grape does; anything else is the web UI's 404 page.
        .fallback(|uri: axum::http::Uri| async move {
            use axum::response::IntoResponse;
            if uri.path().starts_with("/api/") {
                api::no_route().into_response()
            } else {
                web::error::WebError::NotFound.into_response()
            }
        })
        // Counted by route template: a layer on the router runs after routing (`MatchedPath`).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            health::count_request,
        ))
        // The client's address (behind trusted proxies, the forwarded one), for every handler.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(state.config.trusted_proxies.clone()),
            client_address::resolve,
        ))
        // GitLab's malformed-strings middleware: NUL bytes and invalid UTF-8 never get in.
        .layer(axum::middleware::from_fn(malformed::refuse_malformed))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                // Only method and path: query strings may carry tokens.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let maintenance = maintenance::spawn(state.clone());
    let watcher = state.store.watch_jobs(state.job_available.clone());
    // The path is normalised before the router sees it (`routes::normalize_path`).
    let app = tower::Layer::layer(
        &tower::util::MapRequestLayer::new(routes::normalize_path::<axum::body::Body>),
        router(state),
    );
    // Connection info gives `client_address` the TCP peer.
    let app = axum::ServiceExt::<axum::http::Request<axum::body::Body>>::into_make_service_with_connect_info::<std::net::SocketAddr>(app);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    maintenance.abort();
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    result
}
