//! The `jobqueue` Redis Functions library (`lua/jobs.lua`, documented at its top): the worker
//! operations, loaded once per Redis primary and called with FCALL by every client.

use redis::Value;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};

use crate::conn::RedisConn;
use crate::error::{QueueError, Result};
use crate::lua::COMMON;

/// The library's name in `FUNCTION LIST`.
pub const LIBRARY_NAME: &str = "jobqueue";

/// The revision `FCALL_RO jobqueue_version 0` answers. Bump it (and `VERSION` in
/// `lua/jobs.lua`) whenever the library's source changes, common helpers included: a server
/// keeps a loaded revision until a newer one comes.
pub const LIBRARY_VERSION: i64 = 7;

/// The library's source as given to FUNCTION LOAD.
pub fn library_source() -> String {
    format!("#!lua name={LIBRARY_NAME}\n{COMMON}\n{}", crate::lua::JOBS)
}

/// What [`ensure_library`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibraryStatus {
    /// Every primary already had this revision.
    Current,
    /// The library was missing or older somewhere and was loaded on every primary.
    Loaded,
    /// A newer revision is loaded somewhere (a newer operator owns the library): nothing
    /// was changed, so it is never downgraded.
    Newer,
}

/// Loads the library when it is missing or older than [`LIBRARY_VERSION`]. On a Redis
/// Cluster every primary is checked, and redis-rs sends FUNCTION LOAD to all primaries
/// (failing unless all succeed); replicas get it through replication.
pub async fn ensure_library(conn: &mut RedisConn) -> Result<LibraryStatus> {
    let versions = loaded_versions(conn).await?;
    if versions.iter().flatten().any(|v| *v > LIBRARY_VERSION) {
        return Ok(LibraryStatus::Newer);
    }
    if versions.iter().all(|v| *v == Some(LIBRARY_VERSION)) {
        return Ok(LibraryStatus::Current);
    }
    let _: Value = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(library_source())
        .query_async(conn)
        .await
        .map_err(QueueError::during("loading the jobqueue function library"))?;
    Ok(LibraryStatus::Loaded)
}

/// Checks that every primary has this revision of the library or a newer one, as clients do
/// before they use a queue: they never load it themselves (the operator does, when it
/// provisions the queue). Returns the oldest revision found.
pub async fn require_library(conn: &mut RedisConn) -> Result<i64> {
    let versions = loaded_versions(conn).await?;
    let oldest = versions.iter().min().copied().flatten();
    match oldest {
        None => Err(QueueError::LibraryMissing),
        Some(v) if v < LIBRARY_VERSION => Err(QueueError::LibraryTooOld {
            found: v,
            needed: LIBRARY_VERSION,
        }),
        Some(v) => Ok(v),
    }
}

/// The library revision on each primary (`None` where it is not loaded).
async fn loaded_versions(conn: &mut RedisConn) -> Result<Vec<Option<i64>>> {
    let mut cmd = redis::cmd("FCALL_RO");
    cmd.arg("jobqueue_version").arg(0);
    let replies = match conn {
        RedisConn::Single(c) => vec![
            cmd.query_async::<Value>(c)
                .await
                .or_else(server_error_value)?,
        ],
        RedisConn::Cluster(c) => {
            let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
            match c.route_command(cmd, routing).await {
                Ok(Value::Map(per_node)) => per_node.into_iter().map(|(_, v)| v).collect(),
                Ok(other) => vec![other],
                Err(e) => vec![server_error_value(e)?],
            }
        }
    };
    Ok(replies.into_iter().map(version_of).collect())
}

fn server_error_value(e: redis::RedisError) -> Result<Value> {
    // "Function not found" is an answer (not loaded); a broken connection is an error.
    if is_missing_function(&e) {
        return Ok(Value::Nil);
    }
    Err(QueueError::during("checking the jobqueue function library")(e))
}

fn version_of(v: Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(n),
        _ => None,
    }
}

/// Whether `e` says a function is not loaded on the node that answered (a node added to a
/// Cluster after provisioning, or a Redis restarted without persistence).
pub(crate) fn is_missing_function(e: &redis::RedisError) -> bool {
    e.to_string().contains("Function not found")
}

/// Whether `e` says the server has no Functions at all (Redis before 7.0 answers FCALL_RO and
/// FUNCTION with "unknown command"): job records cannot be followed there.
pub fn functions_unsupported(e: &QueueError) -> bool {
    match e {
        QueueError::Redis { error, .. } => {
            let text = error.to_string().to_ascii_lowercase();
            text.contains("unknown command")
                && (text.contains("fcall") || text.contains("function"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_functions_is_told_apart() {
        let reply = |text: &str| QueueError::Redis {
            op: "checking the jobqueue function library",
            error: redis::RedisError::from((
                redis::ErrorKind::Client,
                "An error was signalled by the server",
                text.to_string(),
            )),
        };
        assert!(functions_unsupported(&reply(
            "unknown command 'FCALL_RO', with args beginning with: 'jobqueue_version' '0'"
        )));
        assert!(functions_unsupported(&reply("unknown command `FUNCTION`")));
        assert!(!functions_unsupported(&reply(
            "NOPERM this user has no permissions"
        )));
        assert!(!functions_unsupported(&QueueError::NoSuchStream {
            stream: "s".into()
        }));
    }

    /// The SHA-256 of the source that revision [`LIBRARY_VERSION`] stands for.
    const SOURCE_SHA256: &str = "caf598fb52c5afd5324317cd63591e145322a0b12db356c210d5cf107dd19c59";

    #[test]
    fn a_changed_source_comes_with_a_new_revision() {
        let source = library_source();
        assert!(
            source.contains(&format!("local VERSION = {LIBRARY_VERSION}\n")),
            "lua/jobs.lua and LIBRARY_VERSION disagree"
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, source.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, SOURCE_SHA256,
            "the library source changed: bump LIBRARY_VERSION and VERSION in lua/jobs.lua, \
             then record the new digest here"
        );
    }
}
