//! The HTTP server stack both strata servers share (the repository server
//! and the monitor): the connection layer below the routes.
//!
//! - Each accepted connection is a task of its own.
//! - At most `max_connections` are served; further ones are closed at once
//!   rather than queued behind the rest (a flood cannot starve the
//!   clients already connected).
//! - With TLS (rustls), the handshake must finish within `header_timeout`.
//! - [`http1`] serves HTTP/1.1 with hyper and cuts off a client that does
//!   not send its request head within `header_timeout` (slow-loris).
//!
//! Body deadlines and sizes are the routes' business (the monitor reads a
//! ping body under a 10 s deadline; the repository server takes uploads of
//! hundreds of MiB).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, Semaphore};

/// What a connection may cost the server.
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            tls: None,
        }
    }
}

/// A connection's byte stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One accepted connection (after the TLS handshake, if any).
pub struct Conn {
    pub io: Box<dyn Io>,
    pub peer: SocketAddr,
    pub tls: bool,
}

/// What runs for each connection (until it closes).
pub type OnConn = Arc<dyn Fn(Conn) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Accepts connections until `stop` is notified (or forever), each served
/// by `on_conn` under `limits`.
pub async fn accept_loop(
    listener: tokio::net::TcpListener,
    limits: Limits,
    stop: Arc<Notify>,
    on_conn: OnConn,
) {
    let conns = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.notified() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    // EMFILE and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (tls, header_timeout, on_conn) =
            (limits.tls.clone(), limits.header_timeout, on_conn.clone());
        tokio::spawn(async move {
            match tls {
                None => {
                    on_conn(Conn {
                        io: Box::new(stream),
                        peer,
                        tls: false,
                    })
                    .await
                }
                Some(cfg) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    // a client that never finishes its handshake is cut
                    // off like one that never sends its request head
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(header_timeout, acceptor.accept(stream)).await
                    {
                        on_conn(Conn {
                            io: Box::new(s),
                            peer,
                            tls: true,
                        })
                        .await;
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serves HTTP/1.1 on one connection with `svc` until it closes; a request
/// head must arrive within `header_timeout`.
pub async fn http1<S, B>(io: Box<dyn Io>, header_timeout: Duration, svc: S)
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Send,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .await;
}

/// A TLS configuration from PEM files (the certificate chain, then its
/// key), HTTP/1.1 by ALPN.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: no PEM certificate ({e})", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no PEM certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: no PEM private key ({e})", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A server answering "ok" to everything, on a runtime of its own.
    fn serve(limits: Limits) -> (SocketAddr, tokio::runtime::Runtime) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_l.set_nonblocking(true).unwrap();
        let addr = std_l.local_addr().unwrap();
        let header_timeout = limits.header_timeout;
        rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(std_l).unwrap();
            let on_conn: OnConn = Arc::new(move |c: Conn| {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new("ok".to_string()))
                });
                Box::pin(http1(c.io, header_timeout, svc))
            });
            accept_loop(l, limits, Arc::new(Notify::new()), on_conn).await
        });
        (addr, rt)
    }

    /// Reads until EOF (or the 5 s read timeout): what the server sent.
    fn read_all(s: &mut std::net::TcpStream) -> String {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn silent_clients_are_cut_off_and_excess_connections_closed() {
        let (addr, _rt) = serve(Limits {
            header_timeout: Duration::from_millis(300),
            max_connections: 2,
            tls: None,
        });
        // two silent clients fill the server...
        let t = std::time::Instant::now();
        let mut a = std::net::TcpStream::connect(addr).unwrap();
        let mut b = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // ...so a third is closed at once, without an answer
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(read_all(&mut c), "");
        // the silent ones are cut off at the header deadline
        assert_eq!(read_all(&mut a), "");
        assert_eq!(read_all(&mut b), "");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // then a client is served again
        let mut d = std::net::TcpStream::connect(addr).unwrap();
        d.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let resp = read_all(&mut d);
        assert!(
            resp.starts_with("HTTP/1.1 200") && resp.ends_with("ok"),
            "{resp}"
        );
    }
}
