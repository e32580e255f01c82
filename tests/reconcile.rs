//! The reconcilers called in-process, one test per branch: against the test API server (real
//! HTTP, the project's CRDs) and a private `redis-server`. Each test drives
//! `jobqueue::reconcile` / `schedule::reconcile` by hand and reads back what it wrote.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobqueue_operator::api::{JobQueue, Schedule};
use jobqueue_operator::operator::cluster::context::{Context, ReconcileError};
use jobqueue_operator::operator::cluster::{jobqueue, schedule};
use jobqueue_operator::operator::metrics::Metrics;
use jobqueue_operator::operator::runtime::RuntimeOptions;
use jobqueue_test_support::apiserver::TestApiServer;
use jobqueue_test_support::redis::RedisServer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const NS: &str = "default";

struct Harness {
    _server: TestApiServer,
    ctx: Arc<Context>,
    queues: Api<JobQueue>,
    schedules: Api<Schedule>,
    redis: RedisServer,
}

impl Harness {
    async fn start() -> Self {
        let server = TestApiServer::start().await;
        server.install_project_crds().await;
        let client = server.client();
        let redis = RedisServer::start();
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        let (ctx, status_task) = Context::build(
            client.clone(),
            RuntimeOptions::default(),
            metrics,
            redis.url(),
            "reconcile-test".into(),
        );
        tokio::spawn(status_task);
        Harness {
            _server: server,
            ctx,
            queues: Api::namespaced(client.clone(), NS),
            schedules: Api::namespaced(client, NS),
            redis,
        }
    }

    async fn create_queue(&self, name: &str, spec: Value) {
        let jq: JobQueue = serde_json::from_value(json!({
            "apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue",
            "metadata": {"name": name, "namespace": NS}, "spec": spec,
        }))
        .expect("JobQueue fixture");
        self.queues
            .create(&PostParams::default(), &jq)
            .await
            .expect("creating the JobQueue");
    }

    /// One reconcile of the JobQueue as stored now.
    async fn reconcile_queue(&self, name: &str) -> Result<Action, ReconcileError> {
        let jq = self.queues.get(name).await.expect("reading the JobQueue");
        jobqueue::reconcile(Arc::new(jq), self.ctx.clone()).await
    }

