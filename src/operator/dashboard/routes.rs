//! The dashboard's HTTP surface: HTML pages, their JSON twins (what the page script polls),
//! the static script and style, and the actions (POST, behind [`auth::check_action`]).

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::operator::runtime::{ObjectId, Runtime};
use crate::queue::dead_letter;
use crate::queue::jobs::{CancelOutcome, cancel_job};

use super::auth::{self, RequestFacts};
use super::page::Page;
use super::{DashboardOptions, RuntimeSlot, job, overview, queue, schedules};

struct AppState {
    runtime: RuntimeSlot,
    options: DashboardOptions,
}

impl AppState {
    /// The runtime (`None` on a standby replica: see [`standby`]).
    fn runtime(&self) -> Option<Runtime> {
        self.runtime.borrow().clone()
    }
}

/// What a standby replica shows in place of every page.
fn standby() -> (StatusCode, Page) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Page {
            title: "Standby".into(),
            notice: Some(
                "This operator replica is a standby: the leader serves the queues and their dashboard.".into(),
            ),
            ..Page::default()
        },
    )
}

type Shared = State<Arc<AppState>>;

/// Binds `addr` (port 0 picks a free one) and returns the bound address and the server future.
pub async fn serve(
    addr: SocketAddr,
    runtime: RuntimeSlot,
    options: DashboardOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let app = router(Arc::new(AppState { runtime, options }));
    crate::operator::http::bind_and_serve(addr, app, shutdown).await
}

fn router(state: Arc<AppState>) -> Router {
    let q = "/queues/{namespace}/{name}";
    Router::new()
        .route("/", get(overview_html))
        .route("/api/overview", get(overview_json))
        .route(q, get(queue_html))
        .route(&format!("/api{q}"), get(queue_json))
        .route("/jobs", get(job_html))
        .route("/api/jobs", get(job_json))
        .route("/schedules", get(schedules_html))
        .route("/api/schedules", get(schedules_json))
        .route("/static/app.js", get(script))
        .route("/static/style.css", get(style))
        // Browsers ask for it on every site; there is none.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            &format!("/actions{q}/dead-letters/replay"),
            post(replay_dead_letters),
        )
        .route(
            &format!("/actions{q}/dead-letters/purge"),
            post(purge_dead_letters),
        )
        .route(&format!("/actions{q}/jobs/{{id}}/cancel"), post(cancel))
        .route(&format!("/actions{q}/jobs/{{id}}/retry"), post(retry))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
}

/// No framing, no sniffing, no outside resources: the pages load only their own script.
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[derive(Template)]
#[template(path = "dashboard/page.html")]
struct PageHtml<'a> {
    page: &'a Page,
    actions: bool,
    /// The navigation entry of this page (`overview`, `schedules`, or empty).
    section: &'a str,
    /// The job id searched for, shown again in the search box.
    search: &'a str,
}

fn html(
    state: &AppState,
    page: &Page,
    section: &str,
    search: &str,
    status: StatusCode,
) -> Response {
    let tmpl = PageHtml {
        page,
        actions: state.options.actions_token.is_some(),
        section,
        search,
    };
    match tmpl.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the page: {e}"),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct NamespaceQuery {
    namespace: Option<String>,
}

impl NamespaceQuery {
    fn get(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|n| !n.is_empty())
    }
}

#[derive(Deserialize)]
struct JobQuery {
    id: Option<String>,
}

fn overview_page(s: &AppState, q: &NamespaceQuery) -> (StatusCode, Page) {
    match s.runtime() {
        Some(rt) => (StatusCode::OK, overview::overview(&rt, q.get())),
        None => standby(),
    }
}

async fn queue_page(s: &AppState, namespace: String, name: String) -> (StatusCode, Page) {
    let Some(rt) = s.runtime() else {
        return standby();
    };
    let id = ObjectId::new(namespace, name);
    let actions = s.options.actions_token.is_some();
    match queue::queue_page(&rt, &id, actions).await {
        Some(page) => (StatusCode::OK, page),
        None => (
            StatusCode::NOT_FOUND,
            Page {
                title: format!("Queue {id}"),
                notice: Some(format!("The operator serves no JobQueue {id}.")),
                ..Page::default()
            },
        ),
    }
}

async fn job_page(s: &AppState, id: Option<&str>) -> (StatusCode, Page) {
    let Some(rt) = s.runtime() else {
        return standby();
    };
    let page = match id.map(str::trim).filter(|i| !i.is_empty()) {
        Some(id) => job::job_page(&rt, id, s.options.actions_token.is_some()).await,
        None => Page {
            title: "Find a job".into(),
            notice: Some("Type a job id in the search box.".into()),
            ..Page::default()
        },
    };
    (StatusCode::OK, page)
}

async fn schedules_page(s: &AppState) -> (StatusCode, Page) {
    match s.runtime() {
        Some(rt) => (StatusCode::OK, schedules::schedules_page(&rt).await),
        None => standby(),
    }
}

fn json((status, page): (StatusCode, Page)) -> Response {
    (status, Json(page)).into_response()
}

async fn overview_html(State(s): Shared, Query(q): Query<NamespaceQuery>) -> Response {
    let (status, page) = overview_page(&s, &q);
    html(&s, &page, "overview", "", status)
}

async fn overview_json(State(s): Shared, Query(q): Query<NamespaceQuery>) -> Response {
    json(overview_page(&s, &q))
}

async fn queue_html(State(s): Shared, Path((ns, name)): Path<(String, String)>) -> Response {
    let (status, page) = queue_page(&s, ns, name).await;
    html(&s, &page, "", "", status)
}

async fn queue_json(State(s): Shared, Path((ns, name)): Path<(String, String)>) -> Response {
    json(queue_page(&s, ns, name).await)
}

