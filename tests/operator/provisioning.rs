//! A JobQueue provisioned and served for its whole life: its stream and group, the owned worker
//! Deployment wired to them, scaling 0 → 8 → 0, `/metrics`, and its deletion. The steps of that
//! one story live with their own stories ([`crate::scaling`], [`crate::endpoints`],
//! [`crate::schedules`], [`crate::deletion`]).

use std::collections::BTreeMap;
use std::time::Duration;

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::operator::{Cluster, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, DynamicObject};
use serde_json::json;

use crate::fixtures::{Conn, secret};
use crate::{deletion, endpoints, scaling, schedules};

/// Provisioning, the owned worker Deployment, scaling 0 → 8 → 0 with Events, `/metrics`,
/// `/healthz`, `/readyz`, and both deletion policies plus a Schedule's removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_provisioning_scaling_metrics_and_deletion() {
    let cluster = Cluster::start("queue_provisioning_scaling_metrics_and_deletion").await;
    let redis = RedisServer::start();
    let conn = redis_conn(&redis.url()).await;
    secret(&cluster, "redis", &[("url", &redis.url())]).await;
    // The operator's default Redis is unreachable: every queue here names its own.
    let operator = cluster.operator("redis://127.0.0.1:1", "op-a", &[]);

    let emails = create_emails(&cluster).await;
    let keys = assert_provisioned(&cluster, &conn, &emails).await;
    assert_worker_deployment(&cluster, &emails, &keys).await;
    schedules::reports_with_a_ticking_schedule(&cluster, &conn, &redis.url()).await;

    let scaled_up_after = scaling::burst_scales_to_eight(&cluster, &conn, &keys).await;
    scaling::status_tells_the_same_story(&cluster).await;
    // 7. /metrics, /healthz, /readyz, while the backlog is there.
    let addr = operator.http_addr().await;
    endpoints::serve_the_backlog(addr).await;
    let last_ack_sent = scaling::lost_worker_jobs_handed_out_again(&cluster, &conn, &keys).await;
    let zero_after = scaling::back_to_zero_after_the_cooldown(&cluster, last_ack_sent).await;
    eprintln!(
        "scaled 0 → 8 {scaled_up_after:?} after 5,000 jobs were visible; to 0 {zero_after:?} after the backlog hit zero"
    );
    scaling::one_scale_write_per_scale_event(&cluster, addr).await;
    worker_deployment_recreated(&cluster).await;
    schedules::fires_total_counts_every_run(&cluster, &conn, addr).await;
    deletion::delete_and_retain(&cluster, &conn, &keys).await;
}

/// The queue the story follows: its own Redis from a Secret, a worker template, fast scaling,
/// `deletionPolicy: Delete`.
async fn create_emails(cluster: &Cluster) -> DynamicObject {
    cluster
        .create(
            "JobQueue",
            "emails",
            json!({
                "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
                "workers": {"template": {"spec": {"containers": [
                    {"name": "worker", "image": "registry.example/worker:1",
                     "env": [{"name": "MODE", "value": "fast"}]}
                ]}}},
                "scaling": {
                    "maxReplicas": 8, "targetPerReplica": 500, "pollInterval": "1s",
                    "cooldown": "3s", "scaleDown": {"stabilizationWindow": "0s"}
                },
                "deletionPolicy": "Delete"
            }),
        )
        .await
}

/// Ready=True for this generation, the group exists, and the Provisioned Event says so.
async fn assert_provisioned(cluster: &Cluster, conn: &Conn, emails: &DynamicObject) -> QueueKeys {
    let mut conn = conn.clone();
    // 1. Ready=True for this generation, the group exists, the Deployment is owned and wired.
    let ready = cluster
        .condition(
            "JobQueue",
            "emails",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(ready.observed_generation, emails.metadata.generation);
    let keys = QueueKeys::new(default_stream("default", "emails"));
    let groups: Vec<String> = {
        let reply: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&keys.stream)
            .query_async(&mut conn)
            .await
            .expect("XINFO GROUPS on the queue's stream");
        reply.groups.into_iter().map(|g| g.name).collect()
    };
    assert_eq!(groups, ["workers"]);
    cluster
        .event(
            "JobQueue",
            "emails",
            "Provisioned",
            &["created", "\"workers\""],
        )
        .await;
    keys
}

/// The worker Deployment is owned by the queue and wired to its stream, group and Secret.
async fn assert_worker_deployment(cluster: &Cluster, emails: &DynamicObject, keys: &QueueKeys) {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let deployment = eventually(Duration::from_secs(10), "the worker Deployment", || async {
        deployments
            .get_opt("emails-workers")
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "absent".to_string())
    })
    .await;
    let owner = &deployment
        .metadata
        .owner_references
        .as_ref()
        .expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("JobQueue", "emails", Some(true))
    );
    assert_eq!(Some(&owner.uid), emails.metadata.uid.as_ref());
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(0), "starts at minReplicas");
    let env = spec.template.spec.expect("pod spec").containers[0]
        .env
        .clone()
        .expect("env");
    let by_name: BTreeMap<_, _> = env.iter().map(|e| (e.name.as_str(), e)).collect();
    let url_ref = by_name["REDIS_URL"]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("REDIS_URL from the Secret");
    assert_eq!(
        (url_ref.name.as_str(), url_ref.key.as_str()),
        ("redis", "url")
    );
    assert_eq!(
        by_name["REDIS_URL"].value, None,
        "the URL is never copied in plain text"
    );
    assert_eq!(
        by_name["JOBQUEUE_STREAM"].value.as_deref(),
        Some(keys.stream.as_str())
    );
    assert_eq!(by_name["JOBQUEUE_GROUP"].value.as_deref(), Some("workers"));
    let consumer = by_name["JOBQUEUE_CONSUMER"]
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("JOBQUEUE_CONSUMER from the downward API");
    assert_eq!(consumer.field_path, "metadata.name");
    assert_eq!(
        by_name["MODE"].value.as_deref(),
        Some("fast"),
        "user env kept"
    );
}

/// The worker Deployment deleted behind the operator's back comes back, owned again.
async fn worker_deployment_recreated(cluster: &Cluster) {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let uid = deployments
        .get("emails-workers")
        .await
        .expect("get")
        .metadata
        .uid;
    deployments
        .delete("emails-workers", &DeleteParams::default())
        .await
        .expect("deleting the worker Deployment");
    eventually(
        Duration::from_secs(15),
        "the worker Deployment recreated",
        || async {
            match deployments.get_opt("emails-workers").await {
                Ok(Some(d)) if d.metadata.uid != uid && d.metadata.owner_references.is_some() => {
                    Ok(())
                }
                other => Err(format!("{:?}", other.map(|d| d.map(|d| d.metadata.uid)))),
            }
        },
    )
    .await;
}
