//! A private CA (`spec.redis.tls.caSecretRef`) is trusted in addition to the system's roots,
//! as the CRD says, not instead of them. The system's roots are what rustls finds through
//! `SSL_CERT_FILE`, here one test CA; the private CA is another.
//!
//! A binary of its own: it sets `SSL_CERT_FILE` for the whole process.

use jobqueue_operator::queue::conn::{TlsOptions, connect_with};
use jobqueue_test_support::redis::TlsRedisServer;

#[tokio::test]
async fn a_private_ca_adds_to_the_system_roots() {
    let system = TlsRedisServer::start();
    let private = TlsRedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let roots = dir.path().join("system-roots.pem");
    std::fs::write(&roots, system.ca_pem()).expect("writing the system roots");
    // SAFETY: the only test of this binary, and nothing else in it reads the environment
    // concurrently (the runtime's threads do not).
    unsafe { std::env::set_var("SSL_CERT_FILE", &roots) };
    let with_private_ca = TlsOptions {
        ca_pem: Some(private.ca_pem().as_bytes().to_vec()),
        insecure_skip_verify: false,
    };

    connect_with(&private.url(), &with_private_ca)
        .await
        .expect("the private CA is trusted");
    connect_with(&system.url(), &with_private_ca)
        .await
        .expect("the system's roots are still trusted beside the private CA");
    connect_with(&system.url(), &TlsOptions::default())
        .await
        .expect("the system's roots without a private CA");
    assert!(
        connect_with(&private.url(), &TlsOptions::default())
            .await
            .is_err(),
        "a server only the private CA vouches for is refused without it"
    );
}
