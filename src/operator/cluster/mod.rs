//! Cluster mode (`jobqueue-operator run`): kube-runtime controllers for JobQueue and Schedule,
//! the shared runtime's loops, leader election through a Lease, and the HTTP endpoints.
//!
//! Every replica serves `/healthz`, `/readyz` and `/metrics`; only the replica holding the Lease
//! runs controllers and loops. Losing the lease stops them at once; SIGTERM stops them and
//! releases the lease so a standby takes over without waiting for it to expire.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter as EventReporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{PredicateConfig, WatchStreamExt, reflector, watcher};
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;

use crate::api::{JobQueue, Schedule};
use crate::operator::dashboard;
use crate::operator::http::{self, Health};
use crate::operator::metrics::Metrics;
use crate::operator::runtime::{Runtime, RuntimeOptions};
use crate::operator::settings::Settings;
use crate::operator::signal::shutdown_signal;

pub mod context;
mod credentials;
mod deployments;
pub mod jobqueue;
mod lease_guard;
mod pods;
mod reporter;
pub mod schedule;
pub mod status;
mod workers;

pub use context::Context;

/// Runs the operator until SIGTERM / Ctrl-C.
pub async fn run(args: Settings) -> anyhow::Result<()> {
    let client = Client::try_default().await.context(
        "connecting to Kubernetes (in-cluster config, else KUBECONFIG or ~/.kube/config)",
    )?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http = serve_http(&args, registry, health.clone(), stop_rx.clone()).await?;
    // The leader's runtime, once this replica leads; the dashboard shows a standby page until.
    let (runtime_slot, slot) = tokio::sync::watch::channel(None);
    let runtime_slot = Arc::new(runtime_slot);
    let mut dashboard_stop = stop_rx;
    let dashboard_stopped = async move {
        let _ = dashboard_stop.wait_for(|s| *s).await;
    };
    if let Some(d) = dashboard::start(&args, slot, false, dashboard_stopped).await? {
        tracing::info!(url = %d.url, actions = d.actions, "serving the dashboard");
    }

    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("jobqueue-operator-{}", uuid::Uuid::new_v4().simple()));
    let lease_secs = args.lease_duration.as_std().as_secs().max(2);
    let (mut leading, lease_task) = elect(&client, &args, &identity, lease_secs).await?;
    let check_lease = Arc::new(tokio::sync::Notify::new());
    let (mut fresh, guard) = lease_guard::spawn(
        client.clone(),
        &args.lease_namespace,
        &args.lease_name,
        &identity,
        std::time::Duration::from_secs(lease_secs),
        check_lease.clone(),
    );
    health.set_ready(true);
    tracing::info!(
        identity,
        lease = args.lease_name,
        "waiting for the leader lease"
    );

    let active = follow_lease(
        &client,
        &args,
        &metrics,
        &identity,
        Lease {
            leading: &mut leading,
            fresh: &mut fresh,
            check: &check_lease,
        },
        &runtime_slot,
    )
    .await?;
    guard.abort();

    tracing::info!("shutting down");
    health.set_ready(false);
    if let Some((tx, task)) = active {
        let _ = tx.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
    // Dropping the receiver makes the lease manager release the lease.
    drop(leading);
    match tokio::time::timeout(std::time::Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the leader lease"),
        other => tracing::warn!(
            ?other,
            "could not release the leader lease; it expires on its own"
        ),
    }
    let _ = stop_tx.send(true);
    if let Some(http) = http {
        let _ = http.await;
    }
    Ok(())
}

