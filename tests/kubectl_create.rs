//! The real `kubectl create` against the test API server: kubectl's typed create commands send
//! protobuf, which the server reads for every built-in kind. Each object is read back with
//! `kubectl get -o json` and through kube's typed `Api`, checking the fields kubectl set.
//!
//! Every test skips, saying so, when `kubectl` is not on PATH (a failure under `CI=true`).

use jobqueue_test_support::apiserver::TestApiServer;
use jobqueue_test_support::kubectl::Kubectl;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::Api;
use serde_json::json;

#[tokio::test]
async fn kubectl_create_deployment_job_and_service_are_read_back() {
    let server = TestApiServer::start().await;
    let Some(kubectl) = Kubectl::new(
        &server,
        "kubectl_create::kubectl_create_deployment_job_and_service_are_read_back",
    ) else {
        return;
    };
    let client = server.client();

    kubectl
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=80",
        ])
        .await;
    let d = kubectl.get_json("deployment", "web").await;
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["metadata"]["namespace"], "default");
    assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"],
        json!({"app": "web"})
    );
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["name"], "nginx");
    assert_eq!(c["image"], "nginx:1.27");
    assert_eq!(c["ports"], json!([{"containerPort": 80}]));
    // Zero-valued fields Go leaves out of JSON are not invented.
    assert!(d["metadata"].get("generateName").is_none(), "{d}");
    assert!(c.get("imagePullPolicy").is_none(), "{d}");

    let typed = Api::<Deployment>::default_namespaced(client.clone())
        .get("web")
        .await
        .unwrap();
    let spec = typed.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.containers[0].image.as_deref(), Some("nginx:1.27"));
    assert_eq!(
        pod.containers[0].ports.as_ref().unwrap()[0].container_port,
        80
    );

    kubectl
        .ok(&[
            "create",
            "job",
            "once",
            "--image=busybox:1.36",
            "--",
            "echo",
            "hi",
        ])
        .await;
    let j = kubectl.get_json("job", "once").await;
    assert_eq!(j["apiVersion"], "batch/v1");
    let pod = &j["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["containers"][0]["name"], "once");
    assert_eq!(pod["containers"][0]["image"], "busybox:1.36");
    assert_eq!(pod["containers"][0]["command"], json!(["echo", "hi"]));
    let typed = Api::<Job>::default_namespaced(client.clone())
        .get("once")
        .await
        .unwrap();
    let pod = typed.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        pod.containers[0].command,
        Some(vec!["echo".to_string(), "hi".to_string()])
    );

    kubectl
        .ok(&["create", "service", "clusterip", "redis", "--tcp=80:8080"])
        .await;
    let s = kubectl.get_json("service", "redis").await;
    assert_eq!(s["apiVersion"], "v1");
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(s["spec"]["selector"], json!({"app": "redis"}));
    assert_eq!(
        s["spec"]["ports"],
        json!([{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}])
    );
    let typed = Api::<Service>::default_namespaced(client.clone())
        .get("redis")
        .await
        .unwrap();
    let port = &typed.spec.unwrap().ports.unwrap()[0];
    assert_eq!(port.port, 80);
    assert_eq!(port.target_port, Some(IntOrString::Int(8080)));

    let failed: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.code >= 400)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[tokio::test]
async fn kubectl_create_cronjob_secret_and_configmap_are_read_back() {
    let server = TestApiServer::start().await;
    let Some(kubectl) = Kubectl::new(
        &server,
        "kubectl_create::kubectl_create_cronjob_secret_and_configmap_are_read_back",
    ) else {
        return;
    };
    let client = server.client();

    kubectl
        .ok(&[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox:1.36",
            "--schedule=0 3 * * *",
        ])
        .await;
    let cj = kubectl.get_json("cronjob", "nightly").await;
    assert_eq!(cj["spec"]["schedule"], "0 3 * * *");
    let typed = Api::<CronJob>::default_namespaced(client.clone())
        .get("nightly")
        .await
        .unwrap();
    let template = typed.spec.unwrap().job_template.spec.unwrap().template;
    assert_eq!(
        template.spec.unwrap().containers[0].image.as_deref(),
        Some("busybox:1.36")
    );

    kubectl
        .ok(&[
            "create",
            "secret",
            "generic",
            "redis",
            "--from-literal=url=redis://r:6379",
        ])
        .await;
    let s = kubectl.get_json("secret", "redis").await;
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"], json!({"url": "cmVkaXM6Ly9yOjYzNzk="}));
    let typed = Api::<Secret>::default_namespaced(client.clone())
        .get("redis")
        .await
        .unwrap();
    assert_eq!(typed.data.unwrap()["url"].0, b"redis://r:6379");

    kubectl
        .ok(&[
            "create",
            "configmap",
            "settings",
            "--from-literal=level=debug",
        ])
        .await;
    let typed = Api::<ConfigMap>::default_namespaced(client)
        .get("settings")
        .await
        .unwrap();
    assert_eq!(typed.data.unwrap()["level"], "debug");
}

/// A protobuf field: key (field number, wire type 2) and length-prefixed bytes (short only).
fn pb_field(n: u8, data: &[u8]) -> Vec<u8> {
    let len = u8::try_from(data.len()).expect("short field");
    assert!(len < 128 && n < 16);
    [&[(n << 3) | 2, len][..], data].concat()
}

#[tokio::test]
async fn a_protobuf_body_of_an_unknown_kind_gets_415_naming_it() {
    let server = TestApiServer::start().await;
    let type_meta = [pb_field(1, b"example.com/v1"), pb_field(2, b"Widget")].concat();
    let object = pb_field(1, &pb_field(1, b"w"));
    let body = [
        b"k8s\0".to_vec(),
        pb_field(1, &type_meta),
        pb_field(2, &object),
    ]
    .concat();
    let request = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(body)
        .unwrap();
    let err = server.client().request_text(request).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 415, "{status:?}");
    assert!(
        status.message.contains("example.com/v1 Widget"),
        "{}",
        status.message
    );
}
