//! Watches on the test API server, raw (`Api::watch`) and through kube-runtime's `watcher`, the
//! way the operator's controllers consume them: ordered events, bookmarks, 410 Gone and the
//! relist that follows, selector transitions, and deletion through finalizers.

use std::time::Duration;

use futures::{Stream, StreamExt};
use jobqueue_test_support::apiserver::{Options, TestApiServer};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

/// Bound on waiting for any one event; only reached when something is broken.
const DEADLINE: Duration = Duration::from_secs(20);

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

async fn next<S, T>(stream: &mut S) -> T
where
    S: Stream<Item = T> + Unpin,
{
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("an event within the deadline")
        .expect("the stream is still open")
}

fn rv_of(c: &ConfigMap) -> u64 {
    c.metadata
        .resource_version
        .as_ref()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn watch_delivers_changes_in_resource_version_order() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let start = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();

    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut events).await.unwrap() {
            WatchEvent::Added(c) => seen.push(("ADDED", rv_of(&c))),
            WatchEvent::Modified(c) => {
                assert_eq!(c.data.as_ref().unwrap()["k"], "v");
                seen.push(("MODIFIED", rv_of(&c)))
            }
            WatchEvent::Deleted(c) => seen.push(("DELETED", rv_of(&c))),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e}"),
        }
    }
    let types: Vec<&str> = seen.iter().map(|s| s.0).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "{seen:?}");
    assert!(seen[0].1 > start.parse::<u64>().unwrap());
}

#[tokio::test]
async fn watch_from_an_old_resource_version_resumes_without_gaps() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    // Resuming from a's version replays exactly what came after it.
    let rv = a.metadata.resource_version.unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match next(&mut events).await.unwrap() {
        WatchEvent::Added(c) => assert_eq!(c.metadata.name.as_deref(), Some("b")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bookmarks_carry_the_current_resource_version() {
    let server = TestApiServer::start_with(Options {
        bookmark_interval: Duration::from_millis(50),
        ..Options::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let made = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut events = api
        .watch(
            &WatchParams::default(),
            &made.metadata.resource_version.clone().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    loop {
        match next(&mut events).await.unwrap() {
            WatchEvent::Bookmark(b) => {
                let rv: u64 = b.metadata.resource_version.parse().unwrap();
                assert!(rv >= rv_of(&made), "{rv}");
                break;
            }
            WatchEvent::Error(e) => panic!("{e}"),
            _ => {}
        }
    }
    // Without asking, no bookmarks: the next event is the change itself.
    let mut plain = api
        .watch(
            &WatchParams::default().disable_bookmarks(),
            &made.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut plain).await.unwrap(),
        WatchEvent::Added(_)
    ));
}

#[tokio::test]
async fn a_resource_version_older_than_the_history_is_410_gone() {
    let server = TestApiServer::start_with(Options {
        history_limit: 3,
        ..Options::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = api
        .create(&PostParams::default(), &cm("c0", json!({})))
        .await
        .unwrap();
    for i in 1..10 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut events = api
        .watch(
            &WatchParams::default(),
            &first.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    match next(&mut events).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        Ok(WatchEvent::Error(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // A recent version is still fine.
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut events).await.unwrap(),
        WatchEvent::Added(_)
    ));
}

/// Drains a watcher until `want` holds for an event, failing after the deadline. Errors the
/// watcher reports (it carries on after them, as controllers do) are returned separately.
async fn until_with_errors<S, K>(
    stream: &mut S,
    mut want: impl FnMut(&Event<K>) -> bool,
) -> (Vec<Event<K>>, Vec<watcher::Error>)
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
{
    let (mut seen, mut errors) = (Vec::new(), Vec::new());
    loop {
        match next(stream).await {
            Ok(e) => {
                let done = want(&e);
                seen.push(e);
                if done {
                    return (seen, errors);
                }
            }
            Err(e) => errors.push(e),
        }
    }
}

/// Like [`until_with_errors`] where no error is expected.
async fn until<S>(
    stream: &mut S,
    want: impl FnMut(&Event<ConfigMap>) -> bool,
) -> Vec<Event<ConfigMap>>
where
    S: Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin,
{
    let (seen, errors) = until_with_errors(stream, want).await;
    assert!(errors.is_empty(), "{errors:?}");
    seen
}

fn named(e: &Event<ConfigMap>, kind: &str, name: &str) -> bool {
    let (k, c) = match e {
        Event::Apply(c) => ("apply", c),
        Event::Delete(c) => ("delete", c),
        Event::InitApply(c) => ("init", c),
        _ => return false,
    };
    k == kind && c.metadata.name.as_deref() == Some(name)
}

#[tokio::test]
async fn watcher_relists_after_410_and_keeps_delivering() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let mut w = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    until(&mut w, |e| matches!(e, Event::InitDone)).await;
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    until(&mut w, |e| named(e, "apply", "a")).await;

    // The watch connection ends and every version the watcher knows is compacted away:
    // its re-watch gets 410 Gone, and it must relist to recover.
    server.compact_and_expire_watches();
    let (relisted, errors) = until_with_errors(&mut w, |e| matches!(e, Event::InitDone)).await;
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, watcher::Error::WatchError(s) if s.code == 410)),
        "the re-watch was refused with 410: {errors:?}"
    );
    assert!(
        relisted.iter().any(|e| named(e, "init", "a")),
        "{relisted:?}"
    );
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    until(&mut w, |e| named(e, "apply", "b")).await;

    let log = server.requests();
    let lists = log.iter().filter(|r| r.is("list", "configmaps")).count();
    assert!(lists >= 2, "the watcher relisted: {lists} lists");
}

#[tokio::test]
async fn watcher_with_streaming_lists_gets_initial_events() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    let mut w = watcher::watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let init = until(&mut w, |e| matches!(e, Event::InitDone)).await;
    assert!(init.iter().any(|e| named(e, "init", "x")), "{init:?}");
    api.create(&PostParams::default(), &cm("y", json!({})))
        .await
        .unwrap();
    until(&mut w, |e| named(e, "apply", "y")).await;
    assert!(
        server
            .requests()
            .iter()
            .all(|r| !r.is("list", "configmaps")),
        "no list needed"
    );
}

