//! The project's CRDs on the test API server through kube-rs: registration and discovery,
//! schema validation with defaults (422 with field causes), strict and lenient unknown-field
//! handling, status written by server-side apply as the operator does, printer-column tables,
//! and CRD deletion.

use jobqueue_operator::api::{JobQueue, Schedule};
use jobqueue_test_support::apiserver::TestApiServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

async fn install_crds(server: &TestApiServer) {
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    for crd in [JobQueue::crd(), Schedule::crd()] {
        let made = crds.create(&PostParams::default(), &crd).await.unwrap();
        let conditions = made.status.unwrap().conditions.unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{conditions:?}"
        );
    }
}

fn queues(server: &TestApiServer) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("jobqueue.io", "v1alpha1", "JobQueue");
    Api::default_namespaced_with(server.client(), &ApiResource::from_gvk(&gvk))
}

fn queue(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

fn minimal_spec() -> Value {
    json!({"redis": {"url": "redis://127.0.0.1:1"}, "workers": {"scaleTargetRef": {"name": "w"}},
           "scaling": {"maxReplicas": 3}})
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn created_crds_are_served_and_discoverable() {
    let server = TestApiServer::start().await;
    install_crds(&server).await;
    let discovery = Discovery::new(server.client())
        .filter(&["jobqueue.io"])
        .run()
        .await
        .unwrap();
    let group = discovery
        .get("jobqueue.io")
        .expect("the group is discovered");
    let (ar, caps) = group
        .recommended_resources()
        .into_iter()
        .find(|(ar, _)| ar.kind == "JobQueue")
        .expect("JobQueue is served");
    assert_eq!(ar.plural, "jobqueues");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
    let list = server
        .client()
        .list_api_group_resources("jobqueue.io/v1alpha1")
        .await
        .unwrap();
    let jq = list
        .resources
        .iter()
        .find(|r| r.name == "jobqueues")
        .unwrap();
    assert_eq!(jq.short_names.as_deref(), Some(&["jq".to_string()][..]));

    // The typed API of the operator reads back what was stored, defaults filled in.
    queues(&server)
        .create(&PostParams::default(), &queue("q", minimal_spec()))
        .await
        .unwrap();
    let typed: Api<JobQueue> = Api::default_namespaced(server.client());
    let q = typed.get("q").await.unwrap();
    assert_eq!(q.spec.consumer_group, "workers");
    assert_eq!(q.spec.delivery.max_deliveries, 5);
}

#[tokio::test]
async fn invalid_custom_resources_are_422_with_field_causes() {
    let server = TestApiServer::start().await;
    install_crds(&server).await;
    let mut spec = minimal_spec();
    spec["scaling"] = json!({"minReplicas": 5, "maxReplicas": 2});
    let e = queues(&server)
        .create(&PostParams::default(), &queue("bad", spec))
        .await
        .unwrap_err();
    let s = api_error(e);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message
            .starts_with("JobQueue.jobqueue.io \"bad\" is invalid: spec.scaling.maxReplicas"),
        "{}",
        s.message
    );
    let causes = s.details.unwrap().causes;
    assert_eq!(causes[0].field, "spec.scaling.maxReplicas");
    assert!(queues(&server).get_opt("bad").await.unwrap().is_none());

    // Updates are validated too, and a rejected update leaves the object as it was.
    queues(&server)
        .create(&PostParams::default(), &queue("ok", minimal_spec()))
        .await
        .unwrap();
    let patch = json!({"spec": {"scaling": {"metric": "Fast"}}});
    let e = queues(&server)
        .patch("ok", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err();
    let s = api_error(e);
    assert_eq!(s.code, 422);
    assert_eq!(s.details.unwrap().causes[0].field, "spec.scaling.metric");
    let stored = queues(&server).get("ok").await.unwrap();
    assert_eq!(stored.data["spec"]["scaling"]["metric"], "Backlog");

    // Metadata is checked too: label values follow the Kubernetes rules.
    let bad_label = json!({"metadata": {"labels": {"team": "not a valid value!"}}});
    let e = queues(&server)
        .patch("ok", &PatchParams::default(), &Patch::Merge(&bad_label))
        .await
        .unwrap_err();
    let s = api_error(e);
    assert_eq!(s.code, 422);
    let field = &s.details.unwrap().causes[0].field;
    assert!(field.starts_with("metadata.labels"), "{field}");
}

#[tokio::test]
async fn unknown_fields_are_rejected_when_strict_and_pruned_otherwise() {
    let server = TestApiServer::start().await;
    install_crds(&server).await;
    let mut spec = minimal_spec();
    spec["replicas"] = json!(3);
    let lenient = queues(&server)
        .create(&PostParams::default(), &queue("lenient", spec.clone()))
        .await
        .unwrap();
    assert!(lenient.data["spec"].get("replicas").is_none(), "pruned");

    let cfg = json!({"apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue",
                     "metadata": {"name": "strict"}, "spec": spec});
    let e = queues(&server)
        .patch(
            "strict",
            &PatchParams::apply("me").validation_strict(),
            &Patch::Apply(&cfg),
        )
        .await
        .unwrap_err();
    let s = api_error(e);
    assert_eq!(s.code, 400);
    assert!(
        s.message.contains("unknown field \"spec.replicas\""),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn status_is_applied_by_the_operator_without_bumping_generation() {
    let server = TestApiServer::start().await;
    install_crds(&server).await;
    let api = queues(&server);
    let mut with_status = queue("q", minimal_spec());
    with_status.data["status"] = json!({"lag": 99});
    let made = api
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(
        made.data.get("status").is_none(),
        "status is not written on create"
    );
    assert_eq!(made.metadata.generation, Some(1));

    let status = json!({
        "apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue",
        "status": {"observedGeneration": 1, "lag": 42, "pending": 3,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned",
                                   "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    });
    let pp = PatchParams::apply("jobqueue-operator").force();
    let after = api
        .patch_status("q", &pp, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(after.data["status"]["lag"], 42);
    assert_eq!(after.metadata.generation, Some(1));

    let spec_change = json!({"spec": {"scaling": {"maxReplicas": 9}}});
    let edited = api
        .patch("q", &PatchParams::default(), &Patch::Merge(&spec_change))
        .await
        .unwrap();
    assert_eq!(edited.metadata.generation, Some(2));
    assert_eq!(edited.data["status"]["lag"], 42, "spec writes keep status");

    let log = server.requests();
    let write = log
        .iter()
        .find(|r| r.is("patch", "jobqueues") && r.subresource.as_deref() == Some("status"))
        .expect("the status write is logged");
    assert_eq!(write.group, "jobqueue.io");
    assert_eq!(write.field_manager.as_deref(), Some("jobqueue-operator"));
    assert_eq!(write.patch_type.as_deref(), Some("apply"));
}

#[tokio::test]
async fn tables_show_the_crd_printer_columns() {
    let server = TestApiServer::start().await;
    install_crds(&server).await;
    let api = queues(&server);
    api.create(&PostParams::default(), &queue("q", minimal_spec()))
        .await
        .unwrap();
    let status = json!({"status": {"lag": 17, "pending": 2,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ok", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status("q", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    let req = http::Request::get(format!(
        "{}/apis/jobqueue.io/v1alpha1/namespaces/default/jobqueues",
        server.url()
    ))
    .header(
        "accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .unwrap();
    let table: Value = server.client().request(req).await.unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let crd = JobQueue::crd();
    let mut want = vec!["Name".to_string()];
    want.extend(
        crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name),
    );
    assert_eq!(columns, want);
    let row = &table["rows"][0]["cells"];
    let cell = |name: &str| &row[columns.iter().position(|c| *c == name).unwrap()];
    assert_eq!(cell("Name"), "q");
    assert_eq!(cell("Lag"), 17);
    assert_eq!(cell("Ready"), "True");
    assert_eq!(table["rows"][0]["object"]["metadata"]["name"], "q");
}

#[tokio::test]
async fn deleting_a_crd_removes_its_objects_and_its_endpoint() {
    let server = TestApiServer::start().await;
    install_crds(&server).await;
    queues(&server)
        .create(&PostParams::default(), &queue("q", minimal_spec()))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    crds.delete("jobqueues.jobqueue.io", &DeleteParams::default())
        .await
        .unwrap();
    let e = queues(&server).get("q").await.unwrap_err();
    assert_eq!(api_error(e).code, 404);
    // Re-creating the CRD serves an empty collection.
    crds.create(&PostParams::default(), &JobQueue::crd())
        .await
        .unwrap();
    assert!(queues(&server).get_opt("q").await.unwrap().is_none());

    // A schema that is not structural is refused, naming where.
    let mut loose = serde_json::to_value(Schedule::crd()).unwrap();
    loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("type");
    crds.delete("schedules.jobqueue.io", &DeleteParams::default())
        .await
        .unwrap();
    let loose: CustomResourceDefinition = serde_json::from_value(loose).unwrap();
    let s = api_error(
        crds.create(&PostParams::default(), &loose)
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    assert!(
        s.message
            .contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].type"),
        "{}",
        s.message
    );

    let mut wrong = JobQueue::crd();
    wrong.metadata.name = Some("queues.jobqueue.io".into());
    let e = crds
        .create(&PostParams::default(), &wrong)
        .await
        .unwrap_err();
    let s = api_error(e);
    assert_eq!(s.code, 422);
    assert!(s.message.contains("metadata.name"), "{}", s.message);
}

#[tokio::test]
async fn a_deleted_crd_waits_for_its_objects_finalizers() {
    let server = TestApiServer::start().await;
    install_crds(&server).await;
    let api = queues(&server);
    let mut held = queue("held", minimal_spec());
    held.metadata.finalizers = Some(vec!["jobqueue.io/cleanup".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    api.create(&PostParams::default(), &queue("free", minimal_spec()))
        .await
        .unwrap();

    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    crds.delete("jobqueues.jobqueue.io", &DeleteParams::default())
        .await
        .unwrap();
    let crd = crds.get("jobqueues.jobqueue.io").await.unwrap();
    assert!(
        crd.metadata.deletion_timestamp.is_some(),
        "terminating while objects remain"
    );
    assert!(api.get_opt("free").await.unwrap().is_none());
    let h = api.get("held").await.unwrap();
    assert!(h.metadata.deletion_timestamp.is_some());
    let e = api
        .create(&PostParams::default(), &queue("late", minimal_spec()))
        .await
        .unwrap_err();
    assert_eq!(api_error(e).code, 405);

    // The operator's finalizer runs and is removed: the object, then the CRD, go.
    let release = json!({"metadata": {"finalizers": null}});
    api.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    assert!(
        crds.get_opt("jobqueues.jobqueue.io")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(api_error(api.get("held").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn custom_resource_updates_need_a_resource_version() {
    let server = TestApiServer::start().await;
    install_crds(&server).await;
    let api = queues(&server);
    let mut q = api
        .create(&PostParams::default(), &queue("q", minimal_spec()))
        .await
        .unwrap();
    q.metadata.resource_version = None;
    let s = api_error(
        api.replace("q", &PostParams::default(), &q)
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains("metadata.resourceVersion"),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn every_served_version_of_a_crd_serves_the_same_objects() {
    let server = TestApiServer::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let version = |name: &str, storage: bool| {
        json!({"name": name, "served": true, "storage": storage,
               "schema": {"openAPIV3Schema": {"type": "object",
                   "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}})
    };
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.io"},
        "spec": {"group": "example.io", "scope": "Cluster",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
                 "versions": [version("v1", true), version("v1beta1", false)]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let api_at = |v: &str| -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("example.io", v, "Widget");
        Api::all_with(server.client(), &ApiResource::from_gvk(&gvk))
    };
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.io/v1beta1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 3}
    }))
    .unwrap();
    api_at("v1beta1")
        .create(&PostParams::default(), &w)
        .await
        .unwrap();
    let got = api_at("v1").get("w").await.unwrap();
    assert_eq!(got.types.unwrap().api_version, "example.io/v1");
    assert_eq!(got.data["spec"]["size"], 3);
    assert!(got.metadata.namespace.is_none(), "cluster-scoped");
}
