//! End to end: the real `jobqueue-operator run` binary against the test API server
//! and private redis-server processes. Each test is one story a cluster admin relies on:
//! - provisioning, the owned worker Deployment, scaling 0 → 8 → 0 (after the cooldown) with
//!   Events, a lost worker's jobs handed out again at once, `/metrics`, `/healthz`, `/readyz`,
//!   and the deletion policies;
//! - every-second Schedules firing exactly once while the leader of two replicas is SIGKILLed
//!   (Skip and FireOnce accounted run by run), and a replica that loses its Lease going quiet;
//! - Redis SIGKILLed and restarted from its snapshot; a queue on a Redis Cluster;
//! - resources the schema cannot reject (bad cron, zone, queue, Secret key, scale target,
//!   unreachable Redis), and the README quickstart through `kubectl` where it is installed.
//!
//! Conditions are awaited by bounded polling; nothing sleeps in place of synchronisation.
//! Every test leaves the operator's API accesses in `target/rbac-observed/<test>.json`.

mod operator_support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::tools;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use operator_support::{
    Cluster, eventually, http_get, jobs, jobs_at_least, parse_metrics, redis_conn, value,
};
use serde_json::json;

const POLL_INTERVAL: Duration = Duration::from_secs(1);
const COOLDOWN: Duration = Duration::from_secs(3);
/// Added to every bound derived from the operator's intervals: process start, API round trips
/// and a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_secs(4);

async fn secret(cluster: &Cluster, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(cluster.client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating a Secret");
}

fn worker_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"jobqueue.io/queue": "emails"}},
        "spec": {"containers": [{"name": "worker", "image": "registry.example/worker:1"}]}
    }))
    .expect("pod")
}

/// XREADGROUP as consumer `consumer`: (entry id, job id) of up to `count` new jobs.
async fn read_group(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    consumer: &str,
    count: usize,
) -> Vec<(String, String)> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| {
            let job: String = e.get("id").expect("every job has an id");
            (e.id, job)
        })
        .collect()
}

async fn replicas(cluster: &Cluster, deployment: &str) -> i32 {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    api.get_scale(deployment)
        .await
        .expect("reading the scale subresource")
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(0)
}

/// Stream keys still present for a queue.
async fn existing_keys(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &QueueKeys,
) -> Vec<String> {
    let mut found = Vec::new();
    for key in [
        keys.stream.clone(),
        keys.delayed(),
        keys.dead(),
        keys.schedules(),
    ] {
        let n: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(conn)
            .await
            .expect("EXISTS");
        if n > 0 {
            found.push(key);
        }
    }
    found
}

