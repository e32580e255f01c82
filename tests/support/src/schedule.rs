//! Helpers shared by the `schedule_*` integration tests: scheduled jobs read back from a stream,
//! every field required.

use std::collections::HashMap;

use jobqueue_operator::queue::RedisConn;
use redis::streams::StreamRangeReply;

/// One job as a worker sees it (docs/architecture.md#wire-format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub entry_id: String,
    pub id: String,
    pub payload: String,
    pub enqueued_at: i64,
    pub attempt: i64,
    pub schedule: String,
    pub scheduled_for: i64,
}

/// Every job in `stream`, oldest first.
pub async fn jobs(conn: &mut RedisConn, stream: &str) -> Vec<Job> {
    let mut out = Vec::new();
    let mut start = "-".to_string();
    loop {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(5000)
            .query_async(conn)
            .await
            .expect("XRANGE");
        let n = reply.ids.len();
        for entry in reply.ids {
            let field = |name: &str| -> String {
                let v = entry
                    .map
                    .get(name)
                    .unwrap_or_else(|| panic!("job {} has no {name}", entry.id));
                redis::from_redis_value_ref(v).expect("string field")
            };
            let int = |name: &str| {
                field(name)
                    .parse::<i64>()
                    .unwrap_or_else(|_| panic!("{name} is not an integer"))
            };
            out.push(Job {
                id: field("id"),
                payload: field("payload"),
                enqueued_at: int("enqueued_at"),
                attempt: int("attempt"),
                schedule: field("schedule"),
                scheduled_for: int("scheduled_for"),
                entry_id: entry.id.clone(),
            });
            start = format!("({}", entry.id);
        }
        if n < 5000 {
            return out;
        }
    }
}

/// Jobs grouped by schedule name, each list sorted by scheduled time.
pub fn by_schedule(jobs: &[Job]) -> HashMap<String, Vec<Job>> {
    let mut map: HashMap<String, Vec<Job>> = HashMap::new();
    for j in jobs {
        map.entry(j.schedule.clone()).or_default().push(j.clone());
    }
    for list in map.values_mut() {
        list.sort_by_key(|j| j.scheduled_for);
    }
    map
}
