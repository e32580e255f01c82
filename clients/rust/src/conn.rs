//! Connecting to Redis: one standalone server or a Redis Cluster, behind one type that every
//! engine function accepts.
//!
//! URL forms:
//! - `redis://[user:password@]host[:port][/db]`: a standalone server (`rediss://` for TLS,
//!   `redis+unix:///path.sock` for a Unix socket). These are redis-rs URLs.
//! - `redis+cluster://[user:password@]host:port[,host:port...]`: a Redis Cluster, given by one
//!   or more seed nodes (`rediss+cluster://` for TLS). The client discovers the other nodes and
//!   follows slot migrations itself.
//!
//! Cluster mode is an explicit scheme rather than auto-detection so that a misconfigured
//! standalone server never silently behaves like a cluster (and vice versa).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::error::{QueueError, Result};

/// How long to wait for a TCP (and TLS) connection to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a reply. redis-rs defaults to 500ms, too short for a metrics pipeline
/// over thousands of queues or a worker's `XREADGROUP BLOCK` on a shared connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to a standalone Redis or to a Redis Cluster. Cheap to clone; clones share
/// the underlying multiplexed connection, which reconnects by itself.
#[derive(Clone)]
pub enum RedisConn {
    /// A standalone server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisConn::Single(_) => f.write_str("RedisConn::Single"),
            RedisConn::Cluster(_) => f.write_str("RedisConn::Cluster"),
        }
    }
}

/// A parsed Redis URL: where to connect and in which mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A standalone server; the redis-rs URL.
    Single(String),
    /// A cluster; one redis-rs URL per seed node.
    Cluster(Vec<String>),
}

impl Endpoint {
    /// Parses `url` (see the module docs for the accepted forms). Pure; no I/O.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let bad = |reason: String| QueueError::InvalidUrl {
            url: mask_password(url),
            reason,
        };
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(
                "expected redis://host:port, rediss://host:port or redis+cluster://host:port,host:port"
                    .into(),
            ));
        };
        match scheme {
            "redis" | "rediss" | "redis+unix" | "unix" => {
                let info = redis::IntoConnectionInfo::into_connection_info(url)
                    .map_err(|e| bad(e.to_string()))?;
                if let redis::ConnectionAddr::Tcp(host, _)
                | redis::ConnectionAddr::TcpTls { host, .. } = info.addr()
                    && host.is_empty()
                {
                    return Err(bad("the host is missing".into()));
                }
                Ok(Endpoint::Single(url.to_string()))
            }
            "redis+cluster" | "rediss+cluster" => {
                let node_scheme = if scheme == "rediss+cluster" {
                    "rediss"
                } else {
                    "redis"
                };
                let (authority, tail) = match rest.find(['/', '?']) {
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                let (userinfo, hosts) = match authority.rfind('@') {
                    Some(i) => (&authority[..=i], &authority[i + 1..]),
                    None => ("", authority),
                };
                let seeds: Vec<String> = hosts
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("{node_scheme}://{userinfo}{h}{tail}"))
                    .collect();
                if seeds.is_empty() {
                    return Err(bad(
                        "no cluster seed node given (host:port[,host:port...])".into()
                    ));
                }
                for seed in &seeds {
                    redis::IntoConnectionInfo::into_connection_info(seed.as_str())
                        .map_err(|e| bad(format!("seed {}: {e}", mask_password(seed))))?;
                }
                Ok(Endpoint::Cluster(seeds))
            }
            other => Err(bad(format!(
                "unsupported scheme {other:?}; use redis, rediss, redis+unix, redis+cluster or rediss+cluster"
            ))),
        }
    }

    /// A printable name of the endpoint, without passwords.
    pub fn display(&self) -> String {
        match self {
            Endpoint::Single(u) => mask_password(u),
            Endpoint::Cluster(seeds) => seeds
                .iter()
                .map(|s| mask_password(s))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// TLS settings beyond what a `rediss://` URL says (which trusts the system's roots). From a
/// JobQueue's `spec.redis.tls`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// A PEM bundle of CA certificates to trust in addition to the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate (development only).
    pub insecure_skip_verify: bool,
}

impl TlsOptions {
    /// Whether these are the defaults (nothing beyond the URL).
    pub fn is_default(&self) -> bool {
        self.ca_pem.is_none() && !self.insecure_skip_verify
    }
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|c| format!("<{} bytes>", c.len())),
            )
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

/// Connects to the Redis (or Redis Cluster) named by `url` and checks it answers PING.
pub async fn connect(url: &str) -> Result<RedisConn> {
    connect_with(url, &TlsOptions::default()).await
}

