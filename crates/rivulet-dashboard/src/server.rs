//! The HTTP side: the page and its assets (embedded in the binary), the JSON API, the
//! Server-Sent Events stream the page listens to, and `/metrics`.
//!
//! Every response sets a Content-Security-Policy that only allows this origin, so the page
//! cannot load anything from elsewhere even by mistake: it works offline.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::state::{ResultsQuery, Shared};

/// How often the page gets a snapshot.
pub const PUSH_EVERY: Duration = Duration::from_secs(1);
/// Most windows per key a request may ask for is the store's own limit; most keys:
const MAX_KEYS_PER_REQUEST: usize = 100;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON_SVG: &str = include_str!("../assets/favicon.svg");
const LOGIN_HTML: &str = include_str!("../assets/login.html");

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";
/// The token prompt's policy: the same, except that its form may post here.
const LOGIN_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                         script-src 'none'; connect-src 'none'; base-uri 'none'; \
                         form-action 'self'; frame-ancestors 'none'";

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

pub(crate) fn router(shared: Arc<Shared>, cancel: CancellationToken) -> Router {
    let app = App { shared, cancel };
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route(
            "/assets/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route("/favicon.svg", get(|| asset(FAVICON_SVG, "image/svg+xml")))
        .route("/api", get(api_index))
        .route("/api/health", get(health))
        .route("/api/queries", get(queries))
        .route("/api/queries/{name}", get(query))
        .route("/api/queries/{name}/progress", get(progress))
        .route("/api/queries/{name}/results", get(results))
        .route("/api/topics", get(topics))
        .route("/api/groups", get(groups))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .route("/login", get(login_page).post(login))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Paths anyone may load: the token prompt and what it shows.
fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/assets/app.css" | "/favicon.svg")
}

/// The access check in front of every route (see `access.rs`).
async fn guard(
    State(app): State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let access = &app.shared.access;
    let path = req.uri().path();
    if !access.required() || is_public(path) || access.allows(req.headers()) {
        return next.run(req).await;
    }
    if path == "/api/health" {
        // Health checks (Docker's) get the status only.
        let st = app.shared.state.lock();
        let status = serde_json::to_value(app.shared.health(&st))
            .ok()
            .and_then(|v| v.get("status").cloned())
            .unwrap_or(serde_json::Value::Null);
        return json_response(json!({ "status": status }));
    }
    if path.starts_with("/api") || path == "/metrics" {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "authentication required: send Authorization: Bearer <dashboard token>".to_string(),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rivulet\""),
        );
        return r;
    }
    login_response(StatusCode::UNAUTHORIZED, "")
}

fn login_response(status: StatusCode, message: &str) -> Response {
    let body = LOGIN_HTML.replace("<!--MESSAGE-->", message);
    let mut r = with_headers(body.into_response(), "text/html; charset=utf-8");
    // The prompt's form posts to this origin.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(LOGIN_CSP),
    );
    *r.status_mut() = status;
    r
}

async fn login_page() -> Response {
    login_response(StatusCode::OK, "")
}

/// The prompt's form: a right token sets the session cookie and goes to the page; a wrong one
/// is answered after a pause, with the prompt again.
async fn login(
    State(app): State<App>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let access = &app.shared.access;
    let given = form.get("token").map(String::as_str).unwrap_or_default();
    match access.session() {
        Some(session) if access.token_matches(given) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
            let secure = if app.shared.tls.is_some() {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{}={session}; Path=/; HttpOnly; SameSite=Strict{secure}",
                crate::access::COOKIE
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        None => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
            r
        }
        Some(_) => {
            tracing::warn!("dashboard: wrong token at the sign-in prompt");
            tokio::time::sleep(Duration::from_millis(500)).await;
            login_response(
                StatusCode::UNAUTHORIZED,
                "<p class=\"error\" id=\"login-error\">That token is not right.</p>",
            )
        }
    }
}

fn with_headers(mut r: Response, content_type: &str) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn index() -> Response {
    with_headers(INDEX_HTML.into_response(), "text/html; charset=utf-8")
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    with_headers(body.into_response(), content_type)
}

fn json_response(v: impl serde::Serialize) -> Response {
    with_headers(Json(v).into_response(), "application/json")
}

fn error(status: StatusCode, message: String) -> Response {
    let mut r = json_response(json!({ "error": message }));
    *r.status_mut() = status;
    r
}

/// A refused request: its status and why, answered as `{"error": ...}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such page or endpoint".to_string(),
    )
}

