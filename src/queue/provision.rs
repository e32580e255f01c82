//! Provisioning (docs/architecture.md#provisioning): the stream and its consumer group exist, created if missing,
//! and an existing stream is adopted without touching its data. Drift (stream or group removed
//! out of band) is repaired here and reported as a value the operator turns into an Event.

use super::config::QueueConfig;
use super::conn::RedisConn;
use super::error::Result;
use super::keys::QueueKeys;
use super::scripts::{PROVISION, RELEASE, map_error};

/// What provisioning found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioned {
    /// The stream existed before (an adopted or already provisioned queue).
    pub stream_existed: bool,
    /// The consumer group existed before.
    pub group_existed: bool,
    /// Entries in the stream afterwards.
    pub length: u64,
}

/// A queue that was provisioned before but was found broken, and has been repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The stream (and with it the group) was deleted; both were recreated empty.
    StreamRecreated {
        /// The stream key.
        stream: String,
        /// The group.
        group: String,
    },
    /// The group was deleted; it was recreated at the start of the stream so that no job
    /// still in the stream is skipped (entries may be delivered again: at-least-once).
    GroupRecreated {
        /// The stream key.
        stream: String,
        /// The group.
        group: String,
        /// Entries in the stream, all of which will be delivered again.
        length: u64,
    },
}

/// Event reason: the stream was missing and was created again (listed in `operator::reasons`).
pub const STREAM_RECREATED: &str = "StreamRecreated";
/// Event reason: the consumer group was missing and was created again.
pub const CONSUMER_GROUP_RECREATED: &str = "ConsumerGroupRecreated";

impl Drift {
    /// A short reason for a Kubernetes Event (`CamelCase`).
    pub fn reason(&self) -> &'static str {
        match self {
            Drift::StreamRecreated { .. } => STREAM_RECREATED,
            Drift::GroupRecreated { .. } => CONSUMER_GROUP_RECREATED,
        }
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::StreamRecreated { stream, group } => write!(
                f,
                "stream {stream:?} was deleted outside the operator; recreated it empty with group {group:?}"
            ),
            Drift::GroupRecreated {
                stream,
                group,
                length,
            } => write!(
                f,
                "consumer group {group:?} on stream {stream:?} was deleted outside the operator; \
                 recreated it from the start of the stream ({length} entries will be delivered again)"
            ),
        }
    }
}

impl Provisioned {
    /// The drift this outcome reveals for a queue that `was_provisioned` before (the caller
    /// knows, e.g. from the resource's status); `None` for a first provisioning or no change.
    pub fn drift(&self, cfg: &QueueConfig, was_provisioned: bool) -> Option<Drift> {
        if !was_provisioned {
            return None;
        }
        let (stream, group) = (cfg.stream().to_string(), cfg.group.clone());
        if !self.stream_existed {
            Some(Drift::StreamRecreated { stream, group })
        } else if !self.group_existed {
            Some(Drift::GroupRecreated {
                stream,
                group,
                length: self.length,
            })
        } else {
            None
        }
    }
}

/// Makes sure the stream and the group exist (idempotent; one atomic script).
///
/// A group created for a new queue, or on an adopted stream, starts at `cfg.start_from`. A
/// group recreated after drift (`was_provisioned` and the group is gone) starts at `0`, so jobs
/// still in the stream are not skipped. Existing streams and groups are never modified.
pub async fn provision(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    was_provisioned: bool,
) -> Result<Provisioned> {
    cfg.validate()?;
    let on_existing_stream = if was_provisioned {
        "0"
    } else {
        cfg.start_from.group_start_id()
    };
    let (owner, uid) = cfg
        .claim
        .as_ref()
        .map_or(("", ""), |c| (c.owner.as_str(), c.uid.as_str()));
    let (stream_existed, group_existed, length): (u8, u8, u64) = PROVISION
        .key(cfg.stream())
        .key(cfg.keys.owner())
        .key(cfg.keys.epoch())
        .key(dead_letter_owner(cfg))
        .arg(&cfg.group)
        .arg(cfg.start_from.group_start_id())
        .arg(on_existing_stream)
        .arg(owner)
        .arg(uid)
        .arg(cfg.term)
        .invoke_async(conn)
        .await
        .map_err(|e| map_error("provisioning", cfg.stream(), &cfg.group, e))?;
    Ok(Provisioned {
        stream_existed: stream_existed == 1,
        group_existed: group_existed == 1,
        length,
    })
}

/// Releases the queue's claim on its stream, if it holds it (the JobQueue is deleted, or now
/// names another stream or Redis). Whether a claim was released.
pub async fn release_claim(conn: &mut RedisConn, cfg: &QueueConfig) -> Result<bool> {
    let Some(claim) = &cfg.claim else {
        return Ok(false);
    };
    let released: u8 = RELEASE
        .key(cfg.keys.owner())
        .key(dead_letter_owner(cfg))
        .arg(&claim.owner)
        .invoke_async(conn)
        .await
        .map_err(super::error::QueueError::during(
            "releasing the stream's claim",
        ))?;
    Ok(released > 0)
}

/// The owner hash of the queue's dead-letter stream, as if it were a queue's stream: naming
/// another queue's stream or dead letters as one's own dead letters is then a claimed key.
fn dead_letter_owner(cfg: &QueueConfig) -> String {
    QueueKeys::new(cfg.dead_letter.clone()).owner()
}

/// The owner of the stream or dead-letter stream `cfg` names, when another JobQueue than
/// `cfg`'s claimed it.
pub async fn foreign_owner(conn: &mut RedisConn, cfg: &QueueConfig) -> Result<Option<String>> {
    let mine = cfg.claim.as_ref().map(|c| c.owner.as_str());
    let owners: Vec<Option<String>> = redis::pipe()
        .hget(cfg.keys.owner(), "queue")
        .hget(dead_letter_owner(cfg), "queue")
        .query_async(conn)
        .await
        .map_err(super::error::QueueError::during(
            "reading the stream's owner",
        ))?;
    Ok(owners
        .into_iter()
        .flatten()
        .find(|o| Some(o.as_str()) != mine))
}

/// Deletes every key of the queue that does not expire by itself (stream with its groups,
/// delayed set, dead-letter stream, stored settings, events stream, job counters, the claim):
/// `deletionPolicy: Delete`. Job records and idempotency keys are left to their TTLs: finding
/// them would mean scanning the keyspace. Returns how many keys existed. A stream another
/// JobQueue owns is never this queue's to delete: it is left whole (0 keys).
pub async fn delete_queue(conn: &mut RedisConn, cfg: &QueueConfig) -> Result<u64> {
    if foreign_owner(conn, cfg).await?.is_some() {
        return Ok(0);
    }
    let mut deleted = 0;
    // One DEL per key: on a Cluster a multi-key DEL must stay in one slot, and an adopted
    // dead-letter key may be validated into the slot but we stay safe either way.
    for key in [
        cfg.stream().to_string(),
        cfg.keys.delayed(),
        cfg.dead_letter.clone(),
        cfg.keys.settings(),
        cfg.keys.events(),
        super::jobs::stats_key(&cfg.keys),
        cfg.keys.owner(),
        dead_letter_owner(cfg),
        cfg.keys.epoch(),
    ] {
        let n: u64 = redis::cmd("DEL")
            .arg(&key)
            .query_async(conn)
            .await
            .map_err(super::error::QueueError::during("deleting the queue"))?;
        deleted += n;
    }
    Ok(deleted)
}
