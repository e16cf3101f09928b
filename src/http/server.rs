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
//! Shutdown: stop accepting, ask every connection to finish its requests
//! (hyper's graceful shutdown), wait up to `http.shutdown_grace_secs`.

use crate::app::App;
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
use tower::ServiceExt as _;

/// What a connection past the cap reads before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncache-control: no-store\r\ncontent-type: application/json\r\ncontent-length: 85\r\n\r\n{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections; retry in a second\"}}\n";

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub(super) async fn run(
    listener: TcpListener,
    router: Router,
    app: &Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let http = &app.settings.http;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(http.header_read_timeout_secs))
        .keep_alive(true);
    let send_timeout = Duration::from_secs(http.send_timeout_secs);
    let slots = Arc::new(Semaphore::new(http.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
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
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            metrics::counter!(telemetry::CONNECTIONS_REFUSED).increment(1);
            // Never waits: a full socket buffer just loses the answer.
            let _ = stream.try_write(REFUSED);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(|req: axum::http::Request<hyper::body::Incoming>| {
                    req.map(axum::body::Body::new)
                });
        let io = TokioIo::new(SendTimeout::new(stream, send_timeout));
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
    let grace = Duration::from_secs(http.shutdown_grace_secs);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "requests still running after the shutdown grace period; closing them"),
    }
    Ok(())
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