/// Provisioning, the owned worker Deployment, scaling 0 → 8 → 0 with Events, `/metrics`,
/// `/healthz`, `/readyz`, and both deletion policies plus a Schedule's removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_provisioning_scaling_metrics_and_deletion() {
    let cluster = Cluster::start("queue_provisioning_scaling_metrics_and_deletion").await;
    let redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    secret(&cluster, "redis", &[("url", &redis.url())]).await;
    // The operator's default Redis is unreachable: every queue here names its own.
    let operator = cluster.operator("redis://127.0.0.1:1", "op-a", &[]);

    let emails = cluster
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
        .await;

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

    // A second queue (Retain) with a Schedule, for the schedule series and the deletions.
    cluster
        .create(
            "JobQueue",
            "reports",
            json!({"redis": {"url": redis.url()}}),
        )
        .await;
    cluster
        .create(
            "Schedule",
            "tick",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "reports"}, "payload": {"kind": "tick"}}),
        )
        .await;
    cluster
        .condition("Schedule", "tick", "Ready", "True", Duration::from_secs(30))
        .await;
    // Its status names a job that is in the stream, for the time it was scheduled for.
    let reports_stream = default_stream("default", "reports");
    eventually(
        Duration::from_secs(10),
        "the Schedule's last job in status",
        || {
            let mut conn = conn.clone();
            let stream = reports_stream.clone();
            let api = cluster.schedules();
            async move {
                let obj = api.get("tick").await.map_err(|e| e.to_string())?;
                let status = obj.data.get("status").cloned().unwrap_or_default();
                let last_id = status.get("lastJobId").and_then(|v| v.as_str());
                let last_time = status
                    .get("lastScheduleTime")
                    .and_then(|v| v.as_str())
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp_millis());
                let next = status.get("nextScheduleTime").and_then(|v| v.as_str());
                let all = jobs(&mut conn, &stream).await;
                let found = all.iter().find(|j| Some(j.id.as_str()) == last_id);
                match found {
                    Some(j) if j.scheduled_for == last_time && next.is_some() => Ok(()),
                    _ => Err(format!("{status}")),
                }
            }
        },
    )
    .await;

    // 2. 5,000 jobs → 8 replicas within two poll intervals (plus slack).
    // Scaling writes the scale subresource only: the owned Deployment is not re-applied.
    let deployment_applies = || {
        cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.verb == "patch" && r.resource == "deployments" && r.subresource.is_none())
            .count()
    };
    let applies_before = deployment_applies();
    // MULTI/EXEC: all 5,000 become visible at once, so the scaler cannot poll
    // a half-written burst (a plain pipeline let it see 4,468 once).
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..5000 {
        pipe.cmd("XADD")
            .arg(&keys.stream)
            .arg("*")
            .arg("id")
            .arg(format!("load-{i}"))
            .arg("payload")
            .arg("{}")
            .arg("enqueued_at")
            .arg(0)
            .arg("attempt")
            .arg(1)
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.expect("XADD 5000 jobs");
    let visible = Instant::now();
    let bound = POLL_INTERVAL * 2 + SLACK;
    eventually(bound, "replicas 8 after 5,000 jobs", || async {
        match replicas(&cluster, "emails-workers").await {
            8 => Ok(()),
            r => Err(format!(
                "{r} replicas {:?} after the jobs were visible",
                visible.elapsed()
            )),
        }
    })
    .await;
    let scaled_up_after = visible.elapsed();
    cluster
        .event("JobQueue", "emails", "ScaledUp", &["→ 8", "5000"])
        .await;
    assert_eq!(
        deployment_applies(),
        applies_before,
        "a scale write made the operator re-apply its Deployment"
    );
    // The status tells the same story (written at the status interval, 1 s here).
    eventually(
        Duration::from_secs(10),
        "status of the scaled queue",
        || async {
            let obj = cluster
                .jobqueues()
                .get("emails")
                .await
                .map_err(|e| e.to_string())?;
            let status = obj.data.get("status").cloned().unwrap_or_default();
            let field = |f: &str| status.get(f).and_then(|v| v.as_i64());
            let scaling = operator_support::conditions(&obj)
                .into_iter()
                .find(|c| c.type_ == "Scaling")
                .is_some_and(|c| c.status == "True");
            let seen = (
                field("replicas"),
                field("desiredReplicas"),
                field("lag"),
                field("length"),
                scaling,
            );
            if seen == (Some(8), Some(8), Some(5000), Some(5000), true) {
                Ok(())
            } else {
                Err(format!("{status}"))
            }
        },
    )
    .await;

    // 7. /metrics, /healthz, /readyz, while the backlog is there.
    let addr = operator.http_addr().await;
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    let q = [("namespace", "default"), ("name", "emails")];
    let (samples, types) = eventually(
        Duration::from_secs(10),
        "queue and schedule series",
        || async {
            let (code, body) = http_get(addr, "/metrics").await;
            if code != 200 {
                return Err(format!("/metrics answered {code}: {body}"));
            }
            let (samples, types) = parse_metrics(&body);
            let fired = value(
                &samples,
                "jobqueue_schedule_fires_total",
                &[("name", "tick")],
            );
            let lag = value(&samples, "jobqueue_lag", &q);
            match (fired, lag) {
                (Some(f), Some(l)) if f >= 1.0 && l > 0.0 => Ok((samples, types)),
                _ => Err(body),
            }
        },
    )
    .await;
    assert_eq!(value(&samples, "jobqueue_replicas", &q), Some(8.0));
    assert_eq!(value(&samples, "jobqueue_desired_replicas", &q), Some(8.0));
    assert_eq!(value(&samples, "jobqueue_pending", &q), Some(0.0));
    assert_eq!(value(&samples, "jobqueue_length", &q), Some(5000.0));
    assert_eq!(value(&samples, "jobqueue_lag", &q), Some(5000.0));
    assert_eq!(
        value(
            &samples,
            "jobqueue_scale_events_total",
            &[("name", "emails"), ("direction", "Up")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&samples, "jobqueue_leader", &[]), Some(1.0));
    assert!(
        value(
            &samples,
            "jobqueue_reconcile_duration_seconds_count",
            &[("controller", "jobqueue")]
        )
        .is_some_and(|n| n >= 2.0)
    );
    assert!(
        value(
            &samples,
            "jobqueue_reconcile_duration_seconds_count",
            &[("controller", "schedule")]
        )
        .is_some_and(|n| n >= 1.0)
    );
    for documented in [
        "jobqueue_lag",
        "jobqueue_pending",
        "jobqueue_length",
        "jobqueue_delayed",
        "jobqueue_dead_letters",
        "jobqueue_oldest_pending_age_seconds",
        "jobqueue_consumers",
        "jobqueue_replicas",
        "jobqueue_desired_replicas",
        "jobqueue_scale_events",
        "jobqueue_redelivered",
        "jobqueue_dead_lettered",
        "jobqueue_schedule_fires",
        "jobqueue_schedule_missed",
        "jobqueue_schedule_skipped",
        "jobqueue_reconcile_duration_seconds",
        "jobqueue_metrics_poll_duration_seconds",
        "jobqueue_leader",
    ] {
        assert!(
            types.contains(documented),
            "/metrics lacks {documented}: {types:?}"
        );
    }

    // A worker pod takes 10 jobs and disappears: they are handed out again at once, not after
    // the visibility timeout (5 m).
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    pods.create(&PostParams::default(), &worker_pod("emails-workers-lost"))
        .await
        .expect("creating a worker pod");
    let taken = read_group(&mut conn, &keys.stream, "emails-workers-lost", 10).await;
    assert_eq!(taken.len(), 10);
    pods.delete("emails-workers-lost", &DeleteParams::default())
        .await
        .expect("deleting the worker pod");
    eventually(
        Duration::from_secs(10),
        "the lost worker's jobs back in the stream",
        || {
            let mut conn = conn.clone();
            let stream = keys.stream.clone();
            async move {
                let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg("workers")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                match pending.count() {
                    0 => Ok(()),
                    n => Err(format!("{n} still pending")),
                }
            }
        },
    )
    .await;

    // Drain as a worker pod would: its consumer name is its pod name, and the pod exists.
    pods.create(&PostParams::default(), &worker_pod("emails-workers-test"))
        .await
        .expect("creating the worker pod");
    let lost_ids: BTreeSet<String> = taken.iter().map(|(_, job)| job.clone()).collect();
    let mut redelivered = BTreeSet::new();
    let mut drained = 0;
    let mut last_ack_sent = Instant::now();
    loop {
        let batch = read_group(&mut conn, &keys.stream, "emails-workers-test", 1000).await;
        if batch.is_empty() {
            break;
        }
        drained += batch.len();
        redelivered.extend(
            batch
                .iter()
                .filter(|(_, job)| lost_ids.contains(job))
                .map(|(_, job)| job.clone()),
        );
        let ids: Vec<&String> = batch.iter().map(|(entry, _)| entry).collect();
        // The backlog cannot be zero before this acknowledgement is sent.
        last_ack_sent = Instant::now();
        let acked: usize = redis::cmd("XACK")
            .arg(&keys.stream)
            .arg("workers")
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .expect("XACK");
        assert_eq!(acked, ids.len());
    }
    assert_eq!(
        drained, 5000,
        "every job exactly once, the lost worker's 10 included"
    );
    assert_eq!(
        redelivered, lost_ids,
        "the lost worker's jobs were handed out again"
    );

    // Back to 0 only once the cooldown has passed since the backlog reached zero.
    let zero_after = eventually(
        COOLDOWN + POLL_INTERVAL * 2 + SLACK,
        "replicas back to 0 after the cooldown",
        || async {
            match replicas(&cluster, "emails-workers").await {
                0 => Ok(last_ack_sent.elapsed()),
                r => Err(format!(
                    "{r} replicas {:?} after the backlog hit zero",
                    last_ack_sent.elapsed()
                )),
            }
        },
    )
    .await;
    assert!(
        zero_after >= COOLDOWN,
        "scaled to zero {zero_after:?} after the backlog hit zero, before the {COOLDOWN:?} cooldown"
    );
    // Before scaling in, the worker pods were ranked for removal (idle ones go first).
    let ranked = pods
        .get("emails-workers-test")
        .await
        .expect("the worker pod");
    let cost = ranked
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"));
    assert!(
        cost.is_some_and(|c| c.parse::<i64>().is_ok()),
        "no pod-deletion-cost before the scale-in: {:?}",
        ranked.metadata.annotations
    );
    let to_zero = cluster
        .event("JobQueue", "emails", "ScaledToZero", &["→ 0"])
        .await;
    assert!(
        to_zero.note.as_deref().unwrap_or("").contains("3s"),
        "the reason names the cooldown: {:?}",
        to_zero.note
    );
    eprintln!(
        "scaled 0 → 8 {scaled_up_after:?} after 5,000 jobs were visible; to 0 {zero_after:?} after the backlog hit zero"
    );
    // The scale subresource is written only when the count changes: one write per scale event.
    let (_, body) = http_get(addr, "/metrics").await;
    let (samples, _) = parse_metrics(&body);
    let events: f64 = ["Up", "Down"]
        .iter()
        .filter_map(|d| {
            value(
                &samples,
                "jobqueue_scale_events_total",
                &[("name", "emails"), ("direction", d)],
            )
        })
        .sum();
    let scale_writes = cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.verb == "patch" && r.subresource.as_deref() == Some("scale"))
        .count();
    assert!(events >= 2.0, "{body}");
    assert_eq!(scale_writes as f64, events, "scale writes vs scale events");

    // The worker Deployment deleted behind the operator's back comes back, owned again.
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

    // jobqueue_schedule_fires_total counts every run that enqueued a job (it fires every
    // second, faster than status is read): once suspended, it equals the jobs in the stream.
    let reports = QueueKeys::new(default_stream("default", "reports"));
    cluster
        .schedules()
        .patch(
            "tick",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .expect("suspending the Schedule");
    eventually(
        Duration::from_secs(15),
        "fires_total to equal the suspended schedule's jobs",
        || {
            let mut conn = conn.clone();
            let stream = reports.stream.clone();
            async move {
                let armed: Option<f64> = redis::cmd("ZSCORE")
                    .arg(QueueKeys::new(stream.clone()).schedules())
                    .arg("tick")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let jobs = jobs(&mut conn, &stream).await.len() as f64;
                let (_, body) = http_get(addr, "/metrics").await;
                let fires = value(
                    &parse_metrics(&body).0,
                    "jobqueue_schedule_fires_total",
                    &[("name", "tick")],
                );
                match (armed, fires) {
                    (None, Some(f)) if f == jobs && jobs >= 3.0 => Ok(()),
                    other => Err(format!("{other:?} vs {jobs} jobs")),
                }
            }
        },
    )
    .await;
    cluster
        .schedules()
        .patch(
            "tick",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .expect("resuming the Schedule");
    eventually(Duration::from_secs(15), "tick armed again", || {
        let mut conn = conn.clone();
        let zset = reports.schedules();
        async move {
            let armed: Option<f64> = redis::cmd("ZSCORE")
                .arg(&zset)
                .arg("tick")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            armed.map(|_| ()).ok_or_else(|| "not armed".to_string())
        }
    })
    .await;

    // 4. Deletion: Delete removes the keys, Retain keeps them, a Schedule's entry goes away.
    assert!(
        redis::cmd("EXISTS")
            .arg(reports.schedule("tick"))
            .query_async::<i64>(&mut conn)
            .await
            .expect("EXISTS")
            == 1
    );
    cluster
        .schedules()
        .delete("tick", &DeleteParams::default())
        .await
        .expect("deleting the Schedule");
    cluster.gone("Schedule", "tick").await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(reports.schedule("tick"))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    let member: Option<f64> = redis::cmd("ZSCORE")
        .arg(reports.schedules())
        .arg("tick")
        .query_async(&mut conn)
        .await
        .expect("ZSCORE");
    assert_eq!(
        (exists, member),
        (0, None),
        "the Schedule's Redis entry is removed"
    );
    let fired_before_delete = jobs(&mut conn, &reports.stream).await.len();
    assert!(fired_before_delete >= 1);

    cluster
        .jobqueues()
        .delete("reports", &DeleteParams::default())
        .await
        .expect("deleting reports");
    cluster.gone("JobQueue", "reports").await;
    assert_eq!(
        existing_keys(&mut conn, &reports).await,
        [reports.stream.as_str()],
        "Retain keeps the stream"
    );
    assert_eq!(
        jobs(&mut conn, &reports.stream).await.len(),
        fired_before_delete
    );

    cluster
        .jobqueues()
        .delete("emails", &DeleteParams::default())
        .await
        .expect("deleting emails");
    cluster.gone("JobQueue", "emails").await;
    assert_eq!(
        existing_keys(&mut conn, &keys).await,
        Vec::<String>::new(),
        "Delete removes every key of the queue"
    );
    assert!(
        deployments
            .get_opt("emails-workers")
            .await
            .expect("get")
            .is_none(),
        "the owned Deployment goes with its queue"
    );
}

/// Every-second run times of a schedule's jobs, and its stored counters.
struct Runs {
    seconds: Vec<i64>,
    /// When each run's job was enqueued, by scheduled time.
    enqueued: BTreeMap<i64, i64>,
    missed: i64,
    /// The armed next run (exclusive end of what must be accounted for).
    next: i64,
}

async fn runs(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &QueueKeys,
    schedule: &str,
) -> Runs {
    let all = jobs(conn, &keys.stream).await;
    let mine: Vec<_> = all
        .iter()
        .filter(|j| j.schedule.as_deref() == Some(schedule))
        .collect();
    let ids: HashSet<&str> = mine.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        mine.len(),
        "{schedule}: a job id was enqueued twice: {mine:?}"
    );
    let mut seconds: Vec<i64> = mine
        .iter()
        .map(|j| j.scheduled_for.expect("scheduled_for"))
        .collect();
    seconds.sort_unstable();
    let distinct: BTreeSet<i64> = seconds.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        seconds.len(),
        "{schedule}: a second was enqueued twice: {seconds:?}"
    );
    assert!(seconds.iter().all(|ms| ms % 1000 == 0), "{seconds:?}");
    let state: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.schedule(schedule))
        .query_async(conn)
        .await
        .expect("HGETALL");
    let num = |f: &str| {
        state
            .get(f)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    Runs {
        seconds,
        enqueued: mine
            .iter()
            .map(|j| (j.scheduled_for.expect("scheduled_for"), j.enqueued_at))
            .collect(),
        missed: num("missed_runs"),
        next: num("next_schedule_time"),
    }
}

