//! Redis key naming for one queue (docs/architecture.md#keys).
//!
//! Every key of a queue must hash to the same Redis Cluster slot so that the janitor and the
//! scheduler can touch several of them in one atomic Lua script. Redis hashes only the part of
//! a key between the first `{` and the next `}` when that part is non-empty (the "hash tag").
//! If the stream key already carries a hash tag (the default `jobqueue:{ns/name}` does, and an
//! adopted key may), auxiliary keys are `<stream>:<suffix>` and inherit the tag; otherwise the
//! whole stream key becomes the tag: `{<stream>}:<suffix>`.

/// The hash tag of a key as Redis Cluster computes it, if the key has one.
pub fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    let close = rest.find('}')?;
    (close > 0).then(|| &rest[..close])
}

/// The Redis Cluster slot of `key` (CRC16/XMODEM of its hash tag, or of the whole key, mod
/// 16384), as Redis computes it.
pub fn slot(key: &str) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in hashed.as_bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// The default stream key of the JobQueue `name` in `namespace`.
pub fn default_stream(namespace: &str, name: &str) -> String {
    format!("jobqueue:{{{namespace}/{name}}}")
}

/// All keys of one queue, derived from its stream key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    /// The stream holding the jobs.
    pub stream: String,
    prefix: String,
}

impl QueueKeys {
    /// Keys for the queue whose stream is `stream`.
    pub fn new(stream: impl Into<String>) -> Self {
        let stream = stream.into();
        let prefix = if hash_tag(&stream).is_some() {
            stream.clone()
        } else {
            format!("{{{stream}}}")
        };
        QueueKeys { stream, prefix }
    }

    /// Sorted set of delayed jobs (score = due unix ms).
    pub fn delayed(&self) -> String {
        self.aux("delayed")
    }

    /// Default dead-letter stream.
    pub fn dead(&self) -> String {
        self.aux("dead")
    }

    /// Sorted set of schedule name → next fire unix ms.
    pub fn schedules(&self) -> String {
        self.aux("schedules")
    }

    /// Hash describing one schedule (payload, cron, tz, generation, last job id).
    pub fn schedule(&self, name: &str) -> String {
        self.aux(&format!("schedule:{name}"))
    }

    /// Idempotency record of a producer-supplied key.
    pub fn idempotency(&self, key: &str) -> String {
        self.aux(&format!("idem:{key}"))
    }

    /// Hash of the queue's rules that the job scripts and worker functions read (delivery,
    /// backoff, record retention, result cap, tracking): `<prefix>:settings`.
    pub fn settings(&self) -> String {
        self.aux("settings")
    }

    /// The record of job `id` (a hash: state, attempt, times, progress, result, error):
    /// `<prefix>:job:<id>`.
    pub fn job(&self, id: &str) -> String {
        self.aux(&format!("job:{id}"))
    }

    /// Capped stream of job state changes (`job`, `state`, `attempt`, `at`): `<prefix>:events`.
    pub fn events(&self) -> String {
        self.aux("events")
    }

    /// Which JobQueue the stream belongs to (a hash: `queue` = `namespace/name`, `uid`):
    /// `<prefix>:owner`. The operator acts on the stream for that JobQueue only.
    pub fn owner(&self) -> String {
        self.aux("owner")
    }

    /// The newest operator leadership term that served the queue (a string): `<prefix>:epoch`.
    /// The operator's janitor and scheduler scripts refuse to act for an older term.
    pub fn epoch(&self) -> String {
        self.aux("epoch")
    }

