//! A stateful test double of the Kubernetes API server, over real HTTP on 127.0.0.1, so that the
//! real operator binary (through kube-rs) and the real `kubectl` can be tested without a cluster.
//! It is a test double: nothing in it is meant for production, and where it is simpler than
//! the real server this comment says so.
//!
//! # What it does
//! - Discovery in the legacy form (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`),
//!   `/version`, `/openapi/v2` (empty) and `/openapi/v3` (endpoint lists without schemas,
//!   enough for kubectl to leave field validation to the server).
//! - Built-ins: namespaces (`default`, `kube-system`, `kube-public`, `kube-node-lease` exist
//!   from the start), secrets, configmaps, services, serviceaccounts, pods, events (core, and
//!   `events.k8s.io/v1` as a view of the same objects, so Events recorded by kube-runtime show
//!   in `kubectl describe`), deployments and statefulsets (with `/status` and `/scale`),
//!   batch jobs and cronjobs (with `/status`), coordination.k8s.io leases, and
//!   apiextensions.k8s.io CustomResourceDefinitions.
//! - Custom resources for every served version of every CRD as soon as the CRD is created
//!   (scope, short names, categories, `/status` and `/scale` subresources, printer columns);
//!   a CRD whose schema is not structural is refused (422); a deleted CRD deletes its objects
//!   and goes when the last one has gone (their finalizers are honoured), refusing creates
//!   meanwhile.
//! - get, list (label selectors: full grammar; field selectors: `=`, `==`, `!=` on any dotted
//!   path; `limit`/`continue`), create (also `generateName`), update with resourceVersion
//!   preconditions (409 Conflict when stale; a custom resource's PUT must carry one, as in the
//!   real server; built-ins allow unconditional updates), patch (JSON merge, JSON patch, strategic merge
//!   as described in [`patch`], server-side apply as described in [`managed`]), delete with
//!   preconditions, finalizers (deletionTimestamp set; the object goes when its last
//!   finalizer is removed), ownerReference garbage collection, `dryRun=All`.
//! - Watch: ADDED/MODIFIED/DELETED in resourceVersion order, selector transitions as
//!   ADDED/DELETED, bookmarks, `sendInitialEvents`, and `410 Gone` (an ERROR event) for a
//!   resourceVersion older than the bounded history. [`TestApiServer::compact`] and
//!   [`TestApiServer::expire_watches`] let a test force both.
//! - `/status`: main writes ignore status, status writes change only status, and
//!   `metadata.generation` counts changes of everything but metadata and (with a status
//!   subresource) status. `/scale` reads and writes the replicas of Deployments,
//!   StatefulSets and CRDs with a scale subresource.
//! - Custom resources are validated against their CRD's `openAPIV3Schema` with defaults
//!   applied; failures are 422 `Invalid` with `details.causes[].field`, which kubectl prints.
//!   `fieldValidation=Strict` (kubectl's default) rejects unknown fields, otherwise they are
//!   pruned.
//! - A `kubectl get` Table (`Accept: application/json;as=Table;...`) with a CRD's
//!   `additionalPrinterColumns` (JSONPath subset: fields, indexes, `[?(@.k=="v")]`), also as
//!   one-row Tables in watches (`kubectl get --watch`); the built-ins get the main columns of
//!   the real server's (Deployments READY/UP-TO-DATE/AVAILABLE, Pods READY/STATUS/RESTARTS,
//!   Events TYPE/REASON/OBJECT/MESSAGE, ...), computed from what clients wrote.
//! - A request log ([`TestApiServer::requests`]).
//! - JSON everywhere; protobuf request bodies (what kubectl's typed `create` commands send) for
//!   every built-in kind of a stable API version, read with a schema derived at build time from
//!   the `k8s-pb` crate's source, answered in JSON. A protobuf body of any other kind gets 415
//!   naming it and pointing at `kubectl apply -f`.
//!
//! # What it does not do
//! - No authentication, authorization (RBAC), admission webhooks, API priority and fairness,
//!   aggregated discovery, or conversion webhooks (all versions of a CRD share one
//!   stored object; only `apiVersion` changes).
//! - No controllers: Deployments create no Pods, no status is filled in by anyone but clients,
//!   a deleted namespace is emptied at once (and goes when its last object has gone), pods
//!   are deleted without a grace period.
//! - Garbage collection is synchronous and Foreground propagation behaves like Background.
//! - Strategic merge knows only `name` as a list merge key; server-side apply treats lists as
//!   atomic and owns only labels, annotations, finalizers and ownerReferences of metadata.
//! - Validation covers only custom resources (and object names); built-ins are stored as sent,
//!   apart from `spec.replicas` defaulting to 1 on Deployments and StatefulSets and a Secret's
//!   `type` to `Opaque`.
//! - `events.k8s.io/v1` Events are a view of core Events (as in the real server) by renaming
//!   fields; the few semantic differences of the real conversion are not reproduced.
//! - `continue` tokens do not pin a snapshot, and a list at an exact older resourceVersion is
//!   410 Gone (no watch cache).
//! - The OpenAPI documents carry no schemas, so `kubectl explain` does not work and kubectl
//!   does no client-side schema validation (the server validates).

