//! The TLS client configuration every strata HTTPS client uses (S3, the
//! repository server, monitor reports, notifications).
//!
//! Trust comes from the host: `SSL_CERT_FILE`/`SSL_CERT_DIR` when set, else
//! the distribution's CA bundle (Debian's /etc/ssl/certs, RHEL's
//! /etc/pki/tls, FreeBSD's /usr/local/share/certs, … as rustls-native-certs
//! finds them), so a fleet's private CA works as it does for curl. A host with
//! no CA bundle at all — a minimal container, a rescue root — gets the
//! Mozilla roots compiled into the binary instead, so the portable binary
//! still reaches public S3 endpoints.

use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;

/// Where the roots of [`client_config`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootsSource {
    /// This many certificates from the host's CA bundle.
    System(usize),
    /// The host has none: the bundled Mozilla roots.
    Bundled,
}

/// The host's roots, or the bundled ones when the host has none.
pub fn roots() -> (RootCertStore, RootsSource) {
    let mut store = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    if added > 0 {
        return (store, RootsSource::System(added));
    }
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    (store, RootsSource::Bundled)
}

static HOST_DERS: OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();

/// The host's CA certificates as DER (read once per process; empty when the
/// host has none — then use the bundled roots), for clients that take
/// certificates rather than a rustls configuration (SMTP).
pub fn host_root_ders() -> &'static [rustls::pki_types::CertificateDer<'static>] {
    HOST_DERS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

static CONFIG: OnceLock<(Arc<rustls::ClientConfig>, RootsSource)> = OnceLock::new();

/// One shared client configuration (roots are read once per process).
pub fn client_config() -> Arc<rustls::ClientConfig> {
    CONFIG.get_or_init(build).0.clone()
}

/// Where this process's roots came from (reads them on first use).
pub fn roots_source() -> RootsSource {
    CONFIG.get_or_init(build).1
}

fn build() -> (Arc<rustls::ClientConfig>, RootsSource) {
    let (roots, source) = roots();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(config), source)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the env var it sets is process-wide.
    #[test]
    fn system_roots_then_bundled() {
        let dir = std::env::temp_dir().join(format!("strata-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A bundle file with no certificate in it: the host "has none".
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        std::env::set_var("SSL_CERT_FILE", &empty);
        std::env::set_var("SSL_CERT_DIR", dir.join("nothing-here"));
        let (store, source) = roots();
        assert_eq!(source, RootsSource::Bundled);
        assert_eq!(store.len(), webpki_roots::TLS_SERVER_ROOTS.len());
        // A bundle with one certificate: exactly that one is trusted.
        let one = dir.join("one.pem");
        std::fs::write(&one, TEST_CA).unwrap();
        std::env::set_var("SSL_CERT_FILE", &one);
        let (store, source) = roots();
        assert_eq!(source, RootsSource::System(1));
        assert_eq!(store.len(), 1);
        std::env::remove_var("SSL_CERT_FILE");
        std::env::remove_var("SSL_CERT_DIR");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // A self-signed CA made for this test (openssl req -x509 -newkey ec).
    const TEST_CA: &str = include_str!("test-ca.pem");
}