/// Every run from the first job up to the armed next run either enqueued exactly one job or
/// was counted as missed: the count matches the elapsed seconds exactly.
fn assert_accounted(name: &str, r: &Runs) {
    let first = r.seconds[0];
    let runs_due = (r.next - first) / 1000;
    assert_eq!(
        r.seconds.len() as i64 + r.missed,
        runs_due,
        "{name}: {} jobs + {} missed != {runs_due} runs from {first} to {} (exclusive): {:?}",
        r.seconds.len(),
        r.missed,
        r.next,
        r.seconds
    );
}

/// Consecutive jobs more than a second apart: (last before, first after).
fn gaps(seconds: &[i64]) -> Vec<(i64, i64)> {
    seconds
        .windows(2)
        .filter(|w| w[1] - w[0] > 1000)
        .map(|w| (w[0], w[1]))
        .collect()
}

async fn lease_holder(cluster: &Cluster) -> Option<String> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cluster.client.clone(), "default");
    leases
        .get_opt("jobqueue-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Two operator processes; the leader is SIGKILLed while an every-second Schedule of each
/// misfire policy runs. No second is enqueued twice, and every second is either one job or
/// one missed run; the runs missed during the failover follow the policy (Skip: none fires;
/// FireOnce: exactly the latest one fires as a catch-up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_exactly_once_across_a_leader_sigkill() {
    let cluster = Cluster::start("schedules_fire_exactly_once_across_a_leader_sigkill").await;
    let redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    // A misfire grace well below the failover time (the lease keeps a standby out ≥ 2 s).
    let mut a = cluster.operator(&redis.url(), "op-a", &["--misfire-grace", "1s"]);
    let mut b = cluster.operator(&redis.url(), "op-b", &["--misfire-grace", "1s"]);

    cluster
        .create("JobQueue", "cron", json!({"redis": {"url": redis.url()}}))
        .await;
    for (name, policy) in [("skip", "Skip"), ("once", "FireOnce")] {
        cluster
            .create(
                "Schedule",
                name,
                json!({"schedule": "* * * * * *", "queueRef": {"name": "cron"}, "misfirePolicy": policy}),
            )
            .await;
    }
    for name in ["skip", "once"] {
        cluster
            .condition("Schedule", name, "Ready", "True", Duration::from_secs(30))
            .await;
    }
    let keys = QueueKeys::new(default_stream("default", "cron"));
    eventually(Duration::from_secs(15), "3 jobs of each schedule", || {
        let mut conn = conn.clone();
        let keys = keys.clone();
        async move {
            let all = jobs(&mut conn, &keys.stream).await;
            let count = |n: &str| {
                all.iter()
                    .filter(|j| j.schedule.as_deref() == Some(n))
                    .count()
            };
            if count("skip") >= 3 && count("once") >= 3 {
                Ok(())
            } else {
                Err(format!("{} jobs", all.len()))
            }
        }
    })
    .await;

    let leader = eventually(Duration::from_secs(10), "a lease holder", || async {
        lease_holder(&cluster)
            .await
            .ok_or_else(|| "none".to_string())
    })
    .await;
    let (killed, survivor) = match leader.as_str() {
        "op-a" => (&mut a, &mut b),
        "op-b" => (&mut b, &mut a),
        other => panic!("unexpected lease holder {other}"),
    };
    killed.sigkill();
    let killed_at = chrono::Utc::now().timestamp_millis();
    let survivor_id = survivor.identity.clone();
    eventually(
        Duration::from_secs(20),
        "the standby to take the lease",
        || async {
            match lease_holder(&cluster).await {
                Some(h) if h == survivor_id => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    eventually(Duration::from_secs(20), "jobs after the failover", || {
        let mut conn = conn.clone();
        let keys = keys.clone();
        async move {
            let all = jobs(&mut conn, &keys.stream).await;
            let after = |n: &str| {
                all.iter()
                    .filter(|j| {
                        j.schedule.as_deref() == Some(n) && j.enqueued_at > killed_at + 1000
                    })
                    .count()
            };
            if after("skip") >= 3 && after("once") >= 3 {
                Ok(())
            } else {
                Err(format!("{} jobs", all.len()))
            }
        }
    })
    .await;

    // status.missedRuns reports what Redis counted.
    for name in ["skip", "once"] {
        eventually(Duration::from_secs(10), "status.missedRuns", || {
            let mut conn = conn.clone();
            let keys = keys.clone();
            let api = cluster.schedules();
            async move {
                let stored = runs(&mut conn, &keys, name).await.missed;
                let obj = api.get(name).await.map_err(|e| e.to_string())?;
                let status = obj
                    .data
                    .pointer("/status/missedRuns")
                    .and_then(|v| v.as_i64());
                if status == Some(stored) && stored > 0 {
                    Ok(())
                } else {
                    Err(format!("{name}: status {status:?}, Redis {stored}"))
                }
            }
        })
        .await;
    }
    let status = survivor.sigterm().await;
    assert!(
        status.success(),
        "SIGTERM ends the operator cleanly: {status}"
    );
    // ... and releases the lease, so a standby need not wait for it to expire.
    let holder = lease_holder(&cluster).await;
    assert!(
        holder.as_deref().is_none_or(|h| h.is_empty()),
        "the lease is still held by {holder:?} after SIGTERM"
    );

    let skip = runs(&mut conn, &keys, "skip").await;
    let once = runs(&mut conn, &keys, "once").await;
    assert_accounted("skip", &skip);
    assert_accounted("once", &once);
    // The failover outlasted the misfire grace (1 s; the lease keeps a standby out for ≥ 2 s).
    let skip_gaps = gaps(&skip.seconds);
    assert!(
        !skip_gaps.is_empty() && skip.missed > 0,
        "{:?}",
        skip.seconds
    );
    assert!(once.missed > 0, "{:?}", once.seconds);
    // Both schedules are decided in the same scheduler pass: where Skip resumed at b, FireOnce
    // fired the latest missed run b - 1 s as its one catch-up and nothing else in the gap.
    let once_set: BTreeSet<i64> = once.seconds.iter().copied().collect();
    for (a, b) in &skip_gaps {
        assert!(
            once_set.contains(&(b - 1000)),
            "FireOnce has no catch-up for the gap {a}..{b}: {:?}",
            once.seconds
        );
        // (A run the killed leader fired just before dying, for FireOnce but not yet for Skip,
        // is not part of the new leader's decision.)
        let inside: Vec<_> = once_set
            .range(a + 1000..b - 1000)
            .filter(|t| once.enqueued[t] > killed_at)
            .collect();
        assert!(
            inside.is_empty(),
            "FireOnce fired more than one run of the gap {a}..{b}: {inside:?}"
        );
    }
    eprintln!(
        "failover: Skip resumed after {skip_gaps:?} with {} missed; FireOnce {} missed; \
         {} + {} jobs, none twice",
        skip.missed,
        once.missed,
        skip.seconds.len(),
        once.seconds.len()
    );
}

/// Redis SIGKILLed (restarted from its last snapshot): the queue goes RedisReachable=False and
/// back to True, the operator keeps running, and its schedule's jobs stay unique and accounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crash_and_restart() {
    let cluster = Cluster::start("redis_crash_and_restart").await;
    let mut redis = RedisServer::start();
    let mut operator = cluster.operator(&redis.url(), "op-a", &["--misfire-grace", "1s"]);
    cluster
        .create("JobQueue", "q", json!({"redis": {"url": redis.url()}}))
        .await;
    cluster
        .create(
            "Schedule",
            "beat",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "q"}}),
        )
        .await;
    cluster
        .condition(
            "JobQueue",
            "q",
            "RedisReachable",
            "True",
            Duration::from_secs(30),
        )
        .await;
    let keys = QueueKeys::new(default_stream("default", "q"));
    let saved = {
        let mut conn = redis_conn(&redis.url()).await;
        jobs_at_least(&conn, &keys.stream, 2, Duration::from_secs(15)).await;

        // Status writes (each second here: the schedule fires, the queue grows) trigger no
        // reconciles: only spec, deletion and queue readiness do.
        let addr = operator.http_addr().await;
        let reconciles = || async move {
            let (_, body) = http_get(addr, "/metrics").await;
            let (samples, _) = parse_metrics(&body);
            ["jobqueue", "schedule"].map(|c| {
                value(
                    &samples,
                    "jobqueue_reconcile_duration_seconds_count",
                    &[("controller", c)],
                )
                .unwrap_or(0.0)
            })
        };
        let status_writes = || {
            cluster
                .server
                .requests()
                .iter()
                .filter(|r| r.verb == "patch" && r.subresource.as_deref() == Some("status"))
                .count()
        };
        let before = reconciles().await;
        let writes = status_writes();
        eventually(Duration::from_secs(15), "6 more status writes", || async {
            match status_writes() - writes {
                n if n >= 6 => Ok(()),
                n => Err(format!("{n}")),
            }
        })
        .await;
        assert_eq!(
            reconciles().await,
            before,
            "status writes caused reconciles"
        );

        // Drift: the group deleted behind the operator's back is recreated, with an Event.
        let () = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg(&keys.stream)
            .arg("workers")
            .query_async(&mut conn)
            .await
            .map(|_: i64| ())
            .expect("XGROUP DESTROY");
        cluster
            .event("JobQueue", "q", "ConsumerGroupRecreated", &["\"workers\""])
            .await;
        let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&keys.stream)
            .query_async(&mut conn)
            .await
            .expect("XINFO GROUPS");
        assert_eq!(groups.groups.len(), 1);

        // A crash of a Redis with snapshots: what is written after the snapshot is lost.
        // Read before SAVE: a fire between SAVE and a later read would be in `saved` only.
        let saved = jobs(&mut conn, &keys.stream).await;
        let () = redis::cmd("SAVE")
            .query_async(&mut conn)
            .await
            .expect("SAVE");
        saved
    };
    redis.kill();
    let down = cluster
        .condition(
            "JobQueue",
            "q",
            "RedisReachable",
            "False",
            Duration::from_secs(20),
        )
        .await;
    assert!(!down.message.is_empty());
    let ready = cluster
        .condition("JobQueue", "q", "Ready", "False", Duration::from_secs(10))
        .await;
    assert_eq!(ready.reason, "RedisUnreachable");
    assert!(
        operator.is_running(),
        "the operator survives a Redis outage"
    );

    redis.restart();
    let restarted = chrono::Utc::now().timestamp_millis();
    cluster
        .condition(
            "JobQueue",
            "q",
            "RedisReachable",
            "True",
            Duration::from_secs(20),
        )
        .await;
    cluster
        .condition("JobQueue", "q", "Ready", "True", Duration::from_secs(10))
        .await;
    let mut conn = redis_conn(&redis.url()).await;
    eventually(
        Duration::from_secs(20),
        "scheduled jobs after the restart",
        || {
            let mut conn = conn.clone();
            let keys = keys.clone();
            async move {
                let all = jobs(&mut conn, &keys.stream).await;
                let after = all
                    .iter()
                    .filter(|j| j.enqueued_at > restarted + 1000)
                    .count();
                if after >= 3 {
                    Ok(())
                } else {
                    Err(format!("{} jobs, {after} after the restart", all.len()))
                }
            }
        },
    )
    .await;
    assert!(
        operator.is_running(),
        "the operator survives a Redis restart"
    );
    let status = operator.sigterm().await;
    assert!(status.success(), "{status}");
    let beat = runs(&mut conn, &keys, "beat").await;
    assert_accounted("beat", &beat);
    let after: Vec<String> = jobs(&mut conn, &keys.stream)
        .await
        .into_iter()
        .map(|j| j.entry_id)
        .collect();
    let before: Vec<String> = saved.into_iter().map(|j| j.entry_id).collect();
    assert!(
        before.len() >= 2 && after.starts_with(&before),
        "the snapshot's jobs survive the restart: {before:?} vs {after:?}"
    );
    let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&keys.stream)
        .query_async(&mut conn)
        .await
        .expect("the group survives");
    assert_eq!(groups.groups.len(), 1);
}

