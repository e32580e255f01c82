//! The README's quickstart through `kubectl`, as a user runs it (kubectl is required: see
//! `jobqueue_test_support::tools`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::operator::{Cluster, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::tools;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::jiff::Timestamp;

use crate::fixtures::existing_keys;

/// `kubectl ARGS` against the test API server; panics with its output when it fails.
async fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> String {
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
    if !tools::require_kubectl("operator::kubectl::kubectl_quickstart") {
        return;
    }
    let cluster = Cluster::start("kubectl_quickstart").await;
    let redis = RedisServer::start();
    let _operator = cluster.operator("redis://127.0.0.1:1", "op-a", &[]);
    let manifests = quickstart_manifests(&cluster, &redis.url());
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
    next_run_in_status(&cluster).await;
    ready_in_kubectl_get(kubeconfig, cache.path()).await;
    delete_keeps_the_stream(&cluster, &redis.url(), kubeconfig, cache.path(), dir).await;
}

/// The example manifests, the Secret's URL pointing at this test's Redis.
fn quickstart_manifests(cluster: &Cluster, redis_url: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
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
        jobqueue.replace(in_cluster_url, redis_url),
    )
    .expect("write");
    std::fs::copy(root.join("schedule.yaml"), manifests.join("schedule.yaml")).expect("copy");
    manifests
}

/// The Berlin-time Schedule's status names its next 07:30 Berlin run.
async fn next_run_in_status(cluster: &Cluster) {
    let expected = next_half_past_seven_in_berlin();
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
                .and_then(|t| t.parse::<Timestamp>().ok());
            match next {
                Some(t) if t == expected => Ok(()),
                other => Err(format!("{other:?}, expected {expected}")),
            }
        },
    )
    .await;
}

/// The next 07:30 in Europe/Berlin after now: the next run of `30 7 * * *` in that zone.
fn next_half_past_seven_in_berlin() -> Timestamp {
    let now = Timestamp::now()
        .in_tz("Europe/Berlin")
        .expect("the Europe/Berlin zone");
    let at_half_past_seven = |date: k8s_openapi::jiff::civil::Date| {
        date.at(7, 30, 0, 0)
            .to_zoned(now.time_zone().clone())
            .expect("07:30 exists in Berlin every day")
    };
    let today = at_half_past_seven(now.date());
    if today > now {
        today.timestamp()
    } else {
        at_half_past_seven(now.date().tomorrow().expect("a next day")).timestamp()
    }
}

/// `kubectl get jq emails` shows the queue ready.
async fn ready_in_kubectl_get(kubeconfig: &Path, cache: &Path) {
    let table = kubectl(kubeconfig, cache, &["get", "jq", "emails"]).await;
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
}

/// `kubectl delete` returns once the finalizers ran: Retain keeps the stream, the schedule
/// entry goes.
async fn delete_keeps_the_stream(
    cluster: &Cluster,
    redis_url: &str,
    kubeconfig: &Path,
    cache: &Path,
    dir: &str,
) {
    let keys = QueueKeys::new(default_stream("default", "emails"));
    let mut conn = redis_conn(redis_url).await;
    kubectl(kubeconfig, cache, &["delete", "-f", dir, "--timeout=30s"]).await;
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
