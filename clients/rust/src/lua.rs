//! The Lua this crate speaks: the helpers every script of a queue shares, the enqueue script,
//! and the `jobqueue` Redis Functions library (`lua/jobs.lua`, documented at its top).

use std::sync::LazyLock;

use redis::Script;

/// Helpers prepended to every queue script and to the function library (`lua/common.lua`).
pub const COMMON: &str = include_str!("../lua/common.lua");

/// The enqueue script (`lua/enqueue.lua`): the same body as the library's `jobqueue_enqueue`,
/// run with EVALSHA so that it also works where Redis Functions are unavailable.
pub(crate) static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{COMMON}\n{}", include_str!("../lua/enqueue.lua"))));

/// The function library's own part (`lua/jobs.lua`); [`crate::jobs::library_source`] prefixes
/// it with [`COMMON`].
pub(crate) const JOBS: &str = include_str!("../lua/jobs.lua");
