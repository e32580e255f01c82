//! The scenario: every path of the operator that touches the Kubernetes API, driven as a user
//! and a ReplicaSet controller would (a failed step panics with the reason).

use std::process::Child;
use std::time::{Duration, Instant};

use jobqueue_test_support::helm;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use crate::mine::Mine;
use crate::{APPS, DEADLINE};

/// The steps, in order.
pub async fn scenario(
    mine: &Mine<'_>,
    client: &kube::Client,
    redis_url: &str,
    rendered: &helm::Rendered,
    log_path: &std::path::Path,
    operator: &mut Child,
) {
    let metrics_port = bound_port(log_path).await;
    let apps = Apps::new(mine, client, redis_url);
    probes_answer(rendered, metrics_port).await;
    let stream = apps.emails_created().await;
    apps.emails_scales_up(&stream).await;
    apps.emails_scales_in_busy_pod_last(&stream).await;
    let thumbs_stream = apps.user_deployment_scaled().await;
    apps.user_statefulset_scaled().await;
    apps.digests_url_in_a_secret().await;
    apps.nightly_schedule().await;
    apps.everything_deleted(&stream, &thumbs_stream).await;
    sigterm_stops_the_operator(operator).await;
}

/// The chart's probes point at endpoints the operator serves.
async fn probes_answer(rendered: &helm::Rendered, metrics_port: u16) {
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = rendered.container()[probe]["httpGet"]["path"]
            .as_str()
            .unwrap();
        eventually(
            DEADLINE,
            &format!("{probe} {path} to answer 200"),
            || async {
                http_get(metrics_port, path)
                    .await
                    .contains(" 200")
                    .then_some(())
            },
        )
        .await;
    }
}

/// SIGTERM: the operator stops and releases its Lease.
async fn sigterm_stops_the_operator(operator: &mut Child) {
    unsafe { libc::kill(operator.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = operator.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the operator did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "operator exit status {status}");
}

/// The APIs of the apps' namespace, each call recorded as the test's own.
struct Apps<'a> {
    mine: &'a Mine<'a>,
    redis_url: &'a str,
    queues: Api<DynamicObject>,
    schedules: Api<DynamicObject>,
    deployments: Api<Deployment>,
    statefulsets: Api<StatefulSet>,
    pods: Api<Pod>,
    secrets: Api<Secret>,
}

impl<'a> Apps<'a> {
    fn new(mine: &'a Mine<'a>, client: &kube::Client, redis_url: &'a str) -> Self {
        Apps {
            mine,
            redis_url,
            queues: Api::namespaced_with(client.clone(), APPS, &resource("JobQueue")),
            schedules: Api::namespaced_with(client.clone(), APPS, &resource("Schedule")),
            deployments: Api::namespaced(client.clone(), APPS),
            statefulsets: Api::namespaced(client.clone(), APPS),
            pods: Api::namespaced(client.clone(), APPS),
            secrets: Api::namespaced(client.clone(), APPS),
        }
    }

    /// The replica count in a Deployment's spec.
    async fn replicas(&self, name: &str) -> Option<i32> {
        self.mine
            .call("get", "deployments", self.deployments.get(name))
            .await
            .ok()
            .and_then(|d| d.spec?.replicas)
    }