/// Resources the schema cannot reject: each gets Ready=False and a Warning Event naming the
/// problem, and the operator keeps serving the good ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resources_are_reported() {
    let cluster = Cluster::start("invalid_resources_are_reported").await;
    let redis = RedisServer::start();
    secret(&cluster, "nokey", &[("other", &redis.url())]).await;
    // Watching one namespace (a Role instead of a ClusterRole in the chart).
    let mut operator = cluster.operator(&redis.url(), "op-a", &["--namespace", "default"]);

    cluster
        .create(
            "JobQueue",
            "badsecret",
            json!({"redis": {"urlSecretRef": {"name": "nokey", "key": "url"}}}),
        )
        .await;
    cluster
        .create("JobQueue", "good", json!({"redis": {"url": redis.url()}}))
        .await;
    let bad = [
        (
            "badcron",
            json!({"schedule": "61 * * * *", "queueRef": {"name": "good"}}),
            "InvalidSpec",
            vec!["spec.schedule", "61"],
        ),
        (
            "badzone",
            json!({"schedule": "* * * * *", "timeZone": "Mars/Olympus", "queueRef": {"name": "good"}}),
            "InvalidSpec",
            vec!["spec.timeZone", "Mars/Olympus"],
        ),
        (
            "noqueue",
            json!({"schedule": "* * * * *", "queueRef": {"name": "missing"}}),
            "QueueNotFound",
            vec!["missing", "spec.queueRef.name"],
        ),
    ];
    for (name, spec, _, _) in &bad {
        cluster.create("Schedule", name, spec.clone()).await;
    }

    let c = cluster
        .condition(
            "JobQueue",
            "badsecret",
            "Ready",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(c.reason, "RedisSecretMissing");
    for word in ["nokey", "\"url\"", "spec.redis.urlSecretRef.key"] {
        assert!(c.message.contains(word), "{word} not in {:?}", c.message);
    }
    let e = cluster
        .event(
            "JobQueue",
            "badsecret",
            "RedisSecretMissing",
            &["nokey", "spec.redis.urlSecretRef.key"],
        )
        .await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    // A queue that never got provisioned can be deleted even with deletionPolicy Delete.
    cluster
        .create(
            "JobQueue",
            "never",
            json!({"redis": {"urlSecretRef": {"name": "absent", "key": "url"}}, "deletionPolicy": "Delete"}),
        )
        .await;
    let c = cluster
        .condition(
            "JobQueue",
            "never",
            "Ready",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert!(c.message.contains("absent"), "{:?}", c.message);
    cluster
        .jobqueues()
        .delete("never", &DeleteParams::default())
        .await
        .expect("deleting");
    cluster.gone("JobQueue", "never").await;

    for (name, _, reason, words) in &bad {
        let c = cluster
            .condition("Schedule", name, "Ready", "False", Duration::from_secs(30))
            .await;
        assert_eq!(&c.reason, reason, "{name}: {c:?}");
        for word in words {
            assert!(
                c.message.contains(word),
                "{name}: {word} not in {:?}",
                c.message
            );
        }
        let e = cluster.event("Schedule", name, reason, words).await;
        assert_eq!(e.type_.as_deref(), Some("Warning"));
    }
    cluster
        .condition("JobQueue", "good", "Ready", "True", Duration::from_secs(10))
        .await;

    // A Schedule moved to another queue (then to a missing one) fires only where it points:
    // its entry leaves the queue it was on.
    cluster
        .create("JobQueue", "other", json!({"redis": {"url": redis.url()}}))
        .await;
    cluster
        .create(
            "Schedule",
            "mover",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "good"}}),
        )
        .await;
    let good = QueueKeys::new(default_stream("default", "good"));
    let other = QueueKeys::new(default_stream("default", "other"));
    let mut conn = redis_conn(&redis.url()).await;
    let fired_into = |keys: QueueKeys| {
        let conn = conn.clone();
        async move {
            eventually(
                Duration::from_secs(15),
                "a job of the moved schedule",
                || {
                    let mut conn = conn.clone();
                    let stream = keys.stream.clone();
                    async move {
                        let n = jobs(&mut conn, &stream).await.len();
                        if n > 0 {
                            Ok(())
                        } else {
                            Err(format!("none in {stream}"))
                        }
                    }
                },
            )
            .await
        }
    };
    fired_into(good.clone()).await;
    let schedules = cluster.schedules();
    let point_at = |queue: &'static str| {
        let schedules = schedules.clone();
        async move {
            schedules
                .patch(
                    "mover",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(json!({"spec": {"queueRef": {"name": queue}}})),
                )
                .await
                .expect("moving the Schedule")
        }
    };
    point_at("other").await;
    fired_into(other.clone()).await;
    let armed = |keys: QueueKeys| {
        let mut conn = conn.clone();
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg(keys.schedule("mover"))
                .query_async(&mut conn)
                .await
                .expect("EXISTS");
            n == 1
        }
    };
    assert!(
        !armed(good.clone()).await,
        "the schedule still fires into its old queue"
    );
    point_at("missing").await;
    cluster
        .condition(
            "Schedule",
            "mover",
            "Ready",
            "False",
            Duration::from_secs(15),
        )
        .await;
    assert!(
        !armed(other.clone()).await,
        "a schedule pointing at a missing queue still fires"
    );

    // scaleTargetRef: a missing workload is named; an existing one is scaled, not replaced,
    // and its adopted stream keeps its data.
    cluster
        .create(
            "JobQueue",
            "external",
            json!({
                "redis": {"url": redis.url()},
                "stream": "media:{thumbnails}",
                "startFrom": "Beginning",
                "workers": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "thumbnail-worker"}},
                "scaling": {"maxReplicas": 3, "targetPerReplica": 10, "pollInterval": "1s"}
            }),
        )
        .await;
    let c = cluster
        .condition(
            "JobQueue",
            "external",
            "Ready",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(c.reason, "ScaleTargetNotFound");
    assert!(c.message.contains("thumbnail-worker"), "{:?}", c.message);
    for i in 0..25 {
        let _: String = redis::cmd("XADD")
            .arg("media:{thumbnails}")
            .arg("*")
            .arg("id")
            .arg(format!("t{i}"))
            .arg("payload")
            .arg("{}")
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    let mine: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "thumbnail-worker", "labels": {"team": "media"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "thumbnail-worker"}},
            "template": {"metadata": {"labels": {"app": "thumbnail-worker"}},
                         "spec": {"containers": [{"name": "w", "image": "thumbs:1"}]}}
        }
    }))
    .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    deployments
        .create(&PostParams::default(), &mine)
        .await
        .expect("creating the user's Deployment");
    // Nothing watches the user's Deployment: the 30 s retry finds it, or a spec change does.
    cluster
        .jobqueues()
        .patch(
            "external",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"scaling": {"maxReplicas": 4}}})),
        )
        .await
        .expect("bumping the spec");
    cluster
        .condition(
            "JobQueue",
            "external",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    eventually(
        Duration::from_secs(10),
        "the user's Deployment scaled to 3",
        || async {
            match replicas(&cluster, "thumbnail-worker").await {
                3 => Ok(()),
                r => Err(format!("{r}")),
            }
        },
    )
    .await;
    let after = deployments.get("thumbnail-worker").await.expect("get");
    assert!(after.metadata.owner_references.is_none(), "not taken over");
    assert_eq!(
        after
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
            .containers[0]
            .image
            .as_deref(),
        Some("thumbs:1")
    );
    let length: i64 = redis::cmd("XLEN")
        .arg("media:{thumbnails}")
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(length, 25, "the adopted stream keeps its data");

    // A Redis nobody listens on: RedisReachable=False with the reason, an Event, and the
    // failed reconciles counted on /metrics; the operator keeps running.
    cluster
        .create(
            "JobQueue",
            "nowhere",
            json!({"redis": {"url": "redis://127.0.0.1:1"}}),
        )
        .await;
    let c = cluster
        .condition(
            "JobQueue",
            "nowhere",
            "RedisReachable",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(c.reason, "RedisUnreachable");
    assert!(c.message.contains("127.0.0.1:1"), "{:?}", c.message);
    cluster
        .condition(
            "JobQueue",
            "nowhere",
            "Ready",
            "False",
            Duration::from_secs(5),
        )
        .await;
    cluster
        .event("JobQueue", "nowhere", "RedisUnreachable", &["127.0.0.1:1"])
        .await;
    let addr = operator.http_addr().await;
    eventually(
        Duration::from_secs(10),
        "counted reconcile errors",
        || async {
            let (_, body) = http_get(addr, "/metrics").await;
            let (samples, _) = parse_metrics(&body);
            let errors = value(
                &samples,
                "jobqueue_reconcile_errors_total",
                &[("controller", "jobqueue"), ("reason", "Redis")],
            );
            match errors {
                Some(n) if n >= 1.0 => Ok(()),
                _ => Err(body),
            }
        },
    )
    .await;
    assert!(operator.is_running());
}

async fn kubectl(kubeconfig: &std::path::Path, cache: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--request-timeout=20s")
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("running kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The README's quickstart as a user runs it: `kubectl apply` of the example manifests (the
/// Secret pointing at this test's Redis), the queue and the Berlin-time Schedule become ready
/// with the next 07:30 Berlin run in status, `kubectl get` shows it, and `kubectl delete`
/// returns once the finalizers ran (Retain: the stream stays, the schedule entry goes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_quickstart() {
    if !tools::require_kubectl("operator_e2e::kubectl_quickstart") {
        return;
    }
    let cluster = Cluster::start("kubectl_quickstart").await;
    let redis = RedisServer::start();
    let _operator = cluster.operator("redis://127.0.0.1:1", "op-a", &[]);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let manifests = cluster.dir.path().join("quickstart");
    std::fs::create_dir(&manifests).expect("mkdir");
    let jobqueue = std::fs::read_to_string(root.join("jobqueue.yaml")).expect("example");
    let in_cluster_url = "redis://redis.default.svc.cluster.local:6379";
    assert!(
        jobqueue.contains(in_cluster_url),
        "the example changed: {jobqueue}"
    );
    std::fs::write(
        manifests.join("jobqueue.yaml"),
        jobqueue.replace(in_cluster_url, &redis.url()),
    )
    .expect("write");
    std::fs::copy(root.join("schedule.yaml"), manifests.join("schedule.yaml")).expect("copy");
    let cache = tempfile::tempdir().expect("kubectl cache");
    let kubeconfig = cluster.server.kubeconfig();
    let dir = manifests.to_str().expect("utf-8 path");
    kubectl(kubeconfig, cache.path(), &["apply", "-f", dir]).await;

    cluster
        .condition(
            "JobQueue",
            "emails",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    cluster
        .condition(
            "Schedule",
            "daily-digest",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    let expected = jobqueue_operator::schedule::CronSchedule::parse("30 7 * * *")
        .expect("cron")
        .next_after(
            &jobqueue_operator::schedule::parse_time_zone("Europe/Berlin").expect("zone"),
            jiff::Timestamp::now(),
        )
        .expect("a next run");
    eventually(
        Duration::from_secs(10),
        "status.nextScheduleTime",
        || async {
            let obj = cluster
                .schedules()
                .get("daily-digest")
                .await
                .map_err(|e| e.to_string())?;
            let next = obj
                .data
                .pointer("/status/nextScheduleTime")
                .and_then(|v| v.as_str())
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            match next {
                Some(t) if t == expected => Ok(()),
                other => Err(format!("{other:?}, expected {expected}")),
            }
        },
    )
    .await;
    let table = kubectl(kubeconfig, cache.path(), &["get", "jq", "emails"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ready = header
        .iter()
        .position(|h| *h == "READY")
        .expect("READY column");
    assert_eq!(row.get(ready), Some(&"True"), "{table}");

    let keys = QueueKeys::new(default_stream("default", "emails"));
    let mut conn = redis_conn(&redis.url()).await;
    kubectl(
        kubeconfig,
        cache.path(),
        &["delete", "-f", dir, "--timeout=30s"],
    )
    .await;
    assert!(
        cluster
            .jobqueues()
            .get_opt("emails")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        cluster
            .schedules()
            .get_opt("daily-digest")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        existing_keys(&mut conn, &keys).await,
        [keys.stream.as_str()],
        "Retain (the default) keeps the stream; the schedule entry is gone"
    );
    let entry: i64 = redis::cmd("EXISTS")
        .arg(keys.schedule("daily-digest"))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert_eq!(entry, 0);
}

/// A leader that loses its Lease (another holder took it over) stops everything at once: no
/// schedule fires and nothing is scaled by it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_the_lease_stops_its_loops() {
    let cluster = Cluster::start("a_replica_that_loses_the_lease_stops_its_loops").await;
    let redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    let operator = cluster.operator(&redis.url(), "op-a", &[]);
    cluster
        .create("JobQueue", "q", json!({"redis": {"url": redis.url()}}))
        .await;
    cluster
        .create(
            "Schedule",
            "beat",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "q"}}),
        )
        .await;
    let keys = QueueKeys::new(default_stream("default", "q"));
    jobs_at_least(&conn, &keys.stream, 2, Duration::from_secs(20)).await;

    // Someone else holds the lease now (as after a network partition healed).
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cluster.client.clone(), "default");
    let now = k8s_openapi::jiff::Timestamp::now();
    leases
        .patch(
            "jobqueue-operator",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {
                "holderIdentity": "another-replica",
                "leaseDurationSeconds": 3600,
                "acquireTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now),
                "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now),
            }})),
        )
        .await
        .expect("taking the lease");
    let addr = operator.http_addr().await;
    eventually(Duration::from_secs(15), "op-a to step down", || async {
        let (_, body) = http_get(addr, "/metrics").await;
        match value(&parse_metrics(&body).0, "jobqueue_leader", &[]) {
            Some(0.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let stepped_down = chrono::Utc::now().timestamp_millis();
    // Absence can only be shown over a window: three runs of the every-second schedule.
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(3) {
        let late: Vec<i64> = jobs(&mut conn, &keys.stream)
            .await
            .iter()
            .map(|j| j.enqueued_at)
            .filter(|t| *t > stepped_down + 500)
            .collect();
        assert!(
            late.is_empty(),
            "jobs enqueued after op-a lost the lease at {stepped_down}: {late:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Schedule moved to another queue while no operator ran: the next operator process, which
/// never wrote it, finds its old run in Redis and removes it, so it fires only where it points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_moved_while_no_operator_ran_leaves_its_old_queue() {
    let cluster =
        Cluster::start("a_schedule_moved_while_no_operator_ran_leaves_its_old_queue").await;
    let redis = RedisServer::start();
    let conn = redis_conn(&redis.url()).await;
    let mut a = cluster.operator(&redis.url(), "op-a", &[]);
    for q in ["first", "second"] {
        cluster
            .create("JobQueue", q, json!({"redis": {"url": redis.url()}}))
            .await;
    }
    cluster
        .create(
            "Schedule",
            "mover",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "first"}}),
        )
        .await;
    let first = QueueKeys::new(default_stream("default", "first"));
    let second = QueueKeys::new(default_stream("default", "second"));
    let count = |keys: &QueueKeys| {
        let mut conn = conn.clone();
        let stream = keys.stream.clone();
        async move { jobs(&mut conn, &stream).await.len() }
    };
    jobs_at_least(&conn, &first.stream, 1, Duration::from_secs(30)).await;

    a.sigkill();
    cluster
        .schedules()
        .patch(
            "mover",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"queueRef": {"name": "second"}}})),
        )
        .await
        .expect("moving the Schedule");
    let _b = cluster.operator(&redis.url(), "op-b", &[]);
    jobs_at_least(&conn, &second.stream, 1, Duration::from_secs(30)).await;
    eventually(
        Duration::from_secs(15),
        "the old queue's run to be removed",
        || {
            let mut conn = conn.clone();
            let first = first.clone();
            async move {
                let (armed, stored): (Option<f64>, i64) = redis::pipe()
                    .cmd("ZSCORE")
                    .arg(first.schedules())
                    .arg("mover")
                    .cmd("EXISTS")
                    .arg(first.schedule("mover"))
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                match (armed, stored) {
                    (None, 0) => Ok(()),
                    other => Err(format!("still in the old queue: {other:?}")),
                }
            }
        },
    )
    .await;
    // Nothing fires into the old queue while the new one gets its next runs.
    let old = count(&first).await;
    let new = count(&second).await;
    jobs_at_least(&conn, &second.stream, new + 2, Duration::from_secs(30)).await;
    assert_eq!(
        count(&first).await,
        old,
        "the moved Schedule fired into its old queue"
    );
}