    /// Reconciles until the finalizer is in place and the spec was acted on (the first
    /// reconcile of a new object only adds the finalizer).
    async fn apply_queue(&self, name: &str) -> Result<Action, ReconcileError> {
        let first = self.reconcile_queue(name).await;
        let jq = self.queues.get(name).await.expect("reading the JobQueue");
        assert!(
            jq.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == jobqueue::FINALIZER),
            "the first reconcile adds the finalizer: {first:?}"
        );
        self.reconcile_queue(name).await
    }

    /// Waits for the JobQueue's condition `type_` to have `status`.
    async fn queue_condition(&self, name: &str, type_: &str, status: &str) -> Condition {
        let started = Instant::now();
        loop {
            let jq = self.queues.get(name).await.expect("reading the JobQueue");
            let found = jq
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .find(|c| c.type_ == type_ && c.status == status)
                .cloned();
            if let Some(c) = found {
                return c;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "JobQueue {name}: no {type_}={status} condition; status: {:?}",
                jq.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn redis_conn(&self) -> jobqueue_operator::queue::RedisConn {
        jobqueue_operator::queue::connect(&self.redis.url())
            .await
            .expect("connecting to the test Redis")
    }

    async fn redis_exists(&self, key: &str) -> bool {
        let client = redis::Client::open(self.redis.url()).expect("redis URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to the test Redis");
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut conn)
            .await
            .expect("EXISTS")
            > 0
    }

    /// Deletes the JobQueue (it stays, marked, until its finalizer goes) and reconciles it.
    async fn delete_queue(&self, name: &str) -> Result<Action, ReconcileError> {
        self.queues
            .delete(name, &DeleteParams::default())
            .await
            .expect("deleting the JobQueue");
        let result = self.reconcile_queue(name).await;
        if result.is_ok() {
            assert!(
                self.queues.get_opt(name).await.expect("reading").is_none(),
                "the finalizer was removed and the JobQueue is gone"
            );
        }
        result
    }
}

#[tokio::test]
async fn an_invalid_spec_waits_for_a_change() {
    let h = Harness::start().await;
    h.create_queue("bad", json!({"deadLetter": {"stream": "elsewhere"}}))
        .await;
    let action = h
        .apply_queue("bad")
        .await
        .expect("an invalid spec is no error");
    assert_eq!(action, Action::await_change());
    let c = h.queue_condition("bad", "Ready", "False").await;
    assert_eq!(c.reason, "InvalidSpec");
    assert!(
        c.message.contains("spec.deadLetter.stream"),
        "{}",
        c.message
    );
}

#[tokio::test]
async fn a_missing_secret_is_waited_for() {
    let h = Harness::start().await;
    h.create_queue(
        "nosecret",
        json!({"redis": {"urlSecretRef": {"name": "absent", "key": "url"}}}),
    )
    .await;
    let action = h
        .apply_queue("nosecret")
        .await
        .expect("a missing Secret is no error");
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let c = h.queue_condition("nosecret", "Ready", "False").await;
    assert_eq!(c.reason, "RedisSecretMissing");
    assert!(
        c.message.contains("absent") && c.message.contains("spec.redis.urlSecretRef.name"),
        "{}",
        c.message
    );
}

#[tokio::test]
async fn a_missing_scale_target_is_waited_for() {
    let h = Harness::start().await;
    h.create_queue(
        "notarget",
        json!({"workers": {"scaleTargetRef": {"name": "thumbnail-worker"}}}),
    )
    .await;
    let action = h
        .apply_queue("notarget")
        .await
        .expect("a missing target is no error");
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let c = h.queue_condition("notarget", "Ready", "False").await;
    assert_eq!(c.reason, "ScaleTargetNotFound");
    assert!(c.message.contains("thumbnail-worker"), "{}", c.message);
}

#[tokio::test]
async fn an_unreachable_redis_backs_off() {
    let h = Harness::start().await;
    h.create_queue("nowhere", json!({"redis": {"url": "redis://127.0.0.1:1"}}))
        .await;
    let error = h.apply_queue("nowhere").await.expect_err("Redis is down");
    assert!(matches!(error, ReconcileError::Redis(_)), "{error:?}");
    let c = h.queue_condition("nowhere", "Ready", "False").await;
    assert_eq!(c.reason, "RedisUnreachable");
    h.queue_condition("nowhere", "RedisReachable", "False")
        .await;
    let jq = Arc::new(h.queues.get("nowhere").await.expect("reading"));
    let delays: Vec<Action> = (0..3)
        .map(|_| jobqueue::error_policy(jq.clone(), &error, h.ctx.clone()))
        .collect();
    assert_eq!(
        delays,
        vec![
            Action::requeue(Duration::from_secs(1)),
            Action::requeue(Duration::from_secs(2)),
            Action::requeue(Duration::from_secs(4)),
        ],
        "the retry delay grows"
    );
}

#[tokio::test]
async fn a_valid_queue_is_provisioned_and_ready() {
    let h = Harness::start().await;
    h.create_queue("emails", json!({})).await;
    let action = h.apply_queue("emails").await.expect("provisioned");
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let c = h.queue_condition("emails", "Ready", "True").await;
    assert_eq!(c.reason, "Provisioned");
    assert!(h.redis_exists("jobqueue:{default/emails}").await);
}

#[tokio::test]
async fn spec_jobs_lands_in_the_settings_hash_and_the_library_is_loaded() {
    let h = Harness::start().await;
    h.create_queue(
        "reports",
        json!({"jobs": {"succeededTTL": "1h", "deadTTL": "2h", "maxResultSize": 2048}}),
    )
    .await;
    h.apply_queue("reports").await.expect("provisioned");
    let mut conn = redis::Client::open(h.redis.url())
        .expect("redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to the test Redis");
    let settings: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg("jobqueue:{default/reports}:settings")
        .query_async(&mut conn)
        .await
        .expect("HGETALL");
    assert_eq!(settings["tracking"], "1", "{settings:?}");
    assert_eq!(settings["succeeded_ttl_ms"], "3600000");
    assert_eq!(settings["dead_ttl_ms"], "7200000");
    assert_eq!(settings["max_result_size"], "2048");
    assert_eq!(settings["group"], "workers");
    let version: i64 = redis::cmd("FCALL_RO")
        .arg("jobqueue_version")
        .arg(0)
        .query_async(&mut conn)
        .await
        .expect("the jobqueue library is loaded");
    assert_eq!(version, jobqueue_operator::queue::jobs::LIBRARY_VERSION);

    // A changed spec is stored again.
    let mut jq = h.queues.get("reports").await.expect("reading the JobQueue");
    jq.spec.jobs.tracking = false;
    h.queues
        .replace("reports", &PostParams::default(), &jq)
        .await
        .expect("updating the JobQueue");
    h.reconcile_queue("reports").await.expect("reconciled");
    let tracking: String = redis::cmd("HGET")
        .arg("jobqueue:{default/reports}:settings")
        .arg("tracking")
        .query_async(&mut conn)
        .await
        .expect("HGET");
    assert_eq!(tracking, "0");
}

#[tokio::test]
async fn deletion_with_delete_policy_removes_the_data() {
    let h = Harness::start().await;
    h.create_queue("gone", json!({"deletionPolicy": "Delete"}))
        .await;
    h.apply_queue("gone").await.expect("provisioned");
    let mut conn = h.redis_conn().await;
    let keys = jobqueue_operator::queue::keys::QueueKeys::new("jobqueue:{default/gone}");
    let job = jobqueue_operator::queue::enqueue(&mut conn, &keys, &json!({}), &Default::default())
        .await
        .expect("enqueue");
    let lasting = [
        keys.stream.clone(),
        keys.settings(),
        keys.events(),
        keys.job(&job.job_id),
    ];
    for key in &lasting {
        assert!(h.redis_exists(key).await, "{key} before");
    }
    assert_eq!(
        h.delete_queue("gone").await.expect("cleanup"),
        Action::await_change()
    );
    // Everything that would never expire is gone; a job record keeps its TTL.
    for key in &lasting[..3] {
        assert!(!h.redis_exists(key).await, "{key} after");
    }
    let ttl: i64 = redis::cmd("PTTL")
        .arg(keys.job(&job.job_id))
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!(ttl > 0, "the record expires: {ttl}");
}

#[tokio::test]
async fn deletion_with_retain_policy_keeps_the_data() {
    let h = Harness::start().await;
    h.create_queue("kept", json!({"deletionPolicy": "Retain"}))
        .await;
    h.apply_queue("kept").await.expect("provisioned");
    assert_eq!(
        h.delete_queue("kept").await.expect("cleanup"),
        Action::await_change()
    );
    assert!(h.redis_exists("jobqueue:{default/kept}").await);
}

#[tokio::test]
async fn deletion_of_a_never_provisioned_queue_does_not_wait_for_its_secret() {
    let h = Harness::start().await;
    h.create_queue(
        "never",
        json!({"redis": {"urlSecretRef": {"name": "absent", "key": "url"}}, "deletionPolicy": "Delete"}),
    )
    .await;
    h.apply_queue("never")
        .await
        .expect("a missing Secret is no error");
    assert_eq!(
        h.delete_queue("never").await.expect("cleanup"),
        Action::await_change()
    );
}

#[tokio::test]
async fn a_schedule_without_its_queue_waits_for_it() {
    let h = Harness::start().await;
    let s: Schedule = serde_json::from_value(json!({
        "apiVersion": "jobqueue.io/v1alpha1", "kind": "Schedule",
        "metadata": {"name": "nightly", "namespace": NS},
        "spec": {"schedule": "@daily", "queueRef": {"name": "absent"}},
    }))
    .expect("Schedule fixture");
    h.schedules
        .create(&PostParams::default(), &s)
        .await
        .expect("creating the Schedule");
    let reconcile = || async {
        let s = h.schedules.get("nightly").await.expect("reading");
        schedule::reconcile(Arc::new(s), h.ctx.clone()).await
    };
    reconcile().await.expect("adding the finalizer");
    let action = reconcile().await.expect("a missing queue is no error");
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
}