    /// A queue with a worker template, its Redis URL in a Secret, scaling from the backlog;
    /// returns its stream.
    async fn emails_created(&self) -> String {
        let pp = PostParams::default();
        // A queue with a worker template, its Redis URL in a Secret, scaling from the backlog.
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "redis", "namespace": APPS},
            "stringData": {"url": self.redis_url},
        }))
        .unwrap();
        self.mine
            .call("create", "secrets", self.secrets.create(&pp, &secret))
            .await
            .unwrap();
        let emails = object(
            "JobQueue",
            "emails",
            json!({
                "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
                "workers": {"template": {"spec": {"containers": [
                    {"name": "worker", "image": "example/worker:1"}]}}},
                "scaling": {"minReplicas": 1, "maxReplicas": 4, "targetPerReplica": 2,
                            "pollInterval": "200ms", "scaleDown": {"stabilizationWindow": "0s"}},
                "deletionPolicy": "Delete",
            }),
        );
        self.mine
            .call("create", "jobqueues", self.queues.create(&pp, &emails))
            .await
            .unwrap();
        let emails = eventually(DEADLINE, "emails to be Ready", || async {
            let q = self
                .mine
                .call("get", "jobqueues", self.queues.get("emails"))
                .await
                .ok()?;
            is_ready(&q).then_some(q)
        })
        .await;
        let stream = emails.data["status"]["stream"]
            .as_str()
            .unwrap()
            .to_string();
        eventually(DEADLINE, "the worker Deployment", || async {
            self.replicas("emails-workers").await
        })
        .await;

        stream
    }

    /// Worker pods and a backlog of 8 jobs scale the queue up to 4 workers.
    async fn emails_scales_up(&self, stream: &str) {
        let pp = PostParams::default();
        // Worker pods (no ReplicaSet controller here: the test plays it) and a backlog of 8 jobs.
        for name in ["emails-workers-a", "emails-workers-b"] {
            self.mine
                .call(
                    "create",
                    "pods",
                    self.pods.create(&pp, &worker_pod(name, "emails")),
                )
                .await
                .unwrap();
        }
        enqueue(self.redis_url, stream, 8);
        eventually(DEADLINE, "scale-up to 4 workers", || async {
            (self.replicas("emails-workers").await? == 4).then_some(())
        })
        .await;
    }

    /// The queue scales in, the busy pod ranked to go last; then the busy pod goes away.
    async fn emails_scales_in_busy_pod_last(&self, stream: &str) {
        // Worker a takes all 8 and finishes 7: backlog 1, so the queue scales in, after ranking
        // the pods so that the busy one is removed last.
        {
            let mut con = redis_cmd(self.redis_url);
            let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("workers")
                .arg("emails-workers-a")
                .arg("COUNT")
                .arg(8)
                .arg("STREAMS")
                .arg(stream)
                .arg(">")
                .query(&mut con)
                .unwrap();
            let ids: Vec<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
            assert_eq!(ids.len(), 8);
            let _: i64 = redis::cmd("XACK")
                .arg(stream)
                .arg("workers")
                .arg(&ids[1..])
                .query(&mut con)
                .unwrap();
        }
        eventually(DEADLINE, "scale-in to 1 worker", || async {
            (self.replicas("emails-workers").await? == 1).then_some(())
        })
        .await;
        let cost = |pod: Pod| -> i64 {
            pod.metadata
                .annotations
                .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost").cloned())
                .and_then(|c| c.parse().ok())
                .unwrap_or(i64::MIN)
        };
        let busy = cost(
            self.mine
                .call("get", "pods", self.pods.get("emails-workers-a"))
                .await
                .unwrap(),
        );
        let idle = cost(
            self.mine
                .call("get", "pods", self.pods.get("emails-workers-b"))
                .await
                .unwrap(),
        );
        assert!(busy > idle, "busy worker cost {busy}, idle {idle}");

        // The busy worker's pod goes away: its job is handed out again (not the API's business,
        // but the operator watches pods for it).
        self.mine
            .call(
                "delete",
                "pods",
                self.pods
                    .delete("emails-workers-a", &DeleteParams::default()),
            )
            .await
            .unwrap();
    }

    /// A queue that only scales the user's own Deployment; returns its stream.
    async fn user_deployment_scaled(&self) -> String {
        let pp = PostParams::default();
        let user_deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "thumbnail-worker", "namespace": APPS},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "thumbnails"}},
                     "template": {"metadata": {"labels": {"app": "thumbnails"}},
                                  "spec": {"containers": [{"name": "w", "image": "example/thumbs:1"}]}}},
        }))
        .unwrap();
        self.mine
            .call(
                "create",
                "deployments",
                self.deployments.create(&pp, &user_deployment),
            )
            .await
            .unwrap();
        let thumbnails = object(
            "JobQueue",
            "thumbnails",
            json!({
                "redis": {"url": self.redis_url},
                "workers": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                               "name": "thumbnail-worker"}},
                "scaling": {"maxReplicas": 3, "targetPerReplica": 1, "pollInterval": "200ms"},
            }),
        );
        self.mine
            .call("create", "jobqueues", self.queues.create(&pp, &thumbnails))
            .await
            .unwrap();
        let thumbnails = eventually(DEADLINE, "thumbnails to be Ready", || async {
            let q = self
                .mine
                .call("get", "jobqueues", self.queues.get("thumbnails"))
                .await
                .ok()?;
            is_ready(&q).then_some(q)
        })
        .await;
        let thumbs_stream = thumbnails.data["status"]["stream"]
            .as_str()
            .unwrap()
            .to_string();
        enqueue(self.redis_url, &thumbs_stream, 2);
        eventually(DEADLINE, "the user's Deployment scaled to 2", || async {
            (self.replicas("thumbnail-worker").await? == 2).then_some(())
        })
        .await;

        thumbs_stream
    }

    /// A queue scaling the user's StatefulSet (the chart's default rbac.scaleTargets).
    async fn user_statefulset_scaled(&self) {
        let pp = PostParams::default();
        let user_statefulset: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "report-worker", "namespace": APPS},
            "spec": {"replicas": 0, "serviceName": "report-worker",
                     "selector": {"matchLabels": {"app": "reports"}},
                     "template": {"metadata": {"labels": {"app": "reports"}},
                                  "spec": {"containers": [{"name": "w", "image": "example/reports:1"}]}}},
        }))
        .unwrap();
        self.mine
            .call(
                "create",
                "statefulsets",
                self.statefulsets.create(&pp, &user_statefulset),
            )
            .await
            .unwrap();
        let reports = object(
            "JobQueue",
            "reports",
            json!({
                "redis": {"url": self.redis_url},
                "workers": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                               "name": "report-worker"}},
                "scaling": {"maxReplicas": 2, "targetPerReplica": 1, "pollInterval": "200ms"},
            }),
        );
        self.mine
            .call("create", "jobqueues", self.queues.create(&pp, &reports))
            .await
            .unwrap();
        let reports = eventually(DEADLINE, "reports to be Ready", || async {
            let q = self
                .mine
                .call("get", "jobqueues", self.queues.get("reports"))
                .await
                .ok()?;
            is_ready(&q).then_some(q)
        })
        .await;
        enqueue(
            self.redis_url,
            reports.data["status"]["stream"].as_str().unwrap(),
            1,
        );
        eventually(DEADLINE, "the user's StatefulSet scaled to 1", || async {
            let s = self
                .mine
                .call(
                    "get",
                    "statefulsets",
                    self.statefulsets.get("report-worker"),
                )
                .await
                .ok()?;
            (s.spec?.replicas? == 1).then_some(())
        })
        .await;
    }

    /// A queue on the operator's default Redis with a worker template: the URL reaches the
    /// workers through a Secret the operator writes, never as plain env.
    async fn digests_url_in_a_secret(&self) {
        let pp = PostParams::default();
        let digests = object(
            "JobQueue",
            "digests",
            json!({"workers": {"template": {"spec": {"containers": [
                {"name": "worker", "image": "example/digests:1"}]}}}}),
        );
        self.mine
            .call("create", "jobqueues", self.queues.create(&pp, &digests))
            .await
            .unwrap();
        eventually(DEADLINE, "digests to be Ready", || async {
            let q = self
                .mine
                .call("get", "jobqueues", self.queues.get("digests"))
                .await
                .ok()?;
            is_ready(&q).then_some(())
        })
        .await;
        let url_secret = self
            .mine
            .call("get", "secrets", self.secrets.get("digests-workers-redis"))
            .await
            .expect("the operator wrote the workers' URL Secret");
        // The queue's own Redis user at the default Redis (per-queue users, auto).
        let url =
            url::Url::parse(std::str::from_utf8(&url_secret.data.unwrap()["url"].0).expect("text"))
                .expect("a URL");
        let default = url::Url::parse(self.redis_url).expect("the default URL");
        assert_eq!(
            url.username(),
            "jq.apps.digests",
            "the queue's own Redis user"
        );
        assert_eq!(
            (url.host_str(), url.port()),
            (default.host_str(), default.port()),
            "at the default Redis"
        );
        let workers = self
            .mine
            .call(
                "get",
                "deployments",
                self.deployments.get("digests-workers"),
            )
            .await
            .unwrap();
        let env = &workers.spec.unwrap().template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap()[0];
        assert_eq!(env.name, "REDIS_URL");
        assert_eq!(env.value, None, "the default URL is not in the Deployment");
        let from = env.value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            ("digests-workers-redis", "url")
        );
    }

    /// A Schedule (it need not fire: its controller's API use is the point).
    async fn nightly_schedule(&self) {
        let pp = PostParams::default();
        let nightly = object(
            "Schedule",
            "nightly",
            json!({"schedule": "0 3 * * *", "queueRef": {"name": "thumbnails"}, "payload": {"k": 1}}),
        );
        self.mine
            .call("create", "schedules", self.schedules.create(&pp, &nightly))
            .await
            .unwrap();
        eventually(DEADLINE, "nightly to be Ready", || async {
            let s = self
                .mine
                .call("get", "schedules", self.schedules.get("nightly"))
                .await
                .ok()?;
            is_ready(&s).then_some(())
        })
        .await;
    }

    /// Everything deleted: the finalizers run (emails' data is deleted, thumbnails' kept).
    async fn everything_deleted(&self, stream: &str, thumbs_stream: &str) {
        let dp = DeleteParams::default();
        self.mine
            .call("delete", "schedules", self.schedules.delete("nightly", &dp))
            .await
            .unwrap();
        for name in ["emails", "thumbnails", "reports", "digests"] {
            self.mine
                .call("delete", "jobqueues", self.queues.delete(name, &dp))
                .await
                .unwrap();
        }
        for (api, kind, resource, name) in [
            (&self.schedules, "Schedule", "schedules", "nightly"),
            (&self.queues, "JobQueue", "jobqueues", "emails"),
            (&self.queues, "JobQueue", "jobqueues", "thumbnails"),
            (&self.queues, "JobQueue", "jobqueues", "reports"),
            (&self.queues, "JobQueue", "jobqueues", "digests"),
        ] {
            eventually(DEADLINE, &format!("{kind} {name} to be gone"), || async {
                match self.mine.call("get", resource, api.get(name)).await {
                    Err(kube::Error::Api(e)) if e.code == 404 => Some(()),
                    _ => None,
                }
            })
            .await;
        }
        let mut con = redis_cmd(self.redis_url);
        let exists = |key: &str, con: &mut redis::Connection| -> bool {
            redis::cmd("EXISTS").arg(key).query::<i64>(con).unwrap() == 1
        };
        assert!(
            !exists(stream, &mut con),
            "deletionPolicy: Delete removed the stream"
        );
        assert!(
            exists(thumbs_stream, &mut con),
            "deletionPolicy: Retain kept it"
        );
    }
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("jobqueue.io", "v1alpha1", kind))
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "jobqueue.io/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": APPS}, "spec": spec,
    }))
    .unwrap()
}

