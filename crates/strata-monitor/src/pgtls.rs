//! TLS to PostgreSQL: rustls with the roots every strata HTTPS client uses
//! (the host's CA bundle, `SSL_CERT_FILE`; bundled roots when it has none).
//! Used when the database URL asks for it (`sslmode=require`, `verify-ca`
//! or `verify-full`); strata then always verifies the server's certificate
//! and name — `require` included, which is stricter than libpq.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Makes verified TLS connections to PostgreSQL.
#[derive(Clone)]
pub struct Rustls(pub Arc<rustls::ClientConfig>);

impl Rustls {
    pub fn new() -> Rustls {
        Rustls(strata_tls::client_config())
    }
}

impl Default for Rustls {
    fn default() -> Rustls {
        Rustls::new()
    }
}

pub struct Connector {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> MakeTlsConnect<S> for Rustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connector;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connector> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Connector {
            config: self.0.clone(),
            name,
        })
    }
}

impl<S> TlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(Stream(s))
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// The `sslmode` a PostgreSQL URL asks for (`disable`/`prefer` when absent
/// means no TLS here), and the URL as tokio-postgres takes it (it knows
/// `require`, not the `verify-*` modes; strata verifies in every TLS mode).
pub fn mode(url: &str) -> (bool, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (false, url.to_string());
    };
    let mut tls = false;
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some(("sslmode", "require" | "verify-ca" | "verify-full")) => {
                tls = true;
                "sslmode=require".to_string()
            }
            _ => p.to_string(),
        })
        .collect();
    (tls, format!("{base}?{}", params.join("&")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn modes() {
        assert_eq!(
            super::mode("postgres://u@h/db"),
            (false, "postgres://u@h/db".into())
        );
        assert_eq!(
            super::mode("postgres://u@h/db?sslmode=verify-full&connect_timeout=5"),
            (
                true,
                "postgres://u@h/db?sslmode=require&connect_timeout=5".into()
            )
        );
        assert!(super::mode("postgres://u@h/db?sslmode=require").0);
        assert!(!super::mode("postgres://u@h/db?sslmode=disable").0);
    }
}
