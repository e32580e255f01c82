//! Watch streams: newline-delimited JSON events in resourceVersion order, read from the
//! store's bounded history, with periodic BOOKMARKs, `410 Gone` (as an ERROR event, like the
//! real server) for a resourceVersion older than the history, and the `sendInitialEvents`
//! streaming-list form kube-runtime can use.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::error::ApiError;
use super::http::Shared;
use super::resources::ResourceType;
use super::store::{EventType, Filter};
use super::table;
use jiff::Timestamp;

/// What the client asked for.
#[derive(Debug, Clone)]
pub struct WatchParams {
    pub filter: Filter,
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    /// The form of each event's object.
    pub render: Render,
}

/// What form the client asked objects in (its `Accept` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Render {
    Object,
    /// A one-row Table with this `includeObject` (`kubectl get --watch`).
    Table(String),
    /// `PartialObjectMetadata` (kube-runtime's metadata watchers).
    Metadata,
}

fn line(type_: &str, object: Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": type_, "object": object}))
        .expect("JSON values serialize");
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}),
    )
}

/// The type an event has for a watcher with this filter, if it sees it at all: an object
/// that stops matching a selector is DELETED for it, one that starts matching is ADDED.
fn translate(
    filter: &Filter,
    type_: EventType,
    ns: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Option<&'static str> {
    let now = filter.matches(ns, obj);
    match type_ {
        EventType::Modified => {
            let before = old.is_some_and(|o| filter.matches(ns, o));
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
        t => now.then(|| t.as_str()),
    }
}

/// Starts a watch; the response streams until the timeout, the client leaves, or the server
/// ends watches.
/// `rt` is the stored type the events come from, `view` the type the client addressed, and
/// `convert` turns a stored object into the client's form.
pub fn serve(
    shared: Arc<Shared>,
    rt: ResourceType,
    view: ResourceType,
    convert: fn(&Value) -> Value,
    p: WatchParams,
) -> Result<Response, ApiError> {
    let from = match p.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {s:?}: must be an integer"
            ))
        })?),
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let source = Source { rt, view, convert };
    tokio::spawn(run(shared, source, p, from, tx));
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|b| b.map(Ok::<_, std::convert::Infallible>))
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(stream))
        .expect("static response parts are valid"))
}

/// Where a watch's objects come from and how the client sees them.
struct Source {
    rt: ResourceType,
    view: ResourceType,
    convert: fn(&Value) -> Value,
}

impl Source {
    fn out(&self, obj: &Value, render: &Render) -> Value {
        let mut o = (self.convert)(obj);
        o["apiVersion"] = json!(self.view.api_version());
        match render {
            Render::Object => o,
            Render::Metadata => table::partial_metadata(&o),
            Render::Table(include) => {
                let rv = o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                table::table(&self.view, &[o], &rv, include, Timestamp::now())
            }
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    src: Source,
    p: WatchParams,
    from: Option<u64>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut changes = shared.changes.subscribe();
    let deadline = p.timeout.map(|t| Instant::now() + t);
    let (epoch, mut last, initial) = {
        let store = shared.store();
        let epoch = store.watch_epoch();
        match from {
            Some(rv) => (epoch, rv, Vec::new()),
            None => {
                let (items, _) = store.list(&src.rt, &p.filter, None, None);
                (epoch, store.resource_version(), items)
            }
        }
    };
    for obj in initial {
        if tx
            .send(line("ADDED", src.out(&obj, &p.render)))
            .await
            .is_err()
        {
            return;
        }
    }
    if p.send_initial_events
        && p.bookmarks
        && tx.send(bookmark(&src.view, last, true)).await.is_err()
    {
        return;
    }
    loop {
        changes.borrow_and_update();
        let batch = {
            let store = shared.store();
            if store.watch_epoch() != epoch {
                return;
            }
            let current = store.resource_version();
            store.events_after(last).map(|events| (events, current))
        };
        let (events, current) = match batch {
            Ok(b) => b,
            Err(gone) => {
                let _ = tx.send(line("ERROR", gone.status())).await;
                return;
            }
        };
        for e in events {
            if e.group != src.rt.group || e.plural != src.rt.plural {
                continue;
            }
            let seen = translate(&p.filter, e.type_, &e.namespace, &e.object, e.old.as_ref());
            if let Some(t) = seen
                && tx
                    .send(line(t, src.out(&e.object, &p.render)))
                    .await
                    .is_err()
            {
                return;
            }
        }
        last = last.max(current);
        let next_bookmark = Instant::now() + shared.bookmark_interval;
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(next_bookmark) => {
                if p.bookmarks && tx.send(bookmark(&src.view, last, false)).await.is_err() {
                    return;
                }
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => return,
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::selector::LabelSelector;

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let f = Filter {
            labels: LabelSelector::parse("app=w").unwrap(),
            ..Filter::default()
        };
        let on = json!({"metadata": {"labels": {"app": "w"}}});
        let off = json!({"metadata": {"labels": {"app": "x"}}});
        let t = |ty, o: &Value, old: Option<&Value>| translate(&f, ty, "d", o, old);
        assert_eq!(t(EventType::Modified, &on, Some(&on)), Some("MODIFIED"));
        assert_eq!(t(EventType::Modified, &on, Some(&off)), Some("ADDED"));
        assert_eq!(t(EventType::Modified, &off, Some(&on)), Some("DELETED"));
        assert_eq!(t(EventType::Modified, &off, Some(&off)), None);
        assert_eq!(t(EventType::Added, &off, None), None);
        assert_eq!(t(EventType::Deleted, &on, None), Some("DELETED"));
    }
}