fn is_ready(obj: &DynamicObject) -> bool {
    obj.data["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn worker_pod(name: &str, queue: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": APPS,
                     "labels": {jobqueue_operator::operator::workload::QUEUE_LABEL: queue}},
        "spec": {"containers": [{"name": "worker", "image": "example/worker:1"}]},
    }))
    .unwrap()
}

fn redis_cmd(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection()
        .expect("connect to the test redis-server")
}

fn enqueue(url: &str, stream: &str, n: usize) {
    let mut con = redis_cmd(url);
    for i in 0..n {
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("id")
            .arg(format!("job-{i}"))
            .arg("payload")
            .arg("{}")
            .arg("enqueued_at")
            .arg(0)
            .arg("attempt")
            .arg(1)
            .query(&mut con)
            .unwrap();
    }
}

/// GET `path` on the operator's HTTP port; the status line.
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.lines().next().unwrap_or_default().to_string()
}

/// The port the operator bound for its HTTP endpoints (it binds port 0 and logs the
/// address: a port picked here could be taken by a concurrent test's Redis before it binds).
async fn bound_port(log: &std::path::Path) -> u16 {
    eventually(DEADLINE, "the operator to log its HTTP address", || async {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let addr = text.split("bound=").nth(1)?.split_whitespace().next()?;
        addr.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
    })
    .await
}