#[tokio::test]
async fn watcher_with_a_selector_sees_objects_enter_and_leave() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut w = watcher::watcher(api.clone(), watcher::Config::default().labels("app=w")).boxed();
    until(&mut w, |e| matches!(e, Event::InitDone)).await;
    api.create(&PostParams::default(), &cm("c", json!({"app": "other"})))
        .await
        .unwrap();
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "w"}}})),
    )
    .await
    .unwrap();
    let seen = until(&mut w, |e| named(e, "apply", "c")).await;
    assert_eq!(
        seen.len(),
        1,
        "the non-matching create was not delivered: {seen:?}"
    );
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
    )
    .await
    .unwrap();
    until(&mut w, |e| named(e, "delete", "c")).await;
}

#[tokio::test]
async fn watcher_sees_deletion_through_finalizers() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut w = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    until(&mut w, |e| matches!(e, Event::InitDone)).await;
    let mut c = cm("f", json!({}));
    c.metadata.finalizers = Some(vec!["jobqueue.io/cleanup".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    until(&mut w, |e| named(e, "apply", "f")).await;

    api.delete("f", &DeleteParams::default()).await.unwrap();
    let marked = until(&mut w, |e| named(e, "apply", "f")).await;
    match marked.last() {
        Some(Event::Apply(c)) => assert!(c.metadata.deletion_timestamp.is_some()),
        other => panic!("{other:?}"),
    }
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    until(&mut w, |e| named(e, "delete", "f")).await;
    let remaining: Vec<ConfigMap> = api.list(&ListParams::default()).await.unwrap().items;
    assert!(remaining.is_empty());
}

#[tokio::test]
async fn metadata_only_reads_and_watches_work() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("m", json!({"app": "w"})))
        .await
        .unwrap();
    let meta = api.get_metadata("m").await.unwrap();
    assert_eq!(meta.metadata.labels.unwrap()["app"], "w");
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    let meta_api: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(server.client());
    let mut w = watcher::watcher(meta_api, watcher::Config::default()).boxed();
    let (init, errors) = until_with_errors(&mut w, |e| matches!(e, Event::InitDone)).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(init.len(), 3, "Init, one object, InitDone: {init:?}");
}
