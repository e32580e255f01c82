//! TLS to Redis: `rediss://` with the queue's own CA (`spec.redis.tls.caSecretRef`), with
//! verification off (`insecureSkipVerify`), and refused when the server is not trusted.

use jobqueue_operator::queue::QueueError;
use jobqueue_operator::queue::conn::{TlsOptions, connect_with};
use jobqueue_test_support::redis::TlsRedisServer;

async fn ping(conn: &mut jobqueue_operator::queue::RedisConn) -> String {
    redis::cmd("PING")
        .query_async(conn)
        .await
        .expect("PING over TLS")
}

#[tokio::test]
async fn a_private_ca_is_trusted_when_given() {
    let server = TlsRedisServer::start();
    let tls = TlsOptions {
        ca_pem: Some(server.ca_pem().as_bytes().to_vec()),
        insecure_skip_verify: false,
    };
    let mut conn = connect_with(&server.url(), &tls)
        .await
        .expect("connect with the CA");
    assert_eq!(ping(&mut conn).await, "PONG");
}

#[tokio::test]
async fn an_untrusted_server_is_refused_and_named() {
    let server = TlsRedisServer::start();
    let err = connect_with(&server.url(), &TlsOptions::default())
        .await
        .expect_err("unknown CA must fail");
    assert!(matches!(err, QueueError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "127.0.0.1:{}",
            server.url().rsplit(':').next().unwrap()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn verification_can_be_skipped_for_development() {
    let server = TlsRedisServer::start();
    let tls = TlsOptions {
        ca_pem: None,
        insecure_skip_verify: true,
    };
    let mut conn = connect_with(&server.url(), &tls)
        .await
        .expect("connect without verification");
    assert_eq!(ping(&mut conn).await, "PONG");
}

#[tokio::test]
async fn tls_settings_on_a_plain_url_are_a_clear_error() {
    let tls = TlsOptions {
        ca_pem: None,
        insecure_skip_verify: true,
    };
    let err = connect_with("redis://127.0.0.1:1", &tls)
        .await
        .expect_err("plain URL with TLS settings");
    assert!(matches!(err, QueueError::InvalidUrl { .. }), "{err}");
    assert!(err.to_string().contains("need a rediss:// URL"), "{err}");
}