/// Joins the leader election for the Lease: whether this replica holds it, and the manager's
/// task (it releases the lease when the receiver is dropped).
async fn elect(
    client: &Client,
    args: &Settings,
    identity: &str,
    lease_secs: u64,
) -> anyhow::Result<(
    tokio::sync::watch::Receiver<bool>,
    tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
)> {
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(identity)
        .with_duration(lease_secs)
        .with_grace((lease_secs / 3).max(1))
        .build()
        .await
        .context("setting up leader election")?;
    Ok(manager.watch().await)
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `stop` turns true (nothing when the
/// address is `off`).
async fn serve_http(
    args: &Settings,
    registry: Registry,
    health: Arc<Health>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
    let Some(addr) = args.metrics_addr() else {
        return Ok(None);
    };
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let (bound, server) = http::serve(addr, registry, health, stopped)
        .await
        .with_context(|| format!("binding the metrics address {addr}"))?;
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    Ok(Some(tokio::spawn(server)))
}

/// The leader's work while it runs: its stop switch and task.
type Leadership = (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
);

/// What says this replica leads: the lease manager, and the guard's own check that the
/// lease is still renewed ([`lease_guard`]).
struct Lease<'a> {
    leading: &'a mut tokio::sync::watch::Receiver<bool>,
    fresh: &'a mut tokio::sync::watch::Receiver<bool>,
    check: &'a tokio::sync::Notify,
}

/// Starts the leader's work when the lease is won and stops it when it is lost, or when its
/// renewal cannot be confirmed before it expires (a replica cut off from the API server steps
/// down by its own clock), until SIGTERM / Ctrl-C. Returns the work still running then.
async fn follow_lease(
    client: &Client,
    args: &Settings,
    metrics: &Metrics,
    identity: &str,
    lease: Lease<'_>,
    runtime_slot: &Arc<RuntimeSlotSender>,
) -> anyhow::Result<Option<Leadership>> {
    let Lease {
        leading,
        fresh,
        check,
    } = lease;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut active: Option<Leadership> = None;
    loop {
        let holds = *leading.borrow_and_update();
        let renewed = *fresh.borrow_and_update();
        let is_leader = holds && renewed;
        match (is_leader, active.is_some()) {
            (true, false) => {
                tracing::info!(
                    identity,
                    "became the leader; starting controllers and loops"
                );
                metrics.leading(true);
                let (tx, rx) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(lead(
                    client.clone(),
                    args.clone(),
                    metrics.clone(),
                    identity.to_string(),
                    rx,
                    runtime_slot.clone(),
                ));
                active = Some((tx, task));
            }
            (false, true) => {
                if holds {
                    tracing::warn!(
                        identity,
                        "stepped down: the lease's renewal could not be confirmed before it expires; stopping controllers and loops"
                    );
                } else {
                    tracing::warn!(
                        identity,
                        "lost the leader lease; stopping controllers and loops"
                    );
                }
                metrics.leading(false);
                runtime_slot.send_replace(None);
                if let Some((tx, task)) = active.take() {
                    let _ = tx.send(true);
                    task.abort();
                }
            }
            _ => {}
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(active),
            changed = leading.changed() => {
                if changed.is_err() {
                    anyhow::bail!("leader election stopped unexpectedly");
                }
                check.notify_one();
            }
            changed = fresh.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the lease guard stopped unexpectedly");
                }
            }
        }
    }
}

/// What the leader runs: controllers, the pod index, the runtime's loops and status writes.
async fn lead(
    client: Client,
    args: Settings,
    metrics: Metrics,
    identity: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
    runtime_slot: Arc<RuntimeSlotSender>,
) {
    let (status, status_task) = status::StatusWriter::new(client.clone());
    let recorder = Recorder::new(
        client.clone(),
        EventReporter {
            controller: "jobqueue-operator".into(),
            instance: Some(identity),
        },
    );
    let reporter = Arc::new(reporter::KubeReporter {
        status: status.clone(),
        recorder: recorder.clone(),
    });
    // A deposed leader may still be running somewhere: fence it out by leadership term.
    let options = RuntimeOptions {
        fencing: true,
        ..args.runtime_options()
    };
    let runtime = Runtime::new(options, metrics.clone(), reporter);
    runtime_slot.send_replace(Some(runtime.clone()));
    let pods = Arc::new(pods::PodIndex::default());
    let deployments = Arc::new(deployments::DeploymentCache::default());
    let ctx = Arc::new(Context {
        client: client.clone(),
        runtime: runtime.clone(),
        status,
        recorder,
        metrics,
        pods: pods.clone(),
        deployments: deployments.clone(),
        default_redis: args.redis_url(),
        per_queue_users: args.per_queue_users,
        failures: Default::default(),
        queue_served: tokio::sync::broadcast::channel(context::QUEUE_SERVED_BACKLOG).0,
    });

    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().map(|n| Some(n.clone())).collect()
    };
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(status_task);
    for ns in namespaces {
        tasks.spawn(
            pods.clone()
                .watch(client.clone(), ns.clone(), runtime.clone()),
        );
        tasks.spawn(run_jobqueue_controller(
            client.clone(),
            ns.clone(),
            ctx.clone(),
        ));
        tasks.spawn(run_schedule_controller(client.clone(), ns, ctx.clone()));
    }
    runtime
        .run(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    runtime_slot.send_replace(None);
    tasks.shutdown().await;
}

