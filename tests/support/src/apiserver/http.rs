//! The HTTP layer: one axum fallback handler that routes by path, turns query parameters and
//! headers into store operations, logs each resource request and answers JSON (or a Table).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::discovery;
use super::error::ApiError;
use super::events;
use super::log::RequestRecord;
use super::patch::PatchKind;
use super::path::{self, Route, Target};
use super::protobuf;
use super::resources::ResourceType;
use super::scale;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{DeleteOpts, Filter, Propagation, Store, WriteOpts};
use super::table;
use super::watch::{self, Render, WatchParams};

/// Requests kept in the log; far more than any test makes.
const LOG_LIMIT: usize = 200_000;

/// State shared by every request.
pub struct Shared {
    pub store: Mutex<Store>,
    pub log: Mutex<Vec<RequestRecord>>,
    /// Carries the latest resourceVersion; watches wait on it.
    pub changes: tokio::sync::watch::Sender<u64>,
    pub bookmark_interval: Duration,
    pub addr: SocketAddr,
    /// Print each resource request to stderr (for people watching the standalone server).
    pub verbose: bool,
}

impl Shared {
    /// The store; a request that panicked while holding it does not take the server down.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The request log.
    pub fn log(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the watches after a write.
    pub fn notify(&self) {
        let rv = self.store().resource_version();
        self.changes.send_replace(rv);
    }
}

pub(super) fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::to_vec(body).expect("JSON values serialize"),
        ))
        .expect("static response parts are valid")
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code(), &e.status())
}

fn not_found_path() -> ApiError {
    ApiError::NotFound {
        message: "the server could not find the requested resource".into(),
        details: json!({}),
    }
}

/// The router's only handler.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let route = {
        let store = shared.store();
        path::route(uri.path(), |g, v, p| {
            store.find_type(g, v, p).is_some_and(|t| t.namespaced)
        })
    };
    let doc = |v: Option<Value>| match v {
        Some(v) => json_response(200, &v),
        None => error_response(&not_found_path()),
    };
    let types = || shared.store().types().to_vec();
    match route {
        Route::Version => json_response(200, &discovery::version()),
        Route::Health => Response::new(Body::from("ok")),
        Route::Api => json_response(200, &discovery::core_versions(&shared.addr.to_string())),
        Route::Apis => json_response(200, &discovery::group_list(&types())),
        Route::Group(g) => doc(discovery::group(&types(), &g)),
        Route::GroupVersion { group, version } => {
            doc(discovery::resource_list(&types(), &group, &version))
        }
        Route::OpenApiV2 => json_response(200, &discovery::openapi_v2()),
        Route::OpenApiV3Root => json_response(200, &discovery::openapi_v3_root(&types())),
        Route::OpenApiV3 { group, version } => doc(discovery::openapi_v3_group_version(
            &types(),
            &group,
            &version,
        )),
        Route::Unknown => error_response(&not_found_path()),
        Route::Resource(t) => resource(shared, method, t, query, headers, body),
    }
}

