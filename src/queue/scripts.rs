//! The engine's Lua scripts. Each script body in `lua/` is prefixed with the common helpers
//! the client crate carries (`clients/rust/lua/common.lua`, shared with the enqueue script and
//! the worker-operations library); every key a script touches belongs to one queue, so to one
//! Cluster slot.

use std::sync::LazyLock;

use redis::Script;

pub(crate) use jobqueue_client::lua::COMMON;

/// The engine's leadership fencing helper (`fence.lua`), prefixed to every engine script.
const FENCE: &str = include_str!("lua/fence.lua");

/// A script whose body is prefixed with the common helpers and the fencing helper.
pub(crate) fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{FENCE}\n{body}"))
}

macro_rules! scripts {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| script(include_str!(concat!("lua/", $file))));)*
    };
}

scripts! {
    PROVISION => "provision.lua",
    RELEASE => "release.lua",
    PROMOTE => "promote.lua",
    RECLAIM => "reclaim.lua",
    REAP => "reap.lua",
    TRIM => "trim.lua",
    METRICS => "metrics.lua",
    DEAD_REPLAY => "dead_replay.lua",
    DEAD_PURGE => "dead_purge.lua",
}

pub(crate) use jobqueue_client::error::map_error;
