//! One shared connection per Redis endpoint (the connections multiplex and reconnect by
//! themselves, so a pool of one per URL is enough). TLS settings (a private CA, skipping
//! verification) belong to the endpoint: the last queue to declare them for a URL sets them.

use std::collections::HashMap;

use tokio::sync::Mutex;

use crate::queue::conn::{RedisConn, TlsOptions, connect_with};
use crate::queue::error::QueueError;

/// Connections by URL.
#[derive(Default)]
pub struct RedisPool {
    conns: Mutex<HashMap<String, RedisConn>>,
    tls: std::sync::Mutex<HashMap<String, TlsOptions>>,
}

impl RedisPool {
    /// The connection for `url`, connecting on first use (and again after [`Self::forget`]).
    pub async fn get(&self, url: &str) -> Result<RedisConn, QueueError> {
        if let Some(c) = self.conns.lock().await.get(url) {
            return Ok(c.clone());
        }
        // Connect without holding the lock: an unreachable endpoint must not stall the others.
        let tls = self.tls_lock().get(url).cloned().unwrap_or_default();
        let conn = connect_with(url, &tls).await?;
        Ok(self
            .conns
            .lock()
            .await
            .entry(url.to_string())
            .or_insert(conn)
            .clone())
    }

    /// Sets the TLS settings used for `url`; a change drops the current connection so the
    /// next use connects with them.
    pub async fn set_tls(&self, url: &str, tls: &TlsOptions) {
        let changed = {
            let mut map = self.tls_lock();
            let current = map.get(url).cloned().unwrap_or_default();
            if tls.is_default() {
                map.remove(url);
            } else {
                map.insert(url.to_string(), tls.clone());
            }
            current != *tls
        };
        if changed {
            self.forget(url).await;
        }
    }

    /// The TLS settings used for `url`.
    pub fn tls(&self, url: &str) -> TlsOptions {
        self.tls_lock().get(url).cloned().unwrap_or_default()
    }

    fn tls_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TlsOptions>> {
        self.tls.lock().unwrap_or_else(|e| e.into_inner())
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
