//! The engine's Lua scripts. Each script body in `lua/` is prefixed with `lua/common.lua`
//! (helpers); every key a script touches belongs to one queue, so to one Cluster slot.

use std::sync::LazyLock;

use redis::Script;

use super::error::QueueError;

pub(crate) const COMMON: &str = include_str!("lua/common.lua");

/// A script whose body is prefixed with the common helpers.
pub(crate) fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

macro_rules! scripts {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| script(include_str!(concat!("lua/", $file))));)*
    };
}

scripts! {
    PROVISION => "provision.lua",
    ENQUEUE => "enqueue.lua",
    PROMOTE => "promote.lua",
    RECLAIM => "reclaim.lua",
    REAP => "reap.lua",
    TRIM => "trim.lua",
    METRICS => "metrics.lua",
    DEAD_REPLAY => "dead_replay.lua",
    DEAD_PURGE => "dead_purge.lua",
}

/// Turns the error codes the scripts (and Redis inside them) raise into typed errors.
pub(crate) fn map_error(
    op: &'static str,
    stream: &str,
    group: &str,
    e: redis::RedisError,
) -> QueueError {
    match e.code() {
        Some("NOSTREAM") => QueueError::NoSuchStream {
            stream: stream.to_string(),
        },
        Some("NOGROUP") => QueueError::NoSuchGroup {
            stream: stream.to_string(),
            group: group.to_string(),
        },
        Some("WRONGTYPE") => {
            let detail = e.detail().unwrap_or_default();
            // "key <k> holds a <type>, not a stream" from our scripts; Redis's own is generic.
            let (key, actual) = detail
                .strip_prefix("key ")
                .and_then(|rest| rest.split_once(" holds a "))
                .map(|(k, t)| (k.to_string(), t.split(',').next().unwrap_or(t).to_string()))
                .unwrap_or_else(|| (stream.to_string(), "different type".to_string()));
            QueueError::WrongType {
                key,
                expected: "stream",
                actual,
            }
        }
        _ => QueueError::redis(op, e),
    }
}
