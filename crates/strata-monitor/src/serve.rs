//! The monitor's HTTP server: hyper on tokio, with the limits a dead man's
//! switch needs so that no client can stall it for the others.
//!
//! - Each connection is a task; a client that opens a connection and sends
//!   nothing, or sends a request head slowly, is cut off after
//!   `header_timeout` (hyper's header read timer).
//! - A request's body must arrive within `body_timeout` (408 otherwise); the
//!   route runs only once the whole body is in memory, so a stalled body
//!   holds a task, never a worker.
//! - Routes (SQLite/PostgreSQL, argon2) run on the blocking pool, at most
//!   `workers` at once.
//! - At most `max_connections` connections are served; further ones are
//!   closed at once rather than queued behind the rest.
//! - Bodies are read up to `max_body` bytes; the rest is not read (the
//!   connection is then closed after the response).
//!
//! The connection layer (accept, connection limit, TLS, request-head
//! deadline) is strata-http's, the repository server's too; the route layer
//! ([`crate::http::respond`]) knows nothing of either.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::sync::{Notify, Semaphore};

use crate::http::{parse_query, pct_decode, Req, Resp};

/// What one request may cost the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Per connection (head/handshake deadline, how many, TLS): strata-http's.
    pub conn: strata_http::Limits,
    pub body_timeout: Duration,
    pub max_body: usize,
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            conn: strata_http::Limits::default(),
            body_timeout: Duration::from_secs(10),
            max_body: 1 << 20,
            workers: 4,
        }
    }
}

pub type Handler = Arc<dyn Fn(Req) -> Resp + Send + Sync>;

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves `listener` on a runtime of its own until [`Server::stop`].
    pub fn start(
        listener: std::net::TcpListener,
        limits: Limits,
        handler: Handler,
    ) -> std::io::Result<Server> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(limits.workers.max(1) + 4)
            .thread_name("monitor-http")
            .enable_all()
            .build()?;
        let stop = Arc::new(Notify::new());
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("monitor-http".into())
            .spawn(move || rt.block_on(accept_loop(listener, limits, handler, s)))?;
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting and returns once the accept loop ended.
    pub fn stop(mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Blocks until the server stops.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    limits: Limits,
    handler: Handler,
    stop: Arc<Notify>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("monitor: cannot serve: {e}");
            return;
        }
    };
    let workers = Arc::new(Semaphore::new(limits.workers.max(1)));
    let conn_limits = limits.conn.clone();
    let limits = Arc::new(limits);
    let on_conn: strata_http::OnConn = Arc::new(move |c: strata_http::Conn| {
        let (h, l, w) = (handler.clone(), limits.clone(), workers.clone());
        Box::pin(async move {
            let (peer, tls, header_timeout) = (c.peer, c.tls, l.conn.header_timeout);
            let svc = service_fn(move |req| {
                let (h, l, w) = (h.clone(), l.clone(), w.clone());
                async move { Ok::<_, Infallible>(handle(req, peer, tls, h, l, w).await) }
            });
            strata_http::http1(c.io, header_timeout, svc).await
        })
    });
    strata_http::accept_loop(listener, conn_limits, stop, on_conn).await
}

/// The body up to `max` bytes (the rest is left unread), or None when it
/// did not arrive in time.
async fn read_body(mut body: Incoming, max: usize) -> Result<Vec<u8>, ()> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(data) = frame.into_data() {
            let room = max.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
            if data.len() > room {
                break;
            }
        }
    }
    Ok(out)
}

fn plain(code: u16, text: &str) -> Resp {
    Resp::text(code, text)
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
    handler: Handler,
    limits: Arc<Limits>,
    workers: Arc<Semaphore>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let head = parts.method == hyper::Method::HEAD;
    let resp =
        match tokio::time::timeout(limits.body_timeout, read_body(body, limits.max_body)).await {
            Err(_) => plain(408, "request body not received in time"),
            Ok(Err(())) => plain(400, "request body could not be read"),
            Ok(Ok(body)) => {
                let target = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let (path, q) = target.split_once('?').unwrap_or((target, ""));
                let r = Req {
                    method: parts.method.as_str().to_uppercase(),
                    path: pct_decode(path),
                    query: parse_query(q),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body,
                    remote: peer.ip().to_string(),
                    tls,
                };
                match workers.acquire_owned().await {
                    Ok(permit) => tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        handler(r)
                    })
                    .await
                    .unwrap_or_else(|_| plain(500, "internal error")),
                    Err(_) => plain(503, "shutting down"),
                }
            }
        };
    let mut b = Response::builder()
        .status(resp.code)
        .header("Content-Type", resp.ctype);
    for (k, v) in &resp.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            b = b.header(k, v);
        }
    }
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(resp.body)
    };
    b.body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"internal error"))))
}
