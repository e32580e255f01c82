//! The web dashboard (docs/architecture.md#dashboard): pages served by the operator over HTTP
//! for people who watch queues, rendered on the server (askama templates compiled into the
//! binary, charts as SVG) and kept live by a small script polling each page's JSON twin.
//!
//! - [`routes`]: the router, pages, JSON and actions.
//! - [`page`]: the page model shared by HTML and JSON.
//! - [`overview`], [`queue`], [`job`], [`schedules`]: what each page reads.
//! - [`history`]: the per-queue ring buffers the scaler fills (pure).
//! - [`chart`]: the SVG chart (pure).
//! - [`auth`]: who may act (pure).
//!
//! Read-only unless started with actions and a token; it shows only what the runtime serves,
//! so in a cluster only the watched namespaces. Redis URLs are never shown.

pub mod auth;
pub mod chart;
pub mod history;
mod job;
mod overview;
pub mod page;
mod queue;
mod routes;
mod schedules;

pub use routes::serve;

/// How the dashboard is run.
#[derive(Clone, Default)]
pub struct DashboardOptions {
    /// The bearer token actions need; `None`: read-only.
    pub actions_token: Option<String>,
}

impl std::fmt::Debug for DashboardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardOptions")
            .field("actions", &self.actions_token.is_some())
            .finish()
    }
}

/// Where the dashboard finds the runtime: `None` on a standby replica (it has none until it
/// wins the lease).
pub type RuntimeSlot = tokio::sync::watch::Receiver<Option<crate::operator::runtime::Runtime>>;

/// A dashboard being served.
pub struct Started {
    /// `http://HOST:PORT/`.
    pub url: String,
    pub actions: bool,
    /// The token made for this run (local mode with actions and no token given): shown once.
    pub new_token: Option<String>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(transparent)]
    Token(#[from] crate::operator::settings::DashboardTokenError),
    #[error(
        "--dashboard-actions needs a bearer token: mount one with --dashboard-token-file PATH or set DASHBOARD_TOKEN"
    )]
    NoToken,
    #[error("cannot make a dashboard token: the system's random source failed")]
    Random,
    #[error("cannot listen on the dashboard address {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Starts the dashboard the settings ask for (`None`: off). `local`: a missing token is made
/// up and handed back to be printed, instead of being an error.
pub async fn start(
    settings: &crate::operator::settings::Settings,
    runtime: RuntimeSlot,
    local: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<Started>, DashboardError> {
    let Some(addr) = settings.dashboard_addr() else {
        return Ok(None);
    };
    let mut new_token = None;
    let actions_token = match (settings.dashboard_actions, settings.dashboard_token()?) {
        (false, _) => None,
        (true, Some(token)) => Some(token),
        (true, None) if local => {
            let token = auth::new_token().map_err(|_| DashboardError::Random)?;
            new_token = Some(token.clone());
            Some(token)
        }
        (true, None) => return Err(DashboardError::NoToken),
    };
    let actions = actions_token.is_some();
    let (bound, server) = serve(addr, runtime, DashboardOptions { actions_token }, shutdown)
        .await
        .map_err(|source| DashboardError::Bind { addr, source })?;
    Ok(Some(Started {
        url: format!("http://{bound}/"),
        actions,
        new_token,
        task: tokio::spawn(server),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::settings::parse;

    #[tokio::test]
    async fn actions_without_a_token_refuse_to_start_in_a_cluster_and_get_one_locally() {
        if std::env::var_os("DASHBOARD_TOKEN").is_some()
            || std::env::var_os("DASHBOARD_TOKEN_FILE").is_some()
        {
            return; // the environment gives a token: nothing to check
        }
        let s = parse(&["--dashboard-addr", "127.0.0.1:0", "--dashboard-actions"]);
        let (_tx, slot) = tokio::sync::watch::channel(None);
        let refused = start(&s, slot.clone(), false, std::future::pending()).await;
        assert!(matches!(refused, Err(DashboardError::NoToken)));
        let local = start(&s, slot, true, std::future::pending())
            .await
            .unwrap()
            .expect("served");
        assert!(local.actions);
        assert_eq!(local.new_token.as_deref().map(str::len), Some(64));
        assert!(local.url.starts_with("http://127.0.0.1:"), "{}", local.url);
        local.task.abort();
    }

    #[test]
    fn the_options_never_print_the_token() {
        let o = DashboardOptions {
            actions_token: Some("s3cret".into()),
        };
        assert_eq!(format!("{o:?}"), "DashboardOptions { actions: true }");
    }
}