/// A Schedule deleted while its queue is not served (the operator started while the queue's
/// Redis was down) waits until it can remove its run: when Redis is back, the run is removed
/// and the Schedule goes; the run never fires again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_deleted_while_its_redis_is_down_leaves_no_run_behind() {
    let cluster =
        Cluster::start("a_schedule_deleted_while_its_redis_is_down_leaves_no_run_behind").await;
    let mut redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    let mut a = cluster.operator(&redis.url(), "op-a", &[]);
    cluster
        .create("JobQueue", "q", json!({"redis": {"url": redis.url()}}))
        .await;
    cluster
        .create(
            "Schedule",
            "beat",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "q"}}),
        )
        .await;
    let keys = QueueKeys::new(default_stream("default", "q"));
    jobs_at_least(&conn, &keys.stream, 1, Duration::from_secs(20)).await;
    // The armed run survives the Redis restart below (a snapshot); the operator does not.
    let () = redis::cmd("SAVE")
        .query_async(&mut conn)
        .await
        .expect("SAVE");
    redis.kill();
    a.sigkill();
    let _b = cluster.operator(&redis.url(), "op-b", &[]);
    let c = cluster
        .condition("JobQueue", "q", "Ready", "False", Duration::from_secs(30))
        .await;
    assert_eq!(c.reason, "RedisUnreachable");

    cluster
        .schedules()
        .delete("beat", &DeleteParams::default())
        .await
        .expect("deleting the Schedule");
    let pending = cluster
        .condition(
            "Schedule",
            "beat",
            "Ready",
            "False",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(pending.reason, "RemovalPending", "{}", pending.message);
    assert!(pending.message.contains("\"q\""), "{}", pending.message);
    assert!(
        cluster.schedules().get_opt("beat").await.unwrap().is_some(),
        "the Schedule went while its run was still armed"
    );

    redis.restart();
    cluster.gone("Schedule", "beat").await;
    let mut conn = redis_conn(&redis.url()).await;
    let armed: Option<f64> = redis::cmd("ZSCORE")
        .arg(keys.schedules())
        .arg("beat")
        .query_async(&mut conn)
        .await
        .expect("ZSCORE");
    let stored: i64 = redis::cmd("EXISTS")
        .arg(keys.schedule("beat"))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert_eq!(
        (armed, stored),
        (None, 0),
        "the deleted Schedule's run is gone"
    );
}

