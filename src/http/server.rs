//! The connection layer: hyper-util's server with the limits a public edge
//! needs, which `axum::serve` does not have.
//!
//! - **HTTP/1.1 only**: hyper's HTTP/1 connection, no protocol sniffing
//!   (that step has no timeout) and no cleartext HTTP/2 (an h2 client that
//!   answers pings may idle for ever). Terminate TLS and HTTP/2 at the
//!   proxy or CDN in front.
//! - **Header-read timeout** (`http.header_read_timeout_secs`): a client
//!   must send a request's headers within it. hyper starts the clock when
//!   a connection opens and again whenever a keep-alive connection goes
//!   idle, so the same limit closes idle keep-alive connections.
//! - **Send timeout** (`http.send_timeout_secs`): a client that stops
//!   reading an answer (its TCP window stays shut) is cut off once no byte
//!   could be written for that long.
//! - **Connection cap** (`http.max_connections`): a connection past it is
//!   answered `503` with `Connection: close` at once (written without
//!   waiting, then dropped), so a flood of idle or dribbling connections
//!   cannot take the file descriptors that the ones being served need.
//!
//! - **Serving threads** (`http.io_threads`, default one per CPU): each
//!   runs its own single-threaded runtime accepting from the one socket,
//!   and a connection stays on the thread that accepted it, so serving a
//!   hit wakes no other thread. Background work (renders, the reaper, the
//!   flusher) stays on the main runtime.
//!
//! Shutdown: stop accepting, ask every connection to finish its requests
//! (hyper's graceful shutdown), wait up to `http.shutdown_grace_secs`;
//! the serving threads' runtimes end only after the app has shut down
//! ([`Edge::close`]).

use crate::config::HttpSettings;
use crate::telemetry;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// What a connection past the cap reads before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncache-control: no-store\r\ncontent-type: application/json\r\ncontent-length: 85\r\n\r\n{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections; retry in a second\"}}\n";

/// What every connection is held to (from `http.*`).
#[derive(Clone)]
struct Limits {
    header_read_timeout: Duration,
    send_timeout: Duration,
    grace: Duration,
    /// One permit per open connection (`http.max_connections`), shared by
    /// every serving thread.
    slots: Arc<Semaphore>,
    /// Whether handlers need each request's peer address: only to believe
    /// forwarded headers from `http.trusted_proxies` (and only when no
    /// `http.public_url` makes them moot). Otherwise a hit carries nothing
    /// extra.
    peer_needed: bool,
}

/// The threads serving connections. Their runtimes stay up until
/// [`Edge::close`], so whatever requests started on them (database
/// connections, background writes, timers) keeps being driven while the
/// app shuts down.
pub(super) struct Edge {
    release: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Edge {
    /// Ends the serving threads' runtimes (after the app's shutdown).
    pub(super) async fn close(self) {
        self.release.cancel();
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
///
/// With `threads` above 1, each of that many threads runs a
/// single-threaded runtime accepting from the same socket, and a
/// connection lives on the thread that accepted it: a request's tasks
/// never hop between threads (as nginx's workers, and unlike one
/// work-stealing runtime, where waking a request's task costs a wake-up
/// of another thread). Otherwise connections are served on the caller's
/// runtime.
pub(super) async fn run(
    listener: TcpListener,
    router: Router,
    http: &HttpSettings,
    threads: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Edge> {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
        send_timeout: Duration::from_secs(http.send_timeout_secs),
        grace: Duration::from_secs(http.shutdown_grace_secs),
        slots: Arc::new(Semaphore::new(http.max_connections)),
        peer_needed: http.public_url.is_empty() && !http.trusted_proxies.is_empty(),
    };
    let release = CancellationToken::new();
    if threads <= 1 {
        accept(listener, router, limits, shutdown).await;
        return Ok(Edge {
            release,
            threads: Vec::new(),
        });
    }
    let shared = listener.into_std()?;
    let stop = CancellationToken::new();
    let mut ended = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let (thread, ended_rx) = spawn_thread(
            i,
            shared.try_clone()?,
            (router.clone(), limits.clone()),
            stop.clone(),
            release.clone(),
        )?;
        handles.push(thread);
        ended.push(ended_rx);
    }
    drop(shared);
    let edge = Edge {
        release,
        threads: handles,
    };
    match first_failure(ended, shutdown, &stop).await {
        Some(e) => {
            edge.close().await;
            Err(e)
        }
        None => Ok(edge),
    }
}

/// What a serving thread reports when it stops accepting (or could not start).
type Ended = tokio::sync::oneshot::Receiver<std::io::Result<()>>;

/// Thread `i`: a single-threaded runtime accepting from `socket` until
/// `stop`, then holding its connections' tasks until `release`.
fn spawn_thread(
    i: usize,
    socket: std::net::TcpListener,
    (router, limits): (Router, Limits),
    stop: CancellationToken,
    release: CancellationToken,
) -> std::io::Result<(std::thread::JoinHandle<()>, Ended)> {
    let (done, ended_rx) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
    let thread = std::thread::Builder::new()
        .name(format!("layercake-http-{i}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = done.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                match TcpListener::from_std(socket) {
                    Ok(listener) => {
                        accept(listener, router, limits, stop.cancelled_owned()).await;
                        let _ = done.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                }
                release.cancelled().await;
            });
        })?;
    Ok((thread, ended_rx))
}