/// One resource request, parsed.
pub(super) struct Request {
    target: Target,
    /// The type the client addressed.
    pub(super) rt: ResourceType,
    /// The type the objects are stored as (differs for events.k8s.io Events, a view of core
    /// Events).
    storage: ResourceType,
    query: HashMap<String, String>,
    headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Request {
    pub(super) fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.q(k), Some("true" | "1"))
    }

    pub(super) fn ns(&self) -> Option<&str> {
        self.target
            .namespace
            .as_deref()
            .filter(|_| self.rt.namespaced)
    }

    pub(super) fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    /// Whether the addressed type is a view converted to and from its storage type.
    fn is_view(&self) -> bool {
        self.rt != self.storage
    }

    /// A stored object as the client sees it.
    fn out(&self, v: Value) -> Value {
        if self.is_view() { events::to_v1(&v) } else { v }
    }

    /// A client's object as it is stored.
    fn stored(&self, v: Value) -> Value {
        if self.is_view() {
            events::to_core(&v)
        } else {
            v
        }
    }

    fn filter(&self) -> Result<Filter, ApiError> {
        let bad = |which: &str, e: super::selector::SelectorError| {
            ApiError::bad_request(format!("invalid {which}: {e}"))
        };
        Ok(Filter {
            namespace: self.ns().map(str::to_string),
            labels: LabelSelector::parse(self.q("labelSelector").unwrap_or(""))
                .map_err(|e| bad("labelSelector", e))?,
            fields: FieldSelector::parse(&if self.is_view() {
                events::selector_to_core(self.q("fieldSelector").unwrap_or(""))
            } else {
                self.q("fieldSelector").unwrap_or("").to_string()
            })
            .map_err(|e| bad("fieldSelector", e))?,
        })
    }

    pub(super) fn write_opts(&self) -> WriteOpts {
        let agent = self
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .and_then(|a| a.split('/').next())
            .unwrap_or("unknown");
        WriteOpts {
            manager: self.q("fieldManager").unwrap_or(agent).to_string(),
            strict: self
                .q("fieldValidation")
                .is_some_and(|v| v.eq_ignore_ascii_case("strict")),
            dry_run: self.q("dryRun") == Some("All"),
            force: self.flag("force"),
        }
    }

    fn accepts(&self, what: &str) -> bool {
        self.headers
            .get_all("accept")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|a| a.contains(what))
    }

    fn wants_table(&self) -> bool {
        self.accepts("as=Table")
    }

    /// The form objects are answered in, from the `Accept` header.
    fn render(&self) -> Render {
        if self.wants_table() {
            Render::Table(self.q("includeObject").unwrap_or("Metadata").to_string())
        } else if self.accepts("as=PartialObjectMetadata") {
            Render::Metadata
        } else {
            Render::Object
        }
    }

    pub(super) fn json_body(&self) -> Result<Value, ApiError> {
        if self.content_type().contains("protobuf") {
            return protobuf::decode(&self.body).map_err(|e| ApiError::UnsupportedMediaType {
                message: format!("the protobuf body could not be read: {e}"),
            });
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    }

    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn verb(method: &Method, t: &Target, watch: bool) -> Option<&'static str> {
    Some(match (method.as_str(), t.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch || t.watch_prefix => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

fn resource(
    shared: Arc<Shared>,
    method: Method,
    target: Target,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rt = shared
        .store()
        .find_type(&target.group, &target.version, &target.plural);
    let Some(rt) = rt else {
        return error_response(&not_found_path());
    };
    let storage = if rt.group == "events.k8s.io" {
        let core = shared.store().find_type("", "v1", "events");
        core.expect("core events are built in")
    } else {
        rt.clone()
    };
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = verb(&method, &target, watch);
    let req = Request {
        target,
        rt,
        storage,
        query,
        headers,
        body,
    };
    let patch_type = (verb == Some("patch"))
        .then(|| PatchKind::from_content_type(req.content_type()))
        .flatten();
    let result = match verb {
        None => Err(ApiError::MethodNotAllowed {
            message: format!(
                "the server does not allow this method on the requested resource ({method})"
            ),
        }),
        Some(v) => dispatch(&shared, v, &req, patch_type),
    };
    let response = result.unwrap_or_else(|e| error_response(&e));
    let record = RequestRecord {
        verb: verb.unwrap_or("unknown").into(),
        group: req.rt.group.clone(),
        version: req.rt.version.clone(),
        resource: req.rt.plural.clone(),
        namespace: req.target.namespace.clone(),
        name: req.target.name.clone(),
        subresource: req.target.subresource.clone(),
        field_manager: req.q("fieldManager").map(str::to_string),
        patch_type: patch_type.map(|k| {
            match k {
                PatchKind::Merge => "merge",
                PatchKind::Json => "json",
                PatchKind::Strategic => "strategic",
                PatchKind::Apply => "apply",
            }
            .to_string()
        }),
        code: response.status().as_u16(),
    };
    if shared.verbose {
        eprintln!("{record}");
    }
    let mut log = shared.log();
    if log.len() >= LOG_LIMIT {
        // A long-running standalone server keeps the newest half.
        log.drain(..LOG_LIMIT / 2);
    }
    log.push(record);
    drop(log);
    if response.status() != StatusCode::OK || verb != Some("get") {
        shared.notify();
    }
    response
}

fn dispatch(
    shared: &Arc<Shared>,
    verb: &str,
    req: &Request,
    patch_type: Option<PatchKind>,
) -> Result<Response, ApiError> {
    let rt = &req.storage;
    let view = &req.rt;
    let sub = req.target.subresource.as_deref();
    match sub {
        None | Some("status") => {}
        Some("scale") if rt.scale.is_some() => return scale::serve(shared, verb, req, patch_type),
        Some(_) => return Err(not_found_path()),
    }
    if sub == Some("status") && !rt.status {
        return Err(not_found_path());
    }
    if verb == "watch" {
        let filter = req.filter()?;
        let params = WatchParams {
            filter,
            resource_version: req.q("resourceVersion").map(str::to_string),
            bookmarks: req.flag("allowWatchBookmarks"),
            send_initial_events: req.flag("sendInitialEvents"),
            timeout: req
                .q("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs),
            render: req.render(),
        };
        let convert: fn(&Value) -> Value = if req.is_view() {
            events::to_v1
        } else {
            Value::clone
        };
        return watch::serve(shared.clone(), rt.clone(), view.clone(), convert, params);
    }
    let mut store = shared.store();
    let ns = req.ns();
    let name = req.name();
    let opts = req.write_opts();
    let (code, body) = match verb {
        "get" => {
            let obj = req.out(store.get(rt, ns, name)?);
            if req.wants_table() {
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                (
                    200,
                    table::table(
                        view,
                        &[obj],
                        &rv,
                        req.q("includeObject").unwrap_or("Metadata"),
                        Timestamp::now(),
                    ),
                )
            } else if req.render() == Render::Metadata {
                (200, table::partial_metadata(&obj))
            } else {
                (200, obj)
            }
        }
        "list" => {
            let filter = req.filter()?;
            if req.q("resourceVersionMatch") == Some("Exact")
                && let Some(rv) = req.q("resourceVersion").and_then(|r| r.parse::<u64>().ok())
                && (store.too_old(rv) || rv != store.resource_version())
            {
                return Err(ApiError::Gone {
                    message: format!(
                        "too old resource version: {rv} ({})",
                        store.resource_version()
                    ),
                });
            }
            let limit = req.q("limit").and_then(|l| l.parse().ok());
            let (items, next) = store.list(rt, &filter, limit, req.q("continue"));
            let items: Vec<Value> = items.into_iter().map(|i| req.out(i)).collect();
            let rv = store.resource_version().to_string();
            if req.wants_table() {
                let mut t = table::table(
                    view,
                    &items,
                    &rv,
                    req.q("includeObject").unwrap_or("Metadata"),
                    Timestamp::now(),
                );
                if let Some(c) = next {
                    t["metadata"]["continue"] = json!(c);
                }
                (200, t)
            } else {
                let mut meta = json!({"resourceVersion": rv});
                if let Some(c) = next {
                    meta["continue"] = json!(c);
                }
                if req.render() == Render::Metadata {
                    let items: Vec<Value> = items.iter().map(table::partial_metadata).collect();
                    let list = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                      "metadata": meta, "items": items});
                    return Ok(json_response(200, &list));
                }
                (
                    200,
                    json!({"kind": format!("{}List", view.kind), "apiVersion": view.api_version(),
                             "metadata": meta, "items": items}),
                )
            }
        }
        "create" => {
            if sub.is_some() {
                return Err(not_found_path());
            }
            let mut body = req.stored(req.json_body()?);
            builtin_defaults(rt, &mut body);
            (201, req.out(store.create(rt, ns, body, &opts)?))
        }
        "update" => (
            200,
            req.out(store.update(rt, ns, name, sub, req.stored(req.json_body()?), &opts)?),
        ),
        "patch" => match patch_type {
            None => {
                return Err(ApiError::UnsupportedMediaType {
                    message: format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {:?})",
                        req.content_type()
                    ),
                });
            }
            Some(PatchKind::Apply) => {
                let config: Value = serde_yaml::from_slice(&req.body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
                let existed = store.get(rt, ns, name).is_ok();
                // Apply never falls back to the user agent: the manager must be named.
                let opts = WriteOpts {
                    manager: req.q("fieldManager").unwrap_or_default().to_string(),
                    ..opts
                };
                let mut config = req.stored(config);
                if !existed {
                    builtin_defaults(rt, &mut config);
                }
                let obj = store.apply(rt, ns, name, sub, config, &opts)?;
                (if existed { 200 } else { 201 }, req.out(obj))
            }
            Some(kind) if req.is_view() => {
                // Patches apply to the object as the client sees it.
                let seen = req.out(store.get(rt, ns, name)?);
                let patched = super::patch::apply_patch(kind, &seen, &req.json_body()?)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                let stored = store.update(rt, ns, name, sub, req.stored(patched), &opts)?;
                (200, req.out(stored))
            }
            Some(kind) => {
                let body = req.json_body()?;
                (200, store.patch(rt, ns, name, sub, kind, &body, &opts)?)
            }
        },
        "delete" => {
            let dopts = delete_opts(req)?;
            let obj = req.out(store.delete(rt, ns, name, &dopts)?);
            let still_there = store.get(rt, ns, name).is_ok();
            (
                if still_there && !dopts.dry_run {
                    202
                } else {
                    200
                },
                obj,
            )
        }
        "deletecollection" => {
            let dopts = delete_opts(req)?;
            let (items, _) = store.list(rt, &req.filter()?, None, None);
            let mut deleted = Vec::new();
            for o in items {
                let n = o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let ons = o["metadata"]["namespace"].as_str().map(str::to_string);
                if let Ok(d) = store.delete(rt, ons.as_deref(), &n, &dopts) {
                    deleted.push(req.out(d));
                }
            }
            (
                200,
                json!({"kind": format!("{}List", view.kind), "apiVersion": view.api_version(),
                         "metadata": {"resourceVersion": store.resource_version().to_string()},
                         "items": deleted}),
            )
        }
        _ => return Err(not_found_path()),
    };
    Ok(json_response(code, &body))
}

fn delete_opts(req: &Request) -> Result<DeleteOpts, ApiError> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        req.json_body()?
    };
    let policy = req
        .q("propagationPolicy")
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str));
    let propagation = match policy {
        None | Some("Background" | "Foreground") => Propagation::Background,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    let dry_run = req.q("dryRun") == Some("All")
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(DeleteOpts {
        propagation,
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run,
    })
}

/// The few defaults of built-in types that clients see.
fn builtin_defaults(rt: &ResourceType, obj: &mut Value) {
    if rt.group.is_empty()
        && rt.plural == "secrets"
        && obj.is_object()
        && obj
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        obj["type"] = json!("Opaque");
    }
    if rt.group == "apps"
        && (rt.plural == "deployments" || rt.plural == "statefulsets")
        && obj.get("spec").is_some_and(Value::is_object)
        && obj.pointer("/spec/replicas").is_none()
    {
        obj["spec"]["replicas"] = json!(1);
    }
}