/// `ca` followed by the system's trust roots (as rustls finds them: the OS store, or
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`), as one PEM bundle. Roots that cannot be read are left out:
/// the private CA alone still works.
fn with_system_roots(ca: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let mut bundle = ca.to_vec();
    if !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    for cert in rustls_native_certs::load_native_certs().certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        bundle.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            bundle.extend_from_slice(line);
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    bundle
}

/// A client for one Redis server (not a Cluster seed list) with TLS settings, e.g. for a
/// pub/sub connection beside the multiplexed one.
pub fn single_client(url: &str, tls: &TlsOptions) -> Result<redis::Client> {
    let invalid = |reason: String| QueueError::InvalidUrl {
        url: mask_password(url),
        reason,
    };
    if tls.is_default() {
        return redis::Client::open(url).map_err(|e| invalid(e.to_string()));
    }
    if !url.starts_with("rediss://") {
        return Err(invalid(
            "TLS settings (spec.redis.tls) need a rediss:// URL".into(),
        ));
    }
    // redis-rs reads "skip verification" from the URL fragment.
    let url = if tls.insecure_skip_verify && !url.ends_with("#insecure") {
        format!("{url}#insecure")
    } else {
        url.to_string()
    };
    match &tls.ca_pem {
        // redis-rs trusts a given bundle instead of the system's roots: give it both.
        Some(ca) => redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(with_system_roots(ca)),
            },
        ),
        None => redis::Client::open(url.as_str()),
    }
    .map_err(|e| invalid(e.to_string()))
}

/// [`connect`] with TLS settings; they need a `rediss://` (or `rediss+cluster://`) URL.
pub async fn connect_with(url: &str, tls: &TlsOptions) -> Result<RedisConn> {
    let endpoint = Endpoint::parse(url)?;
    let unreachable = |error| QueueError::Unreachable {
        endpoint: endpoint.display(),
        error,
    };
    let invalid = |e: redis::RedisError| QueueError::InvalidUrl {
        url: mask_password(url),
        reason: e.to_string(),
    };
    let secure = |u: &str| u.starts_with("rediss://");
    let tls_url = |u: &str| -> Result<String> {
        if tls.is_default() {
            return Ok(u.to_string());
        }
        if !secure(u) {
            return Err(QueueError::InvalidUrl {
                url: mask_password(url),
                reason: "TLS settings (spec.redis.tls) need a rediss:// URL".into(),
            });
        }
        // redis-rs reads "skip verification" from the URL fragment.
        Ok(if tls.insecure_skip_verify && !u.ends_with("#insecure") {
            format!("{u}#insecure")
        } else {
            u.to_string()
        })
    };
    // redis-rs trusts a given bundle instead of the system's roots: give it both.
    let certificates = tls.ca_pem.as_ref().map(|ca| redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(with_system_roots(ca)),
    });
    let mut conn = match &endpoint {
        Endpoint::Single(u) => {
            let client = single_client(u, tls)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            RedisConn::Single(
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(unreachable)?,
            )
        }
        Endpoint::Cluster(seeds) => {
            let seeds = seeds
                .iter()
                .map(|s| tls_url(s))
                .collect::<Result<Vec<_>>>()?;
            let mut builder =
                redis::cluster::ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2);
            if let Some(certs) = certificates {
                builder = builder.certs(certs);
            }
            let client = builder.build().map_err(invalid)?;
            RedisConn::Cluster(client.get_async_connection().await.map_err(unreachable)?)
        }
    };
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(unreachable)?;
    if pong != "PONG" {
        return Err(QueueError::Protocol {
            op: "PING",
            detail: format!("answered {pong:?}"),
        });
    }
    Ok(conn)
}

impl RedisConn {
    /// Whether this is a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// `url` with the password (if any) replaced by `***`, for messages and logs.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let masked = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None if userinfo.is_empty() => String::new(),
                None => "***".to_string(),
            };
            format!("{scheme}://{masked}@{}{tail}", &authority[at + 1..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_urls_parse() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://:pw@host:1/2",
            "rediss://h:6380",
            "redis://h",
        ] {
            assert_eq!(
                Endpoint::parse(url).unwrap(),
                Endpoint::Single(url.to_string()),
                "{url}"
            );
        }
    }

    #[test]
    fn cluster_urls_expand_to_seeds_with_credentials() {
        let e = Endpoint::parse("redis+cluster://u:pw@a:1,b:2").unwrap();
        assert_eq!(
            e,
            Endpoint::Cluster(vec!["redis://u:pw@a:1".into(), "redis://u:pw@b:2".into()])
        );
        let e = Endpoint::parse("rediss+cluster://a:1/").unwrap();
        assert_eq!(e, Endpoint::Cluster(vec!["rediss://a:1/".into()]));
        assert_eq!(e.display(), "rediss://a:1/");
    }

    #[test]
    fn bad_urls_name_the_problem() {
        let err = Endpoint::parse("http://x:1").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme \"http\""), "{err}");
        let err = Endpoint::parse("localhost:6379").unwrap_err().to_string();
        assert!(err.contains("expected redis://"), "{err}");
        let err = Endpoint::parse("redis+cluster://").unwrap_err().to_string();
        assert!(err.contains("no cluster seed"), "{err}");
        let err = Endpoint::parse("redis://:secret@h:notaport")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "password leaked: {err}");
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(mask_password("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(mask_password("redis://user:pw@h"), "redis://user:***@h");
        assert_eq!(mask_password("redis://h:1"), "redis://h:1");
        assert_eq!(
            mask_password("redis+cluster://u:p@a:1,b:2"),
            "redis+cluster://u:***@a:1,b:2"
        );
    }
}