mod discovery;
mod error;
mod events;
mod http;
mod log;
pub mod managed;
pub mod patch;
mod path;
mod protobuf;
mod resources;
mod scale;
mod selector;
mod store;
mod table;
mod validate;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use error::ApiError;
pub use log::RequestRecord;

use http::Shared;
use store::Store;

/// Events kept for watches by default; older resourceVersions get 410 Gone.
pub const DEFAULT_HISTORY: usize = 10_000;
/// How often an idle watch that asked for bookmarks gets one.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// Settings for a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    pub history_limit: usize,
    pub bookmark_interval: Duration,
    /// Print each resource request to stderr.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            history_limit: DEFAULT_HISTORY,
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            verbose: false,
        }
    }
}

/// A running server; it stops when dropped.
pub struct TestApiServer {
    shared: Arc<Shared>,
    url: String,
    kubeconfig: PathBuf,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A kubeconfig (no credentials) for a server URL, with `default` as the namespace.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: jobqueue-test\n  cluster:\n    server: {url}\n\
         contexts:\n- name: jobqueue-test\n  context:\n    cluster: jobqueue-test\n    user: jobqueue-test\n    namespace: default\n\
         current-context: jobqueue-test\nusers:\n- name: jobqueue-test\n  user: {{}}\n"
    )
}

impl TestApiServer {
    /// Registers the project's JobQueue and Schedule CRDs (the same objects `crds/*.yaml`
    /// hold; a test keeps those files equal to the types).
    pub async fn install_project_crds(&self) {
        use kube::CustomResourceExt;
        let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            kube::Api::all(self.client());
        for crd in [
            jobqueue_operator::api::JobQueue::crd(),
            jobqueue_operator::api::Schedule::crd(),
        ] {
            crds.create(&kube::api::PostParams::default(), &crd)
                .await
                .expect("registering a CRD");
        }
    }

    /// Starts a server on a free port with a kubeconfig in a temporary directory.
    pub async fn start() -> Self {
        Self::start_with(Options::default())
            .await
            .expect("start the test API server")
    }

    /// Starts a server with explicit settings; the kubeconfig goes in a temporary directory.
    pub async fn start_with(options: Options) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("kubeconfig");
        let mut s = Self::start_at(options, &path).await?;
        s._dir = Some(dir);
        Ok(s)
    }

    /// Starts a server and writes its kubeconfig to `kubeconfig` once it accepts requests.
    pub async fn start_at(options: Options, kubeconfig: &Path) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr: SocketAddr = listener.local_addr()?;
        let (changes, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(options.history_limit)),
            log: Mutex::new(Vec::new()),
            changes,
            bookmark_interval: options.bookmark_interval,
            addr,
            verbose: options.verbose,
        });
        let app = Router::new()
            .fallback(http::handle)
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        let url = format!("http://{addr}");
        // The listener is bound, so requests are accepted from here on.
        std::fs::write(kubeconfig, kubeconfig_yaml(&url))?;
        Ok(TestApiServer {
            shared,
            url,
            kubeconfig: kubeconfig.to_path_buf(),
            _dir: None,
            shutdown: Some(tx),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kubeconfig file pointing at this server (for kubectl and the operator binary).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube-rs client for this server, with `default` as its namespace.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("the server URL is a valid URI"));
        kube::Client::try_from(config).expect("a kube client for the test server")
    }

    /// Every resource request so far, in order (a server that has logged 200,000 forgets
    /// the oldest half).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log().clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }

    /// Drops the watch history: a watch from any resourceVersion handed out so far gets 410
    /// Gone (like etcd compaction).
    pub fn compact(&self) {
        self.shared.store().compact();
        self.shared.notify();
    }

    /// Ends every open watch; clients re-watch from their last resourceVersion.
    pub fn expire_watches(&self) {
        self.shared.store().expire_watches();
        self.shared.notify();
    }

    /// Both at once, atomically: open watches end and can only resume after a relist.
    pub fn compact_and_expire_watches(&self) {
        {
            let mut store = self.shared.store();
            store.compact();
            store.expire_watches();
        }
        self.shared.notify();
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.shared.store().expire_watches();
        self.shared.changes.send_replace(u64::MAX);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