/// A queue on a three-node Redis Cluster: provisioned, scaled from its backlog, and fed by a
/// Schedule, like on a single server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_on_a_redis_cluster() {
    let cluster = Cluster::start("queue_on_a_redis_cluster").await;
    let redis = jobqueue_test_support::redis::RedisCluster::start();
    let operator = cluster.operator("redis://127.0.0.1:1", "op-a", &["--log-format", "json"]);
    cluster
        .create(
            "JobQueue",
            "sharded",
            json!({
                "redis": {"url": redis.url()},
                "workers": {"template": {"spec": {"containers": [{"name": "w", "image": "w:1"}]}}},
                "scaling": {"maxReplicas": 2, "targetPerReplica": 10, "pollInterval": "1s"}
            }),
        )
        .await;
    cluster
        .create(
            "Schedule",
            "beat",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "sharded"}}),
        )
        .await;
    cluster
        .condition(
            "JobQueue",
            "sharded",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    cluster
        .condition("Schedule", "beat", "Ready", "True", Duration::from_secs(30))
        .await;

    let keys = QueueKeys::new(default_stream("default", "sharded"));
    let client = redis::cluster::ClusterClient::new(redis.seed_urls()).expect("cluster client");
    let mut conn = client
        .get_async_connection()
        .await
        .expect("cluster connection");
    for i in 0..15 {
        let _: String = redis::cmd("XADD")
            .arg(&keys.stream)
            .arg("*")
            .arg("id")
            .arg(format!("c{i}"))
            .arg("payload")
            .arg("{}")
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    eventually(Duration::from_secs(10), "2 replicas", || async {
        match replicas(&cluster, "sharded-workers").await {
            2 => Ok(()),
            r => Err(format!("{r}")),
        }
    })
    .await;
    eventually(Duration::from_secs(10), "scheduled jobs", || {
        let mut conn = conn.clone();
        let stream = keys.stream.clone();
        async move {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&stream)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let scheduled = reply
                .ids
                .iter()
                .filter(|e| e.map.contains_key("scheduled_for"))
                .count();
            if scheduled >= 2 {
                Ok(())
            } else {
                Err(format!("{scheduled}"))
            }
        }
    })
    .await;

    // Steady state with an owned Deployment: status keeps being written, nothing reconciles
    // (a reconcile re-applies the Deployment; that must not wake the controller again).
    let addr = operator.http_addr().await;
    let reconciles = || async move {
        let (_, body) = http_get(addr, "/metrics").await;
        value(
            &parse_metrics(&body).0,
            "jobqueue_reconcile_duration_seconds_count",
            &[("controller", "jobqueue")],
        )
    };
    let status_writes = || {
        cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.verb == "patch" && r.subresource.as_deref() == Some("status"))
            .count()
    };
    let more_status_writes = |n: usize| async move {
        let writes = status_writes();
        eventually(
            Duration::from_secs(15),
            &format!("{n} more status writes"),
            || async {
                match status_writes() - writes {
                    seen if seen >= n => Ok(()),
                    seen => Err(format!("{seen}")),
                }
            },
        )
        .await;
    };
    // A reconcile (of the queue's creation) may still be running. The baseline is a count
    // that held across two status writes.
    let mut before = reconciles().await;
    for _ in 0..10 {
        more_status_writes(2).await;
        let now = reconciles().await;
        if now == before {
            break;
        }
        before = now;
    }
    let scale_reads = || {
        cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.verb == "get" && r.subresource.as_deref() == Some("scale"))
            .count()
    };
    let reads_before = scale_reads();
    more_status_writes(4).await;
    assert_eq!(
        reconciles().await,
        before,
        "the operator keeps reconciling an unchanged queue"
    );
    // Each status write follows a poll of the queue: its replica count came from the watch of
    // the worker Deployment, not from a GET of the scale subresource per poll.
    assert_eq!(
        scale_reads(),
        reads_before,
        "the scaler GETs the scale subresource of an unchanged Deployment"
    );
    let (_, body) = http_get(addr, "/metrics").await;
    assert_eq!(
        value(
            &parse_metrics(&body).0,
            "jobqueue_replicas",
            &[("namespace", "default"), ("name", "sharded")]
        ),
        Some(2.0),
        "the replica count read from the watch"
    );
}

