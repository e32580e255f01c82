//! Adopted queues (docs/architecture.md#adopted-queues): a queue another system already runs
//! on Redis (RQ, Celery, Sidekiq, BullMQ), read — never written — from the keys that system
//! keeps, so that its existing workers scale like a native queue's.
//!
//! Each system has one read-only Lua script per queue, pipelined with every other queue of the
//! endpoint by [`super::metrics::snapshot`]; what Celery and Sidekiq keep for all queues
//! together (kombu's `unacked` hash; Sidekiq's processes, schedule and retry sets) is read
//! once per endpoint and tick for all their queues ([`shared`]). A reading reports what is
//! queued (waiting, plus delayed jobs already due: they wait for a worker to promote them),
//! what is in flight, and, where the system records it, which worker host is busy; the
//! reading becomes a [`QueueMetrics`] with `lag` = queued and `pending` = in flight, so the
//! scaling policy, busy-first scale-in, status and metrics are the native ones.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, ScriptInvocation, Value};

use super::jobs::JobCounts;
use super::metrics::{ConsumerInfo, LagSource, QueueMetrics};

pub mod shared;

/// How many entries of Sidekiq's shared `schedule` and `retry` sets one reading looks at, due
/// and not due each (they hold every queue's jobs; decoding all of them would make one queue's
/// reading as costly as the whole set), and how many BullMQ active jobs it attributes to
/// their workers.
pub const SCAN_BOUND: u64 = 1000;

/// BullMQ's default key prefix.
pub const BULLMQ_DEFAULT_PREFIX: &str = "bull";

/// The systems whose queues can be adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    Rq,
    Celery,
    Sidekiq,
    BullMq,
}

impl System {
    /// Whether the system records which worker runs a job, so that a scale-in can spare the
    /// busy ones (BullMQ: when the Worker is given a `name`).
    pub fn knows_busy_workers(self) -> bool {
        !matches!(self, System::Celery)
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            System::Rq => "RQ",
            System::Celery => "Celery",
            System::Sidekiq => "Sidekiq",
            System::BullMq => "BullMQ",
        })
    }
}

/// One adopted queue: which system and which of its queues.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Adopted {
    pub system: System,
    /// The system's own name of the queue.
    pub queue: String,
    /// BullMQ's key prefix (`bull` unless the application set another).
    pub prefix: String,
}

static RQ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/rq.lua")));
static CELERY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/celery.lua")));
static SIDEKIQ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/sidekiq.lua")));
static BULLMQ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/bullmq.lua")));

impl Adopted {
    /// An adopted queue with the system's default prefix.
    pub fn new(system: System, queue: impl Into<String>) -> Self {
        Adopted {
            system,
            queue: queue.into(),
            prefix: BULLMQ_DEFAULT_PREFIX.to_string(),
        }
    }

    /// The keys the reading declares, the first naming the queue itself (its Cluster slot
    /// routes the reading). Worker hashes found through a set are read without being declared,
    /// as those systems do themselves: none of RQ, Celery or Sidekiq runs on a Redis Cluster.
    pub fn keys(&self) -> Vec<String> {
        let q = &self.queue;
        match self.system {
            System::Rq => ["queue", "wip", "scheduled", "failed", "workers"]
                .iter()
                .map(|k| format!("rq:{k}:{q}"))
                .collect(),
            System::Celery => vec![
                q.clone(),
                format!("{q}\x06\x163"),
                format!("{q}\x06\x166"),
                format!("{q}\x06\x169"),
            ],
            System::Sidekiq => vec![format!("queue:{q}")],
            System::BullMq => [
                "wait",
                "prioritized",
                "active",
                "delayed",
                "failed",
                "meta",
                "paused",
            ]
            .iter()
            .map(|k| format!("{}:{q}:{k}", self.prefix))
            .collect(),
        }
    }

    /// The key whose Cluster slot the reading is routed by.
    pub fn slot_key(&self) -> String {
        self.keys().swap_remove(0)
    }

    fn script(&self) -> &'static Script {
        match self.system {
            System::Rq => &RQ,
            System::Celery => &CELERY,
            System::Sidekiq => &SIDEKIQ,
            System::BullMq => &BULLMQ,
        }
    }

    /// The reading, ready for a pipeline.
    pub fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = self.script().prepare_invoke();
        for key in self.keys() {
            inv.key(key);
        }
        if self.system == System::BullMq {
            inv.arg(format!("{}:{}:", self.prefix, self.queue))
                .arg(SCAN_BOUND);
        }
        inv
    }

    /// Every per-queue reading script, for loading after a NOSCRIPT.
    pub fn all_scripts() -> [&'static Script; 4] {
        [&RQ, &CELERY, &SIDEKIQ, &BULLMQ]
    }

    /// A short description for messages: `RQ queue "default"`.
    pub fn describe(&self) -> String {
        format!("{} queue {:?}", self.system, self.queue)
    }
}

