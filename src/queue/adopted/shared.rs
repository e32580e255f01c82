//! What Celery and Sidekiq keep for all their queues together, read once per endpoint and tick
//! for every adopted queue of theirs: kombu's `unacked` hash (in flight), Sidekiq's process set
//! with each process's work (in flight, and who is busy) and its `schedule` and `retry` sets
//! (due and delayed). Reading them per queue would cost queues × entries per tick.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Script, ScriptInvocation, Value};

use super::super::config::QueueConfig;
use super::super::metrics::{ConsumerInfo, QueueMetrics};
use super::{SCAN_BOUND, System, workers};

static CELERY_SHARED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/celery_shared.lua")));
static SIDEKIQ_SHARED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/sidekiq_shared.lua")));

/// One queue's part of a shared reading.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SharedReading {
    /// Jobs running.
    pub in_flight: u64,
    /// Scheduled jobs and retries already due (waiting for a process to move them).
    pub due: u64,
    /// Scheduled jobs and retries not due yet.
    pub delayed: u64,
    /// Busy workers (host) and how many of the queue's jobs each runs.
    pub workers: Vec<ConsumerInfo>,
}

impl SharedReading {
    /// Adds this part to a queue's own reading.
    pub fn apply(&self, m: &mut QueueMetrics) {
        m.lag = m.lag.saturating_add(self.due);
        m.length = m.lag;
        m.pending = self.in_flight;
        m.delayed = self.delayed;
        m.consumers = self.workers.clone();
    }
}

/// A shared reading to run: the system, the distinct queue names it covers, and for each queue
/// (index into the snapshot's queues) the position of its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPlan {
    pub system: System,
    pub names: Vec<String>,
    pub queues: Vec<(usize, usize)>,
}

/// The shared readings `queues` need: none without adopted Celery or Sidekiq queues.
pub fn plan(queues: &[QueueConfig]) -> Vec<SharedPlan> {
    let mut plans: BTreeMap<System, SharedPlan> = BTreeMap::new();
    for (i, q) in queues.iter().enumerate() {
        let Some(a) = &q.source else { continue };
        if !matches!(a.system, System::Celery | System::Sidekiq) {
            continue;
        }
        let p = plans.entry(a.system).or_insert_with(|| SharedPlan {
            system: a.system,
            names: Vec::new(),
            queues: Vec::new(),
        });
        let at = match p.names.iter().position(|n| *n == a.queue) {
            Some(at) => at,
            None => {
                p.names.push(a.queue.clone());
                p.names.len() - 1
            }
        };
        p.queues.push((i, at));
    }
    plans.into_values().collect()
}

impl SharedPlan {
    fn invocation(&self) -> ScriptInvocation<'static> {
        match self.system {
            System::Celery => {
                let mut inv = CELERY_SHARED.key("unacked");
                for n in &self.names {
                    inv.arg(n);
                }
                inv
            }
            _ => {
                let mut inv = SIDEKIQ_SHARED.key("processes");
                inv.key("schedule").key("retry").arg(SCAN_BOUND);
                for n in &self.names {
                    inv.arg(n);
                }
                inv
            }
        }
    }

    /// Runs the reading: one part per name, in order.
    pub async fn read<C: ConnectionLike>(
        &self,
        conn: &mut C,
    ) -> redis::RedisResult<Vec<SharedReading>> {
        let reply: Value = self.invocation().invoke_async(conn).await?;
        parse(self.system, reply, self.names.len())
    }
}

/// A shared reading's reply: Celery's counts, or Sidekiq's `{in flight, due, delayed,
/// {host, busy}...}` per name.
pub fn parse(system: System, v: Value, names: usize) -> redis::RedisResult<Vec<SharedReading>> {
    let bad = |what: &str| {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "shared adopted reading",
            what.to_string(),
        ))
    };
    let Value::Array(items) = v else {
        return Err(bad("not an array"));
    };
    if items.len() != names {
        return Err(bad("one part per queue expected"));
    }
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => Ok((*n).max(0) as u64),
        _ => Err(bad("not an integer")),
    };
    items
        .iter()
        .map(|item| match (system, item) {
            (System::Celery, v) => Ok(SharedReading {
                in_flight: int(Some(v))?,
                ..SharedReading::default()
            }),
            (_, Value::Array(f)) => Ok(SharedReading {
                in_flight: int(f.first())?,
                due: int(f.get(1))?,
                delayed: int(f.get(2))?,
                workers: workers(f.get(3)),
            }),
            _ => Err(bad("not an array")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Adopted;
    use super::*;

    #[test]
    fn one_reading_per_system_covering_each_name_once() {
        let q = |s, n: &str| QueueConfig::adopted(Adopted::new(s, n));
        let queues = [
            q(System::Celery, "mail"),
            QueueConfig::new("jobqueue:{a/b}"),
            q(System::Sidekiq, "default"),
            q(System::Celery, "mail"),
            q(System::Rq, "default"),
            q(System::Celery, "reports"),
        ];
        let plans = plan(&queues);
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].system, System::Celery);
        assert_eq!(plans[0].names, ["mail", "reports"]);
        assert_eq!(plans[0].queues, [(0, 0), (3, 0), (5, 1)]);
        assert_eq!(plans[1].names, ["default"]);
        assert_eq!(plans[1].queues, [(2, 0)]);
        assert!(plan(&[QueueConfig::new("s"), q(System::BullMq, "x")]).is_empty());
    }

    #[test]
    fn replies_become_parts_and_malformed_ones_errors() {
        let celery = parse(
            System::Celery,
            Value::Array(vec![Value::Int(2), Value::Int(0)]),
            2,
        )
        .unwrap();
        assert_eq!(celery[0].in_flight, 2);
        let host = |h: &str, n| {
            Value::Array(vec![
                Value::BulkString(h.as_bytes().to_vec()),
                Value::Int(n),
            ])
        };
        let sidekiq = parse(
            System::Sidekiq,
            Value::Array(vec![Value::Array(vec![
                Value::Int(3),
                Value::Int(1),
                Value::Int(4),
                Value::Array(vec![host("pod-a", 2), host("pod-b", 1)]),
            ])]),
            1,
        )
        .unwrap();
        assert_eq!(
            (sidekiq[0].in_flight, sidekiq[0].due, sidekiq[0].delayed),
            (3, 1, 4)
        );
        assert_eq!(sidekiq[0].workers.len(), 2);
        let mut m = crate::queue::adopted::parse(Value::Array(vec![
            Value::Int(1),
            Value::Int(5),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Array(vec![]),
        ]))
        .unwrap();
        sidekiq[0].apply(&mut m);
        assert_eq!((m.lag, m.pending, m.delayed, m.backlog()), (6, 3, 4, 9));
        assert!(parse(System::Celery, Value::Array(vec![Value::Int(1)]), 2).is_err());
        assert!(parse(System::Sidekiq, Value::Array(vec![Value::Int(1)]), 1).is_err());
    }
}
