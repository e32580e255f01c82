//! The test API server through kube-rs: CRUD with resourceVersions, selectors, every patch type,
//! server-side apply ownership, finalizers, ownerReference garbage collection, and the status
//! and scale subresources of built-in types. These are the behaviours the operator relies on.

use jobqueue_test_support::apiserver::TestApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, ObjectReference};
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"},
    }))
    .unwrap()
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "worker", "image": "worker:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "sidecar:1"}
                ]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn create_get_replace_delete_round_trip() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api
        .create(&PostParams::default(), &cm("c", json!({"app": "a"})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    let rv1 = meta.resource_version.clone().unwrap();

    let got = api.get("c").await.unwrap();
    assert_eq!(got.data, created.data);
    assert_eq!(got.metadata.resource_version.as_deref(), Some(rv1.as_str()));

    let mut changed = got.clone();
    changed.data = Some([("k".to_string(), "w".to_string())].into());
    let replaced = api
        .replace("c", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2 = replaced.metadata.resource_version.clone().unwrap();
    assert!(rv2.parse::<u64>().unwrap() > rv1.parse::<u64>().unwrap());
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["k"], "w");

    api.delete("c", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(api.get("c").await.unwrap_err()), 404);
    assert!(api.get_opt("c").await.unwrap().is_none());
}

#[tokio::test]
async fn stale_update_is_409_conflict_and_duplicate_create_is_409() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    let e = api
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, kube::Error::Api(s) if s.reason == "AlreadyExists"),
        "{e}"
    );

    let first = api.get("c").await.unwrap();
    let mut a = first.clone();
    a.data = Some([("k".to_string(), "a".to_string())].into());
    api.replace("c", &PostParams::default(), &a).await.unwrap();
    // A second writer still holding the old resourceVersion must not overwrite.
    let mut b = first.clone();
    b.data = Some([("k".to_string(), "b".to_string())].into());
    let e = api
        .replace("c", &PostParams::default(), &b)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{e}"
    );
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["k"], "a");
    // A merge patch carrying a stale resourceVersion is refused the same way.
    let p = json!({"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"k": "c"}});
    let e = api
        .patch("c", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap_err();
    assert_eq!(code(e), 409);
}

#[tokio::test]
async fn objects_need_an_existing_namespace_and_a_valid_name() {
    let server = TestApiServer::start().await;
    let missing: Api<ConfigMap> = Api::namespaced(server.client(), "nowhere");
    let e = missing
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, kube::Error::Api(s) if s.code == 404 && s.message.contains("nowhere")),
        "{e}"
    );
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let e = api
        .create(&PostParams::default(), &cm("Not_Valid", json!({})))
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("metadata.name"), "{}", s.message);
        }
        other => panic!("{other}"),
    }
    let generated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "job-"}})).unwrap();
    let made = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = made.metadata.name.unwrap();
    assert!(
        name.starts_with("job-") && name.len() == "job-".len() + 5,
        "{name}"
    );
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for (name, labels) in [
        ("a1", json!({"app": "a", "tier": "back"})),
        ("a2", json!({"app": "a"})),
        ("b1", json!({"app": "b", "tier": "front"})),
        ("c1", json!({})),
    ] {
        api.create(&PostParams::default(), &cm(name, labels))
            .await
            .unwrap();
    }
    let names = |lp: ListParams| {
        let api = api.clone();
        async move {
            let mut n: Vec<String> = api
                .list(&lp)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|c| c.metadata.name.unwrap())
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(
        names(ListParams::default().labels("app=a")).await,
        ["a1", "a2"]
    );
    assert_eq!(
        names(ListParams::default().labels("app in (a,b),tier")).await,
        ["a1", "b1"]
    );
    assert_eq!(names(ListParams::default().labels("!app")).await, ["c1"]);
    assert_eq!(
        names(ListParams::default().labels("tier notin (back)")).await,
        ["a2", "b1", "c1"]
    );
    assert_eq!(
        names(ListParams::default().fields("metadata.name=b1")).await,
        ["b1"]
    );
    assert_eq!(
        names(
            ListParams::default()
                .labels("app=a")
                .fields("metadata.name!=a1")
        )
        .await,
        ["a2"]
    );
    // Another namespace's objects are not listed; all-namespaces lists see both.
    let ns: Api<Namespace> = Api::all(server.client());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap(),
    )
    .await
    .unwrap();
    let other: Api<ConfigMap> = Api::namespaced(server.client(), "other");
    other
        .create(&PostParams::default(), &cm("a3", json!({"app": "a"})))
        .await
        .unwrap();
    assert_eq!(
        names(ListParams::default().labels("app=a")).await,
        ["a1", "a2"]
    );
    let all: Api<ConfigMap> = Api::all(server.client());
    assert_eq!(
        all.list(&ListParams::default().labels("app=a"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    // Paging: limit and continue cover every object once.
    let page = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    let token = page.metadata.continue_.clone().unwrap();
    let rest = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.metadata.continue_.is_none_or(|c| c.is_empty()));
    let e = api
        .list(&ListParams::default().labels("app in a"))
        .await
        .unwrap_err();
    assert_eq!(code(e), 400);
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let server = TestApiServer::start().await;
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &deployment("w"))
        .await
        .unwrap();
    let pp = PatchParams::default();

    let merged = api
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"team": "q"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.metadata.labels.unwrap()["team"], "q");

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/replicas", "value": 4}
    ]))
    .unwrap();
    let jsoned = api.patch("w", &pp, &Patch::Json::<()>(ops)).await.unwrap();
    assert_eq!(jsoned.spec.unwrap().replicas, Some(4));
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 99},
        {"op": "replace", "path": "/spec/replicas", "value": 7}
    ]))
    .unwrap();
    assert!(
        api.patch("w", &pp, &Patch::Json::<()>(failing))
            .await
            .is_err()
    );
    assert_eq!(api.get("w").await.unwrap().spec.unwrap().replicas, Some(4));

    // Strategic merge: containers are merged by name, so the untouched fields survive.
    let sp = json!({"spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "worker:2"}]}}}});
    let s = api.patch("w", &pp, &Patch::Strategic(sp)).await.unwrap();
    let containers = s.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("worker:2"));
    assert_eq!(containers[0].env.as_ref().unwrap()[0].name, "A");
    assert_eq!(containers[1].name, "sidecar");
}

