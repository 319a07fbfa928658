//! TLS for `https://` webhooks: the receiver's certificate is checked against the
//! operating system's roots (read once per process by `rustls-native-certs`, which
//! honours `SSL_CERT_FILE` and `SSL_CERT_DIR`), with ALPN `http/1.1`.

use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use tokio_rustls::TlsConnector;

/// The connector every `https://` post uses (made on first use, kept).
pub(crate) async fn connector() -> Result<TlsConnector, String> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(TlsConnector::from(Arc::clone(config)));
    }
    let made = tokio::task::spawn_blocking(make_config)
        .await
        .map_err(|err| format!("cannot read the system's roots: {err}"))??;
    let config = CONFIG.get_or_init(|| made);
    Ok(TlsConnector::from(Arc::clone(config)))
}

fn make_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "skipped while reading the system's root certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(
        added,
        ignored,
        "pusher webhooks: read the system's root certificates"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS setup: {err}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