/// Hands the leader's runtime to the dashboard.
type RuntimeSlotSender = tokio::sync::watch::Sender<Option<Runtime>>;

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What a reconcile acts on: the spec (generation), deletion and finalizers. Status writes (the
/// operator's own, every status interval) must not trigger reconciles of thousands of objects.
fn spec_or_lifecycle<K: kube::Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut h = DefaultHasher::new();
    // A credentials rotation is asked for in an annotation, which leaves the generation be.
    let rotation = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(credentials::ROTATE_ANNOTATION));
    (
        meta.generation,
        meta.deletion_timestamp.is_some(),
        &meta.finalizers,
        rotation,
    )
        .hash(&mut h);
    Some(h.finish())
}

/// What Schedules depend on in their JobQueue: its existence, spec and readiness.
fn queue_readiness(jq: &JobQueue) -> Option<u64> {
    let ready = jq.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == crate::api::conditions::READY)
            .map(|c| c.status.clone())
    });
    let mut h = DefaultHasher::new();
    (spec_or_lifecycle(jq), ready).hash(&mut h);
    Some(h.finish())
}

/// A watch of the controller's main resource that lets only spec and lifecycle changes through,
/// and the store it keeps.
fn main_stream<K>(
    api: Api<K>,
) -> (
    kube::runtime::reflector::Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        // Nothing reads who last wrote which field; kept, it would cost memory per object.
        .modify(|o| kube::ResourceExt::managed_fields_mut(o).clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_lifecycle::<K>, PredicateConfig::default());
    (reader, stream)
}

/// Reconciles run at once per controller. Each holds API requests in flight, and each request
/// in flight an HTTP/1 connection with its buffers: unbounded, a thousand objects at start-up
/// would open a thousand connections and keep them pooled.
const RECONCILE_CONCURRENCY: u16 = 16;

fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY)
}

async fn run_jobqueue_controller(client: Client, ns: Option<String>, ctx: Arc<Context>) {
    let (store, stream) = main_stream(api::<JobQueue>(&client, &ns));
    // One watch of the worker Deployments: it triggers reconciles of their queues (a changed or
    // deleted Deployment is re-applied) and feeds the scaler's replica counts.
    let (deployments, writer) = reflector::store();
    ctx.deployments.add(deployments);
    let owned = watcher(
        api::<Deployment>(&client, &ns),
        watcher::Config::default().labels("app.kubernetes.io/managed-by=jobqueue-operator"),
    )
    .default_backoff()
    // Only the replica count and the owner are read: the rest (the pod template, managed
    // fields, status) would cost memory for every queue.
    .modify(deployments::strip)
    .reflect(writer);
    let owned = deployments::needs_reconcile(owned);
    Controller::for_stream(stream, store)
        .with_config(controller_config())
        .owns_stream(owned)
        .shutdown_on_signal()
        .run(jobqueue::reconcile, jobqueue::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "JobQueue controller");
            }
        })
        .await;
}

/// The Schedules in `store` whose `queueRef` names queue `name` of namespace `ns`.
fn schedules_of(
    store: &kube::runtime::reflector::Store<Schedule>,
    ns: &str,
    name: &str,
) -> Vec<ObjectRef<Schedule>> {
    store
        .state()
        .into_iter()
        .filter(|s| {
            kube::ResourceExt::namespace(s.as_ref()).as_deref() == Some(ns)
                && s.spec.queue_ref.name == name
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

async fn run_schedule_controller(client: Client, ns: Option<String>, ctx: Arc<Context>) {
    // A JobQueue becoming ready (or going away) re-checks the Schedules that point at it.
    let (store, stream) = main_stream(api::<Schedule>(&client, &ns));
    let controller = Controller::for_stream(stream, store).with_config(controller_config());
    let store = controller.store();
    let queues = watcher(api::<JobQueue>(&client, &ns), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(queue_readiness, PredicateConfig::default());
    let (by_watch, by_notice) = (store.clone(), store);
    // A queue the runtime starts serving (after a restart its Ready condition may not change).
    let served = futures::stream::unfold(ctx.queue_served.subscribe(), |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(id) => return Some((id, rx)),
                // Missed notices: those Schedules find their queue at their next retry.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .flat_map(move |queue: crate::operator::runtime::ObjectId| {
        futures::stream::iter(schedules_of(&by_notice, &queue.namespace, &queue.name))
    });
    controller
        .watches_stream(queues, move |jq| {
            let ns = kube::ResourceExt::namespace(&jq).unwrap_or_default();
            schedules_of(&by_watch, &ns, &kube::ResourceExt::name_any(&jq))
        })
        .reconcile_on(served)
        .shutdown_on_signal()
        .run(schedule::reconcile, schedule::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "Schedule controller");
            }
        })
        .await;
}
