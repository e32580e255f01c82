//! One shared connection per Redis endpoint (the connections multiplex and reconnect by
//! themselves, so a pool of one per endpoint is enough). An endpoint is a URL together with
//! its TLS settings (a private CA, skipping verification): two queues naming one URL with
//! different TLS settings get two connections, so one queue's settings never change how
//! another's server is verified.

use std::collections::HashMap;

use tokio::sync::Mutex;

use crate::queue::conn::{RedisConn, TlsOptions, connect_with};
use crate::queue::error::QueueError;

/// Connections by endpoint key (see [`RedisPool::endpoint`]).
#[derive(Default)]
pub struct RedisPool {
    conns: Mutex<HashMap<String, RedisConn>>,
    /// The URL and TLS settings behind each key that carries TLS settings.
    endpoints: std::sync::Mutex<HashMap<String, (String, TlsOptions)>>,
}

/// The key of `url` with `tls`: the URL itself without TLS settings, else the URL and a
/// digest of the settings (`<url>#tls:<sha-256 prefix>`), so the key never shows a CA bundle.
pub fn endpoint_key(url: &str, tls: &TlsOptions) -> String {
    if tls.is_default() {
        return url.to_string();
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[u8::from(tls.insecure_skip_verify)]);
    ctx.update(tls.ca_pem.as_deref().unwrap_or_default());
    let digest: String = ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{url}#tls:{digest}")
}

impl RedisPool {
    /// The key under which `url` with `tls` is connected; every other method takes it.
    pub fn endpoint(&self, url: &str, tls: &TlsOptions) -> String {
        let key = endpoint_key(url, tls);
        if !tls.is_default() {
            self.endpoints_lock()
                .insert(key.clone(), (url.to_string(), tls.clone()));
        }
        key
    }

    /// The connection for endpoint `key`, connecting on first use (and again after
    /// [`Self::forget`]). A key not made by [`Self::endpoint`] is a plain URL.
    pub async fn get(&self, key: &str) -> Result<RedisConn, QueueError> {
        if let Some(c) = self.conns.lock().await.get(key) {
            return Ok(c.clone());
        }
        // Connect without holding the lock: an unreachable endpoint must not stall the others.
        let (url, tls) = self
            .endpoints_lock()
            .get(key)
            .cloned()
            .unwrap_or_else(|| (key.to_string(), TlsOptions::default()));
        let conn = connect_with(&url, &tls).await?;
        Ok(self
            .conns
            .lock()
            .await
            .entry(key.to_string())
            .or_insert(conn)
            .clone())
    }

    /// The URL and TLS settings of endpoint `key`.
    pub fn target(&self, key: &str) -> (String, TlsOptions) {
        self.endpoints_lock()
            .get(key)
            .cloned()
            .unwrap_or_else(|| (key.to_string(), TlsOptions::default()))
    }

    fn endpoints_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, TlsOptions)>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the connection for `key` when `error` says the connection itself failed, so the
    /// next use reconnects.
    pub async fn forget_if_connection_error(&self, key: &str, error: &QueueError) {
        if is_connection_error(error) {
            self.forget(key).await;
        }
    }

    /// Drops the connection for `key` (after errors that a reconnect may cure).
    pub async fn forget(&self, key: &str) {
        self.conns.lock().await.remove(key);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_tls_settings_and_never_show_them() {
        let url = "rediss://redis:6380";
        let ca = TlsOptions {
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----\nMIIB\n".to_vec()),
            insecure_skip_verify: false,
        };
        let skip = TlsOptions {
            ca_pem: None,
            insecure_skip_verify: true,
        };
        assert_eq!(endpoint_key(url, &TlsOptions::default()), url);
        let keys = [endpoint_key(url, &ca), endpoint_key(url, &skip)];
        assert_ne!(keys[0], keys[1]);
        assert!(
            keys.iter()
                .all(|k| k.starts_with("rediss://redis:6380#tls:"))
        );
        assert!(!keys[0].contains("MIIB"));
        let pool = RedisPool::default();
        let key = pool.endpoint(url, &ca);
        assert_eq!(pool.target(&key), (url.to_string(), ca));
        assert_eq!(pool.target(url).1, TlsOptions::default());
    }
}