async fn api_index() -> Response {
    json_response(json!({
        "endpoints": [
            "/api/health",
            "/api/queries",
            "/api/queries/{name}",
            "/api/queries/{name}/progress?limit=N",
            "/api/queries/{name}/results?keys=a,b&top=N&windows=N",
            "/api/topics",
            "/api/groups",
            "/api/events (Server-Sent Events; same parameters as results)",
            "/metrics",
        ]
    }))
}

async fn health(State(app): State<App>) -> Response {
    let st = app.shared.state.lock();
    json_response(app.shared.health(&st))
}

async fn queries(State(app): State<App>) -> Response {
    let st = app.shared.state.lock();
    json_response(st.query().into_iter().collect::<Vec<_>>())
}

/// Checks `name` is the running query.
fn known_query(app: &App, name: &str) -> Result<(), ApiError> {
    let st = app.shared.state.lock();
    match st.query() {
        Some(q) if q.name == name => Ok(()),
        _ => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no query named `{name}`"),
        )),
    }
}

async fn query(State(app): State<App>, Path(name): Path<String>) -> Response {
    if let Err(e) = known_query(&app, &name) {
        return e.into_response();
    }
    let st = app.shared.state.lock();
    json_response(st.query())
}

fn parse_usize(
    params: &HashMap<String, String>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("`{name}` must be a positive integer, got `{v}`"),
            )),
        },
    }
}

fn results_query(
    params: &HashMap<String, String>,
    max_windows: usize,
) -> Result<ResultsQuery, ApiError> {
    let d = ResultsQuery::default();
    let keys = params.get("keys").map(|k| {
        k.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .take(MAX_KEYS_PER_REQUEST)
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    Ok(ResultsQuery {
        // `keys=` (empty) means the default selection, as no parameter does.
        keys: keys.filter(|k| !k.is_empty()),
        top: parse_usize(params, "top", d.top, MAX_KEYS_PER_REQUEST)?,
        windows: parse_usize(params, "windows", d.windows.min(max_windows), max_windows)?,
    })
}

async fn progress(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = known_query(&app, &name) {
        return e.into_response();
    }
    let limit = match parse_usize(&params, "limit", 100, crate::state::PROGRESS_HISTORY) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let st = app.shared.state.lock();
    json_response(st.progress(limit))
}

async fn results(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = known_query(&app, &name) {
        return e.into_response();
    }
    let q = match results_query(&params, app.shared.max_windows) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let st = app.shared.state.lock();
    json_response(st.results(&q))
}

async fn topics(State(app): State<App>) -> Response {
    let st = app.shared.state.lock();
    let c = st.cluster();
    json_response(json!({
        "brokers": c.brokers,
        "refreshed_ms": c.refreshed_ms,
        "error": c.error,
        "topics": c.topics,
    }))
}

async fn groups(State(app): State<App>) -> Response {
    let st = app.shared.state.lock();
    let c = st.cluster();
    json_response(json!({
        "brokers": c.brokers,
        "refreshed_ms": c.refreshed_ms,
        "error": c.error,
        "groups": c.groups,
    }))
}

async fn metrics(State(app): State<App>) -> Response {
    let text = {
        let st = app.shared.state.lock();
        let h = app.shared.health(&st);
        crate::metrics::render(&h, st.cluster())
    };
    with_headers(text.into_response(), crate::metrics::CONTENT_TYPE)
}

/// The page's live feed: a `snapshot` event at once (with the throughput history) and then
/// every [`PUSH_EVERY`], until the client goes away or the dashboard stops. `retry: 1000`
/// makes the browser reconnect a second after the stream breaks (a restart).
async fn events(State(app): State<App>, Query(params): Query<HashMap<String, String>>) -> Response {
    let q = match results_query(&params, app.shared.max_windows) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let sse = Sse::new(snapshot_stream(app, q)).keep_alive(KeepAlive::default());
    let mut r = sse.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn snapshot_stream(app: App, q: ResultsQuery) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut tick = tokio::time::interval(PUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold(
        (app, q, tick, true),
        |(app, q, mut tick, first)| async move {
            tokio::select! {
                _ = app.cancel.cancelled() => return None,
                _ = tick.tick() => {}
            }
            let snap = app.shared.snapshot(&q, first);
            let event = match serde_json::to_string(&snap) {
                Ok(data) => Event::default().event("snapshot").data(data),
                Err(e) => Event::default().event("error").data(e.to_string()),
            };
            let event = if first {
                event.retry(Duration::from_millis(1000))
            } else {
                event
            };
            Some((Ok(event), (app, q, tick, false)))
        },
    )
}
