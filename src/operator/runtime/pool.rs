//! One shared connection per Redis endpoint (the connections multiplex and reconnect by
//! themselves, so a pool of one per URL is enough).

use std::collections::HashMap;

use tokio::sync::Mutex;

use crate::queue::conn::{RedisConn, connect};
use crate::queue::error::QueueError;

/// Connections by URL.
#[derive(Default)]
pub struct RedisPool {
    conns: Mutex<HashMap<String, RedisConn>>,
}

impl RedisPool {
    /// The connection for `url`, connecting on first use (and again after [`Self::forget`]).
    pub async fn get(&self, url: &str) -> Result<RedisConn, QueueError> {
        if let Some(c) = self.conns.lock().await.get(url) {
            return Ok(c.clone());
        }
        // Connect without holding the lock: an unreachable endpoint must not stall the others.
        let conn = connect(url).await?;
        Ok(self
            .conns
            .lock()
            .await
            .entry(url.to_string())
            .or_insert(conn)
            .clone())
    }

    /// Drops the connection for `url` when `error` says the connection itself failed, so the
    /// next use reconnects.
    pub async fn forget_if_connection_error(&self, url: &str, error: &QueueError) {
        if is_connection_error(error) {
            self.forget(url).await;
        }
    }

    /// Drops the connection for `url` (after errors that a reconnect may cure).
    pub async fn forget(&self, url: &str) {
        self.conns.lock().await.remove(url);
    }
}

/// Whether `error` means the endpoint could not be reached or the connection broke (as
/// opposed to Redis answering with an error).
pub fn is_connection_error(error: &QueueError) -> bool {
    match error {
        QueueError::Unreachable { .. } => true,
        QueueError::Redis { error: source, .. } => {
            source.is_connection_dropped()
                || source.is_io_error()
                || source.is_timeout()
                || source.is_connection_refusal()
        }
        _ => false,
    }
}
