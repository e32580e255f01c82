//! A recording proxy between the operator and the test API server: it notes each resource
//! access the operator makes (verb, group, resource, subresource), so the operator's own
//! accesses can be told apart from the test's, for the proof that the chart's RBAC grants
//! each request.

use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One kind of API access: what an RBAC rule has to allow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Access {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespaced: bool,
}

/// The access a request path means, or `None` for discovery and other non-resource URLs.
pub fn classify(method: &Method, path: &str, query: &str) -> Option<Access> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    // `namespaces/NS/<resource>...` is namespaced; `namespaces[/NS]` is the Namespace itself.
    let (namespaced, rest) = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub, ..] => (*resource, Some(*name), Some(sub.to_string())),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method.as_str(), name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        _ => return None,
    };
    Some(Access {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource,
        namespaced,
    })
}

/// What the proxy needs: the upstream client, the accesses seen, and how many status writes
/// it still answers with a 500 (a fault the tests inject).
#[derive(Clone)]
pub(super) struct ProxyState {
    pub client: kube::Client,
    pub seen: Arc<Mutex<BTreeSet<Access>>>,
    pub failing_status_writes: Arc<AtomicUsize>,
    /// While cut, nothing passes: requests hang and open responses (watches) go silent.
    pub partitioned: super::Partition,
}

/// Waits while `partition` is cut (the other side of a partition sees nothing at all).
async fn through(partition: &super::Partition) {
    while partition.is_cut() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Forwards everything to the test API server, noting each resource access first (and
/// failing status writes while the test asks it to).
pub(super) async fn forward(State(state): State<ProxyState>, request: Request) -> Response {
    let ProxyState {
        client,
        seen,
        failing_status_writes,
        partitioned,
    } = state;
    through(&partitioned).await;
    let (parts, body) = request.into_parts();
    if let Some(access) = classify(
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
    ) {
        let status_write =
            access.verb == "patch" && access.subresource.as_deref() == Some("status");
        seen.lock().expect("proxy log").insert(access);
        if status_write
            && failing_status_writes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            let status = serde_json::json!({"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "message": "injected by the test proxy",
                "reason": "InternalError", "code": 500});
            return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(status)).into_response();
        }
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let mut out = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(target);
    for (k, v) in &parts.headers {
        if k != header::HOST && k != header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let Ok(out) = out.body(kube::client::Body::from(bytes.to_vec())) else {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    };
    let response = client.send(out).await;
    through(&partitioned).await;
    match response {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.remove(header::CONNECTION);
            // A watch's events stop crossing while the partition lasts.
            let chunks = axum::body::Body::new(body)
                .into_data_stream()
                .then(move |chunk| {
                    let partitioned = partitioned.clone();
                    async move {
                        through(&partitioned).await;
                        chunk
                    }
                });
            Response::from_parts(parts, axum::body::Body::from_stream(chunks))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