#[tokio::test]
async fn server_side_apply_tracks_owners_conflicts_and_removals() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cfg = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    // Apply creates the object.
    let made = api
        .patch(
            "c",
            &PatchParams::apply("alice"),
            &Patch::Apply(cfg(json!({"a": "1", "b": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(made.data.as_ref().unwrap().len(), 2);
    let mf = made.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("alice"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // Another manager changing alice's field conflicts, naming her and the field.
    let e = api
        .patch(
            "c",
            &PatchParams::apply("bob"),
            &Patch::Apply(cfg(json!({"a": "2"}))),
        )
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("alice") && s.message.contains(".data.a"),
                "{}",
                s.message
            );
        }
        other => panic!("{other}"),
    }
    // Forced, bob takes the field over.
    let forced = api
        .patch(
            "c",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(cfg(json!({"a": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["a"], "2");
    // Alice stops applying b: it is removed, while bob's a stays.
    let after = api
        .patch(
            "c",
            &PatchParams::apply("alice"),
            &Patch::Apply(cfg(json!({}))),
        )
        .await
        .unwrap();
    let data = after.data.unwrap_or_default();
    assert_eq!(data.get("a").map(String::as_str), Some("2"));
    assert!(!data.contains_key("b"), "{data:?}");
    // Apply without a field manager is refused.
    let raw = server.client();
    let req = http::Request::patch(format!(
        "{}/api/v1/namespaces/default/configmaps/c",
        server.url()
    ))
    .header("content-type", "application/apply-patch+yaml")
    .body(serde_json::to_vec(&cfg(json!({"x": "1"}))).unwrap())
    .unwrap();
    let e = raw.request::<ConfigMap>(req).await.unwrap_err();
    assert_eq!(code(e), 400);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_the_last_one_is_removed() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut c = cm("f", json!({}));
    c.metadata.finalizers = Some(vec!["a.io/one".into(), "a.io/two".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();

    api.delete("f", &DeleteParams::default()).await.unwrap();
    let marked = api.get("f").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    // No new finalizers on an object being deleted.
    let add = json!({"metadata": {"finalizers": ["a.io/one", "a.io/two", "a.io/three"]}});
    let e = api
        .patch("f", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .unwrap_err();
    assert_eq!(code(e), 422);

    let one_left = json!({"metadata": {"finalizers": ["a.io/two"]}});
    api.patch("f", &PatchParams::default(), &Patch::Merge(&one_left))
        .await
        .unwrap();
    assert!(api.get_opt("f").await.unwrap().is_some());
    let none_left = json!({"metadata": {"finalizers": null}});
    api.patch("f", &PatchParams::default(), &Patch::Merge(&none_left))
        .await
        .unwrap();
    assert!(api.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_an_owner_deletes_its_dependents() {
    let server = TestApiServer::start().await;
    let deps: Api<Deployment> = Api::default_namespaced(server.client());
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = deps
        .create(&PostParams::default(), &deployment("owner"))
        .await
        .unwrap();
    let other = deps
        .create(&PostParams::default(), &deployment("other"))
        .await
        .unwrap();
    let oref = |d: &Deployment| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": d.metadata.name,
               "uid": d.metadata.uid, "controller": true})
    };
    let owned = |name: &str, refs: Vec<serde_json::Value>| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": refs}}))
            .unwrap()
    };
    cms.create(
        &PostParams::default(),
        &owned("only-owner", vec![oref(&owner)]),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &owned("two-owners", vec![oref(&owner), oref(&other)]),
    )
    .await
    .unwrap();
    let mut held = owned("held", vec![oref(&owner)]);
    held.metadata.finalizers = Some(vec!["a.io/keep".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();

    deps.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(cms.get_opt("only-owner").await.unwrap().is_none());
    assert!(
        cms.get_opt("two-owners").await.unwrap().is_some(),
        "one owner remains"
    );
    let h = cms.get("held").await.unwrap();
    assert!(
        h.metadata.deletion_timestamp.is_some(),
        "dependents' finalizers are honoured"
    );

    // Orphan: dependents stay and lose the reference.
    cms.create(&PostParams::default(), &owned("orphan", vec![oref(&other)]))
        .await
        .unwrap();
    deps.delete("other", &DeleteParams::orphan()).await.unwrap();
    let o = cms.get("orphan").await.unwrap();
    assert!(o.metadata.owner_references.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn status_subresource_separates_spec_from_status_and_generation_tracks_spec() {
    let server = TestApiServer::start().await;
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    let mut d = deployment("w");
    d.status = Some(serde_json::from_value(json!({"replicas": 9})).unwrap());
    let made = api.create(&PostParams::default(), &d).await.unwrap();
    assert!(made.status.is_none(), "status is not set on create");
    assert_eq!(made.metadata.generation, Some(1));
    assert_eq!(
        made.spec.as_ref().unwrap().replicas,
        Some(1),
        "replicas default to 1"
    );

    let st = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().replicas, Some(3));
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // A main write cannot change status.
    let main = json!({"status": {"replicas": 0}, "metadata": {"labels": {"x": "y"}}});
    let m = api
        .patch("w", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .unwrap();
    assert_eq!(m.status.unwrap().replicas, Some(3));
    assert_eq!(
        m.metadata.generation,
        Some(1),
        "metadata changes do not bump generation"
    );
    // A status write cannot change spec.
    let st = json!({"spec": {"replicas": 5}, "status": {"replicas": 4}});
    let s = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(1));
    // A spec change bumps generation.
    let g = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    assert_eq!(g.metadata.generation, Some(2));
    // A write that changes nothing changes no resourceVersion.
    let again = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, g.metadata.resource_version);
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_replicas() {
    let server = TestApiServer::start().await;
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &deployment("w"))
        .await
        .unwrap();
    let scale = api.get_scale("w").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=w"));

    let s = api
        .patch_scale(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(5));
    assert_eq!(api.get("w").await.unwrap().spec.unwrap().replicas, Some(5));
    let e = api
        .patch_scale(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(e), 422);

    let log = server.requests();
    let scale_writes: Vec<_> = log
        .iter()
        .filter(|r| r.is("patch", "deployments") && r.subresource.as_deref() == Some("scale"))
        .collect();
    assert_eq!(scale_writes.len(), 2);
    assert_eq!(scale_writes[0].group, "apps");
    assert_eq!(scale_writes[0].namespace.as_deref(), Some("default"));
    assert_eq!(scale_writes[0].patch_type.as_deref(), Some("merge"));
    assert_eq!(scale_writes[0].code, 200);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_content() {
    let server = TestApiServer::start().await;
    let ns: Api<Namespace> = Api::all(server.client());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "team");
    cms.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["a.io/x".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();

    ns.delete("team", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("c").await.unwrap().is_none());
    let t = ns.get("team").await.unwrap();
    assert_eq!(t.status.unwrap().phase.as_deref(), Some("Terminating"));
    let e = cms
        .create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap_err();
    assert_eq!(code(e), 403);

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(
        ns.get_opt("team").await.unwrap().is_none(),
        "an empty terminating namespace goes"
    );
}

#[tokio::test]
async fn recorded_events_are_visible_through_both_event_apis() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let c = cms
        .create(&PostParams::default(), &cm("q", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        server.client(),
        Reporter {
            controller: "jobqueue-operator".into(),
            instance: Some("pod-1".into()),
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("q".into()),
        namespace: Some("default".into()),
        uid: c.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "Scaled".into(),
        note: Some("scaled 2 → 7".into()),
        action: "Scale".into(),
        secondary: None,
    };
    // The second publish of the same event is a merge patch adding a series.
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let new_api: Api<NewEvent> = Api::default_namespaced(server.client());
    let listed = new_api
        .list(&ListParams::default().fields("regarding.name=q"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let e = &listed.items[0];
    assert_eq!(e.note.as_deref(), Some("scaled 2 → 7"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));

    // kubectl describe's query, on the core API.
    let core: Api<CoreEvent> = Api::default_namespaced(server.client());
    let selector = format!(
        "involvedObject.name=q,involvedObject.namespace=default,involvedObject.kind=ConfigMap,involvedObject.uid={}",
        c.metadata.uid.unwrap()
    );
    let seen = core
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap();
    assert_eq!(seen.items.len(), 1);
    assert_eq!(seen.items[0].message.as_deref(), Some("scaled 2 → 7"));
    assert_eq!(seen.items[0].reason.as_deref(), Some("Scaled"));
    assert_eq!(
        seen.items[0].reporting_component.as_deref(),
        Some("jobqueue-operator")
    );
    let log = server.requests();
    assert!(
        log.iter()
            .any(|r| r.is("create", "events") && r.group == "events.k8s.io")
    );
    assert!(
        log.iter()
            .any(|r| r.is("patch", "events") && r.group == "events.k8s.io")
    );
}

#[tokio::test]
async fn server_side_dry_run_validates_without_storing() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answer = api.create(&dry, &cm("dry", json!({}))).await.unwrap();
    assert_eq!(answer.metadata.name.as_deref(), Some("dry"));
    assert!(api.get_opt("dry").await.unwrap().is_none());
    // Validation still runs.
    let e = api
        .create(&dry, &cm("Bad Name", json!({})))
        .await
        .unwrap_err();
    assert_eq!(code(e), 422);
    api.create(&PostParams::default(), &cm("real", json!({})))
        .await
        .unwrap();
    let dp = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    api.delete("real", &dp).await.unwrap();
    assert!(api.get_opt("real").await.unwrap().is_some());
}
