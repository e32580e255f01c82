//! [`Queue`]: enqueue jobs and follow them, from any program that can reach the queue's Redis.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize as _;

use crate::conn::{RedisConn, connect};
use crate::error::{QueueError, Result};
use crate::jobs::{CancelOutcome, JobRecord, cancel_job, get_job, require_library, wait_job};
use crate::keys::{QueueKeys, default_stream};
use crate::producer::{EnqueueOptions, enqueue};

/// A job as read back: state, attempt, progress, result, error and times.
pub type Job = JobRecord;

/// The Redis URL used when none is given: `$REDIS_URL`, else the local default.
fn default_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// One queue, named by its stream key, on one Redis (or Redis Cluster).
#[derive(Clone)]
pub struct Queue {
    conn: RedisConn,
    keys: QueueKeys,
    group: String,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("stream", &self.keys.stream)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Connects to `url` (`redis://`, `rediss://`, `redis+cluster://host:port,...`) and checks
    /// that the queue's operations are there (the operator provisioned it).
    pub async fn from_url(url: &str, stream: &str) -> Result<Queue> {
        let mut conn = connect(url).await?;
        require_library(&mut conn).await?;
        Ok(Queue::from_conn(conn, stream))
    }

    /// The queue a JobQueue manifest (YAML) declares: its stream (`spec.stream`, or the
    /// default from namespace and name) and group (`spec.consumerGroup`). Redis is `url`,
    /// else `$REDIS_URL`, else the manifest's `spec.redis.url`, else the local default.
    pub async fn from_manifest(path: impl AsRef<Path>, url: Option<&str>) -> Result<Queue> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| QueueError::InvalidArgument {
            argument: "manifest",
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        let m = Manifest::parse(&text).map_err(|reason| QueueError::InvalidArgument {
            argument: "manifest",
            reason: format!("{}: {reason}", path.display()),
        })?;
        let url = match (url, std::env::var("REDIS_URL").ok(), m.url) {
            (Some(u), _, _) => u.to_string(),
            (None, Some(env), _) => env,
            (None, None, Some(spec)) => spec,
            (None, None, None) => default_url(),
        };
        Ok(Queue::from_url(&url, &m.stream).await?.with_group(m.group))
    }

    /// A queue on an existing connection (no check of the library).
    pub fn from_conn(conn: RedisConn, stream: &str) -> Queue {
        Queue {
            conn,
            keys: QueueKeys::new(stream),
            group: "workers".into(),
        }
    }

    /// Uses consumer group `group` (default `workers`) to read the state of jobs whose
    /// workers only acknowledge.
    pub fn with_group(mut self, group: impl Into<String>) -> Queue {
        self.group = group.into();
        self
    }

    /// The queue's keys.
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// A handle on the connection (cheap to clone; shared).
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Adds a job (now, after a delay, at a time; at most once per idempotency key); returns
    /// its id (with an idempotency key already used: the earlier job's id).
    pub async fn enqueue(
        &self,
        payload: &serde_json::Value,
        options: &EnqueueOptions,
    ) -> Result<String> {
        let mut conn = self.conn.clone();
        Ok(enqueue(&mut conn, &self.keys, payload, options)
            .await?
            .job_id)
    }

    /// The job's record, or `None` (unknown, expired, or its queue does not track jobs).
    pub async fn get_job(&self, id: &str) -> Result<Option<Job>> {
        get_job(&mut self.conn.clone(), &self.keys, &self.group, id).await
    }

    /// Waits until the job ends (succeeded, dead or cancelled) and returns it; an error after
    /// `timeout`, or when there is no such job.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Job> {
        let mut conn = self.conn.clone();
        let job = wait_job(&mut conn, &self.keys, &self.group, id, Some(timeout)).await?;
        match job {
            Some(j) if j.state.is_final() => Ok(j),
            Some(j) => Err(QueueError::Timeout {
                what: format!("job {id} to end (it is {})", j.state),
                after: timeout,
            }),
            None => Err(QueueError::InvalidArgument {
                argument: "job id",
                reason: format!("no job {id} (unknown, expired, or not tracked)"),
            }),
        }
    }

    /// Cancels the job: a waiting one at once, a running one by request (see
    /// [`CancelOutcome`]).
    pub async fn cancel(&self, id: &str) -> Result<CancelOutcome> {
        cancel_job(&mut self.conn.clone(), &self.keys, &self.group, id).await
    }
}

/// What a JobQueue manifest says about where its jobs are.
#[derive(Debug, PartialEq, Eq)]
struct Manifest {
    stream: String,
    group: String,
    url: Option<String>,
}

impl Manifest {
    fn parse(text: &str) -> std::result::Result<Manifest, String> {
        let doc = serde_yaml::Deserializer::from_str(text)
            .map(|d| serde_yaml::Value::deserialize(d).map_err(|e| e.to_string()))
            .find(|d| {
                d.as_ref()
                    .map(|v| v["kind"].as_str() == Some("JobQueue"))
                    .unwrap_or(true)
            })
            .ok_or("no JobQueue in the file")??;
        let s = |v: &serde_yaml::Value| v.as_str().map(str::to_string);
        let name = s(&doc["metadata"]["name"]).ok_or("metadata.name is missing")?;
        let namespace = s(&doc["metadata"]["namespace"]).unwrap_or_else(|| "default".into());
        let spec = &doc["spec"];
        Ok(Manifest {
            stream: s(&spec["stream"]).unwrap_or_else(|| default_stream(&namespace, &name)),
            group: s(&spec["consumerGroup"]).unwrap_or_else(|| "workers".into()),
            url: s(&spec["redis"]["url"]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_stream_group_and_url() {
        let m = Manifest::parse(
            "apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata: {name: mail, namespace: shop}\nspec: {consumerGroup: senders, redis: {url: 'redis://r:6379'}}\n",
        )
        .unwrap();
        assert_eq!(
            m,
            Manifest {
                stream: "jobqueue:{shop/mail}".into(),
                group: "senders".into(),
                url: Some("redis://r:6379".into())
            }
        );
        let two = "kind: Secret\nmetadata: {name: s}\n---\nkind: JobQueue\nmetadata: {name: q}\nspec: {stream: jobs}\n";
        let m = Manifest::parse(two).unwrap();
        assert_eq!(
            (m.stream.as_str(), m.group.as_str(), m.url),
            ("jobs", "workers", None)
        );
        assert!(
            Manifest::parse("kind: JobQueue\nspec: {}\n")
                .unwrap_err()
                .contains("metadata.name")
        );
        assert!(
            Manifest::parse("kind: Secret\n")
                .unwrap_err()
                .contains("no JobQueue")
        );
    }
}