/// One reading's reply as the queue's numbers: `lag` = queued, `pending` = in flight, one
/// consumer per worker name with the number of jobs it runs.
pub fn parse(v: Value) -> redis::RedisResult<QueueMetrics> {
    let bad = |what: String| -> redis::RedisError {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "adopted queue reading",
            what,
        ))
    };
    let Value::Array(items) = v else {
        return Err(bad("not an array".into()));
    };
    let int = |i: usize| -> redis::RedisResult<u64> {
        match items.get(i) {
            Some(Value::Int(n)) => Ok((*n).max(0) as u64),
            _ => Err(bad(format!("field {i} is not an integer"))),
        }
    };
    let queued = int(1)?;
    let in_flight = int(2)?;
    Ok(QueueMetrics {
        server_time_ms: int(0)?,
        length: queued,
        lag: queued,
        lag_source: LagSource::Reported,
        pending: in_flight,
        oldest_pending_age: None,
        consumers: workers(items.get(5)),
        delayed: int(3)?,
        dead_letter_length: int(4)?,
        last_delivered_id: String::new(),
        jobs: JobCounts::default(),
    })
}

/// The `{name, busy}` pairs, summed by name (several workers may share one host).
fn workers(v: Option<&Value>) -> Vec<ConsumerInfo> {
    let mut busy: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(Value::Array(pairs)) = v {
        for pair in pairs {
            let Value::Array(f) = pair else { continue };
            let name = match f.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let n = match f.get(1) {
                Some(Value::Int(n)) => (*n).max(0) as u64,
                _ => 0,
            };
            *busy.entry(name).or_default() += n;
        }
    }
    busy.into_iter()
        .map(|(name, pending)| ConsumerInfo {
            name,
            pending,
            idle: Duration::ZERO,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn keys_follow_each_systems_own_names() {
        assert_eq!(
            Adopted::new(System::Rq, "default").keys(),
            [
                "rq:queue:default",
                "rq:wip:default",
                "rq:scheduled:default",
                "rq:failed:default",
                "rq:workers:default"
            ]
        );
        assert_eq!(
            Adopted::new(System::Celery, "celery").keys(),
            [
                "celery",
                "celery\x06\x163",
                "celery\x06\x166",
                "celery\x06\x169"
            ]
        );
        assert_eq!(Adopted::new(System::Sidekiq, "mail").keys(), ["queue:mail"]);
        let mut b = Adopted::new(System::BullMq, "emails");
        assert_eq!(b.slot_key(), "bull:emails:wait");
        b.prefix = "{acme}".into();
        assert_eq!(
            b.keys(),
            [
                "{acme}:emails:wait",
                "{acme}:emails:prioritized",
                "{acme}:emails:active",
                "{acme}:emails:delayed",
                "{acme}:emails:failed",
                "{acme}:emails:meta",
                "{acme}:emails:paused"
            ]
        );
    }

    #[test]
    fn a_reading_becomes_queued_as_lag_and_in_flight_as_pending() {
        let reply = Value::Array(vec![
            Value::Int(1_700_000_000_000),
            Value::Int(7),
            Value::Int(2),
            Value::Int(3),
            Value::Int(1),
            Value::Array(vec![
                Value::Array(vec![bulk("pod-a"), Value::Int(1)]),
                Value::Array(vec![bulk("pod-b"), Value::Int(0)]),
                Value::Array(vec![bulk("pod-a"), Value::Int(1)]),
            ]),
        ]);
        let m = parse(reply).unwrap();
        assert_eq!((m.lag, m.pending, m.backlog()), (7, 2, 9));
        assert_eq!((m.delayed, m.dead_letter_length), (3, 1));
        assert_eq!(m.lag_source, LagSource::Reported);
        assert_eq!(
            m.consumers
                .iter()
                .map(|c| (c.name.as_str(), c.pending))
                .collect::<Vec<_>>(),
            [("pod-a", 2), ("pod-b", 0)]
        );
    }

    #[test]
    fn a_malformed_reply_is_an_error_not_a_panic() {
        assert!(parse(Value::Nil).is_err());
        assert!(parse(Value::Array(vec![Value::Int(1)])).is_err());
        assert!(parse(Value::Array(vec![bulk("x"); 6])).is_err());
    }
}