async fn job_html(State(s): Shared, Query(q): Query<JobQuery>) -> Response {
    let (status, page) = job_page(&s, q.id.as_deref()).await;
    html(&s, &page, "", q.id.as_deref().unwrap_or(""), status)
}

async fn job_json(State(s): Shared, Query(q): Query<JobQuery>) -> Response {
    json(job_page(&s, q.id.as_deref()).await)
}

async fn schedules_html(State(s): Shared) -> Response {
    let (status, page) = schedules_page(&s).await;
    html(&s, &page, "schedules", "", status)
}

async fn schedules_json(State(s): Shared) -> Response {
    json(schedules_page(&s).await)
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../../templates/dashboard/app.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../../templates/dashboard/style.css"),
    )
}

/// The answer to an action: a status and one sentence.
fn said(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "message": message.into() });
    (status, Json(body)).into_response()
}

/// The refusal of an action request, unless actions are on, it comes from the dashboard's own
/// origin and carries the token.
fn refusal(s: &AppState, headers: &HeaderMap) -> Option<Response> {
    let h = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let facts = RequestFacts {
        host: h(header::HOST),
        origin: h(header::ORIGIN),
        fetch_site: headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        authorization: h(header::AUTHORIZATION),
    };
    let refused = auth::check_action(s.options.actions_token.as_deref(), facts).err()?;
    let mut r = said(refused.status(), refused.to_string());
    if refused.status() == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    Some(r)
}

/// For an action request that is allowed (see [`refusal`]): the served queue
/// `namespace/name` and a connection to its Redis.
async fn target(
    s: &AppState,
    headers: &HeaderMap,
    namespace: String,
    name: String,
) -> Result<
    (
        Arc<crate::operator::runtime::QueueEntry>,
        crate::queue::RedisConn,
    ),
    Box<Response>,
> {
    if let Some(r) = refusal(s, headers) {
        return Err(Box::new(r));
    }
    let Some(runtime) = s.runtime() else {
        let (status, page) = standby();
        return Err(Box::new(said(status, page.notice.unwrap_or_default())));
    };
    let id = ObjectId::new(namespace, name);
    let entry = runtime.queue_entry(&id).ok_or_else(|| {
        Box::new(said(
            StatusCode::NOT_FOUND,
            format!("no JobQueue {id} is served"),
        ))
    })?;
    let conn = runtime
        .pool()
        .get(&entry.redis_url)
        .await
        .map_err(|e| Box::new(said(StatusCode::BAD_GATEWAY, e.to_string())))?;
    Ok((entry, conn))
}

#[derive(Deserialize)]
struct EntryQuery {
    entry: Option<String>,
}

async fn replay_dead_letters(
    State(s): Shared,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<EntryQuery>,
) -> Response {
    let (entry, mut conn) = match target(&s, &headers, ns, name).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let ids: Vec<String> = q.entry.into_iter().collect();
    match dead_letter::replay(&mut conn, &entry.config, &ids, 100).await {
        Ok(done) => {
            tracing::info!(queue = %entry.id, replayed = done.entry_ids.len(), "dashboard: dead letters replayed");
            said(
                StatusCode::OK,
                format!(
                    "replayed {} dead letters into {}",
                    done.entry_ids.len(),
                    entry.id
                ),
            )
        }
        Err(e) => said(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn purge_dead_letters(
    State(s): Shared,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let (entry, mut conn) = match target(&s, &headers, ns, name).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match dead_letter::purge(&mut conn, &entry.config).await {
        Ok(n) => {
            tracing::info!(queue = %entry.id, purged = n, "dashboard: dead letters purged");
            said(
                StatusCode::OK,
                format!("purged {n} dead letters of {}", entry.id),
            )
        }
        Err(e) => said(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn cancel(
    State(s): Shared,
    headers: HeaderMap,
    Path((ns, name, id)): Path<(String, String, String)>,
) -> Response {
    let (entry, mut conn) = match target(&s, &headers, ns, name).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let keys = &entry.config.keys;
    match cancel_job(&mut conn, keys, &entry.config.group, &id).await {
        Ok(CancelOutcome::Cancelled) => said(StatusCode::OK, format!("job {id} cancelled")),
        Ok(CancelOutcome::Requested) => said(
            StatusCode::ACCEPTED,
            format!("job {id} is running: its worker was asked to stop"),
        ),
        Ok(CancelOutcome::AlreadyFinal(state)) => said(
            StatusCode::CONFLICT,
            format!("job {id} has already ended ({state})"),
        ),
        Ok(CancelOutcome::Missing) => said(StatusCode::NOT_FOUND, format!("no record of job {id}")),
        Err(e) => said(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// Retries a dead job: its dead letters go back into the queue.
async fn retry(
    State(s): Shared,
    headers: HeaderMap,
    Path((ns, name, id)): Path<(String, String, String)>,
) -> Response {
    let (entry, mut conn) = match target(&s, &headers, ns, name).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let letters = match dead_letter::list(&mut conn, &entry.config, usize::MAX >> 1).await {
        Ok(l) => l,
        Err(e) => return said(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let ids: Vec<String> = letters
        .into_iter()
        .filter(|d| d.get("id") == Some(id.as_str()))
        .map(|d| d.dead_id)
        .collect();
    if ids.is_empty() {
        return said(
            StatusCode::NOT_FOUND,
            format!("job {id} has no dead letter in {}", entry.id),
        );
    }
    match dead_letter::replay(&mut conn, &entry.config, &ids, 100).await {
        Ok(_) => {
            tracing::info!(queue = %entry.id, job = %id, "dashboard: dead job retried");
            said(StatusCode::OK, format!("job {id} is queued again"))
        }
        Err(e) => said(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
