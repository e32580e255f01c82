//! Leader election (docs/architecture.md#operator-loops): with two replicas, the leader
//! SIGKILLed while every-second Schedules run costs no run twice and each missed run follows
//! its misfire policy; a replica that loses its Lease stops its loops at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::metrics::{http_get, parse_metrics, value};
use jobqueue_test_support::operator::{Cluster, Operator, jobs, jobs_at_least, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use serde_json::json;

use crate::fixtures::{Conn, lease_holder};
use crate::runs::{assert_accounted, gaps, runs};

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
    let keys = every_second_schedules(&cluster, &conn, &redis.url()).await;
    let (killed_at, survivor) = kill_the_leader(&cluster, &mut a, &mut b).await;
    jobs_after_the_failover(&conn, &keys, killed_at).await;
    missed_runs_in_status(&cluster, &conn, &keys).await;
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
    assert_failover_follows_the_policies(&mut conn, &keys, killed_at).await;
}

/// A queue `cron` with an every-second Schedule of each misfire policy, each fired 3 times.
async fn every_second_schedules(cluster: &Cluster, conn: &Conn, redis_url: &str) -> QueueKeys {
    cluster
        .create("JobQueue", "cron", json!({"redis": {"url": redis_url}}))
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
    keys
}

/// SIGKILLs the Lease holder and waits for the other replica to take the Lease; returns when
/// (ms since the epoch) and the survivor.
async fn kill_the_leader<'a>(
    cluster: &Cluster,
    a: &'a mut Operator,
    b: &'a mut Operator,
) -> (i64, &'a mut Operator) {
    let leader = eventually(Duration::from_secs(10), "a lease holder", || async {
        lease_holder(cluster)
            .await
            .ok_or_else(|| "none".to_string())
    })
    .await;
    let (killed, survivor) = match leader.as_str() {
        "op-a" => (a, b),
        "op-b" => (b, a),
        other => panic!("unexpected lease holder {other}"),
    };
    killed.sigkill();
    let killed_at = Timestamp::now().as_millisecond();
    let survivor_id = survivor.identity.clone();
    eventually(
        Duration::from_secs(20),
        "the standby to take the lease",
        || async {
            match lease_holder(cluster).await {
                Some(h) if h == survivor_id => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    (killed_at, survivor)
}

/// Both schedules fire again, 3 times each, more than a second after the kill.
async fn jobs_after_the_failover(conn: &Conn, keys: &QueueKeys, killed_at: i64) {
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
}

/// status.missedRuns reports what Redis counted.
async fn missed_runs_in_status(cluster: &Cluster, conn: &Conn, keys: &QueueKeys) {
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
}

/// Every second is one job or one missed run; Skip fired nothing in the failover's gap, and
/// FireOnce exactly the latest missed run of it.
async fn assert_failover_follows_the_policies(conn: &mut Conn, keys: &QueueKeys, killed_at: i64) {
    let skip = runs(conn, keys, "skip").await;
    let once = runs(conn, keys, "once").await;
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
    let now = Timestamp::now();
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
    let stepped_down = Timestamp::now().as_millisecond();
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