/// Waits until the shutdown, unless a thread could not start serving;
/// then stops every thread accepting and returns the first error.
async fn first_failure(
    ended: Vec<Ended>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stop: &CancellationToken,
) -> Option<std::io::Error> {
    let mut ended = futures::future::select_all(ended);
    tokio::pin!(shutdown);
    let early = tokio::select! {
        () = &mut shutdown => None,
        (first, _, rest) = &mut ended => Some((first, rest)),
    };
    stop.cancel();
    let (first, rest) = match early {
        Some((first, rest)) => (Some(first), rest),
        None => (None, ended.into_inner()),
    };
    let mut failed = first.and_then(|r| r.ok().and_then(Result::err));
    for r in futures::future::join_all(rest).await {
        if let Ok(Err(e)) = r {
            failed.get_or_insert(e);
        }
    }
    failed
}

/// Accepts connections on `listener` and serves them on this runtime
/// until `shutdown` resolves, then drains them (within the grace period).
async fn accept(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&limits.slots).try_acquire_owned() else {
            metrics::counter!(telemetry::CONNECTIONS_REFUSED).increment(1);
            // Never waits: a full socket buffer just loses the answer.
            let _ = stream.try_write(REFUSED);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer_needed = limits.peer_needed;
        let service =
            router
                .clone()
                .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    // Who sent it: `origin` believes forwarded headers
                    // only from http.trusted_proxies.
                    if peer_needed {
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                    }
                    req
                });
        let io = TokioIo::new(SendTimeout::new(stream, limits.send_timeout));
        let conn = graceful.watch(builder.serve_connection(io, TowerToHyperService::new(service)));
        tokio::spawn(async move {
            // A client that goes away or times out is not a server error.
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let grace = limits.grace;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "requests still running after the shutdown grace period; closing them"),
    }
}

/// A stream whose writes fail once none could make progress for `limit`.
struct SendTimeout<T> {
    inner: T,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> SendTimeout<T> {
    fn new(inner: T, limit: Duration) -> Self {
        SendTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After the inner write said `Pending`: `Err` once the stall is too long.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client read nothing for http.send_timeout_secs",
        ))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.pending(cx).map(Err),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.pending(cx).map(Err),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// Two serving threads share the socket: connections land on both, a
    /// request's awaits resume on the thread it started on, and shutdown
    /// drains and ends the threads.
    #[tokio::test]
    async fn serving_threads_share_the_socket_and_keep_their_requests() {
        use axum::routing::get;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        async fn which() -> String {
            let before = std::thread::current().name().unwrap_or("").to_string();
            tokio::time::sleep(Duration::from_millis(2)).await;
            tokio::task::yield_now().await;
            let after = std::thread::current().name().unwrap_or("").to_string();
            format!("{before}|{after}")
        }
        let router = axum::Router::new().route("/", get(which));
        let settings =
            crate::config::Settings::load(None, &crate::config::Overrides::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn({
            let http = settings.http.clone();
            async move {
                super::run(listener, router, &http, 2, async {
                    let _ = stopped.await;
                })
                .await
            }
        });
        let mut threads = std::collections::BTreeSet::new();
        for _ in 0..200 {
            // A new connection each time (Connection: close).
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            c.read_to_string(&mut answer).await.unwrap();
            let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
            let (before, after) = body.split_once('|').unwrap();
            assert_eq!(before, after, "a request moved between threads");
            assert!(before.starts_with("layercake-http-"), "{before}");
            threads.insert(before.to_string());
            if threads.len() == 2 {
                break;
            }
        }
        assert_eq!(
            threads.len(),
            2,
            "one thread took every connection: {threads:?}"
        );
        stop.send(()).unwrap();
        let edge = served.await.unwrap().unwrap();
        assert_eq!(edge.threads.len(), 2);
        edge.close().await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "still accepting"
        );
    }

    #[test]
    fn the_refusal_is_a_whole_http_answer() {
        let text = std::str::from_utf8(super::REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "unavailable");
    }

    /// Paused time: a peer that never reads fails the write at the limit.
    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_at_the_send_timeout() {
        use tokio::io::AsyncWriteExt as _;
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut w = super::SendTimeout::new(ours, Duration::from_secs(30));
        w.write_all(&[0; 64]).await.unwrap();
        let started = tokio::time::Instant::now();
        let e = w.write_all(&[0; 64]).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