    /// An auxiliary key `<prefix>:<suffix>` in the queue's slot.
    pub fn aux(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// Whether `key` hashes to the same Cluster slot as this queue's stream.
    pub fn same_slot(&self, key: &str) -> bool {
        slot(key) == slot(&self.stream)
    }

    /// Whether the auxiliary keys really share the stream's slot. They do unless the stream
    /// has no hash tag but contains `}` (e.g. `a}b` or `x{}y}`): wrapping it in `{...}` then
    /// yields a different tag. Such a key needs an explicit hash tag to be used on a Cluster.
    pub fn is_slot_consistent(&self) -> bool {
        hash_tag(&self.stream).is_some() || !self.stream.contains('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tag_follows_redis_rules() {
        assert_eq!(hash_tag("a{b}c"), Some("b"));
        assert_eq!(hash_tag("{user1000}.following"), Some("user1000"));
        assert_eq!(hash_tag("foo{}{bar}"), None, "empty first tag means no tag");
        assert_eq!(hash_tag("foo{{bar}}zap"), Some("{bar"));
        assert_eq!(hash_tag("foo{bar}{zap}"), Some("bar"));
        assert_eq!(hash_tag("plain"), None);
        assert_eq!(hash_tag("open{only"), None);
    }

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot("123456789"), 0x31C3, "the CRC16/XMODEM check value");
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot(""), 0);
    }

    proptest::proptest! {
        #[test]
        fn aux_keys_hash_to_the_stream_slot(stream in "[a-z{}:/-]{1,24}", suffix in "[a-z:]{1,8}") {
            let k = QueueKeys::new(stream.clone());
            let keys = [k.delayed(), k.dead(), k.aux(&suffix), k.idempotency(&suffix)];
            if k.is_slot_consistent() {
                for key in &keys {
                    proptest::prop_assert!(k.same_slot(key), "{} vs {}", key, stream);
                }
            }
        }
    }

    #[test]
    fn default_stream_carries_a_tag() {
        let s = default_stream("team-a", "emails");
        assert_eq!(s, "jobqueue:{team-a/emails}");
        let k = QueueKeys::new(s);
        assert_eq!(k.delayed(), "jobqueue:{team-a/emails}:delayed");
        assert_eq!(k.dead(), "jobqueue:{team-a/emails}:dead");
        assert_eq!(k.schedules(), "jobqueue:{team-a/emails}:schedules");
        assert_eq!(
            k.schedule("nightly"),
            "jobqueue:{team-a/emails}:schedule:nightly"
        );
        assert_eq!(k.settings(), "jobqueue:{team-a/emails}:settings");
        assert_eq!(k.job("j1"), "jobqueue:{team-a/emails}:job:j1");
        assert_eq!(k.events(), "jobqueue:{team-a/emails}:events");
    }

    #[test]
    fn streams_with_a_stray_brace_are_flagged() {
        for stream in ["a}b", "foo{}{bar}", "}"] {
            let k = QueueKeys::new(stream);
            assert!(!k.is_slot_consistent(), "{stream}");
            assert!(!k.same_slot(&k.delayed()), "{stream}: test premise");
        }
    }

    #[test]
    fn untagged_adopted_stream_is_wrapped() {
        let k = QueueKeys::new("legacy-jobs");
        assert_eq!(k.delayed(), "{legacy-jobs}:delayed");
        assert!(k.same_slot("{legacy-jobs}:whatever"));
        assert!(
            k.same_slot("legacy-jobs"),
            "the whole key hashes like its wrapped tag"
        );
        assert!(!k.same_slot("other-jobs"));
    }

    #[test]
    fn every_aux_key_shares_the_stream_slot() {
        for stream in ["jobqueue:{ns/q}", "plain", "x{tag}y", "open{only", "a:b:c"] {
            let k = QueueKeys::new(stream);
            assert!(k.is_slot_consistent());
            for key in [
                k.delayed(),
                k.dead(),
                k.schedules(),
                k.schedule("s"),
                k.idempotency("i"),
                k.settings(),
                k.job("j"),
                k.events(),
            ] {
                assert!(k.same_slot(&key), "{key} not in the slot of {stream}");
            }
            if hash_tag(stream).is_some() {
                assert!(k.same_slot(stream));
            }
        }
    }
}