/// A queue on a TLS Redis with a private CA from a Secret (`spec.redis.tls.caSecretRef`)
/// becomes Ready; without the CA the server is not trusted and the condition says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_redis_with_a_private_ca() {
    let cluster = Cluster::start("tls_redis_with_a_private_ca").await;
    let plain = RedisServer::start();
    let tls = jobqueue_test_support::redis::TlsRedisServer::start();
    secret(&cluster, "redis-ca", &[("ca.crt", tls.ca_pem())]).await;
    let _operator = cluster.operator(&plain.url(), "op-tls", &[]);

    cluster
        .create(
            "JobQueue",
            "trusted",
            json!({"redis": {"url": tls.url(), "tls": {"caSecretRef": {"name": "redis-ca", "key": "ca.crt"}}}}),
        )
        .await;
    cluster
        .create(
            "JobQueue",
            "untrusted",
            json!({"redis": {"url": tls.url()}}),
        )
        .await;

    cluster
        .condition(
            "JobQueue",
            "trusted",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}", tls.server().port()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let groups: redis::Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(default_stream("default", "trusted"))
        .query_async(&mut conn)
        .await
        .expect("the stream was provisioned over TLS");
    assert!(format!("{groups:?}").contains("workers"), "{groups:?}");

    let refused = cluster
        .condition(
            "JobQueue",
            "untrusted",
            "Ready",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(refused.reason, "RedisUnreachable", "{refused:?}");
}
